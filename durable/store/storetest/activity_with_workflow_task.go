package storetest

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
)

// exerciseActivityWithWorkflowTask checks CompleteActivityWithWorkflowTask:
// an activity's completion and the workflow task the engine already ran on
// it, committed together, guarded not by a lease but by the run being idle.
func exerciseActivityWithWorkflowTask(t *testing.T, setup func(*testing.T) *bundle) {
	t.Run("OneLeasedActivity", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, acts := b.idleRun(t, 1)
		// The next activity is the one scheduled, leased at once; it takes
		// the run's workflow ID and task queue, and has a heartbeat
		// timeout shorter than its start-to-close timeout.
		now := at(3 * time.Second)
		sp := speculative(acts[0], 2, now)
		w := &sp.Workflow
		w.StartTimers = nil
		next := &w.ScheduleActivities[0]
		next.TaskQueue, next.WorkflowID = "", ""
		next.Input, next.HeartbeatTimeout = []byte(`{"step":2}`), 4*time.Second
		next.ScheduleToCloseDeadline = at(time.Hour)
		res, err := b.st.CompleteActivityWithWorkflowTask(b.ctx, sp)
		require.NoError(t, err)
		require.Len(t, res.Activities, 1)
		want := *next
		want.WorkflowID, want.TaskQueue = run.WorkflowID, run.TaskQueue
		got := res.Activities[0]
		requireLeasedActivity(t, want, got, "eager-w", now, at(7*time.Second))

		// The row written is the task returned: the lease expires when it
		// said, with its token and owner.
		expired, err := b.st.ExpiredActivityTasks(b.ctx, at(7*time.Second), 10)
		require.NoError(t, err)
		require.Len(t, expired, 1)
		requireLeasedActivity(t, want, expired[0], "eager-w", now, at(7*time.Second))
		require.Equal(t, got.Token, expired[0].Token)
		b.claimNone(t, run.TaskQueue, at(time.Minute))
		require.Empty(t, b.claimActivities(t, run.TaskQueue, now), "leased: nobody else claims it")

		// Its token completes it, with the next workflow task.
		sp2 := speculative(got, 4, at(4*time.Second))
		sp2.Workflow.ScheduleActivities, sp2.Workflow.EagerActivities, sp2.Workflow.StartTimers = nil, nil, nil
		_, err = b.st.CompleteActivityWithWorkflowTask(b.ctx, sp2)
		require.NoError(t, err)
		require.EqualValues(t, 6, b.getRun(t, run.RunID).HistoryLen)
		expired, err = b.st.ExpiredActivityTasks(b.ctx, at(time.Hour), 10)
		require.NoError(t, err)
		require.Empty(t, expired)
	})

	t.Run("Commit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, acts := b.idleRun(t, 2, store.Timer{Seq: 4, FireAt: at(time.Hour), Item: store.NewInboxItem{Type: "timer_fired"}})
		before := b.getRun(t, run.RunID)
		require.EqualValues(t, 3, before.HistoryLen)

		// Complete 2; the workflow task run on its result schedules 5
		// (leased at once) and 6, starts timer 7, cancels timer 4 and
		// asks activity 3 to cancel. Token, InboxUpTo and the activity's
		// Eager are ignored.
		now := at(3 * time.Second)
		a5 := activity(run, 5, now)
		a5.StartToClose = 10 * time.Second
		a6 := activity(run, 6, now)
		sp := speculative(acts[0], 3, now)
		sp.Activity.Eager = &store.EagerLease{Owner: "eager-1", LeaseUntil: at(time.Minute)}
		w := &sp.Workflow
		w.Token, w.InboxUpTo = "no-such-token", 1<<40
		w.ScheduleActivities = []store.ActivityTask{a5, a6}
		w.EagerActivities, w.EagerOwner = []int64{5}, "eager-w"
		w.StartTimers = []store.Timer{{RunID: run.RunID, Seq: 7, FireAt: at(30 * time.Second),
			Item: store.NewInboxItem{Type: "timer_fired", Data: []byte("7")}}}
		w.CancelTimers = []int64{4}
		w.CancelActivities = []int64{3}
		res, err := b.st.CompleteActivityWithWorkflowTask(b.ctx, sp)
		require.NoError(t, err)
		require.False(t, res.Pending)
		require.Len(t, res.Activities, 1)
		requireLeasedActivity(t, a5, res.Activities[0], "eager-w", now, at(13*time.Second))

		// The events are appended, as by a commit.
		got := b.getRun(t, run.RunID)
		require.Equal(t, store.StatusRunning, got.Status)
		require.EqualValues(t, 5, got.HistoryLen)
		require.Equal(t, before.HistoryBytes+int64(len(w.Events[0].Data)+len(w.Events[1].Data)), got.HistoryBytes)
		requireTime(t, now, got.UpdatedAt)
		require.Empty(t, got.LastTaskFailure)
		hist := b.history(t, run.RunID)
		require.Len(t, hist, 5)
		for i, ev := range w.Events {
			require.Equal(t, ev.ID, hist[3+i].ID)
			require.Equal(t, ev.Type, hist[3+i].Type)
			require.Equal(t, ev.Data, hist[3+i].Data)
			requireTime(t, ev.Time, hist[3+i].Time)
		}

		// Activity 2 is done and its attempt recorded.
		atts, err := b.st.ActivityAttempts(b.ctx, run.RunID)
		require.NoError(t, err)
		require.Len(t, atts, 1)
		require.EqualValues(t, 2, atts[0].Seq)
		require.Equal(t, 1, atts[0].Attempt)
		require.Equal(t, "completed", atts[0].Outcome)
		require.Equal(t, "worker-a", atts[0].Owner)
		requireTime(t, at(2*time.Second), atts[0].StartedAt)
		requireTime(t, now, atts[0].EndedAt)
		_, err = b.st.HeartbeatActivityTask(b.ctx, store.HeartbeatParams{RunID: run.RunID, Seq: 2, Token: acts[0].Token, Now: now})
		require.ErrorIs(t, err, store.ErrLeaseLost)

		// 3 is cancel-requested, 5 is leased, 6 is left to the pollers.
		hb, err := b.st.HeartbeatActivityTask(b.ctx, store.HeartbeatParams{RunID: run.RunID, Seq: 3, Token: acts[1].Token, Now: now})
		require.NoError(t, err)
		require.True(t, hb.CancelRequested)
		left := b.claimActivity(t, acts[0].TaskQueue, now)
		require.EqualValues(t, 6, left.Seq)

		// The result was not written to the inbox and no workflow task is
		// left behind: nothing to claim, and the next wakeup is 5's lease
		// expiry.
		b.claimNone(t, run.TaskQueue, at(time.Minute))
		next, ok, err := b.st.NextWakeup(b.ctx)
		require.NoError(t, err)
		require.True(t, ok)
		requireTime(t, at(13*time.Second), next)

		// Timer 7 fires; timer 4 was canceled.
		queues, err := b.st.FireTimers(b.ctx, at(2*time.Hour), 100)
		require.NoError(t, err)
		require.Equal(t, []string{run.TaskQueue}, queues)
		wt := b.claim(t, run.TaskQueue, at(2*time.Hour))
		require.Equal(t, 1, wt.Attempt)
		require.Len(t, wt.Inbox, 1)
		require.Equal(t, []byte("7"), wt.Inbox[0].Data)
		requireSameRun(t, got, wt.Run)
	})

	t.Run("CloseRun", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, acts := b.idleRun(t, 2)
		now := at(3 * time.Second)
		sp := speculative(acts[0], 3, now)
		sp.Workflow.Close = &store.CloseRun{Status: store.StatusCompleted, Result: []byte(`"done"`)}
		res, err := b.st.CompleteActivityWithWorkflowTask(b.ctx, sp)
		require.NoError(t, err)
		require.False(t, res.Pending)
		require.Empty(t, res.Activities, "nothing is leased on close")

		got := b.getRun(t, run.RunID)
		require.Equal(t, store.StatusCompleted, got.Status)
		require.Equal(t, []byte(`"done"`), got.Result)
		require.EqualValues(t, 5, got.HistoryLen)
		requireTime(t, now, got.ClosedAt)
		require.Len(t, b.history(t, run.RunID), 5)
		atts, err := b.st.ActivityAttempts(b.ctx, run.RunID)
		require.NoError(t, err)
		require.Len(t, atts, 1)

		// Closing deleted the run's other activity, and wrote no timer,
		// activity or workflow task.
		_, err = b.st.HeartbeatActivityTask(b.ctx, store.HeartbeatParams{RunID: run.RunID, Seq: 3, Token: acts[1].Token, Now: now})
		require.ErrorIs(t, err, store.ErrLeaseLost)
		b.claimNone(t, run.TaskQueue, at(time.Hour))
		b.requireNothingScheduled(t)
		_, err = b.st.CompleteActivityWithWorkflowTask(b.ctx, speculative(acts[1], 5, at(4*time.Second)))
		require.ErrorIs(t, err, store.ErrLeaseLost)
	})

	t.Run("BusyRunnable", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, acts := b.idleRun(t, 1)
		b.signal(t, run.RunID, "s", at(3*time.Second))
		b.requireBusy(t, speculative(acts[0], 2, at(4*time.Second)))

		// The engine falls back on CompleteActivityTask; the workflow task
		// then holds the signal and the result.
		require.NoError(t, b.completeActivity(t, plainCompletion(acts[0], at(5*time.Second))))
		wt := b.claim(t, run.TaskQueue, at(5*time.Second))
		require.Equal(t, 1, wt.Attempt)
		require.EqualValues(t, 2, wt.Run.HistoryLen)
		require.Len(t, wt.Inbox, 2)
		require.Equal(t, "signal", wt.Inbox[0].Type)
		require.Equal(t, "activity_completed", wt.Inbox[1].Type)
	})

	t.Run("BusyLeased", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, acts := b.idleRun(t, 2)
		require.NoError(t, b.completeActivity(t, plainCompletion(acts[0], at(3*time.Second))))
		wt := b.claim(t, run.TaskQueue, at(3*time.Second)) // leased until 63s
		b.requireBusy(t, speculative(acts[1], 3, at(4*time.Second)))
		// Its lease expired, but the task is still there.
		b.requireBusy(t, speculative(acts[1], 3, at(63*time.Second)))

		// The holder commits; the run is idle again, and the call goes
		// through.
		p := params(wt, at(64*time.Second))
		p.Events = inboxEvents(wt)
		require.False(t, b.commit(t, p).Pending)
		res, err := b.st.CompleteActivityWithWorkflowTask(b.ctx, speculative(acts[1], 4, at(65*time.Second)))
		require.NoError(t, err)
		require.Len(t, res.Activities, 1)
		require.EqualValues(t, 6, b.getRun(t, run.RunID).HistoryLen)
		b.claimNone(t, run.TaskQueue, at(time.Hour))
	})

	t.Run("BusyBackingOff", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, acts := b.idleRun(t, 1)
		b.signal(t, run.RunID, "s", at(3*time.Second))
		wt := b.claim(t, run.TaskQueue, at(3*time.Second))
		require.NoError(t, b.st.FailWorkflowTask(b.ctx, store.FailWorkflowTaskParams{
			RunID: run.RunID, Token: wt.Token, RetryAt: at(time.Minute), Failure: "panic: boom", Now: at(4 * time.Second),
		}))
		b.requireBusy(t, speculative(acts[0], 2, at(5*time.Second)))
		// Its backoff is over, but the task is still there.
		b.requireBusy(t, speculative(acts[0], 2, at(time.Minute)))

		retry := b.claim(t, run.TaskQueue, at(time.Minute))
		require.Equal(t, 2, retry.Attempt)
		require.Equal(t, "panic: boom", retry.Run.LastTaskFailure)
		require.Len(t, retry.Inbox, 1)
		require.Equal(t, "signal", retry.Inbox[0].Type)
	})

	t.Run("BusyHistoryMoved", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, acts := b.idleRun(t, 1)
		for _, n := range []int64{0, 1, 3} {
			b.requireBusy(t, speculative(acts[0], n, at(3*time.Second)))
		}
		_, err := b.st.CompleteActivityWithWorkflowTask(b.ctx, speculative(acts[0], 2, at(3*time.Second)))
		require.NoError(t, err)
		require.EqualValues(t, 4, b.getRun(t, run.RunID).HistoryLen)
	})

	t.Run("LeaseLost", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, acts := b.idleRun(t, 1)
		stale := acts[0]
		require.NoError(t, b.st.RetryActivityTask(b.ctx, store.RetryActivityTaskParams{
			RunID: run.RunID, Seq: 2, Token: stale.Token, Attempt: attempt(stale, "failed", "boom", at(3*time.Second)),
			RetryAt: at(4 * time.Second), Now: at(3 * time.Second),
		}))
		second := b.claimActivity(t, stale.TaskQueue, at(4*time.Second))
		require.Equal(t, 2, second.Attempt)

		b.requireLost(t, speculative(stale, 2, at(5*time.Second)))
		for _, token := range []string{"not-the-token", ""} {
			sp := speculative(second, 2, at(5*time.Second))
			sp.Activity.Token = token
			b.requireLost(t, sp)
		}

		// Both fences fail: the activity's is checked first.
		b.signal(t, run.RunID, "s", at(6*time.Second))
		b.requireLost(t, speculative(stale, 2, at(7*time.Second)))
		b.requireLost(t, speculative(stale, 1, at(7*time.Second)))
		b.requireBusy(t, speculative(second, 2, at(7*time.Second)))

		wt := b.claim(t, run.TaskQueue, at(7*time.Second))
		p := params(wt, at(7*time.Second))
		p.Events = inboxEvents(wt)
		b.commit(t, p)
		_, err := b.st.CompleteActivityWithWorkflowTask(b.ctx, speculative(second, 3, at(8*time.Second)))
		require.NoError(t, err)

		// Done: the token is refused now, whatever the run's state.
		b.requireLost(t, speculative(second, 5, at(9*time.Second)))
		b.requireLost(t, speculative(second, 3, at(9*time.Second)))

		// A terminated run's activities are gone.
		other, others := b.idleRun(t, 1)
		require.NoError(t, b.st.Terminate(b.ctx, store.TerminateParams{
			RunID: other.RunID, Event: store.Event{Type: "terminated"}, Now: at(3 * time.Second),
		}))
		b.requireLost(t, speculative(others[0], 2, at(4*time.Second)))
		b.requireLost(t, speculative(others[0], 3, at(4*time.Second)))
	})

	t.Run("InvalidParams", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, acts := b.idleRun(t, 1)
		other, _ := b.idleRun(t, 1)
		mods := map[string]func(w *store.CompleteWorkflowTaskParams){
			"another run":       func(w *store.CompleteWorkflowTaskParams) { w.RunID = other.RunID },
			"event IDs":         func(w *store.CompleteWorkflowTaskParams) { w.Events[1].ID++ },
			"unknown eager seq": func(w *store.CompleteWorkflowTaskParams) { w.EagerActivities = []int64{99} },
			"eager seq twice":   func(w *store.CompleteWorkflowTaskParams) { w.EagerActivities = []int64{102, 102} },
			"close status":      func(w *store.CompleteWorkflowTaskParams) { w.Close = &store.CloseRun{Status: store.StatusRunning} },
		}
		for name, mod := range mods {
			before, beforeOther := b.snapshot(t, run.RunID), b.snapshot(t, other.RunID)
			sp := speculative(acts[0], 2, at(3*time.Second))
			mod(&sp.Workflow)
			_, err := b.st.CompleteActivityWithWorkflowTask(b.ctx, sp)
			require.Error(t, err, name)
			require.NotErrorIs(t, err, store.ErrLeaseLost, name)
			require.NotErrorIs(t, err, store.ErrRunBusy, name)
			b.requireSnapshot(t, before)
			b.requireSnapshot(t, beforeOther)
		}
		_, err := b.st.CompleteActivityWithWorkflowTask(b.ctx, speculative(acts[0], 2, at(3*time.Second)))
		require.NoError(t, err, "the failed calls changed nothing")
	})

	t.Run("RaceWithSignal", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// Many idle runs, each with one leased activity. Each run's
		// activity is completed with its workflow task while a signal
		// arrives: either the call commits first and the signal then makes
		// a workflow task, or the signal comes first and the call is
		// refused. The signal is never lost.
		const runs = 100
		const queue = "speculative-race"
		acts := b.idleRuns(t, queue, runs)

		now := at(time.Second)
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			callErr = make([]error, runs)
			sigErr  = make([]error, runs)
		)
		for i, act := range acts {
			wg.Go(func() {
				<-start
				_, callErr[i] = b.st.CompleteActivityWithWorkflowTask(b.ctx, speculative(act, 2, now))
			})
			wg.Go(func() {
				<-start
				_, sigErr[i] = b.st.Signal(b.ctx, store.SignalParams{
					RunID: act.RunID, Item: store.NewInboxItem{Type: "signal", Data: []byte(`"race"`)}, Now: now,
				})
			})
		}
		close(start)
		wg.Wait()

		tasks := b.claimN(t, queue, now, runs)
		require.Len(t, tasks, runs, "every run has a workflow task for its signal")
		byRun := make(map[string]store.WorkflowTask, runs)
		for _, wt := range tasks {
			byRun[wt.Run.RunID] = wt
		}
		committed := 0
		for i, act := range acts {
			require.NoError(t, sigErr[i])
			wt, ok := byRun[act.RunID]
			require.True(t, ok)
			require.Len(t, wt.Inbox, 1)
			require.Equal(t, "signal", wt.Inbox[0].Type)
			require.Equal(t, []byte(`"race"`), wt.Inbox[0].Data)
			if callErr[i] == nil {
				committed++
				require.EqualValues(t, 4, wt.Run.HistoryLen)
				continue
			}
			require.ErrorIs(t, callErr[i], store.ErrRunBusy)
			require.EqualValues(t, 2, wt.Run.HistoryLen)
			require.NoError(t, b.completeActivity(t, plainCompletion(act, now)), "the activity is still leased")
		}
		t.Logf("%d of %d calls committed before the signal", committed, runs)
	})
}

