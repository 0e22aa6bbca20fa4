package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/keelhq/keel/durable/store"
)

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanRun reads the columns of runColumns.
func scanRun(sc scanner) (store.Run, error) {
	var (
		r                      store.Run
		status                 string
		cancel                 int64
		created, updated       int64
		closed                 sql.NullInt64
		input, result, failure []byte
		parent                 sql.NullString
		parentSeq, policy      int64
		search                 sql.NullString
		memo                   []byte
	)
	err := sc.Scan(&r.RunID, &r.WorkflowID, &r.WorkflowType, &r.TaskQueue, &status, &input, &result, &failure,
		&r.HistoryLen, &r.HistoryBytes, &cancel, &r.LastTaskFailure, &created, &updated, &closed,
		&parent, &parentSeq, &policy, &search, &memo)
	if err != nil {
		return store.Run{}, err
	}
	if parent.Valid {
		r.Parent = &store.ParentRef{RunID: parent.String, Seq: parentSeq, ClosePolicy: store.ParentClosePolicy(policy)}
	}
	r.Status = store.RunStatus(status)
	r.Input, r.Result, r.Failure = bytesOrNil(input), bytesOrNil(result), bytesOrNil(failure)
	r.CancelRequested = cancel != 0
	if search.Valid && search.String != "" {
		r.SearchAttributes = []byte(search.String)
	}
	r.Memo = bytesOrNil(memo)
	r.CreatedAt, r.UpdatedAt, r.ClosedAt = fromNanos(created), fromNanos(updated), fromNullNanos(closed)
	return r, nil
}

// CreateRun starts a run: it writes the run, its start event and a
// workflow task ready at p.Now, or, with p.Eager, the task already leased
// to the caller as ClaimWorkflowTasks would lease it, or, with p.FirstTask,
// that task's commit instead of a task. If the workflow ID has a running
// run, that run is returned with Created false and nothing is written.
func (s *Store) CreateRun(ctx context.Context, p store.CreateRunParams) (store.CreateRunResult, error) {
	if p.RunID == "" || p.WorkflowID == "" {
		return store.CreateRunResult{}, errors.New("sqlitestore: create run: RunID and WorkflowID are required")
	}
	now := nowOr(p.Now)
	if err := checkEager(p.Eager, now); err != nil {
		return store.CreateRunResult{}, fmt.Errorf("sqlitestore: create run %s: %w", p.RunID, err)
	}
	var first *workflowCommit
	if p.FirstTask != nil {
		ft := *p.FirstTask
		ft.Now = nowOr(ft.Now)
		p.FirstTask = &ft
		err := p.CheckFirstTask()
		if err == nil {
			first, err = newWorkflowCommit(p.FirstTask)
		}
		if err != nil {
			return store.CreateRunResult{}, fmt.Errorf("sqlitestore: create run %s: %w", p.RunID, err)
		}
	}
	var res store.CreateRunResult
	err := s.write(ctx, func(t *tx) error {
		var err error
		res, err = s.createRun(t, &p, now, false)
		if err != nil || !res.Created || first == nil {
			return err
		}
		// The new run is idle (no workflow task row), as the fast path of
		// CompleteActivityWithWorkflowTask expects.
		wres, err := s.commitWorkflowTask(t, first, true)
		if err != nil {
			return err
		}
		res.Activities = wres.Activities
		if first.upsert != nil {
			// The run's search attributes merge in the upsert: read
			// them back.
			res.Run, err = scanRun(t.queryRow(s.q.getRun, p.RunID))
			return err
		}
		res.Run = p.FirstTask.Apply(res.Run)
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrWorkflowIDInUse) {
			return store.CreateRunResult{}, err
		}
		return store.CreateRunResult{}, fmt.Errorf("sqlitestore: create run %s: %w", p.RunID, err)
	}
	return res, nil
}

