package durable

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrCanceled is returned by blocking workflow calls once the run was
	// asked to cancel, and by Handle.Result for a canceled run.
	ErrCanceled = errors.New("durable: canceled")
	// ErrTerminated is returned by Handle.Result for a terminated run.
	ErrTerminated = errors.New("durable: terminated")
	// ErrRunNotFound: no run has the given workflow ID or run ID.
	ErrRunNotFound = errors.New("durable: run not found")
	// ErrRunClosed: the run has already closed (signal, cancel or terminate
	// of a finished run).
	ErrRunClosed = errors.New("durable: run closed")
	// ErrUnknownWorkflow: no workflow of that name is registered.
	ErrUnknownWorkflow = errors.New("durable: unknown workflow")
	// ErrUnknownActivity: no activity of that name is registered.
	ErrUnknownActivity = errors.New("durable: unknown activity")
	// ErrInvalidPayload: an input, signal payload or query or update
	// argument is not valid JSON (malformed, or nested too deeply).
	ErrInvalidPayload = errors.New("durable: invalid payload")
	// ErrPayloadTooLarge: an encoded payload exceeds Limits.MaxPayloadBytes.
	ErrPayloadTooLarge = errors.New("durable: payload too large")
	// ErrHistoryTooLarge: a run's history exceeded Limits.FailEvents or
	// Limits.FailBytes; the run is failed with this error.
	ErrHistoryTooLarge = errors.New("durable: history too large")
	// ErrWorkflowIDInUse: the ID-reuse policy refused to start a new run.
	ErrWorkflowIDInUse = errors.New("durable: workflow ID already used")
	// ErrNonDeterminism is matched by every *NonDeterminismError.
	ErrNonDeterminism = errors.New("durable: non-deterministic workflow")
	// ErrAlreadyRegistered: a workflow or activity name is registered twice.
	ErrAlreadyRegistered = errors.New("durable: already registered")
)

// ApplicationError is an error raised by workflow or activity code, as it
// survives the trip through the store: its Type names the original Go error
// type (or the type given to NewError), Message its text.
type ApplicationError struct {
	Type         string
	Message      string
	NonRetryable bool
	// Stack is set for errors that come from a panic.
	Stack string
	// Details are the JSON the error was given with WithDetails, if any.
	Details json.RawMessage
	Cause   *ApplicationError
}

func (e *ApplicationError) Error() string {
	if e.Cause != nil {
		return e.Message + ": " + e.Cause.Error()
	}
	return e.Message
}

// Unwrap returns the cause, if any.
func (e *ApplicationError) Unwrap() error {
	if e.Cause == nil {
		return nil
	}
	return e.Cause
}

// Is matches sentinels that were recorded by type name, so that
// errors.Is(err, ErrCanceled) holds after a round trip through the store.
func (e *ApplicationError) Is(target error) bool {
	for name, s := range sentinelNames {
		if target == s && e.Type == name {
			return true
		}
	}
	return false
}

// NewError returns an error with an explicit type name, which retry policies
// can list in NonRetryableErrorTypes.
func NewError(typ, message string) error {
	return &ApplicationError{Type: typ, Message: message}
}

// NonRetryable marks err so that the activity is not retried, whatever its
// retry policy says.
func NonRetryable(err error) error {
	if err == nil {
		return nil
	}
	return &nonRetryableError{err: err}
}

type nonRetryableError struct{ err error }

func (e *nonRetryableError) Error() string { return e.err.Error() }
func (e *nonRetryableError) Unwrap() error { return e.err }

// WithDetails returns err carrying details, a JSON document, across the
// store: a workflow or activity that fails with it records them with its
// failure, and the *ApplicationError its caller gets back (the Err of a
// ChildWorkflowError, the Cause of an ActivityError) has them in Details.
// Use it for what a failed run did that its caller must account for, such
// as what an agent spent. err keeps its type, message, sentinels and retry
// behaviour. Details that are not valid JSON are dropped.
func WithDetails(err error, details json.RawMessage) error {
	if err == nil {
		return nil
	}
	if !json.Valid(details) {
		return err
	}
	return &detailsError{err: err, details: details}
}

