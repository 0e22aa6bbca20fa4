package durable_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
)

func TestPatchOldRunsKeepOldPathNewRunsTakeNew(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		step := func(name string) *durable.Activity[string, string] {
			return durable.NewActivity(name, func(ctx context.Context, in string) (string, error) {
				return in + ">" + name, nil
			}, nil)
		}
		a, b, c, d := step("a"), step("b"), step("c"), step("d")
		next := durable.NewSignal[string]("next")
		acts := []durable.Definition{a, b, c, d}
		// v1: a, wait, b.
		v1 := durable.NewWorkflow("flow", func(ctx durable.Context, in string) (string, error) {
			out, err := a.Run(ctx, in)
			if err != nil {
				return "", err
			}
			if _, err := next.Receive(ctx); err != nil {
				return "", err
			}
			return b.Run(ctx, out)
		})
		// v2 patches both steps: c instead of a, d instead of b.
		v2 := durable.NewWorkflow("flow", func(ctx durable.Context, in string) (string, error) {
			first, second := a, b
			if durable.Patch(ctx, "use-c") {
				first = c
			}
			out, err := first.Run(ctx, in)
			if err != nil {
				return "", err
			}
			if _, err := next.Receive(ctx); err != nil {
				return "", err
			}
			if durable.Patch(ctx, "use-d") {
				second = d
			}
			return second.Run(ctx, out)
		})
		// v3 deprecates the first patch: the old branch is gone.
		v3 := durable.NewWorkflow("flow", func(ctx durable.Context, in string) (string, error) {
			durable.DeprecatePatch(ctx, "use-c")
			out, err := c.Run(ctx, in)
			if err != nil {
				return "", err
			}
			if _, err := next.Receive(ctx); err != nil {
				return "", err
			}
			second := b
			if durable.Patch(ctx, "use-d") {
				second = d
			}
			return second.Run(ctx, out)
		})
		ctx := testContext(t)
		cfg := func() *durable.Config { return &durable.Config{CacheSize: -1} }
		waitStep := func(e *durable.Engine, id string) {
			waitFor(t, id+" to wait for its signal", func() bool {
				info, err := e.Describe(ctx, id)
				require.NoError(t, err)
				return countOf(eventTypes(t, e, info.RunID), durable.EventActivityCompleted) == 1
			})
		}

		// A run started under v1 waits between its steps while v2 ships.
		e1 := setup(t, setupOpts{db: db, cfg: cfg(), defs: append([]durable.Definition{v1}, acts...)})
		_, err := v1.Start(ctx, e1.e, "old", &durable.StartOptions{ID: "old"})
		require.NoError(t, err)
		waitStep(e1.e, "old")
		e1.stop(t)

		e2 := setup(t, setupOpts{db: db, cfg: cfg(), defs: append([]durable.Definition{v2}, acts...)})
		_, err = v2.Start(ctx, e2.e, "new", &durable.StartOptions{ID: "new"})
		require.NoError(t, err)
		waitStep(e2.e, "new")
		require.NoError(t, next.Send(ctx, e2.e, "old", "go"))
		old, err := v2.Handle(ctx, e2.e, "old")
		require.NoError(t, err)
		got, err := old.Result(ctx)
		require.NoError(t, err)
		// Step 1 was already done the old way; step 2 is new code.
		require.Equal(t, "old>a>d", got)
		e2.stop(t)

		// v3 replays the v2 run that recorded "use-c".
		e3 := setup(t, setupOpts{db: db, cfg: cfg(), defs: append([]durable.Definition{v3}, acts...)})
		require.NoError(t, next.Send(ctx, e3.e, "new", "go"))
		h, err := v3.Handle(ctx, e3.e, "new")
		require.NoError(t, err)
		got, err = h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, "new>c>d", got)
		info, err := e3.e.Describe(ctx, "new")
		require.NoError(t, err)
		require.Empty(t, info.LastTaskFailure)
	})
}
