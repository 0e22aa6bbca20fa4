package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/internal/bench"
	"github.com/keelhq/keel/internal/testdb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// small is a run small enough for a test: every default workload, a few
// samples each. Nothing asserts on timings; the counts are what is
// checked.
func small(db string) bench.Options {
	return bench.Options{DB: db, N: 4, W2Workflows: 40, W2Starters: 8}
}

// requirePlausible checks the report of small: every default workload in
// run order, with counts that match what the engine is known to do.
func requirePlausible(t *testing.T, rep *bench.Report, kind string) {
	t.Helper()
	require.Equal(t, kind, rep.Store)
	require.NotEmpty(t, rep.Durability)
	require.Positive(t, rep.Machine.Cores)
	var names []string
	for _, r := range rep.Results {
		names = append(names, r.Workload)
	}
	require.Equal(t, []string{"F", "W1", "W3", "W4", "A1", "W2"}, names)

	f, _ := rep.Result("F")
	require.Equal(t, 4, f.N, "F: half its samples before the workloads, half after")
	require.Equal(t, 1.0, f.TxPerWorkflow)
	require.Positive(t, f.P50)
	require.GreaterOrEqual(t, f.RoundTripsPerWorkflow, 1.0)

	for _, name := range []string{"W1", "W3", "W4", "A1"} {
		r, _ := rep.Result(name)
		require.Equal(t, 4, r.N, name)
		require.Equal(t, 4, r.Workflows, name)
		require.Len(t, r.Samples, 4, name)
		require.Positive(t, r.P50, name)
		require.LessOrEqual(t, r.P50, r.P95, name)
		require.LessOrEqual(t, r.P95, r.P99, name)
		require.Positive(t, r.OverFloor, name)
		require.Positive(t, r.CPUPerWorkflow, name)
		require.GreaterOrEqual(t, r.RoundTripsPerWorkflow, r.TxPerWorkflow, name)
		require.GreaterOrEqual(t, r.StatementsPerWorkflow, r.TxPerWorkflow, name)
		if kind == bench.StorePostgres {
			require.GreaterOrEqual(t, r.StatementsPerWorkflow, r.RoundTripsPerWorkflow, "%s: a batch holds one statement or more", name)
		} else {
			require.Less(t, r.StatementsPerWorkflow, r.RoundTripsPerWorkflow, "%s: BEGIN and COMMIT are not statements", name)
		}
	}

	// W1: the start with its first task, then one commit per activity
	// carrying the next task.
	w1, _ := rep.Result("W1")
	require.Equal(t, 4.0, w1.TxPerWorkflow)
	require.InDelta(t, rep.W1OverFloor, w1.P50/f.P50, 1e-9)

	// W3: the start with its first task, the signal with the task that
	// takes it.
	w3, _ := rep.Result("W3")
	require.Equal(t, 2.0, w3.TxPerWorkflow)

	// W4: the start with its first task, the timer with the task it
	// wakes. Samples are overshoots past the fire time, never early.
	w4, _ := rep.Result("W4")
	require.Equal(t, 2.0, w4.TxPerWorkflow)
	for _, s := range w4.Samples {
		require.GreaterOrEqual(t, s, time.Duration(0))
	}

	// A1: a model call per turn and a tool call for all but the last,
	// each recorded in at least one transaction.
	a1, _ := rep.Result("A1")
	require.GreaterOrEqual(t, a1.TxPerWorkflow, float64(2*bench.AgentTurns-1))
	require.LessOrEqual(t, a1.TxPerWorkflow, float64(4*bench.AgentTurns))

	w2, _ := rep.Result("W2")
	require.Equal(t, 40, w2.Workflows)
	require.Positive(t, w2.WorkflowsPerSecond)
	require.InDelta(t, 3*w2.WorkflowsPerSecond, w2.ActivitiesPerSecond, 1e-6)
	require.GreaterOrEqual(t, w2.TxPerWorkflow, 4.0)
	require.LessOrEqual(t, w2.TxPerWorkflow, 8.0)
	require.Empty(t, w2.Samples)

	if kind == bench.StoreSQLite {
		// Sequential workloads commit every transaction on its own; W2's
		// concurrent transactions share commits.
		require.Equal(t, w1.TxPerWorkflow, w1.CommitsPerWorkflow)
		require.LessOrEqual(t, w2.CommitsPerWorkflow, w2.TxPerWorkflow)
		require.Contains(t, rep.Durability, "synchronous=FULL")
		require.Empty(t, rep.Autovacuum)
	} else {
		require.Contains(t, rep.Durability, "fsync=on")
		require.Contains(t, []string{"on", "off"}, rep.Autovacuum)
	}
}

