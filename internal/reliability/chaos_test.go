package reliability_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/internal/pgcluster"
	"github.com/keelhq/keel/internal/reliability"
)

// chaosSignal is the value of signal k to chaos workflow n.
func chaosSignal(n, k int) int { return n%7 + 10*k + 1 }

func chaosStep(n int) int { return (n*3 + 1) % 1_000_003 }

// chaosResult is what chaos workflow n must return.
func chaosResult(n int) int {
	return chaosStep(chaosStep(n) + chaosSignal(n, 0) + chaosSignal(n, 1))
}

func chaosID(n int) string { return fmt.Sprintf("chaos-%05d", n) }

// chaosFigures are what the chaos test measured.
type chaosFigures struct {
	outages, outagesInFlight int
	downtime                 time.Duration
	errorsLogged             int64
	clientRetries            atomic.Int64
	executions               atomic.Int64
}

// TestPostgresChaos runs workflows that each run two activities, sleep on
// two durable timers and wait for two signals, on a PostgreSQL cluster of
// the test's own, and stops the server for 0 to 2 s (fast or immediate
// shutdown, at random) again and again while they run. The client retries
// what fails during an outage, signals with request IDs. Every run must
// complete with the exact result, one run per workflow ID, and no history
// may hold an event twice.
func TestPostgresChaos(t *testing.T) {
	t.Parallel()
	n := reliability.Pick(500, 10_000)
	gapMin, gapMax := reliability.Pick(2*time.Second, 5*time.Second), reliability.Pick(5*time.Second, 40*time.Second)
	startSpread := reliability.Pick(12*time.Second, 10*time.Minute) // starts spread over this long
	deadline := reliability.Pick(5*time.Minute, 2*time.Hour)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 2)) //nolint:gosec // outage timing, not security

	c := pgcluster.New(t)
	require.NoError(t, c.Start())
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(c.URL())
	require.NoError(t, err)
	cfg.MaxConns = 20
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	st, err := pgstore.New(ctx, pool, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })

	var fig chaosFigures
	step := durable.NewActivity("chaos-step", func(ctx context.Context, n int) (int, error) {
		fig.executions.Add(1)
		return chaosStep(n), nil
	}, &durable.ActivityOptions{
		StartToCloseTimeout: 5 * time.Second,
		RetryPolicy:         durable.RetryPolicy{InitialInterval: 100 * time.Millisecond, MaximumInterval: time.Second},
	})
	bump := durable.NewSignal[int]("bump")
	wf := durable.NewWorkflow("chaos", func(ctx durable.Context, n int) (int, error) {
		acc, err := step.Run(ctx, n)
		if err != nil {
			return 0, err
		}
		if err := durable.Sleep(ctx, time.Duration(100+n%400)*time.Millisecond); err != nil {
			return 0, err
		}
		for range 2 {
			v, err := bump.Receive(ctx)
			if err != nil {
				return 0, err
			}
			acc += v
		}
		if acc, err = step.Run(ctx, acc); err != nil {
			return 0, err
		}
		if err := durable.Sleep(ctx, time.Duration(50+n%200)*time.Millisecond); err != nil {
			return 0, err
		}
		return acc, nil
	})
	errorLogs := &errorCounter{}
	e, err := durable.New(st, &durable.Config{
		Logger:              slog.New(errorLogs),
		PollInterval:        200 * time.Millisecond,
		WorkflowTaskTimeout: 2 * time.Second,
	})
	require.NoError(t, err)
	e.MustRegister(step, wf)
	e.NewWorker(&durable.WorkerOptions{MaxConcurrentWorkflowTasks: 32, MaxConcurrentActivities: 64})
	require.NoError(t, e.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, e.Stop(stopCtx))
	})

	// retry repeats op until it succeeds: what a client does in an outage.
	retry := func(what string, op func() error) error {
		for {
			err := op()
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return fmt.Errorf("%s: %w (last error: %w)", what, ctx.Err(), err)
			}
			fig.clientRetries.Add(1)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	closed := func() (int, error) {
		var closed int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM keel_runs WHERE status <> 'running'`).Scan(&closed)
		return closed, err
	}

	// The outages.
	chaosCtx, stopChaos := context.WithCancel(ctx)
	chaosDone := make(chan error, 1)
	go func() {
		chaosDone <- func() error {
			for {
				gap := gapMin + time.Duration(rng.Int64N(int64(gapMax-gapMin)))
				select {
				case <-chaosCtx.Done():
					return nil
				case <-time.After(gap):
				}
				mode := pgcluster.Fast
				if rng.IntN(2) == 0 {
					mode = pgcluster.Immediate
				}
				before, _ := closed()
				down := time.Now()
				if err := c.Stop(mode); err != nil {
					return err
				}
				select { // the outage
				case <-ctx.Done():
				case <-time.After(time.Duration(rng.Int64N(int64(2 * time.Second)))):
				}
				if err := c.Start(); err != nil {
					return err
				}
				fig.outages++
				fig.downtime += time.Since(down)
				if before < n {
					fig.outagesInFlight++
				}
			}
		}()
	}()

	// The client: starts spread over startSpread, each followed by its two
	// signals.
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		errs     []error
		starters = make(chan int)
	)
	for range 16 {
		wg.Go(func() {
			for i := range starters {
				err := retry("start "+chaosID(i), func() error {
					_, err := wf.Start(ctx, e, i, &durable.StartOptions{ID: chaosID(i), IDReusePolicy: durable.RejectDuplicate})
					if errors.Is(err, durable.ErrWorkflowIDInUse) {
						return nil // started by an earlier attempt that seemed to fail, and closed since
					}
					return err
				})
				for k := range 2 {
					if err != nil {
						break
					}
					payload, _ := json.Marshal(chaosSignal(i, k))
					err = retry(fmt.Sprintf("signal %d to %s", k, chaosID(i)), func() error {
						return e.Signal(ctx, chaosID(i), "bump", payload, &durable.SignalOptions{RequestID: fmt.Sprintf("bump-%d-%d", i, k)})
					})
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	begin := time.Now()
	for i := range n {
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(begin.Add(startSpread * time.Duration(i) / time.Duration(n)))):
		}
		starters <- i
	}
	close(starters)
	wg.Wait()
	require.NoError(t, errors.Join(errs...))

	for {
		got, err := closed()
		if err == nil && got == n {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d runs closed when the test's time ran out (last error: %v)", got, n, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	elapsed := time.Since(begin)
	stopChaos()
	require.NoError(t, <-chaosDone)
	fig.errorsLogged = errorLogs.n.Load()
	require.Positive(t, fig.outagesInFlight, "an outage happened while runs were in flight")

	// One run per workflow ID, and no event twice in any history: in this
	// workload every event of a run differs from the others.
	var dupRuns, dupEvents int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT workflow_id FROM keel_runs
		GROUP BY workflow_id HAVING count(*) > 1) d`).Scan(&dupRuns))
	require.Zero(t, dupRuns, "workflow IDs with more than one run")
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT run_id FROM keel_events
		GROUP BY run_id, type, data HAVING count(*) > 1) d`).Scan(&dupEvents))
	require.Zero(t, dupEvents, "events recorded twice")

	failures := checkChaosRuns(ctx, e, wf, n)
	require.Empty(t, failures, "%d of %d runs are wrong", len(failures), n)
	t.Logf("Postgres chaos (seed %d): %d workflows exact in %v; %d outages (%d with runs in flight), %v down in all; "+
		"%d activity executions for %d activities; %d client retries; %d engine errors logged",
		seed, n, elapsed.Round(time.Second), fig.outages, fig.outagesInFlight, fig.downtime.Round(time.Millisecond),
		fig.executions.Load(), 2*n, fig.clientRetries.Load(), fig.errorsLogged)
}

// checkChaosRuns checks every chaos run's result and history, and returns
// the first failures.
func checkChaosRuns(ctx context.Context, e *durable.Engine, wf *durable.Workflow[int, int], n int) []string {
	var (
		mu       sync.Mutex
		failures []string
		wg       sync.WaitGroup
		next     atomic.Int64
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, err.Error())
		}
	}
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := checkChaosRun(ctx, e, wf, i); err != nil {
					fail(fmt.Errorf("%s: %w", chaosID(i), err))
				}
			}
		})
	}
	wg.Wait()
	return failures
}

func checkChaosRun(ctx context.Context, e *durable.Engine, wf *durable.Workflow[int, int], i int) error {
	h, err := wf.Handle(ctx, e, chaosID(i))
	if err != nil {
		return err
	}
	got, err := h.Result(ctx)
	if err != nil {
		return err
	}
	if want := chaosResult(i); got != want {
		return fmt.Errorf("result %d, want %d", got, want)
	}
	hist, err := e.GetHistory(ctx, h.RunID())
	if err != nil {
		return err
	}
	count := map[string]int{}
	signals := map[int]int{}
	for _, ev := range hist.Events {
		d, err := ev.Details()
		if err != nil {
			return err
		}
		count[ev.Type]++
		if ev.Type == durable.EventSignalReceived {
			var v int
			if err := json.Unmarshal(d.Input, &v); err != nil {
				return err
			}
			signals[v]++
		}
	}
	for typ, want := range map[string]int{
		durable.EventActivityScheduled: 2, durable.EventActivityCompleted: 2,
		durable.EventTimerStarted: 2, durable.EventTimerFired: 2,
		durable.EventSignalReceived: 2, durable.EventWorkflowCompleted: 1,
	} {
		if count[typ] != want {
			return fmt.Errorf("%d %s events, want %d", count[typ], typ, want)
		}
	}
	for k := range 2 {
		if signals[chaosSignal(i, k)] != 1 {
			return fmt.Errorf("signal %d received %d times", k, signals[chaosSignal(i, k)])
		}
	}
	return nil
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
