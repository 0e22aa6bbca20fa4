package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Column lists shared by several statements; scanRun and scanActivityTask
// read them in this order.
const (
	runColumns = `run_id, workflow_id, workflow_type, task_queue, status, input, result, failure,
		history_len, history_bytes, cancel_requested, last_task_failure, created_at, updated_at, closed_at,
		parent_run_id, parent_seq, parent_close_policy, search_attributes, memo`
	activityColumns = `run_id, seq, workflow_id, activity_type, task_queue, input, options, attempt,
		scheduled_at, ready_at, schedule_to_start_deadline, schedule_to_close_deadline, start_to_close,
		heartbeat_timeout, heartbeat_details, token, owner, started_at, lease_expires_at, cancel_requested`
)

// commitFence is the WHERE clause of commitRun and closeRun: run ?4 must
// be running with history length ?5, and hold the workflow task leased with
// token ?6 or, when ?6 is NULL (CompleteActivityWithWorkflowTask), be idle:
// have no workflow task at all.
const commitFence = `
	WHERE run_id = ?4 AND status = 'running' AND history_len = ?5
		AND CASE WHEN ?6 IS NULL THEN NOT EXISTS (SELECT 1 FROM workflow_tasks WHERE run_id = ?4)
			ELSE EXISTS (SELECT 1 FROM workflow_tasks WHERE run_id = ?4 AND token = ?6) END
	RETURNING workflow_id, task_queue`

// queries holds every statement the store runs on a hot path, prepared once
// on the handle. Write transactions bind them with Tx.StmtContext, which
// reuses the statement already prepared on the transaction's connection.
type queries struct {
	// Runs and history.
	getRun        *sql.Stmt
	latestRun     *sql.Stmt
	runsByIDs     *sql.Stmt
	runStatus     *sql.Stmt
	insertRun     *sql.Stmt
	insertEvent   *sql.Stmt
	history       *sql.Stmt
	requestCancel *sql.Stmt
	cancelRunActs *sql.Stmt
	terminateRun  *sql.Stmt

	// Inbox and signals.
	insertInbox    *sql.Stmt
	inboxOfRun     *sql.Stmt
	inboxOfRuns    *sql.Stmt
	deleteInbox    *sql.Stmt
	addSignalReq   *sql.Stmt
	signalReqFound *sql.Stmt

	// Workflow tasks.
	insertWorkflowTask  *sql.Stmt
	insertLeasedTask    *sql.Stmt
	probeWorkflowTasks  *sql.Stmt
	claimWorkflowTasks  *sql.Stmt
	leaseWorkflowTask   *sql.Stmt
	commitRun           *sql.Stmt
	closeRun            *sql.Stmt
	finishWorkflowTask  *sql.Stmt
	requeueWorkflowTask *sql.Stmt
	failWorkflowTask    *sql.Stmt
	setTaskFailure      *sql.Stmt

	// Activity tasks.
	insertActivity       *sql.Stmt
	insertLeasedActivity *sql.Stmt
	cancelActivity       *sql.Stmt
	probeActivities      *sql.Stmt
	claimActivities      *sql.Stmt
	completeActivity     *sql.Stmt
	retryActivity        *sql.Stmt
	heartbeat            *sql.Stmt
	expired              *sql.Stmt
	insertAttempt        *sql.Stmt
	attemptsOfRun        *sql.Stmt

	// Savepoints, one per operation of a grouped transaction.
	savepoint           *sql.Stmt
	releaseSavepoint    *sql.Stmt
	rollbackToSavepoint *sql.Stmt

	// Timers and wake-ups.
	insertTimer    *sql.Stmt
	deleteTimer    *sql.Stmt
	probeDue       *sql.Stmt
	fireTimers     *sql.Stmt
	wakeWorkflows  *sql.Stmt
	wakeActivities *sql.Stmt
	nextWakeup     *sql.Stmt
}

