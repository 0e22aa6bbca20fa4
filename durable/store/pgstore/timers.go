package pgstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelhq/keel/durable/store"
)

// fireTimersSQL fires up to {limit} timers due at $1, earliest first: each
// one's item goes to its run's inbox (through the same upsert of the
// workflow task as every inbox write) and the timer is deleted. Timers and
// run rows that another transaction holds are skipped (a run being
// committed or closed right now); they fire on the next call. It returns
// the task queue of each fired timer's run, in firing order.
//
// Its plan must not depend on how many timers and runs there are, nor on
// statistics that are out of date (a table that grew by 100,000 rows since
// it was last analysed). The candidates are read from the head of
// keel_timers_due, in its order. Their runs are looked up by primary key
// from the array of their IDs, and their status checked after the look-up:
// a condition on it would let the planner read every running run through
// keel_runs_status when its statistics say there are few. The other
// statements reach the rows picked through the same kind of array. (Joined
// with the picked rows, which the planner may do by hashing the whole
// table, the delete read all of keel_timers at every call.)
//
// A candidate whose run is locked is left for a later call with every
// other timer of that run; a run that is not running has no timers, since
// closing a run deletes them. The run's lock excludes concurrent calls too,
// so that two processes never fire one run's timers out of order (one
// skipping the timer the other holds and firing the next).
//
// The batch size is written into the statement ({limit}, see
// fireTimersQuery) rather than passed: with LIMIT $n, PostgreSQL cannot
// bound the generic plan's cost, keeps planning the statement anew at
// every call, and spent more time planning it than running it.
var fireTimersSQL = `
WITH candidate AS (
	SELECT run_id, seq, fire_at, item_type, item_data FROM keel_timers
	WHERE fire_at <= $1
	ORDER BY fire_at, run_id, seq
	LIMIT {limit}
	FOR UPDATE SKIP LOCKED
), run AS (
	SELECT run_id, task_queue, status FROM keel_runs
	WHERE run_id = ANY(ARRAY(SELECT run_id FROM candidate))
	FOR NO KEY UPDATE SKIP LOCKED
), due AS (
	SELECT c.run_id, c.seq, c.fire_at, c.item_type, c.item_data, run.task_queue
	FROM candidate c JOIN run ON run.run_id = c.run_id AND run.status = 'running'
), fired AS (
	DELETE FROM keel_timers t USING due
	WHERE t.run_id = ANY(ARRAY(SELECT run_id FROM due)) AND t.run_id = due.run_id AND t.seq = due.seq
), task AS (
	INSERT INTO keel_workflow_tasks AS w (run_id, task_queue, ready_at)
	SELECT DISTINCT run_id, task_queue, $1::bigint FROM due
	ON CONFLICT (run_id) DO UPDATE SET ready_at = w.ready_at
	RETURNING w.run_id, w.task_queue, w.ready_at
), item AS (
	-- Joined with task so that each run's task row is locked before its
	-- items take their inbox IDs; sorted so that they take them in firing
	-- order.
	INSERT INTO keel_inbox (run_id, type, time, data)
	SELECT due.run_id, due.item_type, $1, due.item_data FROM due JOIN task ON task.run_id = due.run_id
	ORDER BY due.fire_at, due.run_id, due.seq
), notified AS (
	SELECT pg_notify($2, 'w/' || q) FROM (SELECT DISTINCT task_queue AS q FROM task WHERE ready_at <= $1) queues
)
SELECT task_queue, (SELECT count(*) FROM notified) FROM due ORDER BY fire_at, run_id, seq`

// fireTimersQuery returns fireTimersSQL for batches of limit timers.
func fireTimersQuery(limit int) string {
	return strings.Replace(fireTimersSQL, "{limit}", strconv.Itoa(limit), 1)
}

// wakeWorkflowTasksSQL clears up to $2 workflow task wake-ups due at $1 (a
// lease expiry or the end of a retry backoff: the task is claimable again)
// and notifies their queues. It returns the task queue of each. Like
// fireTimersSQL, it finds the picked rows through the array of their IDs.
const wakeWorkflowTasksSQL = `
WITH due AS (
	SELECT run_id FROM keel_workflow_tasks WHERE wake_at <= $1 ORDER BY wake_at LIMIT $2 FOR UPDATE SKIP LOCKED
), woken AS (
	UPDATE keel_workflow_tasks w SET wake_at = NULL FROM due
	WHERE w.run_id = ANY(ARRAY(SELECT run_id FROM due)) AND w.run_id = due.run_id
	RETURNING w.task_queue
), notified AS (
	SELECT pg_notify($3, 'w/' || q) FROM (SELECT DISTINCT task_queue AS q FROM woken) queues
)
SELECT task_queue, (SELECT count(*) FROM notified) FROM woken`

