package hitl_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/hitl"
)

// A workflow asks the finance group to approve a refund and waits; a
// reviewer finds it in their queue and approves it through a signed link;
// the workflow learns who decided and why.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keel-hitl-")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "keel.db")

	refund := durable.NewWorkflow("refund", func(ctx durable.Context, order string) (string, error) {
		d, err := hitl.Approve(ctx, hitl.Request{
			Title:     "Refund order " + order,
			Details:   "The parcel was lost in transit.",
			Action:    "refund",
			Args:      map[string]any{"order": order, "amount": 750},
			Group:     "finance",
			Timeout:   72 * time.Hour,
			Requester: "support-agent",
		})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s by %v: %v", d.Status, d.DecidedBy, d.Comments()), nil
	})

	st, _ := sqlitestore.Open(path, nil)
	defer st.Close()
	db, _ := appdb.Open(ctx, path) // the application tables, in the same file
	defer db.Close()
	e, _ := durable.New(st, nil)
	e.MustRegister(refund)
	e.NewWorker(nil)
	svc, err := hitl.New(ctx, db, e, &hitl.Config{
		Groups:     hitl.Groups{"finance": {"fred", "fiona"}},
		LinkSecret: []byte("an example secret of 32 bytes or more"),
	})
	if err != nil {
		panic(err)
	}
	_ = e.Start(ctx)
	defer e.Stop(ctx)

	h, _ := refund.Start(ctx, e, "A-17", nil)

	// fred's queue, as a reviewer page would show it.
	a := awaitPending(ctx, svc, "fred")
	fmt.Println(a.Title, a.Status, a.Required, "of", svc.Groups().Members(a.Group))

	// fred follows the link from his email and approves.
	token, err := svc.SignLink(a.ID, "fred", 24*time.Hour)
	if err != nil {
		panic(err)
	}
	_, err = svc.Decide(ctx, a.ID, hitl.DecideInput{
		LinkToken: token, Approve: true, Comment: "Carrier confirmed the loss.", ArgsHash: a.ArgsHash,
	})
	fmt.Println("decided:", err)
	_, err = svc.Decide(ctx, a.ID, hitl.DecideInput{LinkToken: token, Approve: true, ArgsHash: a.ArgsHash})
	fmt.Println("link reused:", errors.Is(err, hitl.ErrLinkUsed))

	out, err := h.Result(ctx)
	fmt.Println(out, err)
	// Output:
	// Refund order A-17 pending 1 of [fiona fred]
	// decided: <nil>
	// link reused: true
	// approved by [fred]: [fred: Carrier confirmed the loss.] <nil>
}

// awaitPending polls a reviewer's queue until an approval shows up, as a
// page refresh would.
func awaitPending(ctx context.Context, svc *hitl.Service, reviewer string) hitl.Approval {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		list, _, err := svc.List(ctx, &hitl.ListParams{Reviewer: reviewer, Status: hitl.StatusPending})
		if err != nil {
			panic(err)
		}
		if len(list) > 0 {
			return list[0]
		}
		select {
		case <-ctx.Done():
			panic(ctx.Err())
		case <-tick.C:
		}
	}
}

// The hash binds an approval to its exact action and arguments; key order
// and spacing do not change it, a different amount does.
func ExampleHash() {
	a, _ := hitl.Hash("refund", json.RawMessage(`{"order": "A-17", "amount": 750}`))
	b, _ := hitl.Hash("refund", json.RawMessage(`{"amount":750,"order":"A-17"}`))
	c, _ := hitl.Hash("refund", json.RawMessage(`{"amount":7500,"order":"A-17"}`))
	fmt.Println(a == b, a == c)
	// Output: true false
}

// Rules in CEL decide which actions need approval and from whom; the first
// that holds wins.
func ExampleNewPolicy() {
	policy, err := hitl.NewPolicy([]hitl.Rule{
		{Name: "big-refund", When: `action == "refund" && args.amount > 500`, Group: "finance", Required: 2},
		{Name: "email", When: `action == "send_email"`, Group: "legal"},
	}, nil)
	if err != nil {
		panic(err)
	}
	for _, c := range []struct{ action, args string }{
		{"refund", `{"amount": 750}`},
		{"refund", `{"amount": 20}`},
		{"send_email", `{"to": "ada@example.com"}`},
	} {
		m, needed, err := policy.Match(c.action, json.RawMessage(c.args))
		fmt.Println(c.action, needed, m.Group, m.Required, err)
	}

	_, err = hitl.NewPolicy([]hitl.Rule{{Name: "typo", When: `action = "refund"`, Group: "finance"}}, nil)
	fmt.Println(errors.Is(err, hitl.ErrPolicyCompile))
	// Output:
	// refund true finance 2 <nil>
	// refund false  0 <nil>
	// send_email true legal 1 <nil>
	// true
}
