package durable_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store"
)

// claimCountingStore counts activity claims and passes the store's
// notifications through, so the engine sees a store that notifies.
type claimCountingStore struct {
	store.Store
	activityClaims atomic.Int64
}

func (s *claimCountingStore) ClaimActivityTasks(ctx context.Context, p store.ClaimParams) ([]store.ActivityTask, error) {
	s.activityClaims.Add(1)
	return s.Store.ClaimActivityTasks(ctx, p)
}

func (s *claimCountingStore) Notifications(ctx context.Context) <-chan string {
	return s.Store.(interface {
		Notifications(context.Context) <-chan string
	}).Notifications(ctx)
}

// TestTimersDoNotWakeActivityPollersOnANotifyingStore checks that a timer
// falling due wakes only the workflow task pollers when the store notifies
// of what became claimable (PostgreSQL): a workflow that only sleeps makes
// no activity claim, where waking every poller at each timer made one per
// timer.
func TestTimersDoNotWakeActivityPollersOnANotifyingStore(t *testing.T) {
	t.Parallel()
	pg := postgresDB(t)
	var counting *claimCountingStore
	sleeps := durable.NewWorkflow("sleeps", func(ctx durable.Context, n int) (int, error) {
		for range n {
			if err := durable.Sleep(ctx, 20*time.Millisecond); err != nil {
				return 0, err
			}
		}
		return n, nil
	})
	b := setup(t, setupOpts{
		db: func(t *testing.T) store.Store {
			counting = &claimCountingStore{Store: pg(t)}
			return counting
		},
		// No poll falls within the test: every claim is a wake-up's.
		cfg:  &durable.Config{PollInterval: time.Hour},
		defs: []durable.Definition{sleeps},
	})
	ctx := testContext(t)
	waitFor(t, "the activity poller's first claim", func() bool { return counting.activityClaims.Load() > 0 })
	before := counting.activityClaims.Load()

	h, err := sleeps.Start(ctx, b.e, 5, nil)
	require.NoError(t, err)
	got, err := h.Result(ctx)
	require.NoError(t, err)
	require.Equal(t, 5, got)
	require.Equal(t, before, counting.activityClaims.Load(), "activity claims made while only timers fell due")
}
