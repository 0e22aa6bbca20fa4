package pgstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keelhq/keel/durable/store"
)

// claimWorkflowTasksSQL leases up to $3 workflow tasks of queue $1 that are
// claimable at $2, oldest first, skipping rows another transaction holds.
// Tokens come from $4, in the tasks' order. While leased, ready_at and
// wake_at hold the lease expiry ($6): a task whose lease expired is
// claimable again, and NextWakeup reports the expiry. The update finds the
// picked rows through the array of their IDs, so that its plan reads only
// them however many tasks are queued (see fireTimersSQL).
const claimWorkflowTasksSQL = `
WITH picked AS (
	SELECT run_id, ready_at FROM keel_workflow_tasks
	WHERE task_queue = $1 AND ready_at <= $2
	ORDER BY ready_at
	LIMIT $3
	FOR UPDATE SKIP LOCKED
), numbered AS (
	SELECT run_id, row_number() OVER (ORDER BY ready_at, run_id) AS n FROM picked
)
UPDATE keel_workflow_tasks w
SET token = ($4::text[])[numbered.n], owner = $5, ready_at = $6, wake_at = $6, lease_expires_at = $6,
	attempt = w.attempt + 1
FROM numbered
WHERE w.run_id = ANY(ARRAY(SELECT run_id FROM picked)) AND w.run_id = numbered.run_id`

// leasedWorkflowTaskSQL reads leased workflow tasks w (run_id, token,
// attempt; {tasks} is their source) with their runs and inboxes, as
// scanWorkflowTask scans them.
const leasedWorkflowTaskSQL = `
SELECT w.token, w.attempt, {run}, ib.ids, ib.types, ib.times, ib.datas
FROM {tasks} w
JOIN keel_runs r ON r.run_id = w.run_id
LEFT JOIN LATERAL (
	SELECT array_agg(i.id ORDER BY i.id) AS ids, array_agg(i.type ORDER BY i.id) AS types,
		array_agg(i.time ORDER BY i.id) AS times, array_agg(i.data ORDER BY i.id) AS datas
	FROM keel_inbox i WHERE i.run_id = w.run_id
) ib ON true`

// leasedWorkflowTasks returns leasedWorkflowTaskSQL reading from tasks.
func leasedWorkflowTasks(tasks string) string {
	return strings.NewReplacer("{run}", qualify("r", runColumns), "{tasks}", tasks).Replace(leasedWorkflowTaskSQL)
}

// claimedWorkflowTasksSQL reads the tasks claimed by the statement before
// it, by their tokens ($1, through a unique index), with their runs and
// inboxes. It runs after the claim, in the same transaction, so it reads
// the runs and inboxes as they are now that the task rows are locked: no
// commit or inbox write of these runs can be in flight. (Read in the
// claim's own statement, they would be as of its snapshot, taken before it
// locked the rows, and could miss a commit that landed in between.)
var claimedWorkflowTasksSQL = leasedWorkflowTasks("keel_workflow_tasks") + `
WHERE w.token = ANY($1::text[])
ORDER BY array_position($1::text[], w.token)`

// scanWorkflowTask reads one row of leasedWorkflowTaskSQL.
func scanWorkflowTask(row pgx.Row) (store.WorkflowTask, error) {
	var (
		wt    store.WorkflowTask
		r     runRow
		ids   []int64
		types []string
		times []int64
		datas [][]byte
	)
	dest := append([]any{&wt.Token, &wt.Attempt}, r.dest()...)
	if err := row.Scan(append(dest, &ids, &types, &times, &datas)...); err != nil {
		return store.WorkflowTask{}, err
	}
	wt.Run = r.value()
	for i, id := range ids {
		wt.Inbox = append(wt.Inbox, store.InboxItem{
			ID: id, Type: types[i], Time: fromNanos(times[i]), Data: bytesOrNil(datas[i]),
		})
	}
	return wt, nil
}

