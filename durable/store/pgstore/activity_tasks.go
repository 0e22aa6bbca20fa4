package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keelhq/keel/durable/store"
)

// activityColumns are the columns scanActivityTask reads, in its order.
const activityColumns = `run_id, seq, workflow_id, activity_type, task_queue, input, options, attempt,
	scheduled_at, ready_at, schedule_to_start_deadline, schedule_to_close_deadline, start_to_close,
	heartbeat_timeout, heartbeat_details, token, owner, started_at, lease_expires_at, cancel_requested`

// activityLeaseSQL is the length of the lease on activity task "a" from
// its start: the earlier of its start-to-close and heartbeat timeouts,
// NULL (no expiry) when neither is set.
const activityLeaseSQL = `least(nullif(a.start_to_close, 0), nullif(a.heartbeat_timeout, 0))`

// scanActivityTask reads one row of activityColumns, followed by extra
// columns into extra.
func scanActivityTask(row pgx.Row, extra ...any) (store.ActivityTask, error) {
	var (
		a                         store.ActivityTask
		scheduled, ready, stc, hb int64
		s2s, s2c, started, lease  *int64
		token, owner              *string
	)
	err := row.Scan(append([]any{&a.RunID, &a.Seq, &a.WorkflowID, &a.ActivityType, &a.TaskQueue, &a.Input,
		&a.Options, &a.Attempt, &scheduled, &ready, &s2s, &s2c, &stc, &hb, &a.HeartbeatDetails, &token, &owner,
		&started, &lease, &a.CancelRequested}, extra...)...)
	if err != nil {
		return store.ActivityTask{}, err
	}
	a.Input, a.Options, a.HeartbeatDetails = bytesOrNil(a.Input), bytesOrNil(a.Options), bytesOrNil(a.HeartbeatDetails)
	a.ScheduledAt, a.ReadyAt = fromNanos(scheduled), fromNanos(ready)
	a.ScheduleToStartDeadline, a.ScheduleToCloseDeadline = fromNullNanos(s2s), fromNullNanos(s2c)
	a.StartToClose, a.HeartbeatTimeout = time.Duration(stc), time.Duration(hb)
	if token != nil {
		a.Token = *token
	}
	if owner != nil {
		a.Owner = *owner
	}
	a.StartedAt, a.LeaseExpiresAt = fromNullNanos(started), fromNullNanos(lease)
	return a, nil
}

