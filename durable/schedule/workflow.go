package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keelhq/keel/durable"
)

// Names under which New registers the schedule machinery.
const (
	// WorkflowName is the schedule workflow's registered name.
	WorkflowName = "keel.schedule"

	startActivityName = "keel.schedule.start"
	waitActivityName  = "keel.schedule.wait"
	describeQueryName = "keel.schedule.describe"
	controlSignalName = "keel.schedule.control"

	workflowIDPrefix = "schedule/"

	// backfillBatch bounds the backfill actions taken per loop turn, so that
	// control signals and continue-as-new are looked at in between.
	backfillBatch = 10
	// maxMissedCount bounds the fire times counted one by one when a
	// schedule wakes long after them; older ones are skipped uncounted.
	maxMissedCount = 1000
	// nextTimesInDescribe is how many upcoming fire times Describe lists.
	nextTimesInDescribe = 5
)

// control carries every control operation on one signal, so that they apply
// in the order they were sent.
var control = durable.NewSignal[controlMsg](controlSignalName)

type controlOp string

const (
	opPause    controlOp = "pause"
	opUnpause  controlOp = "unpause"
	opTrigger  controlOp = "trigger"
	opBackfill controlOp = "backfill"
	opUpdate   controlOp = "update"
)

type controlMsg struct {
	Op    controlOp `json:"op"`
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
	Spec  *Spec     `json:"spec,omitempty"`
}

// ActionKind says why an action was taken.
type ActionKind string

// Action kinds.
const (
	KindScheduled ActionKind = "scheduled"
	KindTrigger   ActionKind = "trigger"
	KindBackfill  ActionKind = "backfill"
)

// Outcome is what became of an action.
type Outcome string

// Outcomes.
const (
	// OutcomeStarted: the target workflow was started (or had already been
	// started for this fire time, by an earlier attempt).
	OutcomeStarted Outcome = "started"
	// OutcomeSkipped: the overlap policy dropped the action.
	OutcomeSkipped Outcome = "skipped"
	// OutcomeBuffered: the action waits for the running run to close
	// (OverlapBufferOne, OverlapCancelOther); a later entry records its
	// start.
	OutcomeBuffered Outcome = "buffered"
	// OutcomeFailed: the start failed for good (for example, the workflow
	// is not registered on the schedule's worker); Error says why.
	OutcomeFailed Outcome = "failed"
)

// ActionResult records one action of a schedule.
type ActionResult struct {
	Kind ActionKind `json:"kind"`
	// ScheduledAt is the nominal fire time, which names the workflow ID.
	ScheduledAt time.Time `json:"scheduled_at"`
	// TakenAt is the workflow time at which the outcome was recorded.
	TakenAt    time.Time `json:"taken_at"`
	WorkflowID string    `json:"workflow_id"`
	RunID      string    `json:"run_id,omitempty"`
	Outcome    Outcome   `json:"outcome"`
	Error      string    `json:"error,omitempty"`
	// Status is the started run's status when Describe was called.
	Status durable.Status `json:"status,omitempty"`
}

type pending struct {
	Nominal time.Time  `json:"nominal"`
	Kind    ActionKind `json:"kind"`
}

type backfill struct {
	// Cursor: fire times after it and before End remain to be taken.
	Cursor time.Time `json:"cursor"`
	End    time.Time `json:"end"`
}

// counters are a schedule's lifetime totals.
type counters struct {
	Actions        int64 `json:"actions"`
	OverlapSkipped int64 `json:"overlap_skipped"`
	CatchupMissed  int64 `json:"catchup_missed"`
	Failed         int64 `json:"failed"`
}

