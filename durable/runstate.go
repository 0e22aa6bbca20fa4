package durable

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/keelhq/keel/durable/store"
)

// recordedCommand is a command found in history during replay.
type recordedCommand struct {
	typ     string
	data    *eventData
	matched bool
}

// runState is a run's live workflow execution: its coroutines and what they
// wait for. It is owned by one workflow task at a time and kept in the cache
// between tasks.
type runState struct {
	e    *Engine
	info WorkflowInfo
	def  *workflowDef
	d    *dispatcher
	ctx  *wfContext

	historyLen   int64 // events applied, including this task's new ones
	historyBytes int64
	// inputLen and inputBytes are the history's length and size up to the
	// input being applied: the same live and in replay.
	inputLen   int64
	inputBytes int64
	parent     *store.ParentRef
	deadline   *time.Time // execution deadline, kept across continue-as-new
	seq        int64      // last command sequence number issued
	now        time.Time  // workflow time: the time of the input being applied

	replaying bool
	recorded  map[int64]*recordedCommand

	// Output of the current workflow task.
	newEvents        []store.Event
	activities       []store.ActivityTask
	timers           []store.Timer
	cancelTimers     []int64
	cancelActivities []int64
	startChildren    []store.ChildStart
	externalReqs     []store.ExternalRequest
	closeRun         *store.CloseRun
	search           searchState // search attributes, with this task's upsert

	pendingActivities map[int64]func(result []byte, f *failure, attempt int)
	pendingTimers     map[int64]func(err error)
	pendingChildren   map[int64]*pendingChild
	pendingExternal   map[int64]func(err error)
	activityCancel    map[int64]CancellationType // non-default cancellation types
	detachedTimers    map[int64]bool
	// replayedTasks and replayedTimers are what replayed commands would
	// have scheduled: a reset run schedules the pending ones again.
	replayedTasks  map[int64]replayedTask
	replayedTimers map[int64]time.Time
	children       int                         // children started, ever
	signals        map[string][]bufferedSignal // received, not yet taken by the code
	signalCount    int64
	patches        map[string]bool // change ID → Patch's answer in this run
	queries        map[string]func(args []byte) ([]byte, error)
	updates        map[string]*updateHandler
	// readOnly is set while a query handler runs; any workflow call that
	// would change the run panics (and readOnlyViolated is set).
	readOnly         bool
	readOnlyViolated bool
	// lastApplied is the ID of the last inbox item applied by this task.
	lastApplied     int64
	cancelRequested bool
	warned          bool
}

func newRunState(e *Engine, def *workflowDef, run store.Run) *runState {
	rs := &runState{
		e: e,
		info: WorkflowInfo{
			WorkflowID:   run.WorkflowID,
			RunID:        run.RunID,
			WorkflowType: run.WorkflowType,
			TaskQueue:    run.TaskQueue,
		},
		def:               def,
		parent:            run.Parent,
		search:            newSearchState(run),
		d:                 newDispatcher(e.cfg.DeadlockTimeout),
		pendingChildren:   map[int64]*pendingChild{},
		pendingExternal:   map[int64]func(error){},
		activityCancel:    map[int64]CancellationType{},
		detachedTimers:    map[int64]bool{},
		replayedTasks:     map[int64]replayedTask{},
		replayedTimers:    map[int64]time.Time{},
		pendingActivities: map[int64]func([]byte, *failure, int){},
		pendingTimers:     map[int64]func(error){},
		signals:           map[string][]bufferedSignal{},
		patches:           map[string]bool{},
		queries:           map[string]func([]byte) ([]byte, error){},
		updates:           map[string]*updateHandler{},
	}
	rs.ctx = &wfContext{rs: rs, log: slog.New(&replayHandler{rs: rs, h: e.logger.Handler()}).With(
		"workflow_id", run.WorkflowID, "run_id", run.RunID, "workflow_type", run.WorkflowType)}
	return rs
}

// close unwinds the run's coroutines.
func (rs *runState) close() { rs.d.close() }

