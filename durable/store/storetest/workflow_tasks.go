package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
)

func exerciseWorkflowTasks(t *testing.T, setup func(*testing.T) *bundle) {
	t.Run("CompleteAppendsHistory", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		wt := b.claim(t, run.TaskQueue, base)
		p := params(wt, at(time.Second))
		p.Events = events(1, 2)
		res := b.commit(t, p)
		require.False(t, res.Pending)

		got := b.getRun(t, run.RunID)
		require.EqualValues(t, 3, got.HistoryLen)
		require.Len(t, b.history(t, run.RunID), 3)
		requireTime(t, at(time.Second), got.UpdatedAt)
		require.Equal(t, store.StatusRunning, got.Status)

		// The task is done: nothing to claim, even after its lease would
		// have expired; and its token commits nothing more.
		b.claimNone(t, run.TaskQueue, at(time.Hour))
		p = params(wt, at(2*time.Second))
		p.ExpectedHistoryLen = 3
		p.Events = events(3, 1)
		_, err := b.st.CompleteWorkflowTask(b.ctx, p)
		require.ErrorIs(t, err, store.ErrLeaseLost)
	})

	t.Run("Fencing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		wt := b.claim(t, run.TaskQueue, base)

		try := func(mod func(*store.CompleteWorkflowTaskParams)) error {
			p := params(wt, at(time.Second))
			p.Events = events(1, 2)
			p.ScheduleActivities = []store.ActivityTask{activity(run, 2, at(time.Second))}
			p.StartTimers = []store.Timer{{RunID: run.RunID, Seq: 3, FireAt: at(30 * time.Second),
				Item: store.NewInboxItem{Type: "timer_fired"}}}
			mod(&p)
			_, err := b.st.CompleteWorkflowTask(b.ctx, p)
			return err
		}
		require.ErrorIs(t, try(func(p *store.CompleteWorkflowTaskParams) { p.Token = "not-the-token" }), store.ErrLeaseLost)
		require.ErrorIs(t, try(func(p *store.CompleteWorkflowTaskParams) { p.Token = "" }), store.ErrLeaseLost)
		require.ErrorIs(t, try(func(p *store.CompleteWorkflowTaskParams) {
			p.ExpectedHistoryLen, p.Events = 2, events(2, 1)
		}), store.ErrLeaseLost)
		require.ErrorIs(t, try(func(p *store.CompleteWorkflowTaskParams) {
			p.ExpectedHistoryLen, p.Events = 0, events(0, 1)
		}), store.ErrLeaseLost)
		require.ErrorIs(t, try(func(p *store.CompleteWorkflowTaskParams) {
			p.Close = &store.CloseRun{Status: store.StatusCompleted}
			p.Token = "not-the-token"
		}), store.ErrLeaseLost)
		require.ErrorIs(t, try(func(p *store.CompleteWorkflowTaskParams) { p.RunID = "no-such-run" }), store.ErrLeaseLost)
		// Event IDs that do not follow the history are refused.
		require.Error(t, try(func(p *store.CompleteWorkflowTaskParams) { p.Events = events(2, 1) }))

		// Nothing was written.
		got := b.getRun(t, run.RunID)
		requireSameRun(t, run, got)
		require.Len(t, b.history(t, run.RunID), 1)
		require.Empty(t, b.claimActivities(t, "act-"+run.RunID, at(time.Hour)))
		// (The lease runs to 1m; a timer written by any of the above
		// would be due at 30s.)
		queues, err := b.st.FireTimers(b.ctx, at(45*time.Second), 100)
		require.NoError(t, err)
		require.Empty(t, queues)

		// The task is still leased to wt, whose commit goes through.
		b.claimNone(t, run.TaskQueue, at(time.Second))
		require.NoError(t, try(func(*store.CompleteWorkflowTaskParams) {}))
		require.EqualValues(t, 3, b.getRun(t, run.RunID).HistoryLen)
	})

	t.Run("InboxUpToAndPending", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		b.signal(t, run.RunID, "a", at(time.Second))
		b.signal(t, run.RunID, "b", at(2*time.Second))

		wt := b.claim(t, run.TaskQueue, at(3*time.Second))
		require.Len(t, wt.Inbox, 2)
		require.Less(t, wt.Inbox[0].ID, wt.Inbox[1].ID)
		require.Equal(t, []byte(`"a"`), wt.Inbox[0].Data)
		requireTime(t, at(time.Second), wt.Inbox[0].Time)
		require.Equal(t, "signal", wt.Inbox[1].Type)
		require.Equal(t, []byte(`"b"`), wt.Inbox[1].Data)

		// A signal arrives while the task is leased: the task stays leased.
		b.signal(t, run.RunID, "c", at(4*time.Second))
		b.claimNone(t, run.TaskQueue, at(4*time.Second))

		// The commit consumes a and b; c keeps the task runnable.
		p := params(wt, at(5*time.Second))
		p.Events = inboxEvents(wt)
		res := b.commit(t, p)
		require.True(t, res.Pending)
		got := b.getRun(t, run.RunID)
		require.EqualValues(t, 3, got.HistoryLen)

		// The next task is a fresh one (attempt 1), ready at once, holding c.
		next := b.claim(t, run.TaskQueue, at(5*time.Second))
		require.Equal(t, 1, next.Attempt)
		require.NotEqual(t, wt.Token, next.Token)
		require.Len(t, next.Inbox, 1)
		require.Equal(t, []byte(`"c"`), next.Inbox[0].Data)
		require.Greater(t, next.Inbox[0].ID, wt.Inbox[1].ID)
		requireSameRun(t, got, next.Run)

		// Consuming only part of the inbox leaves the rest for later.
		b.signal(t, run.RunID, "d", at(6*time.Second))
		p = params(next, at(7*time.Second))
		p.Events = inboxEvents(next)
		res = b.commit(t, p)
		require.True(t, res.Pending)
		last := b.claim(t, run.TaskQueue, at(7*time.Second))
		require.Len(t, last.Inbox, 1)
		require.Equal(t, []byte(`"d"`), last.Inbox[0].Data)
		p = params(last, at(8*time.Second))
		p.Events = inboxEvents(last)
		require.False(t, b.commit(t, p).Pending)
		b.claimNone(t, run.TaskQueue, at(time.Hour))
		require.EqualValues(t, 5, b.getRun(t, run.RunID).HistoryLen)
	})

	t.Run("LeaseExpiry", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		claim := func(now, until time.Time) []store.WorkflowTask {
			tasks, err := b.st.ClaimWorkflowTasks(b.ctx, store.ClaimParams{
				TaskQueue: run.TaskQueue, Owner: "w", Limit: 1, Now: now, LeaseUntil: until,
			})
			require.NoError(t, err)
			return tasks
		}
		first := claim(base, at(10*time.Second))
		require.Len(t, first, 1)
		require.Equal(t, 1, first[0].Attempt)

		require.Empty(t, claim(at(9*time.Second), at(time.Minute)), "leased until 10s")
		second := claim(at(10*time.Second), at(time.Minute))
		require.Len(t, second, 1, "lease expired at 10s")
		require.Equal(t, 2, second[0].Attempt)
		require.NotEqual(t, first[0].Token, second[0].Token)

		// The first worker's token is stale now.
		p := params(first[0], at(11*time.Second))
		p.Events = events(1, 1)
		_, err := b.st.CompleteWorkflowTask(b.ctx, p)
		require.ErrorIs(t, err, store.ErrLeaseLost)
		err = b.st.FailWorkflowTask(b.ctx, store.FailWorkflowTaskParams{
			RunID: run.RunID, Token: first[0].Token, RetryAt: at(time.Minute), Failure: "stale", Now: at(11 * time.Second),
		})
		require.ErrorIs(t, err, store.ErrLeaseLost)
		require.Empty(t, b.getRun(t, run.RunID).LastTaskFailure)

		p = params(second[0], at(12*time.Second))
		p.Events = events(1, 1)
		b.commit(t, p)
		require.EqualValues(t, 2, b.getRun(t, run.RunID).HistoryLen)
	})

	t.Run("FailWorkflowTask", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		wt := b.claim(t, run.TaskQueue, base)
		require.NoError(t, b.st.FailWorkflowTask(b.ctx, store.FailWorkflowTaskParams{
			RunID: run.RunID, Token: wt.Token, RetryAt: at(time.Minute), Failure: "panic: boom\nstack", Now: at(time.Second),
		}))
		got := b.getRun(t, run.RunID)
		require.Equal(t, "panic: boom\nstack", got.LastTaskFailure)
		require.EqualValues(t, 1, got.HistoryLen, "nothing appended")

		// Its token no longer commits, and a second release fails too.
		p := params(wt, at(2*time.Second))
		p.Events = events(1, 1)
		_, err := b.st.CompleteWorkflowTask(b.ctx, p)
		require.ErrorIs(t, err, store.ErrLeaseLost)
		err = b.st.FailWorkflowTask(b.ctx, store.FailWorkflowTaskParams{
			RunID: run.RunID, Token: wt.Token, RetryAt: at(time.Minute), Now: at(2 * time.Second),
		})
		require.ErrorIs(t, err, store.ErrLeaseLost)

		// A signal during the backoff does not cut it short.
		b.signal(t, run.RunID, "s", at(3*time.Second))
		b.claimNone(t, run.TaskQueue, at(59*time.Second))

		retry := b.claim(t, run.TaskQueue, at(time.Minute))
		require.Equal(t, 2, retry.Attempt)
		require.Len(t, retry.Inbox, 1)
		require.Equal(t, "panic: boom\nstack", retry.Run.LastTaskFailure)

		// A successful commit clears LastTaskFailure.
		p = params(retry, at(61*time.Second))
		p.Events = inboxEvents(retry)
		b.commit(t, p)
		require.Empty(t, b.getRun(t, run.RunID).LastTaskFailure)
	})

	t.Run("ClaimOrderAndLimit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var runs []store.Run
		for i := range 3 {
			runs = append(runs, b.createRun(t, func(p *store.CreateRunParams) {
				p.TaskQueue, p.Now = "shared", at(time.Duration(i+1)*time.Second)
			}))
		}
		b.createRun(t, func(p *store.CreateRunParams) { p.TaskQueue = "other" })

		b.claimNone(t, "shared", base)
		require.Empty(t, b.claimN(t, "nobody", at(time.Hour), 10))

		// At 2s only the first two are ready; with Limit 1, oldest first.
		first := b.claimN(t, "shared", at(2*time.Second), 1)
		require.Len(t, first, 1)
		require.Equal(t, runs[0].RunID, first[0].Run.RunID)
		rest := b.claimN(t, "shared", at(10*time.Second), 10)
		require.Len(t, rest, 2)
		require.ElementsMatch(t, []string{runs[1].RunID, runs[2].RunID},
			[]string{rest[0].Run.RunID, rest[1].Run.RunID})
		b.claimNone(t, "shared", at(10*time.Second))
		require.Len(t, b.claimN(t, "other", at(10*time.Second), 10), 1)

		_, err := b.st.ClaimWorkflowTasks(b.ctx, store.ClaimParams{
			TaskQueue: "shared", Limit: 0, Now: base, LeaseUntil: at(time.Minute),
		})
		require.Error(t, err, "Limit must be at least 1")
	})

	t.Run("ClaimManyRuns", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		want := map[string]int{}
		for i := range 5 {
			run := b.createRun(t, func(p *store.CreateRunParams) { p.TaskQueue = "many" })
			for j := range i {
				b.signal(t, run.RunID, "s", at(time.Duration(j)*time.Millisecond))
			}
			want[run.RunID] = i
		}
		tasks := b.claimN(t, "many", at(time.Second), 10)
		require.Len(t, tasks, 5)
		for _, wt := range tasks {
			n, ok := want[wt.Run.RunID]
			require.True(t, ok)
			require.Equal(t, store.StatusRunning, wt.Run.Status)
			require.Equal(t, "many", wt.Run.TaskQueue)
			require.Len(t, wt.Inbox, n, "each task carries its own run's inbox")
			for i := 1; i < len(wt.Inbox); i++ {
				require.Less(t, wt.Inbox[i-1].ID, wt.Inbox[i].ID)
			}
		}
	})

	t.Run("ClaimRace", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		const runs, workers = 500, 8
		for range runs {
			b.createRun(t, func(p *store.CreateRunParams) { p.TaskQueue = "race" })
		}
		var (
			mu      sync.Mutex
			claimed = map[string]int{}
			wg      sync.WaitGroup
			errs    = make([]error, workers)
		)
		for w := range workers {
			wg.Go(func() {
				for {
					tasks, err := b.st.ClaimWorkflowTasks(b.ctx, store.ClaimParams{
						TaskQueue: "race", Owner: "w", Limit: 7, Now: at(time.Second), LeaseUntil: at(time.Minute),
					})
					if err != nil {
						errs[w] = err
						return
					}
					if len(tasks) == 0 {
						return
					}
					mu.Lock()
					for _, wt := range tasks {
						claimed[wt.Run.RunID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		require.Len(t, claimed, runs)
		for id, n := range claimed {
			require.Equal(t, 1, n, "run %s claimed %d times", id, n)
		}
	})

	t.Run("CloseDeletesTasksTimersInbox", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		// Schedule an activity and a timer, then claim the activity.
		wt := b.claim(t, run.TaskQueue, base)
		p := params(wt, at(time.Second))
		p.Events = events(1, 2)
		p.ScheduleActivities = []store.ActivityTask{activity(run, 2, at(time.Second))}
		p.StartTimers = []store.Timer{{RunID: run.RunID, Seq: 3, FireAt: at(time.Hour), Item: store.NewInboxItem{Type: "timer_fired"}}}
		b.commit(t, p)
		act := b.claimActivity(t, "act-"+run.RunID, at(2*time.Second))

		// A signal makes a workflow task; another arrives after its claim.
		b.signal(t, run.RunID, "early", at(3*time.Second))
		wt = b.claim(t, run.TaskQueue, at(3*time.Second))
		b.signal(t, run.RunID, "late", at(4*time.Second))
		p = params(wt, at(5*time.Second))
		p.Events = append(inboxEvents(wt), events(4, 1)...)
		p.Close = &store.CloseRun{Status: store.StatusCompleted, Result: []byte(`{"ok":true}`)}
		res := b.commit(t, p)
		require.False(t, res.Pending)

		got := b.getRun(t, run.RunID)
		require.Equal(t, store.StatusCompleted, got.Status)
		require.Equal(t, []byte(`{"ok":true}`), got.Result)
		require.Nil(t, got.Failure)
		require.EqualValues(t, 5, got.HistoryLen)
		requireTime(t, at(5*time.Second), got.ClosedAt)
		requireTime(t, at(5*time.Second), got.UpdatedAt)
		require.Len(t, b.history(t, run.RunID), 5, "history is kept")

		b.claimNone(t, run.TaskQueue, at(time.Hour))
		require.Empty(t, b.claimActivities(t, "act-"+run.RunID, at(time.Hour)))
		err := b.completeActivity(t, store.CompleteActivityTaskParams{
			RunID: run.RunID, Seq: 2, Token: act.Token, Attempt: attempt(act, "completed", "", at(6*time.Second)),
			Item: store.NewInboxItem{Type: "activity_completed"}, Now: at(6 * time.Second),
		})
		require.ErrorIs(t, err, store.ErrLeaseLost)
		_, err = b.st.HeartbeatActivityTask(b.ctx, store.HeartbeatParams{
			RunID: run.RunID, Seq: 2, Token: act.Token, Now: at(6 * time.Second),
		})
		require.ErrorIs(t, err, store.ErrLeaseLost)
		b.requireNothingScheduled(t)

		// A closed run's task cannot be failed or committed again.
		p = params(wt, at(7*time.Second))
		p.ExpectedHistoryLen, p.Events = 5, events(5, 1)
		_, err = b.st.CompleteWorkflowTask(b.ctx, p)
		require.ErrorIs(t, err, store.ErrLeaseLost)
		err = b.st.FailWorkflowTask(b.ctx, store.FailWorkflowTaskParams{RunID: run.RunID, Token: wt.Token, Now: at(7 * time.Second)})
		require.ErrorIs(t, err, store.ErrLeaseLost)
	})

	t.Run("CloseStatuses", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, status := range []store.RunStatus{store.StatusFailed, store.StatusCanceled} {
			run := b.closeRun(t, b.createRun(t), status, at(time.Second))
			require.Equal(t, status, run.Status)
			require.Equal(t, []byte(`{"message":"boom"}`), run.Failure)
			require.Nil(t, run.Result)
			requireTime(t, at(time.Second), run.ClosedAt)
		}
	})
}
