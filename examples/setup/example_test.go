package setup_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/llm/offline"
)

// An Env on a SQLite file: the demo data is loaded, and without SendGrid
// and Stripe keys email stays in the local outbox and nothing is charged.
func ExampleNew() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "setup-example-")
	defer os.RemoveAll(dir)
	st, db, closeDB, err := setup.Open(ctx, filepath.Join(dir, "keel.db"))
	if err != nil {
		panic(err)
	}
	defer closeDB()
	e, _ := durable.New(st, nil)
	env, err := setup.New(ctx, e, db, &setup.Config{Model: offline.New(nil), NoBilling: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer env.Close()

	t, _ := env.Tickets.Get(ctx, "T-1")
	c, _ := env.CRM.CustomerByEmail(ctx, t.RequesterEmail)
	n, _ := env.KB.Count(ctx)
	fmt.Println(t.ID, t.Subject, "|", c.Name, c.Key, "|", n, "articles")
	fmt.Println(env.ModelKind, env.Billing == nil, env.TaskQueues())
	// Output:
	// T-1 I was charged twice | Ada Lovelace cus_ada | 12 articles
	// offline true [default]
}
