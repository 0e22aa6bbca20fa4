package durable_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
)

func ExampleUpsertSearchAttributes() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keel-example-")
	defer os.RemoveAll(dir)

	fulfil := durable.NewWorkflow("fulfil", func(ctx durable.Context, order string) (string, error) {
		// Recorded in history and applied when the workflow task commits.
		err := durable.UpsertSearchAttributes(ctx, map[string]any{"stage": "shipped"})
		return order + " shipped", err
	})

	st, _ := sqlitestore.Open(filepath.Join(dir, "keel.db"), nil)
	defer st.Close()
	e, _ := durable.New(st, nil)
	e.MustRegister(fulfil)
	e.NewWorker(nil)
	_ = e.Start(ctx)
	defer e.Stop(ctx)

	for i, customer := range []string{"acme", "globex", "acme"} {
		_, _ = fulfil.Run(ctx, e, fmt.Sprint("order-", i), &durable.StartOptions{
			ID:               fmt.Sprint("fulfil-", i),
			SearchAttributes: map[string]any{"customer": customer, "amount": 100 * (i + 1)},
			Memo:             map[string]any{"note": "gift wrap"},
		})
	}

	runs, _, err := e.ListRuns(ctx, &durable.ListOptions{SearchAttributes: []durable.SearchFilter{
		{Key: "customer", Equal: "acme"},
		{Key: "amount", Min: 200},
		{Key: "stage", Equal: "shipped"},
	}})
	for _, r := range runs {
		fmt.Println(r.WorkflowID, r.SearchAttributes["amount"], string(r.Memo["note"]))
	}
	fmt.Println(err)
	// Output:
	// fulfil-2 300 "gift wrap"
	// <nil>
}
