package billing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/keelhq/keel/durable"
)

// Sentinel errors. Match them with errors.Is; every *Error matches the
// sentinel of its Code.
var (
	// ErrCardDeclined: Stripe declined the card (HTTP 402, card_error).
	// Not retryable: the same card is declined again.
	ErrCardDeclined = errors.New("billing: card declined")
	// ErrPaymentFailed: the PaymentIntent did not succeed (it needs another
	// payment method or customer action). Not retryable.
	ErrPaymentFailed = errors.New("billing: payment failed")
	// ErrInvalidRequest: the parameters are wrong, locally or for Stripe
	// (HTTP 400 or 404, invalid_request_error). Not retryable.
	ErrInvalidRequest = errors.New("billing: invalid request")
	// ErrIdempotencyMismatch: the idempotency key was already used with
	// different parameters (locally, or Stripe's 400 idempotency_error).
	// Not retryable.
	ErrIdempotencyMismatch = errors.New("billing: idempotency key reused with different parameters")
	// ErrAuthentication: Stripe refused the secret key (HTTP 401 or 403).
	// Not retryable.
	ErrAuthentication = errors.New("billing: authentication failed")
	// ErrNoPaymentMethod: the customer has no default payment method and
	// the charge named none. Not retryable.
	ErrNoPaymentMethod = errors.New("billing: no payment method")
	// ErrUnreconciled: a pending usage record is older than Stripe keeps
	// idempotency keys, and Stripe has no way to look it up; it is not sent
	// again (it could count twice). Not retryable; see the package
	// documentation.
	ErrUnreconciled = errors.New("billing: pending record cannot be reconciled")
	// ErrConcurrentRequest: another request with the same idempotency key
	// is in flight at Stripe (HTTP 409). Retryable.
	ErrConcurrentRequest = errors.New("billing: concurrent request with the same idempotency key")
	// ErrRateLimited: Stripe's rate limit (HTTP 429). Retryable.
	ErrRateLimited = errors.New("billing: rate limited")
	// ErrUnavailable: Stripe failed (HTTP 5xx, api_error). Retryable.
	ErrUnavailable = errors.New("billing: stripe unavailable")
	// ErrConnection: the request or its answer was lost on the network.
	// Retryable: the retry carries the same Idempotency-Key.
	ErrConnection = errors.New("billing: connection error")

	// ErrNotFound: no ledger entry has that key.
	ErrNotFound = errors.New("billing: ledger entry not found")
	// ErrNoSecretKey: neither Config.SecretKey nor STRIPE_SECRET_KEY is set.
	ErrNoSecretKey = errors.New("billing: no Stripe secret key (set Config.SecretKey or STRIPE_SECRET_KEY)")
	// ErrNoIdempotencyKey: the call runs outside an activity and its params
	// name no Key.
	ErrNoIdempotencyKey = errors.New("billing: no idempotency key (call from a durable activity or set Key)")
)

// Code classifies an *Error.
type Code string

// Error codes. The first group is final (not retried); the second is
// transient (retried by the activity's retry policy, with the same
// Idempotency-Key).
const (
	CodeCardDeclined        Code = "card_declined"
	CodePaymentFailed       Code = "payment_failed"
	CodeInvalidRequest      Code = "invalid_request"
	CodeIdempotencyMismatch Code = "idempotency_mismatch"
	CodeAuthentication      Code = "authentication"
	CodeNoPaymentMethod     Code = "no_payment_method"
	CodeUnreconciled        Code = "unreconciled"

	CodeConcurrentRequest Code = "concurrent_request"
	CodeRateLimited       Code = "rate_limited"
	CodeUnavailable       Code = "unavailable"
	CodeConnection        Code = "connection"
)

// codeSentinels maps codes to their sentinels.
var codeSentinels = map[Code]error{ //nolint:gochecknoglobals // immutable lookup table
	CodeCardDeclined:        ErrCardDeclined,
	CodePaymentFailed:       ErrPaymentFailed,
	CodeInvalidRequest:      ErrInvalidRequest,
	CodeIdempotencyMismatch: ErrIdempotencyMismatch,
	CodeAuthentication:      ErrAuthentication,
	CodeNoPaymentMethod:     ErrNoPaymentMethod,
	CodeUnreconciled:        ErrUnreconciled,
	CodeConcurrentRequest:   ErrConcurrentRequest,
	CodeRateLimited:         ErrRateLimited,
	CodeUnavailable:         ErrUnavailable,
	CodeConnection:          ErrConnection,
}

// Retryable reports whether an error of this code may succeed when the
// same request is sent again.
func (c Code) Retryable() bool {
	switch c {
	case CodeConcurrentRequest, CodeRateLimited, CodeUnavailable, CodeConnection:
		return true
	}
	return false
}

