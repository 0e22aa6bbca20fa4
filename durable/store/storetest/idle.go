package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
)

// IdleStore is a Store that can tell when every run waits for time, which
// durabletest uses to skip time. sqlitestore and pgstore implement it.
type IdleStore interface {
	store.Store
	// Idle reports whether nothing is leased, claimable or due at now, and
	// the earliest moment something is scheduled for (zero if nothing).
	Idle(ctx context.Context, now time.Time) (idle bool, next time.Time, err error)
}

// ExerciseIdle checks a store's Idle. newStore must return a new, empty
// store, closed when the test ends. Subtests run in parallel.
func ExerciseIdle(t *testing.T, newStore func(t *testing.T) IdleStore) {
	t.Helper()
	setup := func(t *testing.T) (*bundle, IdleStore) {
		st := newStore(t)
		return &bundle{ctx: t.Context(), st: st}, st
	}
	requireIdle := func(t *testing.T, st IdleStore, now time.Time, wantIdle bool, wantNext time.Time) {
		t.Helper()
		idle, next, err := st.Idle(t.Context(), now)
		require.NoError(t, err)
		require.Equal(t, wantIdle, idle, "idle at %v", now)
		if wantIdle {
			requireTime(t, wantNext, next, "next wake-up")
		}
	}

	t.Run("Timers", func(t *testing.T) {
		t.Parallel()
		b, st := setup(t)
		requireIdle(t, st, base, true, time.Time{})
		run := b.createRun(t)
		requireIdle(t, st, base, false, time.Time{}) // runnable workflow task
		wt := b.claim(t, run.TaskQueue, base)
		requireIdle(t, st, base, false, time.Time{}) // leased workflow task
		p := params(wt, base)
		p.Events = events(wt.Run.HistoryLen, 2)
		for i, d := range []time.Duration{72 * time.Hour, time.Hour} {
			p.StartTimers = append(p.StartTimers, store.Timer{RunID: run.RunID, Seq: int64(i + 1), FireAt: at(d),
				Item: store.NewInboxItem{Type: "timer_fired", Data: []byte(`{}`)}})
		}
		b.commit(t, p)
		requireIdle(t, st, base, true, at(time.Hour))
		requireIdle(t, st, at(time.Hour), false, time.Time{}) // a timer is due

		queues, err := st.FireTimers(b.ctx, at(time.Hour), 10)
		require.NoError(t, err)
		require.Len(t, queues, 1)
		requireIdle(t, st, at(time.Hour), false, time.Time{}) // its workflow task is runnable
		wt = b.claim(t, run.TaskQueue, at(time.Hour))
		p = params(wt, at(time.Hour))
		p.Events = inboxEvents(wt)
		b.commit(t, p)
		requireIdle(t, st, at(time.Hour), true, at(72*time.Hour))
	})

	t.Run("Activities", func(t *testing.T) {
		t.Parallel()
		b, st := setup(t)
		run := b.createRun(t)
		b.schedule(t, run, base, activity(run, 1, base))
		requireIdle(t, st, base, false, time.Time{}) // a claimable activity
		task := b.claimActivity(t, "act-"+run.RunID, base)
		requireIdle(t, st, base, false, time.Time{}) // a running activity
		require.NoError(t, st.RetryActivityTask(b.ctx, store.RetryActivityTaskParams{
			RunID: run.RunID, Seq: 1, Token: task.Token, Attempt: attempt(task, "failed", "boom", base),
			RetryAt: at(time.Minute), Now: base,
		}))
		requireIdle(t, st, base, true, at(time.Minute)) // only a retry backoff remains
		requireIdle(t, st, at(time.Minute), false, time.Time{})
	})

	t.Run("ClosedRunsAreIdle", func(t *testing.T) {
		t.Parallel()
		b, st := setup(t)
		run := b.createRun(t)
		b.closeRun(t, run, store.StatusCompleted, base)
		requireIdle(t, st, base, true, time.Time{})
	})
}
