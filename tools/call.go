package tools

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/keelhq/keel/durable"
)

// Call is one tool call requested by a model.
type Call struct {
	// ID is the model's ID for the call, echoed back with its result.
	ID string `json:"id,omitempty"`
	// Name is the tool's name.
	Name string `json:"name"`
	// Arguments is the JSON object of arguments, exactly as the model
	// wrote it: it may be malformed, so it is kept as a string.
	Arguments string `json:"arguments,omitempty"`
}

// Result is the outcome of a tool call, as the model reads it. A failed call
// is a Result with IsError set, not a Go error: the model reads the error
// and may correct its call.
type Result struct {
	// CallID and Tool identify the call.
	CallID string `json:"call_id,omitempty"`
	Tool   string `json:"tool,omitempty"`
	// Content is the handler's output as JSON; empty for an error.
	Content json.RawMessage `json:"content,omitempty"`
	// IsError is set when the call did not produce Content.
	IsError bool `json:"is_error,omitempty"`
	// ErrorKind says why; Error is the message for the model.
	ErrorKind ErrorKind `json:"error_kind,omitempty"`
	Error     string    `json:"error,omitempty"`
	// Review is the reviewer's decision, for a call that needed approval.
	Review *ApprovalDecision `json:"review,omitempty"`
}

// Text renders the result as the content of a tool message for a model:
// a string output as is, any other output as its JSON, an error as
// "error: " and its message. When a reviewer changed the arguments or
// refused the call, their comment is included.
func (r Result) Text() string {
	var sb strings.Builder
	switch {
	case r.IsError:
		sb.WriteString("error: ")
		sb.WriteString(r.Error)
	default:
		var s string
		if err := json.Unmarshal(r.Content, &s); err == nil {
			sb.WriteString(s)
		} else {
			sb.Write(r.Content)
		}
	}
	if r.Review != nil && r.Review.Approved && len(r.Review.Arguments) > 0 {
		fmt.Fprintf(&sb, "\n(note: a reviewer changed the arguments of this call to %s", r.Review.Arguments)
		if r.Review.Comment != "" {
			fmt.Fprintf(&sb, "; comment: %s", r.Review.Comment)
		}
		sb.WriteString(")")
	}
	return sb.String()
}

// CallOptions configure one call from workflow code. The zero value is
// valid for tools that need no approval.
type CallOptions struct {
	// Approver decides calls of tools that require approval. Optional;
	// without one such calls come back as an ErrorApproval result.
	Approver Approver
	// Activity overrides the tool's activity options for this call.
	// Optional.
	Activity *durable.ActivityOptions
}

// Future is the eventual Result of a tool call started from workflow code.
type Future struct {
	call  Call
	act   *durable.Future[Result]
	ready bool
	res   Result
	err   error
}

// IsReady reports whether Get would return without blocking, so that a
// Future can be used in a durable.Selector.
func (f *Future) IsReady() bool {
	if f.act != nil {
		return f.act.IsReady()
	}
	return f.ready
}

// Get waits for the call's Result. Tool failures of every kind are in the
// Result; the error is non-nil only when the run was canceled
// (durable.ErrCanceled).
func (f *Future) Get(ctx durable.Context) (Result, error) {
	if f.act != nil {
		r, err := f.act.Get(ctx)
		return f.complete(r, err)
	}
	if err := durable.Await(ctx, func() bool { return f.ready }); err != nil {
		return Result{}, err
	}
	return f.res, f.err
}

// complete turns an activity's outcome into the call's Result.
func (f *Future) complete(r Result, err error) (Result, error) {
	if err != nil {
		if errors.Is(err, durable.ErrCanceled) {
			return Result{}, err
		}
		r = Result{IsError: true, ErrorKind: ErrorFailed, Error: failureMessage(f.call.Name, err)}
	}
	r.CallID, r.Tool = f.call.ID, f.call.Name
	return r, nil
}

func (f *Future) set(r Result, err error) {
	if err == nil {
		r.CallID, r.Tool = f.call.ID, f.call.Name
	}
	f.res, f.err, f.ready = r, err, true
}

// readyFuture returns a Future already holding an error Result.
func readyFuture(call Call, kind ErrorKind, msg string) *Future {
	f := &Future{call: call}
	f.set(Result{IsError: true, ErrorKind: kind, Error: msg}, nil)
	return f
}

