package scaletest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
)

// Three worker processes share the pipeline runs the parent starts (the
// parent is a client: it registers the workflow but runs no worker), while
// every second one of them is SIGKILLed and restarted. The kills lose
// workflow tasks and activities in flight, which come back when their
// leases (1 s and 2 s) expire.
func TestScaleOutWorkerKills(t *testing.T) {
	t.Parallel()
	const (
		workers  = 3
		starters = 16
		timeout  = 150 * time.Second
	)
	b := setup(t)
	ctx := b.ctx
	_, err := b.pool.Exec(ctx, executionsTableSQL)
	require.NoError(t, err)

	p := newPipeline(nil)
	e, err := durable.New(b.st, &durable.Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	e.MustRegister(p.defs...)

	arg := workerArg{Record: true, PoolConns: 5, WorkflowTasks: 16, Activities: 32, WorkflowTaskTimeout: time.Second}
	procs := make([]*child, workers)
	spawned := 0
	spawn := func(i int) {
		spawned++
		procs[i] = startChild(t, fmt.Sprintf("worker-%d-%d", i, spawned), arg.env(b.schema))
	}
	for i := range procs {
		spawn(i)
	}

	workflowID := func(n int) string { return fmt.Sprintf("scale-%05d", n) }
	started := make(chan error, 1)
	startsExited := make(chan struct{})
	t.Cleanup(func() { <-startsExited }) // before the store closes
	go func() {
		defer close(startsExited)
		var wg sync.WaitGroup
		errs := make(chan error, starters)
		for s := range starters {
			wg.Go(func() {
				for n := s; n < scaleWorkflows; n += starters {
					if _, err := p.wf.Start(ctx, e, n, &durable.StartOptions{ID: workflowID(n)}); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		started <- <-errs // nil when every start succeeded
	}()

	// Kill and restart one worker a second until every run is closed.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	begin, lastKill, kills := time.Now(), time.Now(), 0
	startsDone := false
	for {
		select {
		case err := <-started:
			require.NoError(t, err, "start workflows")
			startsDone = true
		case <-tick.C:
		}
		for i, c := range procs {
			select {
			case <-c.exited:
				t.Fatalf("worker %d exited by itself (%v); stderr:\n%s", i, c.err, c.stderrTail(4096))
			default:
			}
		}
		if time.Since(lastKill) >= time.Second {
			victim := kills % workers
			procs[victim].kill()
			spawn(victim)
			kills++
			lastKill = time.Now()
		}
		closed := closedRuns(t, b.pool)
		if startsDone && closed == scaleWorkflows {
			break
		}
		require.Less(t, time.Since(begin), timeout, "%d of %d runs closed after %d kills", closed, scaleWorkflows, kills)
	}
	t.Logf("%d runs closed in %v with %d worker kills", scaleWorkflows, time.Since(begin).Round(time.Millisecond), kills)
	for _, c := range procs {
		require.NoError(t, c.stop(t, 20*time.Second), "stop %s", c.name)
	}

	executions := executionsByKey(t, b.pool)
	failures := checkRuns(ctx, scaleWorkflows, func(ctx context.Context, n int) (timedOut int, err error) {
		return checkPipelineRun(ctx, e, p, workflowID(n), n, executions)
	})
	require.Empty(t, failures.errs, "%d of %d runs are wrong", failures.failed, scaleWorkflows)
	t.Logf("%d activity attempts timed out after a kill", failures.timedOut)
	require.GreaterOrEqual(t, kills, 3, "the test killed workers while they ran")
	require.Positive(t, failures.timedOut, "kills interrupted activities, which were retried")
}

// closedRuns counts the closed runs of the pool's schema.
func closedRuns(tb testing.TB, pool *pgxpool.Pool) int {
	tb.Helper()
	var n int
	err := pool.QueryRow(context.Background(), `SELECT count(*) FROM keel_runs WHERE status <> 'running'`).Scan(&n)
	require.NoError(tb, err)
	return n
}

// execution is a row of scaletest_executions, grouped: how many times one
// attempt of one activity ran.
type execution struct {
	attempt int
	count   int
}

// executionsByKey reads scaletest_executions by idempotency key.
func executionsByKey(tb testing.TB, pool *pgxpool.Pool) map[string][]execution {
	tb.Helper()
	rows, err := pool.Query(context.Background(), `SELECT idempotency_key, attempt, count(*) FROM scaletest_executions
		GROUP BY idempotency_key, attempt ORDER BY idempotency_key, attempt`)
	require.NoError(tb, err)
	defer rows.Close()
	out := map[string][]execution{}
	for rows.Next() {
		var (
			key string
			ex  execution
		)
		require.NoError(tb, rows.Scan(&key, &ex.attempt, &ex.count))
		out[key] = append(out[key], ex)
	}
	require.NoError(tb, rows.Err())
	return out
}

// runFailures collects what checkRuns found.
type runFailures struct {
	failed   int      // runs that failed their check
	errs     []string // the first errors
	timedOut int
}

// checkRuns calls check for runs 0 to n-1 from a few goroutines and
// collects their errors and timed-out attempts.
func checkRuns(ctx context.Context, n int, check func(ctx context.Context, n int) (timedOut int, err error)) runFailures {
	const parallel = 8
	var (
		mu  sync.Mutex
		out runFailures
		wg  sync.WaitGroup
	)
	for g := range parallel {
		wg.Go(func() {
			for i := g; i < n; i += parallel {
				timedOut, err := check(ctx, i)
				mu.Lock()
				out.timedOut += timedOut
				if err != nil {
					out.failed++
					if len(out.errs) < 20 {
						out.errs = append(out.errs, err.Error())
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// checkPipelineRun checks one pipeline run: completed with the right
// result; its history has one ActivityCompleted per scheduled activity and
// no other activity outcome; every activity ran at most as many times as
// the engine recorded attempts of it (a failed or timed-out attempt is
// recorded before the next one starts, and the completed one is recorded
// with the result), no attempt ran twice, and the attempt that completed
// did run. It returns the number of timed-out attempts.
func checkPipelineRun(ctx context.Context, e *durable.Engine, p *pipeline, workflowID string, n int,
	executions map[string][]execution) (int, error) {
	info, err := e.Describe(ctx, workflowID)
	if err != nil {
		return 0, err
	}
	if info.Status != durable.StatusCompleted {
		return 0, fmt.Errorf("%s: status %s (%s)", workflowID, info.Status, info.LastTaskFailure)
	}
	h, err := p.wf.Handle(ctx, e, workflowID)
	if err != nil {
		return 0, err
	}
	got, err := h.Result(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: result: %w", workflowID, err)
	}
	if got != pipelineResult(n) {
		return 0, fmt.Errorf("%s: result %d, want %d", workflowID, got, pipelineResult(n))
	}
	seqs, err := checkActivityHistory(ctx, e, info.RunID, 3)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", workflowID, err)
	}
	attempts, err := e.ActivityAttempts(ctx, info.RunID)
	if err != nil {
		return 0, err
	}
	timedOut := 0
	for _, seq := range seqs {
		recorded := map[int]string{} // attempt → outcome
		completedAttempt := 0
		for _, a := range attempts {
			if a.Seq != seq {
				continue
			}
			if _, dup := recorded[a.Attempt]; dup {
				return 0, fmt.Errorf("%s seq %d: attempt %d recorded twice", workflowID, seq, a.Attempt)
			}
			recorded[a.Attempt] = a.Outcome
			switch a.Outcome {
			case "completed":
				if completedAttempt != 0 {
					return 0, fmt.Errorf("%s seq %d: attempts %d and %d both completed", workflowID, seq, completedAttempt, a.Attempt)
				}
				completedAttempt = a.Attempt
			case "timed_out":
				timedOut++
			}
		}
		if completedAttempt == 0 {
			return 0, fmt.Errorf("%s seq %d: no completed attempt among %v", workflowID, seq, recorded)
		}
		key := fmt.Sprintf("%s-%d", info.RunID, seq)
		ran, ranCompleted := 0, false
		for _, ex := range executions[key] {
			ran += ex.count
			if ex.count > 1 {
				return 0, fmt.Errorf("%s seq %d: attempt %d ran %d times", workflowID, seq, ex.attempt, ex.count)
			}
			if _, ok := recorded[ex.attempt]; !ok {
				return 0, fmt.Errorf("%s seq %d: attempt %d ran but is not recorded (recorded: %v)", workflowID, seq, ex.attempt, recorded)
			}
			ranCompleted = ranCompleted || ex.attempt == completedAttempt
		}
		if ran > len(recorded) {
			return 0, fmt.Errorf("%s seq %d: %d executions, %d recorded attempts", workflowID, seq, ran, len(recorded))
		}
		if !ranCompleted {
			return 0, fmt.Errorf("%s seq %d: completed attempt %d never ran", workflowID, seq, completedAttempt)
		}
	}
	return timedOut, nil
}

// checkActivityHistory checks that a run's history schedules want
// activities, each with its own seq, and records exactly one
// ActivityCompleted (and no ActivityFailed) for each. It returns the seqs.
func checkActivityHistory(ctx context.Context, e *durable.Engine, runID string, want int) ([]int64, error) {
	h, err := e.GetHistory(ctx, runID)
	if err != nil {
		return nil, err
	}
	var seqs []int64
	completed := map[int64]int{}
	for _, ev := range h.Events {
		var d struct {
			Seq int64 `json:"seq"`
		}
		switch ev.Type {
		case durable.EventActivityScheduled, durable.EventActivityCompleted, durable.EventActivityFailed:
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				return nil, fmt.Errorf("event %d: %w", ev.ID, err)
			}
		}
		switch ev.Type {
		case durable.EventActivityScheduled:
			seqs = append(seqs, d.Seq)
		case durable.EventActivityCompleted:
			completed[d.Seq]++
		case durable.EventActivityFailed:
			return nil, fmt.Errorf("event %d: activity seq %d failed", ev.ID, d.Seq)
		}
	}
	if len(seqs) != want {
		return nil, fmt.Errorf("%d activities scheduled, want %d", len(seqs), want)
	}
	for _, seq := range seqs {
		if completed[seq] != 1 {
			return nil, fmt.Errorf("activity seq %d has %d ActivityCompleted events", seq, completed[seq])
		}
	}
	if sum(completed) != want {
		return nil, fmt.Errorf("ActivityCompleted events %v for scheduled seqs %v", completed, seqs)
	}
	return seqs, nil
}

func sum(m map[int64]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