// statements pairs each field of q with its SQL text.
func (q *queries) statements() []struct {
	stmt **sql.Stmt
	text string
} {
	type st = struct {
		stmt **sql.Stmt
		text string
	}
	return []st{
		{&q.savepoint, `SAVEPOINT op`},
		{&q.releaseSavepoint, `RELEASE op`},
		{&q.rollbackToSavepoint, `ROLLBACK TO op`},

		{&q.getRun, `SELECT ` + runColumns + ` FROM runs WHERE run_id = ?`},
		{&q.latestRun, `SELECT ` + runColumns + ` FROM runs WHERE workflow_id = ? ORDER BY seq DESC LIMIT 1`},
		{&q.runsByIDs, `SELECT ` + runColumns + ` FROM runs WHERE run_id IN (SELECT value FROM json_each(?))`},
		{&q.runStatus, `SELECT status FROM runs WHERE run_id = ?`},
		{&q.insertRun, `INSERT INTO runs (run_id, workflow_id, workflow_type, task_queue, status, input,
			history_len, history_bytes, created_at, updated_at, parent_run_id, parent_seq, parent_close_policy,
			search_attributes, memo)
			VALUES (?, ?, ?, ?, 'running', ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&q.insertEvent, `INSERT INTO events (run_id, id, type, time, data) VALUES (?, ?, ?, ?, ?)`},
		{&q.history, `SELECT id, type, time, data FROM events WHERE run_id = ? AND id > ? ORDER BY id`},
		{&q.requestCancel, `UPDATE runs SET cancel_requested = 1, updated_at = ?2
			WHERE run_id = ?1 AND status = 'running' AND cancel_requested = 0`},
		{&q.cancelRunActs, `UPDATE activity_tasks SET cancel_requested = 1 WHERE run_id = ?`},
		{&q.terminateRun, `UPDATE runs SET status = 'terminated', failure = ?2, history_len = history_len + 1,
			history_bytes = history_bytes + ?3, updated_at = ?4, closed_at = ?4
			WHERE run_id = ?1 AND status = 'running' RETURNING history_len`},

		{&q.insertInbox, `INSERT INTO inbox (run_id, type, time, data) VALUES (?, ?, ?, ?)`},
		{&q.inboxOfRun, `SELECT run_id, id, type, time, data FROM inbox WHERE run_id = ? ORDER BY id`},
		{&q.inboxOfRuns, `SELECT run_id, id, type, time, data FROM inbox
			WHERE run_id IN (SELECT value FROM json_each(?)) ORDER BY run_id, id`},
		{&q.deleteInbox, `DELETE FROM inbox WHERE run_id = ? AND id <= ?`},
		{&q.addSignalReq, `INSERT INTO signal_requests (run_id, request_id) VALUES (?, ?) ON CONFLICT DO NOTHING`},
		{&q.signalReqFound, `SELECT count(*) FROM signal_requests WHERE run_id = ? AND request_id = ?`},

		{&q.insertWorkflowTask, `INSERT INTO workflow_tasks (run_id, task_queue, available_at) VALUES (?, ?, ?)`},
		{&q.probeWorkflowTasks, `SELECT count(*) FROM (SELECT 1 FROM workflow_tasks
			WHERE task_queue = ? AND available_at <= ? LIMIT 1)`},
		// Lease the oldest claimable tasks, each with a new random token.
		// While leased, available_at (and wake_at) is the lease expiry.
		{&q.claimWorkflowTasks, `UPDATE workflow_tasks SET token = lower(hex(randomblob(16))), owner = ?1,
			available_at = ?2, wake_at = ?2, attempt = attempt + 1
			WHERE run_id IN (SELECT run_id FROM workflow_tasks
				WHERE task_queue = ?3 AND available_at <= ?4 ORDER BY available_at LIMIT ?5)
			RETURNING run_id, token, attempt`},
		// The eager fast paths lease a workflow task exactly as
		// claimWorkflowTasks does: insertLeasedTask writes a new run's first
		// task already leased (attempt 1), leaseWorkflowTask leases one
		// run's task if it is claimable.
		// The caller draws the token (newToken), so nothing is read back.
		{&q.insertLeasedTask, `INSERT INTO workflow_tasks (run_id, task_queue, available_at, wake_at, token, owner, attempt)
			VALUES (?1, ?2, ?3, ?3, ?5, ?4, 1)`},
		{&q.leaseWorkflowTask, `UPDATE workflow_tasks SET token = lower(hex(randomblob(16))), owner = ?2,
			available_at = ?3, wake_at = ?3, attempt = attempt + 1
			WHERE run_id = ?1 AND available_at <= ?4
			RETURNING token, attempt`},
		// commitRun and closeRun commit a workflow task, fenced by
		// commitFence.
		{&q.commitRun, `UPDATE runs SET history_len = ?1, history_bytes = history_bytes + ?2, updated_at = ?3,
			last_task_failure = ''` + commitFence},
		{&q.closeRun, `UPDATE runs SET history_len = ?1, history_bytes = history_bytes + ?2, updated_at = ?3,
			last_task_failure = '', status = ?7, result = ?8, failure = ?9, closed_at = ?3` + commitFence},
		{&q.finishWorkflowTask, `DELETE FROM workflow_tasks
			WHERE run_id = ?1 AND NOT EXISTS (SELECT 1 FROM inbox WHERE run_id = ?1)`},
		{&q.requeueWorkflowTask, `UPDATE workflow_tasks SET token = NULL, owner = NULL, available_at = ?2,
			wake_at = NULL, attempt = 0 WHERE run_id = ?1`},
		{&q.failWorkflowTask, `UPDATE workflow_tasks SET token = NULL, owner = NULL, available_at = ?3, wake_at = ?4
			WHERE run_id = ?1 AND token = ?2`},
		{&q.setTaskFailure, `UPDATE runs SET last_task_failure = ?2, updated_at = ?3 WHERE run_id = ?1`},

		{&q.insertActivity, `INSERT INTO activity_tasks (run_id, seq, workflow_id, activity_type, task_queue,
			input, options, attempt, scheduled_at, ready_at, wake_at, schedule_to_start,
			schedule_to_start_deadline, schedule_to_close_deadline, start_to_close, heartbeat_timeout,
			heartbeat_details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		// An activity task written already leased, as claimActivities would
		// lease it at ?17 (the commit's Now), for the eager fast path. It is
		// ready, so it has no wake_at. The caller computes the token (?19)
		// and lease expiry (?20) as claimActivities would (newToken,
		// leaseExpiry), so nothing is read back.
		{&q.insertLeasedActivity, `INSERT INTO activity_tasks (run_id, seq, workflow_id, activity_type, task_queue,
			input, options, attempt, scheduled_at, ready_at, schedule_to_start,
			schedule_to_start_deadline, schedule_to_close_deadline, start_to_close, heartbeat_timeout,
			heartbeat_details, started_at, token, owner, lease_expires_at)
			VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?19, ?18, ?20)`},
		{&q.cancelActivity, `UPDATE activity_tasks SET cancel_requested = 1 WHERE run_id = ? AND seq = ?`},
		{&q.probeActivities, `SELECT count(*) FROM (SELECT 1 FROM activity_tasks
			WHERE task_queue = ?1 AND token IS NULL AND ready_at <= ?2 AND (deadline_at IS NULL OR deadline_at > ?2)
			LIMIT 1)`},
		// Lease the oldest ready, unleased tasks that have not timed out. The
		// lease runs to the earlier of the start-to-close and heartbeat
		// timeouts, and has no expiry when neither is set.
		{&q.claimActivities, `UPDATE activity_tasks SET token = lower(hex(randomblob(16))), owner = ?1,
			started_at = ?2, wake_at = NULL,
			lease_expires_at = coalesce(min(?2 + nullif(start_to_close, 0), ?2 + nullif(heartbeat_timeout, 0)),
				?2 + nullif(start_to_close, 0), ?2 + nullif(heartbeat_timeout, 0))
			WHERE rowid IN (SELECT rowid FROM activity_tasks
				WHERE task_queue = ?3 AND token IS NULL AND ready_at <= ?2
					AND (deadline_at IS NULL OR deadline_at > ?2)
				ORDER BY ready_at LIMIT ?4)
			RETURNING ` + activityColumns},
		// completeActivity and retryActivity fence on the token or, for the
		// empty token that ExpiredActivityTasks returns for an unleased task,
		// on the task being unleased at the same attempt.
		{&q.completeActivity, `DELETE FROM activity_tasks WHERE run_id = ?1 AND seq = ?2
			AND (token = ?3 OR (?3 = '' AND token IS NULL AND attempt = ?4))`},
		// The next attempt gets a fresh schedule-to-start deadline, measured
		// from the moment it becomes ready.
		{&q.retryActivity, `UPDATE activity_tasks SET attempt = attempt + 1, ready_at = ?5, wake_at = ?6,
			token = NULL, owner = NULL, started_at = NULL, lease_expires_at = NULL,
			schedule_to_start_deadline = CASE WHEN schedule_to_start > 0 THEN ?5 + schedule_to_start END
			WHERE run_id = ?1 AND seq = ?2 AND (token = ?3 OR (?3 = '' AND token IS NULL AND attempt = ?4))`},
		{&q.heartbeat, `UPDATE activity_tasks SET heartbeat_details = coalesce(?4, heartbeat_details),
			lease_expires_at = coalesce(min(?5 + nullif(heartbeat_timeout, 0), started_at + nullif(start_to_close, 0)),
				?5 + nullif(heartbeat_timeout, 0), started_at + nullif(start_to_close, 0))
			WHERE run_id = ?1 AND seq = ?2 AND token = ?3 RETURNING cancel_requested`},
		{&q.expired, `SELECT ` + activityColumns + ` FROM activity_tasks
			WHERE deadline_at <= ? ORDER BY deadline_at LIMIT ?`},
		{&q.insertAttempt, `INSERT OR REPLACE INTO activity_attempts (run_id, seq, attempt, activity_type, owner,
			started_at, ended_at, outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&q.attemptsOfRun, `SELECT run_id, seq, attempt, activity_type, owner, started_at, ended_at, outcome, error
			FROM activity_attempts WHERE run_id = ? ORDER BY seq, attempt`},

		{&q.insertTimer, `INSERT INTO timers (run_id, seq, fire_at, task_queue, item_type, item_data)
			VALUES (?, ?, ?, ?, ?, ?)`},
		{&q.deleteTimer, `DELETE FROM timers WHERE run_id = ? AND seq = ?`},
		{&q.probeDue, `SELECT EXISTS (SELECT 1 FROM timers WHERE fire_at <= ?1)
			OR EXISTS (SELECT 1 FROM workflow_tasks WHERE wake_at <= ?1)
			OR EXISTS (SELECT 1 FROM activity_tasks WHERE wake_at <= ?1)`},
		{&q.fireTimers, `DELETE FROM timers WHERE rowid IN (SELECT rowid FROM timers
			WHERE fire_at <= ?1 ORDER BY fire_at LIMIT ?2)
			RETURNING run_id, seq, fire_at, task_queue, item_type, item_data`},
		{&q.wakeWorkflows, `UPDATE workflow_tasks SET wake_at = NULL WHERE run_id IN (SELECT run_id FROM workflow_tasks
			WHERE wake_at <= ?1 ORDER BY wake_at LIMIT ?2) RETURNING task_queue`},
		{&q.wakeActivities, `UPDATE activity_tasks SET wake_at = NULL WHERE rowid IN (SELECT rowid FROM activity_tasks
			WHERE wake_at <= ?1 ORDER BY wake_at LIMIT ?2)`},
		{&q.nextWakeup, `SELECT min(t) FROM (
			SELECT (SELECT fire_at FROM timers ORDER BY fire_at LIMIT 1) AS t
			UNION ALL SELECT (SELECT wake_at FROM workflow_tasks WHERE wake_at IS NOT NULL ORDER BY wake_at LIMIT 1)
			UNION ALL SELECT (SELECT wake_at FROM activity_tasks WHERE wake_at IS NOT NULL ORDER BY wake_at LIMIT 1)
			UNION ALL SELECT (SELECT deadline_at FROM activity_tasks WHERE deadline_at IS NOT NULL
				ORDER BY deadline_at LIMIT 1))`},
	}
}

// prepareQueries prepares every statement of queries on db.
func prepareQueries(ctx context.Context, db *sql.DB) (*queries, error) {
	q := &queries{}
	for _, s := range q.statements() {
		stmt, err := db.PrepareContext(ctx, s.text)
		if err != nil {
			_ = q.close()
			return nil, fmt.Errorf("sqlitestore: prepare %q: %w", firstLine(s.text), err)
		}
		*s.stmt = stmt
	}
	return q, nil
}

// close closes every prepared statement.
func (q *queries) close() error {
	var errs []error
	for _, s := range q.statements() {
		if *s.stmt != nil {
			errs = append(errs, (*s.stmt).Close())
		}
	}
	return errors.Join(errs...)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