// state is the schedule workflow's input, carried across continue-as-new.
type state struct {
	ID     string `json:"id"`
	Spec   Spec   `json:"spec"`
	Action Action `json:"action"`
	Paused bool   `json:"paused,omitempty"`
	// Cursor: scheduled fire times at or before it have been handled.
	Cursor time.Time `json:"cursor,omitzero"`
	// LastWorkflowID is the workflow ID of the latest started action, the
	// one the overlap policy looks at.
	LastWorkflowID string         `json:"last_workflow_id,omitempty"`
	Buffered       *pending       `json:"buffered,omitempty"`
	Triggers       []time.Time    `json:"triggers,omitempty"`
	Backfills      []backfill     `json:"backfills,omitempty"`
	Recent         []ActionResult `json:"recent,omitempty"`
	Counters       counters       `json:"counters"`
	CreatedAt      time.Time      `json:"created_at,omitzero"`
	Generation     int            `json:"generation,omitempty"`
}

// startInput is the start activity's input.
type startInput struct {
	ScheduleID string        `json:"schedule_id"`
	WorkflowID string        `json:"workflow_id"`
	Action     Action        `json:"action"`
	Overlap    OverlapPolicy `json:"overlap"`
	// PrevWorkflowID is the previous action's workflow ID, checked by the
	// overlap policy.
	PrevWorkflowID string `json:"prev_workflow_id,omitempty"`
}

type startOutput struct {
	RunID   string `json:"run_id,omitempty"`
	Created bool   `json:"created,omitempty"`
	Skipped bool   `json:"skipped,omitempty"`
	Busy    bool   `json:"busy,omitempty"`
}

// ActionWorkflowID returns the workflow ID of the action that a schedule
// takes for the nominal fire time t: the schedule ID, "/", and t in UTC as
// RFC 3339. The same fire time always gets the same ID, which is what makes
// a retried, replayed or backfilled start never start a second run.
func ActionWorkflowID(scheduleID string, t time.Time) string {
	return scheduleID + "/" + t.UTC().Format(time.RFC3339)
}

// WorkflowID returns the workflow ID of a schedule's own workflow.
func WorkflowID(scheduleID string) string { return workflowIDPrefix + scheduleID }

// runner is one run of the schedule workflow.
type runner struct {
	c     *Client
	ctx   durable.Context
	st    *state
	sp    *compiledSpec
	steps int // actions and signals in this run
}

// run is the schedule workflow.
func (c *Client) run(ctx durable.Context, st state) (struct{}, error) {
	if st.Cursor.IsZero() {
		st.Cursor = durable.Now(ctx).UTC()
	}
	if st.CreatedAt.IsZero() {
		st.CreatedAt = durable.Now(ctx).UTC()
	}
	sp, err := compile(st.ID, st.Spec)
	if err != nil {
		return struct{}{}, durable.NonRetryable(fmt.Errorf("schedule %s: %w", st.ID, err))
	}
	r := &runner{c: c, ctx: ctx, st: &st, sp: sp}
	durable.SetQueryHandler(ctx, describeQueryName, func(struct{}) (Description, error) {
		return r.describe(), nil
	})

	var wait *durable.Future[struct{}]
	for {
		r.applySignals()

		if wait != nil && wait.IsReady() {
			wait = nil
			if p := st.Buffered; p != nil {
				st.Buffered = nil
				r.take(*p)
			}
		}
		for len(st.Triggers) > 0 {
			t := st.Triggers[0]
			st.Triggers = st.Triggers[1:]
			r.take(pending{Nominal: t, Kind: KindTrigger})
		}
		r.takeScheduled()
		r.takeBackfills()
		if st.Buffered != nil && wait == nil {
			wait = c.waitAct.Start(ctx, st.LastWorkflowID)
		}

		if (r.steps >= c.cfg.MaxActionsPerRun || durable.ContinueAsNewSuggested(ctx)) && !control.HasPending(ctx) {
			st.Generation++
			return struct{}{}, c.wf.ContinueAsNew(ctx, st)
		}
		if len(st.Backfills) > 0 || len(st.Triggers) > 0 {
			continue
		}

		woken := func() bool { return control.HasPending(ctx) || (wait != nil && wait.IsReady()) }
		at := r.nextWake()
		if at.IsZero() {
			err = durable.Await(ctx, woken)
		} else {
			d := max(at.Sub(durable.Now(ctx)), time.Millisecond)
			_, err = durable.AwaitWithTimeout(ctx, d, woken)
		}
		if err != nil {
			return struct{}{}, err
		}
	}
}