// ErrorType is the durable.ApplicationError Type under which workflow code
// sees an *Error of this code once it has crossed the activity boundary:
// "billing." + the code, e.g. "billing.card_declined". It can be listed in
// RetryPolicy.NonRetryableErrorTypes.
func (c Code) ErrorType() string { return "billing." + string(c) }

// Error is a failed billing operation. Match its kind with errors.Is and a
// sentinel (ErrCardDeclined…), or errors.As and Code.
//
// It implements NonRetryable() and RetryAfter(), which the durable engine
// honours, and converts to a *durable.ApplicationError of Type
// Code.ErrorType(), so that workflow code can tell a decline from an
// outage after the activity has failed.
type Error struct {
	// Op is the operation: "charge", "refund" or "usage".
	Op string
	// Key is the ledger entry's key (Stripe's Idempotency-Key).
	Key string
	// Code classifies the error.
	Code Code
	// Message is Stripe's message, or ours.
	Message string
	// HTTPStatus is Stripe's HTTP status; 0 when Stripe did not answer.
	HTTPStatus int
	// StripeCode and DeclineCode are Stripe's error code and, for a
	// declined card, the issuer's reason ("insufficient_funds").
	StripeCode  string
	DeclineCode string
	// RequestID is Stripe's Request-Id, for Stripe's support.
	RequestID string
	// Err is the underlying error (a *stripe.Error or a network error), if
	// any.
	Err error

	retryAfter time.Duration
}

func (e *Error) Error() string {
	s := "billing: " + e.Op
	if e.Key != "" {
		s += " " + e.Key
	}
	s += ": " + string(e.Code)
	if e.DeclineCode != "" {
		s += " (" + e.DeclineCode + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is matches the sentinel of e's Code.
func (e *Error) Is(target error) bool {
	s, ok := codeSentinels[e.Code]
	return ok && target == s
}

// As converts e to a *durable.ApplicationError of Type Code.ErrorType(),
// which is how the engine records it.
func (e *Error) As(target any) bool {
	if p, ok := target.(**durable.ApplicationError); ok {
		*p = &durable.ApplicationError{Type: e.Code.ErrorType(), Message: e.Error(), NonRetryable: e.NonRetryable()}
		return true
	}
	return false
}

// NonRetryable reports whether retrying cannot help: true for every code
// except the transient ones (Code.Retryable).
func (e *Error) NonRetryable() bool { return !e.Code.Retryable() }

// RetryAfter is how long Stripe asked to wait (its Retry-After header), or 0.
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }

// newError returns an *Error made locally (no Stripe answer).
func newError(op, key string, code Code, format string, args ...any) *Error {
	return &Error{Op: op, Key: key, Code: code, Message: fmt.Sprintf(format, args...)}
}

// classify maps an error from stripe-go to an *Error.
func classify(op, key string, err error) *Error {
	var already *Error
	if errors.As(err, &already) {
		return already
	}
	e := &Error{Op: op, Key: key, Err: err}
	var se *stripe.Error
	if !errors.As(err, &se) {
		// No answer from Stripe: the request may or may not have been
		// executed; sending it again with the same key is safe.
		e.Code = CodeConnection
		e.Message = err.Error()
		if errors.Is(err, context.Canceled) {
			e.Message = "request canceled: " + err.Error()
		}
		return e
	}
	e.HTTPStatus = se.HTTPStatusCode
	e.StripeCode = string(se.Code)
	e.DeclineCode = string(se.DeclineCode)
	e.Message = se.Msg
	e.RequestID = se.RequestID
	if se.LastResponse != nil {
		e.retryAfter = parseRetryAfter(se.LastResponse.Header.Get("Retry-After"))
	}
	switch {
	case se.HTTPStatusCode == http.StatusConflict:
		e.Code = CodeConcurrentRequest
	case se.HTTPStatusCode == http.StatusTooManyRequests:
		e.Code = CodeRateLimited
	case se.Type == stripe.ErrorTypeIdempotency:
		e.Code = CodeIdempotencyMismatch
	case se.Type == stripe.ErrorTypeCard:
		e.Code = CodeCardDeclined
	case se.HTTPStatusCode == http.StatusUnauthorized || se.HTTPStatusCode == http.StatusForbidden:
		e.Code = CodeAuthentication
	case se.HTTPStatusCode >= 500 || se.Type == stripe.ErrorTypeAPI:
		e.Code = CodeUnavailable
	case se.HTTPStatusCode == http.StatusPaymentRequired:
		e.Code = CodePaymentFailed
	default:
		e.Code = CodeInvalidRequest
	}
	return e
}

// parseRetryAfter reads a Retry-After header given in seconds.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}