type detailsError struct {
	err     error
	details json.RawMessage
}

func (e *detailsError) Error() string { return e.err.Error() }
func (e *detailsError) Unwrap() error { return e.err }

// detailsOf returns the details err carries: those of WithDetails, or of
// err itself when it is an *ApplicationError read back from the store.
func detailsOf(err error) json.RawMessage {
	if de, ok := errors.AsType[*detailsError](err); ok {
		return de.details
	}
	if ae, ok := err.(*ApplicationError); ok {
		return ae.Details
	}
	return nil
}

// ActivityError is returned to workflow code when an activity failed for
// good: its retries were exhausted, its error was not retryable, or it timed
// out. Cause holds the last attempt's error.
type ActivityError struct {
	ActivityType string
	Seq          int64
	Attempt      int
	Cause        error
}

func (e *ActivityError) Error() string {
	return fmt.Sprintf("activity %s (seq %d) failed after %d attempt(s): %v", e.ActivityType, e.Seq, e.Attempt, e.Cause)
}

// Unwrap returns the cause.
func (e *ActivityError) Unwrap() error { return e.Cause }

// TimeoutError reports which timeout expired.
type TimeoutError struct {
	// Kind is "ScheduleToStart", "StartToClose", "ScheduleToClose" or
	// "Heartbeat".
	Kind string
}

func (e *TimeoutError) Error() string { return "durable: " + e.Kind + " timeout" }

// PanicError is a recovered panic in workflow or activity code.
type PanicError struct {
	Value string
	Stack string
}

func (e *PanicError) Error() string { return "panic: " + e.Value }

// NonDeterminismError reports that workflow code issued a different command
// than the one its history recorded at the same point: the code changed in a
// way that is incompatible with running runs.
type NonDeterminismError struct {
	RunID    string
	Seq      int64
	Expected string // the command in history ("" if none)
	Actual   string // the command the code issued ("" if none)
}

func (e *NonDeterminismError) Error() string {
	exp, act := e.Expected, e.Actual
	if exp == "" {
		exp = "nothing"
	}
	if act == "" {
		act = "nothing"
	}
	return fmt.Sprintf("durable: non-deterministic workflow (run %s, seq %d): history has %s, code issued %s", e.RunID, e.Seq, exp, act)
}

// Is matches ErrNonDeterminism.
func (e *NonDeterminismError) Is(target error) bool { return target == ErrNonDeterminism }

// sentinelNames maps recorded type names back to sentinels.
var sentinelNames = map[string]error{ //nolint:gochecknoglobals // immutable lookup table
	"durable.Canceled":        ErrCanceled,
	"durable.Terminated":      ErrTerminated,
	"durable.PayloadTooLarge": ErrPayloadTooLarge,
	"durable.HistoryTooLarge": ErrHistoryTooLarge,
	"durable.NonDeterminism":  ErrNonDeterminism,
	"durable.UnknownActivity": ErrUnknownActivity,
	"durable.UnknownWorkflow": ErrUnknownWorkflow,
	"durable.WorkflowIDInUse": ErrWorkflowIDInUse,
	"durable.RunNotFound":     ErrRunNotFound,
}

// failure is the stored form of an error.
type failure struct {
	Type         string `json:"type"`
	Message      string `json:"message"`
	NonRetryable bool   `json:"non_retryable,omitempty"`
	Stack        string `json:"stack,omitempty"`
	Timeout      string `json:"timeout,omitempty"`
	// RetryAfter is the wait the error asked for before the next attempt
	// (an HTTP 429's Retry-After, say); zero when it did not ask.
	RetryAfter time.Duration `json:"retry_after,omitempty"`
	// Details are those of WithDetails.
	Details json.RawMessage `json:"details,omitempty"`
	Cause   *failure        `json:"cause,omitempty"`
	// The child of a ChildWorkflowError.
	WorkflowType string `json:"workflow_type,omitempty"`
	WorkflowID   string `json:"workflow_id,omitempty"`
	RunID        string `json:"run_id,omitempty"`
}

