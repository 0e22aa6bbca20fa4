package pgstore

import (
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelhq/keel/durable/store"
)

// startChildSQL creates a child run ($1…$11 as createRunSQL, the parent
// link in $12…$14) with its workflow task ready at $6, unless the
// workflow ID has a running run or the reuse policy ($7) refuses; then it
// writes the failure item ($15, $16) to the parent's own inbox instead.
// The parent's workflow task is leased by the committing transaction, which
// finds the item and requeues the task. The child's task queue is notified
// on channel $17.
const startChildSQL = `
WITH running AS (
	SELECT 1 FROM keel_runs WHERE workflow_id = $2 AND status = 'running'
), latest AS (
	SELECT status FROM keel_runs WHERE workflow_id = $2 ORDER BY seq DESC LIMIT 1
), allowed AS (
	SELECT NOT EXISTS (SELECT 1 FROM running) AND (
		NOT EXISTS (SELECT 1 FROM latest) OR $7::int = 0
		OR ($7::int = 1 AND (SELECT status FROM latest) <> 'completed')) AS ok
), created AS (
	INSERT INTO keel_runs (run_id, workflow_id, workflow_type, task_queue, status, input,
		history_len, history_bytes, created_at, updated_at, parent_run_id, parent_seq, parent_close_policy)
	SELECT $1, $2, $3, $4, 'running', $5, 1, $8, $6, $6, $12, $13, $14 FROM allowed WHERE ok
	ON CONFLICT (workflow_id) WHERE status = 'running' DO NOTHING
	RETURNING run_id, task_queue
), event AS (
	INSERT INTO keel_events (run_id, id, type, time, data)
	SELECT run_id, 1, $9, $10, $11 FROM created
), task AS (
	INSERT INTO keel_workflow_tasks (run_id, task_queue, ready_at)
	SELECT run_id, task_queue, $6 FROM created
	RETURNING task_queue
), failed AS (
	INSERT INTO keel_inbox (run_id, type, time, data)
	SELECT $12, $15, $6, $16 WHERE NOT EXISTS (SELECT 1 FROM created) AND $15::text <> ''
)
SELECT pg_notify($17, task_queue) FROM task`

// insertRunTimersSQL starts the timers of a run created in the same
// transaction (by run ID $1; none if it was not created).
const insertRunTimersSQL = `
INSERT INTO keel_timers (run_id, seq, fire_at, item_type, item_data)
SELECT $1, t.* FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::bytea[]) AS t
WHERE EXISTS (SELECT 1 FROM keel_runs WHERE run_id = $1)`

// externalTemplate delivers an item ($3, $4) at $2 to the running run of
// workflow ID $1 — as a signal, or ({cancel}) as a cancel request that
// also marks the run and its activity tasks — and writes the done ($6, $7)
// or failed ($8, $9) item to the sender's own inbox ($5). Notifications go
// to channel $10.
const externalTemplate = `
WITH found AS (
	SELECT run_id, task_queue FROM keel_runs WHERE workflow_id = $1 AND status = 'running' FOR NO KEY UPDATE
), {target}, ` + "{wake}" + `, own AS (
	INSERT INTO keel_inbox (run_id, type, time, data)
	SELECT $5::text, $6::text, $2::bigint, $7::bytea WHERE EXISTS (SELECT 1 FROM found) AND $6::text <> ''
	UNION ALL
	SELECT $5::text, $8::text, $2::bigint, $9::bytea WHERE NOT EXISTS (SELECT 1 FROM found) AND $8::text <> ''
)
SELECT count(*) FROM notified`

var (
	signalExternalSQL = strings.NewReplacer(
		"{target}", `target AS (SELECT run_id, task_queue FROM found)`,
		"{wake}", strings.TrimPrefix(wakeRun(2, 3, 4, 10), "\n"),
	).Replace(externalTemplate)
	cancelExternalSQL = strings.NewReplacer(
		"{target}", `target AS (
	UPDATE keel_runs SET cancel_requested = true, updated_at = $2
	WHERE run_id = (SELECT run_id FROM found) AND NOT cancel_requested
	RETURNING run_id, task_queue
), activities AS (
	UPDATE keel_activity_tasks SET cancel_requested = true WHERE run_id = (SELECT run_id FROM target)
)`,
		"{wake}", strings.TrimPrefix(wakeRun(2, 3, 4, 10), "\n"),
	).Replace(externalTemplate)
)

