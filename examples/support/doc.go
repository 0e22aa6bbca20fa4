// Package support is Keel's support agent example: a customer writes about
// a ticket, an agent answers them, and the ticket is solved and billed,
// every step durable.
//
// # What it shows
//
// A run of the workflow "support" takes a Request such as
//
//	{"ticket_id": "T-1", "message": "I was charged twice"}
//
// (with an optional "customer_email", which opens the ticket when it does
// not exist) and:
//
//  1. prepares the ticket (an activity): finds it, or opens it, and adds the
//     message to it unless the ticket already holds it;
//  2. runs the agent "support_agent" as a child workflow. Its model reads
//     the ticket (ticket_get), looks the customer up in the CRM
//     (crm_lookup_customer) and searches the knowledge base (kb_search) in
//     one turn, the three calls in parallel; then emails the reply
//     (send_reply: to the ticket's requester, never to an address the
//     model picks, through the email outbox, and as a public comment on
//     the ticket); then marks the ticket solved (resolve_ticket) with an
//     internal note;
//  3. charges the resolution fee, $0.99, through package billing when this
//     run solved the ticket: a ledger row keyed by the activity's
//     idempotency key, the same key sent to Stripe, so a retry or a crash
//     never bills twice. The charge is decided by the workflow, not the
//     model.
//
// Every tool call and every effect runs as an activity recorded once: a
// worker killed mid-run resumes without a second email, comment or charge.
// The Outcome reports the ticket's status before and after, the agent's
// summary and tool calls, and the fee (charged, failed or skipped, with
// the reason).
//
// # Running it
//
// Standalone, on a new SQLite file and the offline model:
//
//	go run ./examples/support/cmd/support
//
// or through Keel's CLI, `keel demo support` (the default demo), and in
// `keel serve` as the agent "support":
//
//	curl -X POST localhost:8080/v1/agents/support/runs \
//	  -d '{"input": {"ticket_id": "T-1", "message": "I was charged twice"}}'
//
// The demo data (package setup loads it) holds the ticket T-1 of Ada
// Lovelace (ada@example.com, customer cus_ada), twelve help-center articles
// and the CRM's customers.
//
// What is real depends on the environment:
//
//   - OPENAI_API_KEY (and OPENAI_BASE_URL, OPENAI_MODEL) makes a language
//     model answer instead of the deterministic offline model, whose
//     texts start with "[offline model]";
//   - SENDGRID_API_KEY sends the reply through SendGrid; without it the
//     email stays in the local outbox with status "local", and the demo
//     prints it;
//   - STRIPE_SECRET_KEY (and STRIPE_API_BASE, for stripe-mock) charges the
//     fee through Stripe, where the CRM's customer key must be a Stripe
//     customer with a saved payment method. Without a key, billing runs in
//     local mode: the fee is recorded in the ledger, once, with status
//     "local", and nothing is charged. The tests also charge a fake Stripe
//     (package billing/stripefake) and check the ledger row and the
//     charge.
//
// # Against a real model
//
// Instructions tell the model the same flow the offline model follows,
// and leave it the judgement the offline model lacks: to answer from the
// articles and the customer's record only, and not to resolve a ticket its
// reply does not settle (then no fee is charged).
package support
