package durable_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/internal/testdb"
)

// The benchmarks measure the workloads of BENCHMARKS.md on a SQLite file in
// a temporary directory, with default durability (WAL, synchronous=FULL),
// or with KEEL_BENCH_STORE=postgres on a fresh schema of TEST_DATABASE_URL.
// See BENCHMARKS.md for the exact commands.

var noop = durable.NewActivity("noop", func(ctx context.Context, n int) (int, error) { return n + 1, nil }, nil)

var threeSteps = durable.NewWorkflow("three-steps", func(ctx durable.Context, n int) (int, error) {
	for range 3 {
		var err error
		if n, err = noop.Run(ctx, n); err != nil {
			return 0, err
		}
	}
	return n, nil
})

var benchSignal = durable.NewSignal[int]("poke")

var waitSignal = durable.NewWorkflow("wait-signal", func(ctx durable.Context, _ int) (int, error) {
	// A marker, so the benchmark can see that the first task committed.
	if _, err := durable.SideEffect(ctx, func() int { return 1 }); err != nil {
		return 0, err
	}
	return benchSignal.Receive(ctx)
})

var sleep100 = durable.NewWorkflow("sleep-100ms", func(ctx durable.Context, _ int) (time.Time, error) {
	if err := durable.Sleep(ctx, 100*time.Millisecond); err != nil {
		return time.Time{}, err
	}
	return durable.SideEffect(ctx, time.Now)
})

func benchEngine(b *testing.B, wo *durable.WorkerOptions) (*durable.Engine, *countingStore) {
	b.Helper()
	st := &countingStore{Store: benchStore(b)}
	e, err := durable.New(st, &durable.Config{CacheSize: 10000})
	if err != nil {
		b.Fatal(err)
	}
	e.MustRegister(noop, threeSteps, waitSignal, sleep100)
	e.NewWorker(wo)
	if err := e.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = e.Stop(context.Background())
		_ = st.Close()
	})
	return e, st
}

// benchStore opens the store under test: a SQLite file, or with
// KEEL_BENCH_STORE=postgres a fresh schema in TEST_DATABASE_URL.
func benchStore(b *testing.B) store.Store {
	if os.Getenv("KEEL_BENCH_STORE") == "postgres" {
		st, err := pgstore.New(context.Background(), testdb.Postgres(b), nil)
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	st, err := sqlitestore.Open(filepath.Join(b.TempDir(), "bench.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// reportWrites reports the store transactions per workflow.
func reportWrites(b *testing.B, st *countingStore, workflows int) {
	b.ReportMetric(float64(st.writes.Load())/float64(workflows), "tx/workflow")
}

func reportPercentiles(b *testing.B, samples []time.Duration, prefix string) {
	b.Helper()
	if len(samples) == 0 {
		return
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	pct := func(p float64) float64 {
		i := int(p * float64(len(samples)-1))
		return float64(samples[i].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), prefix+"p50-ms")
	b.ReportMetric(pct(0.99), prefix+"p99-ms")
	b.ReportMetric(float64(runtime.NumCPU()), "cores")
}

// BenchmarkW1Latency: one workflow of 3 sequential no-op activities, start to
// result, one at a time.
func BenchmarkW1Latency(b *testing.B) {
	e, st := benchEngine(b, nil)
	ctx := context.Background()
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	st.writes.Store(0)
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		got, err := threeSteps.Run(ctx, e, i, nil)
		if err != nil || got != i+3 {
			b.Fatalf("got %d, %v", got, err)
		}
		samples = append(samples, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, samples, "")
	reportWrites(b, st, b.N)
}

// BenchmarkW2Throughput: 2,000 three-activity workflows started by 64
// concurrent callers, each waiting for its results; b.N batches.
func BenchmarkW2Throughput(b *testing.B) {
	e, st := benchEngine(b, &durable.WorkerOptions{MaxConcurrentWorkflowTasks: 64, MaxConcurrentActivities: 256})
	ctx := context.Background()
	const workflows, starters = 2000, 64
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, starters)
		for s := range starters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for w := s; w < workflows; w += starters {
					if _, err := threeSteps.Run(ctx, e, w, &durable.StartOptions{ID: fmt.Sprintf("w2-%d-%d", i, w)}); err != nil {
						errs <- err
						return
					}
				}
			}()
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
	reportWrites(b, st, workflows*b.N)
	b.ReportMetric(float64(runtime.NumCPU()), "cores")
}

// BenchmarkW3SignalRoundTrip: a signal sent to a waiting workflow, to the
// workflow's result.
func BenchmarkW3SignalRoundTrip(b *testing.B) {
	e, _ := benchEngine(b, nil)
	ctx := context.Background()
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		id := fmt.Sprintf("w3-%d", i)
		h, err := waitSignal.Start(ctx, e, 0, &durable.StartOptions{ID: id})
		if err != nil {
			b.Fatal(err)
		}
		// Let the run reach its wait.
		for {
			info, err := e.DescribeRun(ctx, h.RunID())
			if err != nil {
				b.Fatal(err)
			}
			if info.HistoryLength >= 2 {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		b.StartTimer()
		t0 := time.Now()
		if err := benchSignal.Send(ctx, e, id, i); err != nil {
			b.Fatal(err)
		}
		if got, err := h.Result(ctx); err != nil || got != i {
			b.Fatalf("got %d, %v", got, err)
		}
		samples = append(samples, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, samples, "")
}

// BenchmarkW4SleepOvershoot: how late a 100 ms durable sleep wakes.
func BenchmarkW4SleepOvershoot(b *testing.B) {
	e, _ := benchEngine(b, nil)
	ctx := context.Background()
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		woke, err := sleep100.Run(ctx, e, 0, nil)
		if err != nil {
			b.Fatal(err)
		}
		samples = append(samples, woke.Sub(t0)-100*time.Millisecond)
	}
	b.StopTimer()
	reportPercentiles(b, samples, "overshoot-")
}

// BenchmarkFloorCommit is the floor F: one INSERT and COMMIT on a SQLite
// file opened with the settings sqlitestore.Open uses (sqlitestore.DSN), or
// with KEEL_BENCH_STORE=postgres one INSERT round trip (an implicit commit)
// with the server's durability settings, measured in the same run as the
// workloads.
func BenchmarkFloorCommit(b *testing.B) {
	payload := make([]byte, 100)
	if os.Getenv("KEEL_BENCH_STORE") == "postgres" {
		ctx := context.Background()
		pool := testdb.Postgres(b)
		if _, err := pool.Exec(ctx, `CREATE TABLE floor (id bigserial PRIMARY KEY, payload bytea)`); err != nil {
			b.Fatal(err)
		}
		measureCommits(b, func() error {
			_, err := pool.Exec(ctx, `INSERT INTO floor (payload) VALUES ($1)`, payload)
			return err
		})
		return
	}
	db, err := sql.Open("sqlite", sqlitestore.DSN(filepath.Join(b.TempDir(), "floor.db")))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE floor (id INTEGER PRIMARY KEY, payload BLOB)`); err != nil {
		b.Fatal(err)
	}
	measureCommits(b, func() error {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO floor (payload) VALUES (?)`, payload); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	})
}

// measureCommits times b.N calls of commit and reports their percentiles.
func measureCommits(b *testing.B, commit func() error) {
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := commit(); err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, samples, "")
}
