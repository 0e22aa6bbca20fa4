package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
)

func exerciseSignals(t *testing.T, setup func(*testing.T) *bundle) {
	t.Run("Signal", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		b.claim(t, run.TaskQueue, base) // leased: the signals must wait

		got, err := b.st.Signal(b.ctx, store.SignalParams{
			RunID: run.RunID, Item: store.NewInboxItem{Type: "signal", Data: []byte(`"by-run"`)}, Now: at(time.Second),
		})
		require.NoError(t, err)
		require.Equal(t, run.RunID, got.RunID)
		require.Equal(t, store.StatusRunning, got.Status)
		got, err = b.st.Signal(b.ctx, store.SignalParams{
			WorkflowID: run.WorkflowID, Item: store.NewInboxItem{Type: "signal", Data: []byte(`"by-workflow"`)}, Now: at(2 * time.Second),
		})
		require.NoError(t, err)
		require.Equal(t, run.RunID, got.RunID)

		wt := b.claim(t, run.TaskQueue, at(time.Minute)) // after the lease expired
		require.Len(t, wt.Inbox, 2)
		require.Equal(t, []byte(`"by-run"`), wt.Inbox[0].Data)
		require.Equal(t, []byte(`"by-workflow"`), wt.Inbox[1].Data)
		requireTime(t, at(2*time.Second), wt.Inbox[1].Time)
	})

	t.Run("SignalErrors", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		item := store.NewInboxItem{Type: "signal"}
		_, err := b.st.Signal(b.ctx, store.SignalParams{RunID: "no-such-run", Item: item, Now: base})
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = b.st.Signal(b.ctx, store.SignalParams{WorkflowID: "no-such-workflow", Item: item, Now: base})
		require.ErrorIs(t, err, store.ErrNotFound)

		run := b.closeRun(t, b.createRun(t), store.StatusCompleted, at(time.Second))
		_, err = b.st.Signal(b.ctx, store.SignalParams{RunID: run.RunID, Item: item, Now: at(2 * time.Second)})
		require.ErrorIs(t, err, store.ErrRunClosed)
		_, err = b.st.Signal(b.ctx, store.SignalParams{WorkflowID: run.WorkflowID, Item: item, Now: at(2 * time.Second)})
		require.ErrorIs(t, err, store.ErrRunClosed)
		b.claimNone(t, run.TaskQueue, at(time.Hour))
	})

	t.Run("SignalRequestID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		other := b.createRun(t)
		b.commit(t, params(b.claim(t, run.TaskQueue, base), base))
		b.commit(t, params(b.claim(t, other.TaskQueue, base), base))
		signal := func(runID, requestID, data string, now time.Time) error {
			_, err := b.st.Signal(b.ctx, store.SignalParams{
				RunID: runID, RequestID: requestID, Item: store.NewInboxItem{Type: "signal", Data: []byte(data)}, Now: now,
			})
			return err
		}
		require.NoError(t, signal(run.RunID, "req-1", "1", at(time.Second)))
		require.NoError(t, signal(run.RunID, "req-1", "1 again", at(2*time.Second)))
		require.NoError(t, signal(other.RunID, "req-1", "other", at(2*time.Second)), "request IDs are per run")

		wt := b.claim(t, run.TaskQueue, at(3*time.Second))
		require.Len(t, wt.Inbox, 1)
		require.Equal(t, []byte("1"), wt.Inbox[0].Data)
		require.Len(t, b.claim(t, other.TaskQueue, at(3*time.Second)).Inbox, 1)

		// Still a duplicate after the item moved to history.
		p := params(wt, at(4*time.Second))
		p.Events = inboxEvents(wt)
		b.commit(t, p)
		require.NoError(t, signal(run.RunID, "req-1", "1 late", at(5*time.Second)))
		b.claimNone(t, run.TaskQueue, at(time.Hour))

		require.NoError(t, signal(run.RunID, "req-2", "2", at(6*time.Second)))
		wt = b.claim(t, run.TaskQueue, at(6*time.Second))
		require.Len(t, wt.Inbox, 1)
		require.Equal(t, []byte("2"), wt.Inbox[0].Data)

		// Once the run closed, a retry of an accepted request still
		// succeeds; a new request does not.
		p = params(wt, at(7*time.Second))
		p.Events = append(inboxEvents(wt), events(wt.Run.HistoryLen+1, 1)...)
		p.Close = &store.CloseRun{Status: store.StatusCompleted}
		b.commit(t, p)
		require.NoError(t, signal(run.RunID, "req-2", "2", at(8*time.Second)))
		require.ErrorIs(t, signal(run.RunID, "req-3", "3", at(8*time.Second)), store.ErrRunClosed)
	})

	t.Run("InboxOrder", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		a := activity(run, 2, base)
		wt := b.claim(t, run.TaskQueue, base)
		p := params(wt, base)
		p.Events = events(1, 2)
		p.ScheduleActivities = []store.ActivityTask{a}
		p.StartTimers = []store.Timer{{RunID: run.RunID, Seq: 3, FireAt: at(2 * time.Second), Item: store.NewInboxItem{Type: "timer_fired"}}}
		b.commit(t, p)
		task := b.claimActivity(t, a.TaskQueue, base)

		b.signal(t, run.RunID, "first", at(time.Second))
		_, err := b.st.FireTimers(b.ctx, at(2*time.Second), 10)
		require.NoError(t, err)
		require.NoError(t, b.completeActivity(t, store.CompleteActivityTaskParams{
			RunID: run.RunID, Seq: 2, Token: task.Token, Attempt: attempt(task, "completed", "", at(3*time.Second)),
			Item: store.NewInboxItem{Type: "activity_completed"}, Now: at(3 * time.Second),
		}))
		require.NoError(t, b.st.RequestCancel(b.ctx, store.CancelParams{
			RunID: run.RunID, Item: store.NewInboxItem{Type: "cancel_requested"}, Now: at(4 * time.Second),
		}))
		b.signal(t, run.RunID, "last", at(5*time.Second))

		wt = b.claim(t, run.TaskQueue, at(5*time.Second))
		var types []string
		for i, it := range wt.Inbox {
			types = append(types, it.Type)
			requireTime(t, at(time.Duration(i+1)*time.Second), it.Time)
			if i > 0 {
				require.Greater(t, it.ID, wt.Inbox[i-1].ID)
			}
		}
		require.Equal(t, []string{"signal", "timer_fired", "activity_completed", "cancel_requested", "signal"}, types)
	})

	t.Run("RequestCancel", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		a := activity(run, 2, base)
		b.schedule(t, run, base, a)
		task := b.claimActivity(t, a.TaskQueue, base)

		cancel := func(runID string, now time.Time) error {
			return b.st.RequestCancel(b.ctx, store.CancelParams{
				RunID: runID, Item: store.NewInboxItem{Type: "cancel_requested", Data: []byte(`"why"`)}, Now: now,
			})
		}
		require.NoError(t, cancel(run.RunID, at(time.Second)))
		got := b.getRun(t, run.RunID)
		require.True(t, got.CancelRequested)
		require.Equal(t, store.StatusRunning, got.Status)
		requireTime(t, at(time.Second), got.UpdatedAt)

		res, err := b.st.HeartbeatActivityTask(b.ctx, store.HeartbeatParams{
			RunID: run.RunID, Seq: 2, Token: task.Token, Now: at(2 * time.Second),
		})
		require.NoError(t, err)
		require.True(t, res.CancelRequested, "the run's activities are asked to cancel")

		// A second request is a no-op.
		require.NoError(t, cancel(run.RunID, at(3*time.Second)))
		wt := b.claim(t, run.TaskQueue, at(3*time.Second))
		require.Len(t, wt.Inbox, 1)
		require.Equal(t, "cancel_requested", wt.Inbox[0].Type)
		require.Equal(t, []byte(`"why"`), wt.Inbox[0].Data)
		requireTime(t, at(time.Second), wt.Inbox[0].Time)
		require.True(t, wt.Run.CancelRequested)

		require.ErrorIs(t, cancel("no-such-run", at(4*time.Second)), store.ErrNotFound)
		p := params(wt, at(4*time.Second))
		p.Events = append(inboxEvents(wt), events(wt.Run.HistoryLen+1, 1)...)
		p.Close = &store.CloseRun{Status: store.StatusCanceled, Failure: []byte(`"canceled"`)}
		b.commit(t, p)
		require.ErrorIs(t, cancel(run.RunID, at(5*time.Second)), store.ErrRunClosed)
		require.Equal(t, store.StatusCanceled, b.getRun(t, run.RunID).Status)
	})

	t.Run("Terminate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		a := activity(run, 2, base)
		wt := b.claim(t, run.TaskQueue, base)
		p := params(wt, base)
		p.Events = events(1, 2)
		p.ScheduleActivities = []store.ActivityTask{a}
		p.StartTimers = []store.Timer{{RunID: run.RunID, Seq: 3, FireAt: at(time.Hour), Item: store.NewInboxItem{Type: "timer_fired"}}}
		b.commit(t, p)
		task := b.claimActivity(t, a.TaskQueue, base)
		b.signal(t, run.RunID, "s", at(time.Second))
		inflight := b.claim(t, run.TaskQueue, at(time.Second))

		terminate := func(runID string, now time.Time) error {
			return b.st.Terminate(b.ctx, store.TerminateParams{
				RunID: runID, Event: store.Event{ID: 42, Type: "terminated", Data: []byte(`{"reason":"ops"}`)},
				Failure: []byte(`{"message":"terminated"}`), Now: now,
			})
		}
		require.NoError(t, terminate(run.RunID, at(2*time.Second)))

		got := b.getRun(t, run.RunID)
		require.Equal(t, store.StatusTerminated, got.Status)
		require.Equal(t, []byte(`{"message":"terminated"}`), got.Failure)
		require.EqualValues(t, 4, got.HistoryLen)
		requireTime(t, at(2*time.Second), got.ClosedAt)
		hist := b.history(t, run.RunID)
		require.Len(t, hist, 4)
		require.EqualValues(t, 4, hist[3].ID)
		require.Equal(t, "terminated", hist[3].Type)
		require.Equal(t, []byte(`{"reason":"ops"}`), hist[3].Data)
		requireTime(t, at(2*time.Second), hist[3].Time)
		var size int64
		for _, ev := range hist {
			size += int64(len(ev.Data))
		}
		require.Equal(t, size, got.HistoryBytes)

		// The in-flight workflow task cannot commit.
		p = params(inflight, at(3*time.Second))
		p.Events = inboxEvents(inflight)
		_, err := b.st.CompleteWorkflowTask(b.ctx, p)
		require.ErrorIs(t, err, store.ErrLeaseLost)

		// Tasks, timers and inbox are gone.
		b.claimNone(t, run.TaskQueue, at(time.Hour))
		_, err = b.st.HeartbeatActivityTask(b.ctx, store.HeartbeatParams{RunID: run.RunID, Seq: 2, Token: task.Token, Now: at(3 * time.Second)})
		require.ErrorIs(t, err, store.ErrLeaseLost)
		b.requireNothingScheduled(t)

		require.ErrorIs(t, terminate(run.RunID, at(4*time.Second)), store.ErrRunClosed)
		require.ErrorIs(t, terminate("no-such-run", at(4*time.Second)), store.ErrNotFound)
		_, err = b.st.Signal(b.ctx, store.SignalParams{RunID: run.RunID, Item: store.NewInboxItem{Type: "signal"}, Now: at(4 * time.Second)})
		require.ErrorIs(t, err, store.ErrRunClosed)
		err = b.st.RequestCancel(b.ctx, store.CancelParams{RunID: run.RunID, Item: store.NewInboxItem{Type: "cancel"}, Now: at(4 * time.Second)})
		require.ErrorIs(t, err, store.ErrRunClosed)
	})
}