// failureMessage describes a call that failed for good.
func failureMessage(tool string, err error) string {
	var ae *durable.ActivityError
	if errors.As(err, &ae) {
		var te *durable.TimeoutError
		if errors.As(ae.Cause, &te) {
			return fmt.Sprintf("tool %s timed out (%s) after %d attempt(s)", tool, te.Kind, ae.Attempt)
		}
		return fmt.Sprintf("tool %s failed after %d attempt(s): %v", tool, ae.Attempt, ae.Cause)
	}
	return fmt.Sprintf("tool %s failed: %v", tool, err)
}

// Run is Start followed by Get.
func (t *Tool) Run(ctx durable.Context, call Call, opts *CallOptions) (Result, error) {
	return t.Start(ctx, call, opts).Get(ctx)
}

// Start runs a call from workflow code and returns its Future: the call runs
// as the tool's activity, so that it survives crashes and is never repeated
// once recorded. Start several calls before getting any of their results to
// run them in parallel. A tool that requires approval first asks
// opts.Approver (in a coroutine of its own, so other calls go on
// meanwhile); a refusal becomes an ErrorRejected result with the
// reviewer's comment, and an approval that carries edited arguments runs
// with them instead. opts may be nil. call.Name is not checked against the
// tool's name.
func (t *Tool) Start(ctx durable.Context, call Call, opts *CallOptions) *Future {
	if call.Name == "" {
		call.Name = t.name
	}
	if opts == nil {
		opts = &CallOptions{}
	}
	if !t.opts.RequiresApproval {
		return &Future{call: call, act: t.schedule(ctx, call.ID, call.Arguments, opts)}
	}
	// Never ask a reviewer about a call that could not run.
	if err := t.Validate(call.Arguments); err != nil {
		return readyFuture(call, ErrorInvalidArguments, err.Error())
	}
	if opts.Approver == nil {
		return readyFuture(call, ErrorApproval, fmt.Sprintf("tool %s requires approval and no approver is configured; the call did not run", t.name))
	}
	f := &Future{call: call}
	durable.Go(ctx, func(ctx durable.Context) {
		f.set(t.approveAndRun(ctx, call, opts))
	})
	return f
}

// approveAndRun asks for approval, then runs the call if approved.
func (t *Tool) approveAndRun(ctx durable.Context, call Call, opts *CallOptions) (Result, error) {
	reason := t.opts.ApprovalReason
	if reason == "" {
		reason = "tool " + t.name + " requires approval"
	}
	d, err := opts.Approver.Approve(ctx, ApprovalRequest{
		Action: t.name, Arguments: json.RawMessage(normalizeArgs(call.Arguments)), Reason: reason, CallID: call.ID,
	})
	if err != nil {
		if errors.Is(err, durable.ErrCanceled) {
			return Result{}, err
		}
		return Result{IsError: true, ErrorKind: ErrorApproval,
			Error: fmt.Sprintf("approval of tool %s failed, so the call did not run: %v", t.name, err)}, nil
	}
	review := d
	if !d.Approved {
		msg := fmt.Sprintf("the call to tool %s was refused by a reviewer and did not run", t.name)
		if d.Reviewer != "" {
			msg = fmt.Sprintf("the call to tool %s was refused by reviewer %s and did not run", t.name, d.Reviewer)
		}
		if d.Comment != "" {
			msg += "; their comment: " + d.Comment
		}
		return Result{IsError: true, ErrorKind: ErrorRejected, Error: msg, Review: &review}, nil
	}
	args := call.Arguments
	if len(d.Arguments) > 0 {
		args = string(d.Arguments)
	}
	fut := &Future{call: call, act: t.schedule(ctx, call.ID, args, opts)}
	r, err := fut.Get(ctx)
	if err != nil {
		return r, err
	}
	r.Review = &review
	return r, nil
}

// schedule starts the tool's activity.
func (t *Tool) schedule(ctx durable.Context, callID, args string, opts *CallOptions) *durable.Future[Result] {
	in := callInput{CallID: callID, Args: args}
	if opts.Activity != nil {
		return t.activity.StartWithOptions(ctx, in, opts.Activity)
	}
	return t.activity.Start(ctx, in)
}