// applySignals applies every pending control signal, in order.
func (r *runner) applySignals() {
	st := r.st
	for {
		msg, ok, err := control.TryReceive(r.ctx)
		if !ok {
			return
		}
		r.steps++
		if err != nil {
			r.ctx.Logger().Warn("schedule: undecodable control signal", "schedule", st.ID, "error", err)
			continue
		}
		now := durable.Now(r.ctx).UTC()
		switch msg.Op {
		case opPause:
			st.Paused = true
		case opUnpause:
			if st.Paused {
				st.Paused = false
				// Fire times that passed while paused are not caught up.
				st.Cursor = later(st.Cursor, now)
			}
		case opTrigger:
			st.Triggers = append(st.Triggers, now)
		case opBackfill:
			st.Backfills = append(st.Backfills, backfill{Cursor: msg.Start.UTC().Add(-time.Nanosecond), End: msg.End.UTC()})
		case opUpdate:
			if msg.Spec == nil {
				continue
			}
			spec := msg.Spec.withDefaults()
			sp, err := compile(st.ID, spec)
			if err != nil {
				r.ctx.Logger().Warn("schedule: update ignored", "schedule", st.ID, "error", err)
				continue
			}
			st.Spec, r.sp = spec, sp
		default:
			r.ctx.Logger().Warn("schedule: unknown control operation", "schedule", st.ID, "op", msg.Op)
		}
	}
}

// takeScheduled acts on the fire times that fell due, skipping those older
// than the catch-up window.
func (r *runner) takeScheduled() {
	st, sp := r.st, r.sp
	if st.Paused {
		st.Cursor = later(st.Cursor, durable.Now(r.ctx).UTC())
		return
	}
	for {
		// Each action takes time, so the present moves while this runs.
		now := durable.Now(r.ctx).UTC()
		r.skipMissed(now)
		t := sp.next(st.Cursor)
		if t.IsZero() {
			return
		}
		due := t.Add(sp.jitter(t))
		if due.After(now) {
			return
		}
		st.Cursor = t
		if now.Sub(due) > st.Spec.CatchupWindow {
			st.Counters.CatchupMissed++
			continue
		}
		r.take(pending{Nominal: t, Kind: KindScheduled})
	}
}

// skipMissed moves the cursor past the fire times that are certainly older
// than the catch-up window at now. It counts at most maxMissedCount of them
// one by one, and jumps over the rest, so that waking up after a long
// downtime costs little.
func (r *runner) skipMissed(now time.Time) {
	st, sp := r.st, r.sp
	oldest := now.Add(-st.Spec.CatchupWindow - st.Spec.Jitter)
	for n := 0; ; n++ {
		t := sp.next(st.Cursor)
		if t.IsZero() || !t.Before(oldest) {
			return
		}
		if n == maxMissedCount {
			st.Cursor = oldest.Add(-time.Nanosecond)
			return
		}
		st.Counters.CatchupMissed++
		st.Cursor = t
	}
}

// takeBackfills takes up to backfillBatch backfill actions, fewer when the
// run is due to continue as new.
func (r *runner) takeBackfills() {
	st := r.st
	for n := 0; n < backfillBatch && r.steps < r.c.cfg.MaxActionsPerRun && len(st.Backfills) > 0; {
		t := r.sp.next(st.Backfills[0].Cursor)
		if t.IsZero() || !t.Before(st.Backfills[0].End) {
			st.Backfills = st.Backfills[1:]
			continue
		}
		st.Backfills[0].Cursor = t
		r.take(pending{Nominal: t, Kind: KindBackfill})
		n++
	}
}

// nextWake returns when the next scheduled action falls due, or the zero
// time when none will (paused, or past EndAt).
func (r *runner) nextWake() time.Time {
	if r.st.Paused {
		return time.Time{}
	}
	t := r.sp.next(r.st.Cursor)
	if t.IsZero() {
		return t
	}
	return t.Add(r.sp.jitter(t))
}

