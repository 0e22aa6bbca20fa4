package salesfollowup_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/examples/salesfollowup"
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/llm/offline"
	"github.com/keelhq/keel/tools/email"
	"github.com/keelhq/keel/tools/email/sendgridfake"
)

// A lead who replies after the second email: the sequence stops there.
// The first wait is 50 milliseconds here, and the others an hour; by
// default they are days.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "salesfollowup-example-")
	defer os.RemoveAll(dir)
	st, db, closeDB, err := setup.Open(ctx, filepath.Join(dir, "keel.db"))
	if err != nil {
		panic(err)
	}
	defer closeDB()
	e, _ := durable.New(st, &durable.Config{Logger: slog.New(slog.DiscardHandler)})
	sendgrid := sendgridfake.NewServer() // in production: SENDGRID_API_KEY
	defer sendgrid.Close()
	env, err := setup.New(ctx, e, db, &setup.Config{
		Model:     offline.New(nil),
		Email:     &email.Config{APIKey: sendgridfake.APIKey, BaseURL: sendgrid.URL},
		NoBilling: true,
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	defer env.Close()
	x, err := salesfollowup.New(env, nil)
	if err != nil {
		panic(err)
	}
	for _, q := range env.TaskQueues() {
		e.NewWorker(&durable.WorkerOptions{TaskQueue: q})
	}
	_ = e.Start(ctx)
	defer e.Stop(ctx)

	req := salesfollowup.DemoRequest()
	req.Waits = []string{"50ms", "1h", "1h", "1h"}
	h, _ := x.Start(ctx, req, &durable.StartOptions{ID: "lead-grace"})
	// The lead answers once the second email is out.
	_ = setup.Poll(ctx, func(context.Context) (bool, error) { return len(sendgrid.Sent()) == 2, nil })
	_ = salesfollowup.Replied.Send(ctx, e, "lead-grace", salesfollowup.Reply{From: "grace@example.com", Message: "Let's talk."})

	out, err := h.Result(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(out.Status, "after", len(out.Emails), "emails:", out.Reply.Message)
	for _, m := range sendgrid.Sent() {
		fmt.Println(m.To, m.Subject)
	}
	// Output:
	// replied after 2 emails: Let's talk.
	// [grace@example.com] Keel Enterprise for Cobol Systems Inc
	// [grace@example.com] Re: Keel Enterprise for Cobol Systems Inc
}
