package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
)

func exerciseTimers(t *testing.T, setup func(*testing.T) *bundle) {
	// startTimers claims run's workflow task at now and commits it with one
	// timer per fire time, seqs 2, 3, ….
	startTimers := func(t *testing.T, b *bundle, run store.Run, now time.Time, fireAt ...time.Time) {
		t.Helper()
		wt := b.claim(t, run.TaskQueue, now)
		p := params(wt, now)
		p.Events = append(inboxEvents(wt), events(wt.Run.HistoryLen+int64(len(wt.Inbox)), len(fireAt))...)
		for i, f := range fireAt {
			seq := int64(i + 2)
			p.StartTimers = append(p.StartTimers, store.Timer{RunID: run.RunID, Seq: seq, FireAt: f,
				Item: store.NewInboxItem{Type: "timer_fired", Data: []byte{byte('0' + seq)}}})
		}
		b.commit(t, p)
	}
	fire := func(t *testing.T, b *bundle, now time.Time, limit int) []string {
		t.Helper()
		queues, err := b.st.FireTimers(b.ctx, now, limit)
		require.NoError(t, err)
		return queues
	}

	t.Run("FireWhenDue", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		startTimers(t, b, run, base, at(time.Minute), at(2*time.Minute), at(3*time.Minute))

		require.Empty(t, fire(t, b, at(59*time.Second), 100))
		b.claimNone(t, run.TaskQueue, at(59*time.Second))
		require.Equal(t, []string{run.TaskQueue}, fire(t, b, at(time.Minute), 100))
		require.Empty(t, fire(t, b, at(time.Minute), 100), "a timer fires once")

		wt := b.claim(t, run.TaskQueue, at(time.Minute))
		require.Len(t, wt.Inbox, 1)
		require.Equal(t, "timer_fired", wt.Inbox[0].Type)
		require.Equal(t, []byte("2"), wt.Inbox[0].Data)
		requireTime(t, at(time.Minute), wt.Inbox[0].Time)

		// The workflow cancels the 2m timer.
		p := params(wt, at(61*time.Second))
		p.Events = inboxEvents(wt)
		p.CancelTimers = []int64{3}
		b.commit(t, p)
		require.Empty(t, fire(t, b, at(150*time.Second), 100))
		require.Equal(t, []string{run.TaskQueue}, fire(t, b, at(time.Hour), 100))
		wt = b.claim(t, run.TaskQueue, at(time.Hour))
		require.Len(t, wt.Inbox, 1)
		require.Equal(t, []byte("4"), wt.Inbox[0].Data)
	})

	t.Run("FireLimitAndOrder", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		runA, runB := b.createRun(t), b.createRun(t)
		startTimers(t, b, runA, base, at(10*time.Second), at(20*time.Second))
		startTimers(t, b, runB, base, at(15*time.Second))

		require.Equal(t, []string{runA.TaskQueue, runB.TaskQueue}, fire(t, b, at(30*time.Second), 2), "earliest first")
		require.Equal(t, []string{runA.TaskQueue}, fire(t, b, at(30*time.Second), 2))
		require.Empty(t, fire(t, b, at(30*time.Second), 2))

		wt := b.claim(t, runA.TaskQueue, at(30*time.Second))
		require.Len(t, wt.Inbox, 2)
		require.Equal(t, []byte("2"), wt.Inbox[0].Data)
		require.Equal(t, []byte("3"), wt.Inbox[1].Data)
		wt = b.claim(t, runB.TaskQueue, at(30*time.Second))
		require.Len(t, wt.Inbox, 1)
	})

	t.Run("NextWakeup", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		next := func() (time.Time, bool) {
			t.Helper()
			at, ok, err := b.st.NextWakeup(b.ctx)
			require.NoError(t, err)
			return at, ok
		}
		requireNext := func(want time.Time) {
			t.Helper()
			got, ok := next()
			require.True(t, ok, "want a wakeup at %v", want)
			requireTime(t, want, got)
		}
		_, ok := next()
		require.False(t, ok, "empty store")

		// A task that is ready at once is for the pollers, not a wakeup.
		run := b.createRun(t)
		_, ok = next()
		require.False(t, ok)

		// A lease expiry is.
		wt := b.claim(t, run.TaskQueue, base) // leased until 1m
		requireNext(at(time.Minute))

		// So is the end of a workflow task's retry backoff; FireTimers
		// acknowledges it once due and reports the run's task queue.
		require.NoError(t, b.st.FailWorkflowTask(b.ctx, store.FailWorkflowTaskParams{
			RunID: run.RunID, Token: wt.Token, RetryAt: at(30 * time.Second), Failure: "boom", Now: at(time.Second),
		}))
		requireNext(at(30 * time.Second))
		require.Empty(t, fire(t, b, at(29*time.Second), 100))
		require.Equal(t, []string{run.TaskQueue}, fire(t, b, at(30*time.Second), 100))
		_, ok = next()
		require.False(t, ok)

		// A timer, and an activity with a delayed start and a deadline.
		wt = b.claim(t, run.TaskQueue, at(30*time.Second)) // leased until 90s
		requireNext(at(90 * time.Second))
		a := activity(run, 3, at(31*time.Second))
		a.ReadyAt = at(2 * time.Minute)
		a.StartToClose = time.Minute
		a.ScheduleToCloseDeadline = at(10 * time.Minute)
		p := params(wt, at(31*time.Second))
		p.Events = events(1, 2)
		p.ScheduleActivities = []store.ActivityTask{a}
		p.StartTimers = []store.Timer{{RunID: run.RunID, Seq: 2, FireAt: at(5 * time.Minute),
			Item: store.NewInboxItem{Type: "timer_fired"}}}
		b.commit(t, p)
		requireNext(at(2 * time.Minute))
		fire(t, b, at(2*time.Minute), 100)
		requireNext(at(5 * time.Minute))

		// An activity lease expiry; then a retry backoff.
		task := b.claimActivity(t, a.TaskQueue, at(2*time.Minute))
		requireNext(at(3 * time.Minute))
		require.NoError(t, b.st.RetryActivityTask(b.ctx, store.RetryActivityTaskParams{
			RunID: run.RunID, Seq: 3, Token: task.Token, Attempt: attempt(task, "failed", "x", at(130*time.Second)),
			RetryAt: at(4 * time.Minute), Now: at(130 * time.Second),
		}))
		requireNext(at(4 * time.Minute))
		fire(t, b, at(4*time.Minute), 100)
		requireNext(at(5 * time.Minute))

		// The timer fires; its workflow task is ready at once. What is left
		// is the activity's schedule-to-close deadline.
		require.Equal(t, []string{run.TaskQueue}, fire(t, b, at(5*time.Minute), 100))
		requireNext(at(10 * time.Minute))
		exp, err := b.st.ExpiredActivityTasks(b.ctx, at(10*time.Minute), 10)
		require.NoError(t, err)
		require.Len(t, exp, 1)
		require.NoError(t, b.completeActivity(t, store.CompleteActivityTaskParams{
			RunID: run.RunID, Seq: 3, Token: exp[0].Token, Attempt: attempt(exp[0], "timed_out", "ScheduleToClose", at(10*time.Minute)),
			Item: store.NewInboxItem{Type: "activity_failed"}, Now: at(10 * time.Minute),
		}))
		_, ok = next()
		require.False(t, ok)
	})
}