// take starts (or skips, or buffers) the action for nominal time p.Nominal.
func (r *runner) take(p pending) {
	st := r.st
	r.steps++
	policy := st.Spec.Overlap
	if p.Kind == KindBackfill {
		policy = OverlapAllowAll
	}
	res := ActionResult{Kind: p.Kind, ScheduledAt: p.Nominal, WorkflowID: ActionWorkflowID(st.ID, p.Nominal)}
	if policy.buffers() && st.Buffered != nil {
		// One action is already waiting: this one is dropped.
		res.TakenAt, res.Outcome = durable.Now(r.ctx).UTC(), OutcomeSkipped
		st.Counters.OverlapSkipped++
		r.record(res)
		return
	}
	out, err := r.c.startAct.Run(r.ctx, startInput{
		ScheduleID: st.ID, WorkflowID: res.WorkflowID, Action: st.Action, Overlap: policy, PrevWorkflowID: st.LastWorkflowID,
	})
	res.TakenAt = durable.Now(r.ctx).UTC()
	switch {
	case err != nil:
		res.Outcome, res.Error = OutcomeFailed, err.Error()
		st.Counters.Failed++
	case out.Skipped:
		res.Outcome = OutcomeSkipped
		st.Counters.OverlapSkipped++
	case out.Busy:
		res.Outcome = OutcomeBuffered
		st.Buffered = &p
	default:
		res.Outcome, res.RunID = OutcomeStarted, out.RunID
		st.LastWorkflowID = res.WorkflowID
		st.Counters.Actions++
	}
	r.record(res)
}

func (r *runner) record(res ActionResult) {
	st := r.st
	st.Recent = append(st.Recent, res)
	if over := len(st.Recent) - r.c.cfg.RecentActions; over > 0 {
		st.Recent = append([]ActionResult(nil), st.Recent[over:]...)
	}
}

