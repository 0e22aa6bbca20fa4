package failpoint_test

import (
	"fmt"

	"github.com/keelhq/keel/internal/failpoint"
)

// A configuration lists rules; each names failpoints (or a glob over
// them) and what happens there. In a build with the failpoints tag, the
// process reads it from KEEL_FAILPOINTS when it starts.
func ExampleParse() {
	rules, err := failpoint.Parse("store.CompleteWorkflowTask.after=kill@3;store.*.after=ambiguous%1")
	if err != nil {
		panic(err)
	}
	for _, r := range rules {
		fmt.Println(r.Pattern, r.Kind, r.Nth, r.Percent)
	}
	fmt.Println(rules[1].Matches("store.Signal.after"), rules[1].Matches("store.Signal.before"))

	_, err = failpoint.Parse("store.Signal.before=ambiguous")
	fmt.Println(err)
	// Output:
	// store.CompleteWorkflowTask.after kill 3 0
	// store.*.after ambiguous 0 1
	// true false
	// failpoint: invalid configuration: "store.Signal.before=ambiguous": ambiguous applies only to .after failpoints, where the write has committed
}

// Code marks a write boundary with a pair of failpoints. Without the
// failpoints build tag both calls compile to nothing.
func ExampleInject() {
	write := func() error { return nil }
	save := func() error {
		if err := failpoint.Inject("example.save.before"); err != nil {
			return fmt.Errorf("save: %w", err)
		}
		if err := write(); err != nil {
			return fmt.Errorf("save: %w", err)
		}
		if err := failpoint.Inject("example.save.after"); err != nil {
			return fmt.Errorf("save: %w", err) // written, and reported failed
		}
		return nil
	}
	fmt.Println(save())
	// Output: <nil>
}
