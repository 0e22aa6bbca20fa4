package durable

import (
	"errors"
	"fmt"
	"time"

	"github.com/keelhq/keel/durable/store"
)

// ParentClosePolicy says what happens to a running child workflow when its
// parent run closes (completes, fails, is canceled or terminated).
type ParentClosePolicy = store.ParentClosePolicy

// Parent close policies.
const (
	// ParentCloseTerminate terminates the child: the default.
	ParentCloseTerminate = store.ParentCloseTerminate
	// ParentCloseRequestCancel asks the child to cancel, and lets it clean
	// up.
	ParentCloseRequestCancel = store.ParentCloseRequestCancel
	// ParentCloseAbandon leaves the child running on its own.
	ParentCloseAbandon = store.ParentCloseAbandon
)

// CancellationType says what a workflow waiting on an activity or a child
// workflow does when its run is canceled. The zero value is the default of
// each: TryCancel for activities, WaitCancellationCompleted for children.
type CancellationType int

const (
	// TryCancel asks the activity or child to cancel and returns
	// ErrCanceled at once, without waiting for it to stop.
	TryCancel CancellationType = iota + 1
	// WaitCancellationCompleted asks it to cancel and waits until it has
	// stopped: its outcome (canceled, or a result it finished with anyway)
	// is what the future returns. The default for child workflows.
	WaitCancellationCompleted
	// Abandon does not ask it to cancel; the future returns ErrCanceled at
	// once and whatever it later does is ignored.
	Abandon

	// detachedOp marks work started with WithoutCancel: the run's
	// cancellation leaves it alone.
	detachedOp CancellationType = -1
)

// ChildOptions configure a child workflow.
type ChildOptions struct {
	// ID is the child's workflow ID. Optional; default the parent's
	// workflow ID followed by "/" and the command's sequence number, which
	// is the same on every replay.
	ID string
	// TaskQueue is where the child's tasks run. Optional; default the
	// parent's.
	TaskQueue string
	// ExecutionTimeout bounds the child's whole run, continue-as-new
	// included: when it passes, the child is closed as failed with a
	// *TimeoutError of kind "WorkflowExecution". Optional; default none.
	ExecutionTimeout time.Duration
	// ParentClosePolicy applies when the parent closes first. Optional;
	// default ParentCloseTerminate.
	ParentClosePolicy ParentClosePolicy
	// IDReusePolicy applies when the ID's previous run is closed. Optional;
	// default AllowDuplicate. A running run with the ID always makes the
	// start fail with ErrWorkflowIDInUse.
	IDReusePolicy IDReusePolicy
	// CancellationType applies when the parent is canceled:
	// WaitCancellationCompleted (the default) asks the child to cancel and
	// waits for its outcome, TryCancel asks and returns at once, Abandon
	// leaves the child alone.
	CancellationType CancellationType
	// SearchAttributes and Memo are the child's, as StartOptions'.
	// Optional.
	SearchAttributes map[string]any
	Memo             map[string]any
}

// ChildWorkflowError is how a child workflow's failure reaches its parent:
// Err is the child's own error — an *ApplicationError, ErrCanceled,
// ErrTerminated, a *TimeoutError, or ErrWorkflowIDInUse when the child
// could not start — and is matched through with errors.Is and errors.As.
type ChildWorkflowError struct {
	WorkflowType string
	WorkflowID   string
	RunID        string
	Err          error
}

func (e *ChildWorkflowError) Error() string {
	return fmt.Sprintf("child workflow %s (%s): %v", e.WorkflowType, e.WorkflowID, e.Err)
}

// Unwrap returns the child's error.
func (e *ChildWorkflowError) Unwrap() error { return e.Err }

// ChildFuture is a started child workflow: its result, and a way to
// signal or cancel it.
type ChildFuture[Out any] struct {
	*Future[Out]
	workflowID string
	runID      string
}

// WorkflowID returns the child's workflow ID.
func (f *ChildFuture[Out]) WorkflowID() string { return f.workflowID }

// RunID returns the child's first run ID.
func (f *ChildFuture[Out]) RunID() string { return f.runID }

