package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// idleSQL reads, in one snapshot, whether anything can run at ?1 (a
// workflow or activity task that is leased or claimable, or a timer, task
// wake-up or activity deadline that is due) and the earliest moment
// something is scheduled for, as NextWakeup reports it.
const idleSQL = `SELECT
	EXISTS (SELECT 1 FROM workflow_tasks WHERE token IS NOT NULL OR available_at <= ?1 OR wake_at <= ?1)
	OR EXISTS (SELECT 1 FROM activity_tasks
		WHERE token IS NOT NULL OR ready_at <= ?1 OR wake_at <= ?1 OR deadline_at <= ?1)
	OR EXISTS (SELECT 1 FROM timers WHERE fire_at <= ?1),
	(SELECT min(t) FROM (
		SELECT (SELECT min(fire_at) FROM timers) AS t
		UNION ALL SELECT (SELECT min(wake_at) FROM workflow_tasks)
		UNION ALL SELECT (SELECT min(wake_at) FROM activity_tasks)
		UNION ALL SELECT (SELECT min(deadline_at) FROM activity_tasks)))`

// Idle reports whether every run waits for time at now: no workflow or
// activity task is leased (running) or claimable, and no timer, retry
// backoff or activity deadline is due. next is the earliest moment
// something is scheduled for (a timer, the end of a backoff, a deadline),
// zero when nothing is. Both are read in one snapshot.
//
// Tests use it to skip time: when the store is idle, moving a fake clock to
// next is what would happen next anyway (see durabletest.Env).
func (s *Store) Idle(ctx context.Context, now time.Time) (idle bool, next time.Time, err error) {
	var busy bool
	var t sql.NullInt64
	if err := s.db.QueryRowContext(ctx, idleSQL, nanos(now)).Scan(&busy, &t); err != nil {
		return false, time.Time{}, fmt.Errorf("sqlitestore: idle: %w", err)
	}
	if t.Valid {
		next = fromNanos(t.Int64)
	}
	return !busy, next, nil
}