// resetOutput clears the current task's output after a commit.
func (rs *runState) resetOutput() {
	rs.newEvents = nil
	rs.activities = nil
	rs.timers = nil
	rs.cancelTimers = nil
	rs.cancelActivities = nil
	rs.startChildren = nil
	rs.externalReqs = nil
	rs.search.upsert = nil
}

// appendEvent adds an event to this task's output.
func (rs *runState) appendEvent(typ string, data []byte, t time.Time) store.Event {
	rs.historyLen++
	rs.historyBytes += int64(len(data))
	ev := store.Event{ID: rs.historyLen, Type: typ, Time: t, Data: data}
	rs.newEvents = append(rs.newEvents, ev)
	return ev
}

// command issues a command. Live, it is appended to history. In replay it is
// matched against the command recorded at the same sequence number, whose
// data is returned (so a side effect reads its recorded value).
func (rs *runState) command(typ string, d *eventData) (*eventData, error) {
	rs.mustWrite()
	rs.seq++
	d.Seq = rs.seq
	if rs.replaying {
		rec, ok := rs.recorded[d.Seq]
		if !ok {
			return nil, &NonDeterminismError{RunID: rs.info.RunID, Seq: d.Seq, Actual: commandSig(typ, d)}
		}
		if rec.typ != typ || rec.data.Name != d.Name || rec.data.Target != d.Target || rec.data.WorkflowID != d.WorkflowID ||
			(typ == EventActivityScheduled && !bytes.Equal(rec.data.Input, d.Input)) {
			return nil, &NonDeterminismError{RunID: rs.info.RunID, Seq: d.Seq,
				Expected: commandSig(rec.typ, rec.data), Actual: commandSig(typ, d)}
		}
		rec.matched = true
		return rec.data, nil
	}
	rs.appendEvent(typ, mustMarshal(d), rs.e.clock.Now())
	return d, nil
}

// mustWrite panics when a query handler tries to change the run.
func (rs *runState) mustWrite() {
	if rs.readOnly {
		panic("durable: a query handler cannot change the workflow")
	}
}

// mustCommand issues a command from workflow code; a non-determinism error
// unwinds the coroutine and fails the task.
func (rs *runState) mustCommand(typ string, d *eventData) *eventData {
	out, err := rs.command(typ, d)
	if err != nil {
		panic(err)
	}
	return out
}

// replay re-executes the run from its recorded history.
//
// The start event is the one input written to history outside a workflow
// task (by CreateRun). While it is the only event, no task has recorded any
// command after it, so it is applied live: what the code issues is new.
// Likewise the history a reset copies into a new run (Engine.Reset) ends
// with an input whose task's commands were dropped: until the new run's
// first task commits, that last input is applied live.
func (rs *runState) replay(events []store.Event) error {
	if len(events) == 1 && events[0].Type == EventWorkflowStarted {
		return rs.replayStart(events[0], nil)
	}
	liveFrom := int64(-1) // the ID from which inputs are applied live
	if len(events) > 0 && events[0].Type == EventWorkflowStarted {
		if d, err := unmarshalEvent(events[0].Data); err == nil && d.ResetEventID > 0 &&
			d.ResetEventID == events[len(events)-1].ID {
			liveFrom = d.ResetEventID
		}
	}
	rs.replaying = true
	defer func() { rs.replaying = false; rs.recorded = nil }()
	rs.recorded = make(map[int64]*recordedCommand)
	seqOf := make(map[int64]int64) // event ID → command seq
	for _, ev := range events {
		if !isCommand(ev.Type) {
			continue
		}
		d, err := unmarshalEvent(ev.Data)
		if err != nil {
			return err
		}
		rs.recorded[d.Seq] = &recordedCommand{typ: ev.Type, data: d}
		seqOf[ev.ID] = d.Seq
	}
	var sinceInput []int64
	checkMatched := func() error {
		for _, seq := range sinceInput {
			if rec := rs.recorded[seq]; !rec.matched {
				return &NonDeterminismError{RunID: rs.info.RunID, Seq: seq, Expected: commandSig(rec.typ, rec.data)}
			}
		}
		sinceInput = sinceInput[:0]
		return nil
	}
	for _, ev := range events {
		rs.historyLen = ev.ID
		rs.historyBytes += int64(len(ev.Data))
		if isCommand(ev.Type) {
			sinceInput = append(sinceInput, seqOf[ev.ID])
			continue
		}
		if err := checkMatched(); err != nil {
			return err
		}
		if ev.Type == EventWorkflowTerminated {
			break
		}
		rs.inputLen, rs.inputBytes = rs.historyLen, rs.historyBytes
		if ev.ID == liveFrom {
			if err := checkMatched(); err != nil {
				return err
			}
			rs.replaying = false
		}
		// An input marked "more" is followed by the rest of its batch; a
		// history that ends on one is a run that closed mid-batch, whose
		// task ran the coroutines no further.
		if err := rs.applyInput(ev, nil); err != nil {
			return err
		}
	}
	return checkMatched()
}

