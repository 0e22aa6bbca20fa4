package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
)

// idleRun starts run runID on queue "q" and commits its first workflow
// task, which schedules activities 2 and 3 on queue "aq", leased to the
// caller. The run is then idle at history length 3: no workflow task row.
func (b *testBundle) idleRun(t *testing.T, runID string) []store.ActivityTask {
	t.Helper()
	res, err := b.st.CreateRun(b.ctx, store.CreateRunParams{
		RunID: runID, WorkflowID: "wf-" + runID, WorkflowType: "order", TaskQueue: "q",
		StartEvent: store.Event{Type: "started"}, Now: base,
		Eager: &store.EagerLease{Owner: "w", LeaseUntil: at(time.Minute)},
	})
	require.NoError(t, err)
	committed, err := b.st.CompleteWorkflowTask(b.ctx, store.CompleteWorkflowTaskParams{
		RunID: runID, Token: res.Task.Token, ExpectedHistoryLen: 1,
		Events: []store.Event{{ID: 2, Type: "activity_scheduled"}, {ID: 3, Type: "activity_scheduled"}},
		ScheduleActivities: []store.ActivityTask{
			{Seq: 2, ActivityType: "charge", TaskQueue: "aq"},
			{Seq: 3, ActivityType: "charge", TaskQueue: "aq"},
		},
		EagerActivities: []int64{2, 3}, EagerOwner: "w", Now: base,
	})
	require.NoError(t, err)
	require.Len(t, committed.Activities, 2)
	require.Zero(t, b.count(t, "keel_workflow_tasks", runID))
	return committed.Activities
}

// count returns the number of rows of table that belong to run runID.
func (b *testBundle) count(t *testing.T, table, runID string) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT count(*) FROM "+table+" WHERE run_id = $1", runID).Scan(&n))
	return n
}

// completed returns the parameters that complete activity a at now with
// item data, committing the workflow task run on it: the activity's
// result as event historyLen+1, followed by extra events.
func completed(a store.ActivityTask, data string, historyLen int64, now time.Time, extra ...string) store.CompleteActivityWithWorkflowTaskParams {
	p := store.CompleteActivityWithWorkflowTaskParams{
		Activity: store.CompleteActivityTaskParams{
			RunID: a.RunID, Seq: a.Seq, Token: a.Token,
			Attempt: store.ActivityAttempt{Attempt: a.Attempt, ActivityType: a.ActivityType, Owner: "w", Outcome: "completed"},
			Item:    store.NewInboxItem{Type: "activity_completed", Data: []byte(data)}, Now: now,
		},
		Workflow: store.CompleteWorkflowTaskParams{
			RunID: a.RunID, ExpectedHistoryLen: historyLen, Now: now,
			Events: []store.Event{{ID: historyLen + 1, Type: "activity_completed", Data: []byte(data)}},
		},
	}
	for i, typ := range extra {
		p.Workflow.Events = append(p.Workflow.Events, store.Event{ID: historyLen + int64(i) + 2, Type: typ})
	}
	return p
}

// requireUntouched checks that a refused CompleteActivityWithWorkflowTask
// wrote nothing: the run has historyLen events, activity a is still leased
// (if the run is running) with no attempt recorded, and the inbox has
// inbox items.
func (b *testBundle) requireUntouched(t *testing.T, a store.ActivityTask, historyLen int64, inbox int) {
	t.Helper()
	run, err := b.st.GetRun(b.ctx, a.RunID)
	require.NoError(t, err)
	require.Equal(t, historyLen, run.HistoryLen)
	evs, err := b.st.History(b.ctx, a.RunID, 0)
	require.NoError(t, err)
	require.Len(t, evs, int(historyLen))
	var token *string
	err = b.pool.QueryRow(b.ctx, "SELECT token FROM keel_activity_tasks WHERE run_id = $1 AND seq = $2", a.RunID, a.Seq).Scan(&token)
	if run.Status == store.StatusRunning {
		require.NoError(t, err)
		require.NotNil(t, token)
		require.Equal(t, a.Token, *token)
	} else {
		require.ErrorIs(t, err, pgx.ErrNoRows)
	}
	attempts, err := b.st.ActivityAttempts(b.ctx, a.RunID)
	require.NoError(t, err)
	for _, at := range attempts {
		require.NotEqual(t, a.Seq, at.Seq, "attempt recorded")
	}
	require.Equal(t, inbox, b.count(t, "keel_inbox", a.RunID))
}

