package tools_test

import (
	"context"
	"log/slog"
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
	goleak.VerifyTestMain(m)
}

// opener opens the test's database.
type opener func(t *testing.T) store.Store

func sqliteDB(t *testing.T) opener {
	path := filepath.Join(t.TempDir(), "keel.db")
	return func(t *testing.T) store.Store {
		st, err := sqlitestore.Open(path, nil)
		require.NoError(t, err)
		return st
	}
}

func postgresDB(t *testing.T) opener {
	pool := testdb.Postgres(t)
	return func(t *testing.T) store.Store {
		st, err := pgstore.New(context.Background(), pool, nil)
		require.NoError(t, err)
		return st
	}
}

// forEachStore runs fn as a subtest on SQLite and on PostgreSQL (which skips
// without TEST_DATABASE_URL).
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

// startEngine starts an engine with one worker over db, with defs
// registered; it is stopped when the test ends.
func startEngine(t *testing.T, db opener, defs ...durable.Definition) *durable.Engine {
	t.Helper()
	return startEngineWith(t, db, &durable.Config{}, defs...)
}

// startEngineWith is startEngine with a config.
func startEngineWith(t *testing.T, db opener, cfg *durable.Config, defs ...durable.Definition) *durable.Engine {
	t.Helper()
	st := db(t)
	cfg.PollInterval = 50 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := durable.New(st, cfg)
	require.NoError(t, err)
	e.MustRegister(defs...)
	e.NewWorker(nil)
	require.NoError(t, e.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, e.Stop(ctx))
		require.NoError(t, st.Close())
	})
	return e
}

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

// fastRetry retries quickly, three attempts in all.
func fastRetry() *durable.ActivityOptions {
	return &durable.ActivityOptions{
		StartToCloseTimeout: 5 * time.Second,
		RetryPolicy:         durable.RetryPolicy{InitialInterval: 10 * time.Millisecond, MaximumAttempts: 3},
	}
}