// idleRun creates a run and commits its first workflow task at 1s, with
// one event per activity, scheduling n activities, seqs 2, 3, …, on the
// task queue act-<run ID>, and starting timers. It claims the activities at
// 2s. The run is then idle at history length 1+n, and the activities are
// returned by seq.
func (b *bundle) idleRun(t *testing.T, n int, timers ...store.Timer) (store.Run, []store.ActivityTask) {
	t.Helper()
	run := b.createRun(t)
	wt := b.claim(t, run.TaskQueue, at(time.Second))
	p := params(wt, at(time.Second))
	p.Events = events(1, n)
	for i := range n {
		p.ScheduleActivities = append(p.ScheduleActivities, activity(run, int64(i+2), at(time.Second)))
	}
	for _, tm := range timers {
		tm.RunID = run.RunID
		p.StartTimers = append(p.StartTimers, tm)
	}
	b.commit(t, p)
	acts := b.claimActivities(t, "act-"+run.RunID, at(2*time.Second))
	require.Len(t, acts, n)
	slices.SortFunc(acts, func(x, y store.ActivityTask) int { return cmp.Compare(x.Seq, y.Seq) })
	return run, acts
}

// idleRuns creates n runs on queue and commits each one's first workflow
// task at base, scheduling activity 2 on queue-acts, which it claims. The
// runs are then idle at history length 2; their activities are returned.
func (b *bundle) idleRuns(t *testing.T, queue string, n int) []store.ActivityTask {
	t.Helper()
	for range n {
		b.createRun(t, func(p *store.CreateRunParams) { p.TaskQueue = queue })
	}
	tasks := b.claimN(t, queue, base, n)
	require.Len(t, tasks, n)
	for _, wt := range tasks {
		a := activity(wt.Run, 2, base)
		a.TaskQueue = queue + "-acts"
		p := params(wt, base)
		p.Events = events(1, 1)
		p.ScheduleActivities = []store.ActivityTask{a}
		b.commit(t, p)
	}
	acts, err := b.st.ClaimActivityTasks(b.ctx, store.ClaimParams{
		TaskQueue: queue + "-acts", Owner: "worker-a", Limit: n, Now: base,
	})
	require.NoError(t, err)
	require.Len(t, acts, n)
	return acts
}