func TestCompleteActivityWithWorkflowTask(t *testing.T) {
	t.Parallel()

	t.Run("Commits", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		acts := b.idleRun(t, "r1")
		_, err := b.pool.Exec(b.ctx, "UPDATE keel_runs SET last_task_failure = 'boom' WHERE run_id = 'r1'")
		require.NoError(t, err)
		ch := newStore(t, b.morePool(t, 2)).Notifications(b.ctx)

		// Activity 2's result: schedule activities 5 (leased) and 6 (left
		// to the pollers), start timer 7, cancel activity 3.
		p := completed(acts[0], `"two"`, 3, at(time.Second), "activity_scheduled", "activity_scheduled", "timer_started")
		p.Workflow.ScheduleActivities = []store.ActivityTask{
			{Seq: 5, ActivityType: "charge", TaskQueue: "aq"},
			{Seq: 6, ActivityType: "charge", TaskQueue: "polled-q"},
		}
		p.Workflow.EagerActivities, p.Workflow.EagerOwner = []int64{5}, "w"
		p.Workflow.StartTimers = []store.Timer{{Seq: 7, FireAt: at(time.Hour), Item: store.NewInboxItem{Type: "timer_fired"}}}
		p.Workflow.CancelActivities = []int64{3}
		// Ignored: the lease fields of the commit, and Eager.
		p.Workflow.Token, p.Workflow.InboxUpTo = "ignored", 1<<40
		p.Activity.Eager = &store.EagerLease{Owner: "w", LeaseUntil: at(time.Minute)}
		res, err := b.st.CompleteActivityWithWorkflowTask(b.ctx, p)
		require.NoError(t, err)
		require.False(t, res.Pending)
		require.Len(t, res.Activities, 1)
		require.EqualValues(t, 5, res.Activities[0].Seq)
		require.NotEmpty(t, res.Activities[0].Token)
		require.Equal(t, at(time.Second), res.Activities[0].StartedAt)

		run, err := b.st.GetRun(b.ctx, "r1")
		require.NoError(t, err)
		require.EqualValues(t, 7, run.HistoryLen)
		require.Empty(t, run.LastTaskFailure, "cleared as by a commit")
		require.Equal(t, store.StatusRunning, run.Status)
		evs, err := b.st.History(b.ctx, "r1", 3)
		require.NoError(t, err)
		require.Len(t, evs, 4)
		require.Equal(t, "activity_completed", evs[0].Type)
		require.Equal(t, []byte(`"two"`), evs[0].Data)
		require.Equal(t, at(time.Second), evs[0].Time)

		require.Zero(t, b.count(t, "keel_inbox", "r1"), "the outcome is in the history, not the inbox")
		require.Zero(t, b.count(t, "keel_workflow_tasks", "r1"), "the run stays idle")
		require.Empty(t, b.claim(t, "q", at(time.Hour)))
		attempts, err := b.st.ActivityAttempts(b.ctx, "r1")
		require.NoError(t, err)
		require.Len(t, attempts, 1)
		require.EqualValues(t, 2, attempts[0].Seq)
		require.Equal(t, "completed", attempts[0].Outcome)
		var seqs []int64
		rows, err := b.pool.Query(b.ctx, "SELECT seq FROM keel_activity_tasks WHERE run_id = 'r1' ORDER BY seq")
		require.NoError(t, err)
		seqs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		require.Equal(t, []int64{3, 5, 6}, seqs)
		hb, err := b.st.HeartbeatActivityTask(b.ctx, store.HeartbeatParams{RunID: "r1", Seq: 3, Token: acts[1].Token, Now: at(time.Second)})
		require.NoError(t, err)
		require.True(t, hb.CancelRequested)
		next, ok, err := b.st.NextWakeup(b.ctx)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, at(time.Hour), next, "timer 7")
		require.Equal(t, []string{"a/polled-q"}, b.notified(t, ch, "marker-1"), "the activity left to the pollers, no workflow task")

		// Still idle: the next result goes the same way, and a later
		// signal makes a workflow task as usual.
		p = completed(acts[1], `"three"`, 7, at(2*time.Second))
		_, err = b.st.CompleteActivityWithWorkflowTask(b.ctx, p)
		require.NoError(t, err)
		b.signal(t, "r1", `"after"`, at(3*time.Second))
		require.Equal(t, []string{"w/q"}, b.notified(t, ch, "marker-2"), "the signal alone")
		tasks := b.claim(t, "q", at(3*time.Second))
		require.Len(t, tasks, 1)
		require.EqualValues(t, 8, tasks[0].Run.HistoryLen)
		require.Len(t, tasks[0].Inbox, 1)
		require.Equal(t, []byte(`"after"`), tasks[0].Inbox[0].Data)
	})

	t.Run("Closes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		acts := b.idleRun(t, "r1")
		p := completed(acts[0], `"two"`, 3, at(time.Second), "completed")
		p.Workflow.Close = &store.CloseRun{Status: store.StatusCompleted, Result: []byte(`"ok"`)}
		res, err := b.st.CompleteActivityWithWorkflowTask(b.ctx, p)
		require.NoError(t, err)
		require.Empty(t, res.Activities)
		run, err := b.st.GetRun(b.ctx, "r1")
		require.NoError(t, err)
		require.Equal(t, store.StatusCompleted, run.Status)
		require.Equal(t, []byte(`"ok"`), run.Result)
		require.EqualValues(t, 5, run.HistoryLen)
		require.Equal(t, at(time.Second), run.ClosedAt)
		for _, table := range []string{"keel_workflow_tasks", "keel_activity_tasks", "keel_timers", "keel_inbox"} {
			require.Zero(t, b.count(t, table, "r1"), table)
		}
		// The other activity was deleted with the run's tasks.
		_, err = b.st.CompleteActivityWithWorkflowTask(b.ctx, completed(acts[1], `"three"`, 5, at(2*time.Second)))
		require.ErrorIs(t, err, store.ErrLeaseLost)
		_, err = b.st.Signal(b.ctx, store.SignalParams{RunID: "r1", Item: store.NewInboxItem{Type: "s"}, Now: at(time.Second)})
		require.ErrorIs(t, err, store.ErrRunClosed)
	})

	t.Run("ActivityFenced", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		acts := b.idleRun(t, "r1")
		stale := acts[0]
		stale.Token = "stale"
		_, err := b.st.CompleteActivityWithWorkflowTask(b.ctx, completed(stale, "x", 3, at(time.Second)))
		require.ErrorIs(t, err, store.ErrLeaseLost)
		require.NotErrorIs(t, err, store.ErrRunBusy)
		b.requireUntouched(t, acts[0], 3, 0)

		// The fence is checked first: a stale token on a busy run is a
		// lost lease.
		b.signal(t, "r1", "s", at(time.Second))
		_, err = b.st.CompleteActivityWithWorkflowTask(b.ctx, completed(stale, "x", 3, at(time.Second)))
		require.ErrorIs(t, err, store.ErrLeaseLost)
		_, err = b.st.CompleteActivityWithWorkflowTask(b.ctx, completed(stale, "x", 2, at(time.Second)))
		require.ErrorIs(t, err, store.ErrLeaseLost)
		b.requireUntouched(t, acts[0], 3, 1)

		// A completed activity is gone.
		_, err = b.st.CompleteActivityTask(b.ctx, completed(acts[0], "x", 0, at(time.Second)).Activity)
		require.NoError(t, err)
		_, err = b.st.CompleteActivityWithWorkflowTask(b.ctx, completed(acts[0], "x", 3, at(time.Second)))
		require.ErrorIs(t, err, store.ErrLeaseLost)

		// No such run.
		_, err = b.st.CompleteActivityWithWorkflowTask(b.ctx, completed(store.ActivityTask{RunID: "nope", Seq: 2, Token: "t"}, "x", 1, at(time.Second)))
		require.ErrorIs(t, err, store.ErrLeaseLost)
	})

	t.Run("Terminated", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		acts := b.idleRun(t, "r1")
		require.NoError(t, b.st.Terminate(b.ctx, store.TerminateParams{RunID: "r1", Event: store.Event{Type: "terminated"}, Now: base}))
		for _, expected := range []int64{3, 4} {
			_, err := b.st.CompleteActivityWithWorkflowTask(b.ctx, completed(acts[0], "x", expected, at(time.Second)))
			require.ErrorIs(t, err, store.ErrLeaseLost)
		}
		b.requireUntouched(t, acts[0], 4, 0)
	})

	t.Run("Busy", func(t *testing.T) {
		t.Parallel()
		for name, busy := range map[string]func(t *testing.T, b *testBundle) (historyLen int64, inbox int){
			// Items wait in the inbox: a workflow task is runnable.
			"Signalled": func(t *testing.T, b *testBundle) (int64, int) {
				b.signal(t, "r1", "s", base)
				return 3, 1
			},
			// Another activity's result waits.
			"ActivityCompleted": func(t *testing.T, b *testBundle) (int64, int) {
				_, err := b.st.CompleteActivityTask(b.ctx, store.CompleteActivityTaskParams{
					RunID: "r1", Seq: 3, Token: b.activity(t, "r1", 3).Token,
					Attempt: store.ActivityAttempt{Attempt: 1, Outcome: "completed"},
					Item:    store.NewInboxItem{Type: "activity_completed"}, Now: base,
				})
				require.NoError(t, err)
				return 3, 1
			},
			// Someone holds the workflow task, with its inbox.
			"Leased": func(t *testing.T, b *testBundle) (int64, int) {
				b.signal(t, "r1", "s", base)
				require.Len(t, b.claim(t, "q", base), 1)
				return 3, 1
			},
			// A workflow task backs off after a failure.
			"BackingOff": func(t *testing.T, b *testBundle) (int64, int) {
				b.signal(t, "r1", "s", base)
				wt := b.claim(t, "q", base)[0]
				require.NoError(t, b.st.FailWorkflowTask(b.ctx, store.FailWorkflowTaskParams{
					RunID: "r1", Token: wt.Token, RetryAt: at(time.Hour), Failure: "boom", Now: base,
				}))
				return 3, 1
			},
			// A timer fired.
			"TimerFired": func(t *testing.T, b *testBundle) (int64, int) {
				wt := b.signalAndClaim(t)
				_, err := b.st.CompleteWorkflowTask(b.ctx, store.CompleteWorkflowTaskParams{
					RunID: "r1", Token: wt.Token, ExpectedHistoryLen: 3, InboxUpTo: wt.Inbox[0].ID,
					Events:      []store.Event{{ID: 4, Type: "signal"}, {ID: 5, Type: "timer_started"}},
					StartTimers: []store.Timer{{Seq: 5, FireAt: base, Item: store.NewInboxItem{Type: "timer_fired"}}},
					Now:         base,
				})
				require.NoError(t, err)
				require.Zero(t, b.count(t, "keel_workflow_tasks", "r1"), "idle until the timer fires")
				_, err = b.st.FireTimers(b.ctx, base, 10)
				require.NoError(t, err)
				return 5, 1
			},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				acts := b.idleRun(t, "r1")
				historyLen, inbox := busy(t, b)
				for _, expected := range []int64{historyLen, historyLen - 1, historyLen + 1} {
					p := completed(acts[0], "x", expected, at(time.Second))
					_, err := b.st.CompleteActivityWithWorkflowTask(b.ctx, p)
					require.ErrorIs(t, err, store.ErrRunBusy, "expected history length %d", expected)
					require.NotErrorIs(t, err, store.ErrLeaseLost)
				}
				b.requireUntouched(t, acts[0], historyLen, inbox)
			})
		}
	})

	// The history moved on while the caller ran its workflow task (another
	// completion went first): the run has no workflow task, but not the
	// expected length.
	t.Run("HistoryMovedOn", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		acts := b.idleRun(t, "r1")
		_, err := b.st.CompleteActivityWithWorkflowTask(b.ctx, completed(acts[1], "three", 3, at(time.Second)))
		require.NoError(t, err)
		_, err = b.st.CompleteActivityWithWorkflowTask(b.ctx, completed(acts[0], "two", 3, at(time.Second)))
		require.ErrorIs(t, err, store.ErrRunBusy)
		b.requireUntouched(t, acts[0], 4, 0)
		// The caller falls back to the ordinary completion.
		_, err = b.st.CompleteActivityTask(b.ctx, completed(acts[0], "two", 0, at(time.Second)).Activity)
		require.NoError(t, err)
		wt := b.claim(t, "q", at(time.Second))
		require.Len(t, wt, 1)
		require.EqualValues(t, 4, wt[0].Run.HistoryLen)
		require.Equal(t, []byte("two"), wt[0].Inbox[0].Data)
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		acts := b.idleRun(t, "r1")
		for name, mod := range map[string]func(p *store.CompleteActivityWithWorkflowTaskParams){
			"EventIDs": func(p *store.CompleteActivityWithWorkflowTaskParams) { p.Workflow.Events[0].ID = 5 },
			"OtherRun": func(p *store.CompleteActivityWithWorkflowTaskParams) { p.Workflow.RunID = "r2" },
			"CloseStatus": func(p *store.CompleteActivityWithWorkflowTaskParams) {
				p.Workflow.Close = &store.CloseRun{Status: store.StatusRunning}
			},
			"EagerUnknown": func(p *store.CompleteActivityWithWorkflowTaskParams) { p.Workflow.EagerActivities = []int64{9} },
		} {
			p := completed(acts[0], "x", 3, at(time.Second))
			mod(&p)
			_, err := b.st.CompleteActivityWithWorkflowTask(b.ctx, p)
			require.Error(t, err, name)
			require.NotErrorIs(t, err, store.ErrLeaseLost, name)
			require.NotErrorIs(t, err, store.ErrRunBusy, name)
		}
		b.requireUntouched(t, acts[0], 3, 0)
	})

	// Two activities of one idle run complete at once, each with the
	// workflow task it ran: one commits, the other finds the run busy, and
	// neither deadlocks.
	t.Run("TwoAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		other := newStore(t, b.morePool(t, 2))
		for round := range 20 {
			runID := fmt.Sprint("r", round)
			acts := b.idleRun(t, runID)
			errs := make(chan error, 2)
			start := make(chan struct{})
			for i, st := range []*pgstore.Store{b.st, other} {
				go func() {
					<-start
					_, err := st.CompleteActivityWithWorkflowTask(b.ctx, completed(acts[i], fmt.Sprint(i), 3, base))
					errs <- err
				}()
			}
			close(start)
			busy := 0
			for range 2 {
				if err := <-errs; err != nil {
					require.ErrorIs(t, err, store.ErrRunBusy)
					busy++
				}
			}
			require.Equal(t, 1, busy, "round %d", round)
			run, err := b.st.GetRun(b.ctx, runID)
			require.NoError(t, err)
			require.EqualValues(t, 4, run.HistoryLen)
			require.Equal(t, 1, b.count(t, "keel_activity_tasks", runID))
		}
	})
}

