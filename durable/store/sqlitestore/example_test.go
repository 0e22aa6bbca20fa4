package sqlitestore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/sqlitestore"
)

func Example() {
	dir, err := os.MkdirTemp("", "keel-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := sqlitestore.Open(filepath.Join(dir, "keel.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx := context.Background()
	res, err := s.CreateRun(ctx, store.CreateRunParams{
		RunID:        "run-1",
		WorkflowID:   "order-42",
		WorkflowType: "ProcessOrder",
		TaskQueue:    "orders",
		Input:        []byte(`{"order":42}`),
		StartEvent:   store.Event{Type: "WorkflowStarted", Data: []byte(`{"order":42}`)},
		Now:          time.Now(),
	})
	if err != nil {
		log.Fatal(err)
	}
	run, err := s.GetRun(ctx, res.Run.RunID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(run.WorkflowID, run.Status, run.HistoryLen)
	// Output: order-42 running 1
}
