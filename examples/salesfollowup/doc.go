// Package salesfollowup is Keel's sales follow-up example: five emails to
// a lead over two weeks, stopped by their reply, escalated when none comes.
//
// # What it shows
//
// A run of the workflow "salesfollowup" takes a Request such as
//
//	{"lead_email": "grace@example.com", "product": "Keel Enterprise",
//	 "context": "Asked about single sign-on and audit logs."}
//
// and, five times: runs the agent "sales_writer" as a child workflow to
// draft the next email (it looks the lead up in the CRM first), sends it
// through the email outbox (once, whatever happens to the worker), and
// waits for the signal "replied" for 3, 3, 4 and 4 days: durable timers
// that hold no goroutine and survive restarts. A reply stops the sequence
// at once (even one that arrives while an email is being drafted) and is
// noted on the lead's CRM customer. When no reply comes within 24 hours of
// the fifth email, the run emails the sales manager an escalation with the
// dates of every email, and notes it in the CRM.
//
// The schedule can be set per run ("waits": ["72h", "72h", "96h", "96h"],
// "reply_window": "24h"; one email more than waits), and the manager
// ("manager_email", or Config.ManagerEmail).
//
// # Signalling a reply
//
// From Go, Replied.Send(ctx, engine, workflowID, Reply{From: …, Message: …});
// over Keel's HTTP API,
//
//	curl -X POST localhost:8080/v1/runs/RUN_ID/signals/replied \
//	  -d '{"payload": {"from": "grace@example.com", "message": "Thursday works."}}'
//
// In production an inbound-email webhook would send it.
//
// # Running it
//
//	go run ./examples/salesfollowup/cmd/salesfollowup
//
// or `keel demo salesfollowup`. The demo cannot wait two weeks: it runs two
// leads with seconds standing for days. Grace Hopper replies after the third
// email; Alan Turing never does and is escalated. The emails stay in the
// local outbox unless SENDGRID_API_KEY is set; OPENAI_API_KEY makes a
// language model write them. The tests run the real two-week schedule with
// time skipping (package durabletest) and check each email's day.
package salesfollowup
