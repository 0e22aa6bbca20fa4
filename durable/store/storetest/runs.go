package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
)

func exerciseRuns(t *testing.T, setup func(*testing.T) *bundle) {
	t.Run("CreateRun", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		p := store.CreateRunParams{
			RunID:        newID(),
			WorkflowID:   "order-42",
			WorkflowType: "order",
			TaskQueue:    "orders",
			Input:        []byte(`{"order":42}`),
			StartEvent:   store.Event{ID: 99, Type: "started", Data: []byte(`{"input":42}`)},
			Now:          at(time.Second),
		}
		res, err := b.st.CreateRun(b.ctx, p)
		require.NoError(t, err)
		require.True(t, res.Created)
		run := res.Run
		require.Equal(t, p.RunID, run.RunID)
		require.Equal(t, "order-42", run.WorkflowID)
		require.Equal(t, "order", run.WorkflowType)
		require.Equal(t, "orders", run.TaskQueue)
		require.Equal(t, store.StatusRunning, run.Status)
		require.Equal(t, p.Input, run.Input)
		require.Nil(t, run.Result)
		require.Nil(t, run.Failure)
		require.EqualValues(t, 1, run.HistoryLen)
		require.EqualValues(t, len(`{"input":42}`), run.HistoryBytes)
		require.False(t, run.CancelRequested)
		require.Empty(t, run.LastTaskFailure)
		requireTime(t, at(time.Second), run.CreatedAt)
		requireTime(t, at(time.Second), run.UpdatedAt)
		requireTime(t, time.Time{}, run.ClosedAt)

		requireSameRun(t, run, b.getRun(t, run.RunID))

		// The start event is event 1, at Now since its Time was zero.
		hist := b.history(t, run.RunID)
		require.Len(t, hist, 1)
		require.EqualValues(t, 1, hist[0].ID)
		require.Equal(t, "started", hist[0].Type)
		requireTime(t, at(time.Second), hist[0].Time)
		require.Equal(t, []byte(`{"input":42}`), hist[0].Data)

		// A workflow task is ready at Now, not before.
		b.claimNone(t, "orders", at(0))
		wt := b.claim(t, "orders", at(time.Second))
		requireSameRun(t, run, wt.Run)
		require.Equal(t, 1, wt.Attempt)
		require.NotEmpty(t, wt.Token)
		require.Empty(t, wt.Inbox)
	})

	t.Run("CreateRunStartEventTime", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t, func(p *store.CreateRunParams) {
			p.StartEvent.Time = at(-time.Hour)
		})
		hist := b.history(t, run.RunID)
		require.Len(t, hist, 1)
		requireTime(t, at(-time.Hour), hist[0].Time)
		requireTime(t, base, run.CreatedAt)
	})

	t.Run("CreateRunWhileRunning", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := b.createRun(t)

		for _, policy := range []store.IDReusePolicy{store.AllowDuplicate, store.AllowDuplicateFailedOnly, store.RejectDuplicate} {
			second := newID()
			res, err := b.st.CreateRun(b.ctx, store.CreateRunParams{
				RunID: second, WorkflowID: first.WorkflowID, WorkflowType: "order", TaskQueue: first.TaskQueue,
				StartEvent: store.Event{Type: "started"}, ReusePolicy: policy, Now: at(time.Minute),
			})
			require.NoError(t, err, "policy %d", policy)
			require.False(t, res.Created)
			requireSameRun(t, first, res.Run)

			_, err = b.st.GetRun(b.ctx, second)
			require.ErrorIs(t, err, store.ErrNotFound)
		}
		require.Len(t, b.history(t, first.RunID), 1)
		b.claim(t, first.TaskQueue, at(time.Minute)) // still one task
	})

	t.Run("ReusePolicy", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, prev := range []store.RunStatus{store.StatusCompleted, store.StatusFailed, store.StatusCanceled, store.StatusTerminated} {
			for _, tc := range []struct {
				policy  store.IDReusePolicy
				allowed bool
			}{
				{store.AllowDuplicate, true},
				{store.AllowDuplicateFailedOnly, prev != store.StatusCompleted},
				{store.RejectDuplicate, false},
			} {
				old := b.closeRun(t, b.createRun(t), prev, at(time.Second))
				require.Equal(t, prev, old.Status)

				res, err := b.st.CreateRun(b.ctx, store.CreateRunParams{
					RunID: newID(), WorkflowID: old.WorkflowID, WorkflowType: "order", TaskQueue: old.TaskQueue,
					StartEvent: store.Event{Type: "started"}, ReusePolicy: tc.policy, Now: at(time.Minute),
				})
				if !tc.allowed {
					require.ErrorIs(t, err, store.ErrWorkflowIDInUse, "previous %s, policy %d", prev, tc.policy)
					latest, err := b.st.GetLatestRun(b.ctx, old.WorkflowID)
					require.NoError(t, err)
					require.Equal(t, old.RunID, latest.RunID)
					continue
				}
				require.NoError(t, err, "previous %s, policy %d", prev, tc.policy)
				require.True(t, res.Created)
				require.NotEqual(t, old.RunID, res.Run.RunID)
				latest, err := b.st.GetLatestRun(b.ctx, old.WorkflowID)
				require.NoError(t, err)
				require.Equal(t, res.Run.RunID, latest.RunID)
			}
		}
	})

	t.Run("CreateRunConcurrentSameWorkflowID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		const n = 20
		var (
			wg      sync.WaitGroup
			results = make([]store.CreateRunResult, n)
			errs    = make([]error, n)
		)
		for i := range n {
			wg.Go(func() {
				results[i], errs[i] = b.st.CreateRun(b.ctx, store.CreateRunParams{
					RunID: newID(), WorkflowID: "same", WorkflowType: "order", TaskQueue: "q",
					StartEvent: store.Event{Type: "started"}, Now: base,
				})
			})
		}
		wg.Wait()
		created := 0
		for i := range n {
			require.NoError(t, errs[i])
			if results[i].Created {
				created++
			}
			require.Equal(t, results[0].Run.RunID, results[i].Run.RunID, "every start designates the same run")
		}
		require.Equal(t, 1, created)
		list, err := b.st.ListRuns(b.ctx, store.ListRunsParams{WorkflowID: "same"})
		require.NoError(t, err)
		require.Len(t, list.Runs, 1)
		require.Len(t, b.claimN(t, "q", base, 100), 1)
	})

	t.Run("GetRunNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.st.GetRun(b.ctx, "no-such-run")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = b.st.GetLatestRun(b.ctx, "no-such-workflow")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = b.st.History(b.ctx, "no-such-run", 0)
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("GetLatestRun", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := b.closeRun(t, b.createRun(t), store.StatusFailed, at(time.Second))
		latest, err := b.st.GetLatestRun(b.ctx, first.WorkflowID)
		require.NoError(t, err)
		requireSameRun(t, first, latest)

		second := b.createRun(t, func(p *store.CreateRunParams) {
			p.WorkflowID, p.Now = first.WorkflowID, at(time.Minute)
		})
		latest, err = b.st.GetLatestRun(b.ctx, first.WorkflowID)
		require.NoError(t, err)
		requireSameRun(t, second, latest)

		second = b.closeRun(t, second, store.StatusCompleted, at(2*time.Minute))
		latest, err = b.st.GetLatestRun(b.ctx, first.WorkflowID)
		require.NoError(t, err)
		requireSameRun(t, second, latest)
	})

	t.Run("ListRuns", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		mk := func(workflowID, typ string) store.Run {
			return b.createRun(t, func(p *store.CreateRunParams) { p.WorkflowID, p.WorkflowType = workflowID, typ })
		}
		r1 := b.closeRun(t, mk("wf-a", "alpha"), store.StatusCompleted, at(time.Second))
		r2 := mk("wf-a", "alpha")
		r3 := mk("wf-b", "beta")
		r4 := mk("wf-c", "alpha")
		r5 := mk("wf-d", "beta")

		list := func(p store.ListRunsParams) store.ListRunsResult {
			t.Helper()
			res, err := b.st.ListRuns(b.ctx, p)
			require.NoError(t, err)
			return res
		}
		all := list(store.ListRunsParams{})
		require.Equal(t, runIDs([]store.Run{r5, r4, r3, r2, r1}), runIDs(all.Runs), "newest first")
		require.Empty(t, all.NextCursor)
		requireSameRun(t, r1, all.Runs[4])

		require.Equal(t, runIDs([]store.Run{r2, r1}), runIDs(list(store.ListRunsParams{WorkflowID: "wf-a"}).Runs))
		require.Equal(t, runIDs([]store.Run{r5, r3}), runIDs(list(store.ListRunsParams{WorkflowType: "beta"}).Runs))
		require.Equal(t, runIDs([]store.Run{r1}), runIDs(list(store.ListRunsParams{Status: store.StatusCompleted}).Runs))
		require.Equal(t, runIDs([]store.Run{r4, r2}),
			runIDs(list(store.ListRunsParams{Status: store.StatusRunning, WorkflowType: "alpha"}).Runs))
		require.Empty(t, list(store.ListRunsParams{WorkflowID: "wf-none"}).Runs)

		// Pages of two: [r5 r4] [r3 r2] [r1].
		var pages [][]string
		cursor := ""
		for {
			page := list(store.ListRunsParams{Limit: 2, Cursor: cursor})
			pages = append(pages, runIDs(page.Runs))
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
			require.Less(t, len(pages), 10, "pagination does not end")
		}
		require.Equal(t, [][]string{
			runIDs([]store.Run{r5, r4}), runIDs([]store.Run{r3, r2}), runIDs([]store.Run{r1}),
		}, pages)

		// A page that ends exactly at the last run has no next cursor.
		exact := list(store.ListRunsParams{Limit: 5})
		require.Len(t, exact.Runs, 5)
		require.Empty(t, exact.NextCursor)

		// Filters apply across pages.
		page := list(store.ListRunsParams{WorkflowType: "alpha", Limit: 1})
		require.Equal(t, runIDs([]store.Run{r4}), runIDs(page.Runs))
		page = list(store.ListRunsParams{WorkflowType: "alpha", Limit: 1, Cursor: page.NextCursor})
		require.Equal(t, runIDs([]store.Run{r2}), runIDs(page.Runs))
		page = list(store.ListRunsParams{WorkflowType: "alpha", Limit: 1, Cursor: page.NextCursor})
		require.Equal(t, runIDs([]store.Run{r1}), runIDs(page.Runs))
		require.Empty(t, page.NextCursor)
	})

	t.Run("History", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		wt := b.claim(t, run.TaskQueue, base)
		p := params(wt, at(time.Second))
		p.Events = events(1, 3)
		b.commit(t, p)

		hist := b.history(t, run.RunID)
		require.Len(t, hist, 4)
		for i, ev := range hist {
			require.EqualValues(t, i+1, ev.ID)
		}
		for i, ev := range hist[1:] {
			want := p.Events[i]
			require.Equal(t, want.Type, ev.Type)
			requireTime(t, want.Time, ev.Time)
			require.Equal(t, want.Data, ev.Data)
		}
		after, err := b.st.History(b.ctx, run.RunID, 2)
		require.NoError(t, err)
		require.Len(t, after, 2)
		require.EqualValues(t, 3, after[0].ID)
		after, err = b.st.History(b.ctx, run.RunID, 4)
		require.NoError(t, err)
		require.Empty(t, after)

		got := b.getRun(t, run.RunID)
		require.EqualValues(t, 4, got.HistoryLen)
		var size int64
		for _, ev := range hist {
			size += int64(len(ev.Data))
		}
		require.Equal(t, size, got.HistoryBytes)
		requireTime(t, at(time.Second), got.UpdatedAt)
	})
}
