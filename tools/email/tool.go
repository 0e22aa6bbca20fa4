package email

import (
	"context"

	"github.com/keelhq/keel/tools"
)

// SendToolName is the name of the agent tool.
const SendToolName = "send_email"

// SendInput is what a model gives the send tool.
type SendInput struct {
	To      []string `json:"to" jsonschema:"description=Recipients: email addresses or 'Name <address>',minItems=1"`
	Cc      []string `json:"cc,omitempty" jsonschema:"description=Copy recipients"`
	Subject string   `json:"subject" jsonschema:"description=Subject line,minLength=1"`
	Text    string   `json:"text" jsonschema:"description=Plain-text body,minLength=1"`
	HTML    string   `json:"html,omitempty" jsonschema:"description=Optional HTML body; sent alongside the text"`
}

// SendTool returns an agent tool that sends an email through s. Each call
// runs as a durable activity and goes through the outbox under the call's
// idempotency key (followed by "/email"), so a call sends at most once
// however often it is retried or resumed; the sender is Config.From. The
// model reads the outbox Message, or the error: an ErrOutcomeUnknown error
// means an earlier attempt may have sent it and a person has to decide
// (Resolve). opts may be nil.
func SendTool(s *Service, opts *tools.Options) *tools.Tool {
	return tools.MustNew(SendToolName, "Send an email. Each call sends at most one message.",
		func(ctx context.Context, in SendInput) (*Message, error) {
			return s.Send(ctx, SendParams{To: in.To, Cc: in.Cc, Subject: in.Subject, Text: in.Text, HTML: in.HTML})
		}, opts)
}
