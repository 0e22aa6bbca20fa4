package pgstore

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/internal/testdb"
)

// TestQueuePlansReadTheBatchNotTheTable checks that the statements which
// pick a batch of rows and then change them (firing timers, waking and
// claiming tasks) read only the rows they pick, with the generic plan
// pgx's prepared statements end up with and with statistics taken when
// the tables were small: a plan that hashed the whole table to join it
// with the rows picked made every call cost a scan of it (60 ms a claim
// with 100,000 queued tasks).
func TestQueuePlansReadTheBatchNotTheTable(t *testing.T) {
	t.Parallel()
	pool := testdb.Postgres(t)
	s, err := New(t.Context(), pool, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	// The runs analysed are closed, those added later running: statistics
	// that say no run is running, as when the table was analysed before
	// the runs now sleeping were started.
	fill := func(from, to int, status string) string {
		return fmt.Sprintf(`
INSERT INTO keel_runs (run_id, workflow_id, workflow_type, task_queue, status, history_len, history_bytes, created_at, updated_at)
SELECT 'r' || i, 'w' || i, 'sleep', 'q', '%[3]s', 3, 100, i, i FROM generate_series(%[1]d, %[2]d) i;
INSERT INTO keel_timers (run_id, seq, fire_at, item_type)
SELECT 'r' || i, 1, i, 'timer_fired' FROM generate_series(%[1]d, %[2]d) i;
INSERT INTO keel_workflow_tasks (run_id, task_queue, ready_at, wake_at)
SELECT 'r' || i, 'q', i, i FROM generate_series(%[1]d, %[2]d) i;
INSERT INTO keel_activity_tasks (run_id, seq, workflow_id, activity_type, task_queue, attempt,
	scheduled_at, ready_at, wake_at, schedule_to_start, start_to_close, heartbeat_timeout)
SELECT 'r' || i, 1, 'w' || i, 'a', 'q', 1, 0, i, i, 0, 0, 0 FROM generate_series(%[1]d, %[2]d) i;`, from, to, status)
	}
	tables := []string{"keel_runs", "keel_timers", "keel_workflow_tasks", "keel_activity_tasks"}
	for _, tbl := range tables {
		_, err := pool.Exec(t.Context(), "ALTER TABLE "+tbl+" SET (autovacuum_enabled = false)")
		require.NoError(t, err)
	}
	_, err = pool.Exec(t.Context(), fill(1, 40, "completed")+"ANALYZE;"+fill(41, 20000, "running"), pgx.QueryExecModeSimpleProtocol)
	require.NoError(t, err)

	tokens := "ARRAY['a','b','c','d','e','f','g','h','i','j']::text[]"
	for _, tc := range []struct {
		name, sql, args string
	}{
		{"fire timers", fireTimersQuery(256), "100, 'keel'"},
		{"wake workflow tasks", wakeWorkflowTasksSQL, "100, 256, 'keel'"},
		{"wake activity tasks", wakeActivityTasksSQL, "100, 256, 'keel'"},
		{"claim workflow tasks", claimWorkflowTasksSQL, "'q', 100, 10, " + tokens + ", 'me', 1000"},
		{"claim activity tasks", claimActivityTasksSQL, "'q', 100, 10, 'me'"},
	} {
		var plan []string
		err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
			for _, q := range []string{
				"SET LOCAL plan_cache_mode = force_generic_plan",
				"PREPARE picked AS " + tc.sql,
			} {
				if _, err := tx.Exec(t.Context(), q); err != nil {
					return err
				}
			}
			rows, err := tx.Query(t.Context(), "EXPLAIN EXECUTE picked("+tc.args+")", pgx.QueryExecModeSimpleProtocol)
			if err != nil {
				return err
			}
			plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			_, err = tx.Exec(t.Context(), "DEALLOCATE picked")
			return err
		})
		require.NoError(t, err, tc.name)
		text := strings.Join(plan, "\n")
		require.Contains(t, text, "$1", "%s: not the generic plan\n%s", tc.name, text)
		for _, tbl := range tables {
			require.NotContains(t, text, "Seq Scan on "+tbl+" ", "%s reads all of %s\n%s", tc.name, tbl, text)
		}
		for _, line := range plan {
			if strings.Contains(line, "keel_runs_") { // an index of keel_runs
				require.Contains(t, line, "keel_runs_pkey", "%s reads runs by more than their IDs\n%s", tc.name, text)
			}
		}
	}
}
