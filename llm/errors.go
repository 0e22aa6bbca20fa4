package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Kind classifies a model call's failure.
type Kind string

// Error kinds. Rate limits, server errors, timeouts, connection failures
// and invalid responses are retryable; the others are not.
const (
	// KindRateLimited: HTTP 429 other than an exhausted quota.
	KindRateLimited Kind = "rate_limited"
	// KindServer: HTTP 5xx (and 409), an overloaded or failing provider.
	KindServer Kind = "server"
	// KindTimeout: the call timed out (client timeout, deadline, HTTP 408).
	KindTimeout Kind = "timeout"
	// KindConnection: no answer was read (connection refused or reset).
	KindConnection Kind = "connection"
	// KindInvalidResponse: an answer that could not be understood, such as
	// a body that is not JSON or a completion without choices.
	KindInvalidResponse Kind = "invalid_response"
	// KindBadRequest: the request was refused as malformed (HTTP 400, 422…)
	// or failed validation before it was sent.
	KindBadRequest Kind = "bad_request"
	// KindAuth: HTTP 401 or 403.
	KindAuth Kind = "auth"
	// KindNotFound: HTTP 404, usually an unknown model or deployment.
	KindNotFound Kind = "not_found"
	// KindContextLengthExceeded: the conversation does not fit the model's
	// context window. Retrying the same request cannot help; shortening it can.
	KindContextLengthExceeded Kind = "context_length_exceeded"
	// KindQuotaExceeded: HTTP 429 with code insufficient_quota; the account
	// has no credit left, so waiting does not help.
	KindQuotaExceeded Kind = "quota_exceeded"
	// KindContentFilter: the provider's content filter refused the prompt.
	KindContentFilter Kind = "content_filter"
	// KindCanceled: the caller's context was canceled.
	KindCanceled Kind = "canceled"
)

// Retryable reports whether a call that failed with this kind may succeed
// when repeated.
func (k Kind) Retryable() bool {
	switch k {
	case KindRateLimited, KindServer, KindTimeout, KindConnection, KindInvalidResponse:
		return true
	}
	return false
}

// Sentinel errors, one per kind: errors.Is(err, ErrRateLimited) holds for
// every *Error of kind rate_limited.
var (
	ErrRateLimited           = errors.New("llm: rate limited")
	ErrServer                = errors.New("llm: server error")
	ErrTimeout               = errors.New("llm: timeout")
	ErrConnection            = errors.New("llm: connection failed")
	ErrInvalidResponse       = errors.New("llm: invalid response")
	ErrBadRequest            = errors.New("llm: bad request")
	ErrAuth                  = errors.New("llm: authentication failed")
	ErrNotFound              = errors.New("llm: not found")
	ErrContextLengthExceeded = errors.New("llm: context length exceeded")
	ErrQuotaExceeded         = errors.New("llm: quota exceeded")
	ErrContentFilter         = errors.New("llm: content filtered")
	ErrCanceled              = errors.New("llm: canceled")
)

// sentinel returns the sentinel error of kind k, nil for an unknown kind.
func (k Kind) sentinel() error {
	switch k {
	case KindRateLimited:
		return ErrRateLimited
	case KindServer:
		return ErrServer
	case KindTimeout:
		return ErrTimeout
	case KindConnection:
		return ErrConnection
	case KindInvalidResponse:
		return ErrInvalidResponse
	case KindBadRequest:
		return ErrBadRequest
	case KindAuth:
		return ErrAuth
	case KindNotFound:
		return ErrNotFound
	case KindContextLengthExceeded:
		return ErrContextLengthExceeded
	case KindQuotaExceeded:
		return ErrQuotaExceeded
	case KindContentFilter:
		return ErrContentFilter
	case KindCanceled:
		return ErrCanceled
	}
	return nil
}