// describe answers the describe query from the run's state.
func (r *runner) describe() Description {
	st := r.st
	d := Description{
		ID:               st.ID,
		Spec:             st.Spec,
		Action:           st.Action,
		Paused:           st.Paused,
		RecentActions:    append([]ActionResult(nil), st.Recent...),
		Buffered:         st.Buffered != nil,
		PendingBackfills: len(st.Backfills),
		Actions:          st.Counters.Actions,
		OverlapSkipped:   st.Counters.OverlapSkipped,
		CatchupMissed:    st.Counters.CatchupMissed,
		Failed:           st.Counters.Failed,
		CreatedAt:        st.CreatedAt,
		Generation:       st.Generation,
	}
	t := st.Cursor
	for range nextTimesInDescribe {
		if t = r.sp.next(t); t.IsZero() {
			break
		}
		d.NextActionTimes = append(d.NextActionTimes, t)
	}
	return d
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// startAction is the start activity: it applies the overlap policy and
// starts the target workflow under its deterministic ID. A retried attempt
// finds the run its earlier attempt started and returns it.
func (c *Client) startAction(ctx context.Context, in startInput) (startOutput, error) {
	if info, err := c.e.Describe(ctx, in.WorkflowID); err == nil {
		return startOutput{RunID: info.RunID}, nil
	} else if !errors.Is(err, durable.ErrRunNotFound) {
		return startOutput{}, fmt.Errorf("schedule %s: look up %s: %w", in.ScheduleID, in.WorkflowID, err)
	}
	if in.Overlap != OverlapAllowAll && in.PrevWorkflowID != "" {
		prev, err := c.e.Describe(ctx, in.PrevWorkflowID)
		switch {
		case errors.Is(err, durable.ErrRunNotFound):
			// Deleted by retention: not running.
		case err != nil:
			return startOutput{}, fmt.Errorf("schedule %s: describe previous run %s: %w", in.ScheduleID, in.PrevWorkflowID, err)
		case prev.Status == durable.StatusRunning:
			switch in.Overlap {
			case OverlapSkip:
				return startOutput{Skipped: true}, nil
			case OverlapBufferOne:
				return startOutput{Busy: true}, nil
			case OverlapCancelOther:
				err := c.e.Cancel(ctx, in.PrevWorkflowID, "schedule "+in.ScheduleID+": overlap policy cancel_other")
				if err != nil && !errors.Is(err, durable.ErrRunClosed) && !errors.Is(err, durable.ErrRunNotFound) {
					return startOutput{}, fmt.Errorf("schedule %s: cancel %s: %w", in.ScheduleID, in.PrevWorkflowID, err)
				}
				return startOutput{Busy: true}, nil
			case OverlapTerminateOther:
				err := c.e.Terminate(ctx, in.PrevWorkflowID, "schedule "+in.ScheduleID+": overlap policy terminate_other")
				if err != nil && !errors.Is(err, durable.ErrRunClosed) && !errors.Is(err, durable.ErrRunNotFound) {
					return startOutput{}, fmt.Errorf("schedule %s: terminate %s: %w", in.ScheduleID, in.PrevWorkflowID, err)
				}
			}
		}
	}
	if h := c.cfg.Test.BeforeStart; h != nil {
		if err := h(ctx, in.WorkflowID); err != nil {
			return startOutput{}, err
		}
	}
	info, err := c.e.StartWorkflow(ctx, in.Action.Workflow, in.Action.Input, &durable.StartOptions{
		ID:            in.WorkflowID,
		TaskQueue:     in.Action.TaskQueue,
		IDReusePolicy: durable.RejectDuplicate,
	})
	switch {
	case errors.Is(err, durable.ErrWorkflowIDInUse):
		// Started before, and already closed.
		prev, derr := c.e.Describe(ctx, in.WorkflowID)
		if derr != nil {
			return startOutput{}, fmt.Errorf("schedule %s: look up %s: %w", in.ScheduleID, in.WorkflowID, derr)
		}
		return startOutput{RunID: prev.RunID}, nil
	case errors.Is(err, durable.ErrUnknownWorkflow), errors.Is(err, durable.ErrPayloadTooLarge):
		return startOutput{}, durable.NonRetryable(fmt.Errorf("schedule %s: start %s: %w", in.ScheduleID, in.WorkflowID, err))
	case err != nil:
		return startOutput{}, fmt.Errorf("schedule %s: start %s: %w", in.ScheduleID, in.WorkflowID, err)
	}
	if h := c.cfg.Test.AfterStart; h != nil {
		if err := h(ctx, in.WorkflowID); err != nil {
			return startOutput{}, err
		}
	}
	return startOutput{RunID: info.RunID, Created: info.Created}, nil
}

// waitClosed is the wait activity: it returns once the workflow ID has no
// running run, heartbeating meanwhile.
func (c *Client) waitClosed(ctx context.Context, workflowID string) (struct{}, error) {
	for {
		info, err := c.e.Describe(ctx, workflowID)
		switch {
		case errors.Is(err, durable.ErrRunNotFound):
			return struct{}{}, nil
		case err != nil:
			return struct{}{}, fmt.Errorf("schedule: wait for %s: %w", workflowID, err)
		case info.Status != durable.StatusRunning:
			return struct{}{}, nil
		}
		wctx, cancel := context.WithTimeout(ctx, c.cfg.heartbeatEvery)
		_, _ = c.e.Result(wctx, info.RunID) // a failed run is closed too
		cancel()
		if err := ctx.Err(); err != nil {
			return struct{}{}, err
		}
		if err := durable.Heartbeat(ctx, nil); err != nil {
			return struct{}{}, err
		}
	}
}

// Action is what a schedule starts each time it fires.
type Action struct {
	// Workflow is the registered name of the workflow to start. It must be
	// registered on the engines whose workers run the schedule.
	Workflow string `json:"workflow"`
	// Input is the workflow's JSON input. Optional.
	Input json.RawMessage `json:"input,omitempty"`
	// TaskQueue is where the started workflow runs. Optional; default
	// "default".
	TaskQueue string `json:"task_queue,omitempty"`
}
