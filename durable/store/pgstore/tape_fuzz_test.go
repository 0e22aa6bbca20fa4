package pgstore_test

import (
	"context"
	"testing"

	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/storetest"
	"github.com/keelhq/keel/internal/reliability"
	"github.com/keelhq/keel/internal/testdb"
)

// FuzzTape plays tapes of random engine operations against a store on a
// schema of the Postgres test server, checking the store against a model
// after every step (see storetest.RunTape). Without -fuzz it plays the seed
// corpus in testdata/fuzz/FuzzTape and the generated seeds. It skips
// without TEST_DATABASE_URL (and fails under CI=true).
func FuzzTape(f *testing.F) {
	st, opts := tapeStore(f)
	storetest.FuzzTape(f, st, opts)
}

// TestRandomTapes plays generated tapes: 8, or 1,000 under
// KEEL_RELIABILITY=full.
func TestRandomTapes(t *testing.T) {
	t.Parallel()
	st, opts := tapeStore(t)
	storetest.RunRandomTapes(t, st, "Postgres", reliability.Pick(8, 1000), opts)
}

// tapeStore opens a store on a new schema of the test server, and the
// tape's view of a run's rows through the same pool.
func tapeStore(tb testing.TB) (*pgstore.Store, *storetest.TapeOptions) {
	pool := testdb.Postgres(tb)
	st, err := pgstore.New(context.Background(), pool, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st, &storetest.TapeOptions{Rows: func(ctx context.Context, runID string) (storetest.RunRows, error) {
		var r storetest.RunRows
		err := pool.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM keel_workflow_tasks WHERE run_id = $1),
			(SELECT count(*) FROM keel_inbox WHERE run_id = $1),
			(SELECT count(*) FROM keel_timers WHERE run_id = $1),
			(SELECT count(*) FROM keel_activity_tasks WHERE run_id = $1)`, runID).
			Scan(&r.WorkflowTask, &r.Inbox, &r.Timers, &r.ActivityTasks)
		return r, err
	}}
}
