package billing

import (
	"context"
	"strconv"
	"time"

	"github.com/stripe/stripe-go/v76"
)

// Payload keys of a meter event: Stripe's defaults for a meter's customer
// mapping and value settings.
const (
	MeterCustomerKey = "stripe_customer_id"
	MeterValueKey    = "value"
)

// UsageParams describe metered usage: a Stripe billing meter event, which
// Stripe adds up per customer and bills on the subscription that prices the
// meter.
type UsageParams struct {
	// Customer is Stripe's customer ID (cus_…). Required.
	Customer string `json:"customer"`
	// EventName is the event_name of the meter. Required.
	EventName string `json:"event_name"`
	// Value is the quantity used (resolved tickets, tokens…). Required,
	// positive.
	Value int64 `json:"value"`
	// Timestamp of the usage. Optional; default when the ledger entry was
	// first written, so that retries send the same event.
	Timestamp time.Time `json:"timestamp,omitzero"`
	// Key is the ledger key, Idempotency-Key and meter event identifier.
	// Optional inside a durable activity: default the activity's
	// idempotency key followed by "/usage".
	Key string `json:"key,omitempty"`
}

// RecordUsage sends a meter event once per key, with the same ledger and
// idempotency rules as Charge. The key is also the event's identifier,
// which Stripe keeps unique for at least 24 hours.
//
// Stripe offers no way to list meter events, so a usage entry still pending
// after KeyRetention cannot be reconciled: RecordUsage then returns an
// ErrUnreconciled error instead of sending it again, and the entry stays
// pending for an operator to check against the meter's event summaries.
func (s *Service) RecordUsage(ctx context.Context, p UsageParams) (*Entry, error) {
	key, err := ledgerKey(ctx, p.Key, "usage")
	if err != nil {
		return nil, err
	}
	switch {
	case p.Customer == "":
		return nil, newError("usage", key, CodeInvalidRequest, "customer is required")
	case p.EventName == "":
		return nil, newError("usage", key, CodeInvalidRequest, "event name is required")
	case p.Value <= 0:
		return nil, newError("usage", key, CodeInvalidRequest, "value %d must be positive", p.Value)
	}
	var ts int64
	if !p.Timestamp.IsZero() {
		ts = p.Timestamp.Unix()
	}
	e := &Entry{Key: key, Kind: KindUsage, Customer: p.Customer, Amount: p.Value, Target: p.EventName}
	hash := paramsHash(struct {
		Customer, EventName string
		Value, Timestamp    int64
	}{p.Customer, p.EventName, p.Value, ts})

	return s.do(ctx, e, hash, operation{
		send: func(ctx context.Context, e *Entry) (outcome, error) {
			at := ts
			if at == 0 {
				at = e.CreatedAt.Unix()
			}
			params := &stripe.BillingMeterEventParams{
				EventName:  stripe.String(e.Target),
				Identifier: stripe.String(e.Key),
				Payload: map[string]string{
					MeterCustomerKey: e.Customer,
					MeterValueKey:    strconv.FormatInt(e.Amount, 10),
				},
				Timestamp: stripe.Int64(at),
			}
			params.Context = ctx
			params.SetIdempotencyKey(e.Key)
			ev, err := s.api.BillingMeterEvents.New(params)
			if err != nil {
				return outcome{}, err
			}
			id := ev.Identifier
			if id == "" {
				id = e.Key
			}
			return outcome{status: StatusSucceeded, stripeID: id}, nil
		},
	})
}