// activity returns run runID's activity task seq.
func (b *testBundle) activity(t *testing.T, runID string, seq int64) store.ActivityTask {
	t.Helper()
	var a store.ActivityTask
	var token *string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT run_id, seq, token FROM keel_activity_tasks WHERE run_id = $1 AND seq = $2",
		runID, seq).Scan(&a.RunID, &a.Seq, &token))
	if token != nil {
		a.Token = *token
	}
	return a
}

// signalAndClaim signals run r1 and claims its workflow task.
func (b *testBundle) signalAndClaim(t *testing.T) store.WorkflowTask {
	t.Helper()
	b.signal(t, "r1", "s", base)
	tasks := b.claim(t, "q", base)
	require.Len(t, tasks, 1)
	return tasks[0]
}

// holdRun locks run runID's row as a commit does, in a transaction of its
// own, until the returned function is called or the test ends. It also
// returns the transaction's backend pid.
func (b *testBundle) holdRun(t *testing.T, runID string) (pid uint32, release func()) {
	t.Helper()
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	var once sync.Once
	release = func() {
		once.Do(func() { require.NoError(t, tx.Rollback(context.Background())) })
	}
	t.Cleanup(release)
	require.NoError(t, tx.QueryRow(b.ctx, "SELECT pg_backend_pid() FROM keel_runs WHERE run_id = $1 FOR NO KEY UPDATE", runID).Scan(&pid))
	return pid, release
}

