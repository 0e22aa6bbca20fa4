package durable_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
)

func TestSignalWithStart(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		note := durable.NewSignal[string]("note")
		collect := durable.NewWorkflow("collect", func(ctx durable.Context, want int) (string, error) {
			var got []string
			for range want {
				s, err := note.Receive(ctx)
				if err != nil {
					return "", err
				}
				got = append(got, s)
			}
			return strings.Join(got, ","), nil
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{collect}})
		ctx := testContext(t)
		opts := &durable.StartOptions{ID: "inbox-7"}

		h1, err := durable.SignalWithStart(ctx, b.e, collect, 2, note, "first", opts)
		require.NoError(t, err)
		require.True(t, h1.Created(), "no run was running: one is started")
		h2, err := durable.SignalWithStart(ctx, b.e, collect, 2, note, "second", opts)
		require.NoError(t, err)
		require.False(t, h2.Created(), "the running run is signalled, not a second one")
		require.Equal(t, h1.RunID(), h2.RunID())
		out, err := h1.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, "first,second", out)

		// The run closed: the next call starts a new run with its signal.
		h3, err := durable.SignalWithStart(ctx, b.e, collect, 1, note, "third", opts)
		require.NoError(t, err)
		require.NotEqual(t, h1.RunID(), h3.RunID())
		out, err = h3.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, "third", out)

		_, err = b.e.SignalWithStart(ctx, "collect", nil, "note", nil, nil)
		require.ErrorContains(t, err, "needs StartOptions.ID")
	})
}

func TestSignalRequestIDAppliedOnce(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		bump := durable.NewSignal[int]("bump")
		stop := durable.NewSignal[struct{}]("stop")
		counter := durable.NewWorkflow("counter", func(ctx durable.Context, _ int) (int, error) {
			total := 0
			for {
				sel := durable.NewSelector(ctx)
				done := false
				sel.AddSignal(bump, func() {
					v, _, _ := bump.TryReceive(ctx)
					total += v
				})
				sel.AddSignal(stop, func() { done = true })
				if err := sel.Select(ctx); err != nil {
					return 0, err
				}
				if done {
					return total, nil
				}
			}
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{counter}})
		ctx := testContext(t)
		h, err := counter.Start(ctx, b.e, 0, &durable.StartOptions{ID: "counter"})
		require.NoError(t, err)
		for range 3 { // a client retrying the same request
			require.NoError(t, b.e.Signal(ctx, "counter", "bump", []byte(`5`), &durable.SignalOptions{RequestID: "req-1"}))
		}
		require.NoError(t, b.e.Signal(ctx, "counter", "bump", []byte(`1`), &durable.SignalOptions{RequestID: "req-2"}))
		require.NoError(t, stop.Send(ctx, b.e, "counter", struct{}{}))
		got, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, 6, got)
	})
}

// A workflow that closes in its first task still sees the signal it was
// started with: the signal is written with the run, before any task runs.
// The code runs once the start and the signal are both applied, in the
// first task and in every replay.
func TestSignalWithStartSignalSeenByFirstTask(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		note := durable.NewSignal[string]("note")
		// peek closes in its first task; with a signal, it first sleeps,
		// so that a replay that ran the code on the start alone would
		// issue another command than the history holds.
		peek := durable.NewWorkflow("peek", func(ctx durable.Context, sleep bool) (string, error) {
			s, ok, err := note.TryReceive(ctx)
			if err != nil {
				return "", err
			}
			if !ok {
				return "no signal", nil
			}
			if sleep {
				if err := durable.Sleep(ctx, time.Millisecond); err != nil {
					return "", err
				}
			}
			return s, nil
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{peek}})
		ctx := testContext(t)
		r, err := durable.NewReplayer(peek)
		require.NoError(t, err)
		for i, sleep := range []bool{false, false, true} { // each call closes its run and starts the next
			h, err := durable.SignalWithStart(ctx, b.e, peek, sleep, note, "hello", &durable.StartOptions{ID: "peek"})
			require.NoError(t, err, "call %d", i)
			require.True(t, h.Created(), "call %d", i)
			out, err := h.Result(ctx)
			require.NoError(t, err)
			require.Equal(t, "hello", out, "call %d: the first task saw the signal", i)

			history, err := b.e.ExportHistory(ctx, h.RunID())
			require.NoError(t, err)
			require.NoError(t, r.ReplayJSON(history))
			unmarked := regexp.MustCompile(`,\s*"more": true`).ReplaceAll(history, nil)
			require.NotEqual(t, history, unmarked, "the start event is marked as followed by the signal")
			if sleep {
				require.Error(t, r.ReplayJSON(unmarked), "without the mark, the replay returns instead of sleeping")
			}
		}

		_, err = b.e.SignalWithStart(ctx, "peek", nil, "note", []byte("{"), &durable.StartOptions{ID: "peek"})
		require.ErrorIs(t, err, durable.ErrInvalidPayload)
		_, err = b.e.SignalWithStart(ctx, "peek", nil, "note", make([]byte, 8<<20), &durable.StartOptions{ID: "peek"})
		require.ErrorIs(t, err, durable.ErrPayloadTooLarge)
	})
}
