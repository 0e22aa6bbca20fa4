package billingtools

import (
	"context"

	"github.com/keelhq/keel/billing"
	"github.com/keelhq/keel/tools"
)

// Names of the agent tools.
const (
	ChargeToolName = "billing_charge"
	RefundToolName = "billing_refund"
)

// ChargeInput is what a model gives the charge tool.
type ChargeInput struct {
	Customer    string `json:"customer_id" jsonschema:"description=Stripe customer ID (cus_…)"`
	AmountCents int64  `json:"amount_cents" jsonschema:"description=Amount in the currency's smallest unit: 99 charges $0.99,minimum=1"`
	Currency    string `json:"currency,omitempty" jsonschema:"description=Lowercase ISO 4217 currency code; default the service's currency (usd),pattern=^[a-z]{3}$"`
	Description string `json:"description" jsonschema:"description=What the charge is for; recorded on the payment,minLength=1"`
}

// RefundInput is what a model gives the refund tool.
type RefundInput struct {
	PaymentIntent string `json:"payment_intent_id" jsonschema:"description=The PaymentIntent to refund (pi_…): the stripe_id of a charge"`
	AmountCents   int64  `json:"amount_cents,omitempty" jsonschema:"description=Amount to refund in the smallest currency unit; default the whole remaining amount,minimum=1"`
	Reason        string `json:"reason,omitempty" jsonschema:"enum=duplicate,enum=fraudulent,enum=requested_by_customer"`
}

// ChargeTool returns an agent tool that charges a customer through s.
// Each call runs as a durable activity and is charged at most once: its
// ledger key is the call's idempotency key followed by "/charge". The model
// reads the ledger Entry, or the error (a declined card is final and not
// retried). opts may be nil; moving money usually deserves
// Options.RequiresApproval.
func ChargeTool(s *billing.Service, opts *tools.Options) *tools.Tool {
	return tools.MustNew(ChargeToolName, "Charge a customer's saved payment method once, e.g. a fee for a resolved ticket.",
		func(ctx context.Context, in ChargeInput) (*billing.Entry, error) {
			return s.Charge(ctx, billing.ChargeParams{Customer: in.Customer, Amount: in.AmountCents, Currency: in.Currency, Description: in.Description})
		}, opts)
}

// RefundTool returns an agent tool that refunds a charge through s, at most
// once per call, as ChargeTool charges. opts may be nil.
func RefundTool(s *billing.Service, opts *tools.Options) *tools.Tool {
	return tools.MustNew(RefundToolName, "Refund a charge, in full or in part.",
		func(ctx context.Context, in RefundInput) (*billing.Entry, error) {
			return s.Refund(ctx, billing.RefundParams{PaymentIntent: in.PaymentIntent, Amount: in.AmountCents, Reason: in.Reason})
		}, opts)
}
