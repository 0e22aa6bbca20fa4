package billing

import (
	"context"
	"maps"
	"time"

	"github.com/stripe/stripe-go/v76"
)

// ChargeParams describe a charge: a PaymentIntent confirmed at once,
// off-session, against a saved payment method of the customer.
type ChargeParams struct {
	// Customer is Stripe's customer ID (cus_…). Required.
	Customer string `json:"customer"`
	// Amount in the currency's smallest unit (99 is $0.99). Required,
	// positive.
	Amount int64 `json:"amount"`
	// Currency. Optional; default Config.Currency.
	Currency string `json:"currency,omitempty"`
	// Description appears on the PaymentIntent and in the ledger.
	// Optional.
	Description string `json:"description,omitempty"`
	// PaymentMethod to charge (pm_… or a card_…). Optional; default the
	// customer's invoice_settings.default_payment_method, else their
	// default source. The method used is fixed in the ledger before the
	// first request, so retries charge the same one.
	PaymentMethod string `json:"payment_method,omitempty"`
	// Metadata added to the PaymentIntent. Optional; MetadataKey is
	// reserved.
	Metadata map[string]string `json:"metadata,omitempty"`
	// Key is the ledger key and Idempotency-Key. Optional inside a durable
	// activity (or a tool call): default the activity's idempotency key
	// followed by "/charge". Set it to make several charges in one
	// activity, or to charge outside an activity.
	Key string `json:"key,omitempty"`
}

func (p *ChargeParams) validate(key string) error {
	switch {
	case p.Customer == "":
		return newError("charge", key, CodeInvalidRequest, "customer is required")
	case p.Amount <= 0:
		return newError("charge", key, CodeInvalidRequest, "amount %d must be positive (in the currency's smallest unit)", p.Amount)
	case !currencyPattern.MatchString(p.Currency):
		return newError("charge", key, CodeInvalidRequest, "currency %q is not a lowercase ISO 4217 code", p.Currency)
	}
	if _, ok := p.Metadata[MetadataKey]; ok {
		return newError("charge", key, CodeInvalidRequest, "metadata key %q is reserved", MetadataKey)
	}
	return nil
}

// Charge charges a customer once per key: it writes a pending ledger entry,
// confirms a PaymentIntent with the entry's key as Idempotency-Key and
// records the outcome. A repeated call with the same key returns the
// recorded entry without calling Stripe, or, if the entry is still pending
// (an earlier attempt crashed or lost Stripe's answer), sends the same
// request again, which Stripe answers with the original PaymentIntent.
//
// The returned entry is succeeded. On error the entry is returned too when
// one was written: a declined card (ErrCardDeclined) leaves it failed, a
// transient error (ErrConnection, ErrUnavailable, ErrRateLimited,
// ErrConcurrentRequest) pending. Errors are *Error values.
func (s *Service) Charge(ctx context.Context, p ChargeParams) (*Entry, error) {
	key, err := ledgerKey(ctx, p.Key, "charge")
	if err != nil {
		return nil, err
	}
	if p.Currency == "" {
		p.Currency = s.cfg.Currency
	}
	if err := p.validate(key); err != nil {
		return nil, err
	}
	e := &Entry{
		Key: key, Kind: KindCharge, Customer: p.Customer, Amount: p.Amount, Currency: p.Currency,
		Description: p.Description, PaymentMethod: p.PaymentMethod,
	}
	hash := paramsHash(struct {
		Customer, Currency, Description, PaymentMethod string
		Amount                                         int64
		Metadata                                       map[string]string
	}{p.Customer, p.Currency, p.Description, p.PaymentMethod, p.Amount, p.Metadata})

	return s.do(ctx, e, hash, operation{
		lookup: s.findPaymentIntent,
		prepare: func(ctx context.Context, e *Entry) (string, error) {
			if e.PaymentMethod != "" {
				return e.PaymentMethod, nil
			}
			return s.defaultPaymentMethod(ctx, e)
		},
		send: func(ctx context.Context, e *Entry) (outcome, error) {
			params := &stripe.PaymentIntentParams{
				Amount:        stripe.Int64(e.Amount),
				Currency:      stripe.String(e.Currency),
				Customer:      stripe.String(e.Customer),
				PaymentMethod: stripe.String(e.PaymentMethod),
				Confirm:       stripe.Bool(true),
				OffSession:    stripe.Bool(true),
				// Confirmed server-side with no customer present: no
				// payment method that needs a redirect.
				AutomaticPaymentMethods: &stripe.PaymentIntentAutomaticPaymentMethodsParams{
					Enabled:        stripe.Bool(true),
					AllowRedirects: stripe.String("never"),
				},
				Metadata: metadata(p.Metadata, e.Key),
			}
			if e.Description != "" {
				params.Description = stripe.String(e.Description)
			}
			params.Context = ctx
			params.SetIdempotencyKey(e.Key)
			pi, err := s.api.PaymentIntents.New(params)
			if err != nil {
				return outcome{}, err
			}
			return chargeOutcome(pi), nil
		},
	})
}