// speculative returns the parameters that complete act at now, together
// with the workflow task the engine ran on its result at history length
// histLen: the result event and one command, which schedules activity
// 100+seq (leased at once, with a 10s start-to-close timeout) and starts
// timer 200+seq, due in 30s, so that a call that wrongly wrote them shows
// in NextWakeup.
func speculative(act store.ActivityTask, histLen int64, now time.Time) store.CompleteActivityWithWorkflowTaskParams {
	item := store.NewInboxItem{Type: "activity_completed", Data: fmt.Appendf(nil, `{"result":%d}`, act.Seq)}
	next := store.ActivityTask{RunID: act.RunID, Seq: 100 + act.Seq, ActivityType: "charge", TaskQueue: act.TaskQueue,
		Attempt: 1, ScheduledAt: now, ReadyAt: now, StartToClose: 10 * time.Second}
	return store.CompleteActivityWithWorkflowTaskParams{
		Activity: store.CompleteActivityTaskParams{
			RunID: act.RunID, Seq: act.Seq, Token: act.Token, Attempt: attempt(act, "completed", "", now), Item: item, Now: now,
		},
		Workflow: store.CompleteWorkflowTaskParams{
			RunID:              act.RunID,
			ExpectedHistoryLen: histLen,
			Events: append([]store.Event{{ID: histLen + 1, Type: item.Type, Time: now, Data: item.Data}},
				events(histLen+1, 1)...),
			ScheduleActivities: []store.ActivityTask{next},
			EagerActivities:    []int64{next.Seq},
			EagerOwner:         "eager-w",
			StartTimers: []store.Timer{{RunID: act.RunID, Seq: 200 + act.Seq, FireAt: now.Add(30 * time.Second),
				Item: store.NewInboxItem{Type: "timer_fired"}}},
			Now: now,
		},
	}
}

