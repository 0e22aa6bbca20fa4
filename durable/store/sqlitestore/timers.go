package sqlitestore

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/keelhq/keel/durable/store"
)

// FireTimers fires up to limit timers due at now, earliest first: each
// one's item is written to its run's inbox (which makes the run's workflow
// task runnable) and the timer is deleted. It also acknowledges up to limit
// due wake-ups of delayed tasks (an expired workflow task lease, the end of
// a retry backoff), so that NextWakeup stops reporting them.
//
// It returns the task queue of the run of each fired timer and of each
// workflow task that became claimable, in that order, one entry each.
func (s *Store) FireTimers(ctx context.Context, now time.Time, limit int) ([]string, error) {
	if limit < 1 {
		return nil, fmt.Errorf("sqlitestore: fire timers: limit %d, want at least 1", limit)
	}
	now = nowOr(now)
	if ok, err := s.probe(ctx, s.q.probeDue, nanos(now)); err != nil || !ok {
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: fire timers: %w", err)
		}
		return nil, nil
	}
	type fired struct {
		runID, queue, typ string
		seq, fireAt       int64
		data              []byte
	}
	var queues []string
	err := s.write(ctx, func(t *tx) error {
		queues = queues[:0]
		rows, err := t.query(s.q.fireTimers, nanos(now), limit)
		if err != nil {
			return err
		}
		var timers []fired
		for rows.Next() {
			var f fired
			if err := rows.Scan(&f.runID, &f.seq, &f.fireAt, &f.queue, &f.typ, &f.data); err != nil {
				rows.Close()
				return err
			}
			timers = append(timers, f)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		// RETURNING has no order; write the items in firing order.
		slices.SortFunc(timers, func(a, b fired) int {
			return cmp.Or(cmp.Compare(a.fireAt, b.fireAt), cmp.Compare(a.runID, b.runID), cmp.Compare(a.seq, b.seq))
		})
		for _, f := range timers {
			if _, err := t.exec(s.q.insertInbox, f.runID, f.typ, nanos(now), blob(f.data)); err != nil {
				return err
			}
			queues = append(queues, f.queue)
		}
		rows, err = t.query(s.q.wakeWorkflows, nanos(now), limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			var queue string
			if err := rows.Scan(&queue); err != nil {
				rows.Close()
				return err
			}
			queues = append(queues, queue)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		_, err = t.exec(s.q.wakeActivities, nanos(now), limit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: fire timers: %w", err)
	}
	return queues, nil
}

// NextWakeup returns the earliest moment something is scheduled for: a
// timer, the end of a workflow task's lease or retry backoff, the end of an
// activity task's retry backoff, or an activity task's lease expiry or
// schedule-to-start or schedule-to-close deadline. The moment is in the past
// when something is already due: FireTimers and ExpiredActivityTasks take
// care of all of these, after which they are no longer reported. Tasks that
// were ready as soon as they were written are not reported: whoever wrote
// them wakes the pollers.
func (s *Store) NextWakeup(ctx context.Context) (time.Time, bool, error) {
	var t sql.NullInt64
	if err := s.q.nextWakeup.QueryRowContext(ctx).Scan(&t); err != nil {
		return time.Time{}, false, fmt.Errorf("sqlitestore: next wakeup: %w", err)
	}
	if !t.Valid {
		return time.Time{}, false, nil
	}
	return fromNanos(t.Int64), true, nil
}

// FireTimerWithWorkflowTask fires timer p.Seq of a run and commits the
// workflow task the caller ran on it, in one transaction: the timer is
// deleted if it is due at p.Workflow.Now, and the commit is fenced on the
// run being running and idle at the expected history length. It returns
// store.ErrRunBusy, writing nothing, when the timer is gone or not due or
// the run is not idle.
func (s *Store) FireTimerWithWorkflowTask(ctx context.Context, p store.FireTimerWithWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	wrap := func(err error) error {
		return fmt.Errorf("sqlitestore: fire timer %s/%d with workflow task: %w", p.Workflow.RunID, p.Seq, err)
	}
	c, err := newIdleCommit(&p.Workflow)
	if err != nil {
		return store.CompleteWorkflowTaskResult{}, wrap(err)
	}
	var res store.CompleteWorkflowTaskResult
	err = s.write(ctx, func(t *tx) error {
		n, err := t.execSQL(`DELETE FROM timers WHERE run_id = ? AND seq = ? AND fire_at <= ?`,
			p.Workflow.RunID, p.Seq, nanos(c.now))
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrRunBusy
		}
		res, err = s.commitWorkflowTask(t, c, true)
		return err
	})
	if err != nil {
		return store.CompleteWorkflowTaskResult{}, wrap(err)
	}
	return res, nil
}
