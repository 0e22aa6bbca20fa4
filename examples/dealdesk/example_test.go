package dealdesk_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/examples/dealdesk"
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/llm/offline"
)

// The deal desk asks its legal and billing agents, each a child workflow
// on its own task queue, then closes the demo deal.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "dealdesk-example-")
	defer os.RemoveAll(dir)
	st, db, closeDB, err := setup.Open(ctx, filepath.Join(dir, "keel.db"))
	if err != nil {
		panic(err)
	}
	defer closeDB()
	e, _ := durable.New(st, &durable.Config{Logger: slog.New(slog.DiscardHandler)})
	env, err := setup.New(ctx, e, db, &setup.Config{Model: offline.New(nil), NoBilling: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer env.Close()
	x, err := dealdesk.New(env, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("workers on", env.TaskQueues())
	for _, q := range env.TaskQueues() {
		e.NewWorker(&durable.WorkerOptions{TaskQueue: q})
	}
	_ = e.Start(ctx)
	defer e.Stop(ctx)

	out, err := x.Workflow.Run(ctx, e, dealdesk.DemoRequest(), &durable.StartOptions{ID: "deal-ada"})
	if err != nil {
		panic(err)
	}
	for _, s := range out.SubAgents {
		info, _ := e.Describe(ctx, s.WorkflowID)
		fmt.Println(s.Agent, "on", info.TaskQueue, s.Status)
	}
	fmt.Println(out.DealKey, out.StageBefore, "→", out.StageAfter)
	// Output:
	// workers on [billing default legal]
	// legal_counsel on legal completed
	// billing_specialist on billing completed
	// deal_ada_enterprise proposal → won
}
