package scaletest

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/internal/pgcluster"
)

// outage is how long TestDatabaseRestart keeps the database down.
const outage = 2 * time.Second

// An engine with a worker runs workflows of three activities and two
// durable timers on a PostgreSQL cluster of the test's own; while they run,
// the cluster is stopped (pg_ctl stop -m fast) for two seconds and started
// again. Every run must complete, with the right result and one recorded
// result per activity.
func TestDatabaseRestart(t *testing.T) {
	t.Parallel()
	c := pgcluster.New(t)
	require.NoError(t, c.Start())
	ctx := context.Background()

	cfg, err := pgxpool.ParseConfig(c.URL())
	require.NoError(t, err)
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	st, err := pgstore.New(ctx, pool, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })

	var executed atomic.Int64
	step := durable.NewActivity("restart-step", func(ctx context.Context, n int) (int, error) {
		executed.Add(1)
		return n*3 + 1, nil
	}, pipelineActivityOptions())
	// Pauses differ from run to run, so that when the database stops some
	// runs wait for a timer, some for an activity, and some have closed.
	wf := durable.NewWorkflow("restart", func(ctx durable.Context, n int) (int, error) {
		pauses := []time.Duration{time.Duration(1+n%5) * 200 * time.Millisecond, time.Duration(1+n%3) * 300 * time.Millisecond, 0}
		for i, pause := range pauses {
			var err error
			if n, err = step.Run(ctx, n); err != nil {
				return 0, fmt.Errorf("step %d: %w", i, err)
			}
			if pause > 0 {
				if err := durable.Sleep(ctx, pause); err != nil {
					return 0, err
				}
			}
		}
		return n, nil
	})
	want := func(n int) int {
		for range 3 {
			n = n*3 + 1
		}
		return n
	}
	errorLogs := &errorCounter{}
	e, err := durable.New(st, &durable.Config{
		Logger:              slog.New(errorLogs),
		PollInterval:        100 * time.Millisecond,
		WorkflowTaskTimeout: time.Second,
	})
	require.NoError(t, err)
	e.MustRegister(step, wf)
	e.NewWorker(&durable.WorkerOptions{MaxConcurrentWorkflowTasks: 32, MaxConcurrentActivities: 64})
	require.NoError(t, e.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, e.Stop(stopCtx))
	})

	workflowID := func(n int) string { return fmt.Sprintf("restart-%04d", n) }
	begin := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, restartWorkflows)
	for n := range restartWorkflows {
		wg.Go(func() {
			if _, err := wf.Start(ctx, e, n, &durable.StartOptions{ID: workflowID(n)}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	require.NoError(t, <-errs)

	// Stop the database once two thirds of the activities ran.
	require.Eventually(t, func() bool { return executed.Load() >= restartWorkflows*2 }, time.Minute, 5*time.Millisecond)
	closed := closedRuns(t, pool)
	require.Less(t, closed, restartWorkflows, "runs are under way when the database stops")
	require.NoError(t, c.Stop(pgcluster.Fast))
	stopped, logsBefore := time.Now(), errorLogs.n.Load()
	// The engine noticed, and the outage lasted.
	require.Eventually(t, func() bool {
		return errorLogs.n.Load() > logsBefore && time.Since(stopped) >= outage
	}, time.Minute, 10*time.Millisecond)
	require.NoError(t, c.Start())
	t.Logf("database down for %v with %d of %d runs closed and %d activities run; %d errors logged",
		time.Since(stopped).Round(time.Millisecond), closed, restartWorkflows, executed.Load(), errorLogs.n.Load()-logsBefore)

	require.EventuallyWithT(t, func(c *assert.CollectT) {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM keel_runs WHERE status <> 'running'`).Scan(&n)
		assert.NoError(c, err)
		assert.Equal(c, restartWorkflows, n, "closed runs after the restart")
	}, time.Minute, 50*time.Millisecond)
	t.Logf("%d runs closed %v after their start", restartWorkflows, time.Since(begin).Round(time.Millisecond))

	failures := checkRuns(ctx, restartWorkflows, func(ctx context.Context, n int) (int, error) {
		h, err := wf.Handle(ctx, e, workflowID(n))
		if err != nil {
			return 0, err
		}
		got, err := h.Result(ctx)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", workflowID(n), err)
		}
		if got != want(n) {
			return 0, fmt.Errorf("%s: result %d, want %d", workflowID(n), got, want(n))
		}
		if _, err := checkActivityHistory(ctx, e, h.RunID(), 3); err != nil {
			return 0, fmt.Errorf("%s: %w", workflowID(n), err)
		}
		return 0, nil
	})
	require.Empty(t, failures.errs, "%d of %d runs are wrong", failures.failed, restartWorkflows)
}

// errorCounter is a slog.Handler that counts error records.
type errorCounter struct{ n atomic.Int64 }

func (h *errorCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h *errorCounter) Handle(context.Context, slog.Record) error {
	h.n.Add(1)
	return nil
}
func (h *errorCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *errorCounter) WithGroup(string) slog.Handler      { return h }
