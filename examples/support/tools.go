package support

import (
	"context"
	"fmt"

	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/tools"
	"github.com/keelhq/keel/tools/email"
	"github.com/keelhq/keel/tools/ticket"
)

// ReplyInput is the input of the send_reply tool.
type ReplyInput struct {
	TicketID string `json:"ticket_id" jsonschema:"minLength=1" jsonschema_description:"The ticket's ID, for example T-1."`
	Subject  string `json:"subject" jsonschema:"minLength=1,maxLength=200" jsonschema_description:"The email's subject line."`
	Body     string `json:"body" jsonschema:"minLength=1,maxLength=20000" jsonschema_description:"The reply to the customer, in plain text: a greeting, the answer, and a sign-off from the support team."`
}

// ReplyOutput is the output of the send_reply tool.
type ReplyOutput struct {
	// To is the address the reply went to: the ticket's requester.
	To string `json:"to"`
	// EmailStatus is the outbox message's status: "sent", or "local" when
	// no SendGrid key is configured.
	EmailStatus email.Status `json:"email_status"`
	// EmailKey is the outbox message's key.
	EmailKey string `json:"email_key"`
}

// ReplyTool returns the send_reply tool: it emails a reply to the
// requester of a ticket (never to an address the model chooses) through
// the outbox, and adds it to the ticket as a public comment. A call sends
// at most once and comments at most once, however often it is retried:
// the email's outbox key and the ticket update's idempotency key both
// derive from the call's.
func ReplyTool(env *setup.Env) *tools.Tool {
	return tools.MustNew(ReplyToolName,
		"Send your reply to the customer by email (to the ticket's requester) and add it to the ticket as a public comment.",
		func(ctx context.Context, in ReplyInput) (ReplyOutput, error) {
			t, err := env.Tickets.Get(ctx, in.TicketID)
			if err != nil {
				return ReplyOutput{}, err
			}
			if t.RequesterEmail == "" {
				return ReplyOutput{}, fmt.Errorf("ticket %s has no requester to reply to", t.ID)
			}
			m, err := env.Email.Send(ctx, email.SendParams{To: []string{t.RequesterEmail}, Subject: in.Subject, Text: in.Body})
			if err != nil {
				return ReplyOutput{}, err
			}
			_, err = env.Tickets.Update(ctx, t.ID, ticket.UpdateParams{
				Comment:        &ticket.NewComment{Author: "support agent", Body: in.Body, Public: true},
				IdempotencyKey: keyFor(ctx, "reply"),
			})
			if err != nil {
				return ReplyOutput{}, err
			}
			return ReplyOutput{To: t.RequesterEmail, EmailStatus: m.Status, EmailKey: m.Key}, nil
		}, nil)
}

// ResolveInput is the input of the resolve_ticket tool.
type ResolveInput struct {
	TicketID string `json:"ticket_id" jsonschema:"minLength=1" jsonschema_description:"The ticket's ID, for example T-1."`
	Note     string `json:"note" jsonschema:"minLength=1,maxLength=5000" jsonschema_description:"An internal note for the support team: what the customer needed and what was done."`
}

// ResolveTool returns the resolve_ticket tool: it marks a ticket solved,
// with an internal note, once per call.
func ResolveTool(env *setup.Env) *tools.Tool {
	return tools.MustNew(ResolveToolName,
		"Mark a ticket solved once your reply has answered the customer, with an internal note of what was done.",
		func(ctx context.Context, in ResolveInput) (ticket.Ticket, error) {
			return env.Tickets.Update(ctx, in.TicketID, ticket.UpdateParams{
				Status:         ticket.StatusSolved,
				Comment:        &ticket.NewComment{Author: "support agent", Body: in.Note},
				IdempotencyKey: keyFor(ctx, "resolve"),
			})
		}, nil)
}

// keyFor derives an idempotency key for one effect of the tool call
// running with ctx; outside the engine it is empty (no deduplication).
func keyFor(ctx context.Context, effect string) string {
	if k := tools.IdempotencyKey(ctx); k != "" {
		return k + "/" + effect
	}
	return ""
}
