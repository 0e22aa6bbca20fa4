package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keelhq/keel/durable/store"
)

// runColumns are the columns runRow scans, in its order.
const runColumns = `seq, run_id, workflow_id, workflow_type, task_queue, status, input, result, failure,
	history_len, history_bytes, cancel_requested, last_task_failure, created_at, updated_at, closed_at,
	parent_run_id, parent_seq, parent_close_policy, search_attributes, memo`

// runRow is a row of runColumns being scanned.
type runRow struct {
	seq              int64
	run              store.Run
	status           string
	created, updated int64
	closed           *int64
	parent           *string
	parentSeq        int64
	parentPolicy     int32
	search           []byte
}

// dest returns the scan destinations of runColumns.
func (r *runRow) dest() []any {
	return []any{&r.seq, &r.run.RunID, &r.run.WorkflowID, &r.run.WorkflowType, &r.run.TaskQueue, &r.status,
		&r.run.Input, &r.run.Result, &r.run.Failure, &r.run.HistoryLen, &r.run.HistoryBytes,
		&r.run.CancelRequested, &r.run.LastTaskFailure, &r.created, &r.updated, &r.closed,
		&r.parent, &r.parentSeq, &r.parentPolicy, &r.search, &r.run.Memo}
}

// value returns the scanned run.
func (r *runRow) value() store.Run {
	run := r.run
	run.Status = store.RunStatus(r.status)
	run.Input, run.Result, run.Failure = bytesOrNil(run.Input), bytesOrNil(run.Result), bytesOrNil(run.Failure)
	run.CreatedAt, run.UpdatedAt, run.ClosedAt = fromNanos(r.created), fromNanos(r.updated), fromNullNanos(r.closed)
	run.SearchAttributes, run.Memo = bytesOrNil(r.search), bytesOrNil(run.Memo)
	if r.parent != nil {
		run.Parent = &store.ParentRef{RunID: *r.parent, Seq: r.parentSeq, ClosePolicy: store.ParentClosePolicy(r.parentPolicy)}
	}
	return run
}

// scanRun reads one row of runColumns.
func scanRun(row pgx.Row) (store.Run, int64, error) {
	var r runRow
	if err := row.Scan(r.dest()...); err != nil {
		return store.Run{}, 0, err
	}
	return r.value(), r.seq, nil
}

// createRunTemplate starts a run unless the workflow ID has a running run,
// which it returns instead (first column false). The reuse policy ($7: 0
// AllowDuplicate, 1 AllowDuplicateFailedOnly, 2 RejectDuplicate) is checked
// against the workflow ID's latest run and raises KL004 when it refuses.
// When another process starts a run for the workflow ID at the same moment,
// the unique index on running workflow IDs makes the insert do nothing, and
// the statement returns no row: that run committed after this statement's
// snapshot, so the caller reads it with a new statement. The run's search
// attributes and memo are $12 and $13. {task} is the insert of the run's
// workflow task (createRunSQL, createRunEagerSQL).
const createRunTemplate = `
WITH running AS (
	SELECT ` + runColumns + ` FROM keel_runs WHERE workflow_id = $2 AND status = 'running'
), latest AS (
	SELECT status FROM keel_runs WHERE workflow_id = $2 ORDER BY seq DESC LIMIT 1
), allowed AS (
	SELECT CASE
		WHEN EXISTS (SELECT 1 FROM running) THEN false
		WHEN NOT EXISTS (SELECT 1 FROM latest) OR $7::int = 0 THEN true
		WHEN $7::int = 1 AND (SELECT status FROM latest) <> 'completed' THEN true
		ELSE keel_raise('KL004', 'the reuse policy refuses a new run')
	END AS ok
), created AS (
	INSERT INTO keel_runs (run_id, workflow_id, workflow_type, task_queue, status, input,
		history_len, history_bytes, created_at, updated_at, search_attributes, memo)
	SELECT $1, $2, $3, $4, 'running', $5, 1, $8, $6, $6, $12::jsonb, $13::bytea FROM allowed WHERE ok
	ON CONFLICT (workflow_id) WHERE status = 'running' DO NOTHING
	RETURNING ` + runColumns + `
), event AS (
	INSERT INTO keel_events (run_id, id, type, time, data)
	SELECT run_id, 1, $9, $10, $11 FROM created
), task AS (
	{task}
)
SELECT true, ` + runColumns + ` FROM created
UNION ALL
SELECT false, ` + runColumns + ` FROM running`

