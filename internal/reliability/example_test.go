package reliability_test

import (
	"fmt"
	"os"

	"github.com/keelhq/keel/internal/reliability"
)

// A test sizes its workload by profile.
func ExamplePick() {
	old, had := os.LookupEnv(reliability.ProfileEnv)
	_ = os.Setenv(reliability.ProfileEnv, "full")
	fmt.Println("full profile, kills:", reliability.Pick(30, 1000))
	_ = os.Setenv(reliability.ProfileEnv, "")
	fmt.Println("CI profile, kills:", reliability.Pick(30, 1000))
	if had {
		_ = os.Setenv(reliability.ProfileEnv, old)
	} else {
		_ = os.Unsetenv(reliability.ProfileEnv)
	}
	// Output:
	// full profile, kills: 1000
	// CI profile, kills: 30
}
