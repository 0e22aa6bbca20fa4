package durable_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
)

func TestUpdates(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		var charged atomic.Int32
		charge := durable.NewActivity("charge", func(ctx context.Context, n int) (string, error) {
			charged.Add(1)
			return "charged", nil
		}, nil)
		done := durable.NewSignal[string]("done")
		account := durable.NewWorkflow("account", func(ctx durable.Context, _ string) (int, error) {
			total := 0
			durable.SetQueryHandler(ctx, "total", func(_ struct{}) (int, error) { return total, nil })
			durable.SetUpdateHandler(ctx, "add", func(ctx durable.Context, n int) (int, error) {
				total += n
				return total, nil
			}, func(n int) error {
				if n <= 0 {
					return errors.New("amount must be positive")
				}
				return nil
			})
			durable.SetUpdateHandler(ctx, "charge", func(ctx durable.Context, n int) (string, error) {
				// An update may run activities.
				out, err := charge.Run(ctx, n)
				if err == nil {
					total -= n
				}
				return out, err
			}, nil)
			_, err := done.Receive(ctx)
			return total, err
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{charge, account}})
		ctx := testContext(t)
		h, err := account.Start(ctx, b.e, "", &durable.StartOptions{ID: "acct"})
		require.NoError(t, err)
		update := func(name string, arg any, id string) (json.RawMessage, error) {
			raw, err := json.Marshal(arg)
			require.NoError(t, err)
			return b.e.Update(ctx, "acct", name, raw, &durable.UpdateOptions{UpdateID: id})
		}

		out, err := update("add", 5, "u1")
		require.NoError(t, err)
		require.JSONEq(t, "5", string(out))

		// The same update ID is applied once and answered again.
		out, err = update("add", 5, "u1")
		require.NoError(t, err)
		require.JSONEq(t, "5", string(out))

		// A rejected update leaves no trace in history.
		before := eventTypes(t, b.e, h.RunID())
		_, err = update("add", -3, "u2")
		require.ErrorIs(t, err, durable.ErrUpdateRejected)
		require.ErrorContains(t, err, "amount must be positive")
		require.Equal(t, before, eventTypes(t, b.e, h.RunID()))

		// Wrong argument types are refused the same way.
		_, err = update("add", "five", "u3")
		require.ErrorIs(t, err, durable.ErrUpdateRejected)
		_, err = update("nope", 1, "u4")
		require.ErrorIs(t, err, durable.ErrUnknownUpdate)

		out, err = update("charge", 2, "u5")
		require.NoError(t, err)
		require.JSONEq(t, `"charged"`, string(out))
		require.Equal(t, int32(1), charged.Load())

		total, err := b.e.Query(ctx, "acct", "total", json.RawMessage(`{}`))
		require.NoError(t, err)
		require.JSONEq(t, "3", string(total))

		types := eventTypes(t, b.e, h.RunID())
		require.Equal(t, 2, countOf(types, durable.EventUpdateAccepted))
		require.Equal(t, 2, countOf(types, durable.EventUpdateCompleted))

		require.NoError(t, done.Send(ctx, b.e, "acct", "ok"))
		n, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, 3, n)
	})
}

func TestUpdateSurvivesWorkerRestart(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		release := make(chan struct{})
		var attempts atomic.Int32
		slow := durable.NewActivity("slow", func(ctx context.Context, _ string) (string, error) {
			if attempts.Add(1) == 1 {
				// The first attempt's worker stops while it runs.
				select {
				case <-release:
				case <-ctx.Done():
					return "", ctx.Err()
				}
			}
			return "finished", nil
		}, &durable.ActivityOptions{RetryPolicy: durable.RetryPolicy{InitialInterval: 10 * time.Millisecond}})
		stop := durable.NewSignal[string]("stop")
		wf := durable.NewWorkflow("updatable", func(ctx durable.Context, _ string) (string, error) {
			durable.SetUpdateHandler(ctx, "work", func(ctx durable.Context, _ string) (string, error) {
				return slow.Run(ctx, "")
			}, nil)
			return stop.Receive(ctx)
		})
		defs := []durable.Definition{slow, wf}
		first := setup(t, setupOpts{db: db, defs: defs})
		ctx := testContext(t)
		_, err := wf.Start(ctx, first.e, "", &durable.StartOptions{ID: "upd"})
		require.NoError(t, err)

		type answer struct {
			out json.RawMessage
			err error
		}
		answers := make(chan answer, 1)
		go func() {
			out, err := first.e.Update(ctx, "upd", "work", json.RawMessage(`""`), &durable.UpdateOptions{UpdateID: "w1"})
			answers <- answer{out, err}
		}()
		waitFor(t, "the update's activity to start", func() bool { return attempts.Load() == 1 })
		// The worker stops while the update waits on its activity.
		stopCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, first.e.Stop(stopCtx), context.DeadlineExceeded)
		defer close(release)

		second := setup(t, setupOpts{db: db, defs: defs})
		out, err := second.e.Update(ctx, "upd", "work", json.RawMessage(`""`), &durable.UpdateOptions{UpdateID: "w1"})
		require.NoError(t, err)
		require.JSONEq(t, `"finished"`, string(out))
		// The first caller, still waiting through the first engine's store,
		// gets the same answer.
		a := <-answers
		require.NoError(t, a.err)
		require.JSONEq(t, `"finished"`, string(a.out))
		info, err := second.e.Describe(ctx, "upd")
		require.NoError(t, err)
		require.Equal(t, 1, countOf(eventTypes(t, second.e, info.RunID), durable.EventUpdateCompleted))
		require.NoError(t, stop.Send(ctx, second.e, "upd", "bye"))
	})
}
