package billing_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/billing"
	"github.com/keelhq/keel/billing/stripefake"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
)

// A workflow charges $0.99 when it resolves a ticket. The charge runs as an
// activity; its ledger key, and Stripe's Idempotency-Key, come from the
// activity, so no retry or crash can charge twice.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "billing-example-")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "keel.db")

	// A fake Stripe stands in for api.stripe.com; in production leave
	// APIBase and SecretKey empty and set STRIPE_SECRET_KEY.
	stripe := stripefake.NewServer()
	defer stripe.Close()
	stripe.AddCustomer("cus_ada", "pm_card_visa")

	db, _ := appdb.Open(ctx, path) // the engine's database
	defer db.Close()
	svc, err := billing.New(ctx, db, &billing.Config{APIBase: stripe.URL, SecretKey: stripefake.SecretKey})
	if err != nil {
		panic(err)
	}
	defer svc.Close()

	charge := durable.NewActivity("charge-resolution", func(ctx context.Context, customer string) (*billing.Entry, error) {
		return svc.Charge(ctx, billing.ChargeParams{Customer: customer, Amount: 99, Description: "Ticket T-1 resolved"})
	}, nil)
	resolve := durable.NewWorkflow("resolve", func(ctx durable.Context, customer string) (string, error) {
		e, err := charge.Run(ctx, customer)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s %d %s", e.Status, e.Amount, e.Currency), nil
	})

	st, _ := sqlitestore.Open(path, nil)
	defer st.Close()
	e, _ := durable.New(st, nil)
	e.MustRegister(charge, resolve)
	e.NewWorker(nil)
	_ = e.Start(ctx)
	defer e.Stop(ctx)

	out, err := resolve.Run(ctx, e, "cus_ada", &durable.StartOptions{ID: "ticket-T-1"})
	fmt.Println(out, err)
	fmt.Println("charges at Stripe:", len(stripe.Charges()))
	// Output:
	// succeeded 99 usd <nil>
	// charges at Stripe: 1
}

// Outside an activity, a charge names its own key. Charging again with the
// same key returns the ledger entry; Stripe is not called again. A declined
// card is a final error.
func ExampleService_Charge() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "billing-example-")
	defer os.RemoveAll(dir)
	stripe := stripefake.NewServer()
	defer stripe.Close()
	stripe.AddCustomer("cus_ada", "pm_card_visa")
	stripe.AddCustomer("cus_bob", "pm_card_chargeDeclinedInsufficientFunds")

	db, _ := appdb.Open(ctx, filepath.Join(dir, "keel.db"))
	defer db.Close()
	svc, _ := billing.New(ctx, db, &billing.Config{APIBase: stripe.URL, SecretKey: stripefake.SecretKey})
	defer svc.Close()

	p := billing.ChargeParams{Customer: "cus_ada", Amount: 99, Key: "invoice-2024-07/ada"}
	first, _ := svc.Charge(ctx, p)
	again, _ := svc.Charge(ctx, p)
	fmt.Println(first.Status, again.Replayed, again.StripeID == first.StripeID, len(stripe.Charges()))

	_, err := svc.Charge(ctx, billing.ChargeParams{Customer: "cus_bob", Amount: 99, Key: "invoice-2024-07/bob"})
	var be *billing.Error
	fmt.Println(errors.Is(err, billing.ErrCardDeclined), errors.As(err, &be) && be.NonRetryable(), be.DeclineCode)
	// Output:
	// succeeded true true 1
	// true true insufficient_funds
}

// Metered usage goes to a Stripe billing meter; the ledger key is also the
// meter event's identifier.
func ExampleService_RecordUsage() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "billing-example-")
	defer os.RemoveAll(dir)
	stripe := stripefake.NewServer()
	defer stripe.Close()

	db, _ := appdb.Open(ctx, filepath.Join(dir, "keel.db"))
	defer db.Close()
	svc, _ := billing.New(ctx, db, &billing.Config{APIBase: stripe.URL, SecretKey: stripefake.SecretKey})
	defer svc.Close()

	e, err := svc.RecordUsage(ctx, billing.UsageParams{Customer: "cus_ada", EventName: "resolved_tickets", Value: 3, Key: "day-2024-07-01/ada"})
	fmt.Println(e.Status, e.StripeID, err)
	ev := stripe.MeterEvents()[0]
	fmt.Println(ev.EventName, ev.Payload["stripe_customer_id"], ev.Payload["value"])
	// Output:
	// succeeded day-2024-07-01/ada <nil>
	// resolved_tickets cus_ada 3
}