// waitBlocked waits until n backends wait for a lock that pid, or a
// backend waiting behind it, holds.
func (b *testBundle) waitBlocked(t *testing.T, pid uint32, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var blocked int
		require.NoError(t, b.pool.QueryRow(b.ctx, `
			WITH RECURSIVE waiting(pid) AS (
				SELECT $1::int
				UNION
				SELECT a.pid FROM pg_stat_activity a JOIN waiting w ON w.pid = ANY(pg_blocking_pids(a.pid))
			)
			SELECT count(*) - 1 FROM waiting`, int(pid)).Scan(&blocked))
		if blocked >= n {
			return
		}
		require.True(t, time.Now().Before(deadline), "%d of %d backends blocked", blocked, n)
		time.Sleep(5 * time.Millisecond)
	}
}

// A signal that races with CompleteActivityWithWorkflowTask is never lost.
// The run's row is held while both are sent, so that they queue for it in
// a known order: a signal that gets the row first makes a workflow task,
// and the completion finds the run busy (the caller then completes the
// activity the ordinary way); a signal that gets it second finds the run
// committed and makes the workflow task then, or finds it closed.
func TestCompleteActivityWithWorkflowTaskSignalRace(t *testing.T) {
	t.Parallel()
	for _, signalFirst := range []bool{true, false} {
		for _, closing := range []bool{false, true} {
			t.Run(fmt.Sprintf("SignalFirst=%v/Close=%v", signalFirst, closing), func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				signaller := newStore(t, b.morePool(t, 2))
				completer := newStore(t, b.morePool(t, 2))
				acts := b.idleRun(t, "r1")
				p := completed(acts[0], `"two"`, 3, at(time.Second))
				if closing {
					p = completed(acts[0], `"two"`, 3, at(time.Second), "completed")
					p.Workflow.Close = &store.CloseRun{Status: store.StatusCompleted}
				}

				pid, release := b.holdRun(t, "r1")
				signalled, committed := make(chan error, 1), make(chan error, 1)
				signal := func() {
					_, err := signaller.Signal(b.ctx, store.SignalParams{
						RunID: "r1", Item: store.NewInboxItem{Type: "signal", Data: []byte(`"racing"`)}, Now: at(time.Second),
					})
					signalled <- err
				}
				complete := func() {
					_, err := completer.CompleteActivityWithWorkflowTask(b.ctx, p)
					committed <- err
				}
				first, second := complete, signal
				if signalFirst {
					first, second = signal, complete
				}
				go first()
				b.waitBlocked(t, pid, 1)
				go second()
				b.waitBlocked(t, pid, 2)
				release()
				sigErr, err := <-signalled, <-committed

				switch {
				case signalFirst:
					require.NoError(t, sigErr)
					require.ErrorIs(t, err, store.ErrRunBusy)
					b.requireUntouched(t, acts[0], 3, 1)
					_, err := b.st.CompleteActivityTask(b.ctx, p.Activity)
					require.NoError(t, err)
					wt := b.claim(t, "q", at(time.Second))
					require.Len(t, wt, 1)
					require.Len(t, wt[0].Inbox, 2)
					require.Equal(t, []byte(`"racing"`), wt[0].Inbox[0].Data)
					require.Equal(t, []byte(`"two"`), wt[0].Inbox[1].Data)
				case closing:
					require.NoError(t, err)
					require.ErrorIs(t, sigErr, store.ErrRunClosed)
					for _, table := range []string{"keel_workflow_tasks", "keel_inbox"} {
						require.Zero(t, b.count(t, table, "r1"), table)
					}
				default:
					require.NoError(t, err)
					require.NoError(t, sigErr)
					wt := b.claim(t, "q", at(time.Second))
					require.Len(t, wt, 1)
					require.EqualValues(t, 4, wt[0].Run.HistoryLen)
					require.Len(t, wt[0].Inbox, 1)
					require.Equal(t, []byte(`"racing"`), wt[0].Inbox[0].Data)
				}
			})
		}
	}
}