var (
	// createRunSQL makes the workflow task ready at $6 (notified by
	// notifyWorkflowTaskSQL).
	createRunSQL = strings.Replace(createRunTemplate, "{task}", `
	INSERT INTO keel_workflow_tasks (run_id, task_queue, ready_at)
	SELECT run_id, task_queue, $6 FROM created`, 1)

	// createRunEagerSQL makes it leased at once, as claimWorkflowTasksSQL
	// would: token $14, owner $15, attempt 1, lease expiry $16 (in ready_at
	// and wake_at too). Nobody else can claim it, so nobody is notified.
	createRunEagerSQL = strings.Replace(createRunTemplate, "{task}", `
	INSERT INTO keel_workflow_tasks (run_id, task_queue, ready_at, wake_at, token, owner, lease_expires_at, attempt)
	SELECT run_id, task_queue, $16, $16, $14, $15, $16, 1 FROM created`, 1)

	// createRunIdleSQL makes no workflow task: the statements of the
	// first task's commit follow it in the same transaction
	// (CreateRunParams.FirstTask).
	createRunIdleSQL = strings.Replace(createRunTemplate, "{task}", `SELECT 1`, 1)
)

// notifyWorkflowTaskSQL notifies channel $1 with the task queue of run $2's
// workflow task if the task is claimable at $3.
const notifyWorkflowTaskSQL = `
SELECT pg_notify($1, 'w/' || task_queue) FROM keel_workflow_tasks WHERE run_id = $2 AND ready_at <= $3`

const runningRunSQL = `SELECT ` + runColumns + ` FROM keel_runs WHERE workflow_id = $1 AND status = 'running'`

