//go:build failpoints

package crashall_test

import (
	"context"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store/sqlitestore"
)

// TestTwoProcessesOpenANewSQLiteFile guards against a bug the crash suite
// found: two processes that open the same new SQLite file at once (a
// worker and a reviewer process, two workers started together) failed now
// and then with "sqlitestore: migrate: database is locked (SQLITE_BUSY)".
// The first connection of each runs the DSN's PRAGMA journal_mode=WAL;
// while the other process converts the new file to WAL, SQLite answers it
// SQLITE_BUSY at once, without waiting for the busy timeout.
// sqlitestore.WaitReady retries that first connection. Both processes open
// at the same instant; before the fix a few rounds in a hundred failed.
func TestTwoProcessesOpenANewSQLiteFile(t *testing.T) {
	t.Parallel()
	var failures []string
	for range 60 {
		w := &workspace{dir: t.TempDir()}
		w.db = filepath.Join(w.dir, "keel.db")
		w.fake = nil
		var wg sync.WaitGroup
		var mu sync.Mutex
		at := envStartAt + "=" + strconv.FormatInt(time.Now().Add(300*time.Millisecond).UnixNano(), 10)
		for range 2 {
			wg.Go(func() {
				p := w.run(context.Background(), "open", 0, at)
				if p.err != nil {
					mu.Lock()
					failures = append(failures, p.output)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	require.Empty(t, failures, "processes that failed to open a new SQLite file together")
}

// createDatabase creates the SQLite file of a workspace before its
// processes start, so that they do not race to create it (see
// TestTwoProcessesOpenANewSQLiteFile).
func createDatabase(t *testing.T, path string) {
	t.Helper()
	st, err := sqlitestore.Open(path, nil)
	require.NoError(t, err)
	require.NoError(t, st.Close())
}
