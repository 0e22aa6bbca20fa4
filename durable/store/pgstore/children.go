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
// on channel $17. Its search attributes and memo are $18 and $19.
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
		history_len, history_bytes, created_at, updated_at, parent_run_id, parent_seq, parent_close_policy,
		search_attributes, memo)
	SELECT $1, $2, $3, $4, 'running', $5, 1, $8, $6, $6, $12, $13, $14, $18::jsonb, $19::bytea FROM allowed WHERE ok
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
SELECT pg_notify($17, 'w/' || task_queue) FROM task`

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
// running parent of run $1 and makes its workflow task runnable. The
// parent's row is share-locked first, as signalSQL does, so that a parent
// closing at the same moment is seen closed: otherwise the item would
// recreate the workflow task that the parent's close just deleted, a task
// of a closed run.
var notifyParentSQL = `
WITH target AS (
	SELECT run_id, task_queue FROM keel_runs
	WHERE run_id = (SELECT parent_run_id FROM keel_runs WHERE run_id = $1) AND status = 'running'
	FOR SHARE
), ` + strings.TrimPrefix(wakeRun(2, 3, 4, 5), "\n") + `
SELECT count(*) FROM notified`

// doomedChildren is the recursive CTE of run $1's running children with
// policy terminate (0), and theirs in turn: the runs its close
// terminates.
const doomedChildren = `
WITH RECURSIVE doomed AS (
	SELECT run_id FROM keel_runs WHERE parent_run_id = $1 AND status = 'running' AND parent_close_policy = 0
	UNION
	SELECT r.run_id FROM keel_runs r JOIN doomed d ON r.parent_run_id = d.run_id
	WHERE r.status = 'running' AND r.parent_close_policy = 0
)`

// lockChildrenSQL locks the running runs that closeChildrenSQL changes:
// those it terminates, and those with policy request-cancel (1) under run
// $1 or under one it terminates. It runs as a statement of its own, before
// closeChildrenSQL, and waits for any commit that holds one of them, such
// as a child closing or continuing as new at the same moment.
// closeChildrenSQL then takes its snapshot after that commit: it sees the
// child closed (and leaves it alone) and its successor, which is now the
// closing run's child, running. Without the wait, a child closed
// meanwhile would be closed a second time, and its successor left running.
var lockChildrenSQL = doomedChildren + `
SELECT count(*) FROM (
	SELECT 1 FROM keel_runs
	WHERE status = 'running' AND parent_close_policy IN (0, 1)
		AND (parent_run_id = $1 OR parent_run_id IN (SELECT run_id FROM doomed))
	FOR NO KEY UPDATE
) locked`

// closeChildrenSQL applies the parent close policy of run $1's running
// children at $4: those with policy terminate (0), and theirs in turn,
// are closed as terminated with failure $2 and the event ($5, $6, $7)
// (whose data is $3 bytes) appended, and their tasks, timers and inbox
// deleted; those with policy request-cancel (1) under run $1 or under a
// terminated run are marked cancel-requested with the item ($8, $9). It
// runs after lockChildrenSQL; a run that is not running once its row is
// locked (a successor that closed since it started, say) is left alone.
var closeChildrenSQL = doomedChildren + `, closed AS (
	UPDATE keel_runs SET status = 'terminated', failure = $2, history_len = history_len + 1,
		history_bytes = history_bytes + $3, updated_at = $4, closed_at = $4
	WHERE run_id IN (SELECT run_id FROM doomed) AND status = 'running'
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

// refuseCloseSQL stops a closing commit of run $1 when inbox items after
// ID $2 of a type in $3 arrived after its claim (KL006).
const refuseCloseSQL = `
SELECT keel_raise('KL006', 'inbox items arrived after the claim')
WHERE EXISTS (SELECT 1 FROM keel_inbox WHERE run_id = $1 AND id > $2 AND type = ANY($3::text[]))`

// moveInboxSQL hands the inbox items of run $1 after ID $3 whose type is
// in $4 to run $2.
const moveInboxSQL = `
INSERT INTO keel_inbox (run_id, type, time, data)
SELECT $2, type, time, data FROM keel_inbox WHERE run_id = $1 AND id > $3 AND type = ANY($4::text[]) ORDER BY id`

// insertInboxSQL writes items ($3, $4 arrays) at $2 to run $1's inbox, in
// order.
const insertInboxSQL = `
INSERT INTO keel_inbox (run_id, type, time, data)
SELECT $1, t, $2, d FROM unnest($3::text[], $4::bytea[]) WITH ORDINALITY AS u(t, d, n) ORDER BY n`

// successorSQL creates the successor ($2…$9) of run $1, which the same
// transaction has just closed: same workflow ID, the closed run's parent
// link and its running children, and a workflow task ready at $6 (notified
// on channel $10). Its search attributes and memo are $11 and $12.
const successorSQL = `
WITH old AS (
	SELECT workflow_id, parent_run_id, parent_seq, parent_close_policy FROM keel_runs WHERE run_id = $1
), created AS (
	INSERT INTO keel_runs (run_id, workflow_id, workflow_type, task_queue, status, input,
		history_len, history_bytes, created_at, updated_at, parent_run_id, parent_seq, parent_close_policy,
		search_attributes, memo)
	SELECT $2, workflow_id, $3, $4, 'running', $5, 1, $7, $6, $6, parent_run_id, parent_seq, parent_close_policy,
		$11::jsonb, $12::bytea
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
SELECT pg_notify($10, 'w/' || task_queue) FROM task`

// queueChildren queues the child starts and external requests of a
// commit. A closing run gets no answers in its own inbox. The children's
// search attributes must have been read (checkCommitSearch).
func (s *Store) queueChildren(b *pgx.Batch, p *store.CompleteWorkflowTaskParams, now time.Time) {
	closing := p.Close != nil
	tnow := nanos(now)
	for _, c := range p.StartChildren {
		r := c.Run
		search, _ := parseSearch(r.SearchAttributes)
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
			p.RunID, parentSeq, policy, failed.Type, failed.Data, s.channel, search.json, r.Memo)
		s.queueRunTimers(b, r.RunID, r.Timers, now)
		queueIndexSearch(b, r.RunID, search.attrs)
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
// its inbox: the refusal of a close that inbox items arrived for (unless
// idle: the run has none), and moving the items its successor takes over.
func queueBeforeClose(b *pgx.Batch, p *store.CompleteWorkflowTaskParams, idle bool) error {
	cl := p.Close
	if len(cl.RefuseIfInbox) > 0 && !idle {
		b.Queue(refuseCloseSQL, p.RunID, p.InboxUpTo, cl.RefuseIfInbox)
	}
	if cl.Status != store.StatusContinuedAsNew {
		return nil
	}
	if cl.ContinueAsNew == nil {
		return errors.New("close status continued_as_new needs ContinueAsNew")
	}
	if items := cl.ContinueAsNew.Inbox; len(items) > 0 {
		types := make([]string, len(items))
		datas := make([][]byte, len(items))
		for i, it := range items {
			types[i], datas[i] = it.Type, it.Data
		}
		b.Queue(insertInboxSQL, cl.ContinueAsNew.Run.RunID, nanos(nowOr(p.Now)), types, datas)
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
		search, _ := parseSearch(r.SearchAttributes) // read by checkCommitSearch
		b.Queue(successorSQL, runID, r.RunID, r.WorkflowType, r.TaskQueue, r.Input, tnow,
			int64(len(ev.Data)), ev.Type, ev.Data, s.channel, search.json, r.Memo)
		s.queueRunTimers(b, r.RunID, r.Timers, now)
		queueIndexSearch(b, r.RunID, search.attrs)
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
		b.Queue(lockChildrenSQL, runID)
		b.Queue(closeChildrenSQL, runID, cc.TerminateFailure, int64(len(ev.Data)), tnow,
			ev.Type, nanos(orTime(ev.Time, now)), ev.Data, cc.CancelItem.Type, cc.CancelItem.Data, s.channel)
	}
}

// insertRunHistorySQL appends events 2… ($2 IDs, $3 types, $4 times, $5
// data) to run $1 created in the same transaction (none if it was not
// created: the run's history then has more than its start event) and
// sets its length and size ($6 bytes in all).
const insertRunHistorySQL = `
WITH fresh AS (
	UPDATE keel_runs SET history_len = 1 + cardinality($2::bigint[]), history_bytes = $6
	WHERE run_id = $1 AND history_len = 1
	RETURNING run_id
)
INSERT INTO keel_events (run_id, id, type, time, data)
SELECT run_id, e.* FROM fresh, unnest($2::bigint[], $3::text[], $4::bigint[], $5::bytea[]) AS e`

// insertRunInboxSQL writes items ($3 types, $4 data) at $2 to the inbox of
// run $1 if it exists.
const insertRunInboxSQL = `
INSERT INTO keel_inbox (run_id, type, time, data)
SELECT $1, t, $2, d FROM unnest($3::text[], $4::bytea[]) WITH ORDINALITY AS u(t, d, n)
WHERE EXISTS (SELECT 1 FROM keel_runs WHERE run_id = $1) ORDER BY n`

// queueRunHistory queues the extra history and inbox items of a new run.
func (s *Store) queueRunHistory(b *pgx.Batch, p *store.CreateRunParams, now time.Time) {
	if n := len(p.History); n > 0 {
		ids := make([]int64, n)
		types := make([]string, n)
		times := make([]int64, n)
		datas := make([][]byte, n)
		size := int64(len(p.StartEvent.Data))
		for i, ev := range p.History {
			ids[i], types[i], times[i], datas[i] = int64(i)+2, ev.Type, nanos(orTime(ev.Time, now)), ev.Data
			size += int64(len(ev.Data))
		}
		b.Queue(insertRunHistorySQL, p.RunID, ids, types, times, datas, size)
	}
	if n := len(p.Inbox); n > 0 {
		types := make([]string, n)
		datas := make([][]byte, n)
		for i, it := range p.Inbox {
			types[i], datas[i] = it.Type, it.Data
		}
		b.Queue(insertRunInboxSQL, p.RunID, nanos(now), types, datas)
	}
}
