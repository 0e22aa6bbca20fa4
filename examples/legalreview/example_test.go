package legalreview_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/examples/legalreview"
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/llm/offline"
	"github.com/keelhq/keel/tools/email"
	"github.com/keelhq/keel/tools/email/sendgridfake"
)

// The agent drafts a memo; a lawyer finds it in the legal group's queue
// and approves it, as on the reviewer page; the memo is emailed.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "legalreview-example-")
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
	x, err := legalreview.New(env, nil)
	if err != nil {
		panic(err)
	}
	for _, q := range env.TaskQueues() {
		e.NewWorker(&durable.WorkerOptions{TaskQueue: q})
	}
	_ = e.Start(ctx)
	defer e.Stop(ctx)

	h, _ := x.Start(ctx, legalreview.DemoRequest(), &durable.StartOptions{ID: "review-msa"})

	// lena's queue.
	var a hitl.Approval
	_ = setup.Poll(ctx, func(ctx context.Context) (bool, error) {
		list, _, err := env.Approvals.List(ctx, &hitl.ListParams{Reviewer: "lena", Status: hitl.StatusPending})
		if len(list) > 0 {
			a = list[0]
		}
		return len(list) > 0, err
	})
	fmt.Println(a.Title, "|", a.Group, a.Deadline.Sub(a.CreatedAt))
	_, err = env.Approvals.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "lena", Approve: true, Comment: "Send it.", ArgsHash: a.ArgsHash})
	if err != nil {
		panic(err)
	}

	out, err := h.Result(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(out.Status, out.Decisions[0].DecidedBy)
	for _, m := range sendgrid.Sent() {
		fmt.Println(m.To, m.Subject)
	}
	// Output:
	// Send legal memo: Master services agreement with Difference Cloud | legal 24h0m0s
	// sent [lena]
	// [ada@example.com] Legal memo: Master services agreement with Difference Cloud
}
