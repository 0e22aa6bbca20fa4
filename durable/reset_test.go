package durable_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
)

func TestResetReusesHistoryAndReExecutesTheRest(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		var lookups atomic.Int32
		var mu sync.Mutex
		var prompts []string
		lookup := durable.NewActivity("lookup", func(ctx context.Context, id string) (string, error) {
			lookups.Add(1)
			return "customer " + id, nil
		}, nil)
		model := durable.NewActivity("model", func(ctx context.Context, prompt string) (string, error) {
			mu.Lock()
			prompts = append(prompts, prompt)
			mu.Unlock()
			return "answer to " + prompt, nil
		}, nil)
		var instructions atomic.Value
		instructions.Store("be terse")
		agentish := durable.NewWorkflow("agentish", func(ctx durable.Context, id string) (string, error) {
			who, err := lookup.Run(ctx, id)
			if err != nil {
				return "", err
			}
			return model.Run(ctx, instructions.Load().(string)+": "+who)
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{lookup, model, agentish}})
		ctx := testContext(t)
		first, err := agentish.Run(ctx, b.e, "42", &durable.StartOptions{ID: "agentish"})
		require.NoError(t, err)
		require.Equal(t, "answer to be terse: customer 42", first)
		info, err := b.e.Describe(ctx, "agentish")
		require.NoError(t, err)
		hist, err := b.e.GetHistory(ctx, info.RunID)
		require.NoError(t, err)
		var lookupDone int64
		for _, ev := range hist.Events {
			if ev.Type == durable.EventActivityCompleted && lookupDone == 0 {
				lookupDone = ev.ID
			}
		}
		require.NotZero(t, lookupDone)

		// Bad reset points are refused and create nothing.
		_, err = b.e.Reset(ctx, info.RunID, durable.ResetOptions{EventID: lookupDone - 1})
		require.ErrorIs(t, err, durable.ErrInvalidResetPoint, "a command is not a reset point")
		_, err = b.e.Reset(ctx, info.RunID, durable.ResetOptions{EventID: 999})
		require.ErrorIs(t, err, durable.ErrInvalidResetPoint)

		// The prompt is fixed; the run is reset to just after the lookup.
		instructions.Store("be kind")
		reset, err := b.e.Reset(ctx, info.RunID, durable.ResetOptions{EventID: lookupDone})
		require.NoError(t, err)
		require.Equal(t, "agentish", reset.WorkflowID)
		require.NotEqual(t, info.RunID, reset.RunID)
		out, err := b.e.Result(ctx, reset.RunID)
		require.NoError(t, err)
		require.JSONEq(t, `"answer to be kind: customer 42"`, string(out))
		require.Equal(t, int32(1), lookups.Load(), "the lookup is not run again")
		require.Equal(t, []string{"be terse: customer 42", "be kind: customer 42"}, prompts)

		// The new run's history starts with the old one's, up to the point.
		newHist, err := b.e.GetHistory(ctx, reset.RunID)
		require.NoError(t, err)
		for i := int64(1); i < lookupDone; i++ {
			require.Equal(t, hist.Events[i].Type, newHist.Events[i].Type)
		}
		require.Contains(t, eventTypes(t, b.e, reset.RunID), durable.EventWorkflowReset)
	})
}

func TestResetReschedulesPendingActivities(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		release := make(chan struct{})
		var calls atomic.Int32
		slow := durable.NewActivity("slow", func(ctx context.Context, _ string) (string, error) {
			if calls.Add(1) == 1 {
				<-release
			}
			return "done", nil
		}, nil)
		sig := durable.NewSignal[string]("go")
		wf := durable.NewWorkflow("pending", func(ctx durable.Context, _ string) (string, error) {
			f := slow.Start(ctx, "")
			v, err := sig.Receive(ctx)
			if err != nil {
				return "", err
			}
			r, err := f.Get(ctx)
			return v + " " + r, err
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{slow, wf}})
		ctx := testContext(t)
		h, err := wf.Start(ctx, b.e, "", &durable.StartOptions{ID: "pending"})
		require.NoError(t, err)
		require.NoError(t, sig.Send(ctx, b.e, "pending", "signalled"))
		var signalEvent int64
		waitFor(t, "the signal in history", func() bool {
			hist, err := b.e.GetHistory(ctx, h.RunID())
			require.NoError(t, err)
			for _, ev := range hist.Events {
				if ev.Type == durable.EventSignalReceived {
					signalEvent = ev.ID
				}
			}
			return signalEvent != 0
		})

		// A fork at the signal: the slow activity was pending there, so the
		// new run schedules it again; the old run goes on unchanged.
		fork, err := b.e.Reset(ctx, h.RunID(), durable.ResetOptions{EventID: signalEvent, WorkflowID: "pending-fork"})
		require.NoError(t, err)
		out, err := b.e.Result(ctx, fork.RunID)
		require.NoError(t, err)
		require.JSONEq(t, `"signalled done"`, string(out))
		require.Equal(t, int32(2), calls.Load())
		info, err := b.e.Describe(ctx, "pending")
		require.NoError(t, err)
		require.Equal(t, durable.StatusRunning, info.Status, "a fork leaves the old run alone")
		close(release)
		got, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, "signalled done", got)
	})
}