// qualify prefixes each column of a comma-separated list with table.
func qualify(table, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = table + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// asyncCommitSQL makes the transaction it runs in commit without waiting
// for its WAL to reach disk. Claims use it: a claim lost in a server crash
// is a lease that ended early, which fencing already handles (the holder's
// commit fails with ErrLeaseLost, and the task is claimable again), and any
// later durable commit flushes the claim's WAL with its own. It saves a WAL
// flush per claim.
const asyncCommitSQL = `SELECT set_config('synchronous_commit', 'off', true)`

// ClaimWorkflowTasks leases up to p.Limit workflow tasks on p.TaskQueue
// that are ready at p.Now and unleased or whose lease expired, oldest
// first, with FOR UPDATE SKIP LOCKED so that concurrent claimers never
// wait for or take each other's tasks. Each gets a new token and its
// attempt number goes up by one; the lease lasts until p.LeaseUntil. One
// round trip, committed without waiting for the WAL flush (see
// asyncCommitSQL).
func (s *Store) ClaimWorkflowTasks(ctx context.Context, p store.ClaimParams) ([]store.WorkflowTask, error) {
	now := nowOr(p.Now)
	if p.Limit < 1 {
		return nil, fmt.Errorf("pgstore: claim workflow tasks: limit %d, want at least 1", p.Limit)
	}
	if !p.LeaseUntil.After(now) {
		return nil, fmt.Errorf("pgstore: claim workflow tasks: LeaseUntil %v is not after Now %v", p.LeaseUntil, now)
	}
	tokens := make([]string, p.Limit)
	for i := range tokens {
		tokens[i] = uuid.NewString()
	}
	lease := nanos(p.LeaseUntil)
	var tasks []store.WorkflowTask
	b := &pgx.Batch{}
	b.Queue(asyncCommitSQL)
	b.Queue(claimWorkflowTasksSQL, p.TaskQueue, nanos(now), p.Limit, tokens, p.Owner, lease)
	b.Queue(claimedWorkflowTasksSQL, tokens).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			wt, err := scanWorkflowTask(rows)
			if err != nil {
				return err
			}
			tasks = append(tasks, wt)
		}
		return rows.Err()
	})
	if err := s.send(ctx, b); err != nil {
		return nil, fmt.Errorf("pgstore: claim workflow tasks: %w", err)
	}
	return tasks, nil
}

