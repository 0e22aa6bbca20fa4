package durable

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Event types. Commands are decided by workflow code; inputs happen to a run
// and reach it through its inbox.
const (
	// Inputs.
	EventWorkflowStarted   = "WorkflowStarted"
	EventActivityCompleted = "ActivityCompleted"
	EventActivityFailed    = "ActivityFailed"
	EventTimerFired        = "TimerFired"
	EventSignalReceived    = "SignalReceived"
	EventCancelRequested   = "CancelRequested"
	// EventWorkflowTimedOut: a child's execution timeout passed.
	EventWorkflowTimedOut         = "WorkflowTimedOut"
	EventChildWorkflowStartFailed = "ChildWorkflowStartFailed"
	EventChildWorkflowCompleted   = "ChildWorkflowCompleted"
	EventChildWorkflowFailed      = "ChildWorkflowFailed"
	EventExternalRequestDone      = "ExternalRequestDone"
	EventExternalRequestFailed    = "ExternalRequestFailed"
	EventUpdateAccepted           = "UpdateAccepted"
	// EventWorkflowReset starts a run made by Engine.Reset: the activities
	// and timers its copied history left pending are scheduled again.
	EventWorkflowReset = "WorkflowReset"

	// Commands.
	EventActivityScheduled       = "ActivityScheduled"
	EventActivityCancelRequested = "ActivityCancelRequested"
	EventTimerStarted            = "TimerStarted"
	EventTimerCanceled           = "TimerCanceled"
	EventMarkerRecorded          = "MarkerRecorded"
	EventWorkflowCompleted       = "WorkflowCompleted"
	EventWorkflowFailed          = "WorkflowFailed"
	EventWorkflowCanceled        = "WorkflowCanceled"
	EventWorkflowContinuedAsNew  = "WorkflowContinuedAsNew"
	EventChildWorkflowInitiated  = "ChildWorkflowInitiated"
	EventExternalSignalInitiated = "ExternalSignalInitiated"
	EventExternalCancelInitiated = "ExternalCancelInitiated"
	EventUpdateCompleted         = "UpdateCompleted"

	// Written by the client, outside any workflow task.
	EventWorkflowTerminated = "WorkflowTerminated"
)

// isCommand reports whether an event type is a command.
func isCommand(typ string) bool {
	switch typ {
	case EventActivityScheduled, EventActivityCancelRequested, EventTimerStarted,
		EventTimerCanceled, EventMarkerRecorded, EventWorkflowCompleted,
		EventWorkflowFailed, EventWorkflowCanceled, EventWorkflowContinuedAsNew, EventChildWorkflowInitiated,
		EventExternalSignalInitiated, EventExternalCancelInitiated, EventUpdateCompleted:
		return true
	}
	return false
}

// eventData is the JSON body of every event; each type uses a subset.
type eventData struct {
	Seq        int64           `json:"seq,omitempty"`
	Target     int64           `json:"target,omitempty"` // seq a cancel refers to
	Name       string          `json:"name,omitempty"`   // workflow, activity, signal or marker name
	WorkflowID string          `json:"workflow_id,omitempty"`
	TaskQueue  string          `json:"task_queue,omitempty"`
	Input      json.RawMessage `json:"input,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	Failure    *failure        `json:"failure,omitempty"`
	Duration   time.Duration   `json:"duration,omitempty"`
	FireAt     *time.Time      `json:"fire_at,omitempty"`
	Attempt    int             `json:"attempt,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	// RunID is a child's or a successor's run ID.
	RunID string `json:"run_id,omitempty"`
	// ParentRunID and ParentWorkflowID describe a child's parent in its
	// start event.
	ParentRunID      string `json:"parent_run_id,omitempty"`
	ParentWorkflowID string `json:"parent_workflow_id,omitempty"`
	UpdateID         string `json:"update_id,omitempty"`
	// More marks an input that is not the last of the batch its workflow
	// task applied before running the workflow's code.
	More bool `json:"more,omitempty"`
	// ResetEventID, in a reset run's start event, is the last event copied
	// from the run it was reset from.
	ResetEventID int64 `json:"reset_event_id,omitempty"`
}

// asDecoded puts the values that deliver hands to workflow code (Input
// and Result) in the form that decoding d's encoding gives them, so that
// an event applied as the engine built it gives the code the bytes a
// replay of its history gives.
func (d *eventData) asDecoded() {
	d.Input = canonicalRaw(d.Input)
	d.Result = canonicalRaw(d.Result)
}

// canonicalRaw returns raw as an event's data holds it once encoded and
// decoded again: compacted, with HTML characters escaped (what
// json.Marshal writes for a RawMessage), and nil when empty (what
// omitempty leaves out). raw must be valid JSON, as every encoded value
// is.
func canonicalRaw(raw []byte) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	b, err := json.Marshal(json.RawMessage(raw))
	if err != nil {
		panic(fmt.Sprintf("durable: encode value: %v", err))
	}
	return b
}

func mustMarshal(d *eventData) []byte {
	b, err := json.Marshal(d)
	if err != nil {
		// eventData holds only JSON-safe fields; RawMessages were produced
		// by json.Marshal.
		panic(fmt.Sprintf("durable: marshal event: %v", err))
	}
	return b
}

func unmarshalEvent(b []byte) (*eventData, error) {
	d := &eventData{}
	if err := json.Unmarshal(b, d); err != nil {
		return nil, fmt.Errorf("durable: decode event: %w", err)
	}
	return d, nil
}

// commandSig describes a command for matching and error messages.
func commandSig(typ string, d *eventData) string {
	s := typ
	if d.Name != "" {
		s += "(" + d.Name
		if len(d.Input) > 0 && typ == EventActivityScheduled {
			sum := sha256.Sum256(d.Input)
			s += ", input sha256:" + hex.EncodeToString(sum[:4])
		}
		s += ")"
	}
	if d.Target != 0 {
		s += fmt.Sprintf("(target %d)", d.Target)
	}
	return s
}
