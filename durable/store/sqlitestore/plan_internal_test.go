package sqlitestore

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestQueryPlansUseIndexes checks that no statement the store prepares
// scans a whole table: every lookup, claim and sweep goes through an index.
func TestQueryPlansUseIndexes(t *testing.T) {
	t.Parallel()
	s, err := Open(filepath.Join(t.TempDir(), "keel.db"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	// "SCAN timers USING COVERING INDEX …" walks an index in order (with a
	// LIMIT); a bare "SCAN timers" reads the whole table.
	fullScan := regexp.MustCompile(`^SCAN (runs|events|inbox|signal_requests|workflow_tasks|activity_tasks|timers|activity_attempts)$`)
	for _, st := range s.q.statements() {
		args := make([]any, paramCount(st.text))
		for i := range args {
			args[i] = 1
		}
		rows, err := s.db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+st.text, args...)
		require.NoError(t, err, st.text)
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
			plan = append(plan, detail)
			require.False(t, fullScan.MatchString(detail), "%s\nscans a table:\n%s", st.text, strings.Join(plan, "\n"))
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
	}
}

// paramCount returns the number of arguments a statement takes: the
// highest ?N, or the number of plain ? placeholders.
func paramCount(q string) int {
	numbered, plain := 0, 0
	for i := 0; i < len(q); i++ {
		if q[i] != '?' {
			continue
		}
		n, j := 0, i+1
		for ; j < len(q) && q[j] >= '0' && q[j] <= '9'; j++ {
			n = n*10 + int(q[j]-'0')
		}
		if j == i+1 {
			plain++
		}
		numbered = max(numbered, n)
	}
	return max(numbered, plain)
}
