package bench

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/keelhq/keel/durable"
)

// The workloads' workflows and activities, registered on every Env.
var (
	// Noop is the no-op activity of W1 and W2: n → n+1.
	Noop = durable.NewActivity("noop", func(ctx context.Context, n int) (int, error) { return n + 1, nil }, nil)

	// ThreeSteps runs Noop three times in sequence: n → n+3 (W1, W2).
	ThreeSteps = durable.NewWorkflow("three-steps", func(ctx durable.Context, n int) (int, error) {
		for range 3 {
			var err error
			if n, err = Noop.Run(ctx, n); err != nil {
				return 0, err
			}
		}
		return n, nil
	})

	// Poke is W3's signal.
	Poke = durable.NewSignal[int]("poke")

	// WaitSignal records a marker (so that a caller can see that its first
	// task committed) and returns the first Poke it receives (W3).
	WaitSignal = durable.NewWorkflow("wait-signal", func(ctx durable.Context, _ int) (int, error) {
		if _, err := durable.SideEffect(ctx, func() int { return 1 }); err != nil {
			return 0, err
		}
		return Poke.Receive(ctx)
	})

	// Sleep100 sleeps 100 ms and returns when it meant to wake and when it
	// woke (W4).
	Sleep100 = durable.NewWorkflow("sleep-100ms", func(ctx durable.Context, _ int) (Wake, error) {
		return sleepUntil(ctx, 100*time.Millisecond, time.Time{})
	})

	// SleepUntil sleeps until the time its input names (Unix nanoseconds)
	// and returns when it meant to wake and when it woke (S).
	SleepUntil = durable.NewWorkflow("sleep-until", func(ctx durable.Context, due int64) (Wake, error) {
		return sleepUntil(ctx, 0, time.Unix(0, due))
	})
)

// Wake is what a sleeping workflow reports: the time its timer was due
// and the time its workflow code ran again.
type Wake struct {
	Due  time.Time `json:"due"`
	Woke time.Time `json:"woke"`
}

// sleepUntil sleeps for d, or until due when d is zero. The clock is read
// (and recorded) just before the timer starts, so Due is within
// microseconds of the timer's fire time.
func sleepUntil(ctx durable.Context, d time.Duration, due time.Time) (Wake, error) {
	before, err := durable.SideEffect(ctx, time.Now)
	if err != nil {
		return Wake{}, err
	}
	if d == 0 {
		d = max(due.Sub(before), time.Millisecond)
	}
	if err := durable.Sleep(ctx, d); err != nil {
		return Wake{}, err
	}
	woke, err := durable.SideEffect(ctx, time.Now)
	return Wake{Due: before.Add(d), Woke: woke}, err
}

// Definitions returns the workloads' workflows and activities (the agent's
// are registered by its runtime).
func Definitions() []durable.Definition {
	return []durable.Definition{Noop, ThreeSteps, WaitSignal, Sleep100, SleepUntil}
}

// Result is one workload's measurement.
type Result struct {
	// Workload is its name: F, W1, W2, W3, W4, A1 or S.
	Workload string `json:"workload"`
	// What describes the workload and what a sample measures.
	What string `json:"what"`
	// Samples are the latencies measured (W4: overshoots; A1: time per
	// turn; S: fire lag), unsorted; empty for W2.
	Samples []time.Duration `json:"-"`
	// N is the number of samples, or of workflows for W2.
	N int `json:"n"`
	// Workflows run (agent runs for A1; commits for F).
	Workflows int `json:"workflows"`
	// Percentiles of Samples, in milliseconds.
	P50 float64 `json:"p50_ms,omitempty"`
	P95 float64 `json:"p95_ms,omitempty"`
	P99 float64 `json:"p99_ms,omitempty"`
	// Throughput (W2).
	WorkflowsPerSecond  float64 `json:"workflows_per_s,omitempty"`
	ActivitiesPerSecond float64 `json:"activities_per_s,omitempty"`
	// Counts per workflow (per commit for F, per agent run for A1).
	TxPerWorkflow         float64 `json:"tx_per_workflow"`
	CommitsPerWorkflow    float64 `json:"commits_per_workflow,omitempty"`
	RoundTripsPerWorkflow float64 `json:"round_trips_per_workflow"`
	StatementsPerWorkflow float64 `json:"statements_per_workflow"`
	// CPUPerWorkflow is this process's CPU time (user+system, getrusage)
	// per workflow, in milliseconds.
	CPUPerWorkflow float64 `json:"cpu_per_workflow_ms"`
	// DBCPUPerWorkflow is the CPU time of the PostgreSQL backends that
	// served this run's connections, per workflow, in milliseconds, when
	// the server runs on this machine (read from /proc; the server's
	// background processes, such as the WAL writer, are not included).
	DBCPUPerWorkflow float64 `json:"db_cpu_per_workflow_ms,omitempty"`
	// OverFloor is P50 divided by the floor F's P50 of the same run.
	OverFloor float64 `json:"p50_over_floor,omitempty"`
	// Elapsed is the workload's wall time, in seconds.
	Elapsed float64 `json:"elapsed_s"`
	// Extra holds workload-specific figures (S: memory and fire rate).
	Extra map[string]float64 `json:"extra,omitempty"`
}