// Statements of CompleteWorkflowTask, in the order they run. The first two
// lock the run row, then the task row (every writer takes them in that
// order), and stop the transaction unless the run is still running at the
// expected history length and the task still has the caller's token. The
// conditions sit inside the locking subquery: a row is locked only if it
// matches them, and rechecked once locked, so a row that matches is locked.
// (Conditions outside it would be pushed below the lock, and a row that
// matches them would not be locked at all.)
const (
	lockRunForCommitSQL = `
SELECT keel_raise('KL001', 'the run is closed or its history moved on')
WHERE NOT EXISTS (
	SELECT 1 FROM keel_runs WHERE run_id = $1 AND status = 'running' AND history_len = $2 FOR NO KEY UPDATE
)`

	lockWorkflowTaskSQL = `
SELECT keel_raise('KL001', 'the workflow task has another token')
WHERE NOT EXISTS (SELECT 1 FROM keel_workflow_tasks WHERE run_id = $1 AND token = $2 FOR NO KEY UPDATE)`

	commitRunSQL = `
UPDATE keel_runs SET history_len = history_len + $2, history_bytes = history_bytes + $3, updated_at = $4,
	last_task_failure = ''
WHERE run_id = $1`

	closeRunSQL = `
UPDATE keel_runs SET history_len = history_len + $2, history_bytes = history_bytes + $3, updated_at = $4,
	last_task_failure = '', status = $5, result = $6, failure = $7, closed_at = $4
WHERE run_id = $1`

	// commitRunEventsSQL and closeRunEventsSQL are commitRunSQL and
	// closeRunSQL that also append the task's events, unnested from the
	// four arrays after their own parameters: one statement instead of
	// two, for the server to start and run.
	commitRunEventsSQL = `
WITH events AS (
	INSERT INTO keel_events (run_id, id, type, time, data)
	SELECT $1, * FROM unnest($5::bigint[], $6::text[], $7::bigint[], $8::bytea[])
)` + commitRunSQL

	// commitRunEventsLeaseSQL is commitRunEventsSQL for a task that
	// schedules one activity, leased to the committer (the eager fast path
	// of a workflow of sequential activities): the same statement inserts
	// the activity task, already leased, as insertEagerActivitiesSQL would
	// lease it; the caller computes every value (eagerRow), so only the
	// run's defaults for its workflow ID and task queue are read back. A
	// leased task needs no notification.
	commitRunEventsLeaseSQL = `
WITH events AS (
	INSERT INTO keel_events (run_id, id, type, time, data)
	SELECT $1, * FROM unnest($5::bigint[], $6::text[], $7::bigint[], $8::bytea[])
), run AS (` + commitRunSQL + `
	RETURNING workflow_id, task_queue
)
INSERT INTO keel_activity_tasks (run_id, seq, workflow_id, activity_type, task_queue, input, options,
	attempt, scheduled_at, ready_at, schedule_to_start, schedule_to_start_deadline, schedule_to_close_deadline,
	start_to_close, heartbeat_timeout, heartbeat_details, token, owner, started_at, lease_expires_at)
SELECT $1, $9::bigint, coalesce(nullif($10::text, ''), run.workflow_id), $11::text,
	coalesce(nullif($12::text, ''), run.task_queue), $13::bytea, $14::bytea, $15::int, $16::bigint, $17::bigint,
	$18::bigint, $19::bigint, $20::bigint, $21::bigint, $22::bigint, $23::bytea, $24::text, $25::text, $4,
	$26::bigint
FROM run
RETURNING workflow_id, task_queue`

	// closeRunTasksSQL and closeRunEventsTasksSQL are closeRunSQL, and
	// closeRunSQL with the task's events (unnested from $8 to $11), that
	// also delete the run's tasks, timers and inbox, as deleteRunTasksSQL
	// does: one statement instead of two or three.
	closeRunTasksSQL = `
WITH ` + deleteRunTasksCTEs + `
` + closeRunSQL

	closeRunEventsTasksSQL = `
WITH events AS (
	INSERT INTO keel_events (run_id, id, type, time, data)
	SELECT $1, * FROM unnest($8::bigint[], $9::text[], $10::bigint[], $11::bytea[])
), ` + deleteRunTasksCTEs + `
` + closeRunSQL

	deleteInboxSQL = `DELETE FROM keel_inbox WHERE run_id = $1 AND id <= $2`

	insertTimersSQL = `
INSERT INTO keel_timers (run_id, seq, fire_at, item_type, item_data)
SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::bytea[])`

	deleteTimersSQL = `DELETE FROM keel_timers WHERE run_id = $1 AND seq = ANY($2::bigint[])`

	cancelActivitiesSQL = `
UPDATE keel_activity_tasks SET cancel_requested = true WHERE run_id = $1 AND seq = ANY($2::bigint[])`

	// Items written after the claim are left in the inbox: the task then
	// becomes a fresh one, ready now (attempt 0: the next claim is its
	// first), and its queue is notified.
	requeueWorkflowTaskSQL = `
WITH requeued AS (
	UPDATE keel_workflow_tasks SET token = NULL, owner = NULL, lease_expires_at = NULL, wake_at = NULL,
		ready_at = $2, attempt = 0
	WHERE run_id = $1 AND EXISTS (SELECT 1 FROM keel_inbox WHERE run_id = $1)
	RETURNING task_queue
), notified AS (
	SELECT pg_notify($3, 'w/' || task_queue) FROM requeued
)
SELECT count(*) FROM notified`

	// Otherwise the task is done. (A requeued task has no token.)
	finishWorkflowTaskSQL = `DELETE FROM keel_workflow_tasks WHERE run_id = $1 AND token = $2`

	// Closing a run deletes its tasks, timers and inbox (Terminate too).
	deleteRunTasksSQL = `
WITH ` + deleteRunTasksCTEs + `
SELECT 1`

	// deleteRunTasksCTEs delete run $1's tasks, timers and inbox.
	deleteRunTasksCTEs = `workflow_task AS (
	DELETE FROM keel_workflow_tasks WHERE run_id = $1
), activity_tasks AS (
	DELETE FROM keel_activity_tasks WHERE run_id = $1
), timers AS (
	DELETE FROM keel_timers WHERE run_id = $1
), inbox AS (
	DELETE FROM keel_inbox WHERE run_id = $1
)`
)

