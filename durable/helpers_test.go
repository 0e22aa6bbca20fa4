package durable_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/internal/testdb"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashHelperEnv) != "" {
		os.Exit(crashHelperMain())
	}
	goleak.VerifyTestMain(m)
}

// opener opens a new Store on one database; calling it again reopens the
// same database, as a restarted process would.
type opener func(t *testing.T) store.Store

func sqliteDB(t *testing.T) opener {
	path := filepath.Join(t.TempDir(), "keel.db")
	return func(t *testing.T) store.Store {
		st, err := sqlitestore.Open(path, nil)
		require.NoError(t, err)
		return st
	}
}

// postgresDB gives the test its own schema; it skips without
// TEST_DATABASE_URL (and fails under CI=true).
func postgresDB(t *testing.T) opener {
	pool := testdb.Postgres(t)
	return func(t *testing.T) store.Store {
		st, err := pgstore.New(context.Background(), pool, nil)
		require.NoError(t, err)
		return st
	}
}

// forEachStore runs fn as a subtest on SQLite and on PostgreSQL.
func forEachStore(t *testing.T, fn func(t *testing.T, db opener)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, sqliteDB(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, postgresDB(t))
	})
}

// forEachStoreSerial is forEachStore with the subtests one after the other,
// for tests that inspect process-wide state such as goroutine stacks.
func forEachStoreSerial(t *testing.T, fn func(t *testing.T, db opener)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, sqliteDB(t)) }) //nolint:paralleltest // see above
	t.Run("postgres", func(t *testing.T) { fn(t, postgresDB(t)) })
}

// testBundle is an engine with one worker on the "default" task queue.
type testBundle struct {
	e  *durable.Engine
	st store.Store
}

type setupOpts struct {
	cfg *durable.Config
	// db opens the database. Optional; default a new SQLite file.
	db   opener
	defs []durable.Definition
	// noStart leaves the engine stopped.
	noStart bool
}

func setup(t *testing.T, o setupOpts) *testBundle {
	t.Helper()
	if o.db == nil {
		o.db = sqliteDB(t)
	}
	st := o.db(t)
	cfg := o.cfg
	if cfg == nil {
		cfg = &durable.Config{}
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	e, err := durable.New(st, cfg)
	require.NoError(t, err)
	e.MustRegister(o.defs...)
	e.NewWorker(nil)
	b := &testBundle{e: e, st: st}
	if !o.noStart {
		require.NoError(t, e.Start(context.Background()))
	}
	t.Cleanup(func() { b.stop(t) })
	return b
}

// stop stops the engine and closes the store; it may be called twice.
func (b *testBundle) stop(t *testing.T) {
	t.Helper()
	if b.st == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, b.e.Stop(ctx))
	require.NoError(t, b.st.Close())
	b.st = nil
}

// testWriter sends the engine's log to the test's log, shown for failed
// tests and with -v.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 20*time.Second, 5*time.Millisecond, "waiting for %s", what)
}

// eventTypes returns the types of a run's history events.
func eventTypes(t *testing.T, e *durable.Engine, runID string) []string {
	t.Helper()
	h, err := e.GetHistory(context.Background(), runID)
	require.NoError(t, err)
	out := make([]string, len(h.Events))
	for i, ev := range h.Events {
		out[i] = ev.Type
	}
	return out
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}
