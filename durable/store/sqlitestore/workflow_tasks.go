package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keelhq/keel/durable/store"
)

// ClaimWorkflowTasks leases up to p.Limit workflow tasks on p.TaskQueue
// that are ready at p.Now and unleased or whose lease expired, oldest
// first. Each gets a new token and its attempt number goes up by one; the
// lease lasts until p.LeaseUntil.
func (s *Store) ClaimWorkflowTasks(ctx context.Context, p store.ClaimParams) ([]store.WorkflowTask, error) {
	now := nowOr(p.Now)
	if p.Limit < 1 {
		return nil, fmt.Errorf("sqlitestore: claim workflow tasks: limit %d, want at least 1", p.Limit)
	}
	if !p.LeaseUntil.After(now) {
		return nil, fmt.Errorf("sqlitestore: claim workflow tasks: LeaseUntil %v is not after Now %v", p.LeaseUntil, now)
	}
	// Look before taking the write lock: idle pollers then cost one
	// indexed read and never queue behind writers.
	if ok, err := s.probe(ctx, s.q.probeWorkflowTasks, p.TaskQueue, nanos(now)); err != nil || !ok {
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: claim workflow tasks: %w", err)
		}
		return nil, nil
	}
	var tasks []store.WorkflowTask
	err := s.write(ctx, func(t *tx) error {
		rows, err := t.query(s.q.claimWorkflowTasks, p.Owner, nanos(p.LeaseUntil), p.TaskQueue, nanos(now), p.Limit)
		if err != nil {
			return err
		}
		tasks = tasks[:0]
		for rows.Next() {
			var wt store.WorkflowTask
			if err := rows.Scan(&wt.Run.RunID, &wt.Token, &wt.Attempt); err != nil {
				rows.Close()
				return err
			}
			tasks = append(tasks, wt)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		switch len(tasks) {
		case 0:
			return nil
		case 1:
			return s.loadOne(t, &tasks[0])
		default:
			return s.loadMany(t, tasks)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: claim workflow tasks: %w", err)
	}
	return tasks, nil
}

// probe runs a statement that returns one count or boolean and reports
// whether it is non-zero.
func (s *Store) probe(ctx context.Context, stmt *sql.Stmt, args ...any) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	var n int64
	// One indexed lookup: not worth a goroutine watching ctx.
	err := stmt.QueryRowContext(context.WithoutCancel(ctx), args...).Scan(&n)
	return n != 0, err
}

// loadOne fills in a claimed task's run and inbox.
func (s *Store) loadOne(t *tx, wt *store.WorkflowTask) error {
	run, err := scanRun(t.queryRow(s.q.getRun, wt.Run.RunID))
	if err != nil {
		return err
	}
	wt.Run = run
	rows, err := t.query(s.q.inboxOfRun, run.RunID)
	if err != nil {
		return err
	}
	return scanInbox(rows, func(_ string, it store.InboxItem) { wt.Inbox = append(wt.Inbox, it) })
}

// loadMany fills in several claimed tasks' runs and inboxes, with one query
// for the runs and one for the inboxes.
func (s *Store) loadMany(t *tx, tasks []store.WorkflowTask) error {
	byID := make(map[string]*store.WorkflowTask, len(tasks))
	ids := make([]string, len(tasks))
	for i := range tasks {
		byID[tasks[i].Run.RunID] = &tasks[i]
		ids[i] = tasks[i].Run.RunID
	}
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	rows, err := t.query(s.q.runsByIDs, string(idsJSON))
	if err != nil {
		return err
	}
	for rows.Next() {
		run, err := scanRun(rows)
		if err != nil {
			rows.Close()
			return err
		}
		byID[run.RunID].Run = run
	}
	if err := rows.Close(); err != nil {
		return err
	}
	rows, err = t.query(s.q.inboxOfRuns, string(idsJSON))
	if err != nil {
		return err
	}
	return scanInbox(rows, func(runID string, it store.InboxItem) {
		wt := byID[runID]
		wt.Inbox = append(wt.Inbox, it)
	})
}

// scanInbox reads inbox rows (run_id, id, type, time, data) and closes rows.
func scanInbox(rows *sql.Rows, add func(runID string, it store.InboxItem)) error {
	defer rows.Close()
	for rows.Next() {
		var (
			runID string
			it    store.InboxItem
			tm    int64
			data  []byte
		)
		if err := rows.Scan(&runID, &it.ID, &it.Type, &tm, &data); err != nil {
			return err
		}
		it.Time, it.Data = fromNanos(tm), bytesOrNil(data)
		add(runID, it)
	}
	return rows.Close()
}

// checkEager refuses an eager lease that ClaimWorkflowTasks would refuse:
// one that does not outlast Now.
func checkEager(e *store.EagerLease, now time.Time) error {
	if e != nil && !e.LeaseUntil.After(now) {
		return fmt.Errorf("eager lease: LeaseUntil %v is not after Now %v", e.LeaseUntil, now)
	}
	return nil
}

// leaseWorkflowTask leases runID's workflow task to e.Owner if it is
// claimable at now (unleased or its lease expired, and ready), exactly as
// ClaimWorkflowTasks would, and returns it with its run and inbox; it
// returns nil when the task is leased elsewhere or not yet ready.
func (s *Store) leaseWorkflowTask(t *tx, runID string, e *store.EagerLease, now time.Time) (*store.WorkflowTask, error) {
	wt := &store.WorkflowTask{Run: store.Run{RunID: runID}}
	err := t.queryRow(s.q.leaseWorkflowTask, runID, e.Owner, nanos(e.LeaseUntil), nanos(now)).Scan(&wt.Token, &wt.Attempt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.loadOne(t, wt); err != nil {
		return nil, err
	}
	return wt, nil
}

// eagerPositions maps each seq of p.EagerActivities to its position in
// the list. Every seq must be one of p.ScheduleActivities, listed once.
func eagerPositions(p *store.CompleteWorkflowTaskParams) (map[int64]int, error) {
	if len(p.EagerActivities) == 0 {
		return nil, nil
	}
	scheduled := make(map[int64]bool, len(p.ScheduleActivities))
	for i := range p.ScheduleActivities {
		scheduled[p.ScheduleActivities[i].Seq] = true
	}
	pos := make(map[int64]int, len(p.EagerActivities))
	for i, seq := range p.EagerActivities {
		if !scheduled[seq] {
			return nil, fmt.Errorf("eager activity %d is not among ScheduleActivities", seq)
		}
		if _, dup := pos[seq]; dup {
			return nil, fmt.Errorf("eager activity %d is listed twice", seq)
		}
		pos[seq] = i
	}
	return pos, nil
}

// CompleteWorkflowTask commits a workflow task, fenced on its token, the
// expected history length and the run still running (store.ErrLeaseLost
// otherwise, with nothing written). The activity tasks listed in
// p.EagerActivities are written already leased to p.EagerOwner, when
// ClaimActivityTasks would claim them at p.Now.
func (s *Store) CompleteWorkflowTask(ctx context.Context, p store.CompleteWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	c, err := newWorkflowCommit(&p)
	if err != nil {
		return store.CompleteWorkflowTaskResult{}, fmt.Errorf("sqlitestore: complete workflow task of run %s: %w", p.RunID, err)
	}
	var res store.CompleteWorkflowTaskResult
	err = s.write(ctx, func(t *tx) error {
		var err error
		res, err = s.commitWorkflowTask(t, c, false)
		return err
	})
	if err != nil {
		return store.CompleteWorkflowTaskResult{}, fmt.Errorf("sqlitestore: complete workflow task of run %s: %w", p.RunID, err)
	}
	return res, nil
}

// workflowCommit is a workflow task commit whose parameters were checked,
// ready to be written by commitWorkflowTask.
type workflowCommit struct {
	p      *store.CompleteWorkflowTaskParams
	now    time.Time
	eager  map[int64]int                 // eagerPositions
	size   int64                         // bytes of p.Events' data
	newLen int64                         // history length after the commit
	upsert map[string]*store.SearchValue // p.UpsertSearchAttributes, read
}

// newWorkflowCommit checks p before any write: its eager activities, its
// event IDs (which must follow p.ExpectedHistoryLen) and its close status.
func newWorkflowCommit(p *store.CompleteWorkflowTaskParams) (*workflowCommit, error) {
	eager, err := eagerPositions(p)
	if err != nil {
		return nil, err
	}
	c := &workflowCommit{p: p, now: nowOr(p.Now), eager: eager, newLen: p.ExpectedHistoryLen + int64(len(p.Events))}
	for i, ev := range p.Events {
		if want := p.ExpectedHistoryLen + int64(i) + 1; ev.ID != want {
			return nil, fmt.Errorf("event %d has ID %d, want %d", i, ev.ID, want)
		}
		c.size += int64(len(ev.Data))
	}
	if p.Close != nil && !p.Close.Status.Closed() {
		return nil, fmt.Errorf("close status %q is not final", p.Close.Status)
	}
	if p.Close != nil && p.Close.Status == store.StatusContinuedAsNew && p.Close.ContinueAsNew == nil {
		return nil, errors.New("close status continued_as_new needs ContinueAsNew")
	}
	if c.upsert, err = store.ParseSearchUpsert(p.UpsertSearchAttributes); err != nil {
		return nil, err
	}
	return c, nil
}

// newIdleCommit is newWorkflowCommit for a commit fenced on the run being
// idle (commitWorkflowTask with idle), which leaves no workflow task (see
// store.ErrNeedsWorkflowTask).
func newIdleCommit(p *store.CompleteWorkflowTaskParams) (*workflowCommit, error) {
	if p.NeedsWorkflowTask() {
		return nil, store.ErrNeedsWorkflowTask
	}
	return newWorkflowCommit(p)
}

// commitWorkflowTask writes c in t. It is fenced on the run running at
// the expected history length and, unless idle, on the workflow task's
// token (store.ErrLeaseLost otherwise). With idle it is fenced instead on
// the run having no workflow task at all (store.ErrRunBusy otherwise), and
// it leaves none behind: the inbox of such a run is empty, so there is
// nothing to consume and nothing pending. On error, the caller must roll
// back what t wrote.
func (s *Store) commitWorkflowTask(t *tx, c *workflowCommit, idle bool) (store.CompleteWorkflowTaskResult, error) {
	p, now := c.p, c.now
	var res store.CompleteWorkflowTaskResult
	// A NULL token asks commitRun and closeRun for the idle fence.
	var token any = p.Token
	if idle {
		token = nil
	}
	if cl := p.Close; cl != nil && cl.Status == store.StatusContinuedAsNew {
		if err := prepareContinue(t, p); err != nil {
			return res, err
		}
	}
	if p.Close != nil && !idle {
		if err := refuseClose(t, p); err != nil {
			return res, err
		}
	}
	var row *sql.Row
	if cl := p.Close; cl != nil {
		// The runs_closed trigger deletes the run's tasks, timers and
		// inbox.
		row = t.queryRow(s.q.closeRun, c.newLen, c.size, nanos(now), p.RunID, p.ExpectedHistoryLen, token,
			string(cl.Status), blob(cl.Result), blob(cl.Failure))
	} else {
		row = t.queryRow(s.q.commitRun, c.newLen, c.size, nanos(now), p.RunID, p.ExpectedHistoryLen, token)
	}
	var workflowID, taskQueue string
	if err := row.Scan(&workflowID, &taskQueue); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			if idle {
				return res, store.ErrRunBusy
			}
			return res, store.ErrLeaseLost
		}
		return res, err
	}
	for _, ev := range p.Events {
		if _, err := t.exec(s.q.insertEvent, p.RunID, ev.ID, ev.Type, nanos(orTime(ev.Time, now)), blob(ev.Data)); err != nil {
			return res, err
		}
	}
	if err := s.upsertSearch(t, p.RunID, c.upsert); err != nil {
		return res, err
	}
	if p.Close != nil {
		// What the last task started or sent still happens; the children's
		// close policy then applies to what it started.
		if err := s.startChildren(t, p, now); err != nil {
			return res, err
		}
		if err := s.deliverExternal(t, p, now); err != nil {
			return res, err
		}
		return res, s.afterClose(t, p.RunID, p.Close, now)
	}
	if p.InboxUpTo > 0 && !idle {
		if _, err := t.exec(s.q.deleteInbox, p.RunID, p.InboxUpTo); err != nil {
			return res, err
		}
	}
	var leased []*store.ActivityTask // by position in p.EagerActivities
	if c.eager != nil {
		leased = make([]*store.ActivityTask, len(p.EagerActivities))
	}
	for i := range p.ScheduleActivities {
		a := &p.ScheduleActivities[i]
		var owner *string
		if _, ok := c.eager[a.Seq]; ok {
			owner = &p.EagerOwner
		}
		task, err := s.insertActivity(t, p.RunID, workflowID, taskQueue, a, now, owner)
		if err != nil {
			return res, err
		}
		if task != nil {
			leased[c.eager[a.Seq]] = task
		}
	}
	for _, task := range leased {
		if task != nil {
			res.Activities = append(res.Activities, *task)
		}
	}
	for _, tm := range p.StartTimers {
		if _, err := t.exec(s.q.insertTimer, p.RunID, tm.Seq, nanos(orTime(tm.FireAt, now)), taskQueue,
			tm.Item.Type, blob(tm.Item.Data)); err != nil {
			return res, err
		}
	}
	for _, seq := range p.CancelTimers {
		if _, err := t.exec(s.q.deleteTimer, p.RunID, seq); err != nil {
			return res, err
		}
	}
	for _, seq := range p.CancelActivities {
		if _, err := t.exec(s.q.cancelActivity, p.RunID, seq); err != nil {
			return res, err
		}
	}
	if err := s.startChildren(t, p, now); err != nil {
		return res, err
	}
	if err := s.deliverExternal(t, p, now); err != nil {
		return res, err
	}
	if idle {
		return res, nil
	}
	// The task is done unless items arrived after the claim; then it
	// becomes a fresh task, ready now.
	n, err := t.execN(s.q.finishWorkflowTask, p.RunID)
	if err != nil {
		return res, err
	}
	if n == 0 {
		if _, err := t.exec(s.q.requeueWorkflowTask, p.RunID, nanos(now)); err != nil {
			return res, err
		}
		res.Pending = true
	}
	return res, nil
}