// plainCompletion returns the CompleteActivityTask parameters that record
// the result speculative would.
func plainCompletion(act store.ActivityTask, now time.Time) store.CompleteActivityTaskParams {
	return speculative(act, 0, now).Activity
}

// runState is what a refused call must leave as it was.
type runState struct {
	run      store.Run
	history  int
	attempts int
	wake     time.Time
	wakeOK   bool
}

func (b *bundle) snapshot(t *testing.T, runID string) runState {
	t.Helper()
	s := runState{run: b.getRun(t, runID), history: len(b.history(t, runID))}
	atts, err := b.st.ActivityAttempts(b.ctx, runID)
	require.NoError(t, err)
	s.attempts = len(atts)
	s.wake, s.wakeOK, err = b.st.NextWakeup(b.ctx)
	require.NoError(t, err)
	return s
}

func (b *bundle) requireSnapshot(t *testing.T, want runState) {
	t.Helper()
	got := b.snapshot(t, want.run.RunID)
	requireSameRun(t, want.run, got.run)
	require.Equal(t, want.history, got.history, "history")
	require.Equal(t, want.attempts, got.attempts, "activity attempts")
	require.Equal(t, want.wakeOK, got.wakeOK, "NextWakeup")
	if want.wakeOK {
		requireTime(t, want.wake, got.wake, "NextWakeup")
	}
}

