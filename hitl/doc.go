// Package hitl puts humans in the loop of durable workflows: a workflow
// asks a group of reviewers to approve an exact action, waits durably for
// their decision (minutes or days, holding no goroutine), and gets back
// who decided, when and why; on a timeout it may escalate.
//
// # Lifecycle
//
//  1. Workflow code calls Approve with a Request: a title, details, the
//     action and its arguments, a reviewer group, how many of the group
//     must approve (N of its M members), a timeout and the requester.
//  2. Approve records a pending Approval through an activity. The row is
//     keyed by the activity's idempotency key (run ID + sequence), so a
//     retried attempt finds the row of the attempt before it: one Approve,
//     one row. The approval is bound to Hash(action, args), the SHA-256 of
//     their canonical JSON.
//  3. Approve waits on the approval's own signal (SignalName) with a
//     durable timer for the deadline.
//  4. Reviewers find the approval with Service.List (a reviewer's queue,
//     a group's, a run's, by status, paginated) and Service.Get, and decide
//     with Service.Decide, presenting the hash they were shown.
//  5. Decide writes the vote in one transaction under the approval's row
//     lock, then signals the run with the vote's ID as the signal's
//     request ID. The signal (a VoteEvent) lands in the run's history, so
//     the run's timeline shows each reviewer, time and comment.
//  6. The approval closes, once: rejected by the first rejection,
//     approved by the N-th approval, timed out when the deadline passes
//     first (the workflow's timer fires and an activity marks it), or
//     canceled when the run closed without waiting for it. Approve returns
//     the Decision.
//
// A timeout is an outcome, not an error, so the workflow can escalate:
//
//	d, err := hitl.Approve(ctx, hitl.Request{Title: "Refund A-17", Action: "refund",
//		Args: args, Group: "legal", Timeout: 24 * time.Hour, Requester: "support-agent"})
//	if err == nil && d.TimedOut() {
//		d, err = hitl.Approve(ctx, hitl.Request{Title: "Escalated: refund A-17", Action: "refund",
//			Args: args, Group: "partners", Timeout: 4 * time.Hour, Requester: "support-agent"})
//	}
//	if err != nil || !d.Approved() {
//		return err // or tell the customer
//	}
//	err = refund.Run(ctx, d.Args) // the approved arguments (the reviewer's, if d.Edited)
//
// # Decisions
//
// Decisions are final and idempotent. Each refusal has its own error:
// ErrNotFound, ErrNotInGroup (the reviewer is not in the approval's
// group), ErrSelfApproval (the requester), ErrAlreadyVoted (a reviewer
// votes once), ErrExpired (at or after the deadline), ErrClosed (already
// approved, rejected or canceled), ErrArgsMismatch (the decision names
// other arguments than the approval's hash), ErrEditNotAllowed, and the
// review-link errors below. One rejection closes the approval as rejected,
// whatever N is: an approval needs N approvals and no veto.
//
// A reviewer may approve edited arguments (DecideInput.EditedArgs) when
// the approval needs a single approver; their hash is recorded with the
// vote and the Decision carries them (Decision.Edited). With N > 1, every
// approver must approve the same arguments, so edits are refused.
//
// Groups are configured in Go, in Config.Groups:
//
//	hitl.Groups{"legal": {"lena", "lars"}, "finance": {"fred", "fiona", "farid"}}
//
// # Delivery
//
// The vote is committed before the workflow is signalled. If the signal
// fails (the process dies in between, the engine's store is unreachable),
// the vote stays in its table with delivered_at unset, an outbox: the next
// successful Decide on the same approval delivers it, and Service.Run (a
// loop to run in each server process; Redeliver is one pass) delivers every
// undelivered vote. A vote delivered twice is applied once: the engine
// deduplicates signals by request ID, and the workflow ignores a vote
// older than what it knows. Decide returns success once the vote is
// committed; Vote.Delivered tells whether it has reached the run.
//
// # Review links
//
// Service.SignLink makes a URL-safe token for one approval and one
// reviewer, valid for a TTL: HMAC-SHA256 over the approval ID, the
// reviewer, the expiry and a random nonce, keyed by Config.LinkSecret or
// KEEL_LINK_SECRET (at least 32 bytes). VerifyLink checks it without the
// database; Decide with DecideInput.LinkToken records its nonce with the
// vote, so a token decides once. Forged, expired, replayed, truncated and
// misdirected tokens fail with ErrLinkForged, ErrLinkExpired, ErrLinkUsed,
// ErrLinkMalformed and ErrLinkMismatch, which all match ErrInvalidLink.
//
// # Policies
//
// A Policy decides which actions need approval, from rules written in CEL
// over the action and its arguments:
//
//	policy, err := hitl.NewPolicy([]hitl.Rule{
//		{Name: "big-refund", When: `action == "refund" && args.amount > 500`, Group: "finance", Required: 2},
//		{Name: "email", When: `action == "send_email"`, Group: "legal"},
//	}, nil)
//	m, needed, err := policy.Match("refund", args)
//
// Rules are compiled once (a *CompileError names the rule), evaluated in
// order with a cost limit, and the first that holds wins; an evaluation
// error is an *EvalError, never a panic. Package hitltools plugs a Policy
// into agent tools (tools.Approver).
//
// # Storage
//
// Approvals live in the application database (package appdb: SQLite or
// PostgreSQL, usually the engine's own) in two tables, hitl_approvals and
// hitl_votes, which New migrates. Times are stored as Unix microseconds.
//
// With Config.Codec set (give it the engine's durable.Config.Codec), what
// may hold secrets is stored encoded, as "keel-codec:" and the codec's
// output in base64: an approval's title, details and arguments, and each
// vote's comment and edited arguments. What approvals are found, listed
// and bound by stays readable: IDs, the action, group, requester,
// reviewers, statuses, times and the argument hashes, which are computed
// on, and checked against, the plain canonical arguments. Values written
// before the codec was set are read as they are, so it can be turned on
// over existing tables. An encoded value under a key the codec no longer
// holds fails to load with the codec's error. A Service without a codec
// fails to load an approval whose arguments are encoded, rather than
// show ciphertext as arguments; it shows encoded text columns as stored.
package hitl
