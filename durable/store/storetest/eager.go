package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
)

// exerciseEager checks the eager-dispatch fast paths: a write that makes a
// task runnable leases it to the caller in the same transaction, exactly as
// the matching claim would have, and the lease is then like any other.
func exerciseEager(t *testing.T, setup func(*testing.T) *bundle) {
	t.Run("CreateRunLeasesFirstTask", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res, err := b.st.CreateRun(b.ctx, runParams(func(p *store.CreateRunParams) {
			p.Now = at(time.Second)
			p.Eager = &store.EagerLease{Owner: "eager-1", LeaseUntil: at(time.Minute)}
		}))
		require.NoError(t, err)
		require.True(t, res.Created)
		require.NotNil(t, res.Task)
		run := res.Run

		// The task is what a claim at Now would return.
		task := *res.Task
		require.NotEmpty(t, task.Token)
		require.Equal(t, 1, task.Attempt)
		require.Empty(t, task.Inbox)
		requireSameRun(t, run, task.Run)
		requireSameRun(t, b.getRun(t, run.RunID), task.Run)
		twin := b.createRun(t, func(p *store.CreateRunParams) { p.Now = at(time.Second) })
		claimed := b.claim(t, twin.TaskQueue, at(time.Second)) // leased until 61s
		require.Equal(t, claimed.Attempt, task.Attempt)
		requireSameInbox(t, claimed.Inbox, task.Inbox)
		require.Equal(t, claimed.Run.HistoryLen, task.Run.HistoryLen)

		// It is leased: nobody else claims it before the lease expires,
		// and NextWakeup reports the expiry as for any lease.
		b.claimNone(t, run.TaskQueue, at(time.Second))
		b.claimNone(t, run.TaskQueue, at(time.Minute-time.Millisecond))
		next, ok, err := b.st.NextWakeup(b.ctx)
		require.NoError(t, err)
		require.True(t, ok)
		requireTime(t, at(time.Minute), next)

		// Its token commits.
		p := params(task, at(2*time.Second))
		p.Events = events(1, 1)
		require.False(t, b.commit(t, p).Pending)
		require.EqualValues(t, 2, b.getRun(t, run.RunID).HistoryLen)
		b.claimNone(t, run.TaskQueue, at(time.Hour))
	})

	t.Run("CreateRunLeaseIsFenced", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res, err := b.st.CreateRun(b.ctx, runParams(func(p *store.CreateRunParams) {
			p.Eager = &store.EagerLease{Owner: "eager-1", LeaseUntil: at(10 * time.Second)}
		}))
		require.NoError(t, err)
		require.NotNil(t, res.Task)
		eager, run := *res.Task, res.Run

		// Once the lease expires, a claimer takes the task as attempt 2.
		b.claimNone(t, run.TaskQueue, at(10*time.Second-time.Millisecond))
		second := b.claim(t, run.TaskQueue, at(10*time.Second))
		require.Equal(t, 2, second.Attempt)
		require.NotEqual(t, eager.Token, second.Token)

		// The eager token is stale now.
		p := params(eager, at(11*time.Second))
		p.Events = events(1, 1)
		_, err = b.st.CompleteWorkflowTask(b.ctx, p)
		require.ErrorIs(t, err, store.ErrLeaseLost)
		err = b.st.FailWorkflowTask(b.ctx, store.FailWorkflowTaskParams{
			RunID: run.RunID, Token: eager.Token, RetryAt: at(time.Minute), Failure: "stale", Now: at(11 * time.Second),
		})
		require.ErrorIs(t, err, store.ErrLeaseLost)
		require.Empty(t, b.getRun(t, run.RunID).LastTaskFailure)

		p = params(second, at(12*time.Second))
		p.Events = events(1, 1)
		b.commit(t, p)
		require.EqualValues(t, 2, b.getRun(t, run.RunID).HistoryLen)
	})

	t.Run("CreateRunExistingRun", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := b.createRun(t)
		again := func(policy store.IDReusePolicy, now time.Time) (store.CreateRunResult, error) {
			return b.st.CreateRun(b.ctx, runParams(func(p *store.CreateRunParams) {
				p.WorkflowID, p.TaskQueue, p.ReusePolicy, p.Now = first.WorkflowID, first.TaskQueue, policy, now
				p.Eager = &store.EagerLease{Owner: "eager-1", LeaseUntil: now.Add(time.Minute)}
			}))
		}

		// The workflow ID is running: nothing is created and nothing leased.
		res, err := again(store.AllowDuplicate, at(time.Second))
		require.NoError(t, err)
		require.False(t, res.Created)
		require.Nil(t, res.Task)
		requireSameRun(t, first, res.Run)
		wt := b.claim(t, first.TaskQueue, at(time.Second))
		require.Equal(t, 1, wt.Attempt, "the running run's task was not leased")

		// A reuse the policy refuses leases nothing either.
		p := params(wt, at(2*time.Second))
		p.Events = events(1, 1)
		p.Close = &store.CloseRun{Status: store.StatusCompleted}
		b.commit(t, p)
		_, err = again(store.RejectDuplicate, at(3*time.Second))
		require.ErrorIs(t, err, store.ErrWorkflowIDInUse)
		b.claimNone(t, first.TaskQueue, at(time.Hour))
	})

	t.Run("LeaseUntilNotAfterNow", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// As for ClaimWorkflowTasks, a lease must outlast Now; the call
		// fails and writes nothing.
		rp := runParams(func(p *store.CreateRunParams) {
			p.Now = at(time.Second)
			p.Eager = &store.EagerLease{Owner: "eager-1", LeaseUntil: at(time.Second)}
		})
		_, err := b.st.CreateRun(b.ctx, rp)
		require.Error(t, err)
		_, err = b.st.GetRun(b.ctx, rp.RunID)
		require.ErrorIs(t, err, store.ErrNotFound)
		b.claimNone(t, rp.TaskQueue, at(time.Hour))

		run := b.createRun(t)
		a := activity(run, 2, at(time.Second))
		b.schedule(t, run, at(time.Second), a)
		task := b.claimActivity(t, a.TaskQueue, at(2*time.Second))
		complete := func(e *store.EagerLease) error {
			return b.completeActivity(t, store.CompleteActivityTaskParams{
				RunID: run.RunID, Seq: 2, Token: task.Token, Attempt: attempt(task, "completed", "", at(3*time.Second)),
				Item: store.NewInboxItem{Type: "activity_completed"}, Now: at(3 * time.Second), Eager: e,
			})
		}
		err = complete(&store.EagerLease{Owner: "eager-1", LeaseUntil: at(2 * time.Second)})
		require.Error(t, err)
		require.NotErrorIs(t, err, store.ErrLeaseLost)
		b.claimNone(t, run.TaskQueue, at(time.Hour))
		require.NoError(t, complete(nil), "the failed call changed nothing")
	})

	t.Run("CompleteWorkflowTaskLeasesActivities", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		wt := b.claim(t, run.TaskQueue, base)
		now := at(time.Second)
		a2 := activity(run, 2, now)
		a2.StartToClose = 30 * time.Second
		a2.ScheduleToStartDeadline = at(time.Minute)
		a2.ScheduleToCloseDeadline = at(time.Hour)
		a3 := activity(run, 3, now)
		a3.StartToClose, a3.HeartbeatTimeout = 30*time.Second, 5*time.Second
		a4 := activity(run, 4, now) // no timeouts
		a5 := activity(run, 5, now) // left for the pollers
		a5.StartToClose = 20 * time.Second
		p := params(wt, now)
		p.Events = events(1, 4)
		p.ScheduleActivities = []store.ActivityTask{a2, a3, a4, a5}
		p.EagerActivities, p.EagerOwner = []int64{4, 2, 3}, "eager-w"
		res := b.commit(t, p)
		require.False(t, res.Pending)

		// Leased as a claim at Now would lease them, in EagerActivities order.
		require.Len(t, res.Activities, 3)
		requireLeasedActivity(t, a4, res.Activities[0], "eager-w", now, time.Time{})
		requireLeasedActivity(t, a2, res.Activities[1], "eager-w", now, at(31*time.Second))
		requireLeasedActivity(t, a3, res.Activities[2], "eager-w", now, at(6*time.Second))
		tokens := map[string]bool{}
		for _, task := range res.Activities {
			tokens[task.Token] = true
		}
		require.Len(t, tokens, 3, "each lease has its own token")

		// A second claimer gets only the one left unleased, leased alike.
		tasks := b.claimActivities(t, a2.TaskQueue, now)
		require.Len(t, tasks, 1)
		requireLeasedActivity(t, a5, tasks[0], "worker-a", now, at(21*time.Second))
		require.Empty(t, b.claimActivities(t, a2.TaskQueue, at(time.Hour)))

		// The earliest lease expiry is the next wakeup.
		next, ok, err := b.st.NextWakeup(b.ctx)
		require.NoError(t, err)
		require.True(t, ok)
		requireTime(t, at(6*time.Second), next)

		// An eager lease heartbeats and completes like a claimed one.
		hb, err := b.st.HeartbeatActivityTask(b.ctx, store.HeartbeatParams{
			RunID: run.RunID, Seq: 3, Token: res.Activities[2].Token, Details: []byte(`{"progress":1}`), Now: at(4 * time.Second),
		})
		require.NoError(t, err)
		require.False(t, hb.CancelRequested)
		exp, err := b.st.ExpiredActivityTasks(b.ctx, at(9*time.Second-time.Millisecond), 10)
		require.NoError(t, err)
		require.Empty(t, exp, "the heartbeat extended the lease to 9s")
		require.NoError(t, b.completeActivity(t, store.CompleteActivityTaskParams{
			RunID: run.RunID, Seq: 2, Token: res.Activities[1].Token,
			Attempt: attempt(res.Activities[1], "completed", "", at(5*time.Second)),
			Item:    store.NewInboxItem{Type: "activity_completed"}, Now: at(5 * time.Second),
		}))
		atts, err := b.st.ActivityAttempts(b.ctx, run.RunID)
		require.NoError(t, err)
		require.Len(t, atts, 1)
		require.Equal(t, "eager-w", atts[0].Owner)
		requireTime(t, now, atts[0].StartedAt)
	})

	t.Run("EagerActivityLeaseIsFenced", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		wt := b.claim(t, run.TaskQueue, base)
		a := activity(run, 2, at(time.Second))
		a.StartToClose = 10 * time.Second
		p := params(wt, at(time.Second))
		p.Events = events(1, 1)
		p.ScheduleActivities = []store.ActivityTask{a}
		p.EagerActivities, p.EagerOwner = []int64{2}, "eager-w"
		res := b.commit(t, p)
		require.Len(t, res.Activities, 1)
		eager := res.Activities[0]

		// The lease expires like any other; the engine retries the attempt
		// and another worker claims the next one.
		exp, err := b.st.ExpiredActivityTasks(b.ctx, at(11*time.Second-time.Millisecond), 10)
		require.NoError(t, err)
		require.Empty(t, exp)
		exp, err = b.st.ExpiredActivityTasks(b.ctx, at(11*time.Second), 10)
		require.NoError(t, err)
		require.Len(t, exp, 1)
		require.Equal(t, eager.Token, exp[0].Token)
		requireTime(t, at(11*time.Second), exp[0].LeaseExpiresAt)
		require.NoError(t, b.st.RetryActivityTask(b.ctx, store.RetryActivityTaskParams{
			RunID: run.RunID, Seq: 2, Token: eager.Token, Attempt: attempt(eager, "timed_out", "StartToClose", at(11*time.Second)),
			RetryAt: at(20 * time.Second), Now: at(11 * time.Second),
		}))
		second := b.claimActivity(t, a.TaskQueue, at(20*time.Second))
		require.Equal(t, 2, second.Attempt)
		require.NotEqual(t, eager.Token, second.Token)

		// The eager token is refused everywhere.
		err = b.completeActivity(t, store.CompleteActivityTaskParams{
			RunID: run.RunID, Seq: 2, Token: eager.Token, Attempt: attempt(eager, "completed", "", at(21*time.Second)),
			Item: store.NewInboxItem{Type: "activity_completed"}, Now: at(21 * time.Second),
		})
		require.ErrorIs(t, err, store.ErrLeaseLost)
		_, err = b.st.HeartbeatActivityTask(b.ctx, store.HeartbeatParams{
			RunID: run.RunID, Seq: 2, Token: eager.Token, Now: at(21 * time.Second),
		})
		require.ErrorIs(t, err, store.ErrLeaseLost)
		err = b.st.RetryActivityTask(b.ctx, store.RetryActivityTaskParams{
			RunID: run.RunID, Seq: 2, Token: eager.Token, Attempt: attempt(eager, "failed", "x", at(21*time.Second)),
			RetryAt: at(30 * time.Second), Now: at(21 * time.Second),
		})
		require.ErrorIs(t, err, store.ErrLeaseLost)
		require.NoError(t, b.completeActivity(t, store.CompleteActivityTaskParams{
			RunID: run.RunID, Seq: 2, Token: second.Token, Attempt: attempt(second, "completed", "", at(22*time.Second)),
			Item: store.NewInboxItem{Type: "activity_completed"}, Now: at(22 * time.Second),
		}))
	})

	t.Run("EagerActivitiesNotClaimable", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		wt := b.claim(t, run.TaskQueue, base)
		now := at(time.Second)
		delayed := activity(run, 2, now)
		delayed.ReadyAt = at(10 * time.Second)
		noStart := activity(run, 3, now)
		noStart.ScheduleToStartDeadline = now
		noClose := activity(run, 4, now)
		noClose.ScheduleToCloseDeadline = now
		ready := activity(run, 5, now)
		p := params(wt, now)
		p.Events = events(1, 4)
		p.ScheduleActivities = []store.ActivityTask{delayed, noStart, noClose, ready}
		p.EagerActivities, p.EagerOwner = []int64{2, 3, 4, 5}, "eager-w"
		res := b.commit(t, p)

		// Only what ClaimActivityTasks would claim at Now is leased; the
		// rest is scheduled as usual and left out of Activities.
		require.Len(t, res.Activities, 1)
		requireLeasedActivity(t, ready, res.Activities[0], "eager-w", now, time.Time{})
		require.Empty(t, b.claimActivities(t, delayed.TaskQueue, at(10*time.Second-time.Millisecond)))
		exp, err := b.st.ExpiredActivityTasks(b.ctx, now, 10)
		require.NoError(t, err)
		require.Len(t, exp, 2)
		require.ElementsMatch(t, []int64{3, 4}, []int64{exp[0].Seq, exp[1].Seq})
		for _, task := range exp {
			require.Empty(t, task.Token, "unleased")
		}
		later := b.claimActivity(t, delayed.TaskQueue, at(10*time.Second))
		require.EqualValues(t, 2, later.Seq)
		require.Equal(t, 1, later.Attempt)
	})

	t.Run("EagerActivitiesUnknownSeq", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		wt := b.claim(t, run.TaskQueue, base)
		a := activity(run, 2, at(time.Second))
		try := func(eager ...int64) (store.CompleteWorkflowTaskResult, error) {
			p := params(wt, at(time.Second))
			p.Events = events(1, 1)
			p.ScheduleActivities = []store.ActivityTask{a}
			p.EagerActivities, p.EagerOwner = eager, "eager-w"
			return b.st.CompleteWorkflowTask(b.ctx, p)
		}

		// A seq not among ScheduleActivities, or listed twice, is an error,
		// and nothing is written.
		for _, eager := range [][]int64{{2, 99}, {99}, {2, 2}} {
			_, err := try(eager...)
			require.Error(t, err, "EagerActivities %v", eager)
			require.NotErrorIs(t, err, store.ErrLeaseLost)
		}
		require.EqualValues(t, 1, b.getRun(t, run.RunID).HistoryLen)
		require.Empty(t, b.claimActivities(t, a.TaskQueue, at(time.Hour)))
		b.claimNone(t, run.TaskQueue, at(time.Second))

		res, err := try(2)
		require.NoError(t, err)
		require.Len(t, res.Activities, 1)
		require.EqualValues(t, 2, res.Activities[0].Seq)
	})

	t.Run("EagerActivitiesIgnoredOnClose", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		wt := b.claim(t, run.TaskQueue, base)
		a := activity(run, 2, at(time.Second))
		p := params(wt, at(time.Second))
		p.Events = events(1, 2)
		p.ScheduleActivities = []store.ActivityTask{a}
		p.EagerActivities, p.EagerOwner = []int64{2}, "eager-w"
		p.Close = &store.CloseRun{Status: store.StatusCompleted, Result: []byte(`"done"`)}
		res := b.commit(t, p)
		require.Empty(t, res.Activities)
		require.Equal(t, store.StatusCompleted, b.getRun(t, run.RunID).Status)
		require.Empty(t, b.claimActivities(t, a.TaskQueue, at(time.Hour)))
		expired, err := b.st.ExpiredActivityTasks(b.ctx, at(1000*time.Hour), 10)
		require.NoError(t, err)
		require.Empty(t, expired)
	})

	t.Run("CompleteActivityTaskLeasesWorkflowTask", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		a := activity(run, 2, at(time.Second))
		b.schedule(t, run, at(time.Second), a)
		act := b.claimActivity(t, a.TaskQueue, at(2*time.Second))
		b.signal(t, run.RunID, "s", at(3*time.Second))

		res, err := b.st.CompleteActivityTask(b.ctx, store.CompleteActivityTaskParams{
			RunID: run.RunID, Seq: 2, Token: act.Token, Attempt: attempt(act, "completed", "", at(5*time.Second)),
			Item: store.NewInboxItem{Type: "activity_completed", Data: []byte(`{"result":7}`)}, Now: at(5 * time.Second),
			Eager: &store.EagerLease{Owner: "eager-1", LeaseUntil: at(65 * time.Second)},
		})
		require.NoError(t, err)
		require.NotNil(t, res.Task)

		// The task is what a claim at Now would return: the run as of now
		// and its whole inbox, the signal included.
		wt := *res.Task
		require.NotEmpty(t, wt.Token)
		require.Equal(t, 1, wt.Attempt)
		requireSameRun(t, b.getRun(t, run.RunID), wt.Run)
		require.EqualValues(t, 2, wt.Run.HistoryLen)
		require.Len(t, wt.Inbox, 2)
		require.Less(t, wt.Inbox[0].ID, wt.Inbox[1].ID)
		require.Equal(t, "signal", wt.Inbox[0].Type)
		require.Equal(t, []byte(`"s"`), wt.Inbox[0].Data)
		requireTime(t, at(3*time.Second), wt.Inbox[0].Time)
		require.Equal(t, "activity_completed", wt.Inbox[1].Type)
		require.Equal(t, []byte(`{"result":7}`), wt.Inbox[1].Data)
		requireTime(t, at(5*time.Second), wt.Inbox[1].Time)

		// Nobody else claims it; its lease expiry is the next wakeup.
		b.claimNone(t, run.TaskQueue, at(5*time.Second))
		b.claimNone(t, run.TaskQueue, at(65*time.Second-time.Millisecond))
		next, ok, err := b.st.NextWakeup(b.ctx)
		require.NoError(t, err)
		require.True(t, ok)
		requireTime(t, at(65*time.Second), next)

		// Its token commits.
		p := params(wt, at(6*time.Second))
		p.Events = inboxEvents(wt)
		require.False(t, b.commit(t, p).Pending)
		require.EqualValues(t, 4, b.getRun(t, run.RunID).HistoryLen)
		b.claimNone(t, run.TaskQueue, at(time.Hour))
	})

	t.Run("CompleteActivityTaskLeaseIsFenced", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		a := activity(run, 2, at(time.Second))
		b.schedule(t, run, at(time.Second), a)
		act := b.claimActivity(t, a.TaskQueue, at(2*time.Second))
		res, err := b.st.CompleteActivityTask(b.ctx, store.CompleteActivityTaskParams{
			RunID: run.RunID, Seq: 2, Token: act.Token, Attempt: attempt(act, "completed", "", at(5*time.Second)),
			Item: store.NewInboxItem{Type: "activity_completed"}, Now: at(5 * time.Second),
			Eager: &store.EagerLease{Owner: "eager-1", LeaseUntil: at(10 * time.Second)},
		})
		require.NoError(t, err)
		require.NotNil(t, res.Task)
		eager := *res.Task

		b.claimNone(t, run.TaskQueue, at(10*time.Second-time.Millisecond))
		second := b.claim(t, run.TaskQueue, at(10*time.Second))
		require.Equal(t, 2, second.Attempt)
		require.NotEqual(t, eager.Token, second.Token)
		requireSameInbox(t, eager.Inbox, second.Inbox)

		p := params(eager, at(11*time.Second))
		p.Events = inboxEvents(eager)
		_, err = b.st.CompleteWorkflowTask(b.ctx, p)
		require.ErrorIs(t, err, store.ErrLeaseLost)
		err = b.st.FailWorkflowTask(b.ctx, store.FailWorkflowTaskParams{
			RunID: run.RunID, Token: eager.Token, RetryAt: at(time.Minute), Failure: "stale", Now: at(11 * time.Second),
		})
		require.ErrorIs(t, err, store.ErrLeaseLost)

		p = params(second, at(12*time.Second))
		p.Events = inboxEvents(second)
		b.commit(t, p)
		require.EqualValues(t, 3, b.getRun(t, run.RunID).HistoryLen)
	})

	// scheduleTwo schedules activities 2 and 3 of a new run at 1s and
	// claims both at 2s.
	scheduleTwo := func(t *testing.T, b *bundle) (store.Run, []store.ActivityTask) {
		t.Helper()
		run := b.createRun(t)
		b.schedule(t, run, at(time.Second), activity(run, 2, at(time.Second)), activity(run, 3, at(time.Second)))
		acts := b.claimActivities(t, "act-"+run.RunID, at(2*time.Second))
		require.Len(t, acts, 2)
		if acts[0].Seq > acts[1].Seq {
			acts[0], acts[1] = acts[1], acts[0]
		}
		return run, acts
	}
	completeEager := func(t *testing.T, b *bundle, run store.Run, act store.ActivityTask, now time.Time) *store.WorkflowTask {
		t.Helper()
		res, err := b.st.CompleteActivityTask(b.ctx, store.CompleteActivityTaskParams{
			RunID: run.RunID, Seq: act.Seq, Token: act.Token, Attempt: attempt(act, "completed", "", now),
			Item: store.NewInboxItem{Type: "activity_completed", Data: []byte{byte('0' + act.Seq)}}, Now: now,
			Eager: &store.EagerLease{Owner: "eager-1", LeaseUntil: now.Add(time.Minute)},
		})
		require.NoError(t, err)
		return res.Task
	}

	t.Run("CompleteActivityTaskLeasedElsewhere", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, acts := scheduleTwo(t, b)
		require.NoError(t, b.completeActivity(t, store.CompleteActivityTaskParams{
			RunID: run.RunID, Seq: 2, Token: acts[0].Token, Attempt: attempt(acts[0], "completed", "", at(3*time.Second)),
			Item: store.NewInboxItem{Type: "activity_completed", Data: []byte("2")}, Now: at(3 * time.Second),
		}))
		wt := b.claim(t, run.TaskQueue, at(3*time.Second)) // leased until 63s

		// The completion is recorded; the task stays with its holder.
		require.Nil(t, completeEager(t, b, run, acts[1], at(4*time.Second)))
		b.claimNone(t, run.TaskQueue, at(4*time.Second))
		p := params(wt, at(5*time.Second))
		p.Events = inboxEvents(wt)
		require.True(t, b.commit(t, p).Pending)
		next := b.claim(t, run.TaskQueue, at(5*time.Second))
		require.Equal(t, 1, next.Attempt)
		require.Len(t, next.Inbox, 1)
		require.Equal(t, []byte("3"), next.Inbox[0].Data)
	})

	t.Run("CompleteActivityTaskLeaseExpiredElsewhere", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, acts := scheduleTwo(t, b)
		require.NoError(t, b.completeActivity(t, store.CompleteActivityTaskParams{
			RunID: run.RunID, Seq: 2, Token: acts[0].Token, Attempt: attempt(acts[0], "completed", "", at(3*time.Second)),
			Item: store.NewInboxItem{Type: "activity_completed", Data: []byte("2")}, Now: at(3 * time.Second),
		}))
		tasks, err := b.st.ClaimWorkflowTasks(b.ctx, store.ClaimParams{
			TaskQueue: run.TaskQueue, Owner: "worker-1", Limit: 1, Now: at(3 * time.Second), LeaseUntil: at(10 * time.Second),
		})
		require.NoError(t, err)
		require.Len(t, tasks, 1)
		stale := tasks[0]

		// That lease expired: the task is claimable, so it is leased to
		// the completer, as attempt 2, with both results.
		wt := completeEager(t, b, run, acts[1], at(10*time.Second))
		require.NotNil(t, wt)
		require.Equal(t, 2, wt.Attempt)
		require.NotEqual(t, stale.Token, wt.Token)
		require.Len(t, wt.Inbox, 2)
		require.Equal(t, []byte("2"), wt.Inbox[0].Data)
		require.Equal(t, []byte("3"), wt.Inbox[1].Data)
		b.claimNone(t, run.TaskQueue, at(10*time.Second))

		p := params(stale, at(11*time.Second))
		p.Events = inboxEvents(stale)
		_, err = b.st.CompleteWorkflowTask(b.ctx, p)
		require.ErrorIs(t, err, store.ErrLeaseLost)
		p = params(*wt, at(11*time.Second))
		p.Events = inboxEvents(*wt)
		require.False(t, b.commit(t, p).Pending)
	})

	t.Run("CompleteActivityTaskBackoff", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, acts := scheduleTwo(t, b)
		b.signal(t, run.RunID, "s", at(3*time.Second))
		wt := b.claim(t, run.TaskQueue, at(3*time.Second))
		require.NoError(t, b.st.FailWorkflowTask(b.ctx, store.FailWorkflowTaskParams{
			RunID: run.RunID, Token: wt.Token, RetryAt: at(time.Minute), Failure: "panic: boom", Now: at(4 * time.Second),
		}))

		// Backing off: left alone, even by an eager completion.
		require.Nil(t, completeEager(t, b, run, acts[0], at(5*time.Second)))
		b.claimNone(t, run.TaskQueue, at(time.Minute-time.Millisecond))

		// Once the backoff is over it is claimable, so it is leased, as
		// the retry a claim would make.
		retry := completeEager(t, b, run, acts[1], at(time.Minute))
		require.NotNil(t, retry)
		require.Equal(t, 2, retry.Attempt)
		require.Equal(t, "panic: boom", retry.Run.LastTaskFailure)
		require.Len(t, retry.Inbox, 3)
		require.Equal(t, "signal", retry.Inbox[0].Type)
		require.Equal(t, []byte("2"), retry.Inbox[1].Data)
		require.Equal(t, []byte("3"), retry.Inbox[2].Data)
		b.claimNone(t, run.TaskQueue, at(time.Minute))
	})

	t.Run("CompleteActivityTaskRace", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// Many runs, each with one leased activity; half of them also have
		// a signal, so their workflow task is already claimable. Completers
		// finish the activities with Eager while claimers poll the runs'
		// task queue: every run's workflow task is leased exactly once, by
		// one or the other.
		const runs, completers, claimers = 100, 4, 4
		const queue = "eager-race"
		acts := b.idleRuns(t, queue, runs)
		for i := 0; i < runs; i += 2 {
			b.signal(t, acts[i].RunID, "s", base)
		}

		now := at(time.Second)
		var (
			mu      sync.Mutex
			leased  = map[string]int{}
			wg      sync.WaitGroup
			running atomic.Int64 // completers still at work
			errs    = make([]error, completers+claimers)
		)
		record := func(runID string) {
			mu.Lock()
			leased[runID]++
			mu.Unlock()
		}
		running.Store(completers)
		for c := range completers {
			wg.Go(func() {
				defer running.Add(-1)
				for i := c; i < runs; i += completers {
					act := acts[i]
					res, err := b.st.CompleteActivityTask(b.ctx, store.CompleteActivityTaskParams{
						RunID: act.RunID, Seq: act.Seq, Token: act.Token, Attempt: attempt(act, "completed", "", now),
						Item: store.NewInboxItem{Type: "activity_completed"}, Now: now,
						Eager: &store.EagerLease{Owner: "completer", LeaseUntil: at(time.Minute)},
					})
					if err != nil {
						errs[c] = err
						return
					}
					if res.Task != nil {
						record(res.Task.Run.RunID)
					}
				}
			})
		}
		for w := range claimers {
			wg.Go(func() {
				for {
					last := running.Load() == 0
					tasks, err := b.st.ClaimWorkflowTasks(b.ctx, store.ClaimParams{
						TaskQueue: queue, Owner: "claimer", Limit: 3, Now: now, LeaseUntil: at(time.Minute),
					})
					if err != nil {
						errs[completers+w] = err
						return
					}
					for _, wt := range tasks {
						record(wt.Run.RunID)
					}
					if last && len(tasks) == 0 {
						return
					}
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		require.Len(t, leased, runs)
		for id, n := range leased {
			require.Equal(t, 1, n, "run %s leased %d times", id, n)
		}
	})
}

// requireLeasedActivity checks that got is the activity task a leased to
// owner at now, as ClaimActivityTasks returns it, with the lease expiring
// at lease (zero for none).
func requireLeasedActivity(t *testing.T, a, got store.ActivityTask, owner string, now, lease time.Time) {
	t.Helper()
	require.Equal(t, a.RunID, got.RunID)
	require.Equal(t, a.Seq, got.Seq)
	require.Equal(t, a.WorkflowID, got.WorkflowID)
	require.Equal(t, a.ActivityType, got.ActivityType)
	require.Equal(t, a.TaskQueue, got.TaskQueue)
	require.Equal(t, a.Input, got.Input)
	require.Equal(t, a.Options, got.Options)
	require.Equal(t, 1, got.Attempt)
	requireTime(t, a.ScheduledAt, got.ScheduledAt)
	requireTime(t, a.ReadyAt, got.ReadyAt)
	requireTime(t, a.ScheduleToStartDeadline, got.ScheduleToStartDeadline)
	requireTime(t, a.ScheduleToCloseDeadline, got.ScheduleToCloseDeadline)
	require.Equal(t, a.StartToClose, got.StartToClose)
	require.Equal(t, a.HeartbeatTimeout, got.HeartbeatTimeout)
	require.Nil(t, got.HeartbeatDetails)
	require.NotEmpty(t, got.Token)
	require.Equal(t, owner, got.Owner)
	requireTime(t, now, got.StartedAt)
	requireTime(t, lease, got.LeaseExpiresAt)
	require.False(t, got.CancelRequested)
}

// requireSameInbox checks that two inboxes hold the same items.
func requireSameInbox(t *testing.T, want, got []store.InboxItem) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].ID, got[i].ID)
		require.Equal(t, want[i].Type, got[i].Type)
		requireTime(t, want[i].Time, got[i].Time)
		require.Equal(t, want[i].Data, got[i].Data)
	}
}
