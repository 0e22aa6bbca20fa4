package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
)

// exerciseSignalWithWorkflowTask checks SignalWithWorkflowTask: a signal and
// the workflow task the engine already ran on it, committed together,
// guarded by the run being idle.
func exerciseSignalWithWorkflowTask(t *testing.T, setup func(*testing.T) *bundle) {
	t.Run("Commit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, _ := b.idleRun(t, 1)
		now := at(3 * time.Second)
		p := signalled(run, 2, "r1", now)
		next := activity(run, 5, now)
		next.StartToClose = 10 * time.Second
		p.Workflow.ScheduleActivities = []store.ActivityTask{next}
		p.Workflow.EagerActivities, p.Workflow.EagerOwner = []int64{5}, "eager-w"
		res, err := b.st.SignalWithWorkflowTask(b.ctx, p)
		require.NoError(t, err)
		require.False(t, res.Pending)
		require.Len(t, res.Activities, 1)
		requireLeasedActivity(t, next, res.Activities[0], "eager-w", now, at(13*time.Second))

		got := b.getRun(t, run.RunID)
		require.EqualValues(t, 4, got.HistoryLen)
		hist := b.history(t, run.RunID)
		require.Len(t, hist, 4)
		require.Equal(t, "signal", hist[2].Type)
		require.Equal(t, p.Signal.Item.Data, hist[2].Data)
		b.claimNone(t, run.TaskQueue, at(time.Hour))

		// The request ID is the run's now: the same signal sent the
		// ordinary way is accepted and not written again, and the fast
		// path refuses it.
		_, err = b.st.Signal(b.ctx, store.SignalParams{RunID: run.RunID, RequestID: "r1",
			Item: p.Signal.Item, Now: at(4 * time.Second)})
		require.NoError(t, err)
		b.claimNone(t, run.TaskQueue, at(time.Hour))
		_, err = b.st.SignalWithWorkflowTask(b.ctx, signalled(got, 4, "r1", at(5*time.Second)))
		require.ErrorIs(t, err, store.ErrRunBusy)
		require.EqualValues(t, 4, b.getRun(t, run.RunID).HistoryLen)

		// Without a request ID, another signal takes the fast path again.
		_, err = b.st.SignalWithWorkflowTask(b.ctx, signalled(got, 4, "", at(6*time.Second)))
		require.NoError(t, err)
		require.EqualValues(t, 6, b.getRun(t, run.RunID).HistoryLen)
	})

	t.Run("Close", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, _ := b.idleRun(t, 1)
		p := signalled(run, 2, "", at(3*time.Second))
		p.Workflow.Close = &store.CloseRun{Status: store.StatusCompleted, Result: []byte(`"done"`)}
		_, err := b.st.SignalWithWorkflowTask(b.ctx, p)
		require.NoError(t, err)
		got := b.getRun(t, run.RunID)
		require.Equal(t, store.StatusCompleted, got.Status)
		require.EqualValues(t, 4, got.HistoryLen)
		b.requireNothingScheduled(t)
	})

	// A run with a workflow task, or whose history moved on, or that is
	// closed, is busy: nothing is written, not even the request ID.
	busy := map[string]func(t *testing.T, b *bundle, run store.Run) int64{
		"Runnable": func(t *testing.T, b *bundle, run store.Run) int64 {
			b.signal(t, run.RunID, "other", at(2*time.Second))
			return 2
		},
		"Leased": func(t *testing.T, b *bundle, run store.Run) int64 {
			b.signal(t, run.RunID, "other", at(2*time.Second))
			b.claim(t, run.TaskQueue, at(2*time.Second))
			return 2
		},
		"HistoryMoved": func(t *testing.T, b *bundle, run store.Run) int64 {
			return 1
		},
		"Closed": func(t *testing.T, b *bundle, run store.Run) int64 {
			require.NoError(t, b.st.Terminate(b.ctx, store.TerminateParams{
				RunID: run.RunID, Event: store.Event{Type: "terminated"}, Failure: []byte(`"stop"`), Now: at(2 * time.Second),
			}))
			return 3
		},
	}
	for name, prepare := range busy {
		t.Run("Busy"+name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			run, _ := b.idleRun(t, 1)
			length := prepare(t, b, run)
			before := b.getRun(t, run.RunID)
			_, err := b.st.SignalWithWorkflowTask(b.ctx, signalled(run, length, "r1", at(3*time.Second)))
			require.ErrorIs(t, err, store.ErrRunBusy)
			after := b.getRun(t, run.RunID)
			require.Equal(t, before.HistoryLen, after.HistoryLen)
			require.Equal(t, before.Status, after.Status)
			if after.Status != store.StatusRunning {
				return
			}
			// The request ID was not recorded: the ordinary signal writes.
			_, err = b.st.Signal(b.ctx, store.SignalParams{RunID: run.RunID, RequestID: "r1",
				Item: store.NewInboxItem{Type: "signal", Data: []byte(`"r1"`)}, Now: at(4 * time.Second)})
			require.NoError(t, err)
			wt := b.claim(t, run.TaskQueue, at(time.Hour))
			require.Equal(t, []byte(`"r1"`), wt.Inbox[len(wt.Inbox)-1].Data)
		})
	}

	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, _ := b.idleRun(t, 1)
		p := signalled(run, 2, "", at(3*time.Second))
		p.Signal.RunID = "another"
		_, err := b.st.SignalWithWorkflowTask(b.ctx, p)
		require.Error(t, err)
		require.NotErrorIs(t, err, store.ErrRunBusy)
		p = signalled(run, 2, "", at(3*time.Second))
		p.Workflow.External = []store.ExternalRequest{{WorkflowID: "x", Item: store.NewInboxItem{Type: "signal"}}}
		_, err = b.st.SignalWithWorkflowTask(b.ctx, p)
		require.Error(t, err)
		require.NotErrorIs(t, err, store.ErrRunBusy)
		require.EqualValues(t, 2, b.getRun(t, run.RunID).HistoryLen)
	})
}

// signalled returns the parameters of a signal with request ID reqID (""
// for none) to run, idle at history length histLen, and of the workflow
// task run on it: the signal's event and one command.
func signalled(run store.Run, histLen int64, reqID string, now time.Time) store.SignalWithWorkflowTaskParams {
	item := store.NewInboxItem{Type: "signal", Data: []byte(`"fast"`)}
	return store.SignalWithWorkflowTaskParams{
		Signal: store.SignalParams{RunID: run.RunID, Item: item, RequestID: reqID, Now: now},
		Workflow: store.CompleteWorkflowTaskParams{
			RunID:              run.RunID,
			ExpectedHistoryLen: histLen,
			Events: append([]store.Event{{ID: histLen + 1, Type: item.Type, Time: now, Data: item.Data}},
				events(histLen+1, 1)...),
			Now: now,
		},
	}
}
