package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/keelhq/keel/durable/store"
)

// ErrInvalidHistory: a history to replay is not one the engine exported: it
// does not decode, is empty, does not start with WorkflowStarted, or its
// event IDs are not 1, 2, 3….
var ErrInvalidHistory = errors.New("durable: invalid history")

// Replayer re-executes exported histories against workflow code, without a
// store or a worker, to check that the code still reproduces the commands
// each history recorded: the check to run before deploying changed workflow
// code. A replay runs no activity and touches nothing outside the process:
// activity results, timer firings and signals come from the history, and
// side effects return their recorded values.
//
// A Replayer is safe for concurrent use.
type Replayer struct {
	e *Engine
}

// NewReplayer returns a Replayer for the given workflows (activities may be
// passed too; they are never run). It fails on an empty or duplicate name,
// as Engine.Register does.
func NewReplayer(defs ...Definition) (*Replayer, error) {
	e, err := New(replayStore{}, &Config{
		CacheSize: -1,
		Identity:  "replayer",
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return nil, fmt.Errorf("durable: new replayer: %w", err)
	}
	if err := e.Register(defs...); err != nil {
		return nil, fmt.Errorf("durable: new replayer: %w", err)
	}
	return &Replayer{e: e}, nil
}

// replayStore is the store of a Replayer's engine. A replay never reaches
// it: a call would panic on the nil Store, and the panic would be reported
// as the replay's failure.
type replayStore struct{ store.Store }

// ReplayError is the failure of one history's replay. Err says what went
// wrong: a *NonDeterminismError when the code issued other commands than the
// history recorded, an error matching ErrUnknownWorkflow when no workflow of
// the history's type was given to the Replayer, or a *PanicError or
// *DeadlockError from the workflow code. Match them with errors.As and
// errors.Is.
type ReplayError struct {
	WorkflowID   string
	RunID        string
	WorkflowType string
	// EventID and EventType locate the failure in the history. For a
	// non-determinism they are the recorded command that the code did not
	// reproduce or, when the history holds no command at that point, the
	// input event after which the code issued its extra command; for a
	// panic or deadlock, the input event being applied. Zero when the
	// failure has no place in the history (an unknown workflow type).
	EventID   int64
	EventType string
	Err       error
}

func (e *ReplayError) Error() string {
	where := ""
	if e.EventID != 0 {
		where = fmt.Sprintf(": event %d (%s)", e.EventID, e.EventType)
	}
	var nd *NonDeterminismError
	if errors.As(e.Err, &nd) {
		return fmt.Sprintf("durable: replay of run %s (%s)%s: non-deterministic: history has %s, code issued %s",
			e.RunID, e.WorkflowType, where, orNothing(nd.Expected), orNothing(nd.Actual))
	}
	return fmt.Sprintf("durable: replay of run %s (%s)%s: %v", e.RunID, e.WorkflowType, where, e.Err)
}

// Unwrap returns Err.
func (e *ReplayError) Unwrap() error { return e.Err }

func orNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// ReplayJSON replays a history in the JSON form of Engine.ExportHistory. A
// history that does not decode fails with ErrInvalidHistory; see Replay for
// the rest.
func (r *Replayer) ReplayJSON(data []byte) error {
	var h History
	if err := json.Unmarshal(data, &h); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidHistory, err)
	}
	return r.Replay(&h)
}

// ReplayFile replays the history in a file written from
// Engine.ExportHistory.
func (r *Replayer) ReplayFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("durable: replay: %w", err)
	}
	if err := r.ReplayJSON(data); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Replay re-executes a history against the Replayer's workflow code and