// CreateRun starts a run: it writes the run, its start event and a
// workflow task ready at p.Now, in one round trip. If the workflow ID has a
// running run, that run is returned with Created false and nothing is
// written; that holds across processes, by a unique index on the running
// runs' workflow IDs.
//
// With p.Eager, the workflow task is written already leased to the caller,
// as ClaimWorkflowTasks would lease it (a new token, attempt 1, until
// p.Eager.LeaseUntil), and returned in the result's Task; still one round
// trip, and no notification.
func (s *Store) CreateRun(ctx context.Context, p store.CreateRunParams) (store.CreateRunResult, error) {
	if p.RunID == "" || p.WorkflowID == "" {
		return store.CreateRunResult{}, errors.New("pgstore: create run: RunID and WorkflowID are required")
	}
	if p.Parent != nil {
		return store.CreateRunResult{}, errors.New("pgstore: create run: a child run is started by its parent's commit (ChildStart)")
	}
	now := nowOr(p.Now)
	ev := p.StartEvent
	search, err := parseSearch(p.SearchAttributes)
	if err != nil {
		return store.CreateRunResult{}, fmt.Errorf("pgstore: create run %s: %w", p.RunID, err)
	}
	if err := p.CheckFirstTask(); err != nil {
		return store.CreateRunResult{}, fmt.Errorf("pgstore: create run %s: %w", p.RunID, err)
	}
	if p.FirstTask != nil {
		ft := *p.FirstTask
		ft.Now = nowOr(ft.Now)
		p.FirstTask = &ft
	}
	var token string
	if e := p.Eager; e != nil {
		if !e.LeaseUntil.After(now) {
			return store.CreateRunResult{}, fmt.Errorf("pgstore: create run %s: eager LeaseUntil %v is not after Now %v",
				p.RunID, e.LeaseUntil, now)
		}
		token = uuid.NewString()
	}
	// A lost race to start the workflow ID usually takes one more read; a
	// few rounds cover the run that won being closed at once, too.
	for range 3 {
		var (
			res   store.CreateRunResult
			found bool
		)
		args := []any{p.RunID, p.WorkflowID, p.WorkflowType, p.TaskQueue, p.Input, nanos(now),
			int(p.ReusePolicy), int64(len(ev.Data)), ev.Type, nanos(orTime(ev.Time, now)), ev.Data,
			search.json, p.Memo}
		query := createRunSQL
		switch {
		case p.FirstTask != nil:
			query = createRunIdleSQL
		case p.Eager != nil:
			query, args = createRunEagerSQL, append(args, token, p.Eager.Owner, nanos(p.Eager.LeaseUntil))
		}
		b := &pgx.Batch{}
		b.Queue(query, args...).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var r runRow
				if err := rows.Scan(append([]any{&res.Created}, r.dest()...)...); err != nil {
					return err
				}
				res.Run, found = r.value(), true
			}
			return rows.Err()
		})
		var first store.CompleteWorkflowTaskResult
		if p.FirstTask != nil {
			// Unless the run was created, KL005 (store.ErrRunBusy) rolls
			// the whole batch back; the running run is read below.
			b.Queue(runIdleSQL, p.RunID, int64(1))
		} else if p.Eager == nil {
			b.Queue(notifyWorkflowTaskSQL, s.channel, p.RunID, nanos(now))
		}
		s.queueRunTimers(b, p.RunID, p.Timers, now)
		s.queueRunHistory(b, &p, now)
		queueIndexSearch(b, p.RunID, search.attrs)
		if p.FirstTask != nil {
			if err := s.queueCommit(b, *p.FirstTask, p.FirstTask.Now, true, &first); err != nil {
				return store.CreateRunResult{}, fmt.Errorf("pgstore: create run %s: first task: %w", p.RunID, err)
			}
			if len(p.FirstTask.UpsertSearchAttributes) > 0 {
				// The run's search attributes merge in the upsert: read
				// them back.
				b.Queue(`SELECT `+runColumns+` FROM keel_runs WHERE run_id = $1`, p.RunID).QueryRow(func(row pgx.Row) error {
					run, _, err := scanRun(row)
					res.Run = run
					return err
				})
			}
		}
		err := s.send(ctx, b)
		if p.FirstTask != nil && errors.Is(err, store.ErrRunBusy) {
			found, err = false, nil
		}
		if err != nil {
			if errors.Is(err, store.ErrWorkflowIDInUse) {
				return store.CreateRunResult{}, fmt.Errorf("pgstore: create run for workflow %s: %w", p.WorkflowID, err)
			}
			return store.CreateRunResult{}, fmt.Errorf("pgstore: create run %s: %w", p.RunID, err)
		}
		if found {
			if p.FirstTask != nil && len(p.FirstTask.UpsertSearchAttributes) == 0 {
				res.Run = p.FirstTask.Apply(res.Run)
			}
			if res.Created && p.Eager != nil {
				res.Task = &store.WorkflowTask{Run: res.Run, Token: token, Attempt: 1}
			}
			res.Activities = first.Activities
			return res, nil
		}
		run, _, err := scanRun(s.pool.QueryRow(ctx, runningRunSQL, p.WorkflowID))
		if err == nil {
			return store.CreateRunResult{Run: run}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return store.CreateRunResult{}, fmt.Errorf("pgstore: create run %s: %w", p.RunID, err)
		}
	}
	return store.CreateRunResult{}, fmt.Errorf("pgstore: create run %s: workflow %s keeps changing", p.RunID, p.WorkflowID)
}

// GetRun returns a run by run ID.
func (s *Store) GetRun(ctx context.Context, runID string) (store.Run, error) {
	run, _, err := scanRun(s.pool.QueryRow(ctx, `SELECT `+runColumns+` FROM keel_runs WHERE run_id = $1`, runID))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Run{}, fmt.Errorf("pgstore: run %s: %w", runID, store.ErrNotFound)
	}
	if err != nil {
		return store.Run{}, fmt.Errorf("pgstore: get run %s: %w", runID, err)
	}
	return run, nil
}

// GetLatestRun returns the workflow ID's running run or, if none is running,
// its most recently created run. (A running run is always the most recently
// created one: no run can be created while one is running.)
func (s *Store) GetLatestRun(ctx context.Context, workflowID string) (store.Run, error) {
	run, _, err := scanRun(s.pool.QueryRow(ctx,
		`SELECT `+runColumns+` FROM keel_runs WHERE workflow_id = $1 ORDER BY seq DESC LIMIT 1`, workflowID))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Run{}, fmt.Errorf("pgstore: workflow %s: %w", workflowID, store.ErrNotFound)
	}
	if err != nil {
		return store.Run{}, fmt.Errorf("pgstore: get latest run of workflow %s: %w", workflowID, err)
	}
	return run, nil
}

