package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
)

// Exercise runs the conformance suite. newStore is called once per subtest
// and must return a new, empty store, closed when the test ends (with
// t.Cleanup). Subtests run in parallel.
func Exercise(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	setup := func(t *testing.T) *bundle {
		t.Helper()
		return &bundle{ctx: t.Context(), st: newStore(t)}
	}
	t.Run("Runs", func(t *testing.T) {
		t.Parallel()
		exerciseRuns(t, setup)
	})
	t.Run("WorkflowTasks", func(t *testing.T) {
		t.Parallel()
		exerciseWorkflowTasks(t, setup)
	})
	t.Run("ActivityTasks", func(t *testing.T) {
		t.Parallel()
		exerciseActivityTasks(t, setup)
	})
	t.Run("Timers", func(t *testing.T) {
		t.Parallel()
		exerciseTimers(t, setup)
	})
	t.Run("Signals", func(t *testing.T) {
		t.Parallel()
		exerciseSignals(t, setup)
	})
	t.Run("Eager", func(t *testing.T) {
		t.Parallel()
		exerciseEager(t, setup)
	})
	t.Run("ActivityWithWorkflowTask", func(t *testing.T) {
		t.Parallel()
		exerciseActivityWithWorkflowTask(t, setup)
	})
	t.Run("SignalWithWorkflowTask", func(t *testing.T) {
		t.Parallel()
		exerciseSignalWithWorkflowTask(t, setup)
	})
	t.Run("FireTimerWithWorkflowTask", func(t *testing.T) {
		t.Parallel()
		exerciseFireTimerWithWorkflowTask(t, setup)
	})
	t.Run("FirstTask", func(t *testing.T) {
		t.Parallel()
		exerciseFirstTask(t, setup)
	})
	t.Run("Children", func(t *testing.T) {
		t.Parallel()
		exerciseChildren(t, setup)
	})
	t.Run("Search", func(t *testing.T) {
		t.Parallel()
		exerciseSearch(t, setup)
	})
}

// base is the suite's reference time; at(d) is base + d.
var base = time.Date(2030, time.March, 4, 5, 6, 7, 0, time.UTC)

func at(d time.Duration) time.Time { return base.Add(d) }

// bundle is one subtest's store and context.
type bundle struct {
	ctx context.Context
	st  store.Store
}

func newID() string { return uuid.NewString() }

// createRun starts a run at base with a fresh run ID, workflow ID and task
// queue of its own; mods adjust the parameters first.
func (b *bundle) createRun(t *testing.T, mods ...func(*store.CreateRunParams)) store.Run {
	t.Helper()
	p := runParams(mods...)
	res, err := b.st.CreateRun(b.ctx, p)
	require.NoError(t, err)
	require.True(t, res.Created)
	if p.Eager == nil {
		require.Nil(t, res.Task, "no eager lease without Eager")
	}
	return res.Run
}

// runParams returns the parameters createRun uses: a run at base with a
// fresh run ID, workflow ID and task queue of its own, adjusted by mods.
func runParams(mods ...func(*store.CreateRunParams)) store.CreateRunParams {
	id := newID()
	p := store.CreateRunParams{
		RunID:        id,
		WorkflowID:   "wf-" + id,
		WorkflowType: "order",
		TaskQueue:    "q-" + id,
		Input:        []byte(`{"order":1}`),
		StartEvent:   store.Event{Type: "started", Data: []byte(`{"input":1}`)},
		Now:          base,
	}
	for _, m := range mods {
		m(&p)
	}
	return p
}

// claimN claims up to limit workflow tasks on queue at now, with a lease of
// one minute.
func (b *bundle) claimN(t *testing.T, queue string, now time.Time, limit int) []store.WorkflowTask {
	t.Helper()
	tasks, err := b.st.ClaimWorkflowTasks(b.ctx, store.ClaimParams{
		TaskQueue: queue, Owner: "worker-1", Limit: limit, Now: now, LeaseUntil: now.Add(time.Minute),
	})
	require.NoError(t, err)
	return tasks
}

// claim claims the one runnable workflow task on queue at now.
func (b *bundle) claim(t *testing.T, queue string, now time.Time) store.WorkflowTask {
	t.Helper()
	tasks := b.claimN(t, queue, now, 10)
	require.Len(t, tasks, 1, "claim on %s at %v", queue, now)
	return tasks[0]
}