// notifyParentSQL writes an item ($3, $4) at $2 to the inbox of the
// running parent of run $1 and makes its workflow task runnable.
var notifyParentSQL = `
WITH target AS (
	SELECT p.run_id, p.task_queue FROM keel_runs c JOIN keel_runs p ON p.run_id = c.parent_run_id
	WHERE c.run_id = $1 AND p.status = 'running'
), ` + strings.TrimPrefix(wakeRun(2, 3, 4, 5), "\n") + `
SELECT count(*) FROM notified`

// closeChildrenSQL applies the parent close policy of run $1's running
// children at $4: those with policy terminate (0), and theirs in turn,
// are closed as terminated with failure $2 and the event ($5, $6, $7)
// (whose data is $3 bytes) appended, and their tasks, timers and inbox
// deleted; those with policy request-cancel (1) under run $1 or under a
// terminated run are marked cancel-requested with the item ($8, $9).
var closeChildrenSQL = `
WITH RECURSIVE doomed AS (
	SELECT run_id FROM keel_runs WHERE parent_run_id = $1 AND status = 'running' AND parent_close_policy = 0
	UNION
	SELECT r.run_id FROM keel_runs r JOIN doomed d ON r.parent_run_id = d.run_id
	WHERE r.status = 'running' AND r.parent_close_policy = 0
), closed AS (
	UPDATE keel_runs SET status = 'terminated', failure = $2, history_len = history_len + 1,
		history_bytes = history_bytes + $3, updated_at = $4, closed_at = $4
	WHERE run_id IN (SELECT run_id FROM doomed)
	RETURNING run_id, history_len
), events AS (
	INSERT INTO keel_events (run_id, id, type, time, data) SELECT run_id, history_len, $5, $6, $7 FROM closed
), workflow_tasks AS (
	DELETE FROM keel_workflow_tasks WHERE run_id IN (SELECT run_id FROM closed)
), activity_tasks AS (
	DELETE FROM keel_activity_tasks WHERE run_id IN (SELECT run_id FROM closed)
), timers AS (
	DELETE FROM keel_timers WHERE run_id IN (SELECT run_id FROM closed)
), inbox AS (
	DELETE FROM keel_inbox WHERE run_id IN (SELECT run_id FROM closed)
), target AS (
	UPDATE keel_runs SET cancel_requested = true, updated_at = $4
	WHERE status = 'running' AND parent_close_policy = 1 AND NOT cancel_requested
		AND (parent_run_id = $1 OR parent_run_id IN (SELECT run_id FROM doomed))
	RETURNING run_id, task_queue
), activities AS (
	UPDATE keel_activity_tasks SET cancel_requested = true WHERE run_id IN (SELECT run_id FROM target)
), ` + strings.TrimPrefix(wakeRun(4, 8, 9, 10), "\n") + `
SELECT count(*) FROM notified`

// moveInboxSQL hands the inbox items of run $1 after ID $3 whose type is
// in $4 to run $2.
const moveInboxSQL = `UPDATE keel_inbox SET run_id = $2 WHERE run_id = $1 AND id > $3 AND type = ANY($4::text[])`

// successorSQL creates the successor ($2…$9) of run $1, which the same
// transaction has just closed: same workflow ID, the closed run's parent
// link and its running children, and a workflow task ready at $6 (notified
// on channel $10).
const successorSQL = `
WITH old AS (
	SELECT workflow_id, parent_run_id, parent_seq, parent_close_policy FROM keel_runs WHERE run_id = $1
), created AS (
	INSERT INTO keel_runs (run_id, workflow_id, workflow_type, task_queue, status, input,
		history_len, history_bytes, created_at, updated_at, parent_run_id, parent_seq, parent_close_policy)
	SELECT $2, workflow_id, $3, $4, 'running', $5, 1, $7, $6, $6, parent_run_id, parent_seq, parent_close_policy
	FROM old
	RETURNING run_id, task_queue
), event AS (
	INSERT INTO keel_events (run_id, id, type, time, data) SELECT run_id, 1, $8, $6, $9 FROM created
), task AS (
	INSERT INTO keel_workflow_tasks (run_id, task_queue, ready_at) SELECT run_id, task_queue, $6 FROM created
	RETURNING task_queue
), children AS (
	UPDATE keel_runs SET parent_run_id = $2 WHERE parent_run_id = $1 AND status = 'running'
)
SELECT pg_notify($10, task_queue) FROM task`

// errNeedsTask refuses child starts, external requests and continue-as-new
// on the idle commit path, which leaves no workflow task behind to take
// their answers.
var errNeedsTask = errors.New("a commit that starts children, makes external requests or continues as new needs a workflow task")