// ListRuns lists runs newest first. The cursor is the creation sequence
// number of the last run of the previous page.
func (s *Store) ListRuns(ctx context.Context, p store.ListRunsParams) (store.ListRunsResult, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 100
	}
	query, args, err := listRunsQuery(p, limit)
	if err != nil {
		return store.ListRunsResult{}, fmt.Errorf("pgstore: list runs: %w", err)
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return store.ListRunsResult{}, fmt.Errorf("pgstore: list runs: %w", err)
	}
	defer rows.Close()
	var (
		res     store.ListRunsResult
		lastSeq int64
	)
	for rows.Next() {
		if len(res.Runs) == limit {
			res.NextCursor = strconv.FormatInt(lastSeq, 10)
			break
		}
		run, seq, err := scanRun(rows)
		if err != nil {
			return store.ListRunsResult{}, fmt.Errorf("pgstore: list runs: %w", err)
		}
		res.Runs = append(res.Runs, run)
		lastSeq = seq
	}
	if err := rows.Err(); err != nil {
		return store.ListRunsResult{}, fmt.Errorf("pgstore: list runs: %w", err)
	}
	return res, nil
}

// historySQL returns the run's events after $2, or one row of NULLs when it
// has none, and no row when there is no such run.
const historySQL = `
SELECT e.id, e.type, e.time, e.data
FROM keel_runs r LEFT JOIN keel_events e ON e.run_id = r.run_id AND e.id > $2
WHERE r.run_id = $1
ORDER BY e.id`

