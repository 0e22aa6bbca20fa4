package durable_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
)

// Before deploying changed workflow code, replay histories of real runs
// against it: a change that running runs could not follow is reported with
// the event and both commands.
func ExampleReplayer() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keel-example-")
	defer os.RemoveAll(dir)

	lookup := durable.NewActivity("lookup", func(ctx context.Context, id string) (string, error) {
		return "Ada", nil
	}, nil)
	greet := durable.NewWorkflow("greet", func(ctx durable.Context, id string) (string, error) {
		name, err := lookup.Run(ctx, id)
		return "Hello, " + name, err
	})

	// A run of the deployed code, and its history.
	st, _ := sqlitestore.Open(filepath.Join(dir, "keel.db"), nil)
	defer st.Close()
	e, _ := durable.New(st, nil)
	e.MustRegister(lookup, greet)
	e.NewWorker(nil)
	_ = e.Start(ctx)
	defer e.Stop(ctx)
	h, _ := greet.Start(ctx, e, "cus_42", nil)
	_, _ = h.Result(ctx)
	history, _ := e.ExportHistory(ctx, h.RunID())

	// The deployed code replays its own history.
	r, _ := durable.NewReplayer(lookup, greet)
	fmt.Println("same code:", r.ReplayJSON(history))

	// New code that calls a renamed activity does not.
	lookupV2 := durable.NewActivity("lookup-v2", func(ctx context.Context, id string) (string, error) {
		return "Ada", nil
	}, nil)
	greetV2 := durable.NewWorkflow("greet", func(ctx durable.Context, id string) (string, error) {
		name, err := lookupV2.Run(ctx, id)
		return "Hello, " + name, err
	})
	r2, _ := durable.NewReplayer(lookupV2, greetV2)
	err := r2.ReplayJSON(history)
	var re *durable.ReplayError
	var nd *durable.NonDeterminismError
	if errors.As(err, &re) && errors.As(err, &nd) {
		fmt.Printf("new code: event %d (%s)\n  recorded: %s\n  produced: %s\n", re.EventID, re.EventType, nd.Expected, nd.Actual)
	}
	// Output:
	// same code: <nil>
	// new code: event 2 (ActivityScheduled)
	//   recorded: ActivityScheduled(lookup, input sha256:8901f487)
	//   produced: ActivityScheduled(lookup-v2, input sha256:8901f487)
}