// replayStart applies a history of one event, the start event ev, live.
// d is the data ev was encoded from, or nil to decode ev's: a caller that
// has just encoded the event passes what it encoded.
func (rs *runState) replayStart(ev store.Event, d *eventData) error {
	rs.historyLen = ev.ID
	rs.historyBytes = int64(len(ev.Data))
	rs.inputLen, rs.inputBytes = rs.historyLen, rs.historyBytes
	return rs.applyInput(ev, d)
}

// applyInbox moves inbox items into history, applying each in turn. It stops
// once the run closes.
func (rs *runState) applyInbox(items []store.InboxItem) error {
	for i, it := range items {
		if rs.closeRun != nil {
			return nil
		}
		if i < len(items)-1 {
			var err error
			if it.Data, err = markMore(it.Data); err != nil {
				return err
			}
		}
		if err := rs.applyItem(it, nil); err != nil {
			return err
		}
	}
	return nil
}

// applyItem moves one inbox item into history and applies it, as
// applyInbox does. d is the data the item was encoded from, which the
// caller that has just encoded it passes so that it is not decoded again,
// or nil.
func (rs *runState) applyItem(it store.InboxItem, d *eventData) error {
	if rs.closeRun != nil {
		return nil
	}
	ev := rs.appendEvent(it.Type, it.Data, it.Time)
	rs.inputLen, rs.inputBytes = rs.historyLen, rs.historyBytes
	rs.lastApplied = it.ID
	return rs.applyInput(ev, d)
}

// markMore records in an input event's data that more inputs of the same
// batch follow it.
func markMore(data []byte) ([]byte, error) {
	d, err := unmarshalEvent(data)
	if err != nil {
		return nil, err
	}
	d.More = true
	return mustMarshal(d), nil
}

// applyInput delivers one input event and, unless more inputs of the same
// batch follow it, runs the coroutines until all are blocked. d is the
// data ev was encoded from, or nil to decode ev's.
func (rs *runState) applyInput(ev store.Event, d *eventData) error {
	more, err := rs.deliver(ev, d)
	if err != nil || more {
		return err
	}
	return rs.runCoroutines()
}

// runCoroutines runs the workflow's coroutines until all are blocked,
// unless the run has closed.
func (rs *runState) runCoroutines() error {
	if rs.closeRun != nil {
		return nil
	}
	return rs.d.runUntilBlocked()
}

