package durable_test

import (
	"context"
	"encoding/json"
	"errors"
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

func ExampleWorkflow_RunChild() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keel-example-")
	defer os.RemoveAll(dir)

	legal := durable.NewWorkflow("legal-review", func(ctx durable.Context, deal string) (string, error) {
		return deal + ": terms approved", nil
	})
	sales := durable.NewWorkflow("close-deal", func(ctx durable.Context, deal string) (string, error) {
		// The child has its own history and runs on its own task queue.
		return legal.RunChild(ctx, deal, &durable.ChildOptions{TaskQueue: "legal"})
	})

	st, _ := sqlitestore.Open(filepath.Join(dir, "keel.db"), nil)
	defer st.Close()
	e, _ := durable.New(st, nil)
	e.MustRegister(legal, sales)
	e.NewWorker(nil)
	e.NewWorker(&durable.WorkerOptions{TaskQueue: "legal"})
	_ = e.Start(ctx)
	defer e.Stop(ctx)

	out, err := sales.Run(ctx, e, "ACME-42", nil)
	fmt.Println(out, err)
	// Output: ACME-42: terms approved <nil>
}

func ExampleSetUpdateHandler() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keel-example-")
	defer os.RemoveAll(dir)

	done := durable.NewSignal[struct{}]("done")
	cart := durable.NewWorkflow("cart", func(ctx durable.Context, _ string) ([]string, error) {
		var items []string
		durable.SetUpdateHandler(ctx, "add", func(ctx durable.Context, item string) (int, error) {
			items = append(items, item)
			return len(items), nil
		}, func(item string) error {
			if item == "" {
				return errors.New("empty item")
			}
			return nil
		})
		_, err := done.Receive(ctx)
		return items, err
	})

	st, _ := sqlitestore.Open(filepath.Join(dir, "keel.db"), nil)
	defer st.Close()
	e, _ := durable.New(st, nil)
	e.MustRegister(cart)
	e.NewWorker(nil)
	_ = e.Start(ctx)
	defer e.Stop(ctx)

	_, _ = cart.Start(ctx, e, "", &durable.StartOptions{ID: "cart-7"})
	n, err := e.Update(ctx, "cart-7", "add", json.RawMessage(`"tea"`), &durable.UpdateOptions{UpdateID: "req-1"})
	fmt.Println(string(n), err)
	_, err = e.Update(ctx, "cart-7", "add", json.RawMessage(`""`), nil)
	fmt.Println(errors.Is(err, durable.ErrUpdateRejected))
	// Output:
	// 1 <nil>
	// true
}
