package sqlitestore

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// A batch commits the writes of its operations that succeed and none of
// one that fails, and each caller gets its own outcome, whether the batch
// runs without savepoints first (and again with them after a failure) or
// with them from the start.
func TestBatchIsolatesFailingOperation(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "keel.db"), nil)
	require.NoError(t, err)
	defer s.Close()
	_, err = s.db.Exec(`CREATE TABLE scratch (k TEXT PRIMARY KEY)`)
	require.NoError(t, err)

	boom := errors.New("boom")
	runs := map[string]int{} // body executions per key
	op := func(k string, fail bool) *writeOp {
		o := &writeOp{done: make(chan error, 1), fn: func(t *tx) error {
			runs[k]++
			if _, err := t.tx.Exec(`INSERT INTO scratch (k) VALUES (?)`, k); err != nil {
				return err
			}
			if fail {
				return boom
			}
			return nil
		}}
		o.state.Store(opTaken)
		return o
	}
	keys := func() []string {
		rows, err := s.db.Query(`SELECT k FROM scratch ORDER BY k`)
		require.NoError(t, err)
		defer rows.Close()
		var out []string
		for rows.Next() {
			var k string
			require.NoError(t, rows.Scan(&k))
			out = append(out, k)
		}
		return out
	}

	// All succeed: one pass, no savepoints needed.
	errs := s.runTx([]*writeOp{op("a1", false), op("a2", false), op("a3", false)})
	require.Equal(t, []error{nil, nil, nil}, errs)
	require.Equal(t, 1, runs["a1"])
	require.Zero(t, s.guarded, "a batch that succeeds leaves the optimistic mode on")

	// The second fails: the first pass is rolled back and the batch runs
	// again under savepoints, so b1 and b3 run twice and b2 is undone.
	errs = s.runTx([]*writeOp{op("b1", false), op("b2", true), op("b3", false)})
	require.NoError(t, errs[0])
	require.ErrorIs(t, errs[1], boom)
	require.NoError(t, errs[2])
	require.Equal(t, 2, runs["b1"], "the first pass ran b1, then the guarded pass")
	require.Equal(t, 1, runs["b3"], "the first pass stopped at b2")
	require.Equal(t, savepointBatches, s.guarded)
	require.Equal(t, []string{"a1", "a2", "a3", "b1", "b3"}, keys())

	// The batches after a failure run under savepoints at once.
	errs = s.runTx([]*writeOp{op("c1", true), op("c2", false)})
	require.ErrorIs(t, errs[0], boom)
	require.NoError(t, errs[1])
	require.Equal(t, 1, runs["c1"], "guarded from the start: one pass")
	require.Equal(t, savepointBatches-1, s.guarded)
	require.Equal(t, []string{"a1", "a2", "a3", "b1", "b3", "c2"}, keys())

	// Once they are used up, batches are optimistic again.
	for i := range savepointBatches - 1 {
		require.Equal(t, []error{nil, nil}, s.runTx([]*writeOp{op(fmt.Sprint("d", i), false), op(fmt.Sprint("e", i), false)}))
	}
	require.Zero(t, s.guarded)
	errs = s.runTx([]*writeOp{op("f1", false), op("f2", false)})
	require.Equal(t, []error{nil, nil}, errs)
	require.Equal(t, 1, runs["f1"])
}

// A batch whose transaction cannot begin fails every operation at once,
// without running them or retrying under savepoints.
func TestBatchBeginFails(t *testing.T) {
	db, err := sql.Open("sqlite", DSN(filepath.Join(t.TempDir(), "keel.db")))
	require.NoError(t, err)
	s, err := New(db, nil)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, db.Close())

	ran := 0
	op := func() *writeOp {
		o := &writeOp{done: make(chan error, 1), fn: func(*tx) error { ran++; return nil }}
		o.state.Store(opTaken)
		return o
	}
	errs := s.runTx([]*writeOp{op(), op()})
	require.Len(t, errs, 2)
	for _, err := range errs {
		require.ErrorContains(t, err, "begin")
	}
	require.Zero(t, ran)
	require.Zero(t, s.guarded)
}
