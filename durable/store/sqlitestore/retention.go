package sqlitestore

import (
	"context"
	"fmt"
	"time"
)

// retentionTables are deleted from, per doomed run, before the runs table.
var retentionTables = []string{ //nolint:gochecknoglobals // fixed list of table names
	"events", "inbox", "signal_requests", "workflow_tasks", "activity_tasks", "timers", "activity_attempts",
}

// DeleteClosedRuns deletes the runs that closed before closedBefore, with
// their history, inbox, signal request IDs, activity attempts, search
// attribute index entries and any leftover tasks and timers. It works in
// transactions of up to batchSize runs (default 1000 when batchSize <= 0),
// so that a large backlog never holds the write lock for long, until none
// is left or ctx ends, and returns the number of runs deleted.
func (s *Store) DeleteClosedRuns(ctx context.Context, closedBefore time.Time, batchSize int) (int, error) {
	if batchSize <= 0 {
		batchSize = 1000
	}
	total := 0
	for {
		var n int64
		err := s.write(ctx, func(t *tx) error {
			if _, err := t.tx.ExecContext(t.ctx, `CREATE TEMP TABLE IF NOT EXISTS doomed_runs (run_id TEXT PRIMARY KEY)`); err != nil {
				return err
			}
			if _, err := t.tx.ExecContext(t.ctx, `DELETE FROM doomed_runs`); err != nil {
				return err
			}
			res, err := t.tx.ExecContext(t.ctx, `INSERT INTO doomed_runs (run_id)
				SELECT run_id FROM runs WHERE closed_at IS NOT NULL AND closed_at < ? ORDER BY closed_at LIMIT ?`,
				nanos(closedBefore), batchSize)
			if err != nil {
				return err
			}
			if n, err = res.RowsAffected(); err != nil || n == 0 {
				return err
			}
			if _, err := t.tx.ExecContext(t.ctx, `DELETE FROM search_attributes WHERE run_seq IN
				(SELECT seq FROM runs WHERE run_id IN (SELECT run_id FROM doomed_runs))`); err != nil {
				return fmt.Errorf("search_attributes: %w", err)
			}
			for _, table := range retentionTables {
				if _, err := t.tx.ExecContext(t.ctx, `DELETE FROM `+table+` WHERE run_id IN (SELECT run_id FROM doomed_runs)`); err != nil {
					return fmt.Errorf("%s: %w", table, err)
				}
			}
			_, err = t.tx.ExecContext(t.ctx, `DELETE FROM runs WHERE run_id IN (SELECT run_id FROM doomed_runs)`)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("sqlitestore: delete closed runs: %w", err)
		}
		total += int(n)
		if n < int64(batchSize) || ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
}