// createRun writes a run as CreateRun does, in t. With successor, the
// run continues a run of the same workflow ID that t has just closed: the
// reuse policy is not consulted.
func (s *Store) createRun(t *tx, p *store.CreateRunParams, now time.Time, successor bool) (store.CreateRunResult, error) {
	latest, err := scanRun(t.queryRow(s.q.latestRun, p.WorkflowID))
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return store.CreateRunResult{}, err
	case latest.Status == store.StatusRunning:
		return store.CreateRunResult{Run: latest}, nil
	case successor:
	case p.ReusePolicy == store.RejectDuplicate,
		p.ReusePolicy == store.AllowDuplicateFailedOnly && latest.Status == store.StatusCompleted:
		return store.CreateRunResult{}, fmt.Errorf("sqlitestore: create run for workflow %s (latest run %s %s): %w",
			p.WorkflowID, latest.RunID, latest.Status, store.ErrWorkflowIDInUse)
	}
	search, err := parseSearch(p.SearchAttributes)
	if err != nil {
		return store.CreateRunResult{}, err
	}
	ev := p.StartEvent
	evTime := orTime(ev.Time, now)
	size := int64(len(ev.Data))
	var (
		parentRunID  any
		parentSeq    int64
		parentPolicy int64
	)
	if pr := p.Parent; pr != nil {
		parentRunID, parentSeq, parentPolicy = pr.RunID, pr.Seq, int64(pr.ClosePolicy)
	}
	if _, err := t.exec(s.q.insertRun, p.RunID, p.WorkflowID, p.WorkflowType, p.TaskQueue, blob(p.Input),
		size, nanos(now), nanos(now), parentRunID, parentSeq, parentPolicy, search.column(), blob(p.Memo)); err != nil {
		return store.CreateRunResult{}, err
	}
	if err := s.indexSearch(t, p.RunID, search.attrs, nil); err != nil {
		return store.CreateRunResult{}, err
	}
	if _, err := t.exec(s.q.insertEvent, p.RunID, 1, ev.Type, nanos(evTime), blob(ev.Data)); err != nil {
		return store.CreateRunResult{}, err
	}
	for _, tm := range p.Timers {
		if _, err := t.exec(s.q.insertTimer, p.RunID, tm.Seq, nanos(orTime(tm.FireAt, now)), p.TaskQueue,
			tm.Item.Type, blob(tm.Item.Data)); err != nil {
			return store.CreateRunResult{}, err
		}
	}
	histLen := int64(1)
	for i, hev := range p.History {
		histLen = int64(i) + 2
		size += int64(len(hev.Data))
		if _, err := t.exec(s.q.insertEvent, p.RunID, histLen, hev.Type, nanos(orTime(hev.Time, now)), blob(hev.Data)); err != nil {
			return store.CreateRunResult{}, err
		}
	}
	if histLen > 1 {
		if _, err := t.execSQL(`UPDATE runs SET history_len = ?, history_bytes = ? WHERE run_id = ?`, histLen, size, p.RunID); err != nil {
			return store.CreateRunResult{}, err
		}
	}
	run := store.Run{
		RunID:            p.RunID,
		WorkflowID:       p.WorkflowID,
		WorkflowType:     p.WorkflowType,
		TaskQueue:        p.TaskQueue,
		Status:           store.StatusRunning,
		Input:            bytesOrNil(p.Input),
		HistoryLen:       histLen,
		HistoryBytes:     size,
		Parent:           p.Parent,
		SearchAttributes: bytesOrNil(search.json),
		Memo:             bytesOrNil(p.Memo),
		CreatedAt:        fromNanos(nanos(now)),
		UpdatedAt:        fromNanos(nanos(now)),
	}
	res := store.CreateRunResult{Created: true, Run: run}
	if p.FirstTask != nil {
		return res, nil // no workflow task: the caller commits the first one
	}
	if e := p.Eager; e != nil {
		task := &store.WorkflowTask{Run: run, Token: newToken(), Attempt: 1}
		if _, err := t.exec(s.q.insertLeasedTask, p.RunID, p.TaskQueue, nanos(e.LeaseUntil), e.Owner,
			task.Token); err != nil {
			return store.CreateRunResult{}, err
		}
		res.Task = task
		for _, it := range p.Inbox {
			if err := s.insertOwnInbox(t, p.RunID, it, now); err != nil {
				return res, err
			}
		}
		return res, nil
	}
	if _, err := t.exec(s.q.insertWorkflowTask, p.RunID, p.TaskQueue, nanos(now)); err != nil {
		return res, err
	}
	for _, it := range p.Inbox {
		if err := s.insertOwnInbox(t, p.RunID, it, now); err != nil {
			return res, err
		}
	}
	return res, nil
}