func needsTask(p *store.CompleteWorkflowTaskParams) bool {
	return len(p.StartChildren) > 0 || len(p.External) > 0 ||
		(p.Close != nil && p.Close.Status == store.StatusContinuedAsNew)
}

// queueChildren queues the child starts and external requests of a
// commit. A closing run gets no answers in its own inbox.
func (s *Store) queueChildren(b *pgx.Batch, p *store.CompleteWorkflowTaskParams, now time.Time) {
	closing := p.Close != nil
	tnow := nanos(now)
	for _, c := range p.StartChildren {
		r := c.Run
		var parentSeq int64
		var policy int32
		if r.Parent != nil {
			parentSeq, policy = r.Parent.Seq, int32(r.Parent.ClosePolicy)
		}
		ev := r.StartEvent
		failed := c.FailedItem
		if closing {
			failed = store.NewInboxItem{}
		}
		b.Queue(startChildSQL, r.RunID, r.WorkflowID, r.WorkflowType, r.TaskQueue, r.Input, tnow,
			int(r.ReusePolicy), int64(len(ev.Data)), ev.Type, nanos(orTime(ev.Time, now)), ev.Data,
			p.RunID, parentSeq, policy, failed.Type, failed.Data, s.channel)
		s.queueRunTimers(b, r.RunID, r.Timers, now)
	}
	for _, x := range p.External {
		query := signalExternalSQL
		if x.Cancel {
			query = cancelExternalSQL
		}
		done, failed := x.DoneItem, x.FailedItem
		if closing {
			done, failed = store.NewInboxItem{}, store.NewInboxItem{}
		}
		b.Queue(query, x.WorkflowID, tnow, x.Item.Type, x.Item.Data, p.RunID,
			done.Type, done.Data, failed.Type, failed.Data, s.channel)
	}
}

// queueRunTimers queues the start of a new run's timers.
func (s *Store) queueRunTimers(b *pgx.Batch, runID string, timers []store.Timer, now time.Time) {
	if len(timers) == 0 {
		return
	}
	seqs, fireAts, types, datas := timerArrays(timers, now)
	b.Queue(insertRunTimersSQL, runID, seqs, fireAts, types, datas)
}

// queueBeforeClose queues what must happen before a run's close deletes
// its inbox: moving the items its successor takes over.
func queueBeforeClose(b *pgx.Batch, p *store.CompleteWorkflowTaskParams) error {
	cl := p.Close
	if cl.Status != store.StatusContinuedAsNew {
		return nil
	}
	if cl.ContinueAsNew == nil {
		return errors.New("close status continued_as_new needs ContinueAsNew")
	}
	if len(cl.ContinueAsNew.CarryInboxTypes) > 0 {
		b.Queue(moveInboxSQL, p.RunID, cl.ContinueAsNew.Run.RunID, p.InboxUpTo, cl.ContinueAsNew.CarryInboxTypes)
	}
	return nil
}

// queueAfterClose queues what closing run runID entails beyond its own
// row: its successor, or its parent's notification and its children's
// close policies.
func (s *Store) queueAfterClose(b *pgx.Batch, runID string, cl *store.CloseRun, now time.Time) {
	tnow := nanos(now)
	if cl.Status == store.StatusContinuedAsNew {
		r := cl.ContinueAsNew.Run
		ev := r.StartEvent
		b.Queue(successorSQL, runID, r.RunID, r.WorkflowType, r.TaskQueue, r.Input, tnow,
			int64(len(ev.Data)), ev.Type, ev.Data, s.channel)
		s.queueRunTimers(b, r.RunID, r.Timers, now)
		return
	}
	s.queueFamily(b, runID, cl.ParentItem, cl.Children, now)
}

// queueFamily queues the notification of a closed run's parent and the
// close policies of its children.
func (s *Store) queueFamily(b *pgx.Batch, runID string, item *store.NewInboxItem, cc *store.ChildrenClose, now time.Time) {
	tnow := nanos(now)
	if item != nil {
		b.Queue(notifyParentSQL, runID, tnow, item.Type, item.Data, s.channel)
	}
	if cc != nil {
		ev := cc.TerminateEvent
		b.Queue(closeChildrenSQL, runID, cc.TerminateFailure, int64(len(ev.Data)), tnow,
			ev.Type, nanos(orTime(ev.Time, now)), ev.Data, cc.CancelItem.Type, cc.CancelItem.Data, s.channel)
	}
}
