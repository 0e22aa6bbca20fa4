// Package legalreview is Keel's legal review example: an agent drafts a
// memo, a lawyer approves it on the reviewer page, and it is sent; when no
// lawyer decides within a day, a partner is asked.
//
// # What it shows
//
// A run of the workflow "legalreview" takes a Request such as
//
//	{"title": "Supply agreement with Acme", "contract": "…",
//	 "client_email": "ada@example.com", "requester": "ada@example.com"}
//
// and:
//
//  1. runs the agent "legal_drafter" as a child workflow to draft the memo
//     (risky clauses, their severity, a recommendation);
//  2. asks the reviewer group "legal" to approve sending it (hitl.Approve,
//     action "send_memo", the exact email as arguments) and waits durably,
//     up to 24 hours;
//  3. on a timeout, asks the group "partners" the same, for up to 24 more
//     hours;
//  4. emails the approved memo, as drafted or as the reviewer edited it,
//     through the outbox. A rejection, or no decision from either group,
//     sends nothing.
//
// Every vote lands in the run's history with the reviewer, time and
// comment; the Outcome lists the decisions.
//
// # Reviewing
//
// In `keel serve`, pending approvals are on the reviewer pages (and in the
// API, /v1/approvals). The reviewer groups come from --reviewers,
// KEEL_REVIEWERS or KEEL_GROUPS, which must define "legal" and "partners" (the group
// names are Config fields); package setup's defaults, used when no
// approval service is given, put "local" (the loopback reviewer of a
// server without API keys) in both. From Go, hitl.Service.Decide decides,
// as the demo and the tests do.
//
// # Running it
//
//	go run ./examples/legalreview/cmd/legalreview
//
// or `keel demo legalreview`: the demo's lawyer approves at once. The
// tests cover approval, escalation to a partner who approves an edited
// memo, rejection, and both groups timing out, with 24-hour deadlines
// skipped (package durabletest).
package legalreview
