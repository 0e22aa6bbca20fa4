package durable_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
)

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keel-example-")
	defer os.RemoveAll(dir)

	lookup := durable.NewActivity("lookup", func(ctx context.Context, id string) (string, error) {
		return "Ada", nil // a CRM call, run at least once, recorded exactly once
	}, nil)
	greet := durable.NewWorkflow("greet", func(ctx durable.Context, id string) (string, error) {
		name, err := lookup.Run(ctx, id)
		return "Hello, " + name, err
	})

	st, _ := sqlitestore.Open(filepath.Join(dir, "keel.db"), nil)
	defer st.Close()
	e, _ := durable.New(st, nil)
	e.MustRegister(lookup, greet)
	e.NewWorker(nil)
	_ = e.Start(ctx)
	defer e.Stop(ctx)

	out, err := greet.Run(ctx, e, "cus_42", &durable.StartOptions{ID: "greet-cus_42"})
	fmt.Println(out, err)
	// Output: Hello, Ada <nil>
}

func ExampleSignal() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keel-example-")
	defer os.RemoveAll(dir)

	decision := durable.NewSignal[string]("decision")
	review := durable.NewWorkflow("review", func(ctx durable.Context, memo string) (string, error) {
		// Waits durably: no goroutine is held while the run is evicted.
		verdict, err := decision.Receive(ctx)
		return memo + ": " + verdict, err
	})

	st, _ := sqlitestore.Open(filepath.Join(dir, "keel.db"), nil)
	defer st.Close()
	e, _ := durable.New(st, nil)
	e.MustRegister(review)
	e.NewWorker(nil)
	_ = e.Start(ctx)
	defer e.Stop(ctx)

	h, _ := review.Start(ctx, e, "memo-7", &durable.StartOptions{ID: "review-memo-7"})
	_ = decision.Send(ctx, e, "review-memo-7", "approved")
	out, err := h.Result(ctx)
	fmt.Println(out, err)
	// Output: memo-7: approved <nil>
}