func scanActivityTasks(rows pgx.Rows) ([]store.ActivityTask, error) {
	defer rows.Close()
	var out []store.ActivityTask
	for rows.Next() {
		a, err := scanActivityTask(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// claimActivityTasksSQL leases up to $3 unleased activity tasks of queue $1
// that are ready at $2 and not past a deadline, oldest first, skipping rows
// another transaction holds. The lease runs to the earlier of the
// start-to-close and heartbeat timeouts, and has no expiry when neither is
// set. The update finds the picked rows through the array of their run
// IDs, as claimWorkflowTasksSQL does.
var claimActivityTasksSQL = `
WITH picked AS (
	SELECT run_id, seq FROM keel_activity_tasks
	WHERE task_queue = $1 AND token IS NULL AND ready_at <= $2 AND (deadline_at IS NULL OR deadline_at > $2)
	ORDER BY ready_at
	LIMIT $3
	FOR UPDATE SKIP LOCKED
)
UPDATE keel_activity_tasks a
SET token = gen_random_uuid()::text, owner = $4, started_at = $2, wake_at = NULL,
	lease_expires_at = $2 + ` + activityLeaseSQL + `
FROM picked
WHERE a.run_id = ANY(ARRAY(SELECT run_id FROM picked)) AND a.run_id = picked.run_id AND a.seq = picked.seq
RETURNING ` + qualify("a", activityColumns)

// ClaimActivityTasks leases up to p.Limit unleased activity tasks on
// p.TaskQueue that are ready at p.Now, oldest first, in one statement with
// FOR UPDATE SKIP LOCKED, committed without waiting for the WAL flush (see
// asyncCommitSQL). Tasks already past their schedule-to-start or
// schedule-to-close deadline are left for ExpiredActivityTasks. The lease
// expires at the earlier of Now+StartToClose and Now+HeartbeatTimeout, or
// never if both are zero; p.LeaseUntil is not used.
func (s *Store) ClaimActivityTasks(ctx context.Context, p store.ClaimParams) ([]store.ActivityTask, error) {
	now := nowOr(p.Now)
	if p.Limit < 1 {
		return nil, fmt.Errorf("pgstore: claim activity tasks: limit %d, want at least 1", p.Limit)
	}
	var tasks []store.ActivityTask
	b := &pgx.Batch{}
	b.Queue(asyncCommitSQL)
	b.Queue(claimActivityTasksSQL, p.TaskQueue, nanos(now), p.Limit, p.Owner).Query(func(rows pgx.Rows) error {
		var err error
		tasks, err = scanActivityTasks(rows)
		return err
	})
	if err := s.send(ctx, b); err != nil {
		return nil, fmt.Errorf("pgstore: claim activity tasks: %w", err)
	}
	// RETURNING has no order.
	slices.SortFunc(tasks, func(a, b store.ActivityTask) int {
		return cmp.Or(a.ReadyAt.Compare(b.ReadyAt), cmp.Compare(a.RunID, b.RunID), cmp.Compare(a.Seq, b.Seq))
	})
	return tasks, nil
}

// recordAttemptSQL is the CTE that records an attempt ($4 to $10: attempt,
// activity type, owner, started at, ended at, outcome, error) of the task
// that the CTE named "task" holds. A record of the same attempt is
// replaced.
const recordAttemptSQL = `
recorded AS (
	INSERT INTO keel_activity_attempts (run_id, seq, attempt, activity_type, owner, started_at, ended_at,
		outcome, error)
	SELECT run_id, seq, $4, $5, $6, $7, $8, $9, $10 FROM task
	ON CONFLICT (run_id, seq, attempt) DO UPDATE SET activity_type = excluded.activity_type,
		owner = excluded.owner, started_at = excluded.started_at, ended_at = excluded.ended_at,
		outcome = excluded.outcome, error = excluded.error
)`

// deleteTaskCTEs delete activity task ($1, $2) if it still has token $3
// or, for the empty token, is unleased at attempt $4 (CTE "task"), and
// record the attempt (recordAttemptSQL).
const deleteTaskCTEs = `
WITH task AS (
	DELETE FROM keel_activity_tasks
	WHERE run_id = $1 AND seq = $2 AND (token = $3 OR ($3 = '' AND token IS NULL AND attempt = $4))
	RETURNING run_id, seq
), ` + recordAttemptSQL

// lockRunningTemplate locks run $1's row ({lock} is the row lock's
// strength) and stops the transaction with KL001 unless the run is
// running: the activity tasks of a run that is not running are gone, so
// the caller's lease on one is lost.
const lockRunningTemplate = `
SELECT keel_raise('KL001', 'the run is not running')
WHERE NOT EXISTS (SELECT 1 FROM keel_runs WHERE run_id = $1 AND status = 'running' FOR {lock})`

// Statements of CompleteActivityTask. The run row is share-locked first
// (every writer locks a run's row before its task rows); the task is
// deleted if it still has the caller's token or, for the empty token that
// ExpiredActivityTasks returns for an unleased task, if it is still
// unleased at the same attempt.
var (
	lockRunSharedSQL = strings.Replace(lockRunningTemplate, "{lock}", "SHARE", 1)

	deleteActivityTaskSQL = deleteTaskCTEs + `
SELECT keel_raise('KL001', 'the activity task has another token or attempt')
WHERE NOT EXISTS (SELECT 1 FROM task)`

	activityOutcomeSQL = `
WITH target AS (
	SELECT run_id, task_queue FROM keel_runs WHERE run_id = $1
), ` + wakeRun(2, 3, 4, 5) + `
SELECT count(*) FROM notified`

	// With an eager lease, the outcome is written without a notification:
	// the task is claimable, and then leased by leaseWorkflowTaskSQL, or
	// it is not, and nobody could claim it.
	activityOutcomeEagerSQL = `
WITH target AS (
	SELECT run_id, task_queue FROM keel_runs WHERE run_id = $1
), ` + wakeRunUnnotified(2, 3, 4) + `
SELECT count(*) FROM task`

	// leaseWorkflowTaskSQL leases run $1's workflow task, if it is
	// claimable at $2, as claimWorkflowTasksSQL does (token $3, owner $4,
	// lease expiry $5), and reads it as claimedWorkflowTasksSQL does. The
	// task row is locked already (by the inbox write before it), and the
	// run row too, so the statement's snapshot has every inbox item of the
	// run and its current row.
	leaseWorkflowTaskSQL = `
WITH leased AS (
	UPDATE keel_workflow_tasks SET token = $3, owner = $4, ready_at = $5, wake_at = $5, lease_expires_at = $5,
		attempt = attempt + 1
	WHERE run_id = $1 AND ready_at <= $2
	RETURNING run_id, token, attempt
)` + leasedWorkflowTasks("leased")
)

// CompleteActivityTask deletes the activity task, records p.Attempt, and
// writes p.Item to the run's inbox, which makes its workflow task runnable,
// in one round trip.
//
// With p.Eager, the same round trip also leases the run's workflow task to
// the caller if it is claimable then, as ClaimWorkflowTasks would, and
// returns it with the run and its whole inbox. The task is not notified.
func (s *Store) CompleteActivityTask(ctx context.Context, p store.CompleteActivityTaskParams) (store.CompleteActivityTaskResult, error) {
	now := nowOr(p.Now)
	fail := func(err error) (store.CompleteActivityTaskResult, error) {
		return store.CompleteActivityTaskResult{}, fmt.Errorf("pgstore: complete activity %s/%d: %w", p.RunID, p.Seq, err)
	}
	if e := p.Eager; e != nil && !e.LeaseUntil.After(now) {
		return fail(fmt.Errorf("eager LeaseUntil %v is not after Now %v", e.LeaseUntil, now))
	}
	var res store.CompleteActivityTaskResult
	b := &pgx.Batch{}
	queueActivityDone(b, lockRunSharedSQL, p)
	if e := p.Eager; e == nil {
		b.Queue(activityOutcomeSQL, p.RunID, nanos(now), p.Item.Type, p.Item.Data, s.channel)
	} else {
		b.Queue(activityOutcomeEagerSQL, p.RunID, nanos(now), p.Item.Type, p.Item.Data)
		b.Queue(leaseWorkflowTaskSQL, p.RunID, nanos(now), uuid.NewString(), e.Owner, nanos(e.LeaseUntil)).
			Query(func(rows pgx.Rows) error {
				for rows.Next() {
					wt, err := scanWorkflowTask(rows)
					if err != nil {
						return err
					}
					res.Task = &wt
				}
				return rows.Err()
			})
	}
	if err := s.send(ctx, b); err != nil {
		return fail(err)
	}
	return res, nil
}

// queueActivityDone queues on b the statements that end activity task p:
// lock, which locks the run row and fails unless the run is running, and
// the fenced delete of the task with the record of p.Attempt.
func queueActivityDone(b *pgx.Batch, lock string, p store.CompleteActivityTaskParams) {
	a := p.Attempt
	b.Queue(lock, p.RunID)
	b.Queue(deleteActivityTaskSQL, p.RunID, p.Seq, p.Token, a.Attempt, a.ActivityType, a.Owner,
		nullNanos(a.StartedAt), nullNanos(a.EndedAt), a.Outcome, a.Error)
}

// Statements of CompleteActivityWithWorkflowTask, around
// deleteActivityTaskSQL and the statements of a workflow task commit.
var (
	// lockRunForUpdateSQL locks the run row as a commit does (the
	// transaction appends to the history), before the task rows. The lock
	// conflicts with the share lock that every inbox write holds on the run
	// row while it upserts the run's workflow task row, and with the lock
	// of every other commit: those writes land wholly before this
	// transaction or wholly after it.
	lockRunForUpdateSQL = strings.Replace(lockRunningTemplate, "{lock}", "NO KEY UPDATE", 1)

	// runIdleSQL stops the transaction with KL005 unless run $1, locked by
	// lockRunForUpdateSQL, has exactly $2 events and no workflow task (so
	// an empty inbox, and nobody holding or waiting for a task). It is a
	// statement of its own, after the lock: its snapshot has every commit
	// of the writers that held the lock before, which the locking
	// statement's snapshot, taken before its wait, would miss.
	runIdleSQL = `
SELECT keel_raise('KL005', 'the run has a workflow task or its history moved on')
WHERE ` + runNotIdle(2)

	// deleteActivityTaskIdleSQL is deleteActivityTaskSQL followed by the
	// check of runIdleSQL, with the history length in $11: the statement
	// runs after the lock as runIdleSQL would, so its snapshot is as
	// fresh, and the two cost the server one statement.
	deleteActivityTaskIdleSQL = deleteTaskCTEs + `
SELECT CASE
	WHEN NOT EXISTS (SELECT 1 FROM task)
		THEN keel_raise('KL001', 'the activity task has another token or attempt')
	WHEN ` + runNotIdle(11) + `
		THEN keel_raise('KL005', 'the run has a workflow task or its history moved on')
	END`
)

// runNotIdle is the condition that run $1 does not have exactly $n events
// (n is the parameter's number) or has a workflow task.
func runNotIdle(n int) string {
	return fmt.Sprintf(`(NOT EXISTS (SELECT 1 FROM keel_runs WHERE run_id = $1 AND history_len = $%d)
	OR EXISTS (SELECT 1 FROM keel_workflow_tasks WHERE run_id = $1))`, n)
}

// CompleteActivityWithWorkflowTask records an activity's final outcome and
// commits the workflow task the caller already ran on it, in one round
// trip. The activity is fenced first, as CompleteActivityTask fences it
// (store.ErrLeaseLost, also when the run is not running); then the run
// must be idle: exactly p.Workflow.ExpectedHistoryLen events and no
// workflow task row (store.ErrRunBusy). Either way nothing is written.
// The outcome's inbox item is not written, and no workflow task row is
// made: the commit writes what CompleteWorkflowTask writes after its
// fence, eager activities included, and its result's Pending is always
// false.
func (s *Store) CompleteActivityWithWorkflowTask(ctx context.Context, p store.CompleteActivityWithWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	ap, wp := p.Activity, p.Workflow
	fail := func(err error) (store.CompleteWorkflowTaskResult, error) {
		return store.CompleteWorkflowTaskResult{}, fmt.Errorf("pgstore: complete activity %s/%d with workflow task: %w", ap.RunID, ap.Seq, err)
	}
	if wp.RunID != ap.RunID {
		return fail(fmt.Errorf("the workflow task is of run %q", wp.RunID))
	}
	if wp.NeedsWorkflowTask() {
		return fail(store.ErrNeedsWorkflowTask)
	}
	var result store.CompleteWorkflowTaskResult
	b := &pgx.Batch{}
	a := ap.Attempt
	b.Queue(lockRunForUpdateSQL, ap.RunID)
	b.Queue(deleteActivityTaskIdleSQL, ap.RunID, ap.Seq, ap.Token, a.Attempt, a.ActivityType, a.Owner,
		nullNanos(a.StartedAt), nullNanos(a.EndedAt), a.Outcome, a.Error, wp.ExpectedHistoryLen)
	if err := s.queueCommit(b, wp, nowOr(wp.Now), true, &result); err != nil {
		return fail(err)
	}
	if err := s.send(ctx, b); err != nil {
		return fail(err)
	}
	return result, nil
}

// retryActivityTaskSQL makes a task claimable again at $11 as the next
// attempt, unleased, keeping its heartbeat details; the next attempt gets a
// fresh schedule-to-start deadline, measured from the moment it becomes
// ready. It is fenced as deleteActivityTaskSQL is. Nothing else locks the
// run: the statement touches the task row only.
var retryActivityTaskSQL = `
WITH task AS (
	UPDATE keel_activity_tasks SET attempt = attempt + 1, ready_at = $11, wake_at = $12, token = NULL,
		owner = NULL, started_at = NULL, lease_expires_at = NULL,
		schedule_to_start_deadline = CASE WHEN schedule_to_start > 0 THEN $11 + schedule_to_start END
	WHERE run_id = $1 AND seq = $2 AND (token = $3 OR ($3 = '' AND token IS NULL AND attempt = $4))
	RETURNING run_id, seq, task_queue
), ` + recordAttemptSQL + `, notified AS (
	SELECT pg_notify($14, 'a/' || task_queue) FROM task WHERE $11 <= $13
)
SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM task)
		THEN keel_raise('KL001', 'the activity task has another token or attempt') END,
	(SELECT count(*) FROM notified)`

// RetryActivityTask records p.Attempt and makes the task claimable again at
// p.RetryAt as the next attempt, unleased, with its heartbeat details and a
// fresh schedule-to-start deadline, in one statement.
func (s *Store) RetryActivityTask(ctx context.Context, p store.RetryActivityTaskParams) error {
	now := nowOr(p.Now)
	retryAt := orTime(p.RetryAt, now)
	var wake *int64
	if retryAt.After(now) {
		wake = nullNanos(retryAt)
	}
	a := p.Attempt
	_, err := s.pool.Exec(ctx, retryActivityTaskSQL, p.RunID, p.Seq, p.Token, a.Attempt, a.ActivityType, a.Owner,
		nullNanos(a.StartedAt), nullNanos(a.EndedAt), a.Outcome, a.Error, nanos(retryAt), wake, nanos(now), s.channel)
	if err != nil {
		return fmt.Errorf("pgstore: retry activity %s/%d: %w", p.RunID, p.Seq, storeErr(err))
	}
	return nil
}

// heartbeatSQL records details ($4, NULL keeps them) and extends the lease
// to the earlier of $5+HeartbeatTimeout and StartedAt+StartToClose.
const heartbeatSQL = `
UPDATE keel_activity_tasks SET heartbeat_details = coalesce($4, heartbeat_details),
	lease_expires_at = least($5 + nullif(heartbeat_timeout, 0), started_at + nullif(start_to_close, 0))
WHERE run_id = $1 AND seq = $2 AND token = $3
RETURNING cancel_requested`

// HeartbeatActivityTask records p.Details (nil keeps the previous ones) and
// extends the lease to the earlier of Now+HeartbeatTimeout and
// StartedAt+StartToClose, in one statement.
func (s *Store) HeartbeatActivityTask(ctx context.Context, p store.HeartbeatParams) (store.HeartbeatResult, error) {
	now := nowOr(p.Now)
	var res store.HeartbeatResult
	err := s.pool.QueryRow(ctx, heartbeatSQL, p.RunID, p.Seq, p.Token, p.Details, nanos(now)).Scan(&res.CancelRequested)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrLeaseLost
	}
	if err != nil {
		return store.HeartbeatResult{}, fmt.Errorf("pgstore: heartbeat activity %s/%d: %w", p.RunID, p.Seq, err)
	}
	return res, nil
}

// ExpiredActivityTasks returns up to limit activity tasks past a timeout at
// now, earliest deadline first: leased ones past their lease expiry,
// unleased ones past their schedule-to-start deadline, and any past its
// schedule-to-close deadline. An unleased task has an empty Token.
func (s *Store) ExpiredActivityTasks(ctx context.Context, now time.Time, limit int) ([]store.ActivityTask, error) {
	if limit < 1 {
		return nil, fmt.Errorf("pgstore: expired activity tasks: limit %d, want at least 1", limit)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+activityColumns+` FROM keel_activity_tasks
		WHERE deadline_at <= $1 ORDER BY deadline_at, run_id, seq LIMIT $2`, nanos(nowOr(now)), limit)
	if err != nil {
		return nil, fmt.Errorf("pgstore: expired activity tasks: %w", err)
	}
	tasks, err := scanActivityTasks(rows)
	if err != nil {
		return nil, fmt.Errorf("pgstore: expired activity tasks: %w", err)
	}
	return tasks, nil
}

// ActivityAttempts lists the run's recorded attempts by seq, then attempt.
func (s *Store) ActivityAttempts(ctx context.Context, runID string) ([]store.ActivityAttempt, error) {
	rows, err := s.pool.Query(ctx, `SELECT run_id, seq, attempt, activity_type, owner, started_at, ended_at,
		outcome, error FROM keel_activity_attempts WHERE run_id = $1 ORDER BY seq, attempt`, runID)
	if err != nil {
		return nil, fmt.Errorf("pgstore: activity attempts of run %s: %w", runID, err)
	}
	defer rows.Close()
	var out []store.ActivityAttempt
	for rows.Next() {
		var (
			a            store.ActivityAttempt
			started, end *int64
		)
		if err := rows.Scan(&a.RunID, &a.Seq, &a.Attempt, &a.ActivityType, &a.Owner, &started, &end,
			&a.Outcome, &a.Error); err != nil {
			return nil, fmt.Errorf("pgstore: activity attempts of run %s: %w", runID, err)
		}
		a.StartedAt, a.EndedAt = fromNullNanos(started), fromNullNanos(end)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: activity attempts of run %s: %w", runID, err)
	}
	return out, nil
}
