// Package catalog registers Keel's four example agents on one engine, for
// `keel serve` (which exposes them through its HTTP API) and `keel demo
// NAME` (which plays one of them):
//
//   - support: answers a support ticket, emails the reply, solves the
//     ticket and charges $0.99 for the resolution (package
//     examples/support);
//   - salesfollowup: five follow-up emails over two weeks, stopped by a
//     reply, escalated to a manager otherwise (examples/salesfollowup);
//   - legalreview: a memo drafted, approved by a lawyer within 24 hours or
//     escalated to a partner, then sent (examples/legalreview);
//   - dealdesk: a sales agent calls a legal and a billing agent in
//     parallel, as sub-agents on their own task queues, then closes the
//     deal (examples/dealdesk).
//
// # Serving them
//
//	cat, err := catalog.Register(ctx, engine, db, &catalog.Config{Approvals: approvals, Logger: logger})
//	for _, e := range cat.Entries {
//		// expose e.Name, starting workflow e.Workflow on e.TaskQueue
//	}
//	for _, q := range cat.TaskQueues() {
//		engine.NewWorker(&durable.WorkerOptions{TaskQueue: q})
//	}
//	// cat.Approvals() is the approval service the runs ask: give it to
//	// the server's reviewer pages, and run its redelivery loop.
//
// Register migrates the examples' tables in db and loads the demo data
// (Config.NoDemoData skips it). The model is OpenAI's when OPENAI_API_KEY
// is set, else the offline model; email goes through SendGrid with
// SENDGRID_API_KEY, else to the local outbox; charges go to Stripe with
// STRIPE_SECRET_KEY, else they are recorded in the local ledger only. Without Config.Approvals it makes
// an approval service with setup.ReviewerGroups; with one that lacks the
// groups "legal" and "partners", legalreview is skipped (Catalog.Skipped).
//
// # Playing a demo
//
// RunDemo plays one example standalone, on its own engine and database:
//
//	err := catalog.RunDemo(ctx, "support", &setup.RunOptions{Out: os.Stdout})
//
// Catalog.Demo plays one on an engine already registered and started.
package catalog
