package scaletest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/pgstore"
)

// BenchmarkW2Throughput is workload W2 (2,000 three-activity workflows
// started by 64 concurrent callers, each waiting for its result before it
// starts the next) on PostgreSQL, with the workers in 1, 2 and 4 worker
// processes and the callers in the benchmark's process, which runs no
// worker:
//
//	go test ./internal/scaletest -run '^$' -bench W2 -benchtime 1x
func BenchmarkW2Throughput(b *testing.B) {
	for _, workers := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("processes=%d", workers), func(b *testing.B) { benchW2(b, workers) })
	}
}

func benchW2(b *testing.B, workers int) {
	const workflows, callers = 2000, 64
	tb := setup(b)
	ctx := tb.ctx
	clientPool := tb.morePool(b, 16, nil)
	st, err := pgstore.New(ctx, clientPool, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	e, err := durable.New(st, &durable.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	p := newPipeline(nil)
	e.MustRegister(p.defs...)

	arg := workerArg{PoolConns: 10, WorkflowTasks: 64, Activities: 256, WorkflowTaskTimeout: 10 * time.Second}
	procs := make([]*child, workers)
	for i := range procs {
		procs[i] = startChild(b, fmt.Sprintf("bench-worker-%d", i), arg.env(tb.schema))
	}
	for _, c := range procs {
		c.expect(b, "ready", time.Minute)
	}
	w := newRunWaiter(clientPool)
	defer w.close()

	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for s := range callers {
			wg.Go(func() {
				for n := s; n < workflows; n += callers {
					h, err := p.wf.Start(ctx, e, n, &durable.StartOptions{ID: fmt.Sprintf("w2-%d-%d", i, n)})
					if err != nil {
						errs <- err
						return
					}
					got, err := w.wait(ctx, h.RunID())
					if err == nil && got != pipelineResult(n) {
						err = fmt.Errorf("run %s: result %d, want %d", h.RunID(), got, pipelineResult(n))
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		total += time.Since(t0)
	}
	b.StopTimer()
	b.ReportMetric(float64(workflows*b.N)/total.Seconds(), "workflows/s")
	b.ReportMetric(float64(3*workflows*b.N)/total.Seconds(), "activities/s")
	b.ReportMetric(float64(runtime.NumCPU()), "cores")

	// What the workers sent the database, per workflow.
	var stats workerStats
	for _, c := range procs {
		if err := c.stop(b, 20*time.Second); err != nil {
			b.Fatalf("stop %s: %v", c.name, err)
		}
		for line := range c.lines {
			if js, ok := strings.CutPrefix(line, "stats "); ok {
				var s workerStats
				if err := json.Unmarshal([]byte(js), &s); err != nil {
					b.Fatal(err)
				}
				stats.RoundTrips += s.RoundTrips
				stats.WorkflowClaims += s.WorkflowClaims
				stats.EmptyWorkflowClaims += s.EmptyWorkflowClaims
				stats.ActivityClaims += s.ActivityClaims
				stats.EmptyActivityClaims += s.EmptyActivityClaims
			}
		}
	}
	per := func(n int64) float64 { return float64(n) / float64(workflows*b.N) }
	b.ReportMetric(per(stats.RoundTrips), "roundtrips/wf")
	b.ReportMetric(per(stats.WorkflowClaims+stats.ActivityClaims), "claims/wf")
	b.ReportMetric(per(stats.EmptyWorkflowClaims+stats.EmptyActivityClaims), "empty-claims/wf")
}

// runWaiter waits for runs to close with one query every few milliseconds
// for all the runs waited for. (Handle.Result in a process without the
// run's worker polls GetRun once per run every Config.PollInterval; 64
// callers doing that would load the database more than the workload.)
type runWaiter struct {
	pool *pgxpool.Pool

	mu      sync.Mutex
	waiting map[string]chan runOutcome
	stop    chan struct{}
	done    chan struct{}
}

type runOutcome struct {
	status string
	result []byte
	err    error
}

func newRunWaiter(pool *pgxpool.Pool) *runWaiter {
	w := &runWaiter{pool: pool, waiting: map[string]chan runOutcome{}, stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w
}

func (w *runWaiter) close() {
	close(w.stop)
	<-w.done
}

// wait returns the result of a completed run.
func (w *runWaiter) wait(ctx context.Context, runID string) (int, error) {
	ch := make(chan runOutcome, 1)
	w.mu.Lock()
	w.waiting[runID] = ch
	w.mu.Unlock()
	select {
	case o := <-ch:
		if o.err != nil {
			return 0, o.err
		}
		if o.status != string(durable.StatusCompleted) {
			return 0, fmt.Errorf("run %s: %s", runID, o.status)
		}
		var n int
		err := json.Unmarshal(o.result, &n)
		return n, err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (w *runWaiter) loop() {
	defer close(w.done)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
		w.mu.Lock()
		ids := make([]string, 0, len(w.waiting))
		for id := range w.waiting {
			ids = append(ids, id)
		}
		w.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		rows, err := w.pool.Query(context.Background(),
			`SELECT run_id, status, result FROM keel_runs WHERE run_id = ANY($1) AND status <> 'running'`, ids)
		var closed []string
		outcomes := map[string]runOutcome{}
		if err == nil {
			for rows.Next() {
				var (
					id string
					o  runOutcome
				)
				if err = rows.Scan(&id, &o.status, &o.result); err != nil {
					break
				}
				closed = append(closed, id)
				outcomes[id] = o
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
		w.mu.Lock()
		if err != nil {
			for id, ch := range w.waiting {
				ch <- runOutcome{err: err}
				delete(w.waiting, id)
			}
		}
		for _, id := range closed {
			if ch, ok := w.waiting[id]; ok {
				ch <- outcomes[id]
				delete(w.waiting, id)
			}
		}
		w.mu.Unlock()
	}
}