// StartChild starts the workflow as a child of the calling run, on its own
// task queue with its own history, and returns its future. The child is
// created atomically with the parent's workflow task, so neither a crash
// nor a replay can start it twice. Get returns the child's result, or a
// *ChildWorkflowError.
func (w *Workflow[In, Out]) StartChild(ctx Context, in In, opts *ChildOptions) *ChildFuture[Out] {
	rs := stateOf(ctx)
	f := &ChildFuture[Out]{Future: &Future[Out]{rs: rs}}
	var zero Out
	o := ChildOptions{}
	if opts != nil {
		o = *opts
	}
	input, err := rs.e.encode(in)
	if err != nil {
		f.set(zero, fmt.Errorf("child workflow %s: %w", w.name, err))
		return f
	}
	search, err := encodeSearchAttributes(o.SearchAttributes)
	if err != nil {
		f.set(zero, fmt.Errorf("child workflow %s: %w", w.name, err))
		return f
	}
	memo, err := rs.e.encodeMemo(o.Memo)
	if err != nil {
		f.set(zero, fmt.Errorf("child workflow %s: %w", w.name, err))
		return f
	}
	if canceled(ctx) {
		f.set(zero, ErrCanceled)
		return f
	}
	if o.TaskQueue == "" {
		o.TaskQueue = rs.info.TaskQueue
	}
	cancelType := o.CancellationType
	switch {
	case isDetached(ctx):
		cancelType = detachedOp
	case cancelType == 0:
		cancelType = WaitCancellationCompleted
	}
	seq := rs.seq + 1
	if o.ID == "" {
		o.ID = fmt.Sprintf("%s/%d", rs.info.WorkflowID, seq)
	}
	d := rs.mustCommand(EventChildWorkflowInitiated, &eventData{
		Name: w.name, WorkflowID: o.ID, TaskQueue: o.TaskQueue, Input: input,
		RunID: newRunID(), Duration: o.ExecutionTimeout,
	})
	f.workflowID, f.runID = d.WorkflowID, d.RunID
	rs.children++
	resolve := func(typ string, ev *eventData) {
		switch typ {
		case EventChildWorkflowCompleted:
			v, err := decode[Out](ev.Result)
			f.set(v, err)
		case EventChildWorkflowStartFailed:
			f.set(zero, &ChildWorkflowError{WorkflowType: w.name, WorkflowID: d.WorkflowID, RunID: d.RunID,
				Err: fmt.Errorf("%w: %q", ErrWorkflowIDInUse, d.WorkflowID)})
		default:
			f.set(zero, &ChildWorkflowError{WorkflowType: w.name, WorkflowID: d.WorkflowID, RunID: d.RunID,
				Err: childCause(ev)})
		}
	}
	rs.pendingChildren[d.Seq] = &pendingChild{workflowID: d.WorkflowID, cancel: cancelType, resolve: resolve}
	if !rs.replaying {
		now := rs.e.clock.Now()
		p := store.CreateRunParams{
			RunID:        d.RunID,
			WorkflowID:   d.WorkflowID,
			WorkflowType: w.name,
			TaskQueue:    o.TaskQueue,
			Input:        input,
			StartEvent: store.Event{Type: EventWorkflowStarted, Time: now, Data: mustMarshal(&eventData{
				Name: w.name, WorkflowID: d.WorkflowID, TaskQueue: o.TaskQueue, Input: input,
				ParentRunID: rs.info.RunID, ParentWorkflowID: rs.info.WorkflowID, FireAt: deadlineOf(now, o.ExecutionTimeout),
			})},
			ReusePolicy:      o.IDReusePolicy,
			Now:              now,
			Parent:           &store.ParentRef{RunID: rs.info.RunID, Seq: d.Seq, ClosePolicy: o.ParentClosePolicy},
			SearchAttributes: search,
			Memo:             memo,
		}
		if o.ExecutionTimeout > 0 {
			p.Timers = executionTimers(now.Add(o.ExecutionTimeout))
		}
		rs.startChildren = append(rs.startChildren, store.ChildStart{
			Run:        p,
			FailedItem: store.NewInboxItem{Type: EventChildWorkflowStartFailed, Data: mustMarshal(&eventData{Seq: d.Seq})},
		})
	}
	return f
}

// RunChild starts the workflow as a child and waits for its result.
func (w *Workflow[In, Out]) RunChild(ctx Context, in In, opts *ChildOptions) (Out, error) {
	return w.StartChild(ctx, in, opts).Get(ctx)
}

// childCause turns a child's closing event into the error its parent sees.
func childCause(ev *eventData) error {
	switch store.RunStatus(ev.Reason) {
	case store.StatusTerminated:
		return ErrTerminated
	case store.StatusCanceled:
		return ErrCanceled
	}
	if ev.Failure == nil {
		return errors.New("child workflow failed")
	}
	return ev.Failure.toError()
}

// pendingChild is a started child whose outcome the run waits for.
type pendingChild struct {
	workflowID string
	cancel     CancellationType
	resolve    func(typ string, ev *eventData)
}