// wakeActivityTasksSQL does the same for up to $2 activity task wake-ups
// (the end of a retry backoff).
const wakeActivityTasksSQL = `
WITH due AS (
	SELECT run_id, seq FROM keel_activity_tasks WHERE wake_at <= $1 ORDER BY wake_at LIMIT $2
	FOR UPDATE SKIP LOCKED
), woken AS (
	UPDATE keel_activity_tasks a SET wake_at = NULL FROM due
	WHERE a.run_id = ANY(ARRAY(SELECT run_id FROM due)) AND a.run_id = due.run_id AND a.seq = due.seq
	RETURNING a.task_queue
), notified AS (
	SELECT pg_notify($3, 'a/' || q) FROM (SELECT DISTINCT task_queue AS q FROM woken) queues
)
SELECT count(*) FROM notified`

// FireTimers fires up to limit timers due at now, earliest first: each
// one's item is written to its run's inbox (which makes the run's workflow
// task runnable) and the timer is deleted. It also acknowledges up to limit
// due wake-ups of delayed tasks (an expired workflow task lease, the end of
// a retry backoff), so that NextWakeup stops reporting them, and notifies
// the queues of the tasks that became claimable. One round trip.
//
// It returns the task queue of the run of each fired timer and of each
// workflow task that became claimable, in that order, one entry each.
func (s *Store) FireTimers(ctx context.Context, now time.Time, limit int) ([]string, error) {
	if limit < 1 {
		return nil, fmt.Errorf("pgstore: fire timers: limit %d, want at least 1", limit)
	}
	tnow := nanos(nowOr(now))
	var queues []string
	scan := func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				queue    string
				notified int64
			)
			if err := rows.Scan(&queue, &notified); err != nil {
				return err
			}
			queues = append(queues, queue)
		}
		return rows.Err()
	}
	b := &pgx.Batch{}
	b.Queue(fireTimersQuery(limit), tnow, s.channel).Query(scan)
	b.Queue(wakeWorkflowTasksSQL, tnow, limit, s.channel).Query(scan)
	b.Queue(wakeActivityTasksSQL, tnow, limit, s.channel)
	if err := s.send(ctx, b); err != nil {
		return nil, fmt.Errorf("pgstore: fire timers: %w", err)
	}
	return queues, nil
}

// nextWakeupSQL is the earliest of: timers, workflow and activity task
// wake-ups, and activity deadlines. Each min() is one step down an index.
const nextWakeupSQL = `
SELECT least(
	(SELECT min(fire_at) FROM keel_timers),
	(SELECT min(wake_at) FROM keel_workflow_tasks),
	(SELECT min(wake_at) FROM keel_activity_tasks),
	(SELECT min(deadline_at) FROM keel_activity_tasks))`

// NextWakeup returns the earliest moment something is scheduled for: a
// timer, the end of a workflow task's lease or retry backoff, the end of an
// activity task's retry backoff, or an activity task's lease expiry or
// schedule-to-start or schedule-to-close deadline. The moment is in the past
// when something is already due: FireTimers and ExpiredActivityTasks take
// care of all of these, after which they are no longer reported. Tasks that
// were ready as soon as they were written are not reported: whoever wrote
// them wakes the pollers.
func (s *Store) NextWakeup(ctx context.Context) (time.Time, bool, error) {
	var t *int64
	if err := s.pool.QueryRow(ctx, nextWakeupSQL).Scan(&t); err != nil {
		return time.Time{}, false, fmt.Errorf("pgstore: next wakeup: %w", err)
	}
	if t == nil {
		return time.Time{}, false, nil
	}
	return fromNanos(*t), true, nil
}

// fireOneTimerSQL deletes timer $2 of run $1 if it is due at $3, and stops
// the transaction with KL005 if there is no such timer.
const fireOneTimerSQL = `
WITH gone AS (
	DELETE FROM keel_timers WHERE run_id = $1 AND seq = $2 AND fire_at <= $3 RETURNING 1
)
SELECT keel_raise('KL005', 'the timer is gone or not due')
WHERE NOT EXISTS (SELECT 1 FROM gone)`

// FireTimerWithWorkflowTask fires timer p.Seq of a run and commits the
// workflow task the caller ran on it, in one round trip: the run row is
// locked as by a commit, the run must be running and idle at the expected
// history length, the timer must be due, and the commit's statements
// follow. It returns store.ErrRunBusy, writing nothing, otherwise.
// FireTimers skips locked rows, so the two never wait for each other.
func (s *Store) FireTimerWithWorkflowTask(ctx context.Context, p store.FireTimerWithWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	wp := p.Workflow
	res, err := s.sendIdleCommit(ctx, wp, func(b *pgx.Batch) {
		b.Queue(fireOneTimerSQL, wp.RunID, p.Seq, nanos(nowOr(wp.Now)))
	})
	if err != nil {
		return res, fmt.Errorf("pgstore: fire timer %s/%d with workflow task: %w", wp.RunID, p.Seq, err)
	}
	return res, nil
}
