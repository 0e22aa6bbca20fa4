package durable_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store"
)

// drainer returns every signal it has seen once the first arrived.
func drainer(sig durable.Signal[string]) *durable.Workflow[string, []string] {
	return durable.NewWorkflow("drainer", func(ctx durable.Context, _ string) ([]string, error) {
		first, err := sig.Receive(ctx)
		if err != nil {
			return nil, err
		}
		got := []string{first}
		for {
			v, ok, err := sig.TryReceive(ctx)
			if err != nil || !ok {
				return got, err
			}
			got = append(got, v)
		}
	})
}

// Signals that reach a run together are applied together, before its code
// runs: a workflow that returns after the first still sees the second.
func TestSignalsOfOneTaskAreSeenBeforeTheRunCloses(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		sig := durable.NewSignal[string]("item")
		wf := drainer(sig)
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{wf}, noStart: true})
		ctx := testContext(t)
		// With no worker running yet, both signals wait in the inbox and
		// reach the first task together.
		h, err := wf.Start(ctx, b.e, "", &durable.StartOptions{ID: "drain"})
		require.NoError(t, err)
		require.NoError(t, sig.Send(ctx, b.e, "drain", "a"))
		require.NoError(t, sig.Send(ctx, b.e, "drain", "b"))
		require.NoError(t, b.e.Start(ctx))
		got, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"a", "b"}, got)
		// The history records the batch, and replays to the same result.
		hist, err := b.e.ExportHistory(ctx, h.RunID())
		require.NoError(t, err)
		r, err := durable.NewReplayer(wf)
		require.NoError(t, err)
		require.NoError(t, r.ReplayJSON(hist))
	})
}

// injector signals a run right after a worker claimed its workflow task:
// the signal arrives while the task runs.
type injector struct {
	store.Store
	once   sync.Once
	inject func()
}

func (s *injector) ClaimWorkflowTasks(ctx context.Context, p store.ClaimParams) ([]store.WorkflowTask, error) {
	tasks, err := s.Store.ClaimWorkflowTasks(ctx, p)
	if len(tasks) > 0 && len(tasks[0].Inbox) > 0 {
		s.once.Do(s.inject)
	}
	return tasks, err
}

// SignalWithWorkflowTask refuses the fast path (as a store does for a run
// that is not idle), so that signals reach the run through a claimed task,
// after which inject runs.
func (s *injector) SignalWithWorkflowTask(context.Context, store.SignalWithWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	return store.CompleteWorkflowTaskResult{}, store.ErrRunBusy
}

// A signal that arrives while the task that closes the run is running
// makes the close wait: the task runs again with it.
func TestSignalDuringClosingTaskPreventsClose(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		sig := durable.NewSignal[string]("item")
		wf := drainer(sig)
		raw := db(t)
		inj := &injector{Store: raw}
		inj.inject = func() {
			_, err := raw.Signal(context.Background(), store.SignalParams{
				WorkflowID: "late",
				Item:       store.NewInboxItem{Type: durable.EventSignalReceived, Data: []byte(`{"name":"item","input":"late"}`)},
			})
			require.NoError(t, err)
		}
		b := setup(t, setupOpts{db: func(*testing.T) store.Store { return inj }, defs: []durable.Definition{wf}})
		ctx := testContext(t)
		h, err := wf.Start(ctx, b.e, "", &durable.StartOptions{ID: "late"})
		require.NoError(t, err)
		require.NoError(t, sig.Send(ctx, b.e, "late", "first"))
		got, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"first", "late"}, got)
	})
}