// insertActivitiesTemplate inserts the activity tasks unnested from $4 to
// $18 for run $1 at $2. Tasks without a workflow ID or task queue take the
// run's. A task ready later than now gets a wake-up; the queues of the
// unleased tasks ready now are notified on channel $3. {lease}, {join}
// and {returning} are filled in by insertActivitiesSQL and
// insertEagerActivitiesSQL.
const insertActivitiesTemplate = `
WITH run AS (
	SELECT workflow_id, task_queue FROM keel_runs WHERE run_id = $1
), inserted AS (
	INSERT INTO keel_activity_tasks (run_id, seq, workflow_id, activity_type, task_queue, input, options,
		attempt, scheduled_at, ready_at, wake_at, schedule_to_start, schedule_to_start_deadline,
		schedule_to_close_deadline, start_to_close, heartbeat_timeout, heartbeat_details,
		token, owner, started_at, lease_expires_at)
	SELECT $1, a.seq, coalesce(nullif(a.workflow_id, ''), run.workflow_id), a.activity_type,
		coalesce(nullif(a.task_queue, ''), run.task_queue), a.input, a.options, a.attempt, a.scheduled_at,
		a.ready_at, CASE WHEN a.ready_at > $2 THEN a.ready_at END, a.schedule_to_start,
		a.schedule_to_start_deadline, a.schedule_to_close_deadline, a.start_to_close, a.heartbeat_timeout,
		a.heartbeat_details, {lease}
	FROM unnest($4::bigint[], $5::text[], $6::text[], $7::text[], $8::bytea[], $9::bytea[], $10::int[],
		$11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[],
		$18::bytea[])
		AS a(seq, workflow_id, activity_type, task_queue, input, options, attempt, scheduled_at, ready_at,
			schedule_to_start, schedule_to_start_deadline, schedule_to_close_deadline, start_to_close,
			heartbeat_timeout, heartbeat_details)
	CROSS JOIN run{join}
	{returning}
), notified AS (
	SELECT pg_notify($3, 'a/' || q) FROM (
		SELECT DISTINCT task_queue AS q FROM inserted WHERE ready_at <= $2 AND token IS NULL
	) queues
)
`

var (
	insertActivitiesSQL = strings.NewReplacer(
		"{lease}", "NULL, NULL, NULL, NULL",
		"{join}", "",
		"{returning}", "RETURNING task_queue, ready_at, token",
	).Replace(insertActivitiesTemplate) + `SELECT count(*) FROM notified`

	// insertEagerActivitiesSQL also leases to owner $19 the tasks whose
	// seqs are in $20 and that ClaimActivityTasks would lease at $2 (ready
	// and not past a deadline), as claimActivityTasksSQL leases them. It
	// returns every inserted task; the notification count, in the last
	// column, is evaluated once whatever the number of rows.
	insertEagerActivitiesSQL = strings.NewReplacer(
		"{lease}", `CASE WHEN e.leased THEN gen_random_uuid()::text END, CASE WHEN e.leased THEN $19 END,
		CASE WHEN e.leased THEN $2 END, CASE WHEN e.leased THEN $2 + `+activityLeaseSQL+` END`,
		"{join}", `
	CROSS JOIN LATERAL (
		SELECT a.seq = ANY($20::bigint[]) AND a.ready_at <= $2
			AND coalesce(least(a.schedule_to_start_deadline, a.schedule_to_close_deadline) > $2, true) AS leased
	) e`,
		"{returning}", "RETURNING "+activityColumns,
	).Replace(insertActivitiesTemplate) + `SELECT ` + activityColumns + `, (SELECT count(*) FROM notified) FROM inserted`
)