// deliver applies one input event to the run's state — resolves a
// future, queues a signal, spawns an update's coroutine — without running
// the coroutines. more reports that the event was recorded as not the last
// of its batch: the inputs a workflow task applies together before its
// code runs, so that the code sees all of them (a signal that arrived with
// others is handled before the workflow decides to return). d is the data
// ev was encoded from, put in its decoded form here, or nil to decode ev's.
func (rs *runState) deliver(ev store.Event, d *eventData) (more bool, err error) {
	if d == nil {
		if d, err = unmarshalEvent(ev.Data); err != nil {
			return false, err
		}
	} else {
		d.asDecoded()
	}
	more = d.More
	rs.now = ev.Time
	switch ev.Type {
	case EventWorkflowStarted:
		rs.deadline = d.FireAt
		rs.startMain(d.Input)
	case EventActivityCompleted, EventActivityFailed:
		if resolve := rs.pendingActivities[d.Seq]; resolve != nil {
			delete(rs.pendingActivities, d.Seq)
			resolve(d.Result, d.Failure, d.Attempt)
		}
	case EventTimerFired:
		if resolve := rs.pendingTimers[d.Seq]; resolve != nil {
			delete(rs.pendingTimers, d.Seq)
			resolve(nil)
		}
	case EventSignalReceived:
		rs.signalCount++
		rs.signals[d.Name] = append(rs.signals[d.Name], bufferedSignal{order: rs.signalCount, payload: d.Input})
	case EventCancelRequested:
		if err := rs.requestCancel(); err != nil {
			return more, err
		}
	case EventChildWorkflowCompleted, EventChildWorkflowFailed, EventChildWorkflowStartFailed:
		if c := rs.pendingChildren[d.Seq]; c != nil {
			delete(rs.pendingChildren, d.Seq)
			c.resolve(ev.Type, d)
		}
	case EventExternalRequestDone, EventExternalRequestFailed:
		if resolve := rs.pendingExternal[d.Seq]; resolve != nil {
			delete(rs.pendingExternal, d.Seq)
			var err error
			if ev.Type == EventExternalRequestFailed {
				err = fmt.Errorf("%w: no running run of workflow %q", ErrRunNotFound, d.WorkflowID)
			}
			resolve(err)
		}
	case EventUpdateAccepted:
		rs.applyUpdate(d)
	case EventWorkflowReset:
		if !rs.replaying {
			rs.rescheduleAfterReset()
		}
	case EventWorkflowTimedOut:
		// The execution timeout closes the run without running its code.
		if rs.closeRun == nil {
			return more, rs.closeWith(nil, &TimeoutError{Kind: "WorkflowExecution"})
		}
	}
	return more, nil
}

// startMain spawns the workflow function as the run's first coroutine.
func (rs *runState) startMain(input []byte) {
	rs.d.spawn("main", func() {
		result, err := rs.def.run(rs.ctx, input)
		rs.finish(result, err)
	})
}

// finish records the run's outcome, from the main coroutine.
func (rs *runState) finish(result []byte, err error) {
	if err := rs.closeWith(result, err); err != nil {
		panic(err)
	}
}

// closeWith issues the command that closes the run with the workflow's result
// or error, and prepares the CloseRun of the commit: the parent's
// notification, the children's close policy, or the successor of a
// continue-as-new.
func (rs *runState) closeWith(result []byte, err error) error {
	var (
		cl  *store.CloseRun
		typ string
		d   *eventData
		can *ContinueAsNewError
	)
	switch {
	case err == nil:
		typ, d = EventWorkflowCompleted, &eventData{Result: result}
		cl = &store.CloseRun{Status: store.StatusCompleted, Result: result}
	case errors.As(err, &can):
		typ, d = EventWorkflowContinuedAsNew, &eventData{Name: can.WorkflowType, Input: can.Input, RunID: newRunID()}
	case rs.cancelRequested && isCanceled(err):
		f := toFailure(err)
		typ, d = EventWorkflowCanceled, &eventData{Failure: f}
		cl = &store.CloseRun{Status: store.StatusCanceled, Failure: mustJSON(f)}
	default:
		f := toFailure(err)
		typ, d = EventWorkflowFailed, &eventData{Failure: f}
		cl = &store.CloseRun{Status: store.StatusFailed, Failure: mustJSON(f)}
	}
	rec, cmdErr := rs.command(typ, d)
	if cmdErr != nil {
		return cmdErr
	}
	if can != nil {
		// The successor's run ID is the recorded one on replay.
		next := rec.RunID
		now := rs.e.clock.Now()
		cl = &store.CloseRun{Status: store.StatusContinuedAsNew, Result: mustJSON(next),
			ContinueAsNew: &store.ContinueAsNew{
				Run: store.CreateRunParams{
					RunID: next, WorkflowID: rs.info.WorkflowID, WorkflowType: can.WorkflowType,
					TaskQueue: rs.info.TaskQueue, Input: can.Input, Now: now,
					SearchAttributes: rs.search.current(), Memo: rs.search.memo,
					StartEvent: store.Event{Type: EventWorkflowStarted, Time: now, Data: mustMarshal(&eventData{
						Name: can.WorkflowType, WorkflowID: rs.info.WorkflowID, TaskQueue: rs.info.TaskQueue,
						Input: can.Input, Reason: "continued from run " + rs.info.RunID, FireAt: rs.deadline,
					})},
				},
				CarryInboxTypes: []string{EventSignalReceived},
				Inbox:           rs.unreceivedSignals(),
			}}
	} else {
		// Signals and updates that arrive while this task runs reach the
		// code before the run may close.
		cl.RefuseIfInbox = []string{EventSignalReceived, EventUpdateAccepted}
		cl.ParentItem = parentItem(rs.parent, cl)
		if rs.children > 0 {
			cl.Children = childrenClose(rs.e.clock.Now())
		}
	}
	if can != nil && rs.deadline != nil {
		cl.ContinueAsNew.Run.Timers = executionTimers(*rs.deadline)
	}
	rs.closeRun = cl
	return nil
}