// insertActivity writes a newly scheduled activity task. Unset fields take
// the run's workflow ID and task queue, attempt 1, and now.
//
// With an eager owner, a task that ClaimActivityTasks would claim at now
// (ready, and not past a schedule-to-start or schedule-to-close deadline)
// is written already leased to *eagerOwner, exactly as that claim would
// lease it, and returned; otherwise the result is nil.
func (s *Store) insertActivity(t *tx, runID, workflowID, taskQueue string, a *store.ActivityTask, now time.Time,
	eagerOwner *string) (*store.ActivityTask, error) {
	if a.WorkflowID != "" {
		workflowID = a.WorkflowID
	}
	if a.TaskQueue != "" {
		taskQueue = a.TaskQueue
	}
	scheduled := orTime(a.ScheduledAt, now)
	ready := orTime(a.ReadyAt, scheduled)
	var wake any
	if ready.After(now) {
		wake = nanos(ready)
	}
	var scheduleToStart int64
	if !a.ScheduleToStartDeadline.IsZero() {
		scheduleToStart = max(0, nanos(a.ScheduleToStartDeadline)-nanos(scheduled))
	}
	if eagerOwner != nil && store.ActivityClaimable(ready, a.ScheduleToStartDeadline, a.ScheduleToCloseDeadline, now) {
		// The task as scanActivityTask would read it back.
		task := &store.ActivityTask{
			RunID:                   runID,
			Seq:                     a.Seq,
			WorkflowID:              workflowID,
			ActivityType:            a.ActivityType,
			TaskQueue:               taskQueue,
			Input:                   bytesOrNil(a.Input),
			Options:                 bytesOrNil(a.Options),
			Attempt:                 max(1, a.Attempt),
			ScheduledAt:             fromNanos(nanos(scheduled)),
			ReadyAt:                 fromNanos(nanos(ready)),
			ScheduleToStartDeadline: fromNullNanos(sqlNullNanos(a.ScheduleToStartDeadline)),
			ScheduleToCloseDeadline: fromNullNanos(sqlNullNanos(a.ScheduleToCloseDeadline)),
			StartToClose:            a.StartToClose,
			HeartbeatTimeout:        a.HeartbeatTimeout,
			HeartbeatDetails:        bytesOrNil(a.HeartbeatDetails),
			Token:                   newToken(),
			Owner:                   *eagerOwner,
			StartedAt:               fromNanos(nanos(now)),
		}
		lease := leaseExpiry(nanos(now), a.StartToClose, a.HeartbeatTimeout)
		task.LeaseExpiresAt = fromNullNanos(lease)
		var leaseArg any
		if lease.Valid {
			leaseArg = lease.Int64
		}
		_, err := t.exec(s.q.insertLeasedActivity, runID, a.Seq, workflowID, a.ActivityType,
			taskQueue, blob(a.Input), blob(a.Options), task.Attempt, nanos(scheduled), nanos(ready), scheduleToStart,
			nullNanos(a.ScheduleToStartDeadline), nullNanos(a.ScheduleToCloseDeadline),
			int64(a.StartToClose), int64(a.HeartbeatTimeout), blob(a.HeartbeatDetails), nanos(now), *eagerOwner,
			task.Token, leaseArg)
		if err != nil {
			return nil, err
		}
		return task, nil
	}
	_, err := t.exec(s.q.insertActivity, runID, a.Seq, workflowID, a.ActivityType, taskQueue,
		blob(a.Input), blob(a.Options), max(1, a.Attempt), nanos(scheduled), nanos(ready), wake, scheduleToStart,
		nullNanos(a.ScheduleToStartDeadline), nullNanos(a.ScheduleToCloseDeadline),
		int64(a.StartToClose), int64(a.HeartbeatTimeout), blob(a.HeartbeatDetails))
	return nil, err
}

// leaseExpiry is the lease expiry claimActivities sets for a task started
// at now (store.ActivityLease): none (NULL) when both timeouts are zero.
func leaseExpiry(now int64, startToClose, heartbeat time.Duration) sql.NullInt64 {
	d := store.ActivityLease(startToClose, heartbeat)
	if d == 0 {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: now + int64(d), Valid: true}
}

// FailWorkflowTask releases a leased workflow task without committing it:
// the task becomes claimable again at p.RetryAt, keeping its attempt count,
// and p.Failure is stored as the run's LastTaskFailure.
func (s *Store) FailWorkflowTask(ctx context.Context, p store.FailWorkflowTaskParams) error {
	now := nowOr(p.Now)
	retryAt := orTime(p.RetryAt, now)
	var wake any
	if retryAt.After(now) {
		wake = nanos(retryAt)
	}
	err := s.write(ctx, func(t *tx) error {
		n, err := t.execN(s.q.failWorkflowTask, p.RunID, p.Token, nanos(retryAt), wake)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrLeaseLost
		}
		_, err = t.exec(s.q.setTaskFailure, p.RunID, p.Failure, nanos(now))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: fail workflow task of run %s: %w", p.RunID, err)
	}
	return nil
}
