package billing

import (
	"context"
	"errors"

	"github.com/stripe/stripe-go/v76"
)

// operation is what differs between a charge, a refund and a usage record.
type operation struct {
	// lookup finds the operation's object at Stripe after its idempotency
	// key has expired; found is false when it does not exist. nil when
	// Stripe offers no way to look it up.
	lookup func(ctx context.Context, e *Entry) (o outcome, found bool, err error)
	// prepare returns the payment method to fix on the entry before its
	// first request (charges only). Optional.
	prepare func(ctx context.Context, e *Entry) (string, error)
	// send makes the request, with the entry's key as Idempotency-Key.
	send func(ctx context.Context, e *Entry) (outcome, error)
}

// do runs an operation exactly once per key:
//
//  1. the entry is written as pending (or found, if a previous attempt
//     wrote it) before Stripe is called;
//  2. a recorded outcome (succeeded or failed) is returned as it is,
//     without calling Stripe;
//  3. a pending entry older than Stripe's key retention is first looked
//     up at Stripe and adopted if found;
//  4. otherwise the request is sent with the entry's key as
//     Idempotency-Key, so that Stripe answers a repeat of a request it
//     has executed with the original response instead of acting again;
//  5. the outcome is recorded. Transient errors leave the entry pending.
func (s *Service) do(ctx context.Context, e *Entry, hash string, op operation) (*Entry, error) {
	e, err := s.begin(ctx, e, hash)
	if err != nil {
		return nil, err
	}
	switch e.Status {
	case StatusSucceeded, StatusLocal:
		e.Replayed = true
		return e, nil
	case StatusFailed:
		e.Replayed = true
		return e, e.failure()
	}

	if s.Local() {
		return s.settleLocal(ctx, e)
	}
	if age := s.now().Sub(e.CreatedAt); age > s.cfg.KeyRetention {
		if op.lookup == nil {
			be := newError(string(e.Kind), e.Key, CodeUnreconciled,
				"pending for %s, longer than Stripe keeps idempotency keys (%s), and Stripe cannot look it up; not sent again", age.Round(1e9), s.cfg.KeyRetention)
			s.noteTransient(ctx, e, be)
			return e, be
		}
		o, found, err := op.lookup(ctx, e)
		if err != nil {
			return s.fail(ctx, e, classify(string(e.Kind), e.Key, err))
		}
		if found {
			o.reconciled = true
			s.cfg.Logger.InfoContext(ctx, "billing: adopted the Stripe object of an expired key", "key", e.Key, "stripe_id", o.stripeID)
			return s.finish(ctx, e, o)
		}
		s.cfg.Logger.InfoContext(ctx, "billing: expired key not found at Stripe; sending again", "key", e.Key)
	}

	var pm string
	if op.prepare != nil {
		if pm, err = op.prepare(ctx, e); err != nil {
			return s.fail(ctx, e, classify(string(e.Kind), e.Key, err))
		}
	}
	if e, err = s.startAttempt(ctx, e, pm); err != nil {
		return nil, err
	}
	o, err := op.send(ctx, e)
	if err != nil {
		return s.fail(ctx, e, classify(string(e.Kind), e.Key, err))
	}
	return s.finish(ctx, e, o)
}

// finish records an outcome and returns the entry, with its error if it
// failed.
func (s *Service) finish(ctx context.Context, e *Entry, o outcome) (*Entry, error) {
	got, err := s.settle(ctx, e, o)
	if err != nil {
		return e, err
	}
	if got.Status == StatusFailed {
		return got, got.failure()
	}
	return got, nil
}

// fail handles an error. Transient errors and errors that say nothing about
// the operation itself (a refused secret key, a key Stripe holds with other
// parameters) leave the entry pending, with the error noted; the others
// settle it as failed, so that a retry returns the same error without
// calling Stripe.
func (s *Service) fail(ctx context.Context, e *Entry, be *Error) (*Entry, error) {
	switch {
	case be.Code.Retryable(), be.Code == CodeAuthentication, be.Code == CodeIdempotencyMismatch:
		s.noteTransient(ctx, e, be)
		return e, be
	}
	o := outcome{status: StatusFailed, code: be.Code, message: be.Message}
	var se *stripe.Error
	if errors.As(be.Err, &se) && se.PaymentIntent != nil {
		// A declined confirmation leaves a PaymentIntent behind.
		o.stripeID, o.stripeStatus = se.PaymentIntent.ID, string(se.PaymentIntent.Status)
	}
	got, err := s.settle(ctx, e, o)
	if err != nil {
		return e, err
	}
	if got.Status == StatusSucceeded {
		return got, nil
	}
	return got, be
}
