package support_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/billing"
	"github.com/keelhq/keel/billing/stripefake"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/examples/support"
	"github.com/keelhq/keel/llm/offline"
	"github.com/keelhq/keel/tools/email"
	"github.com/keelhq/keel/tools/email/sendgridfake"
)

// The demo ticket, answered by the offline model: the reply is emailed,
// the ticket solved and the $0.99 fee charged once.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "support-example-")
	defer os.RemoveAll(dir)
	st, db, closeDB, err := setup.Open(ctx, filepath.Join(dir, "keel.db"))
	if err != nil {
		panic(err)
	}
	defer closeDB()
	e, _ := durable.New(st, &durable.Config{Logger: slog.New(slog.DiscardHandler)})

	// Fakes stand in for SendGrid and Stripe; in production leave Email
	// and Billing nil and set SENDGRID_API_KEY and STRIPE_SECRET_KEY.
	sendgrid := sendgridfake.NewServer()
	defer sendgrid.Close()
	stripe := stripefake.NewServer()
	defer stripe.Close()
	stripe.AddCustomer("cus_ada", "pm_card_visa")
	env, err := setup.New(ctx, e, db, &setup.Config{
		Model:   offline.New(nil), // the default without OPENAI_API_KEY
		Email:   &email.Config{APIKey: sendgridfake.APIKey, BaseURL: sendgrid.URL},
		Billing: &billing.Config{SecretKey: stripefake.SecretKey, APIBase: stripe.URL},
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	defer env.Close()
	x, err := support.New(env, nil)
	if err != nil {
		panic(err)
	}
	for _, q := range env.TaskQueues() {
		e.NewWorker(&durable.WorkerOptions{TaskQueue: q})
	}
	_ = e.Start(ctx)
	defer e.Stop(ctx)

	h, _ := x.Start(ctx, support.Request{TicketID: "T-1", Message: "I was charged twice"}, &durable.StartOptions{ID: "ticket-T-1"})
	out, err := h.Result(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("ticket:", out.StatusBefore, "→", out.StatusAfter)
	for _, m := range sendgrid.Sent() {
		fmt.Println("email to", m.To, "-", m.Subject)
	}
	fmt.Println("fee:", out.Fee.Status, out.Fee.Entry.Amount, out.Fee.Entry.Currency, len(stripe.Charges()), "charge")
	// Output:
	// ticket: open → solved
	// email to [ada@example.com] - Re: I was charged twice
	// fee: charged 99 usd 1 charge
}
