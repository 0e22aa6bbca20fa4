package crm

import (
	"context"
	"errors"
	"strings"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/tools"
)

// Tool names.
const (
	LookupToolName     = "crm_lookup_customer"
	AddNoteToolName    = "crm_add_note"
	UpdateDealToolName = "crm_update_deal"
)

// LookupInput is the input of the crm_lookup_customer tool: exactly one of
// Email and Key.
type LookupInput struct {
	Email string `json:"email,omitempty" jsonschema_description:"The customer's email address, or a contact's (for example a ticket's requester)."`
	Key   string `json:"key,omitempty" jsonschema_description:"The customer's key, for example cus_123."`
}

// LookupOutput is the output of the crm_lookup_customer tool.
type LookupOutput struct {
	Customer Customer  `json:"customer"`
	Contacts []Contact `json:"contacts"`
	// Notes are the most recent notes, oldest first (at most 10).
	Notes []Note `json:"notes"`
	Deals []Deal `json:"deals"`
}

// maxToolNotes is how many notes the lookup tool returns.
const maxToolNotes = 10

// LookupTool returns the crm_lookup_customer tool: a customer found by
// email or key, with contacts, recent notes and deals. opts may be nil.
func LookupTool(c CRM, opts *tools.Options) *tools.Tool {
	return tools.MustNew(LookupToolName,
		"Look a customer up in the CRM by email or by key. Returns the customer (name, company, plan, metadata) with contacts, recent notes and deals.",
		func(ctx context.Context, in LookupInput) (LookupOutput, error) {
			var (
				cu  Customer
				err error
			)
			email, key := strings.TrimSpace(in.Email), strings.TrimSpace(in.Key)
			switch {
			case (email == "") == (key == ""):
				return LookupOutput{}, permanent(invalid("give exactly one of email and key"))
			case email != "":
				cu, err = c.CustomerByEmail(ctx, email)
			default:
				cu, err = c.Customer(ctx, key)
			}
			if err != nil {
				return LookupOutput{}, permanent(err)
			}
			out := LookupOutput{Customer: cu}
			if out.Contacts, err = c.Contacts(ctx, cu.Key); err != nil {
				return LookupOutput{}, err
			}
			if out.Notes, err = c.Notes(ctx, cu.Key); err != nil {
				return LookupOutput{}, err
			}
			if len(out.Notes) > maxToolNotes {
				out.Notes = out.Notes[len(out.Notes)-maxToolNotes:]
			}
			if out.Deals, err = c.Deals(ctx, cu.Key); err != nil {
				return LookupOutput{}, err
			}
			return out, nil
		}, opts)
}

// AddNoteInput is the input of the crm_add_note tool.
type AddNoteInput struct {
	CustomerKey string `json:"customer_key" jsonschema:"minLength=1" jsonschema_description:"The customer's key."`
	Body        string `json:"body" jsonschema:"minLength=1,maxLength=65536" jsonschema_description:"The note's text."`
}

// AddNoteTool returns the crm_add_note tool, which adds a note to a
// customer with author "agent". The note is added once per tool call: a
// retried call passes the call's idempotency key and adds nothing more.
// opts may be nil.
func AddNoteTool(c CRM, opts *tools.Options) *tools.Tool {
	return tools.MustNew(AddNoteToolName,
		"Add a note to a customer's record in the CRM, for example a summary of a conversation.",
		func(ctx context.Context, in AddNoteInput) (Note, error) {
			n, err := c.AddNote(ctx, Note{
				CustomerKey: in.CustomerKey, Author: "agent", Body: in.Body,
				IdempotencyKey: tools.IdempotencyKey(ctx),
			})
			if err != nil {
				return Note{}, permanent(err)
			}
			return n, nil
		}, opts)
}

// UpdateDealInput is the input of the crm_update_deal tool.
type UpdateDealInput struct {
	DealKey string `json:"deal_key" jsonschema:"minLength=1" jsonschema_description:"The deal's key."`
	Stage   Stage  `json:"stage,omitempty" jsonschema:"enum=lead,enum=qualified,enum=proposal,enum=negotiation,enum=won,enum=lost" jsonschema_description:"The deal's new stage. Optional."`
	// Amount is a pointer so that 0 can be set.
	Amount *int64 `json:"amount,omitempty" jsonschema:"minimum=0" jsonschema_description:"The deal's new amount in the currency's minor unit (cents). Optional."`
}

// UpdateDealTool returns the crm_update_deal tool, which moves a deal to
// another stage or changes its amount. opts may be nil.
func UpdateDealTool(c CRM, opts *tools.Options) *tools.Tool {
	return tools.MustNew(UpdateDealToolName,
		"Change a deal's stage (lead, qualified, proposal, negotiation, won, lost) or amount in the CRM.",
		func(ctx context.Context, in UpdateDealInput) (Deal, error) {
			if in.Stage == "" && in.Amount == nil {
				return Deal{}, permanent(invalid("give a stage or an amount to change"))
			}
			d, err := c.Deal(ctx, in.DealKey)
			if err != nil {
				return Deal{}, permanent(err)
			}
			if in.Stage != "" {
				d.Stage = in.Stage
			}
			if in.Amount != nil {
				d.Amount = *in.Amount
			}
			d, err = c.UpsertDeal(ctx, d)
			if err != nil {
				return Deal{}, permanent(err)
			}
			return d, nil
		}, opts)
}

// permanent marks errors that a retry cannot fix as non-retryable, so the
// model hears about them at once.
func permanent(err error) error {
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) {
		return durable.NonRetryable(err)
	}
	return err
}
