package durable_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
)

func TestQueryReadsLiveStateAndWritesNothing(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		for _, cacheSize := range []int{0, -1} { // cached, and replayed
			add := durable.NewSignal[int]("add")
			noop := durable.NewActivity("noop", func(ctx context.Context, n int) (int, error) { return n, nil }, nil)
			tally := durable.NewWorkflow("tally", func(ctx durable.Context, target int) (int, error) {
				total, adds := 0, 0
				durable.SetQueryHandler(ctx, "total", func(times int) (int, error) { return total * times, nil })
				durable.SetQueryHandler(ctx, "misbehave", func(struct{}) (int, error) {
					return noop.Run(ctx, 1) // not allowed: a query cannot act
				})
				for total < target {
					n, err := add.Receive(ctx)
					if err != nil {
						return 0, err
					}
					total += n
					adds++
				}
				return adds, nil
			})
			b := setup(t, setupOpts{db: db, cfg: &durable.Config{CacheSize: cacheSize}, defs: []durable.Definition{tally, noop}})
			ctx := testContext(t)
			h, err := tally.Start(ctx, b.e, 10, &durable.StartOptions{ID: "tally"})
			require.NoError(t, err)
			require.NoError(t, add.Send(ctx, b.e, "tally", 3))
			require.NoError(t, add.Send(ctx, b.e, "tally", 4))
			waitFor(t, "both signals to be applied", func() bool {
				return countOf(eventTypes(t, b.e, h.RunID()), durable.EventSignalReceived) == 2
			})
			before, err := b.e.DescribeRun(ctx, h.RunID())
			require.NoError(t, err)

			out, err := b.e.Query(ctx, "tally", "total", json.RawMessage(`2`))
			require.NoError(t, err)
			require.JSONEq(t, `14`, string(out))

			_, err = b.e.Query(ctx, "tally", "no-such-query", nil)
			require.ErrorIs(t, err, durable.ErrUnknownQuery)
			_, err = b.e.Query(ctx, "tally", "total", json.RawMessage(`"two"`))
			require.ErrorContains(t, err, "arguments")
			_, err = b.e.Query(ctx, "tally", "misbehave", json.RawMessage(`{}`))
			require.ErrorContains(t, err, "cannot change the workflow")
			_, err = b.e.Query(ctx, "no-such-workflow", "total", nil)
			require.ErrorIs(t, err, durable.ErrRunNotFound)

			after, err := b.e.DescribeRun(ctx, h.RunID())
			require.NoError(t, err)
			require.Equal(t, before.HistoryLength, after.HistoryLength, "a query writes nothing")

			// The run goes on normally after the queries.
			require.NoError(t, add.Send(ctx, b.e, "tally", 5))
			adds, err := h.Result(ctx)
			require.NoError(t, err)
			require.Equal(t, 3, adds)
			require.Equal(t, 0, countOf(eventTypes(t, b.e, h.RunID()), durable.EventActivityScheduled))
			b.stop(t)
		}
	})
}
