package billingtools_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/billing"
	"github.com/keelhq/keel/billing/billingtools"
	"github.com/keelhq/keel/billing/stripefake"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/tools"
)

// A model's charge call runs as an activity keyed by the call: the
// customer is charged once, and the model reads the ledger entry.
func ExampleChargeTool() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "billingtools-example-")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "keel.db")
	stripe := stripefake.NewServer() // stands in for api.stripe.com
	defer stripe.Close()
	stripe.AddCustomer("cus_ada", "pm_card_visa")

	db, _ := appdb.Open(ctx, path)
	defer db.Close()
	svc, err := billing.New(ctx, db, &billing.Config{APIBase: stripe.URL, SecretKey: stripefake.SecretKey})
	if err != nil {
		panic(err)
	}
	defer svc.Close()
	charge := billingtools.ChargeTool(svc, nil)

	// What an agent's loop does with the model's tool call.
	call := tools.Call{ID: "call-1", Name: charge.Name(),
		Arguments: `{"customer_id":"cus_ada","amount_cents":99,"description":"ticket T-1 resolved"}`}
	step := durable.NewWorkflow("step", func(ctx durable.Context, _ string) (tools.Result, error) {
		return charge.Start(ctx, call, nil).Get(ctx)
	})
	st, _ := sqlitestore.Open(path, nil)
	defer st.Close()
	e, _ := durable.New(st, nil)
	e.MustRegister(append(tools.Definitions(charge), step)...)
	e.NewWorker(nil)
	_ = e.Start(ctx)
	defer e.Stop(ctx)

	res, err := step.Run(ctx, e, "", nil)
	var entry billing.Entry
	_ = json.Unmarshal(res.Content, &entry)
	fmt.Println(entry.Status, entry.Amount, entry.Currency, err)
	fmt.Println("charges at Stripe:", len(stripe.Charges()))
	// Output:
	// succeeded 99 usd <nil>
	// charges at Stripe: 1
}
