package durable

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/sqlitestore"
)

// getRunCountingStore counts reads of a run by ID.
type getRunCountingStore struct {
	store.Store
	getRuns atomic.Int64
}

func (s *getRunCountingStore) GetRun(ctx context.Context, runID string) (store.Run, error) {
	s.getRuns.Add(1)
	return s.Store.GetRun(ctx, runID)
}

// TestResultOfARunCachedHereReadsNothing checks that Result waits for a run
// cached in this process without reading it: the close committed here
// hands it the result.
func TestResultOfARunCachedHereReadsNothing(t *testing.T) {
	t.Parallel()
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "keel.db"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	counting := &getRunCountingStore{Store: st}
	e, err := New(counting, &Config{PollInterval: time.Hour})
	require.NoError(t, err)
	proceed := NewSignal[string]("proceed")
	wf := NewWorkflow("waits", func(ctx Context, _ struct{}) (string, error) {
		return proceed.Receive(ctx)
	})
	e.MustRegister(wf)
	e.NewWorker(nil)
	require.NoError(t, e.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, e.Stop(context.Background())) })
	ctx := t.Context()

	// The first task runs in Start and leaves the run cached, waiting for
	// the signal.
	h, err := wf.Start(ctx, e, struct{}{}, nil)
	require.NoError(t, err)
	_, cached := e.cache.queueOf(h.RunID())
	require.True(t, cached)
	got := make(chan string, 1)
	go func() {
		v, err := h.Result(ctx)
		if err != nil {
			v = "error: " + err.Error()
		}
		got <- v
	}()
	// Result registers its waiter and looks the run up in the cache in
	// the next statement; the signal's task, which takes the run out of
	// the cache, starts after both.
	require.Eventually(t, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.waiters[h.RunID()]) > 0
	}, 10*time.Second, time.Millisecond)
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, proceed.Send(ctx, e, h.WorkflowID(), "now"))
	require.Equal(t, "now", <-got)
	require.Zero(t, counting.getRuns.Load(), "reads of the run while waiting for its result")
}
