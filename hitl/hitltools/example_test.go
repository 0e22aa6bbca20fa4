package hitltools_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/hitl/hitltools"
	"github.com/keelhq/keel/tools"
)

// A refund tool that may need approval: the policy sends big refunds to
// finance; a small one runs at once, without a reviewer.
func ExampleNew() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keel-hitltools-")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "keel.db")

	refund := tools.MustNew("refund", "Refund an order",
		func(ctx context.Context, in refundInput) (string, error) {
			return fmt.Sprintf("refunded %d on %s", in.Amount, in.Order), nil
		}, &tools.Options{RequiresApproval: true})
	policy, err := hitl.NewPolicy([]hitl.Rule{
		{Name: "big-refund", When: `action == "refund" && args.amount > 500`, Group: "finance", Required: 2},
	}, nil)
	if err != nil {
		panic(err)
	}
	approver, err := hitltools.New(policy, &hitltools.Config{Requester: "support-agent"})
	if err != nil {
		panic(err)
	}
	agent := durable.NewWorkflow("agent", func(ctx durable.Context, call tools.Call) (string, error) {
		r, err := refund.Run(ctx, call, &tools.CallOptions{Approver: approver})
		return r.Text(), err
	})

	st, _ := sqlitestore.Open(path, nil)
	defer st.Close()
	db, _ := appdb.Open(ctx, path)
	defer db.Close()
	e, _ := durable.New(st, nil)
	e.MustRegister(refund.Definition(), agent)
	e.NewWorker(nil)
	if _, err := hitl.New(ctx, db, e, &hitl.Config{
		Groups:     hitl.Groups{"finance": {"fred", "fiona", "farid"}},
		LinkSecret: []byte("an example secret of 32 bytes or more"),
	}); err != nil {
		panic(err)
	}
	_ = e.Start(ctx)
	defer e.Stop(ctx)

	out, err := agent.Run(ctx, e, tools.Call{ID: "call_1", Arguments: `{"order":"A-17","amount":40}`}, nil)
	fmt.Println(out, err)
	// Output: refunded 40 on A-17 <nil>
}
