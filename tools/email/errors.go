package email

import (
	"errors"
	"fmt"
	"time"

	"github.com/keelhq/keel/durable"
)

// Sentinel errors. Match them with errors.Is; every *Error matches the
// sentinel of its Code.
var (
	// ErrInvalidMessage: the message is incomplete or malformed (no
	// recipient, a bad address, no subject or body). Not retryable.
	ErrInvalidMessage = errors.New("email: invalid message")
	// ErrIdempotencyMismatch: the outbox holds another message under this
	// key. Not retryable.
	ErrIdempotencyMismatch = errors.New("email: idempotency key reused with a different message")
	// ErrOutcomeUnknown: an earlier send of this message failed in a way
	// that leaves open whether SendGrid accepted it, and the policy is
	// PolicyAsk: nothing is sent until Resolve is called. Not retryable.
	ErrOutcomeUnknown = errors.New("email: outcome of an earlier send is unknown")
	// ErrRejected: SendGrid refused the message (HTTP 400, 413); it was
	// not sent. Not retryable.
	ErrRejected = errors.New("email: rejected by SendGrid")
	// ErrAuthentication: SendGrid refused the API key (HTTP 401, 403).
	// Not retryable.
	ErrAuthentication = errors.New("email: authentication failed")
	// ErrCanceled: the message was canceled with Resolve. Not retryable.
	ErrCanceled = errors.New("email: canceled")
	// ErrInvalidState: Resolve was asked to settle a message that is not
	// waiting for a decision. Not retryable.
	ErrInvalidState = errors.New("email: message not in a state for that")
	// ErrRateLimited: SendGrid's rate limit (HTTP 429); the message was not
	// sent. Retryable.
	ErrRateLimited = errors.New("email: rate limited")
	// ErrUnavailable: SendGrid failed (HTTP 5xx) after receiving the
	// request; the outcome is recorded as unknown. Retryable: the retry
	// applies the UnknownPolicy.
	ErrUnavailable = errors.New("email: SendGrid unavailable")
	// ErrConnection: the request or its answer was lost on the network.
	// Retryable. When the request may have reached SendGrid the outcome is
	// recorded as unknown and the retry applies the UnknownPolicy.
	ErrConnection = errors.New("email: connection error")
	// ErrBusy: another attempt is sending this message right now.
	// Retryable.
	ErrBusy = errors.New("email: another attempt is sending this message")

	// ErrNotFound: no outbox message has that key.
	ErrNotFound = errors.New("email: message not found")
	// ErrNoIdempotencyKey: the call runs outside an activity and its params
	// name no Key.
	ErrNoIdempotencyKey = errors.New("email: no idempotency key (call from a durable activity or set Key)")
)

// Code classifies an *Error.
type Code string

// Error codes. The first group is final; the second is transient.
const (
	CodeInvalidMessage      Code = "invalid_message"
	CodeIdempotencyMismatch Code = "idempotency_mismatch"
	CodeOutcomeUnknown      Code = "outcome_unknown"
	CodeRejected            Code = "rejected"
	CodeAuthentication      Code = "authentication"
	CodeCanceled            Code = "canceled"
	CodeInvalidState        Code = "invalid_state"

	CodeRateLimited Code = "rate_limited"
	CodeUnavailable Code = "unavailable"
	CodeConnection  Code = "connection"
	CodeBusy        Code = "busy"
)

var codeSentinels = map[Code]error{ //nolint:gochecknoglobals // immutable lookup table
	CodeInvalidMessage:      ErrInvalidMessage,
	CodeIdempotencyMismatch: ErrIdempotencyMismatch,
	CodeOutcomeUnknown:      ErrOutcomeUnknown,
	CodeRejected:            ErrRejected,
	CodeAuthentication:      ErrAuthentication,
	CodeCanceled:            ErrCanceled,
	CodeInvalidState:        ErrInvalidState,
	CodeRateLimited:         ErrRateLimited,
	CodeUnavailable:         ErrUnavailable,
	CodeConnection:          ErrConnection,
	CodeBusy:                ErrBusy,
}

// Retryable reports whether trying the same send again may help.
func (c Code) Retryable() bool {
	switch c {
	case CodeRateLimited, CodeUnavailable, CodeConnection, CodeBusy:
		return true
	}
	return false
}

// ErrorType is the durable.ApplicationError Type under which workflow code
// sees an *Error of this code once it has crossed the activity boundary:
// "email." + the code, e.g. "email.outcome_unknown".
func (c Code) ErrorType() string { return "email." + string(c) }

// Error is a failed email operation. Match its kind with errors.Is and a
// sentinel, or errors.As and Code. It implements NonRetryable() and
// RetryAfter(), which the durable engine honours, and converts to a
// *durable.ApplicationError of Type Code.ErrorType().
type Error struct {
	// Key is the message's idempotency key.
	Key string
	// Code classifies the error.
	Code Code
	// Message says what happened.
	Message string
	// HTTPStatus is SendGrid's status; 0 when it did not answer.
	HTTPStatus int
	// Err is the underlying error, if any.
	Err error

	retryAfter time.Duration
}

func (e *Error) Error() string {
	s := "email:"
	if e.Key != "" {
		s += " " + e.Key + ":"
	}
	s += " " + string(e.Code)
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

// NonRetryable reports whether retrying cannot help.
func (e *Error) NonRetryable() bool { return !e.Code.Retryable() }

// RetryAfter is how long SendGrid asked to wait, or 0.
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }

func newError(key string, code Code, format string, args ...any) *Error {
	return &Error{Key: key, Code: code, Message: fmt.Sprintf(format, args...)}
}