// bufferedSignal is a received signal that the code has not taken yet.
type bufferedSignal struct {
	order   int64 // arrival order among all signals of the run
	payload []byte
}

// unreceivedSignals returns the signals the run received but its code did
// not take, in arrival order, as inbox items for a successor.
func (rs *runState) unreceivedSignals() []store.NewInboxItem {
	type named struct {
		name string
		bufferedSignal
	}
	var all []named
	for name, q := range rs.signals {
		for _, b := range q {
			all = append(all, named{name, b})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].order < all[j].order })
	items := make([]store.NewInboxItem, len(all))
	for i, s := range all {
		items[i] = store.NewInboxItem{Type: EventSignalReceived, Data: mustMarshal(&eventData{Name: s.name, Input: s.payload})}
	}
	return items
}

// parentItem is the inbox item that tells a child's parent how it closed;
// nil for a run without a parent.
func parentItem(parent *store.ParentRef, cl *store.CloseRun) *store.NewInboxItem {
	if parent == nil {
		return nil
	}
	d := &eventData{Seq: parent.Seq, Reason: string(cl.Status)}
	typ := EventChildWorkflowFailed
	if cl.Status == store.StatusCompleted {
		typ, d.Result = EventChildWorkflowCompleted, cl.Result
	} else if len(cl.Failure) > 0 {
		d.Failure = &failure{}
		if err := json.Unmarshal(cl.Failure, d.Failure); err != nil {
			d.Failure = toFailure(fmt.Errorf("undecodable failure: %w", err))
		}
	}
	return &store.NewInboxItem{Type: typ, Data: mustMarshal(d)}
}

// childrenClose is what a closing run does to its running children.
func childrenClose(now time.Time) *store.ChildrenClose {
	reason := "parent closed"
	return &store.ChildrenClose{
		TerminateEvent:   store.Event{Type: EventWorkflowTerminated, Time: now, Data: mustMarshal(&eventData{Reason: reason})},
		TerminateFailure: mustJSON(toFailure(fmt.Errorf("%w: %s", ErrTerminated, reason))),
		CancelItem:       cancelItem(reason),
	}
}