// claimNone checks that no workflow task on queue is claimable at now.
func (b *bundle) claimNone(t *testing.T, queue string, now time.Time) {
	t.Helper()
	require.Empty(t, b.claimN(t, queue, now, 10), "claim on %s at %v", queue, now)
}

// events returns n command events following a history of length after.
func events(after int64, n int) []store.Event {
	evs := make([]store.Event, n)
	for i := range evs {
		id := after + int64(i) + 1
		evs[i] = store.Event{ID: id, Type: "command", Time: at(time.Duration(id) * time.Millisecond),
			Data: fmt.Appendf(nil, `{"event":%d}`, id)}
	}
	return evs
}

// params returns commit parameters for wt at now: fenced on its token and
// history length, consuming its whole inbox, with no events.
func params(wt store.WorkflowTask, now time.Time) store.CompleteWorkflowTaskParams {
	p := store.CompleteWorkflowTaskParams{
		RunID:              wt.Run.RunID,
		Token:              wt.Token,
		ExpectedHistoryLen: wt.Run.HistoryLen,
		Now:                now,
	}
	if n := len(wt.Inbox); n > 0 {
		p.InboxUpTo = wt.Inbox[n-1].ID
	}
	return p
}

// inboxEvents returns the events that move wt's inbox into its history.
func inboxEvents(wt store.WorkflowTask) []store.Event {
	evs := make([]store.Event, len(wt.Inbox))
	for i, it := range wt.Inbox {
		evs[i] = store.Event{ID: wt.Run.HistoryLen + int64(i) + 1, Type: it.Type, Time: it.Time, Data: it.Data}
	}
	return evs
}

func (b *bundle) commit(t *testing.T, p store.CompleteWorkflowTaskParams) store.CompleteWorkflowTaskResult {
	t.Helper()
	res, err := b.st.CompleteWorkflowTask(b.ctx, p)
	require.NoError(t, err)
	if len(p.EagerActivities) == 0 {
		require.Empty(t, res.Activities, "no eager leases without EagerActivities")
	}
	return res
}

// completeActivity calls CompleteActivityTask and checks that it leases
// nothing without Eager.
func (b *bundle) completeActivity(t *testing.T, p store.CompleteActivityTaskParams) error {
	t.Helper()
	res, err := b.st.CompleteActivityTask(b.ctx, p)
	if p.Eager == nil {
		require.Nil(t, res.Task, "no eager lease without Eager")
	}
	return err
}

// closeRun claims run's workflow task and commits it with a final status.
func (b *bundle) closeRun(t *testing.T, run store.Run, status store.RunStatus, now time.Time) store.Run {
	t.Helper()
	if status == store.StatusTerminated {
		require.NoError(t, b.st.Terminate(b.ctx, store.TerminateParams{
			RunID: run.RunID, Event: store.Event{Type: "terminated"}, Failure: []byte(`"stop"`), Now: now,
		}))
		return b.getRun(t, run.RunID)
	}
	wt := b.claim(t, run.TaskQueue, now)
	p := params(wt, now)
	p.Events = append(inboxEvents(wt), events(wt.Run.HistoryLen+int64(len(wt.Inbox)), 1)...)
	p.Close = &store.CloseRun{Status: status}
	if status == store.StatusCompleted {
		p.Close.Result = []byte(`"done"`)
	} else {
		p.Close.Failure = []byte(`{"message":"boom"}`)
	}
	b.commit(t, p)
	return b.getRun(t, run.RunID)
}

// requireNothingScheduled checks that the store holds no timer, no
// activity task with a deadline and no delayed task: nothing fires or
// expires however late, and NextWakeup reports nothing.
func (b *bundle) requireNothingScheduled(t *testing.T) {
	t.Helper()
	queues, err := b.st.FireTimers(b.ctx, at(2*time.Hour), 100)
	require.NoError(t, err)
	require.Empty(t, queues)
	expired, err := b.st.ExpiredActivityTasks(b.ctx, at(1000*time.Hour), 100)
	require.NoError(t, err)
	require.Empty(t, expired)
	_, ok, err := b.st.NextWakeup(b.ctx)
	require.NoError(t, err)
	require.False(t, ok, "nothing is scheduled")
}

func (b *bundle) getRun(t *testing.T, runID string) store.Run {
	t.Helper()
	r, err := b.st.GetRun(b.ctx, runID)
	require.NoError(t, err)
	return r
}

func (b *bundle) history(t *testing.T, runID string) []store.Event {
	t.Helper()
	evs, err := b.st.History(b.ctx, runID, 0)
	require.NoError(t, err)
	return evs
}

