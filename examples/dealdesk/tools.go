package dealdesk

import (
	"context"
	"fmt"
	"strconv"

	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/tools"
	"github.com/keelhq/keel/tools/crm"
)

// QuoteInput is the input of the get_deal_quote tool.
type QuoteInput struct {
	DealKey string `json:"deal_key" jsonschema:"minLength=1,pattern=^deal_[A-Za-z0-9_-]+$" jsonschema_description:"The deal's key, for example deal_ada_enterprise."`
}

// Quote is what the billing specialist checks: a deal's price and how it
// will be billed.
type Quote struct {
	DealKey     string `json:"deal_key"`
	CustomerKey string `json:"customer_key"`
	Plan        string `json:"plan,omitempty"`
	Seats       int    `json:"seats,omitempty"`
	// AmountCents is the deal's amount per year, in cents.
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	// BillingCycle is "monthly" or "annual", from the customer's record.
	BillingCycle string `json:"billing_cycle"`
	// FirstInvoiceCents is the first invoice: the whole year for annual
	// billing, a twelfth of it for monthly.
	FirstInvoiceCents int64 `json:"first_invoice_cents"`
	// PerSeatCents is the yearly price per seat, when seats are known.
	PerSeatCents int64 `json:"per_seat_cents,omitempty"`
}

// QuoteTool returns the get_deal_quote tool: a deal's price, seats,
// billing cycle and first invoice, from the CRM. It changes nothing.
func QuoteTool(env *setup.Env) *tools.Tool {
	return tools.MustNew(QuoteToolName,
		"Get a deal's price and billing details: amount, currency, seats, billing cycle and first invoice.",
		func(ctx context.Context, in QuoteInput) (Quote, error) {
			d, err := env.CRM.Deal(ctx, in.DealKey)
			if err != nil {
				return Quote{}, err
			}
			c, err := env.CRM.Customer(ctx, d.CustomerKey)
			if err != nil {
				return Quote{}, err
			}
			q := Quote{DealKey: d.Key, CustomerKey: c.Key, Plan: c.Plan, AmountCents: d.Amount, Currency: d.Currency,
				BillingCycle: c.Metadata["billing_cycle"]}
			if q.BillingCycle == "" {
				q.BillingCycle = "annual"
			}
			q.FirstInvoiceCents = d.Amount
			if q.BillingCycle == "monthly" {
				q.FirstInvoiceCents = d.Amount / 12
			}
			if n, err := strconv.Atoi(c.Metadata["seats"]); err == nil && n > 0 {
				q.Seats, q.PerSeatCents = n, d.Amount/int64(n)
			}
			return q, nil
		}, nil)
}

// CloseInput is the input of the close_deal tool.
type CloseInput struct {
	DealKey string `json:"deal_key" jsonschema:"minLength=1,pattern=^deal_[A-Za-z0-9_-]+$" jsonschema_description:"The deal's key, for example deal_ada_enterprise."`
	Summary string `json:"summary" jsonschema:"minLength=1,maxLength=5000" jsonschema_description:"What legal and billing found, noted on the customer in the CRM."`
}

// CloseTool returns the close_deal tool: it moves a deal to the stage won
// and notes the summary on its customer, once per call (the note carries
// the call's idempotency key; moving to won again changes nothing).
func CloseTool(env *setup.Env) *tools.Tool {
	return tools.MustNew(CloseToolName,
		"Close a deal as won in the CRM once legal and billing have cleared it, with a summary of their findings.",
		func(ctx context.Context, in CloseInput) (crm.Deal, error) {
			d, err := env.CRM.Deal(ctx, in.DealKey)
			if err != nil {
				return crm.Deal{}, err
			}
			if d.Stage == crm.StageLost {
				return crm.Deal{}, fmt.Errorf("deal %s is lost; it cannot be closed as won", d.Key)
			}
			d.Stage = crm.StageWon
			if d, err = env.CRM.UpsertDeal(ctx, d); err != nil {
				return crm.Deal{}, err
			}
			key := tools.IdempotencyKey(ctx)
			if key != "" {
				key += "/note"
			}
			_, err = env.CRM.AddNote(ctx, crm.Note{CustomerKey: d.CustomerKey, Author: AgentName, IdempotencyKey: key,
				Body: "Deal " + d.Key + " closed as won. " + in.Summary})
			return d, err
		}, nil)
}
