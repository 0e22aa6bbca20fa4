package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/agent"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/llm/offline"
	"github.com/keelhq/keel/tools"
)

type customerQuery struct {
	Email string `json:"email" jsonschema:"description=The customer's email address"`
}

type customer struct {
	CustomerID string `json:"customer_id"`
	Name       string `json:"name"`
	Plan       string `json:"plan"`
}

type searchQuery struct {
	Query string `json:"query" jsonschema:"description=What to look for"`
}

// A support agent with two tools, run durably on a SQLite file with the
// offline model (a deterministic local model: no network, no API key).
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keel-example-")
	defer os.RemoveAll(dir)

	crm := tools.MustNew("crm_lookup", "Find a customer by email",
		func(ctx context.Context, in customerQuery) (customer, error) {
			return customer{CustomerID: "cus_42", Name: "Ada Lovelace", Plan: "pro"}, nil
		}, nil)
	kb := tools.MustNew("kb_search", "Search the help center",
		func(ctx context.Context, in searchQuery) ([]string, error) {
			return []string{"Pro plans can be refunded within 30 days."}, nil
		}, nil)
	support := &agent.Agent{
		Name:         "support",
		Instructions: "You are a support agent. Look the customer up and search the help center before you answer.",
		Model:        "offline",
		Tools:        []*tools.Tool{crm, kb},
		MaxTurns:     5,
		Budget:       agent.Budget{MaxTokens: 20_000},
	}

	st, _ := sqlitestore.Open(filepath.Join(dir, "keel.db"), nil)
	defer st.Close()
	e, _ := durable.New(st, nil)
	rt, _ := agent.NewRuntime(e, &agent.Config{Models: map[string]llm.Model{"offline": offline.New(nil)}})
	rt.MustRegister(support)
	e.NewWorker(nil)
	_ = e.Start(ctx)
	defer e.Stop(ctx)

	res, err := rt.Run(ctx, support, agent.Input{Message: "Hi, I'm ada@example.com. Can I get a refund?"},
		&durable.StartOptions{ID: "ticket-1"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Status, res.Turns, "turns")
	for _, tu := range res.Tools {
		fmt.Println(tu.Name, tu.Calls)
	}
	fmt.Println(res.ModelCalls[0].ToolCalls, "tool calls in the first answer")
	// Output:
	// completed 2 turns
	// crm_lookup 1
	// kb_search 1
	// 2 tool calls in the first answer
}

type verdict struct {
	Decision string   `json:"decision" jsonschema:"enum=approve,enum=escalate"`
	Risks    []string `json:"risks"`
}

// An agent whose final answer is structured: JSON that follows the schema
// of a Go type, checked before the run completes.
func ExampleOutputOf() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keel-example-")
	defer os.RemoveAll(dir)

	reviewer := &agent.Agent{
		Name:         "legal",
		Instructions: "You are a legal reviewer of contract clauses.",
		Model:        "offline",
		Output:       agent.MustOutputOf[verdict]("verdict"),
	}

	st, _ := sqlitestore.Open(filepath.Join(dir, "keel.db"), nil)
	defer st.Close()
	e, _ := durable.New(st, nil)
	rt, _ := agent.NewRuntime(e, &agent.Config{Models: map[string]llm.Model{"offline": offline.New(nil)}})
	rt.MustRegister(reviewer)
	e.NewWorker(nil)
	_ = e.Start(ctx)
	defer e.Stop(ctx)

	res, err := rt.Run(ctx, reviewer, agent.Input{Message: "Clause 9: the supplier's liability is unlimited."}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	v, err := agent.DecodeOutput[verdict](res)
	fmt.Println(res.Status, v.Decision != "", err)
	// Output: completed true <nil>
}