// CompleteWorkflowTask commits a workflow task in one round trip: a
// pipeline of statements that PostgreSQL runs as one implicit transaction.
// It is fenced on the task's token, the expected history length and the
// run still running (store.ErrLeaseLost otherwise, with nothing written).
func (s *Store) CompleteWorkflowTask(ctx context.Context, p store.CompleteWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	now := nowOr(p.Now)
	var result store.CompleteWorkflowTaskResult
	b := &pgx.Batch{}
	b.Queue(lockRunForCommitSQL, p.RunID, p.ExpectedHistoryLen)
	b.Queue(lockWorkflowTaskSQL, p.RunID, p.Token)
	if err := s.queueCommit(b, p, now, false, &result); err != nil {
		return store.CompleteWorkflowTaskResult{}, fmt.Errorf("pgstore: complete workflow task of run %s: %w", p.RunID, err)
	}
	if p.Close == nil {
		tnow := nanos(now)
		if p.InboxUpTo > 0 {
			b.Queue(deleteInboxSQL, p.RunID, p.InboxUpTo)
		}
		b.Queue(requeueWorkflowTaskSQL, p.RunID, tnow, s.channel).QueryRow(func(row pgx.Row) error {
			var requeued int64
			err := row.Scan(&requeued)
			result.Pending = requeued > 0
			return err
		})
		b.Queue(finishWorkflowTaskSQL, p.RunID, p.Token)
	}
	if err := s.send(ctx, b); err != nil {
		return store.CompleteWorkflowTaskResult{}, fmt.Errorf("pgstore: complete workflow task of run %s: %w", p.RunID, err)
	}
	return result, nil
}

