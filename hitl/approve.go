package hitl

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keelhq/keel/durable"
)

// DefaultTimeout is how long an approval waits when Request.Timeout is
// zero.
const DefaultTimeout = 24 * time.Hour

// Names of the activities a Service registers and Approve calls.
const (
	recordActivityName = "hitl.record"
	expireActivityName = "hitl.expire"
)

// Error types of the record activity's non-retryable failures, mapped back
// to sentinels in workflow code.
const (
	errTypeUnknownGroup   = "hitl.UnknownGroup"
	errTypeInvalidRequest = "hitl.InvalidRequest"
)

// Request asks for an approval.
type Request struct {
	// Title is the one-line summary reviewers see. Required.
	Title string
	// Details say why the action is needed, with whatever context helps
	// the reviewer. Optional.
	Details string
	// Action names what is authorized, for example a tool name. Required.
	Action string
	// Args are the exact arguments authorized, encoded as JSON (pass a
	// json.RawMessage to keep bytes you already have). The approval is
	// bound to Hash(Action, Args). Optional; default null.
	Args any
	// Group is the reviewer group that decides. Required; it must be one
	// of the Service's Groups.
	Group string
	// Required is how many members of Group must approve (N of the
	// group's M). Optional; default 1. It may not exceed the members
	// other than Requester.
	Required int
	// Timeout is how long to wait for the decision. Optional; default
	// DefaultTimeout.
	Timeout time.Duration
	// Requester identifies who asks (a user, an agent). Optional; when
	// set, that identity may not decide the request.
	Requester string
}

// recordInput is the record activity's input: a Request made concrete in
// workflow code (canonical arguments, hash, times).
type recordInput struct {
	Title     string          `json:"title"`
	Details   string          `json:"details,omitempty"`
	Action    string          `json:"action"`
	Args      json.RawMessage `json:"args"`
	ArgsHash  string          `json:"args_hash"`
	Group     string          `json:"group"`
	Required  int             `json:"required"`
	Requester string          `json:"requester,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	Deadline  time.Time       `json:"deadline"`
}

func (r Request) input(ctx durable.Context) (recordInput, error) {
	var missing []string
	if strings.TrimSpace(r.Title) == "" {
		missing = append(missing, "Title")
	}
	if r.Action == "" {
		missing = append(missing, "Action")
	}
	if r.Group == "" {
		missing = append(missing, "Group")
	}
	if len(missing) > 0 {
		return recordInput{}, fmt.Errorf("%w: %s required", ErrInvalidRequest, strings.Join(missing, ", "))
	}
	if r.Required < 0 {
		return recordInput{}, fmt.Errorf("%w: Required is %d", ErrInvalidRequest, r.Required)
	}
	if r.Timeout < 0 {
		return recordInput{}, fmt.Errorf("%w: Timeout is %s", ErrInvalidRequest, r.Timeout)
	}
	raw, err := json.Marshal(r.Args)
	if err != nil {
		return recordInput{}, fmt.Errorf("%w: encode Args: %w", ErrInvalidRequest, err)
	}
	args, err := Canonical(raw)
	if err != nil {
		return recordInput{}, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	hash, err := Hash(r.Action, args)
	if err != nil {
		return recordInput{}, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	in := recordInput{
		Title: r.Title, Details: r.Details, Action: r.Action, Args: args, ArgsHash: hash,
		Group: r.Group, Required: max(r.Required, 1), Requester: r.Requester,
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	in.CreatedAt = durable.Now(ctx).UTC()
	in.Deadline = in.CreatedAt.Add(timeout)
	return in, nil
}

// activityOptions are those of the record and expire activities: both are
// idempotent database writes, retried until the database answers.
func activityOptions() *durable.ActivityOptions {
	return &durable.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: durable.RetryPolicy{
			InitialInterval: time.Second,
			MaximumInterval: time.Minute,
		},
	}
}

// Approve asks for an approval and waits, durably, for its outcome. It
// records the pending approval (an activity, idempotent: a retried attempt
// finds the row its earlier attempt wrote), then waits for the votes that
// Service.Decide signals, with a durable timer for the deadline: no
// goroutine is held while the run waits, for minutes or days.
//
// It returns a Decision when the approval closes: approved by Required
// members, rejected by one, or timed out. A timeout is not an error: the
// workflow may escalate, for example by calling Approve again for another
// group. Errors are ErrInvalidRequest and ErrUnknownGroup for a bad
// Request, durable.ErrCanceled when the run is canceled while it waits, or
// an activity's failure.
//
// Each vote is a signal in the run's history (see VoteEvent), so the run's
// timeline shows who decided, when and with which comment. The Service
// that executes the activities must be registered on the engine (New does
// it).
func Approve(ctx durable.Context, req Request) (Decision, error) {
	in, err := req.input(ctx)
	if err != nil {
		return Decision{}, fmt.Errorf("hitl: approve: %w", err)
	}
	record := durable.NewActivity[recordInput, Approval](recordActivityName, nil, activityOptions())
	a, err := record.Run(ctx, in)
	if err != nil {
		return Decision{}, fmt.Errorf("hitl: approve: record approval: %w", activityErr(err))
	}
	a.Args, a.Details = in.Args, in.Details // not sent back, to keep history small
	if a.Status.Closed() {
		return decisionOf(&a), nil // decided while the activity was retried
	}

	sig := durable.NewSignal[VoteEvent](SignalName(a.ID))
	for {
		var ev VoteEvent
		var ok bool
		if remaining := a.Deadline.Sub(durable.Now(ctx)); remaining > 0 {
			ev, ok, err = sig.ReceiveWithTimeout(ctx, remaining)
		} else {
			ev, ok, err = sig.TryReceive(ctx)
		}
		if errors.Is(err, durable.ErrCanceled) {
			return Decision{}, fmt.Errorf("hitl: approve: wait for approval %s: %w", a.ID, err)
		}
		if err != nil {
			// Not a VoteEvent: not sent by a Service. Skip it.
			ctx.Logger().Warn("hitl: ignoring malformed decision signal", "approval", a.ID, "error", err)
			continue
		}
		if !ok {
			expire := durable.NewActivity[string, Approval](expireActivityName, nil, activityOptions())
			final, err := expire.Run(ctx, a.ID)
			if err != nil {
				return Decision{}, fmt.Errorf("hitl: approve: expire approval %s: %w", a.ID, activityErr(err))
			}
			final.Args, final.Details = in.Args, in.Details
			return decisionOf(&final), nil
		}
		if ev.ApprovalID != a.ID || len(ev.Votes) < len(a.Votes) {
			continue // not for this approval, or older than what we know
		}
		a.Votes, a.Status, a.ClosedAt = ev.Votes, ev.Status, ev.ClosedAt
		if a.Status.Closed() {
			return decisionOf(&a), nil
		}
	}
}

// activityErr maps the record activity's typed failures back to sentinels.
func activityErr(err error) error {
	var ae *durable.ApplicationError
	if errors.As(err, &ae) {
		switch ae.Type {
		case errTypeUnknownGroup:
			return fmt.Errorf("%w: %s", ErrUnknownGroup, ae.Message)
		case errTypeInvalidRequest:
			return fmt.Errorf("%w: %s", ErrInvalidRequest, ae.Message)
		}
	}
	return err
}
