package agenttest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/agent"
	"github.com/keelhq/keel/agent/agenttest"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/llm/offline"
	"github.com/keelhq/keel/tools"
)

// Record a run, then replay it against the code: offline, with the
// recorded model answers and tool results.
func ExampleReplay() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keel-example-")
	defer os.RemoveAll(dir)

	lookups := 0
	newAgent := func() *agent.Agent {
		lookup := tools.MustNew("ticket_status", "Read a ticket's status",
			func(ctx context.Context, in struct {
				TicketID string `json:"ticket_id"`
			}) (string, error) {
				lookups++
				return "open, waiting on engineering", nil
			}, nil)
		return &agent.Agent{Name: "support", Instructions: "You are a support agent.", Model: "offline", Tools: []*tools.Tool{lookup}}
	}

	// Record.
	st, _ := sqlitestore.Open(filepath.Join(dir, "keel.db"), nil)
	defer st.Close()
	e, _ := durable.New(st, nil)
	rt, _ := agent.NewRuntime(e, &agent.Config{Models: map[string]llm.Model{"offline": offline.New(nil)}})
	support := newAgent()
	rt.MustRegister(support)
	e.NewWorker(nil)
	_ = e.Start(ctx)
	_, _ = rt.Run(ctx, support, agent.Input{Message: "What is the status of ticket T-7?"}, &durable.StartOptions{ID: "t-7"})
	rec, _ := agenttest.Record(ctx, e, "t-7")
	_ = e.Stop(ctx)
	_ = rec.Save(filepath.Join(dir, "testdata", "t-7.json"))

	// Replay, as a regression test would.
	rec, _ = agenttest.Load(filepath.Join(dir, "testdata", "t-7.json"))
	rep, err := agenttest.Replay(ctx, rec, []*agent.Agent{newAgent()}, nil)
	fmt.Println(rep.OK(), rep.Result.Status, err)
	fmt.Println("tool executions:", lookups)
	// Output:
	// true completed <nil>
	// tool executions: 1
}