// Percentile returns the p-quantile (0 ≤ p ≤ 1) of samples by the
// nearest-rank method; samples are sorted in place.
func Percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	i := int(p*float64(len(samples))+0.5) - 1
	return samples[min(max(i, 0), len(samples)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// measure runs fn and fills in the counts, CPU and percentiles of its
// result. fn returns the samples and the number of workflows it ran.
func (env *Env) measure(ctx context.Context, name, what string, fn func() ([]time.Duration, int, error)) (Result, error) {
	before := env.Counter.Snapshot()
	var floorBefore Counts
	if env.floorCounter != nil {
		floorBefore = env.floorCounter.Snapshot()
	}
	db0 := env.backendCPU(ctx)
	cpu0, t0 := processCPU(), time.Now()
	samples, workflows, err := fn()
	elapsed, cpu := time.Since(t0), processCPU()-cpu0
	db1 := env.backendCPU(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("bench: %s: %w", name, err)
	}
	counts := env.Counter.Snapshot().Sub(before)
	if env.floorCounter != nil {
		counts = addCounts(counts, env.floorCounter.Snapshot().Sub(floorBefore))
	}
	r := Result{Workload: name, What: what, Samples: samples, N: len(samples), Workflows: workflows, Elapsed: elapsed.Seconds()}
	if workflows > 0 {
		per := func(n int64) float64 { return float64(n) / float64(workflows) }
		r.TxPerWorkflow = per(counts.Tx)
		r.CommitsPerWorkflow = per(counts.Commits)
		r.RoundTripsPerWorkflow = per(counts.RoundTrips)
		r.StatementsPerWorkflow = per(counts.Statements)
		r.CPUPerWorkflow = ms(cpu) / float64(workflows)
		if db0 != nil && db1 != nil {
			var d time.Duration
			for pid, t := range db1 {
				d += t - db0[pid] // a backend started meanwhile counts from 0
			}
			r.DBCPUPerWorkflow = ms(d) / float64(workflows)
		}
	}
	if len(samples) > 0 {
		s := append([]time.Duration(nil), samples...)
		r.P50, r.P95, r.P99 = ms(Percentile(s, 0.50)), ms(Percentile(s, 0.95)), ms(Percentile(s, 0.99))
	}
	return r, nil
}

// backendCPU returns the CPU time used so far by each PostgreSQL backend
// serving the Env, by process ID, or nil (SQLite; a remote server).
func (env *Env) backendCPU(ctx context.Context) map[int]time.Duration {
	if env.serverPIDs == nil {
		return nil
	}
	pids, err := env.serverPIDs(ctx)
	if err != nil || len(pids) == 0 {
		return nil
	}
	out := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		t, ok := processCPUOf(pid)
		if !ok {
			return nil
		}
		out[pid] = t
	}
	return out
}

func addCounts(a, b Counts) Counts {
	return Counts{Tx: a.Tx + b.Tx, Commits: a.Commits + b.Commits, RoundTrips: a.RoundTrips + b.RoundTrips,
		Statements: a.Statements + b.Statements}
}

// Floor is F: n INSERT+COMMIT round trips on the same database with the
// same durability settings, one at a time.
func (env *Env) Floor(ctx context.Context, n int) (Result, error) {
	r, err := env.measure(ctx, "F", "one INSERT+COMMIT on the same database and settings (sample: one commit)", func() ([]time.Duration, int, error) {
		samples := make([]time.Duration, 0, n)
		for range n {
			t0 := time.Now()
			if err := env.floor(ctx); err != nil {
				return nil, 0, err
			}
			samples = append(samples, time.Since(t0))
		}
		return samples, n, nil
	})
	if err == nil && env.Kind == StorePostgres {
		// Each INSERT outside a transaction block commits on its own.
		r.TxPerWorkflow = 1
	} else if err == nil {
		r.TxPerWorkflow = r.CommitsPerWorkflow
	}
	return r, err
}

// W1 runs n workflows of three sequential no-op activities, one at a
// time, and measures each from start to result.
//
// Extra reports the history of the last run: its events and bytes (the
// sum of the events' data as stored), whose third is the history cost of
// one activity step.
func (env *Env) W1(ctx context.Context, n int) (Result, error) {
	var lastRun string
	r, err := env.measure(ctx, "W1", "3 sequential no-op activities, start to result, one workflow at a time", func() ([]time.Duration, int, error) {
		samples := make([]time.Duration, 0, n)
		for i := range n {
			t0 := time.Now()
			h, err := ThreeSteps.Start(ctx, env.Engine, i, nil)
			if err != nil {
				return nil, 0, err
			}
			got, err := h.Result(ctx)
			if err != nil {
				return nil, 0, err
			}
			samples = append(samples, time.Since(t0))
			if got != i+3 {
				return nil, 0, fmt.Errorf("workflow returned %d, want %d", got, i+3)
			}
			lastRun = h.RunID()
		}
		return samples, n, nil
	})
	if err == nil && lastRun != "" {
		run, err := env.observer.GetRun(ctx, lastRun)
		if err != nil {
			return r, fmt.Errorf("bench: W1: %w", err)
		}
		r.Extra = map[string]float64{"history_events": float64(run.HistoryLen), "history_bytes": float64(run.HistoryBytes)}
	}
	return r, err
}

// W2 starts workflows ThreeSteps runs from starters concurrent callers,
// each waiting for its run's result before it starts the next, and
// measures the throughput. batch distinguishes the workflow IDs of
// repeated calls.
func (env *Env) W2(ctx context.Context, workflows, starters int, batch string) (Result, error) {
	r, err := env.measure(ctx, "W2", fmt.Sprintf("%d W1 workflows from %d concurrent starters", workflows, starters), func() ([]time.Duration, int, error) {
		var wg sync.WaitGroup
		errs := make(chan error, starters)
		for s := range starters {
			wg.Go(func() {
				for w := s; w < workflows; w += starters {
					got, err := ThreeSteps.Run(ctx, env.Engine, w, &durable.StartOptions{ID: fmt.Sprintf("w2-%s-%d", batch, w)})
					if err == nil && got != w+3 {
						err = fmt.Errorf("workflow returned %d, want %d", got, w+3)
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
		return nil, workflows, <-errs
	})
	if err == nil && r.Elapsed > 0 {
		r.N = workflows
		r.WorkflowsPerSecond = float64(workflows) / r.Elapsed
		r.ActivitiesPerSecond = 3 * r.WorkflowsPerSecond
	}
	return r, err
}

// W3 starts n workflows that wait for a signal, one at a time; once each
// waits, it sends the signal and measures the time to the run's result.
func (env *Env) W3(ctx context.Context, n int, batch string) (Result, error) {
	return env.measure(ctx, "W3", "signal sent to a waiting workflow → its result (sample: the round trip)", func() ([]time.Duration, int, error) {
		samples := make([]time.Duration, 0, n)
		for i := range n {
			id := fmt.Sprintf("w3-%s-%d", batch, i)
			h, err := WaitSignal.Start(ctx, env.Engine, 0, &durable.StartOptions{ID: id})
			if err != nil {
				return nil, 0, err
			}
			if err := env.waitHistory(ctx, h.RunID(), 2); err != nil {
				return nil, 0, err
			}
			t0 := time.Now()
			if err := Poke.Send(ctx, env.Engine, id, i); err != nil {
				return nil, 0, err
			}
			got, err := h.Result(ctx)
			if err != nil {
				return nil, 0, err
			}
			samples = append(samples, time.Since(t0))
			if got != i {
				return nil, 0, fmt.Errorf("workflow returned %d, want %d", got, i)
			}
		}
		return samples, n, nil
	})
}

// waitHistory waits until a run's history has at least n events. It
// reads through the uncounted observer, so that its polling is not
// counted as the workload's.
func (env *Env) waitHistory(ctx context.Context, runID string, n int64) error {
	for {
		r, err := env.observer.GetRun(ctx, runID)
		if err != nil {
			return err
		}
		if r.HistoryLen >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Microsecond):
		}
	}
}

// W4 runs n workflows that sleep 100 ms, one at a time, and measures how
// late each wakes: from the timer's fire time to the workflow code
// running again.
func (env *Env) W4(ctx context.Context, n int) (Result, error) {
	return env.measure(ctx, "W4", "100 ms durable sleep (sample: how late the workflow wakes)", func() ([]time.Duration, int, error) {
		samples := make([]time.Duration, 0, n)
		for range n {
			w, err := Sleep100.Run(ctx, env.Engine, 0, nil)
			if err != nil {
				return nil, 0, err
			}
			samples = append(samples, w.Woke.Sub(w.Due))
		}
		return samples, n, nil
	})
}
