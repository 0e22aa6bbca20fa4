// Package email sends an agent's email through SendGrid's v3 mail send API
// (github.com/sendgrid/sendgrid-go) without sending any message twice
// unknowingly, through an outbox in Keel's application database (package
// appdb, SQLite or PostgreSQL).
//
// # Getting started
//
//	svc, err := email.New(ctx, db, &email.Config{From: "Support <support@example.com>"}) // SENDGRID_API_KEY
//	send := durable.NewActivity("send-reply", func(ctx context.Context, to string) (*email.Message, error) {
//		return svc.Send(ctx, email.SendParams{To: []string{to}, Subject: "Ticket resolved", Text: "…"})
//	}, nil)
//
// SendTool wraps Send as an agent tool (package tools).
//
// # The outbox
//
// SendGrid accepts no idempotency key: a request sent twice is two
// messages. So every send goes through a row of the outbox (table
// email_outbox), keyed by the activity's idempotency key followed by
// "/email" (or SendParams.Key):
//
//  1. the row is written, pending, before anything is sent;
//  2. it is marked sending, and the request goes out, with the key in
//     custom_args (CustomArgKey, "keel_idempotency_key"), so that the
//     message can be traced in SendGrid's activity feed and event
//     webhooks;
//  3. the answer is recorded: sent (202, with SendGrid's X-Message-Id),
//     failed (a 4xx: SendGrid refused it, nothing went out), back to
//     pending (429, a connection that was never made, a refused API key:
//     known not sent), or unknown.
//
// A retry of the activity finds the row: sent, it returns it without
// sending; failed, it returns the same error; pending, it sends.
//
// # When nobody knows whether it was sent
//
// A send ends in StatusUnknown when the request may have reached SendGrid
// but no answer came back: a timeout, a reset or closed connection, a 5xx
// (SendGrid may have queued the message before failing), or a process that
// died mid-send (the next attempt finds the row still sending). The
// attempt that saw the failure returns a retryable error; the retry that
// finds the row unknown does not resend blindly but follows
// Config.OnUnknown:
//
//   - PolicyAsk (the default) sends nothing and returns an
//     ErrOutcomeUnknown error, which is not retried. Workflow code sees it
//     as a *durable.ApplicationError of Type
//     CodeOutcomeUnknown.ErrorType() ("email.outcome_unknown"), asks a
//     person (package hitl), and calls Resolve with the decision, from an
//     activity: ResolveResend sends again, ResolveMarkSent records that
//     it arrived, ResolveCancel gives it up.
//   - PolicyResend sends again. The recipient may get the message twice;
//     both copies carry the same key in custom_args. Choose it for
//     messages where a duplicate is harmless and a missing one is not
//     (a password reset link).
//   - Looking the message up is the third way, and is left to the person
//     deciding under PolicyAsk: SendGrid's Email Activity API can find
//     messages by custom_args (a query on unique_args['keel_idempotency_key']),
//     but it needs the paid extended activity history add-on and shows a
//     message only minutes after it was accepted, so it cannot settle a
//     retry that comes seconds later.
//
// # Local outbox
//
// Without an API key (Config.APIKey, SENDGRID_API_KEY) nothing is sent:
// messages are recorded with StatusLocal, logged, and listed by List, which
// is how the offline demo shows the email an agent would have sent.
//
// # Configuration
//
// The API host comes from Config.BaseURL or SENDGRID_BASE_URL (default
// https://api.sendgrid.com; a sendgridfake.Server in tests). Config.Sandbox
// sets mail_settings.sandbox_mode: SendGrid validates each message and
// delivers none.
//
// # Errors
//
// Errors are *Error values with a Code, matched with errors.Is against a
// sentinel: final ones (ErrInvalidMessage, ErrIdempotencyMismatch,
// ErrOutcomeUnknown, ErrRejected, ErrAuthentication, ErrCanceled,
// ErrInvalidState) implement NonRetryable() true, which the engine honours;
// transient ones (ErrRateLimited, ErrUnavailable, ErrConnection, ErrBusy)
// are retried by the activity's policy.
//
// # Testing
//
// Package tools/email/sendgridfake is a SendGrid test server that validates
// the request, counts messages by custom_args key, and injects a 500, a
// timeout or an answer lost after the message was accepted.
package email