// Error is a classified model call failure. Match a kind with errors.Is and
// a sentinel (errors.Is(err, llm.ErrContextLengthExceeded)), or get the
// details with errors.As.
//
// Error implements the two optional interfaces the durable engine checks on
// an activity's error: RetryAfter() time.Duration (the provider's
// Retry-After, used as the delay before the next attempt) and
// NonRetryable() bool (no further attempt).
type Error struct {
	Kind Kind `json:"kind"`
	// StatusCode is the HTTP status, 0 when no response was read.
	StatusCode int `json:"status_code,omitempty"`
	// Code and Type are the provider's error code and type, such as
	// "context_length_exceeded" and "invalid_request_error".
	Code string `json:"code,omitempty"`
	Type string `json:"type,omitempty"`
	// Message is the provider's message, or a description of the failure.
	Message string `json:"message"`
	// RetryDelay is how long the provider asked to wait (Retry-After).
	RetryDelay time.Duration `json:"retry_delay,omitempty"`
	// RequestID is the provider's request ID (x-request-id), for support.
	RequestID string `json:"request_id,omitempty"`
	// Err is the underlying error, if any.
	Err error `json:"-"`
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("llm: ")
	b.WriteString(string(e.Kind))
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.StatusCode)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	} else if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.RetryDelay > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryDelay)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel of e's kind.
func (e *Error) Is(target error) bool {
	s := e.Kind.sentinel()
	return s != nil && s == target
}

// RetryAfter returns how long the provider asked to wait before the next
// attempt, or 0 when it did not say.
func (e *Error) RetryAfter() time.Duration { return e.RetryDelay }

// NonRetryable reports whether repeating the call cannot help.
func (e *Error) NonRetryable() bool { return !e.Kind.Retryable() }

// ErrorType names the error for the durable engine, which keeps it as the
// type of the stored failure ("llm.rate_limited", "llm.context_length_exceeded",
// …): workflow code reads it from durable.ApplicationError.Type, and retry
// policies can list it in NonRetryableErrorTypes.
func (e *Error) ErrorType() string { return "llm." + string(e.Kind) }

// IsRetryable reports whether a call that failed with err may succeed when
// repeated. An error (anywhere in the chain) with a NonRetryable() bool
// method decides; context.Canceled is not retryable; any other non-nil
// error is, as the durable engine treats it.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var nr interface{ NonRetryable() bool }
	if errors.As(err, &nr) {
		return !nr.NonRetryable()
	}
	return !errors.Is(err, context.Canceled)
}

// HTTPError classifies a provider's HTTP error reply. code and message come
// from the provider's error body; code "context_length_exceeded" (or a
// message saying so), "insufficient_quota" and "content_filter" get their
// own kinds.
func HTTPError(status int, code, message string) *Error {
	e := &Error{StatusCode: status, Code: code, Message: message}
	lowerCode, lowerMsg := strings.ToLower(code), strings.ToLower(message)
	switch {
	case lowerCode == "context_length_exceeded" || lowerCode == "string_above_max_length" ||
		strings.Contains(lowerMsg, "maximum context length") || strings.Contains(lowerMsg, "context length exceeded") ||
		strings.Contains(lowerMsg, "context_length_exceeded"):
		e.Kind = KindContextLengthExceeded
	case lowerCode == "insufficient_quota":
		e.Kind = KindQuotaExceeded
	case lowerCode == "content_filter" || lowerCode == "content_policy_violation":
		e.Kind = KindContentFilter
	case status == http.StatusTooManyRequests:
		e.Kind = KindRateLimited
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		e.Kind = KindTimeout
	case status >= 500 || status == http.StatusConflict:
		e.Kind = KindServer
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Kind = KindAuth
	case status == http.StatusNotFound:
		e.Kind = KindNotFound
	case status >= 400:
		e.Kind = KindBadRequest
	default:
		e.Kind = KindInvalidResponse
	}
	return e
}

// ParseRetryAfter reads a Retry-After header value: a number of seconds
// (fractions allowed) or an HTTP date, relative to now. It returns 0 for an
// empty, malformed or past value.
func ParseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(value, 64); err == nil {
		if !(secs > 0 && secs <= 1e9) {
			return 0
		}
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(value); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
