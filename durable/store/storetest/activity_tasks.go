package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
)

func exerciseActivityTasks(t *testing.T, setup func(*testing.T) *bundle) {
	t.Run("ScheduleClaimComplete", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		a := activity(run, 2, at(time.Second))
		a.StartToClose = 30 * time.Second
		a.ScheduleToStartDeadline = at(time.Minute)
		a.ScheduleToCloseDeadline = at(time.Hour)
		b.schedule(t, run, at(time.Second), a)

		require.Empty(t, b.claimActivities(t, "other", at(2*time.Second)))
		task := b.claimActivity(t, a.TaskQueue, at(2*time.Second))
		require.Equal(t, run.RunID, task.RunID)
		require.EqualValues(t, 2, task.Seq)
		require.Equal(t, run.WorkflowID, task.WorkflowID)
		require.Equal(t, "charge", task.ActivityType)
		require.Equal(t, a.TaskQueue, task.TaskQueue)
		require.Equal(t, a.Input, task.Input)
		require.Equal(t, a.Options, task.Options)
		require.Equal(t, 1, task.Attempt)
		requireTime(t, at(time.Second), task.ScheduledAt)
		requireTime(t, at(time.Second), task.ReadyAt)
		requireTime(t, at(time.Minute), task.ScheduleToStartDeadline)
		requireTime(t, at(time.Hour), task.ScheduleToCloseDeadline)
		require.Equal(t, 30*time.Second, task.StartToClose)
		require.Zero(t, task.HeartbeatTimeout)
		require.Nil(t, task.HeartbeatDetails)
		require.NotEmpty(t, task.Token)
		require.Equal(t, "worker-a", task.Owner)
		requireTime(t, at(2*time.Second), task.StartedAt)
		requireTime(t, at(32*time.Second), task.LeaseExpiresAt)
		require.False(t, task.CancelRequested)

		// Leased: not claimable again, even after its lease expired (the
		// timeout goes through ExpiredActivityTasks).
		require.Empty(t, b.claimActivities(t, a.TaskQueue, at(3*time.Second)))
		require.Empty(t, b.claimActivities(t, a.TaskQueue, at(40*time.Second)))

		complete := func(token string, now time.Time) error {
			return b.completeActivity(t, store.CompleteActivityTaskParams{
				RunID: run.RunID, Seq: 2, Token: token, Attempt: attempt(task, "completed", "", now),
				Item: store.NewInboxItem{Type: "activity_completed", Data: []byte(`{"result":7}`)}, Now: now,
			})
		}
		require.ErrorIs(t, complete("not-the-token", at(5*time.Second)), store.ErrLeaseLost)
		require.ErrorIs(t, complete("", at(5*time.Second)), store.ErrLeaseLost)
		require.NoError(t, complete(task.Token, at(5*time.Second)))
		require.ErrorIs(t, complete(task.Token, at(6*time.Second)), store.ErrLeaseLost)

		// The result waits in the inbox of a runnable workflow task.
		wt := b.claim(t, run.TaskQueue, at(5*time.Second))
		require.Len(t, wt.Inbox, 1)
		require.Equal(t, "activity_completed", wt.Inbox[0].Type)
		require.Equal(t, []byte(`{"result":7}`), wt.Inbox[0].Data)
		requireTime(t, at(5*time.Second), wt.Inbox[0].Time)

		atts, err := b.st.ActivityAttempts(b.ctx, run.RunID)
		require.NoError(t, err)
		require.Len(t, atts, 1)
		require.Equal(t, run.RunID, atts[0].RunID)
		require.EqualValues(t, 2, atts[0].Seq)
		require.Equal(t, 1, atts[0].Attempt)
		require.Equal(t, "charge", atts[0].ActivityType)
		require.Equal(t, "worker-a", atts[0].Owner)
		requireTime(t, at(2*time.Second), atts[0].StartedAt)
		requireTime(t, at(5*time.Second), atts[0].EndedAt)
		require.Equal(t, "completed", atts[0].Outcome)
		require.Empty(t, atts[0].Error)
	})

	t.Run("DefaultsFromRun", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		// Attempt, WorkflowID, ReadyAt and ScheduledAt left zero.
		b.schedule(t, run, at(time.Second), store.ActivityTask{
			RunID: run.RunID, Seq: 2, ActivityType: "charge", TaskQueue: "acts",
		})
		task := b.claimActivity(t, "acts", at(time.Second))
		require.Equal(t, 1, task.Attempt)
		require.Equal(t, run.WorkflowID, task.WorkflowID)
		requireTime(t, at(time.Second), task.ScheduledAt)
		requireTime(t, at(time.Second), task.ReadyAt)
		requireTime(t, time.Time{}, task.LeaseExpiresAt, "no timeouts, no lease expiry")
		requireTime(t, time.Time{}, task.ScheduleToStartDeadline)
		requireTime(t, time.Time{}, task.ScheduleToCloseDeadline)
	})

	t.Run("ReadyAt", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		a := activity(run, 2, at(time.Second))
		a.ReadyAt = at(10 * time.Second)
		b.schedule(t, run, at(time.Second), a)
		require.Empty(t, b.claimActivities(t, a.TaskQueue, at(9*time.Second)))
		task := b.claimActivity(t, a.TaskQueue, at(10*time.Second))
		requireTime(t, at(10*time.Second), task.ReadyAt)
	})

	t.Run("ClaimOrderAndLimit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		var acts []store.ActivityTask
		for i := range 3 {
			a := activity(run, int64(i+2), at(time.Second))
			a.TaskQueue = "shared"
			a.ReadyAt = at(time.Duration(3-i) * time.Second) // seq 4 is ready first
			acts = append(acts, a)
		}
		b.schedule(t, run, at(time.Second), acts...)
		tasks, err := b.st.ClaimActivityTasks(b.ctx, store.ClaimParams{
			TaskQueue: "shared", Owner: "w", Limit: 2, Now: at(time.Minute),
		})
		require.NoError(t, err)
		require.Len(t, tasks, 2)
		require.ElementsMatch(t, []int64{4, 3}, []int64{tasks[0].Seq, tasks[1].Seq}, "oldest ReadyAt first")
		last := b.claimActivity(t, "shared", at(time.Minute))
		require.EqualValues(t, 2, last.Seq)
		require.NotEqual(t, tasks[0].Token, tasks[1].Token)
	})

	t.Run("LeaseExpiry", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		cases := []struct {
			startToClose, heartbeat time.Duration
			want                    time.Duration // after StartedAt; 0 = no expiry
		}{
			{30 * time.Second, 0, 30 * time.Second},
			{0, 5 * time.Second, 5 * time.Second},
			{30 * time.Second, 5 * time.Second, 5 * time.Second},
			{4 * time.Second, 5 * time.Second, 4 * time.Second},
			{0, 0, 0},
		}
		var acts []store.ActivityTask
		for i, c := range cases {
			a := activity(run, int64(i+2), at(time.Second))
			a.TaskQueue = fmt.Sprintf("lease-%d", i)
			a.StartToClose, a.HeartbeatTimeout = c.startToClose, c.heartbeat
			acts = append(acts, a)
		}
		b.schedule(t, run, at(time.Second), acts...)
		for i, c := range cases {
			task := b.claimActivity(t, acts[i].TaskQueue, at(2*time.Second))
			require.Equal(t, c.startToClose, task.StartToClose)
			require.Equal(t, c.heartbeat, task.HeartbeatTimeout)
			if c.want == 0 {
				requireTime(t, time.Time{}, task.LeaseExpiresAt, "case %d", i)
			} else {
				requireTime(t, at(2*time.Second+c.want), task.LeaseExpiresAt, "case %d", i)
			}
		}
	})

	t.Run("HeartbeatAndRetry", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		a := activity(run, 2, at(time.Second))
		a.StartToClose, a.HeartbeatTimeout = 20*time.Second, 10*time.Second
		b.schedule(t, run, at(time.Second), a)
		task := b.claimActivity(t, a.TaskQueue, at(2*time.Second))
		requireTime(t, at(12*time.Second), task.LeaseExpiresAt)

		heartbeat := func(token string, details []byte, now time.Time) (store.HeartbeatResult, error) {
			return b.st.HeartbeatActivityTask(b.ctx, store.HeartbeatParams{
				RunID: run.RunID, Seq: 2, Token: token, Details: details, Now: now,
			})
		}
		expiredAt := func(now time.Time) []store.ActivityTask {
			tasks, err := b.st.ExpiredActivityTasks(b.ctx, now, 10)
			require.NoError(t, err)
			return tasks
		}

		// A heartbeat extends the lease to Now+HeartbeatTimeout...
		res, err := heartbeat(task.Token, []byte(`{"progress":1}`), at(5*time.Second))
		require.NoError(t, err)
		require.False(t, res.CancelRequested)
		require.Empty(t, expiredAt(at(14*time.Second)))
		exp := expiredAt(at(15 * time.Second))
		require.Len(t, exp, 1)
		requireTime(t, at(15*time.Second), exp[0].LeaseExpiresAt)
		require.Equal(t, task.Token, exp[0].Token)
		require.Equal(t, []byte(`{"progress":1}`), exp[0].HeartbeatDetails)

		// ...but never past StartedAt+StartToClose; nil details keep the old.
		_, err = heartbeat(task.Token, nil, at(14*time.Second))
		require.NoError(t, err)
		require.Empty(t, expiredAt(at(21*time.Second)))
		exp = expiredAt(at(22 * time.Second))
		require.Len(t, exp, 1)
		requireTime(t, at(22*time.Second), exp[0].LeaseExpiresAt)
		require.Equal(t, []byte(`{"progress":1}`), exp[0].HeartbeatDetails)

		_, err = heartbeat("not-the-token", nil, at(15*time.Second))
		require.ErrorIs(t, err, store.ErrLeaseLost)
		_, err = heartbeat("", nil, at(15*time.Second))
		require.ErrorIs(t, err, store.ErrLeaseLost)

		// A retry records the attempt and makes the task claimable again at
		// RetryAt, as attempt 2, keeping the heartbeat details.
		retry := func(token string, now time.Time) error {
			return b.st.RetryActivityTask(b.ctx, store.RetryActivityTaskParams{
				RunID: run.RunID, Seq: 2, Token: token, Attempt: attempt(task, "failed", "boom", now),
				RetryAt: at(30 * time.Second), Now: now,
			})
		}
		require.ErrorIs(t, retry("not-the-token", at(16*time.Second)), store.ErrLeaseLost)
		require.NoError(t, retry(task.Token, at(16*time.Second)))
		require.ErrorIs(t, retry(task.Token, at(17*time.Second)), store.ErrLeaseLost)
		_, err = heartbeat(task.Token, nil, at(17*time.Second))
		require.ErrorIs(t, err, store.ErrLeaseLost)
		require.Empty(t, expiredAt(at(time.Hour)), "an unleased task without deadlines never expires")

		require.Empty(t, b.claimActivities(t, a.TaskQueue, at(29*time.Second)))
		second := b.claimActivity(t, a.TaskQueue, at(30*time.Second))
		require.Equal(t, 2, second.Attempt)
		require.NotEqual(t, task.Token, second.Token)
		require.Equal(t, []byte(`{"progress":1}`), second.HeartbeatDetails)
		requireTime(t, at(30*time.Second), second.ReadyAt)
		requireTime(t, at(time.Second), second.ScheduledAt)
		requireTime(t, at(30*time.Second), second.StartedAt)
		requireTime(t, at(40*time.Second), second.LeaseExpiresAt)

		require.NoError(t, b.completeActivity(t, store.CompleteActivityTaskParams{
			RunID: run.RunID, Seq: 2, Token: second.Token, Attempt: attempt(second, "completed", "", at(31*time.Second)),
			Item: store.NewInboxItem{Type: "activity_completed"}, Now: at(31 * time.Second),
		}))
		atts, err := b.st.ActivityAttempts(b.ctx, run.RunID)
		require.NoError(t, err)
		require.Len(t, atts, 2)
		require.Equal(t, 1, atts[0].Attempt)
		require.Equal(t, "failed", atts[0].Outcome)
		require.Equal(t, "boom", atts[0].Error)
		requireTime(t, at(16*time.Second), atts[0].EndedAt)
		require.Equal(t, 2, atts[1].Attempt)
		require.Equal(t, "completed", atts[1].Outcome)
		requireTime(t, at(30*time.Second), atts[1].StartedAt)
	})

	t.Run("CancelActivities", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		a2, a3 := activity(run, 2, at(time.Second)), activity(run, 3, at(time.Second))
		a3.TaskQueue = "later"
		b.schedule(t, run, at(time.Second), a2, a3)
		task := b.claimActivity(t, a2.TaskQueue, at(2*time.Second))
		require.EqualValues(t, 2, task.Seq)

		// The workflow asks to cancel both (the commit needs a workflow
		// task, which a signal makes).
		b.signal(t, run.RunID, "stop", at(3*time.Second))
		wt := b.claim(t, run.TaskQueue, at(3*time.Second))
		p := params(wt, at(4*time.Second))
		p.Events = append(inboxEvents(wt), events(wt.Run.HistoryLen+1, 2)...)
		p.CancelActivities = []int64{2, 3}
		b.commit(t, p)

		res, err := b.st.HeartbeatActivityTask(b.ctx, store.HeartbeatParams{
			RunID: run.RunID, Seq: 2, Token: task.Token, Now: at(5 * time.Second),
		})
		require.NoError(t, err)
		require.True(t, res.CancelRequested)
		unleased := b.claimActivity(t, a3.TaskQueue, at(5*time.Second))
		require.EqualValues(t, 3, unleased.Seq)
		require.True(t, unleased.CancelRequested)
	})

	t.Run("ExpiredActivityTasks", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		stc := activity(run, 2, at(time.Second)) // start-to-close 10s
		stc.StartToClose = 10 * time.Second
		s2s := activity(run, 3, at(time.Second)) // never started
		s2s.TaskQueue = "nobody-polls"
		s2s.ScheduleToStartDeadline = at(5 * time.Second)
		s2c := activity(run, 4, at(time.Second)) // no lease expiry
		s2c.TaskQueue = "long"
		s2c.ScheduleToCloseDeadline = at(20 * time.Second)
		fresh := activity(run, 5, at(time.Second)) // no timeouts, same queue as s2s
		fresh.TaskQueue = s2s.TaskQueue
		fresh.ReadyAt = at(5 * time.Second)
		b.schedule(t, run, at(time.Second), stc, s2s, s2c, fresh)
		stcTask := b.claimActivity(t, stc.TaskQueue, at(time.Second))
		s2cTask := b.claimActivity(t, s2c.TaskQueue, at(time.Second))
		requireTime(t, at(11*time.Second), stcTask.LeaseExpiresAt)
		requireTime(t, time.Time{}, s2cTask.LeaseExpiresAt)

		expiredAt := func(now time.Time, limit int) []store.ActivityTask {
			tasks, err := b.st.ExpiredActivityTasks(b.ctx, now, limit)
			require.NoError(t, err)
			return tasks
		}
		seqs := func(tasks []store.ActivityTask) []int64 {
			out := make([]int64, len(tasks))
			for i, task := range tasks {
				out[i] = task.Seq
			}
			return out
		}
		require.Empty(t, expiredAt(at(4*time.Second), 10))
		exp := expiredAt(at(5*time.Second), 10)
		require.Equal(t, []int64{3}, seqs(exp))
		require.Empty(t, exp[0].Token, "unleased")
		require.Equal(t, 1, exp[0].Attempt)
		// A task past its schedule-to-start deadline is no longer claimed.
		require.EqualValues(t, 5, b.claimActivity(t, s2s.TaskQueue, at(5*time.Second)).Seq)

		require.ElementsMatch(t, []int64{2, 3}, seqs(expiredAt(at(11*time.Second), 10)))
		require.ElementsMatch(t, []int64{2, 3, 4}, seqs(expiredAt(at(20*time.Second), 10)))
		require.Len(t, expiredAt(at(20*time.Second), 2), 2)
		for _, task := range expiredAt(at(20*time.Second), 10) {
			switch task.Seq {
			case 2:
				require.Equal(t, stcTask.Token, task.Token)
			case 4:
				require.Equal(t, s2cTask.Token, task.Token)
			}
		}

		// The engine retries the start-to-close timeout...
		require.NoError(t, b.st.RetryActivityTask(b.ctx, store.RetryActivityTaskParams{
			RunID: run.RunID, Seq: 2, Token: stcTask.Token, Attempt: attempt(stcTask, "timed_out", "StartToClose", at(20*time.Second)),
			RetryAt: at(25 * time.Second), Now: at(20 * time.Second),
		}))
		// ...and fails the others. The unleased task fences on its attempt.
		completeUnleased := func(attemptNo int) error {
			return b.completeActivity(t, store.CompleteActivityTaskParams{
				RunID: run.RunID, Seq: 3, Token: "",
				Attempt: store.ActivityAttempt{RunID: run.RunID, Seq: 3, Attempt: attemptNo, ActivityType: "charge",
					EndedAt: at(20 * time.Second), Outcome: "timed_out", Error: "ScheduleToStart"},
				Item: store.NewInboxItem{Type: "activity_failed"}, Now: at(20 * time.Second),
			})
		}
		require.ErrorIs(t, completeUnleased(2), store.ErrLeaseLost)
		require.NoError(t, completeUnleased(1))
		require.ErrorIs(t, completeUnleased(1), store.ErrLeaseLost)
		err := b.completeActivity(t, store.CompleteActivityTaskParams{
			RunID: run.RunID, Seq: 4, Token: "", Attempt: attempt(s2cTask, "timed_out", "", at(20*time.Second)),
			Item: store.NewInboxItem{Type: "activity_failed"}, Now: at(20 * time.Second),
		})
		require.ErrorIs(t, err, store.ErrLeaseLost, "the empty token does not match a leased task")
		require.NoError(t, b.completeActivity(t, store.CompleteActivityTaskParams{
			RunID: run.RunID, Seq: 4, Token: s2cTask.Token, Attempt: attempt(s2cTask, "timed_out", "ScheduleToClose", at(20*time.Second)),
			Item: store.NewInboxItem{Type: "activity_failed"}, Now: at(20 * time.Second),
		}))

		require.Empty(t, expiredAt(at(1000*time.Hour), 10), "the retried task has no deadline left")
		retried := b.claimActivity(t, stc.TaskQueue, at(25*time.Second))
		require.Equal(t, 2, retried.Attempt)

		atts, err := b.st.ActivityAttempts(b.ctx, run.RunID)
		require.NoError(t, err)
		require.Len(t, atts, 3)
		require.Equal(t, []int64{2, 3, 4}, []int64{atts[0].Seq, atts[1].Seq, atts[2].Seq})
		require.Equal(t, "ScheduleToStart", atts[1].Error)
		requireTime(t, time.Time{}, atts[1].StartedAt)
	})

	t.Run("RetryRenewsScheduleToStart", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		a := activity(run, 2, at(time.Second))
		a.ScheduleToStartDeadline = at(11 * time.Second) // 10s after scheduling
		b.schedule(t, run, at(time.Second), a)

		// An unleased task is retried with the empty token and its attempt.
		exp, err := b.st.ExpiredActivityTasks(b.ctx, at(11*time.Second), 10)
		require.NoError(t, err)
		require.Len(t, exp, 1)
		retry := func(attemptNo int) error {
			return b.st.RetryActivityTask(b.ctx, store.RetryActivityTaskParams{
				RunID: run.RunID, Seq: 2, Token: "",
				Attempt: store.ActivityAttempt{RunID: run.RunID, Seq: 2, Attempt: attemptNo, ActivityType: "charge",
					EndedAt: at(11 * time.Second), Outcome: "timed_out"},
				RetryAt: at(20 * time.Second), Now: at(11 * time.Second),
			})
		}
		require.ErrorIs(t, retry(2), store.ErrLeaseLost)
		require.NoError(t, retry(1))

		// The next attempt gets its own 10s to start, from RetryAt.
		exp, err = b.st.ExpiredActivityTasks(b.ctx, at(29*time.Second), 10)
		require.NoError(t, err)
		require.Empty(t, exp)
		task := b.claimActivity(t, a.TaskQueue, at(29*time.Second))
		require.Equal(t, 2, task.Attempt)
		requireTime(t, at(30*time.Second), task.ScheduleToStartDeadline)
	})

	t.Run("CompletionWhileWorkflowTaskLeased", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		a2, a3 := activity(run, 2, at(time.Second)), activity(run, 3, at(time.Second))
		b.schedule(t, run, at(time.Second), a2, a3)
		tasks := b.claimActivities(t, a2.TaskQueue, at(2*time.Second))
		require.Len(t, tasks, 2)
		complete := func(task store.ActivityTask, now time.Time) {
			require.NoError(t, b.completeActivity(t, store.CompleteActivityTaskParams{
				RunID: run.RunID, Seq: task.Seq, Token: task.Token, Attempt: attempt(task, "completed", "", now),
				Item: store.NewInboxItem{Type: "activity_completed", Data: []byte{byte('0' + task.Seq)}}, Now: now,
			}))
		}
		complete(tasks[0], at(3*time.Second))
		wt := b.claim(t, run.TaskQueue, at(3*time.Second))
		require.Len(t, wt.Inbox, 1)

		complete(tasks[1], at(4*time.Second))
		b.claimNone(t, run.TaskQueue, at(4*time.Second))

		p := params(wt, at(5*time.Second))
		p.Events = inboxEvents(wt)
		require.True(t, b.commit(t, p).Pending)
		next := b.claim(t, run.TaskQueue, at(5*time.Second))
		require.Len(t, next.Inbox, 1)
		require.Equal(t, []byte{byte('0' + tasks[1].Seq)}, next.Inbox[0].Data)
	})

	t.Run("ActivityAttemptsUnknownRun", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		atts, err := b.st.ActivityAttempts(b.ctx, "no-such-run")
		require.NoError(t, err)
		require.Empty(t, atts)
	})
}
