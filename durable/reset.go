package durable

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keelhq/keel/durable/store"
)

// ErrInvalidResetPoint: Reset was asked to cut a history where it cannot.
var ErrInvalidResetPoint = errors.New("durable: invalid reset point")

// ResetOptions configure Engine.Reset.
type ResetOptions struct {
	// EventID is the reset point: the new run starts with the old run's
	// history up to and including this event, which must be an input (the
	// start, an activity's or child's outcome, a fired timer, a signal…)
	// and the last of its batch. What the workflow did after it is dropped
	// and decided again by the code deployed now. Required.
	EventID int64
	// WorkflowID of the new run. Optional; by default the new run takes the
	// old run's workflow ID, and the old run, if still running, is
	// terminated. With another ID the old run is left as it is: a fork.
	WorkflowID string
	// Reason is recorded in the new run's start event and, when the old run
	// is terminated, in its history.
	Reason string
}

// Reset starts a new run from a point of an existing run's history: the
// history up to that point is reused — completed activities, model calls
// and tool calls are not run again — and the rest is re-executed by the
// current code. It is how an agent is re-run from step N with a fixed
// prompt. Activities and timers that were pending at the reset point are
// scheduled again; a reset point with a child workflow still running is
// refused.
func (e *Engine) Reset(ctx context.Context, runID string, opts ResetOptions) (RunInfo, error) {
	old, err := e.store.GetRun(ctx, runID)
	if err != nil {
		return RunInfo{}, fmt.Errorf("reset: %w", e.runErr(err, runID))
	}
	if e.workflowDef(old.WorkflowType) == nil {
		return RunInfo{}, fmt.Errorf("reset: %w: %q", ErrUnknownWorkflow, old.WorkflowType)
	}
	events, err := e.store.History(ctx, runID, 0)
	if err != nil {
		return RunInfo{}, fmt.Errorf("reset: load history: %w", err)
	}
	prefix, err := resetPrefix(events, opts.EventID)
	if err != nil {
		return RunInfo{}, fmt.Errorf("reset run %s at event %d: %w", runID, opts.EventID, err)
	}
	workflowID := opts.WorkflowID
	if workflowID == "" {
		workflowID = old.WorkflowID
	}
	reason := opts.Reason
	if reason == "" {
		reason = fmt.Sprintf("reset from run %s at event %d", runID, opts.EventID)
	}
	start, err := unmarshalEvent(prefix[0].Data)
	if err != nil {
		return RunInfo{}, fmt.Errorf("reset: %w", err)
	}
	start.WorkflowID, start.ResetEventID, start.Reason, start.RunID = workflowID, opts.EventID, reason, runID
	if workflowID == old.WorkflowID && old.Status == store.StatusRunning {
		if err := e.Terminate(ctx, workflowID, reason); err != nil && !errors.Is(err, ErrRunClosed) {
			return RunInfo{}, fmt.Errorf("reset: %w", err)
		}
	}
	now := e.clock.Now()
	res, err := e.store.CreateRun(ctx, store.CreateRunParams{
		RunID:        newRunID(),
		WorkflowID:   workflowID,
		WorkflowType: old.WorkflowType,
		TaskQueue:    old.TaskQueue,
		Input:        old.Input,
		StartEvent:   store.Event{Type: EventWorkflowStarted, Time: prefix[0].Time, Data: mustMarshal(start)},
		History:      prefix[1:],
		Inbox:        []store.NewInboxItem{{Type: EventWorkflowReset, Data: mustMarshal(&eventData{RunID: runID, Reason: reason})}},
		Now:          now,
	})
	if err != nil {
		if errors.Is(err, store.ErrWorkflowIDInUse) {
			return RunInfo{}, fmt.Errorf("reset: %w: %q", ErrWorkflowIDInUse, workflowID)
		}
		return RunInfo{}, fmt.Errorf("reset: %w", err)
	}
	if !res.Created {
		return RunInfo{}, fmt.Errorf("reset: %w: %q has a running run", ErrWorkflowIDInUse, workflowID)
	}
	e.notifyQueue(old.TaskQueue)
	info, err := e.DescribeRun(ctx, res.Run.RunID)
	if err != nil {
		return RunInfo{}, fmt.Errorf("reset: %w", err)
	}
	info.Created = true
	return info, nil
}

// resetPrefix checks a reset point and returns the history up to it.
func resetPrefix(events []store.Event, eventID int64) ([]store.Event, error) {
	if eventID < 1 || eventID > int64(len(events)) {
		return nil, fmt.Errorf("%w: the history has events 1 to %d", ErrInvalidResetPoint, len(events))
	}
	ev := events[eventID-1]
	if isCommand(ev.Type) || ev.Type == EventWorkflowTerminated {
		return nil, fmt.Errorf("%w: event %d is a %s, not an input the workflow reacted to", ErrInvalidResetPoint, eventID, ev.Type)
	}
	d, err := unmarshalEvent(ev.Data)
	if err != nil {
		return nil, err
	}
	if d.More {
		return nil, fmt.Errorf("%w: event %d is not the last of its batch", ErrInvalidResetPoint, eventID)
	}
	prefix := events[:eventID]
	// A child still running at the reset point belongs to the old run.
	open := map[int64]bool{}
	for _, ev := range prefix {
		switch ev.Type {
		case EventChildWorkflowInitiated, EventChildWorkflowStartFailed, EventChildWorkflowCompleted, EventChildWorkflowFailed:
			d, err := unmarshalEvent(ev.Data)
			if err != nil {
				return nil, err
			}
			open[d.Seq] = ev.Type == EventChildWorkflowInitiated
		}
	}
	for seq, running := range open {
		if running {
			return nil, fmt.Errorf("%w: the child workflow started at seq %d is still running there", ErrInvalidResetPoint, seq)
		}
	}
	return prefix, nil
}

// replayedTask is an activity task as a replayed command would have
// scheduled it.
type replayedTask struct {
	task store.ActivityTask
	o    ActivityOptions
}

// rescheduleAfterReset schedules again, as new attempts, the activities
// and timers that the copied history left pending.
func (rs *runState) rescheduleAfterReset() {
	now := rs.e.clock.Now()
	for _, seq := range sortedKeys(rs.pendingActivities) {
		rt, ok := rs.replayedTasks[seq]
		if !ok {
			continue
		}
		t := rt.task
		t.RunID, t.WorkflowID = rs.info.RunID, rs.info.WorkflowID
		t.Attempt, t.ScheduledAt, t.ReadyAt = 1, now, now
		t.ScheduleToStartDeadline, t.ScheduleToCloseDeadline = time.Time{}, time.Time{}
		if rt.o.ScheduleToStartTimeout > 0 {
			t.ScheduleToStartDeadline = now.Add(rt.o.ScheduleToStartTimeout)
		}
		if rt.o.ScheduleToCloseTimeout > 0 {
			t.ScheduleToCloseDeadline = now.Add(rt.o.ScheduleToCloseTimeout)
		}
		rs.activities = append(rs.activities, t)
	}
	for _, seq := range sortedKeys(rs.pendingTimers) {
		fireAt, ok := rs.replayedTimers[seq]
		if !ok {
			continue
		}
		rs.timers = append(rs.timers, store.Timer{
			RunID: rs.info.RunID, Seq: seq, FireAt: fireAt,
			Item: store.NewInboxItem{Type: EventTimerFired, Data: mustMarshal(&eventData{Seq: seq})},
		})
	}
}