// requestCancel applies a cancel request: pending activities are asked to
// cancel and pending timers canceled, and their futures fail with
// ErrCanceled.
func (rs *runState) requestCancel() error {
	if rs.cancelRequested {
		return nil
	}
	rs.cancelRequested = true
	for _, seq := range sortedKeys(rs.pendingActivities) {
		resolve := rs.pendingActivities[seq]
		mode := rs.activityCancel[seq]
		if mode == detachedOp {
			continue
		}
		if mode != Abandon {
			if _, err := rs.command(EventActivityCancelRequested, &eventData{Target: seq}); err != nil {
				return err
			}
			if !rs.replaying {
				rs.cancelActivities = append(rs.cancelActivities, seq)
			}
		}
		if mode != WaitCancellationCompleted {
			delete(rs.pendingActivities, seq)
			resolve(nil, toFailure(ErrCanceled), 0)
		}
	}
	for _, seq := range sortedKeys(rs.pendingChildren) {
		c := rs.pendingChildren[seq]
		if c.cancel == detachedOp {
			continue
		}
		if c.cancel != Abandon {
			d, err := rs.command(EventExternalCancelInitiated, &eventData{WorkflowID: c.workflowID})
			if err != nil {
				return err
			}
			// The request's own outcome is not awaited: the child's is.
			rs.external(d.Seq, c.workflowID, true, cancelItem("parent canceled"), &Future[struct{}]{rs: rs})
		}
		if c.cancel != WaitCancellationCompleted {
			delete(rs.pendingChildren, seq)
			c.resolve(EventChildWorkflowFailed, &eventData{Reason: string(store.StatusCanceled)})
		}
	}
	for _, seq := range sortedKeys(rs.pendingTimers) {
		if rs.detachedTimers[seq] {
			continue
		}
		resolve := rs.pendingTimers[seq]
		delete(rs.pendingTimers, seq)
		if _, err := rs.command(EventTimerCanceled, &eventData{Target: seq}); err != nil {
			return err
		}
		if !rs.replaying {
			rs.cancelTimers = append(rs.cancelTimers, seq)
		}
		resolve(ErrCanceled)
	}
	return nil
}

// scheduleActivity issues an ActivityScheduled command.
func (rs *runState) scheduleActivity(name string, input []byte, o ActivityOptions) int64 {
	d := rs.mustCommand(EventActivityScheduled, &eventData{Name: name, Input: input, TaskQueue: o.TaskQueue})
	now := rs.e.clock.Now()
	t := store.ActivityTask{
		RunID:            rs.info.RunID,
		Seq:              d.Seq,
		WorkflowID:       rs.info.WorkflowID,
		ActivityType:     name,
		TaskQueue:        o.TaskQueue,
		Input:            input,
		Options:          mustJSON(o.RetryPolicy),
		Attempt:          1,
		ScheduledAt:      now,
		ReadyAt:          now,
		StartToClose:     o.StartToCloseTimeout,
		HeartbeatTimeout: o.HeartbeatTimeout,
	}
	if o.ScheduleToStartTimeout > 0 {
		t.ScheduleToStartDeadline = now.Add(o.ScheduleToStartTimeout)
	}
	if o.ScheduleToCloseTimeout > 0 {
		t.ScheduleToCloseDeadline = now.Add(o.ScheduleToCloseTimeout)
	}
	if rs.replaying {
		// Kept in case a reset makes this run schedule it again.
		rs.replayedTasks[d.Seq] = replayedTask{task: t, o: o}
		return d.Seq
	}
	rs.activities = append(rs.activities, t)
	return d.Seq
}

// startTimer issues a TimerStarted command; resolve runs when it fires or is
// canceled.
func (rs *runState) startTimer(dur time.Duration, resolve func(error)) int64 {
	fireAt := rs.e.clock.Now().Add(dur)
	d := rs.mustCommand(EventTimerStarted, &eventData{Duration: dur, FireAt: &fireAt})
	rs.pendingTimers[d.Seq] = resolve
	if rs.replaying && d.FireAt != nil {
		rs.replayedTimers[d.Seq] = *d.FireAt
	}
	if !rs.replaying {
		rs.timers = append(rs.timers, store.Timer{
			RunID:  rs.info.RunID,
			Seq:    d.Seq,
			FireAt: fireAt,
			Item:   store.NewInboxItem{Type: EventTimerFired, Data: mustMarshal(&eventData{Seq: d.Seq})},
		})
	}
	return d.Seq
}

// cancelTimer cancels a pending timer; a fired timer is left alone.
func (rs *runState) cancelTimer(seq int64) {
	if _, ok := rs.pendingTimers[seq]; !ok {
		return
	}
	delete(rs.pendingTimers, seq)
	rs.mustCommand(EventTimerCanceled, &eventData{Target: seq})
	if !rs.replaying {
		rs.cancelTimers = append(rs.cancelTimers, seq)
	}
}

func sortedKeys[V any](m map[int64]V) []int64 {
	keys := make([]int64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("durable: marshal: " + err.Error())
	}
	return b
}