// requireOutputs checks the table and the JSON of a report.
func requireOutputs(t *testing.T, rep *bench.Report) {
	t.Helper()
	var table bytes.Buffer
	require.NoError(t, rep.WriteTable(&table))
	lines := strings.Split(table.String(), "\n")
	require.Contains(t, lines[0], "keel bench: "+rep.Store)
	header := strings.Fields(lines[2])
	require.Equal(t, []string{"workload", "n", "p50", "ms", "p95", "ms", "p99", "ms", "wf/s", "act/s", "tx/wf", "commits/wf", "rt/wf", "stmt/wf", "cpu", "ms/wf", "db", "cpu", "ms/wf", "p50/F"}, header)
	for i, r := range rep.Results {
		row := strings.Fields(lines[3+i])
		require.Len(t, row, 14, lines[3+i])
		require.Equal(t, r.Workload, row[0])
	}
	require.Contains(t, table.String(), "W1 p50 / F p50 = ")

	var js bytes.Buffer
	require.NoError(t, rep.WriteJSON(&js))
	var decoded struct {
		Store   string `json:"store"`
		Results []map[string]any
		W1      float64 `json:"w1_p50_over_floor"`
	}
	require.NoError(t, json.Unmarshal(js.Bytes(), &decoded))
	require.Equal(t, rep.Store, decoded.Store)
	require.Len(t, decoded.Results, len(rep.Results))
	for _, r := range decoded.Results {
		for _, key := range []string{"workload", "n", "tx_per_workflow", "round_trips_per_workflow", "cpu_per_workflow_ms"} {
			require.Contains(t, r, key)
		}
	}
	require.Positive(t, decoded.W1)
}

func TestRunSQLite(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "bench.db")
	rep, err := bench.Run(t.Context(), small(db))
	require.NoError(t, err)
	requirePlausible(t, rep, bench.StoreSQLite)
	requireOutputs(t, rep)
	_, err = os.Stat(db)
	require.NoError(t, err, "the file asked for is the one used")
}