// queueCommit checks p and queues on b the statements that write a
// workflow task's output at now, after the statements that fence and lock
// the run: the events and the run's new length (and final status, with
// every task, timer and inbox item of the run deleted, when p.Close is
// set), the activities (leasing the eager ones into result.Activities),
// the timers and the cancellations. The inbox and the workflow task row
// are the caller's. idle tells that the caller fenced the run on having no
// workflow task, so that its inbox is empty: a close then has no inbox
// item to refuse (RefuseIfInbox).
func (s *Store) queueCommit(b *pgx.Batch, p store.CompleteWorkflowTaskParams, now time.Time, idle bool, result *store.CompleteWorkflowTaskResult) error {
	if p.Close != nil && !p.Close.Status.Closed() {
		return fmt.Errorf("close status %q is not final", p.Close.Status)
	}
	if err := checkEagerActivities(p); err != nil {
		return err
	}
	upsert, err := checkCommitSearch(&p)
	if err != nil {
		return err
	}
	n := len(p.Events)
	var (
		size  int64
		ids   = make([]int64, n)
		types = make([]string, n)
		times = make([]int64, n)
		datas = make([][]byte, n)
		tnow  = nanos(now)
	)
	for i, ev := range p.Events {
		if want := p.ExpectedHistoryLen + int64(i) + 1; ev.ID != want {
			return fmt.Errorf("event %d has ID %d, want %d", i, ev.ID, want)
		}
		ids[i], types[i], times[i], datas[i] = ev.ID, ev.Type, nanos(orTime(ev.Time, now)), ev.Data
		size += int64(len(ev.Data))
	}

	if err := queueUpsertSearch(b, p.RunID, upsert); err != nil {
		return err
	}
	if c := p.Close; c != nil {
		if err := queueBeforeClose(b, &p, idle); err != nil {
			return err
		}
		if n > 0 {
			b.Queue(closeRunEventsTasksSQL, p.RunID, int64(n), size, tnow, string(c.Status), c.Result, c.Failure,
				ids, types, times, datas)
		} else {
			b.Queue(closeRunTasksSQL, p.RunID, int64(n), size, tnow, string(c.Status), c.Result, c.Failure)
		}
		// What the last task started or sent still happens; the children's
		// close policy then applies to what it started.
		s.queueChildren(b, &p, now)
		s.queueAfterClose(b, p.RunID, c, now)
		return nil
	}
	if a, ok := leaseOnly(&p, now); ok && n > 0 {
		r := activityRow(a, now)
		task := &store.ActivityTask{
			RunID: p.RunID, Seq: a.Seq, ActivityType: a.ActivityType,
			Input: bytesOrNil(a.Input), Options: bytesOrNil(a.Options), Attempt: r.attempt,
			ScheduledAt: fromNanos(r.scheduled), ReadyAt: fromNanos(r.ready),
			ScheduleToStartDeadline: fromNullNanos(r.s2sDeadline), ScheduleToCloseDeadline: fromNullNanos(r.s2cDeadline),
			StartToClose: a.StartToClose, HeartbeatTimeout: a.HeartbeatTimeout,
			HeartbeatDetails: bytesOrNil(a.HeartbeatDetails),
			Token:            uuid.NewString(), Owner: p.EagerOwner, StartedAt: fromNanos(tnow),
		}
		lease := activityLease(tnow, a)
		task.LeaseExpiresAt = fromNullNanos(lease)
		b.Queue(commitRunEventsLeaseSQL, p.RunID, int64(n), size, tnow, ids, types, times, datas,
			a.Seq, a.WorkflowID, a.ActivityType, a.TaskQueue, a.Input, a.Options, r.attempt, r.scheduled, r.ready,
			r.s2s, r.s2sDeadline, r.s2cDeadline, int64(a.StartToClose), int64(a.HeartbeatTimeout), a.HeartbeatDetails,
			task.Token, task.Owner, lease).
			QueryRow(func(row pgx.Row) error {
				if err := row.Scan(&task.WorkflowID, &task.TaskQueue); err != nil {
					return err
				}
				result.Activities = []store.ActivityTask{*task}
				return nil
			})
		queueTaskChanges(b, &p, now)
		s.queueChildren(b, &p, now)
		return nil
	}
	if n > 0 {
		b.Queue(commitRunEventsSQL, p.RunID, int64(n), size, tnow, ids, types, times, datas)
	} else {
		b.Queue(commitRunSQL, p.RunID, int64(n), size, tnow)
	}
	if len(p.ScheduleActivities) > 0 {
		args := append([]any{p.RunID, tnow, s.channel}, activityArrays(p.ScheduleActivities, now)...)
		if len(p.EagerActivities) == 0 {
			b.Queue(insertActivitiesSQL, args...)
		} else {
			b.Queue(insertEagerActivitiesSQL, append(args, p.EagerOwner, p.EagerActivities)...).Query(func(rows pgx.Rows) error {
				var err error
				result.Activities, err = eagerActivities(rows, p)
				return err
			})
		}
	}
	queueTaskChanges(b, &p, now)
	s.queueChildren(b, &p, now)
	return nil
}

// queueTaskChanges queues on b the timers p starts and the timers and
// activities it cancels.
func queueTaskChanges(b *pgx.Batch, p *store.CompleteWorkflowTaskParams, now time.Time) {
	if len(p.StartTimers) > 0 {
		seqs, fireAts, itemTypes, itemDatas := timerArrays(p.StartTimers, now)
		b.Queue(insertTimersSQL, p.RunID, seqs, fireAts, itemTypes, itemDatas)
	}
	if len(p.CancelTimers) > 0 {
		b.Queue(deleteTimersSQL, p.RunID, p.CancelTimers)
	}
	if len(p.CancelActivities) > 0 {
		b.Queue(cancelActivitiesSQL, p.RunID, p.CancelActivities)
	}
}

