package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
)

// exerciseFireTimerWithWorkflowTask checks FireTimerWithWorkflowTask: a
// timer fired together with the workflow task the engine already ran on
// it, guarded by the run being idle and the timer being due.
func exerciseFireTimerWithWorkflowTask(t *testing.T, setup func(*testing.T) *bundle) {
	timer := store.Timer{Seq: 4, FireAt: at(30 * time.Second), Item: store.NewInboxItem{Type: "timer_fired", Data: []byte("4")}}

	t.Run("Commit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, _ := b.idleRun(t, 1, timer)
		now := at(31 * time.Second)
		p := timerFired(run.RunID, 4, 2, now)
		next := activity(run, 5, now)
		next.StartToClose = 10 * time.Second
		p.Workflow.ScheduleActivities = []store.ActivityTask{next}
		p.Workflow.EagerActivities, p.Workflow.EagerOwner = []int64{5}, "eager-w"
		res, err := b.st.FireTimerWithWorkflowTask(b.ctx, p)
		require.NoError(t, err)
		require.Len(t, res.Activities, 1)
		requireLeasedActivity(t, next, res.Activities[0], "eager-w", now, at(41*time.Second))

		require.EqualValues(t, 4, b.getRun(t, run.RunID).HistoryLen)
		hist := b.history(t, run.RunID)
		require.Equal(t, "timer_fired", hist[2].Type)
		// The timer is gone: FireTimers finds nothing, no task was made,
		// and firing it again is refused.
		queues, err := b.st.FireTimers(b.ctx, at(time.Hour), 10)
		require.NoError(t, err)
		require.NotContains(t, queues, run.TaskQueue)
		b.claimNone(t, run.TaskQueue, at(time.Hour))
		_, err = b.st.FireTimerWithWorkflowTask(b.ctx, timerFired(run.RunID, 4, 4, at(time.Hour)))
		require.ErrorIs(t, err, store.ErrRunBusy)
	})

	t.Run("Close", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, _ := b.idleRun(t, 1, timer)
		p := timerFired(run.RunID, 4, 2, at(30*time.Second))
		p.Workflow.Close = &store.CloseRun{Status: store.StatusCompleted, Result: []byte(`"done"`)}
		_, err := b.st.FireTimerWithWorkflowTask(b.ctx, p)
		require.NoError(t, err)
		require.Equal(t, store.StatusCompleted, b.getRun(t, run.RunID).Status)
		b.requireNothingScheduled(t)
	})

	// Refused, the timer stays and FireTimers fires it (unless the run
	// closed).
	busy := map[string]func(t *testing.T, b *bundle, run store.Run) (seq, length int64, now time.Time){
		"NotDue": func(t *testing.T, b *bundle, run store.Run) (int64, int64, time.Time) {
			return 4, 2, at(29 * time.Second)
		},
		"NoSuchTimer": func(t *testing.T, b *bundle, run store.Run) (int64, int64, time.Time) {
			return 9, 2, at(31 * time.Second)
		},
		"Runnable": func(t *testing.T, b *bundle, run store.Run) (int64, int64, time.Time) {
			b.signal(t, run.RunID, "other", at(2*time.Second))
			return 4, 2, at(31 * time.Second)
		},
		"HistoryMoved": func(t *testing.T, b *bundle, run store.Run) (int64, int64, time.Time) {
			return 4, 1, at(31 * time.Second)
		},
		"Closed": func(t *testing.T, b *bundle, run store.Run) (int64, int64, time.Time) {
			require.NoError(t, b.st.Terminate(b.ctx, store.TerminateParams{
				RunID: run.RunID, Event: store.Event{Type: "terminated"}, Failure: []byte(`"stop"`), Now: at(2 * time.Second),
			}))
			return 4, 3, at(31 * time.Second)
		},
	}
	for name, prepare := range busy {
		t.Run("Busy"+name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			run, _ := b.idleRun(t, 1, timer)
			seq, length, now := prepare(t, b, run)
			before := b.getRun(t, run.RunID)
			_, err := b.st.FireTimerWithWorkflowTask(b.ctx, timerFired(run.RunID, seq, length, now))
			require.ErrorIs(t, err, store.ErrRunBusy)
			after := b.getRun(t, run.RunID)
			require.Equal(t, before.HistoryLen, after.HistoryLen)
			if after.Status != store.StatusRunning {
				return
			}
			queues, err := b.st.FireTimers(b.ctx, at(time.Minute), 10)
			require.NoError(t, err)
			require.Contains(t, queues, run.TaskQueue)
			wt := b.claim(t, run.TaskQueue, at(time.Minute))
			require.Equal(t, []byte("4"), wt.Inbox[len(wt.Inbox)-1].Data)
		})
	}
}

// timerFired returns the parameters that fire timer seq of run runID, idle
// at history length histLen, at now, with the workflow task run on it: the
// timer's event and one command.
func timerFired(runID string, seq, histLen int64, now time.Time) store.FireTimerWithWorkflowTaskParams {
	return store.FireTimerWithWorkflowTaskParams{
		Seq: seq,
		Workflow: store.CompleteWorkflowTaskParams{
			RunID:              runID,
			ExpectedHistoryLen: histLen,
			Events: append([]store.Event{{ID: histLen + 1, Type: "timer_fired", Time: now, Data: []byte("4")}},
				events(histLen+1, 1)...),
			Now: now,
		},
	}
}
