package durabletest_test

import (
	"fmt"
	"time"

	"github.com/keelhq/keel/durable/durabletest"
)

func ExampleClock() {
	clock := durabletest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	fired := clock.After(72 * time.Hour)
	clock.Advance(72 * time.Hour)
	fmt.Println((<-fired).Format(time.DateOnly))
	// Output: 2026-01-04
}
