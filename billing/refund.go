package billing

import (
	"context"
	"errors"
	"fmt"

	"github.com/stripe/stripe-go/v76"
)

// RefundParams describe a refund of a charge. Name the charge by ChargeKey
// or PaymentIntent.
type RefundParams struct {
	// ChargeKey is the ledger key of a succeeded charge to refund.
	ChargeKey string `json:"charge_key,omitempty"`
	// PaymentIntent is the PaymentIntent to refund (pi_…), for charges not
	// in the ledger.
	PaymentIntent string `json:"payment_intent,omitempty"`
	// Amount to refund, in the smallest currency unit. Optional; default
	// what remains of the charge.
	Amount int64 `json:"amount,omitempty"`
	// Reason is "duplicate", "fraudulent" or "requested_by_customer".
	// Optional.
	Reason string `json:"reason,omitempty"`
	// Metadata added to the Refund. Optional; MetadataKey is reserved.
	Metadata map[string]string `json:"metadata,omitempty"`
	// Key is the ledger key and Idempotency-Key. Optional inside a durable
	// activity: default the activity's idempotency key followed by
	// "/refund".
	Key string `json:"key,omitempty"`
}

// Refund refunds a charge once per key, with the same ledger and
// idempotency rules as Charge. A refund whose key has expired at Stripe is
// found again among the PaymentIntent's refunds by the ledger key in its
// metadata.
func (s *Service) Refund(ctx context.Context, p RefundParams) (*Entry, error) {
	key, err := ledgerKey(ctx, p.Key, "refund")
	if err != nil {
		return nil, err
	}
	e := &Entry{Key: key, Kind: KindRefund, Amount: p.Amount, Description: p.Reason, Target: p.PaymentIntent}
	switch {
	case p.ChargeKey != "" && p.PaymentIntent != "":
		return nil, newError("refund", key, CodeInvalidRequest, "name the charge by ChargeKey or PaymentIntent, not both")
	case p.ChargeKey != "":
		charge, _, err := s.get(ctx, p.ChargeKey)
		if errors.Is(err, ErrNotFound) {
			return nil, newError("refund", key, CodeInvalidRequest, "no charge has ledger key %s", p.ChargeKey)
		}
		if err != nil {
			return nil, fmt.Errorf("billing: refund %s: %w", key, err)
		}
		if charge.Kind != KindCharge || charge.Status != StatusSucceeded || charge.StripeID == "" {
			return nil, newError("refund", key, CodeInvalidRequest, "ledger entry %s is a %s %s, not a succeeded charge", p.ChargeKey, charge.Status, charge.Kind)
		}
		if p.Amount > charge.Amount {
			return nil, newError("refund", key, CodeInvalidRequest, "refund of %d exceeds the charge of %d", p.Amount, charge.Amount)
		}
		e.Target, e.Customer, e.Currency = charge.StripeID, charge.Customer, charge.Currency
	case p.PaymentIntent == "":
		return nil, newError("refund", key, CodeInvalidRequest, "ChargeKey or PaymentIntent is required")
	}
	switch {
	case p.Amount < 0:
		return nil, newError("refund", key, CodeInvalidRequest, "amount %d is negative", p.Amount)
	case p.Reason != "" && p.Reason != "duplicate" && p.Reason != "fraudulent" && p.Reason != "requested_by_customer":
		return nil, newError("refund", key, CodeInvalidRequest, "reason %q is not duplicate, fraudulent or requested_by_customer", p.Reason)
	}
	if _, ok := p.Metadata[MetadataKey]; ok {
		return nil, newError("refund", key, CodeInvalidRequest, "metadata key %q is reserved", MetadataKey)
	}
	hash := paramsHash(struct {
		PaymentIntent, Reason string
		Amount                int64
		Metadata              map[string]string
	}{e.Target, p.Reason, p.Amount, p.Metadata})

	return s.do(ctx, e, hash, operation{
		lookup: s.findRefund,
		send: func(ctx context.Context, e *Entry) (outcome, error) {
			params := &stripe.RefundParams{
				PaymentIntent: stripe.String(e.Target),
				Metadata:      metadata(p.Metadata, e.Key),
			}
			if p.Amount > 0 {
				params.Amount = stripe.Int64(p.Amount)
			}
			if p.Reason != "" {
				params.Reason = stripe.String(p.Reason)
			}
			params.Context = ctx
			params.SetIdempotencyKey(e.Key)
			r, err := s.api.Refunds.New(params)
			if err != nil {
				return outcome{}, err
			}
			return refundOutcome(r), nil
		},
	})
}

// refundOutcome reads a Refund: pending, requires_action and succeeded are
// refunds Stripe accepted; failed and canceled are not.
func refundOutcome(r *stripe.Refund) outcome {
	switch r.Status {
	case stripe.RefundStatusFailed, stripe.RefundStatusCanceled:
		return outcome{status: StatusFailed, stripeID: r.ID, stripeStatus: string(r.Status), code: CodePaymentFailed,
			message: "refund " + r.ID + " is " + string(r.Status)}
	}
	return outcome{status: StatusSucceeded, stripeID: r.ID, stripeStatus: string(r.Status), amount: r.Amount}
}

// findRefund looks for a refund whose key Stripe may have forgotten among
// the refunds of its PaymentIntent.
func (s *Service) findRefund(ctx context.Context, e *Entry) (outcome, bool, error) {
	params := &stripe.RefundListParams{PaymentIntent: stripe.String(e.Target)}
	params.Context = ctx
	params.Limit = stripe.Int64(100)
	it := s.api.Refunds.List(params)
	for it.Next() {
		r := it.Refund()
		if r.Metadata[MetadataKey] == e.Key {
			return refundOutcome(r), true, nil
		}
	}
	if err := it.Err(); err != nil {
		return outcome{}, false, err
	}
	return outcome{}, false, nil
}