// leaseOnly returns the activity of a commit that schedules one activity
// and leases it to the committer, when insertEagerActivitiesSQL would
// lease it at now (ready, not past a deadline) and the commit does not
// also cancel it: the case commitRunEventsLeaseSQL writes.
func leaseOnly(p *store.CompleteWorkflowTaskParams, now time.Time) (*store.ActivityTask, bool) {
	if p.Close != nil || len(p.ScheduleActivities) != 1 || len(p.EagerActivities) != 1 {
		return nil, false
	}
	a := &p.ScheduleActivities[0]
	if p.EagerActivities[0] != a.Seq || slices.Contains(p.CancelActivities, a.Seq) {
		return nil, false
	}
	ready := fromNanos(activityRow(a, now).ready)
	if !store.ActivityClaimable(ready, a.ScheduleToStartDeadline, a.ScheduleToCloseDeadline, now) {
		return nil, false
	}
	return a, true
}

// activityLease is the lease expiry claimActivityTasksSQL sets on task a
// started at now (activityLeaseSQL, store.ActivityLease): none (NULL) when
// neither timeout is set.
func activityLease(now int64, a *store.ActivityTask) *int64 {
	d := store.ActivityLease(a.StartToClose, a.HeartbeatTimeout)
	if d == 0 {
		return nil
	}
	at := now + int64(d)
	return &at
}

// activityValues are the columns of an activity task that
// insertActivitiesSQL computes from a store.ActivityTask.
type activityValues struct {
	attempt                  int
	scheduled, ready, s2s    int64
	s2sDeadline, s2cDeadline *int64
}

// activityRow computes a's columns: unset times default to now
// (ScheduledAt) and ScheduledAt (ReadyAt); attempt to 1; the
// schedule-to-start timeout is measured from ScheduledAt.
func activityRow(a *store.ActivityTask, now time.Time) activityValues {
	sched := orTime(a.ScheduledAt, now)
	r := activityValues{
		attempt:     max(1, a.Attempt),
		scheduled:   nanos(sched),
		ready:       nanos(orTime(a.ReadyAt, sched)),
		s2sDeadline: nullNanos(a.ScheduleToStartDeadline),
		s2cDeadline: nullNanos(a.ScheduleToCloseDeadline),
	}
	if !a.ScheduleToStartDeadline.IsZero() {
		r.s2s = max(0, nanos(a.ScheduleToStartDeadline)-r.scheduled)
	}
	return r
}

// checkEagerActivities checks that every seq of p.EagerActivities is that
// of one of p.ScheduleActivities, once.
func checkEagerActivities(p store.CompleteWorkflowTaskParams) error {
	if len(p.EagerActivities) == 0 || p.Close != nil {
		return nil
	}
	scheduled := make(map[int64]bool, len(p.ScheduleActivities))
	for _, a := range p.ScheduleActivities {
		scheduled[a.Seq] = true
	}
	for _, seq := range p.EagerActivities {
		if !scheduled[seq] {
			return fmt.Errorf("eager activity %d is not among ScheduleActivities, or is listed twice", seq)
		}
		scheduled[seq] = false
	}
	return nil
}