func TestRunPostgres(t *testing.T) {
	t.Parallel()
	pool := testdb.Postgres(t) // skips without TEST_DATABASE_URL
	ctx := t.Context()
	count := func() int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'keel\_bench\_%'`).Scan(&n))
		return n
	}
	before := count()
	rep, err := bench.Run(ctx, small(os.Getenv(testdb.URLEnv)))
	require.NoError(t, err)
	requirePlausible(t, rep, bench.StorePostgres)
	requireOutputs(t, rep)
	// Another test may be running keel bench on the same server, so only
	// check that this run left no schema more than it found.
	require.LessOrEqual(t, count(), before, "the run's schema is dropped")
	require.Equal(t, 16, rep.PoolSize, "the default pool")
	require.Contains(t, tableOf(t, rep), ", pool 16)")
}

// A pool size that the URL sets is the one used, also below the default.
func TestRunPostgresPoolSize(t *testing.T) {
	t.Parallel()
	testdb.Postgres(t) // skips without TEST_DATABASE_URL
	u, err := url.Parse(os.Getenv(testdb.URLEnv))
	require.NoError(t, err)
	q := u.Query()
	q.Set("pool_max_conns", "3")
	u.RawQuery = q.Encode()
	o := small(u.String())
	o.Workloads = []string{"F", "W2"}
	rep, err := bench.Run(t.Context(), o)
	require.NoError(t, err)
	require.Equal(t, 3, rep.PoolSize)
	require.Contains(t, tableOf(t, rep), ", pool 3)")
}

func tableOf(t *testing.T, rep *bench.Report) string {
	t.Helper()
	var b strings.Builder
	require.NoError(t, rep.WriteTable(&b))
	return b.String()
}

func TestOpenRefusesExistingFile(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "app.db")
	require.NoError(t, os.WriteFile(db, []byte("precious"), 0o600))
	_, err := bench.Run(t.Context(), small(db))
	require.ErrorIs(t, err, bench.ErrDatabaseExists)
	b, err := os.ReadFile(db)
	require.NoError(t, err)
	require.Equal(t, "precious", string(b), "nothing written")
}

func TestParseWorkloads(t *testing.T) {
	t.Parallel()
	got, err := bench.ParseWorkloads("w2, A1,W1")
	require.NoError(t, err)
	require.Equal(t, []string{"F", "W1", "A1", "W2"}, got, "run order, with the floor")
	_, err = bench.ParseWorkloads("W1,W9")
	require.ErrorIs(t, err, bench.ErrUnknownWorkload)
	require.ErrorContains(t, err, `"W9"`)
}

func TestSleepersSmall(t *testing.T) {
	t.Parallel()
	env, err := bench.Open(t.Context(), "", &bench.EnvOptions{CacheSize: 10})
	require.NoError(t, err)
	defer env.Close()
	r, err := env.Sleepers(t.Context(), &bench.SleepOptions{N: 60, Spread: 300 * time.Millisecond, Starters: 8})
	require.NoError(t, err)
	require.Equal(t, "S", r.Workload)
	require.Len(t, r.Samples, 60, "one fire lag per measured sleeper")
	require.Equal(t, 66, r.Workflows, "60 measured and 6 probes")
	for _, lag := range r.Samples {
		require.GreaterOrEqual(t, lag, time.Duration(0), "no timer fires early")
	}
	for _, key := range []string{"sleeping", "rss_start_mib", "rss_all_asleep_mib", "heap_all_asleep_mib", "start_rate_per_s", "fire_rate_per_s"} {
		require.Contains(t, r.Extra, key)
	}
	require.Equal(t, 66.0, r.Extra["sleeping"])
	// Start, first task (which starts the timer), the fire, the task
	// that runs on it; the probes have only the first two so far. A task
	// that no local worker had room to take at once costs a claim of its
	// own, so under load up to 6.
	require.GreaterOrEqual(t, r.TxPerWorkflow, 2.0)
	require.LessOrEqual(t, r.TxPerWorkflow, 6.0)
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	var s []time.Duration
	for i := 100; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, 50*time.Millisecond, bench.Percentile(s, 0.50))
	require.Equal(t, 99*time.Millisecond, bench.Percentile(s, 0.99))
	require.Equal(t, 100*time.Millisecond, bench.Percentile(s, 1))
	require.Equal(t, 1*time.Millisecond, bench.Percentile(s, 0))
	require.Zero(t, bench.Percentile(nil, 0.5))
}

func TestCountingStoreCountsWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env, err := bench.Open(ctx, "", nil)
	require.NoError(t, err)
	defer env.Close()
	before := env.Counter.Snapshot()
	got, err := bench.ThreeSteps.Run(ctx, env.Engine, 1, nil)
	require.NoError(t, err)
	require.Equal(t, 4, got)
	d := env.Counter.Snapshot().Sub(before)
	require.LessOrEqual(t, d.Tx, int64(5), "start, first task, three activity completions with their tasks")
	require.GreaterOrEqual(t, d.Tx, int64(4))
	require.Equal(t, d.Tx, d.Commits, "one at a time: one commit each")
	require.Greater(t, d.RoundTrips, 3*d.Tx, "BEGIN, COMMIT and at least one statement per transaction")
	require.Equal(t, d.RoundTrips-2*d.Commits, d.Statements, "every round trip but BEGIN and COMMIT is a statement")
}
