package sqlitestore_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/durable/store/storetest"
	"github.com/keelhq/keel/internal/reliability"
)

// FuzzTape plays tapes of random engine operations against a store on a
// SQLite file, checking the store against a model after every step (see
// storetest.RunTape). Without -fuzz it plays the seed corpus in
// testdata/fuzz/FuzzTape and the generated seeds.
func FuzzTape(f *testing.F) {
	st, opts := tapeStore(f)
	storetest.FuzzTape(f, st, opts)
}

// TestRandomTapes plays generated tapes: 8, or 3,000 under
// KEEL_RELIABILITY=full.
func TestRandomTapes(t *testing.T) {
	t.Parallel()
	st, opts := tapeStore(t)
	storetest.RunRandomTapes(t, st, "SQLite", reliability.Pick(8, 3000), opts)
}

// tapeStore opens a store on a new SQLite file, and the tape's view of a
// run's rows through a second handle on the file.
func tapeStore(tb testing.TB) (*sqlitestore.Store, *storetest.TapeOptions) {
	path := filepath.Join(tb.TempDir(), "keel.db")
	st, err := sqlitestore.Open(path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	db, err := sql.Open("sqlite", sqlitestore.DSN(path))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return st, &storetest.TapeOptions{Rows: func(ctx context.Context, runID string) (storetest.RunRows, error) {
		var r storetest.RunRows
		err := db.QueryRowContext(ctx, `SELECT
			EXISTS (SELECT 1 FROM workflow_tasks WHERE run_id = ?1),
			(SELECT count(*) FROM inbox WHERE run_id = ?1),
			(SELECT count(*) FROM timers WHERE run_id = ?1),
			(SELECT count(*) FROM activity_tasks WHERE run_id = ?1)`, runID).
			Scan(&r.WorkflowTask, &r.Inbox, &r.Timers, &r.ActivityTasks)
		return r, err
	}}
}
