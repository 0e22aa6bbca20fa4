package sqlitestore_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/durable/store/storetest"
)

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, func(t *testing.T) store.Store {
		s, err := sqlitestore.Open(filepath.Join(t.TempDir(), "keel.db"), nil)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}

// openDB opens a handle on path the way a caller of New might.
func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

func TestConcurrentMigrations(t *testing.T) {
	t.Parallel()
	// Several handles (as several processes would) open the same new file
	// at once: each migrates or finds the schema migrated, and all work.
	path := filepath.Join(t.TempDir(), "keel.db")
	const n = 6
	var (
		wg     sync.WaitGroup
		stores = make([]*sqlitestore.Store, n)
		errs   = make([]error, n)
	)
	for i := range n {
		db := openDB(t, path)
		wg.Go(func() { stores[i], errs[i] = sqlitestore.New(db, nil) })
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		t.Cleanup(func() { require.NoError(t, stores[i].Close()) })
	}
	ctx := t.Context()
	res, err := stores[0].CreateRun(ctx, store.CreateRunParams{
		RunID: "r1", WorkflowID: "w1", WorkflowType: "t", TaskQueue: "q", StartEvent: store.Event{Type: "started"},
	})
	require.NoError(t, err)
	got, err := stores[n-1].GetRun(ctx, res.Run.RunID)
	require.NoError(t, err)
	require.Equal(t, "w1", got.WorkflowID)

	var versions int
	require.NoError(t, stores[0].DB().QueryRowContext(ctx,
		"SELECT count(*) FROM keel_schema_version WHERE version_id > 0").Scan(&versions))
	require.Equal(t, 4, versions, "each of the 4 migrations is recorded once")
}

func TestSchemaTooNew(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keel.db")
	s, err := sqlitestore.Open(path, nil)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	db := openDB(t, path)
	_, err = db.Exec("INSERT INTO keel_schema_version (version_id, is_applied) VALUES (999, 1)")
	require.NoError(t, err)
	_, err = sqlitestore.New(db, nil)
	require.ErrorIs(t, err, store.ErrSchemaTooNew)
	_, err = sqlitestore.Open(path, nil)
	require.ErrorIs(t, err, store.ErrSchemaTooNew)
}

func TestNewKeepsCallerHandle(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "keel.db"))
	s, err := sqlitestore.New(db, &sqlitestore.Config{})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, db.PingContext(context.Background()), "Close leaves the caller's handle open")

	_, err = sqlitestore.New(nil, nil)
	require.Error(t, err)
}

func TestOpenPathWithQueryCharacters(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "odd?name#1%.db")
	s, err := sqlitestore.Open(path, nil)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.FileExists(t, path)
}