// eagerActivities reads the rows of insertEagerActivitiesSQL and returns
// the leased tasks in the order of p.EagerActivities. Those of
// p.CancelActivities are marked cancel-requested: the statement that marks
// them runs after the insert.
func eagerActivities(rows pgx.Rows, p store.CompleteWorkflowTaskParams) ([]store.ActivityTask, error) {
	defer rows.Close()
	leased := map[int64]store.ActivityTask{}
	for rows.Next() {
		var notified int64
		a, err := scanActivityTask(rows, &notified)
		if err != nil {
			return nil, err
		}
		if a.Token != "" {
			a.CancelRequested = a.CancelRequested || slices.Contains(p.CancelActivities, a.Seq)
			leased[a.Seq] = a
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []store.ActivityTask
	for _, seq := range p.EagerActivities {
		if a, ok := leased[seq]; ok {
			out = append(out, a)
		}
	}
	return out, nil
}

// activityArrays returns the columns of tasks as the arrays
// insertActivitiesSQL unnests ($4 to $18). Unset times default to now
// (ScheduledAt) and ScheduledAt (ReadyAt); attempt to 1.
func activityArrays(tasks []store.ActivityTask, now time.Time) []any {
	n := len(tasks)
	var (
		seqs, scheduled, ready, s2s, stc, hb = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		workflowIDs, types, queues           = make([]string, n), make([]string, n), make([]string, n)
		inputs, options, details             = make([][]byte, n), make([][]byte, n), make([][]byte, n)
		attempts                             = make([]int32, n)
		s2sDeadlines, s2cDeadlines           = make([]*int64, n), make([]*int64, n)
	)
	for i := range tasks {
		a := &tasks[i]
		r := activityRow(a, now)
		seqs[i], workflowIDs[i], types[i], queues[i] = a.Seq, a.WorkflowID, a.ActivityType, a.TaskQueue
		inputs[i], options[i], details[i] = a.Input, a.Options, a.HeartbeatDetails
		attempts[i] = int32(r.attempt)
		scheduled[i], ready[i], s2s[i] = r.scheduled, r.ready, r.s2s
		s2sDeadlines[i], s2cDeadlines[i] = r.s2sDeadline, r.s2cDeadline
		stc[i], hb[i] = int64(a.StartToClose), int64(a.HeartbeatTimeout)
	}
	return []any{seqs, workflowIDs, types, queues, inputs, options, attempts, scheduled, ready, s2s,
		s2sDeadlines, s2cDeadlines, stc, hb, details}
}

// timerArrays returns the columns of timers as insertTimersSQL unnests
// them. An unset FireAt fires at once.
func timerArrays(timers []store.Timer, now time.Time) (seqs, fireAts []int64, types []string, datas [][]byte) {
	n := len(timers)
	seqs, fireAts, types, datas = make([]int64, n), make([]int64, n), make([]string, n), make([][]byte, n)
	for i, t := range timers {
		seqs[i], fireAts[i], types[i], datas[i] = t.Seq, nanos(orTime(t.FireAt, now)), t.Item.Type, t.Item.Data
	}
	return seqs, fireAts, types, datas
}

// Statements of FailWorkflowTask: record the failure on the running run
// (locking its row first), then release the task if it still has the
// caller's token.
const (
	setTaskFailureSQL = `
WITH failed AS (
	UPDATE keel_runs SET last_task_failure = $2, updated_at = $3 WHERE run_id = $1 AND status = 'running'
	RETURNING 1
)
SELECT keel_raise('KL001', 'the run is not running') WHERE NOT EXISTS (SELECT 1 FROM failed)`

	releaseWorkflowTaskSQL = `
WITH released AS (
	UPDATE keel_workflow_tasks SET token = NULL, owner = NULL, lease_expires_at = NULL, ready_at = $3, wake_at = $4
	WHERE run_id = $1 AND token = $2
	RETURNING task_queue, ready_at
), notified AS (
	SELECT pg_notify($6, 'w/' || task_queue) FROM released WHERE ready_at <= $5
)
SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM released)
		THEN keel_raise('KL001', 'the workflow task has another token') END,
	(SELECT count(*) FROM notified)`
)

// FailWorkflowTask releases a leased workflow task without committing it,
// in one round trip: the task becomes claimable again at p.RetryAt,
// keeping its attempt count, and p.Failure is stored as the run's
// LastTaskFailure.
func (s *Store) FailWorkflowTask(ctx context.Context, p store.FailWorkflowTaskParams) error {
	now := nowOr(p.Now)
	retryAt := orTime(p.RetryAt, now)
	var wake *int64
	if retryAt.After(now) {
		wake = nullNanos(retryAt)
	}
	b := &pgx.Batch{}
	b.Queue(setTaskFailureSQL, p.RunID, p.Failure, nanos(now))
	b.Queue(releaseWorkflowTaskSQL, p.RunID, p.Token, nanos(retryAt), wake, nanos(now), s.channel)
	if err := s.send(ctx, b); err != nil {
		return fmt.Errorf("pgstore: fail workflow task of run %s: %w", p.RunID, err)
	}
	return nil
}