// retryAfterError is implemented by errors that know how long to wait
// before the next attempt, such as a rate limit's Retry-After.
type retryAfterError interface{ RetryAfter() time.Duration }

// errorTyper is implemented by errors that name their own type for the
// stored failure (ApplicationError.Type) instead of their Go type.
type errorTyper interface{ ErrorType() string }

// nonRetryableMarker is implemented by errors that know whether retrying
// can help; NonRetryable() true stops the activity's retries.
type nonRetryableMarker interface{ NonRetryable() bool }

// toFailure converts an error to its stored form.
func toFailure(err error) *failure {
	if err == nil {
		return nil
	}
	f := &failure{Message: err.Error(), Type: errorTypeName(err), Details: detailsOf(err)}
	var nr *nonRetryableError
	if errors.As(err, &nr) {
		f.NonRetryable = true
	}
	var marker nonRetryableMarker
	if errors.As(err, &marker) && marker.NonRetryable() {
		f.NonRetryable = true
	}
	var typed errorTyper
	if errors.As(err, &typed) {
		f.Type = typed.ErrorType()
	}
	var ra retryAfterError
	if errors.As(err, &ra) {
		f.RetryAfter = max(0, ra.RetryAfter())
	}
	var ae *ApplicationError
	if errors.As(err, &ae) {
		f.Type = ae.Type
		f.NonRetryable = f.NonRetryable || ae.NonRetryable
		f.Stack = ae.Stack
		f.Message = ae.Message
		if ae.Cause != nil {
			f.Cause = toFailure(ae.Cause)
		}
	}
	var pe *PanicError
	if errors.As(err, &pe) {
		f.Type = "durable.Panic"
		f.Stack = pe.Stack
	}
	var te *TimeoutError
	if errors.As(err, &te) {
		f.Type = "durable.Timeout"
		f.Timeout = te.Kind
	}
	var cwe *ChildWorkflowError
	if errors.As(err, &cwe) && cwe.Err != nil {
		f.Type = "durable.ChildWorkflowError"
		f.WorkflowType, f.WorkflowID, f.RunID = cwe.WorkflowType, cwe.WorkflowID, cwe.RunID
		f.Cause = toFailure(cwe.Err)
	}
	var actErr *ActivityError
	if errors.As(err, &actErr) && actErr.Cause != nil {
		f.Type = "durable.ActivityError"
		f.Cause = toFailure(actErr.Cause)
	}
	if f.Type == "durable.ChildWorkflowError" || f.Type == "durable.ActivityError" {
		return f // the cause keeps the sentinel
	}
	for name, s := range sentinelNames {
		if errors.Is(err, s) {
			f.Type = name
			break
		}
	}
	return f
}

// toError converts a stored failure back to an error.
func (f *failure) toError() error {
	if f == nil {
		return nil
	}
	if f.Type == "durable.Timeout" {
		return &TimeoutError{Kind: f.Timeout}
	}
	if f.Type == "durable.ChildWorkflowError" && f.Cause != nil {
		return &ChildWorkflowError{WorkflowType: f.WorkflowType, WorkflowID: f.WorkflowID, RunID: f.RunID,
			Err: f.Cause.toError()}
	}
	ae := &ApplicationError{Type: f.Type, Message: f.Message, NonRetryable: f.NonRetryable, Stack: f.Stack, Details: f.Details}
	if f.Cause != nil {
		if c, ok := f.Cause.toError().(*ApplicationError); ok {
			ae.Cause = c
			ae.Message = trimCause(f.Message, c.Error())
		}
	}
	return ae
}

// trimCause removes ": cause" from the end of msg so that Error() does not
// repeat it.
func trimCause(msg, cause string) string {
	suffix := ": " + cause
	if len(msg) > len(suffix) && msg[len(msg)-len(suffix):] == suffix {
		return msg[:len(msg)-len(suffix)]
	}
	return msg
}

// errorTypeName names an error's dynamic type, looking through the
// non-retryable marker.
func errorTypeName(err error) string {
	for {
		switch w := err.(type) {
		case *nonRetryableError:
			err = w.err
			continue
		case *detailsError:
			err = w.err
			continue
		}
		return reflect.TypeOf(err).String()
	}
}
