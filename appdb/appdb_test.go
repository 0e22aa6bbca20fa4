package appdb_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/internal/testdb"
)

func exercise(t *testing.T, db *appdb.DB) {
	t.Helper()
	ctx := t.Context()
	fsys := os.DirFS("testdata/migrations")
	// Concurrent and repeated migrations apply once.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = db.Migrate(ctx, "notes", fsys) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, db.Migrate(ctx, "notes", fsys))

	_, err := db.ExecContext(ctx, db.Rebind("INSERT INTO notes (body) VALUES (?), (?)"), "a?", "b")
	require.NoError(t, err)
	var n int
	require.NoError(t, db.QueryRowContext(ctx, db.Rebind("SELECT count(*) FROM notes WHERE body IN (?, ?) AND body <> '?'"), "a?", "b").Scan(&n))
	require.Equal(t, 2, n)
}

func TestSQLite(t *testing.T) {
	t.Parallel()
	db, err := appdb.Open(t.Context(), filepath.Join(t.TempDir(), "keel.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.Equal(t, appdb.SQLite, db.Dialect)
	exercise(t, db)
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	db := appdb.FromPool(testdb.Postgres(t))
	require.Equal(t, appdb.Postgres, db.Dialect)
	exercise(t, db)
}

func TestRebind(t *testing.T) {
	t.Parallel()
	pg := &appdb.DB{Dialect: appdb.Postgres}
	require.Equal(t, "SELECT $1, '?', $2", pg.Rebind("SELECT ?, '?', ?"))
	lite := &appdb.DB{Dialect: appdb.SQLite}
	require.Equal(t, "SELECT ?", lite.Rebind("SELECT ?"))
}

func TestMissingDialectFolder(t *testing.T) {
	t.Parallel()
	db, err := appdb.Open(t.Context(), filepath.Join(t.TempDir(), "keel.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.Error(t, db.Migrate(t.Context(), "none", os.DirFS(t.TempDir())))
}