// A chain of activities, each scheduled by the workflow task that gets the
// previous one's result, completes while signals arrive from another
// process and timers fire. Each completion first tries to commit the
// workflow task it wakes along with it, at the history length it last
// read, and falls back to the ordinary completion when the run is busy;
// a poller commits the workflow tasks that the signals, timers and
// fallbacks make. Every signal reaches the history exactly once, in the
// order each sender sent them, and so does every activity result and
// timer.
func TestCompleteActivityWithWorkflowTaskInboxRace(t *testing.T) {
	t.Parallel()
	const (
		activities = 40
		senders    = 4
		each       = 25
	)
	b := setup(t)
	completer := newStore(t, b.morePool(t, 4))
	signaller := newStore(t, b.morePool(t, 8))
	now, leaseUntil := at(time.Second), at(time.Hour)

	// next adds to p the commands that follow activity i's result: the
	// next activity and, every fourth, a timer due at once.
	next := func(p *store.CompleteWorkflowTaskParams, i int) {
		if i+1 >= activities {
			return
		}
		n := p.ExpectedHistoryLen + int64(len(p.Events))
		p.Events = append(p.Events, store.Event{ID: n + 1, Type: "activity_scheduled"})
		p.ScheduleActivities = append(p.ScheduleActivities, store.ActivityTask{
			Seq: n + 1, ActivityType: "a", TaskQueue: "aq", Input: fmt.Append(nil, i+1),
		})
		if (i+1)%4 == 0 {
			p.Events = append(p.Events, store.Event{ID: n + 2, Type: "timer_started"})
			p.StartTimers = append(p.StartTimers, store.Timer{
				Seq: n + 2, FireAt: now, Item: store.NewInboxItem{Type: "timer_fired", Data: fmt.Appendf(nil, "t %d", i+1)},
			})
		}
	}
	b.createRun(t, "r1", "q")
	wt := b.claim(t, "q", base)[0]
	p := store.CompleteWorkflowTaskParams{RunID: "r1", Token: wt.Token, ExpectedHistoryLen: 1, Now: base}
	next(&p, -1)
	_, err := b.st.CompleteWorkflowTask(b.ctx, p)
	require.NoError(t, err)

	// drain commits a leased workflow task, moving its inbox into the
	// history.
	drain := func(wt store.WorkflowTask) error {
		p := store.CompleteWorkflowTaskParams{RunID: "r1", Token: wt.Token, ExpectedHistoryLen: wt.Run.HistoryLen, Now: now}
		for _, it := range wt.Inbox {
			p.Events = append(p.Events, store.Event{ID: wt.Run.HistoryLen + int64(len(p.Events)) + 1, Type: it.Type, Data: it.Data})
			p.InboxUpTo = it.ID
			var i int
			if _, err := fmt.Sscanf(string(it.Data), "a %d", &i); err == nil {
				next(&p, i)
			}
		}
		_, err := b.st.CompleteWorkflowTask(b.ctx, p)
		return err
	}

	var (
		writers sync.WaitGroup
		timers  sync.WaitGroup
		poller  sync.WaitGroup
		done    atomic.Bool
		fired   atomic.Bool
		fast    atomic.Int64
		busy    atomic.Int64
		errs    = make(chan error, senders+3)
	)
	sendSignals(b, &writers, signaller, "r1", senders, each, now, errs)
	writers.Go(func() {
		for i := 0; i < activities; {
			acts, err := completer.ClaimActivityTasks(b.ctx, store.ClaimParams{TaskQueue: "aq", Owner: "a", Limit: 1, Now: now})
			if err != nil {
				errs <- err
				return
			}
			if len(acts) == 0 {
				time.Sleep(time.Millisecond)
				continue
			}
			a := acts[0]
			var index int
			if _, err := fmt.Sscan(string(a.Input), &index); err != nil {
				errs <- err
				return
			}
			// The history length the completer last knew of.
			run, err := completer.GetRun(b.ctx, "r1")
			if err != nil {
				errs <- err
				return
			}
			p := completed(a, fmt.Sprint("a ", index), run.HistoryLen, now)
			next(&p.Workflow, index)
			_, err = completer.CompleteActivityWithWorkflowTask(b.ctx, p)
			if err == nil {
				fast.Add(1)
			} else if errors.Is(err, store.ErrRunBusy) {
				busy.Add(1)
				_, err = completer.CompleteActivityTask(b.ctx, p.Activity)
			}
			if err != nil {
				errs <- err
				return
			}
			i++
		}
	})
	timers.Go(func() {
		for {
			last := done.Load()
			if _, err := signaller.FireTimers(b.ctx, now, 10); err != nil {
				errs <- err
				return
			}
			if last {
				fired.Store(true)
				return
			}
		}
	})
	pollWorkflowTasks(b, &poller, "q", now, leaseUntil, fired.Load, drain, errs)
	writers.Wait()
	done.Store(true)
	timers.Wait()
	poller.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("%d results committed with their workflow task, %d found the run busy", fast.Load(), busy.Load())
	require.Positive(t, fast.Load())

	history, err := b.st.History(b.ctx, "r1", 0)
	require.NoError(t, err)
	results, timersFired := 0, 0
	for i, ev := range history {
		require.EqualValues(t, i+1, ev.ID)
		switch ev.Type {
		case "activity_completed":
			results++
		case "timer_fired":
			timersFired++
		}
	}
	require.Equal(t, activities, results)
	require.Equal(t, activities/4, timersFired)
	requireOnceInOrder(t, history, senders, each)
	b.requireEmpty(t, "keel_inbox", "keel_workflow_tasks", "keel_activity_tasks", "keel_timers")
}
