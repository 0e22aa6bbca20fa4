package catalog_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/examples/catalog"
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/llm/offline"
)

// Registering the four examples on an engine, as `keel serve` does: each
// entry is an agent to expose, and each task queue needs a worker.
func ExampleRegister() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "catalog-example-")
	defer os.RemoveAll(dir)
	st, db, closeDB, err := setup.Open(ctx, filepath.Join(dir, "keel.db"))
	if err != nil {
		panic(err)
	}
	defer closeDB()
	e, _ := durable.New(st, nil)

	cat, err := catalog.Register(ctx, e, db, &catalog.Config{
		Model:     offline.New(nil), // the default unless OPENAI_API_KEY is set
		NoBilling: true,
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	defer cat.Close()
	for _, entry := range cat.Entries {
		fmt.Printf("%s (workflow %s on %s)\n", entry.Name, entry.Workflow, entry.TaskQueue)
	}
	fmt.Println("workers:", cat.TaskQueues())
	fmt.Println("reviewer groups:", cat.Approvals().Groups().Of("local"))
	// Output:
	// support (workflow support on default)
	// salesfollowup (workflow salesfollowup on default)
	// legalreview (workflow legalreview on default)
	// dealdesk (workflow dealdesk on default)
	// workers: [billing default legal]
	// reviewer groups: [legal partners sales-managers]
}
