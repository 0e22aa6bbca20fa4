package ticket

import (
	"context"
	"errors"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/tools"
)

// Tool names.
const (
	GetToolName    = "ticket_get"
	UpdateToolName = "ticket_update"
)

// GetInput is the input of the ticket_get tool.
type GetInput struct {
	TicketID string `json:"ticket_id" jsonschema:"minLength=1" jsonschema_description:"The ticket's ID, for example T-1."`
}

// GetOutput is the output of the ticket_get tool.
type GetOutput struct {
	Ticket   Ticket    `json:"ticket"`
	Comments []Comment `json:"comments"`
}

// GetTool returns the ticket_get tool: a ticket's status, requester,
// assignee and comments. opts may be nil.
func GetTool(d Desk, opts *tools.Options) *tools.Tool {
	return tools.MustNew(GetToolName,
		"Get a support ticket: its subject, status (open, pending, solved, closed), requester, customer key, assignee and all comments, oldest first.",
		func(ctx context.Context, in GetInput) (GetOutput, error) {
			t, err := d.Get(ctx, in.TicketID)
			if err != nil {
				return GetOutput{}, permanent(err)
			}
			cs, err := d.Comments(ctx, in.TicketID)
			if err != nil {
				return GetOutput{}, permanent(err)
			}
			return GetOutput{Ticket: t, Comments: cs}, nil
		}, opts)
}

// UpdateInput is the input of the ticket_update tool.
type UpdateInput struct {
	TicketID string `json:"ticket_id" jsonschema:"minLength=1" jsonschema_description:"The ticket's ID, for example T-1."`
	Status   Status `json:"status,omitempty" jsonschema:"enum=open,enum=pending,enum=solved,enum=closed" jsonschema_description:"The new status. Optional. Allowed moves: open to pending or solved; pending to open or solved; solved to open or closed."`
	// Assignee is a pointer so that "" can unassign.
	Assignee *string `json:"assignee,omitempty" jsonschema_description:"The agent to assign (a name or email); an empty string unassigns. Optional."`
	Comment  string  `json:"comment,omitempty" jsonschema:"maxLength=65536" jsonschema_description:"A comment to add. Optional."`
	Public   bool    `json:"public,omitempty" jsonschema_description:"Whether the requester sees the comment (a reply); default false, an internal note."`
}

// UpdateTool returns the ticket_update tool, which changes a ticket's
// status or assignee and adds a comment (authored by "agent"). The update
// carries the tool call's idempotency key, so a retried call does not add
// its comment twice. opts may be nil.
func UpdateTool(d Desk, opts *tools.Options) *tools.Tool {
	return tools.MustNew(UpdateToolName,
		"Update a support ticket: change its status or assignee, and add a comment, either public (a reply the requester sees) or internal.",
		func(ctx context.Context, in UpdateInput) (Ticket, error) {
			p := UpdateParams{Status: in.Status, Assignee: in.Assignee, IdempotencyKey: tools.IdempotencyKey(ctx)}
			if in.Comment != "" {
				p.Comment = &NewComment{Author: "agent", Body: in.Comment, Public: in.Public}
			}
			t, err := d.Update(ctx, in.TicketID, p)
			if err != nil {
				return Ticket{}, permanent(err)
			}
			return t, nil
		}, opts)
}

// permanent marks errors that a retry cannot fix as non-retryable, so the
// model hears about them at once.
func permanent(err error) error {
	for _, target := range []error{ErrNotFound, ErrInvalid, ErrInvalidTransition, ErrKeyReused, ErrExists} {
		if errors.Is(err, target) {
			return durable.NonRetryable(err)
		}
	}
	return err
}
