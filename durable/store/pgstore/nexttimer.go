package pgstore

import (
	"context"
	"fmt"
	"time"
)

// idleSQL reads, in one snapshot, whether anything can run at $1 (a
// workflow or activity task that is leased or claimable, or a timer, task
// wake-up or activity deadline that is due) and the earliest moment
// something is scheduled for, as NextWakeup reports it.
const idleSQL = `SELECT
	EXISTS (SELECT 1 FROM keel_workflow_tasks WHERE token IS NOT NULL OR ready_at <= $1 OR wake_at <= $1)
	OR EXISTS (SELECT 1 FROM keel_activity_tasks
		WHERE token IS NOT NULL OR ready_at <= $1 OR wake_at <= $1 OR deadline_at <= $1)
	OR EXISTS (SELECT 1 FROM keel_timers WHERE fire_at <= $1),
	least(
		(SELECT min(fire_at) FROM keel_timers),
		(SELECT min(wake_at) FROM keel_workflow_tasks),
		(SELECT min(wake_at) FROM keel_activity_tasks),
		(SELECT min(deadline_at) FROM keel_activity_tasks))`

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
	var t *int64
	if err := s.pool.QueryRow(ctx, idleSQL, nanos(now)).Scan(&busy, &t); err != nil {
		return false, time.Time{}, fmt.Errorf("pgstore: idle: %w", err)
	}
	if t != nil {
		next = fromNanos(*t)
	}
	return !busy, next, nil
}