// returns nil when the code issues exactly the commands the history
// recorded, in the same order. Otherwise it returns a *ReplayError (or an
// error matching ErrInvalidHistory for a malformed history). The replay
// stops at the first difference.
//
// A history that ends with WorkflowTerminated, or with a WorkflowFailed that
// the engine wrote itself (a history over its limits, a panic under
// FailWorkflow), is replayed up to that event: the workflow code did not
// issue it. A history that holds only WorkflowStarted has no command to
// compare, and its workflow code is not run.
func (r *Replayer) Replay(h *History) error {
	if h == nil || len(h.Events) == 0 {
		return fmt.Errorf("%w: no events", ErrInvalidHistory)
	}
	events := make([]store.Event, len(h.Events))
	seqEvent := map[int64]int{} // command seq → index in events
	var start *eventData
	for i, ev := range h.Events {
		if ev.ID != int64(i+1) {
			return fmt.Errorf("%w: event %d has ID %d", ErrInvalidHistory, i+1, ev.ID)
		}
		d, err := unmarshalEvent(ev.Data)
		if err != nil {
			return fmt.Errorf("%w: event %d (%s): %w", ErrInvalidHistory, ev.ID, ev.Type, err)
		}
		if i == 0 {
			if ev.Type != EventWorkflowStarted {
				return fmt.Errorf("%w: event 1 is %s, want %s", ErrInvalidHistory, ev.Type, EventWorkflowStarted)
			}
			start = d
		}
		if isCommand(ev.Type) {
			seqEvent[d.Seq] = i
		}
		events[i] = store.Event{ID: ev.ID, Type: ev.Type, Time: ev.Time, Data: ev.Data}
	}
	events = codeEvents(events)

	run := store.Run{
		RunID:        h.Run.RunID,
		WorkflowID:   start.WorkflowID,
		WorkflowType: start.Name,
		TaskQueue:    start.TaskQueue,
	}
	if run.WorkflowID == "" {
		run.WorkflowID = h.Run.WorkflowID
	}
	if run.WorkflowType == "" {
		run.WorkflowType = h.Run.WorkflowType
	}
	fail := func(err error, at int) error {
		re := &ReplayError{WorkflowID: run.WorkflowID, RunID: run.RunID, WorkflowType: run.WorkflowType, Err: err}
		if at >= 0 && at < len(h.Events) {
			re.EventID, re.EventType = h.Events[at].ID, h.Events[at].Type
		}
		return re
	}
	def := r.e.workflowDef(run.WorkflowType)
	if def == nil {
		return fail(fmt.Errorf("%w: %q", ErrUnknownWorkflow, run.WorkflowType), -1)
	}
	if len(events) == 1 {
		return nil
	}

	rs := newRunState(r.e, def, run)
	defer rs.close()
	if err := replaySafely(rs, events); err != nil {
		at := int(rs.historyLen) - 1 // the input being applied
		var nd *NonDeterminismError
		if errors.As(err, &nd) && nd.Expected != "" {
			if i, ok := seqEvent[nd.Seq]; ok {
				at = i
			}
		}
		return fail(err, at)
	}
	return nil
}

// codeEvents drops a history's last event when the workflow code did not
// issue it: WorkflowTerminated, written by a client, or a WorkflowFailed
// that the engine wrote in place of a task's output (it has no sequence
// number).
func codeEvents(events []store.Event) []store.Event {
	if len(events) < 2 {
		return events
	}
	last := events[len(events)-1]
	switch last.Type {
	case EventWorkflowTerminated:
		return events[:len(events)-1]
	case EventWorkflowFailed:
		if d, err := unmarshalEvent(last.Data); err == nil && d.Seq == 0 {
			return events[:len(events)-1]
		}
	}
	return events
}

// replaySafely replays events into rs, turning a panic of the engine's own
// code (rather than the workflow's, which the dispatcher reports) into an
// error.
func replaySafely(rs *runState, events []store.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &PanicError{Value: fmt.Sprint(p), Stack: string(debug.Stack())}
		}
	}()
	return rs.replay(events)
}

// ReplayResult is the outcome of replaying one run's history.
type ReplayResult struct {
	WorkflowID   string
	RunID        string
	WorkflowType string
	// Events is the history's length.
	Events int
	// Err is nil when the code reproduced the history; else a *ReplayError,
	// or the error that kept the history from being read.
	Err error
}

// ReplayRunning replays the history of every running run in e's store
// against the Replayer's workflow code, and returns one result per run,
// newest run first. e needs no workers and need not be started; its own
// registrations are not used. The error is that of listing the runs; a run
// whose history cannot be read has its error in its result.
func (r *Replayer) ReplayRunning(ctx context.Context, e *Engine) ([]ReplayResult, error) {
	var out []ReplayResult
	cursor := ""
	for {
		runs, next, err := e.ListRuns(ctx, &ListOptions{Status: StatusRunning, Cursor: cursor, Limit: 100})
		if err != nil {
			return out, fmt.Errorf("durable: replay running runs: %w", err)
		}
		for _, run := range runs {
			res := ReplayResult{WorkflowID: run.WorkflowID, RunID: run.RunID, WorkflowType: run.WorkflowType}
			h, err := e.GetHistory(ctx, run.RunID)
			if err != nil {
				res.Err = err
			} else {
				res.Events = len(h.Events)
				res.Err = r.Replay(h)
			}
			out = append(out, res)
		}
		if next == "" {
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("durable: replay running runs: %w", err)
		}
		cursor = next
	}
}