// SignalExternal sends a signal to the running run of another workflow ID
// (a child, or any workflow) from workflow code. The signal is written
// when the calling workflow task commits; the future resolves once it was
// delivered, or with ErrRunNotFound when no run of that ID is running.
func SignalExternal(ctx Context, workflowID, name string, v any) *Future[struct{}] {
	rs := stateOf(ctx)
	f := &Future[struct{}]{rs: rs}
	payload, err := rs.e.encode(v)
	if err != nil {
		f.set(struct{}{}, fmt.Errorf("signal %s to %s: %w", name, workflowID, err))
		return f
	}
	d := rs.mustCommand(EventExternalSignalInitiated, &eventData{Name: name, WorkflowID: workflowID, Input: payload})
	rs.external(d.Seq, workflowID, false, store.NewInboxItem{Type: EventSignalReceived,
		Data: mustMarshal(&eventData{Name: name, Input: payload, WorkflowID: rs.info.WorkflowID})}, f)
	return f
}

// RequestCancelExternal asks the running run of another workflow ID to
// cancel, from workflow code; the future resolves once the request was
// delivered, or with ErrRunNotFound.
func RequestCancelExternal(ctx Context, workflowID string) *Future[struct{}] {
	rs := stateOf(ctx)
	f := &Future[struct{}]{rs: rs}
	d := rs.mustCommand(EventExternalCancelInitiated, &eventData{WorkflowID: workflowID})
	rs.external(d.Seq, workflowID, true, cancelItem("requested by workflow "+rs.info.WorkflowID), f)
	return f
}

// Signal sends a signal to the child; see SignalExternal.
func (f *ChildFuture[Out]) Signal(ctx Context, name string, v any) *Future[struct{}] {
	return SignalExternal(ctx, f.workflowID, name, v)
}

// RequestCancel asks the child to cancel; its future then resolves with
// its outcome (a *ChildWorkflowError wrapping ErrCanceled if it stopped).
func (f *ChildFuture[Out]) RequestCancel(ctx Context) *Future[struct{}] {
	return RequestCancelExternal(ctx, f.workflowID)
}

func cancelItem(reason string) store.NewInboxItem {
	return store.NewInboxItem{Type: EventCancelRequested, Data: mustMarshal(&eventData{Reason: reason})}
}

// external records an external request issued at seq; f resolves when its
// outcome comes back.
func (rs *runState) external(seq int64, workflowID string, cancel bool, item store.NewInboxItem, f *Future[struct{}]) {
	rs.pendingExternal[seq] = func(err error) { f.set(struct{}{}, err) }
	if rs.replaying {
		return
	}
	rs.externalReqs = append(rs.externalReqs, store.ExternalRequest{
		WorkflowID: workflowID, Item: item, Cancel: cancel,
		DoneItem:   store.NewInboxItem{Type: EventExternalRequestDone, Data: mustMarshal(&eventData{Seq: seq})},
		FailedItem: store.NewInboxItem{Type: EventExternalRequestFailed, Data: mustMarshal(&eventData{Seq: seq, WorkflowID: workflowID})},
	})
}

// ContinueAsNewError, returned by a workflow function, closes the run and
// starts a new run of the same workflow ID with Input; make it with
// Workflow.ContinueAsNew.
type ContinueAsNewError struct {
	WorkflowType string
	Input        []byte
}

func (e *ContinueAsNewError) Error() string {
	return "continue as new " + e.WorkflowType
}

// ContinueAsNew returns the error that, returned by the workflow function,
// closes the run and starts a fresh one of the same workflow ID with in as
// its input: the way to keep the history of a workflow that runs for
// months bounded. Signals that arrive while the run closes are carried
// over to the new run. The new run keeps the parent, if any, and the
// children that are still running.
func (w *Workflow[In, Out]) ContinueAsNew(ctx Context, in In) error {
	input, err := stateOf(ctx).e.encode(in)
	if err != nil {
		return fmt.Errorf("continue as new %s: %w", w.name, err)
	}
	return &ContinueAsNewError{WorkflowType: w.name, Input: input}
}

// ContinueAsNewSuggested reports whether the run's history has passed the
// warning limits (Limits.WarnEvents, Limits.WarnBytes), the moment to
// continue as new. It answers the same on every replay.
func ContinueAsNewSuggested(ctx Context) bool {
	rs := stateOf(ctx)
	l := rs.e.limits
	return rs.inputLen >= l.WarnEvents || rs.inputBytes >= l.WarnBytes
}

// deadlineOf is the execution deadline of a run started at now with
// timeout d, or nil for none.
func deadlineOf(now time.Time, d time.Duration) *time.Time {
	if d <= 0 {
		return nil
	}
	t := now.Add(d)
	return &t
}

// executionTimers is the timer that ends a run at its execution deadline.
// Its sequence number, 0, is one no command uses.
func executionTimers(deadline time.Time) []store.Timer {
	return []store.Timer{{Seq: 0, FireAt: deadline,
		Item: store.NewInboxItem{Type: EventWorkflowTimedOut, Data: mustMarshal(&eventData{})}}}
}
