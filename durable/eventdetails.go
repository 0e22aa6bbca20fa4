package durable

import (
	"encoding/json"
	"fmt"
	"time"
)

// EventDetails are the decoded data of a history event. Each event type
// sets a subset of the fields.
type EventDetails struct {
	// Seq is a command's sequence number; on an input that answers a
	// command (ActivityCompleted, ActivityFailed, TimerFired), the sequence
	// number of that command.
	Seq int64
	// Target is the sequence number that a cancel command
	// (ActivityCancelRequested, TimerCanceled) refers to.
	Target int64
	// Name is the workflow type (WorkflowStarted), the activity type
	// (ActivityScheduled), the signal name (SignalReceived) or the marker
	// name (MarkerRecorded: "SideEffect", or "Patch:" and the change ID).
	Name string
	// WorkflowID and TaskQueue are set on WorkflowStarted; TaskQueue also on
	// ActivityScheduled.
	WorkflowID string
	TaskQueue  string
	// Input is the JSON input of a workflow, an activity or a signal.
	Input json.RawMessage
	// Result is the JSON result of an activity, a side effect or the
	// workflow.
	Result json.RawMessage
	// Error is the recorded failure of an activity or of the workflow, as
	// an *ApplicationError or a *TimeoutError.
	Error error
	// Duration and FireAt are a timer's.
	Duration time.Duration
	FireAt   time.Time
	// Attempt is the activity attempt that produced an outcome.
	Attempt int
	// Reason is a cancel or terminate request's.
	Reason string
	// RunID is a child's run ID (ChildWorkflowInitiated and the child's
	// outcome) or a successor's (WorkflowContinuedAsNew).
	RunID string
	// ParentRunID and ParentWorkflowID are set on a child's WorkflowStarted.
	ParentRunID      string
	ParentWorkflowID string
}

// Details decodes the event's data.
func (ev HistoryEvent) Details() (EventDetails, error) {
	d, err := unmarshalEvent(ev.Data)
	if err != nil {
		return EventDetails{}, fmt.Errorf("event %d (%s): %w", ev.ID, ev.Type, err)
	}
	out := EventDetails{
		Seq:        d.Seq,
		Target:     d.Target,
		Name:       d.Name,
		WorkflowID: d.WorkflowID,
		TaskQueue:  d.TaskQueue,
		Input:      d.Input,
		Result:     d.Result,
		Duration:   d.Duration,
		Attempt:    d.Attempt,
		Reason:     d.Reason,

		RunID:            d.RunID,
		ParentRunID:      d.ParentRunID,
		ParentWorkflowID: d.ParentWorkflowID,
	}
	if d.Failure != nil {
		out.Error = d.Failure.toError()
	}
	if d.FireAt != nil {
		out.FireAt = *d.FireAt
	}
	return out, nil
}