// signal writes an item to run's inbox at now.
func (b *bundle) signal(t *testing.T, runID, name string, now time.Time) {
	t.Helper()
	_, err := b.st.Signal(b.ctx, store.SignalParams{
		RunID: runID, Item: store.NewInboxItem{Type: "signal", Data: []byte(`"` + name + `"`)}, Now: now,
	})
	require.NoError(t, err)
}

// activity returns an activity task of run with seq, on a task queue of the
// run's own, scheduled and ready at now, without timeouts.
func activity(run store.Run, seq int64, now time.Time) store.ActivityTask {
	return store.ActivityTask{
		RunID:        run.RunID,
		Seq:          seq,
		WorkflowID:   run.WorkflowID,
		ActivityType: "charge",
		TaskQueue:    "act-" + run.RunID,
		Input:        fmt.Appendf(nil, `{"seq":%d}`, seq),
		Options:      []byte(`{"maximum_attempts":3}`),
		Attempt:      1,
		ScheduledAt:  now,
		ReadyAt:      now,
	}
}

// schedule claims run's workflow task at now and commits it with one
// scheduled-event per activity.
func (b *bundle) schedule(t *testing.T, run store.Run, now time.Time, acts ...store.ActivityTask) {
	t.Helper()
	wt := b.claim(t, run.TaskQueue, now)
	p := params(wt, now)
	p.Events = append(inboxEvents(wt), events(wt.Run.HistoryLen+int64(len(wt.Inbox)), len(acts))...)
	p.ScheduleActivities = acts
	b.commit(t, p)
}

// claimActivities claims up to 10 activity tasks on queue at now.
func (b *bundle) claimActivities(t *testing.T, queue string, now time.Time) []store.ActivityTask {
	t.Helper()
	tasks, err := b.st.ClaimActivityTasks(b.ctx, store.ClaimParams{
		TaskQueue: queue, Owner: "worker-a", Limit: 10, Now: now, LeaseUntil: now.Add(time.Minute),
	})
	require.NoError(t, err)
	return tasks
}

func (b *bundle) claimActivity(t *testing.T, queue string, now time.Time) store.ActivityTask {
	t.Helper()
	tasks := b.claimActivities(t, queue, now)
	require.Len(t, tasks, 1, "activity claim on %s at %v", queue, now)
	return tasks[0]
}

// attempt is the audit record of task's current attempt ending at now.
func attempt(task store.ActivityTask, outcome, errText string, now time.Time) store.ActivityAttempt {
	return store.ActivityAttempt{
		RunID: task.RunID, Seq: task.Seq, Attempt: task.Attempt, ActivityType: task.ActivityType,
		Owner: task.Owner, StartedAt: task.StartedAt, EndedAt: now, Outcome: outcome, Error: errText,
	}
}

// requireTime checks that got is the instant want, in UTC (or both zero).
func requireTime(t *testing.T, want, got time.Time, msgAndArgs ...any) {
	t.Helper()
	if want.IsZero() {
		require.True(t, got.IsZero(), append([]any{"want zero time, got %v", got}, msgAndArgs...)...)
		return
	}
	require.True(t, want.Equal(got), append([]any{"want %v, got %v", want, got}, msgAndArgs...)...)
	require.Equal(t, time.UTC, got.Location(), "times are returned in UTC")
}

// requireSameRun checks that two reads of a run agree on every field.
func requireSameRun(t *testing.T, want, got store.Run) {
	t.Helper()
	require.Equal(t, want.RunID, got.RunID)
	require.Equal(t, want.WorkflowID, got.WorkflowID)
	require.Equal(t, want.WorkflowType, got.WorkflowType)
	require.Equal(t, want.TaskQueue, got.TaskQueue)
	require.Equal(t, want.Status, got.Status)
	require.Equal(t, want.Input, got.Input)
	require.Equal(t, want.Result, got.Result)
	require.Equal(t, want.Failure, got.Failure)
	require.Equal(t, want.HistoryLen, got.HistoryLen)
	require.Equal(t, want.HistoryBytes, got.HistoryBytes)
	require.Equal(t, want.CancelRequested, got.CancelRequested)
	require.Equal(t, want.LastTaskFailure, got.LastTaskFailure)
	requireTime(t, want.CreatedAt, got.CreatedAt)
	requireTime(t, want.UpdatedAt, got.UpdatedAt)
	requireTime(t, want.ClosedAt, got.ClosedAt)
}

func runIDs(runs []store.Run) []string {
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.RunID
	}
	return ids
}