// GetRun returns a run by run ID.
func (s *Store) GetRun(ctx context.Context, runID string) (store.Run, error) {
	r, err := scanRun(s.q.getRun.QueryRowContext(ctx, runID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Run{}, fmt.Errorf("sqlitestore: run %s: %w", runID, store.ErrNotFound)
	}
	if err != nil {
		return store.Run{}, fmt.Errorf("sqlitestore: get run %s: %w", runID, err)
	}
	return r, nil
}

// GetLatestRun returns the workflow ID's running run or, if none is running,
// its most recently created run. (A running run is always the most recently
// created one: no run can be created while one is running.)
func (s *Store) GetLatestRun(ctx context.Context, workflowID string) (store.Run, error) {
	r, err := scanRun(s.q.latestRun.QueryRowContext(ctx, workflowID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Run{}, fmt.Errorf("sqlitestore: workflow %s: %w", workflowID, store.ErrNotFound)
	}
	if err != nil {
		return store.Run{}, fmt.Errorf("sqlitestore: get latest run of workflow %s: %w", workflowID, err)
	}
	return r, nil
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
		return store.ListRunsResult{}, fmt.Errorf("sqlitestore: list runs: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return store.ListRunsResult{}, fmt.Errorf("sqlitestore: list runs: %w", err)
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
		var seq int64
		r, err := scanRun(prefixScanner{rows, &seq})
		if err != nil {
			return store.ListRunsResult{}, fmt.Errorf("sqlitestore: list runs: %w", err)
		}
		res.Runs = append(res.Runs, r)
		lastSeq = seq
	}
	if err := rows.Err(); err != nil {
		return store.ListRunsResult{}, fmt.Errorf("sqlitestore: list runs: %w", err)
	}
	return res, nil
}

// prefixScanner scans a leading column into first, then the rest.
type prefixScanner struct {
	sc    scanner
	first any
}

func (p prefixScanner) Scan(dest ...any) error {
	return p.sc.Scan(append([]any{p.first}, dest...)...)
}

// History returns the run's events with ID > afterID, in order. It returns
// store.ErrNotFound for an unknown run.
func (s *Store) History(ctx context.Context, runID string, afterID int64) ([]store.Event, error) {
	rows, err := s.q.history.QueryContext(ctx, runID, afterID)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: history of run %s: %w", runID, err)
	}
	defer rows.Close()
	var events []store.Event
	for rows.Next() {
		var (
			ev   store.Event
			tm   int64
			data []byte
		)
		if err := rows.Scan(&ev.ID, &ev.Type, &tm, &data); err != nil {
			return nil, fmt.Errorf("sqlitestore: history of run %s: %w", runID, err)
		}
		ev.Time, ev.Data = fromNanos(tm), bytesOrNil(data)
		events = append(events, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: history of run %s: %w", runID, err)
	}
	if len(events) == 0 {
		// Every run has a start event, so no events at all means no run;
		// with afterID > 0 it may just mean nothing new.
		if _, err := s.GetRun(ctx, runID); err != nil {
			return nil, err
		}
	}
	return events, nil
}

// Signal writes p.Item to the inbox of a running run, addressed by run ID
// or by workflow ID, and makes its workflow task runnable. With a
// RequestID, a signal already accepted by that run is not written again, and
// succeeds even if the run has closed since.
func (s *Store) Signal(ctx context.Context, p store.SignalParams) (store.Run, error) {
	now := nowOr(p.Now)
	target := p.RunID
	if target == "" {
		target = "of workflow " + p.WorkflowID
	}
	var run store.Run
	err := s.write(ctx, func(t *tx) error {
		var err error
		if p.RunID != "" {
			run, err = scanRun(t.queryRow(s.q.getRun, p.RunID))
		} else {
			run, err = scanRun(t.queryRow(s.q.latestRun, p.WorkflowID))
		}
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if run.Status != store.StatusRunning {
			if p.RequestID != "" {
				var n int
				if err := t.queryRow(s.q.signalReqFound, run.RunID, p.RequestID).Scan(&n); err != nil {
					return err
				}
				if n > 0 {
					return nil // accepted before the run closed
				}
			}
			return store.ErrRunClosed
		}
		if p.RequestID != "" {
			n, err := t.execN(s.q.addSignalReq, run.RunID, p.RequestID)
			if err != nil {
				return err
			}
			if n == 0 {
				return nil // already accepted
			}
		}
		_, err = t.exec(s.q.insertInbox, run.RunID, p.Item.Type, nanos(now), blob(p.Item.Data))
		return err
	})
	if err != nil {
		return store.Run{}, fmt.Errorf("sqlitestore: signal run %s: %w", target, err)
	}
	return run, nil
}

// RequestCancel marks a running run cancel-requested, writes p.Item to its
// inbox and marks its activity tasks cancel-requested. A run already
// cancel-requested is left as it is.
func (s *Store) RequestCancel(ctx context.Context, p store.CancelParams) error {
	now := nowOr(p.Now)
	err := s.write(ctx, func(t *tx) error {
		n, err := t.execN(s.q.requestCancel, p.RunID, nanos(now))
		if err != nil {
			return err
		}
		if n == 0 {
			return s.runClosedOrMissing(t, p.RunID, nil)
		}
		if _, err := t.exec(s.q.insertInbox, p.RunID, p.Item.Type, nanos(now), blob(p.Item.Data)); err != nil {
			return err
		}
		_, err = t.exec(s.q.cancelRunActs, p.RunID)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: request cancel of run %s: %w", p.RunID, err)
	}
	return nil
}

// runClosedOrMissing explains why a write fenced on a running run changed
// nothing: store.ErrNotFound or store.ErrRunClosed, or ifRunning when the
// run is in fact running.
func (s *Store) runClosedOrMissing(t *tx, runID string, ifRunning error) error {
	var status string
	err := t.queryRow(s.q.runStatus, runID).Scan(&status)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.ErrNotFound
	case err != nil:
		return err
	case store.RunStatus(status) != store.StatusRunning:
		return store.ErrRunClosed
	}
	return ifRunning
}

// Terminate closes a running run at once: p.Event is appended to its
// history, its status becomes terminated, and its tasks, timers and inbox
// are deleted.
func (s *Store) Terminate(ctx context.Context, p store.TerminateParams) error {
	now := nowOr(p.Now)
	err := s.write(ctx, func(t *tx) error {
		parent, err := parentOf(t, p.RunID)
		if errors.Is(err, sql.ErrNoRows) {
			return s.runClosedOrMissing(t, p.RunID, nil)
		}
		if err != nil {
			return err
		}
		err = s.terminateTx(t, p.RunID, p.Event, p.Failure, now)
		if errors.Is(err, sql.ErrNoRows) {
			return s.runClosedOrMissing(t, p.RunID, nil)
		}
		if err != nil {
			return err
		}
		return s.closeFamily(t, parent, p.ParentItem, p.Children, p.RunID, now)
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: terminate run %s: %w", p.RunID, err)
	}
	return nil
}

// SignalWithWorkflowTask accepts a signal and commits the workflow task the
// caller ran on it, in one transaction: the request ID, if any, is
// recorded, and the commit is fenced on the run being running and idle at
// the expected history length. It returns store.ErrRunBusy, writing
// nothing, when the run is not, or when it accepted the request ID before.
func (s *Store) SignalWithWorkflowTask(ctx context.Context, p store.SignalWithWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	sp := &p.Signal
	wrap := func(err error) error {
		return fmt.Errorf("sqlitestore: signal run %s with workflow task: %w", sp.RunID, err)
	}
	if sp.RunID == "" || sp.RunID != p.Workflow.RunID {
		return store.CompleteWorkflowTaskResult{}, wrap(fmt.Errorf("the signal's run %q and the workflow task's %q differ", sp.RunID, p.Workflow.RunID))
	}
	c, err := newIdleCommit(&p.Workflow)
	if err != nil {
		return store.CompleteWorkflowTaskResult{}, wrap(err)
	}
	var res store.CompleteWorkflowTaskResult
	err = s.write(ctx, func(t *tx) error {
		if sp.RequestID != "" {
			n, err := t.execN(s.q.addSignalReq, sp.RunID, sp.RequestID)
			if err != nil {
				return err
			}
			if n == 0 {
				return store.ErrRunBusy // accepted before: Signal says so
			}
		}
		var err error
		res, err = s.commitWorkflowTask(t, c, true)
		return err
	})
	if err != nil {
		return store.CompleteWorkflowTaskResult{}, wrap(err)
	}
	return res, nil
}