// metadata returns extra with the ledger key added.
func metadata(extra map[string]string, key string) map[string]string {
	m := make(map[string]string, len(extra)+1)
	maps.Copy(m, extra)
	m[MetadataKey] = key
	return m
}

// chargeOutcome reads a confirmed PaymentIntent. Succeeded (or processing,
// for payment methods that settle later) is a successful charge; anything
// else means the payment did not go through.
func chargeOutcome(pi *stripe.PaymentIntent) outcome {
	switch pi.Status {
	case stripe.PaymentIntentStatusSucceeded, stripe.PaymentIntentStatusProcessing, stripe.PaymentIntentStatusRequiresCapture:
		return outcome{status: StatusSucceeded, stripeID: pi.ID, stripeStatus: string(pi.Status)}
	}
	o := outcome{status: StatusFailed, stripeID: pi.ID, stripeStatus: string(pi.Status), code: CodePaymentFailed,
		message: "PaymentIntent " + pi.ID + " is " + string(pi.Status)}
	if pi.LastPaymentError != nil && pi.LastPaymentError.Msg != "" {
		o.message += ": " + pi.LastPaymentError.Msg
	}
	return o
}

// defaultPaymentMethod reads the customer's default payment method.
func (s *Service) defaultPaymentMethod(ctx context.Context, e *Entry) (string, error) {
	params := &stripe.CustomerParams{}
	params.Context = ctx
	c, err := s.api.Customers.Get(e.Customer, params)
	if err != nil {
		return "", err
	}
	if c.InvoiceSettings != nil && c.InvoiceSettings.DefaultPaymentMethod != nil && c.InvoiceSettings.DefaultPaymentMethod.ID != "" {
		return c.InvoiceSettings.DefaultPaymentMethod.ID, nil
	}
	if c.DefaultSource != nil && c.DefaultSource.ID != "" {
		return c.DefaultSource.ID, nil
	}
	return "", newError("charge", e.Key, CodeNoPaymentMethod, "customer %s has no default payment method", e.Customer)
}

// lookupSlack widens the created filter of a lookup, for clock skew between
// this machine and Stripe.
const lookupSlack = time.Hour

// findPaymentIntent looks for the PaymentIntent of a charge whose key Stripe
// may have forgotten: it lists the customer's PaymentIntents created since
// the entry was written and matches the ledger key in their metadata. A
// list is used rather than the Search API because a list reads current
// data, while search results lag by up to a minute and Search is not
// offered in every region.
func (s *Service) findPaymentIntent(ctx context.Context, e *Entry) (outcome, bool, error) {
	params := &stripe.PaymentIntentListParams{
		Customer:     stripe.String(e.Customer),
		CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: e.CreatedAt.Add(-lookupSlack).Unix()},
	}
	params.Context = ctx
	params.Limit = stripe.Int64(100)
	it := s.api.PaymentIntents.List(params)
	for it.Next() {
		pi := it.PaymentIntent()
		if pi.Metadata[MetadataKey] == e.Key {
			return chargeOutcome(pi), true, nil
		}
	}
	if err := it.Err(); err != nil {
		return outcome{}, false, err
	}
	return outcome{}, false, nil
}
