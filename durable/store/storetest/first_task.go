package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
)

// exerciseFirstTask checks CreateRun with FirstTask: a run started in the
// same transaction as its first workflow task's commit.
func exerciseFirstTask(t *testing.T, setup func(*testing.T) *bundle) {
	t.Run("Commit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// The task ran after the start's Now, and scheduled its
		// activities when it ran: they are leased as of the task's Now.
		p := runParams()
		run := store.Run{RunID: p.RunID, WorkflowID: p.WorkflowID}
		ran := at(time.Millisecond)
		a2, a3 := activity(run, 2, ran), activity(run, 3, ran)
		a2.StartToClose = 10 * time.Second
		p.FirstTask = &store.CompleteWorkflowTaskParams{
			RunID: p.RunID, ExpectedHistoryLen: 1, Events: events(1, 3),
			Token: "ignored", InboxUpTo: 1 << 40,
			ScheduleActivities: []store.ActivityTask{a2, a3},
			EagerActivities:    []int64{2}, EagerOwner: "eager-w",
			StartTimers: []store.Timer{{RunID: p.RunID, Seq: 4, FireAt: at(time.Minute),
				Item: store.NewInboxItem{Type: "timer_fired", Data: []byte("4")}}},
			UpsertSearchAttributes: []byte(`{"Region":{"type":"keyword","value":"eu"}}`),
			Now:                    ran,
		}
		res, err := b.st.CreateRun(b.ctx, p)
		require.NoError(t, err)
		require.True(t, res.Created)
		require.Nil(t, res.Task)
		require.Len(t, res.Activities, 1)
		requireLeasedActivity(t, a2, res.Activities[0], "eager-w", ran, ran.Add(10*time.Second))

		// The run as written, with the first task's events.
		require.Equal(t, store.StatusRunning, res.Run.Status)
		require.EqualValues(t, 4, res.Run.HistoryLen)
		got := b.getRun(t, p.RunID)
		require.Equal(t, got, res.Run, "the run returned is the run written")
		require.EqualValues(t, 4, got.HistoryLen)
		size := int64(len(p.StartEvent.Data))
		for _, ev := range p.FirstTask.Events {
			size += int64(len(ev.Data))
		}
		require.Equal(t, size, got.HistoryBytes)
		require.Equal(t, size, res.Run.HistoryBytes)
		require.JSONEq(t, `{"Region":{"type":"keyword","value":"eu"}}`, string(got.SearchAttributes))
		hist := b.history(t, p.RunID)
		require.Len(t, hist, 4)
		require.Equal(t, p.StartEvent.Type, hist[0].Type)
		for i, ev := range p.FirstTask.Events {
			require.Equal(t, ev.ID, hist[1+i].ID)
			require.Equal(t, ev.Data, hist[1+i].Data)
		}

		// No workflow task: nothing to claim, and the run is idle for the
		// fast path of CompleteActivityWithWorkflowTask.
		b.claimNone(t, p.TaskQueue, at(time.Hour))
		acts := b.claimActivities(t, a3.TaskQueue, at(time.Second))
		require.Len(t, acts, 1, "activity 3 was scheduled, not leased")
		require.EqualValues(t, 3, acts[0].Seq)
		sp := speculative(res.Activities[0], 4, at(2*time.Second))
		_, err = b.st.CompleteActivityWithWorkflowTask(b.ctx, sp)
		require.NoError(t, err)
		require.EqualValues(t, 6, b.getRun(t, p.RunID).HistoryLen)

		// The timer fires as any other.
		queues, err := b.st.FireTimers(b.ctx, at(time.Minute), 10)
		require.NoError(t, err)
		require.Contains(t, queues, p.TaskQueue)
		wt := b.claim(t, p.TaskQueue, at(time.Minute))
		require.Len(t, wt.Inbox, 2, "timers 4 and 202 (speculative's)")
		require.Equal(t, []byte("4"), wt.Inbox[1].Data)
	})

	t.Run("RunAsWritten", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := runParams()
		run := store.Run{RunID: p.RunID, WorkflowID: p.WorkflowID}
		p.FirstTask = &store.CompleteWorkflowTaskParams{
			RunID: p.RunID, ExpectedHistoryLen: 1, Events: events(1, 2), Now: at(time.Second),
			ScheduleActivities: []store.ActivityTask{activity(run, 3, at(time.Second))},
		}
		res, err := b.st.CreateRun(b.ctx, p)
		require.NoError(t, err)
		require.True(t, res.Created)
		require.Equal(t, b.getRun(t, p.RunID), res.Run, "the run returned is the run written")
		require.EqualValues(t, 3, res.Run.HistoryLen)
		require.True(t, at(time.Second).Equal(res.Run.UpdatedAt), "updated when the task ran")
	})

	t.Run("Close", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := runParams()
		p.FirstTask = &store.CompleteWorkflowTaskParams{
			RunID: p.RunID, ExpectedHistoryLen: 1, Events: events(1, 1), Now: base,
			Close: &store.CloseRun{Status: store.StatusCompleted, Result: []byte(`"done"`)},
		}
		res, err := b.st.CreateRun(b.ctx, p)
		require.NoError(t, err)
		require.True(t, res.Created)
		require.Equal(t, store.StatusCompleted, res.Run.Status)
		got := b.getRun(t, p.RunID)
		require.Equal(t, got, res.Run, "the run returned is the run written")
		require.Equal(t, store.StatusCompleted, got.Status)
		require.Equal(t, []byte(`"done"`), got.Result)
		require.EqualValues(t, 2, got.HistoryLen)
		b.claimNone(t, p.TaskQueue, at(time.Hour))
		b.requireNothingScheduled(t)

		// The workflow ID is free again.
		again := runParams(func(q *store.CreateRunParams) { q.WorkflowID = p.WorkflowID })
		res, err = b.st.CreateRun(b.ctx, again)
		require.NoError(t, err)
		require.True(t, res.Created)
	})

	t.Run("WorkflowIDRunning", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := b.createRun(t)
		p := runParams(func(q *store.CreateRunParams) { q.WorkflowID = first.WorkflowID })
		run := store.Run{RunID: p.RunID, WorkflowID: p.WorkflowID}
		p.FirstTask = &store.CompleteWorkflowTaskParams{
			RunID: p.RunID, ExpectedHistoryLen: 1, Events: events(1, 1), Now: base,
			ScheduleActivities: []store.ActivityTask{activity(run, 2, base)},
			EagerActivities:    []int64{2}, EagerOwner: "eager-w",
			StartTimers: []store.Timer{{RunID: p.RunID, Seq: 3, FireAt: at(time.Minute),
				Item: store.NewInboxItem{Type: "timer_fired"}}},
		}
		res, err := b.st.CreateRun(b.ctx, p)
		require.NoError(t, err)
		require.False(t, res.Created)
		require.Equal(t, first.RunID, res.Run.RunID)
		require.Empty(t, res.Activities)
		_, err = b.st.GetRun(b.ctx, p.RunID)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.Empty(t, b.claimActivities(t, "act-"+p.RunID, at(time.Hour)))
		require.EqualValues(t, 1, b.getRun(t, first.RunID).HistoryLen)
		b.claimNone(t, p.TaskQueue, at(time.Hour))
	})

	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		task := func(p *store.CreateRunParams) *store.CompleteWorkflowTaskParams {
			return &store.CompleteWorkflowTaskParams{RunID: p.RunID, ExpectedHistoryLen: 1, Events: events(1, 1), Now: base}
		}
		for name, mod := range map[string]func(*store.CreateRunParams){
			"eager": func(p *store.CreateRunParams) {
				p.Eager = &store.EagerLease{Owner: "w", LeaseUntil: at(time.Minute)}
			},
			"history": func(p *store.CreateRunParams) { p.History = events(1, 1); p.FirstTask.Events = events(2, 1) },
			"inbox":   func(p *store.CreateRunParams) { p.Inbox = []store.NewInboxItem{{Type: "signal"}} },
			"length":  func(p *store.CreateRunParams) { p.FirstTask.ExpectedHistoryLen = 2; p.FirstTask.Events = events(2, 1) },
			"run":     func(p *store.CreateRunParams) { p.FirstTask.RunID = "another" },
			"events":  func(p *store.CreateRunParams) { p.FirstTask.Events = events(2, 1) },
			"external": func(p *store.CreateRunParams) {
				p.FirstTask.External = []store.ExternalRequest{{WorkflowID: "x", Item: store.NewInboxItem{Type: "signal"}}}
			},
		} {
			p := runParams()
			p.FirstTask = task(&p)
			mod(&p)
			_, err := b.st.CreateRun(b.ctx, p)
			require.Error(t, err, name)
			require.NotErrorIs(t, err, store.ErrWorkflowIDInUse, name)
			_, err = b.st.GetRun(b.ctx, p.RunID)
			require.ErrorIs(t, err, store.ErrNotFound, "%s: nothing written", name)
		}
	})
}
