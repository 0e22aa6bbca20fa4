package durable_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/bench"
	"github.com/keelhq/keel/internal/testdb"
)

// The benchmarks measure the workloads of BENCHMARKS.md, with the code
// `keel bench` runs (package internal/bench), on a SQLite file in a
// temporary directory with default durability (WAL, synchronous=FULL), or
// with KEEL_BENCH_STORE=postgres on a fresh schema of TEST_DATABASE_URL.
// See BENCHMARKS.md for the exact commands.

// benchEnv opens the store under test with the workloads registered and
// the engine started.
func benchEnv(b *testing.B) *bench.Env {
	b.Helper()
	ctx := context.Background()
	var (
		env *bench.Env
		err error
	)
	if os.Getenv("KEEL_BENCH_STORE") == "postgres" {
		env, err = bench.OpenPostgres(ctx, testdb.Postgres(b).Config(), nil)
	} else {
		env, err = bench.OpenSQLite(ctx, filepath.Join(b.TempDir(), "bench.db"), nil)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(env.Close)
	return env
}

// report reports a workload's percentiles and counts per workflow.
func report(b *testing.B, r bench.Result, prefix string) {
	b.Helper()
	if r.N > 0 && r.P50 > 0 {
		b.ReportMetric(r.P50, prefix+"p50-ms")
		b.ReportMetric(r.P99, prefix+"p99-ms")
	}
	b.ReportMetric(r.TxPerWorkflow, "tx/workflow")
	b.ReportMetric(r.RoundTripsPerWorkflow, "roundtrips/workflow")
	b.ReportMetric(r.StatementsPerWorkflow, "statements/workflow")
	b.ReportMetric(r.CPUPerWorkflow, "cpu-ms/workflow")
	b.ReportMetric(float64(runtime.NumCPU()), "cores")
}

// BenchmarkW1Latency: one workflow of 3 sequential no-op activities, start to
// result, one at a time.
func BenchmarkW1Latency(b *testing.B) {
	env := benchEnv(b)
	b.ResetTimer()
	r, err := env.W1(context.Background(), b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	report(b, r, "")
}

// BenchmarkW2Throughput: 2,000 three-activity workflows started by 64
// concurrent callers, each waiting for its results; b.N batches.
func BenchmarkW2Throughput(b *testing.B) {
	env := benchEnv(b)
	const workflows, starters = 2000, 64
	b.ResetTimer()
	var total time.Duration
	var last bench.Result
	for i := 0; i < b.N; i++ {
		r, err := env.W2(context.Background(), workflows, starters, fmt.Sprint(i))
		if err != nil {
			b.Fatal(err)
		}
		total += time.Duration(r.Elapsed * float64(time.Second))
		last = r
	}
	b.StopTimer()
	b.ReportMetric(float64(workflows*b.N)/total.Seconds(), "workflows/s")
	b.ReportMetric(float64(3*workflows*b.N)/total.Seconds(), "activities/s")
	report(b, last, "")
}

// BenchmarkW3SignalRoundTrip: a signal sent to a waiting workflow, to the
// workflow's result.
func BenchmarkW3SignalRoundTrip(b *testing.B) {
	env := benchEnv(b)
	b.ResetTimer()
	r, err := env.W3(context.Background(), b.N, "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	report(b, r, "")
}

// BenchmarkW4SleepOvershoot: how late a 100 ms durable sleep wakes.
func BenchmarkW4SleepOvershoot(b *testing.B) {
	env := benchEnv(b)
	b.ResetTimer()
	r, err := env.W4(context.Background(), b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	report(b, r, "overshoot-")
}

// BenchmarkFloorCommit is the floor F: one INSERT and COMMIT on the
// benchmark's database with the store's own settings (sqlitestore.DSN),
// or with KEEL_BENCH_STORE=postgres one INSERT round trip (an implicit
// commit) with the server's durability settings.
func BenchmarkFloorCommit(b *testing.B) {
	env := benchEnv(b)
	b.ResetTimer()
	r, err := env.Floor(context.Background(), b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	report(b, r, "")
}