// History returns the run's events with ID > afterID, in order. It returns
// store.ErrNotFound for an unknown run.
func (s *Store) History(ctx context.Context, runID string, afterID int64) ([]store.Event, error) {
	rows, err := s.pool.Query(ctx, historySQL, runID, afterID)
	if err != nil {
		return nil, fmt.Errorf("pgstore: history of run %s: %w", runID, err)
	}
	defer rows.Close()
	var (
		events []store.Event
		found  bool
	)
	for rows.Next() {
		found = true
		var (
			id   *int64
			typ  *string
			tm   *int64
			data []byte
		)
		if err := rows.Scan(&id, &typ, &tm, &data); err != nil {
			return nil, fmt.Errorf("pgstore: history of run %s: %w", runID, err)
		}
		if id == nil {
			continue // the run has no events after afterID
		}
		events = append(events, store.Event{ID: *id, Type: *typ, Time: fromNanos(*tm), Data: bytesOrNil(data)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: history of run %s: %w", runID, err)
	}
	if !found {
		return nil, fmt.Errorf("pgstore: history of run %s: %w", runID, store.ErrNotFound)
	}
	return events, nil
}

// wakeRunSQL is the tail shared by every statement that writes to a run's
// inbox. Given a CTE "target" holding the run (run_id, task_queue) to wake,
// it makes the run's workflow task runnable, writes the item ($type, $data)
// to the inbox at $now, and notifies $channel if the task is claimable
// (unless the statement leases the task itself: wakeRunUnnotified):
//
//   - The workflow task is inserted ready at $now if the run has none. One
//     that exists is left as it is: a leased task stays leased (its commit
//     then reports Pending), a task waiting out a retry backoff keeps it.
//   - The upsert locks the task row before the inbox row takes its ID, and
//     the lock is held until commit. Claims and commits hold the same lock,
//     so a run's inbox IDs are taken in commit order: a claim sees a prefix
//     of the run's inbox, and a commit that deletes up to the last ID it
//     claimed never deletes an item it did not see.
//
// The placeholders are written as {now}, {type}, {data} and {channel} and
// replaced by each statement's parameter numbers.
const wakeRunSQL = `
task AS (
	INSERT INTO keel_workflow_tasks AS w (run_id, task_queue, ready_at)
	SELECT run_id, task_queue, {now} FROM target
	ON CONFLICT (run_id) DO UPDATE SET ready_at = w.ready_at
	RETURNING w.run_id, w.task_queue, w.ready_at
), item AS (
	INSERT INTO keel_inbox (run_id, type, time, data) SELECT run_id, {type}, {now}, {data} FROM task
){notified}`

// wakeRun returns wakeRunSQL with its placeholders replaced by the given
// parameter numbers.
func wakeRun(now, typ, data, channel int) string {
	return strings.NewReplacer(
		"{now}", fmt.Sprintf("$%d", now),
		"{type}", fmt.Sprintf("$%d", typ),
		"{data}", fmt.Sprintf("$%d", data),
		"{notified}", fmt.Sprintf(`, notified AS (
	SELECT pg_notify($%d, 'w/' || task_queue) FROM task WHERE ready_at <= $%d
)`, channel, now),
	).Replace(wakeRunSQL)
}

// wakeRunUnnotified is wakeRun without the notification, for a statement
// whose transaction leases the task to its caller if it is claimable.
func wakeRunUnnotified(now, typ, data int) string {
	return strings.NewReplacer(
		"{now}", fmt.Sprintf("$%d", now),
		"{type}", fmt.Sprintf("$%d", typ),
		"{data}", fmt.Sprintf("$%d", data),
		"{notified}", "",
	).Replace(wakeRunSQL)
}

// signalSQL signals a run chosen by the "run" CTE it is prefixed with
// (signalByRunIDSQL, signalByWorkflowIDSQL). The run row is share-locked
// first, so a run closing at the same moment is seen closed. A request ID
// ($3) is recorded for the run; if the run has it already (ON CONFLICT
// sees the latest commits, not the statement's snapshot), the signal was
// accepted before and nothing is written. A signal to a closed run raises
// KL003, which also rolls back the request ID just recorded, unless the
// run had accepted that request ID. The statement returns the run and the
// number of notifications; no row when there is no such run.
const signalSQL = `
, fresh AS (
	INSERT INTO keel_signal_requests (run_id, request_id, created_at)
	SELECT run_id, $3, $4 FROM run WHERE $3 <> ''
	ON CONFLICT DO NOTHING
	RETURNING run_id
), target AS (
	SELECT run_id, task_queue FROM run
	WHERE status = 'running' AND ($3 = '' OR EXISTS (SELECT 1 FROM fresh))
), ` + "{wake}" + `
SELECT ` + runColumns + `,
	CASE WHEN status <> 'running' AND ($3 = '' OR EXISTS (SELECT 1 FROM fresh))
		THEN keel_raise('KL003', 'a closed run takes no signals') END,
	(SELECT count(*) FROM notified)
FROM run`

var (
	signalByRunIDSQL = `WITH run AS (
	SELECT ` + runColumns + ` FROM keel_runs WHERE run_id = $1 AND $2 = '' FOR SHARE
)` + strings.Replace(signalSQL, "{wake}", wakeRun(4, 5, 6, 7), 1)
	signalByWorkflowIDSQL = `WITH run AS (
	SELECT ` + runColumns + ` FROM keel_runs WHERE workflow_id = $2 AND $1 = '' ORDER BY seq DESC LIMIT 1 FOR SHARE
)` + strings.Replace(signalSQL, "{wake}", wakeRun(4, 5, 6, 7), 1)
)

// Signal writes p.Item to the inbox of a running run, addressed by run ID
// or by workflow ID (its latest run), and makes its workflow task
// runnable, in one statement. With a RequestID, a signal the run already
// accepted is not written again, and succeeds even if the run has closed
// since.
func (s *Store) Signal(ctx context.Context, p store.SignalParams) (store.Run, error) {
	now := nowOr(p.Now)
	query, target := signalByRunIDSQL, p.RunID
	if p.RunID == "" {
		query, target = signalByWorkflowIDSQL, "of workflow "+p.WorkflowID
	}
	var (
		r        runRow
		closed   *bool
		notified int64
	)
	err := s.pool.QueryRow(ctx, query, p.RunID, p.WorkflowID, p.RequestID, nanos(now), p.Item.Type, p.Item.Data, s.channel).
		Scan(append(r.dest(), &closed, &notified)...)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Run{}, fmt.Errorf("pgstore: signal run %s: %w", target, storeErr(err))
	}
	return r.value(), nil
}

// lockRunningRunSQL locks a run's row and stops the transaction unless the
// run exists (KL002) and is running (KL003). Once the lock is granted the
// row is read again, so a run that closed while it waited is seen closed.
// The statements after it in the same transaction take new snapshots: they
// see every row a transaction that held the run's lock before committed
// (activity tasks and timers it scheduled, items it wrote), which one
// statement, whose snapshot predates its wait for the lock, would not.
const lockRunningRunSQL = `
WITH run AS (
	SELECT status FROM keel_runs WHERE run_id = $1 FOR NO KEY UPDATE
)
SELECT CASE
	WHEN NOT EXISTS (SELECT 1 FROM run) THEN keel_raise('KL002', 'no such run')
	WHEN (SELECT status FROM run) <> 'running' THEN keel_raise('KL003', 'the run already has a final status')
END`

// requestCancelSQL marks the run (locked by lockRunningRunSQL) and its
// activity tasks cancel-requested and writes the item to its inbox, unless
// the run is cancel-requested already.
var requestCancelSQL = `
WITH target AS (
	UPDATE keel_runs SET cancel_requested = true, updated_at = $2
	WHERE run_id = $1 AND NOT cancel_requested
	RETURNING run_id, task_queue
), activities AS (
	UPDATE keel_activity_tasks SET cancel_requested = true WHERE run_id = (SELECT run_id FROM target)
), ` + wakeRun(2, 3, 4, 5) + `
SELECT count(*) FROM notified`

// RequestCancel marks a running run cancel-requested, writes p.Item to its
// inbox and marks its activity tasks cancel-requested, in one round trip. A
// run already cancel-requested is left as it is.
func (s *Store) RequestCancel(ctx context.Context, p store.CancelParams) error {
	now := nowOr(p.Now)
	b := &pgx.Batch{}
	b.Queue(lockRunningRunSQL, p.RunID)
	b.Queue(requestCancelSQL, p.RunID, nanos(now), p.Item.Type, p.Item.Data, s.channel)
	if err := s.send(ctx, b); err != nil {
		return fmt.Errorf("pgstore: request cancel of run %s: %w", p.RunID, err)
	}
	return nil
}

// terminateSQL closes the run (locked by lockRunningRunSQL) as terminated
// and appends the event at history_len+1.
const terminateSQL = `
WITH closed AS (
	UPDATE keel_runs SET status = 'terminated', failure = $2, history_len = history_len + 1,
		history_bytes = history_bytes + $3, updated_at = $4, closed_at = $4
	WHERE run_id = $1
	RETURNING run_id, history_len
)
INSERT INTO keel_events (run_id, id, type, time, data) SELECT run_id, history_len, $5, $6, $7 FROM closed`

// Terminate closes a running run at once, in one round trip: p.Event is
// appended to its history, its status becomes terminated, and its tasks,
// timers and inbox are deleted.
func (s *Store) Terminate(ctx context.Context, p store.TerminateParams) error {
	now := nowOr(p.Now)
	b := &pgx.Batch{}
	b.Queue(lockRunningRunSQL, p.RunID)
	b.Queue(terminateSQL, p.RunID, p.Failure, int64(len(p.Event.Data)), nanos(now),
		p.Event.Type, nanos(orTime(p.Event.Time, now)), p.Event.Data)
	b.Queue(deleteRunTasksSQL, p.RunID)
	s.queueFamily(b, p.RunID, p.ParentItem, p.Children, now)
	if err := s.send(ctx, b); err != nil {
		return fmt.Errorf("pgstore: terminate run %s: %w", p.RunID, err)
	}
	return nil
}

// deleteClosedRunsSQL deletes up to $2 runs closed before $1 and every row
// that belongs to them.
const deleteClosedRunsSQL = `
WITH doomed AS (
	SELECT run_id, seq FROM keel_runs WHERE closed_at < $1 ORDER BY closed_at LIMIT $2 FOR UPDATE SKIP LOCKED
), events AS (
	DELETE FROM keel_events WHERE run_id IN (SELECT run_id FROM doomed)
), inbox AS (
	DELETE FROM keel_inbox WHERE run_id IN (SELECT run_id FROM doomed)
), signal_requests AS (
	DELETE FROM keel_signal_requests WHERE run_id IN (SELECT run_id FROM doomed)
), workflow_tasks AS (
	DELETE FROM keel_workflow_tasks WHERE run_id IN (SELECT run_id FROM doomed)
), activity_tasks AS (
	DELETE FROM keel_activity_tasks WHERE run_id IN (SELECT run_id FROM doomed)
), timers AS (
	DELETE FROM keel_timers WHERE run_id IN (SELECT run_id FROM doomed)
), attempts AS (
	DELETE FROM keel_activity_attempts WHERE run_id IN (SELECT run_id FROM doomed)
), search AS (
	DELETE FROM keel_search_attributes WHERE run_seq IN (SELECT seq FROM doomed)
)
DELETE FROM keel_runs WHERE run_id IN (SELECT run_id FROM doomed)`

// DeleteClosedRuns deletes the runs that closed before closedBefore, with
// their history, inbox, signal request IDs, activity attempts, search
// attribute index entries and any leftover tasks and timers. It works in
// transactions of up to batchSize runs (default 1000 when batchSize <= 0),
// so that a large backlog never holds locks for long, until none is left
// or ctx ends, and returns the number of runs deleted.
func (s *Store) DeleteClosedRuns(ctx context.Context, closedBefore time.Time, batchSize int) (int, error) {
	if batchSize <= 0 {
		batchSize = 1000
	}
	if closedBefore.IsZero() {
		return 0, nil
	}
	total := 0
	for {
		tag, err := s.pool.Exec(ctx, deleteClosedRunsSQL, nanos(closedBefore), batchSize)
		if err != nil {
			return total, fmt.Errorf("pgstore: delete closed runs: %w", err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n < batchSize {
			return total, nil
		}
	}
}

// Statements of SignalWithWorkflowTask, before those of the workflow task's
// commit.
const (
	// lockRunIdleSQL locks run $1's row as a commit does and stops the
	// transaction with KL005 unless the run is running; runIdleSQL follows.
	lockRunIdleSQL = `
SELECT keel_raise('KL005', 'the run is not running')
WHERE NOT EXISTS (SELECT 1 FROM keel_runs WHERE run_id = $1 AND status = 'running' FOR NO KEY UPDATE)`

	// freshSignalRequestSQL records request ID $2 for run $1 at $3, and
	// stops the transaction with KL005 if the run has it already.
	freshSignalRequestSQL = `
WITH fresh AS (
	INSERT INTO keel_signal_requests (run_id, request_id, created_at) VALUES ($1, $2, $3)
	ON CONFLICT DO NOTHING
	RETURNING run_id
)
SELECT keel_raise('KL005', 'the run accepted the request ID before')
WHERE NOT EXISTS (SELECT 1 FROM fresh)`
)

// SignalWithWorkflowTask accepts a signal and commits the workflow task the
// caller ran on it, in one round trip: the run row is locked as by a
// commit, the run must be running and idle at the expected history length,
// the request ID, if any, is recorded, and the commit's statements follow.
// It returns store.ErrRunBusy, writing nothing, when the run is not idle
// or accepted the request ID before.
func (s *Store) SignalWithWorkflowTask(ctx context.Context, p store.SignalWithWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	sp, wp := p.Signal, p.Workflow
	if sp.RunID == "" || sp.RunID != wp.RunID {
		return store.CompleteWorkflowTaskResult{}, fmt.Errorf("pgstore: signal run %s with workflow task: the signal's run %q and the workflow task's %q differ",
			sp.RunID, sp.RunID, wp.RunID)
	}
	res, err := s.sendIdleCommit(ctx, wp, func(b *pgx.Batch) {
		if sp.RequestID != "" {
			b.Queue(freshSignalRequestSQL, sp.RunID, sp.RequestID, nanos(nowOr(sp.Now)))
		}
	})
	if err != nil {
		return res, fmt.Errorf("pgstore: signal run %s with workflow task: %w", sp.RunID, err)
	}
	return res, nil
}

// sendIdleCommit sends, in one round trip, a workflow task's commit fenced
// on the run being idle, as the fast paths write it: the run row locked as
// by a commit (KL005 unless the run is running), runIdleSQL, the
// statements that queue adds (the write of the input the task ran on),
// then the commit's.
func (s *Store) sendIdleCommit(ctx context.Context, wp store.CompleteWorkflowTaskParams, queue func(b *pgx.Batch)) (store.CompleteWorkflowTaskResult, error) {
	if wp.NeedsWorkflowTask() {
		return store.CompleteWorkflowTaskResult{}, store.ErrNeedsWorkflowTask
	}
	var result store.CompleteWorkflowTaskResult
	b := &pgx.Batch{}
	b.Queue(lockRunIdleSQL, wp.RunID)
	b.Queue(runIdleSQL, wp.RunID, wp.ExpectedHistoryLen)
	queue(b)
	if err := s.queueCommit(b, wp, nowOr(wp.Now), true, &result); err != nil {
		return store.CompleteWorkflowTaskResult{}, err
	}
	if err := s.send(ctx, b); err != nil {
		return store.CompleteWorkflowTaskResult{}, err
	}
	return result, nil
}
