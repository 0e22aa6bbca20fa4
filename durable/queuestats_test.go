package durable_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
)

func TestQueueStats(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		unserved := durable.NewActivity("unserved", func(ctx context.Context, _ string) (string, error) {
			return "", nil
		}, &durable.ActivityOptions{TaskQueue: "nobody-polls-activities"})
		wf := durable.NewWorkflow("waits-for-a-worker", func(ctx durable.Context, _ string) (string, error) {
			return unserved.Run(ctx, "")
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{unserved, wf}})
		ctx := testContext(t)
		// Two runs on a queue no worker polls; one whose activity waits on
		// another.
		for _, id := range []string{"a", "b"} {
			_, err := wf.Start(ctx, b.e, "", &durable.StartOptions{ID: id, TaskQueue: "nobody-polls"})
			require.NoError(t, err)
		}
		_, err := wf.Start(ctx, b.e, "", &durable.StartOptions{ID: "c"})
		require.NoError(t, err)
		var stats []durable.QueueStat
		waitFor(t, "the activity to wait in its queue", func() bool {
			stats, err = b.e.QueueStats(ctx)
			require.NoError(t, err)
			for _, s := range stats {
				if s.TaskQueue == "nobody-polls-activities" && s.Kind == "activity" && s.Ready == 1 {
					return true
				}
			}
			return false
		})
		found := false
		for _, s := range stats {
			if s.TaskQueue == "nobody-polls" {
				found = true
				require.Equal(t, "workflow", s.Kind)
				require.Equal(t, int64(2), s.Ready)
				require.Zero(t, s.Leased)
				require.False(t, s.OldestReady.IsZero())
			}
		}
		require.True(t, found, "%+v", stats)
	})
}