// requireBusy checks that sp is refused with store.ErrRunBusy and writes
// nothing (see requireRefused), and that the activity is still leased
// with the same token.
func (b *bundle) requireBusy(t *testing.T, sp store.CompleteActivityWithWorkflowTaskParams) {
	t.Helper()
	b.requireRefused(t, sp, store.ErrRunBusy)
	_, err := b.st.HeartbeatActivityTask(b.ctx, store.HeartbeatParams{
		RunID: sp.Activity.RunID, Seq: sp.Activity.Seq, Token: sp.Activity.Token, Now: sp.Activity.Now,
	})
	require.NoError(t, err, "the activity is still leased with the same token")
}

// requireLost checks that sp is refused with store.ErrLeaseLost and writes
// nothing (see requireRefused).
func (b *bundle) requireLost(t *testing.T, sp store.CompleteActivityWithWorkflowTaskParams) {
	t.Helper()
	b.requireRefused(t, sp, store.ErrLeaseLost)
}

// requireRefused checks that sp fails with want and writes nothing: the
// run, its history, its attempts and the next wakeup are as they were.
func (b *bundle) requireRefused(t *testing.T, sp store.CompleteActivityWithWorkflowTaskParams, want error) {
	t.Helper()
	before := b.snapshot(t, sp.Activity.RunID)
	_, err := b.st.CompleteActivityWithWorkflowTask(b.ctx, sp)
	require.ErrorIs(t, err, want)
	b.requireSnapshot(t, before)
}
