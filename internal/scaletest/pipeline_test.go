package scaletest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelhq/keel/durable"
)

// pipeline is the workflow of the scale-out test and the benchmark: three
// activities in sequence, n → n+1 → ×2 → +7.
type pipeline struct {
	wf   *durable.Workflow[int, int]
	defs []durable.Definition // the workflow and its activities
}

// pipelineResult is what the pipeline returns for input n.
func pipelineResult(n int) int { return (n+1)*2 + 7 }

// pipelineActivityOptions keep the time a killed worker holds an activity
// short, so that it is retried soon.
func pipelineActivityOptions() *durable.ActivityOptions {
	return &durable.ActivityOptions{
		StartToCloseTimeout: 2 * time.Second,
		RetryPolicy:         durable.RetryPolicy{InitialInterval: 50 * time.Millisecond, MaximumInterval: 500 * time.Millisecond},
	}
}

// newPipeline defines the pipeline. record, if not nil, is called by every
// activity execution before it computes its result; its error fails the
// attempt.
func newPipeline(record func(ctx context.Context) error) *pipeline {
	step := func(name string, f func(int) int) *durable.Activity[int, int] {
		return durable.NewActivity(name, func(ctx context.Context, n int) (int, error) {
			if record != nil {
				if err := record(ctx); err != nil {
					return 0, err
				}
			}
			return f(n), nil
		}, pipelineActivityOptions())
	}
	add := step("pipeline-add", func(n int) int { return n + 1 })
	double := step("pipeline-double", func(n int) int { return n * 2 })
	plus := step("pipeline-plus7", func(n int) int { return n + 7 })
	wf := durable.NewWorkflow("pipeline", func(ctx durable.Context, n int) (int, error) {
		for _, a := range []*durable.Activity[int, int]{add, double, plus} {
			var err error
			if n, err = a.Run(ctx, n); err != nil {
				return 0, err
			}
		}
		return n, nil
	})
	return &pipeline{wf: wf, defs: []durable.Definition{wf, add, double, plus}}
}

// executionsTableSQL creates the table in which the scale-out test's
// activities record every execution, outside the engine.
const executionsTableSQL = `
CREATE TABLE scaletest_executions (
	id              bigserial PRIMARY KEY,
	idempotency_key text    NOT NULL,
	attempt         integer NOT NULL,
	run_id          text    NOT NULL,
	seq             bigint  NOT NULL,
	pid             integer NOT NULL
);
CREATE INDEX scaletest_executions_key ON scaletest_executions (idempotency_key, attempt)`

// workerArg configures a worker child.
type workerArg struct {
	// Record makes activities insert a row in scaletest_executions.
	Record              bool          `json:"record"`
	PoolConns           int32         `json:"pool_conns"`
	WorkflowTasks       int           `json:"workflow_tasks"`
	Activities          int           `json:"activities"`
	WorkflowTaskTimeout time.Duration `json:"workflow_task_timeout"`
}

func (a workerArg) env(schema string) childEnv {
	b, err := json.Marshal(a)
	if err != nil {
		panic(err)
	}
	return childEnv{mode: "worker", schema: schema, arg: string(b)}
}

// workerMain is a worker process: an engine with the pipeline registered
// and a worker on the default task queue, until stdin closes (or the
// parent kills it).
func workerMain(ctx context.Context) error {
	var arg workerArg
	if err := json.Unmarshal([]byte(os.Getenv(argEnv)), &arg); err != nil {
		return fmt.Errorf("decode %s: %w", argEnv, err)
	}
	parent := newParentIO()
	stats := &statsTracer{}
	pool, st, closeAll, err := childStore(ctx, arg.PoolConns, stats)
	if err != nil {
		return err
	}
	defer closeAll()

	var record func(ctx context.Context) error
	if arg.Record {
		pid := os.Getpid()
		record = func(ctx context.Context) error {
			info, _ := durable.GetActivityInfo(ctx)
			_, err := pool.Exec(ctx, `INSERT INTO scaletest_executions (idempotency_key, attempt, run_id, seq, pid)
				VALUES ($1, $2, $3, $4, $5)`, info.IdempotencyKey, info.Attempt, info.RunID, info.Seq, pid)
			return err
		}
	}
	p := newPipeline(record)
	e, err := durable.New(st, &durable.Config{
		CacheSize:           10000,
		Logger:              slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		PollInterval:        100 * time.Millisecond,
		WorkflowTaskTimeout: arg.WorkflowTaskTimeout,
	})
	if err != nil {
		return err
	}
	if err := e.Register(p.defs...); err != nil {
		return err
	}
	e.NewWorker(&durable.WorkerOptions{MaxConcurrentWorkflowTasks: arg.WorkflowTasks, MaxConcurrentActivities: arg.Activities})
	if err := e.Start(ctx); err != nil {
		return err
	}
	parent.send("ready")
	waitErr := parent.waitClosed(ctx)
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Stop(stopCtx); err != nil {
		return fmt.Errorf("stop engine: %w", err)
	}
	b, err := json.Marshal(stats.snapshot())
	if err != nil {
		return err
	}
	parent.send("stats %s", b)
	return waitErr
}

// workerStats count a worker's round trips to the database and its claims.
type workerStats struct {
	RoundTrips          int64 `json:"round_trips"`
	WorkflowClaims      int64 `json:"workflow_claims"`
	EmptyWorkflowClaims int64 `json:"empty_workflow_claims"`
	ActivityClaims      int64 `json:"activity_claims"`
	EmptyActivityClaims int64 `json:"empty_activity_claims"`
}

// statsTracer is a pgx tracer that counts workerStats: every query and
// every batch is one round trip; claims are told apart by their SQL (a
// diagnostic only: it counts nothing if pgstore's statements change).
type statsTracer struct {
	roundTrips, wfClaims, wfEmpty, acClaims, acEmpty atomic.Int64
}

func (s *statsTracer) snapshot() workerStats {
	return workerStats{
		RoundTrips: s.roundTrips.Load(), WorkflowClaims: s.wfClaims.Load(), EmptyWorkflowClaims: s.wfEmpty.Load(),
		ActivityClaims: s.acClaims.Load(), EmptyActivityClaims: s.acEmpty.Load(),
	}
}

func (s *statsTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	s.roundTrips.Add(1)
	return ctx
}

func (s *statsTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (s *statsTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	s.roundTrips.Add(1)
	return ctx
}

func (s *statsTracer) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	if !strings.Contains(d.SQL, "WITH picked AS") || d.Err != nil {
		return
	}
	empty := d.CommandTag.RowsAffected() == 0
	switch {
	case strings.Contains(d.SQL, "UPDATE keel_workflow_tasks"):
		s.wfClaims.Add(1)
		if empty {
			s.wfEmpty.Add(1)
		}
	case strings.Contains(d.SQL, "UPDATE keel_activity_tasks"):
		s.acClaims.Add(1)
		if empty {
			s.acEmpty.Add(1)
		}
	}
}

func (s *statsTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
