package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/keelhq/keel/durable/store"
)

// scanActivityTask reads the columns of activityColumns.
func scanActivityTask(sc scanner) (store.ActivityTask, error) {
	var (
		a                                 store.ActivityTask
		scheduled, ready, stc, hb, cancel int64
		s2s, s2c, started, lease          sql.NullInt64
		token, owner                      sql.NullString
		input, options, details           []byte
	)
	err := sc.Scan(&a.RunID, &a.Seq, &a.WorkflowID, &a.ActivityType, &a.TaskQueue, &input, &options, &a.Attempt,
		&scheduled, &ready, &s2s, &s2c, &stc, &hb, &details, &token, &owner, &started, &lease, &cancel)
	if err != nil {
		return store.ActivityTask{}, err
	}
	a.Input, a.Options, a.HeartbeatDetails = bytesOrNil(input), bytesOrNil(options), bytesOrNil(details)
	a.ScheduledAt, a.ReadyAt = fromNanos(scheduled), fromNanos(ready)
	a.ScheduleToStartDeadline, a.ScheduleToCloseDeadline = fromNullNanos(s2s), fromNullNanos(s2c)
	a.StartToClose, a.HeartbeatTimeout = time.Duration(stc), time.Duration(hb)
	a.Token, a.Owner = token.String, owner.String
	a.StartedAt, a.LeaseExpiresAt = fromNullNanos(started), fromNullNanos(lease)
	a.CancelRequested = cancel != 0
	return a, nil
}

func scanActivityTasks(rows *sql.Rows) ([]store.ActivityTask, error) {
	defer rows.Close()
	var out []store.ActivityTask
	for rows.Next() {
		a, err := scanActivityTask(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Close()
}

// ClaimActivityTasks leases up to p.Limit unleased activity tasks on
// p.TaskQueue that are ready at p.Now, oldest first. Tasks already past
// their schedule-to-start or schedule-to-close deadline are left for
// ExpiredActivityTasks. The lease expires at the earlier of
// Now+StartToClose and Now+HeartbeatTimeout, or never if both are zero;
// p.LeaseUntil is not used.
func (s *Store) ClaimActivityTasks(ctx context.Context, p store.ClaimParams) ([]store.ActivityTask, error) {
	now := nowOr(p.Now)
	if p.Limit < 1 {
		return nil, fmt.Errorf("sqlitestore: claim activity tasks: limit %d, want at least 1", p.Limit)
	}
	if ok, err := s.probe(ctx, s.q.probeActivities, p.TaskQueue, nanos(now)); err != nil || !ok {
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: claim activity tasks: %w", err)
		}
		return nil, nil
	}
	var tasks []store.ActivityTask
	err := s.write(ctx, func(t *tx) error {
		rows, err := t.query(s.q.claimActivities, p.Owner, nanos(now), p.TaskQueue, p.Limit)
		if err != nil {
			return err
		}
		tasks, err = scanActivityTasks(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: claim activity tasks: %w", err)
	}
	return tasks, nil
}

// CompleteActivityTask deletes the activity task, records p.Attempt, and
// writes p.Item to the run's inbox, which makes its workflow task runnable.
// With p.Eager, it then leases that workflow task to the caller if
// ClaimWorkflowTasks would claim it at p.Now.
func (s *Store) CompleteActivityTask(ctx context.Context, p store.CompleteActivityTaskParams) (store.CompleteActivityTaskResult, error) {
	now := nowOr(p.Now)
	if err := checkEager(p.Eager, now); err != nil {
		return store.CompleteActivityTaskResult{}, fmt.Errorf("sqlitestore: complete activity %s/%d: %w", p.RunID, p.Seq, err)
	}
	var res store.CompleteActivityTaskResult
	err := s.write(ctx, func(t *tx) error {
		if err := s.finishActivity(t, &p); err != nil {
			return err
		}
		if _, err := t.exec(s.q.insertInbox, p.RunID, p.Item.Type, nanos(now), blob(p.Item.Data)); err != nil {
			return err
		}
		if p.Eager == nil {
			return nil
		}
		var err error
		res.Task, err = s.leaseWorkflowTask(t, p.RunID, p.Eager, now)
		return err
	})
	if err != nil {
		return store.CompleteActivityTaskResult{}, fmt.Errorf("sqlitestore: complete activity %s/%d: %w", p.RunID, p.Seq, err)
	}
	return res, nil
}

// finishActivity deletes p's activity task, fenced on p.Token
// (store.ErrLeaseLost otherwise), and records p.Attempt. It does not write
// p.Item.
func (s *Store) finishActivity(t *tx, p *store.CompleteActivityTaskParams) error {
	n, err := t.execN(s.q.completeActivity, p.RunID, p.Seq, p.Token, p.Attempt.Attempt)
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrLeaseLost
	}
	return s.insertAttempt(t, p.RunID, p.Seq, &p.Attempt)
}

// CompleteActivityWithWorkflowTask does in one transaction what
// CompleteActivityTask (without writing p.Activity.Item, and ignoring
// p.Activity.Eager) and then CompleteWorkflowTask would do, but the
// workflow task commit is fenced on the run being idle instead of on a
// lease: running at p.Workflow.ExpectedHistoryLen, with no workflow task
// (store.ErrRunBusy otherwise). The activity's fence is checked first
// (store.ErrLeaseLost). On either error nothing is written.
func (s *Store) CompleteActivityWithWorkflowTask(ctx context.Context, p store.CompleteActivityWithWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	a := &p.Activity
	wrap := func(err error) error {
		return fmt.Errorf("sqlitestore: complete activity %s/%d with workflow task: %w", a.RunID, a.Seq, err)
	}
	if a.RunID != p.Workflow.RunID {
		return store.CompleteWorkflowTaskResult{}, wrap(fmt.Errorf("workflow task of another run, %s", p.Workflow.RunID))
	}
	c, err := newIdleCommit(&p.Workflow)
	if err != nil {
		return store.CompleteWorkflowTaskResult{}, wrap(err)
	}
	var res store.CompleteWorkflowTaskResult
	err = s.write(ctx, func(t *tx) error {
		if err := s.finishActivity(t, a); err != nil {
			return err
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

// RetryActivityTask records p.Attempt and makes the task claimable again at
// p.RetryAt as the next attempt, unleased, with its heartbeat details and a
// fresh schedule-to-start deadline.
func (s *Store) RetryActivityTask(ctx context.Context, p store.RetryActivityTaskParams) error {
	now := nowOr(p.Now)
	retryAt := orTime(p.RetryAt, now)
	var wake any
	if retryAt.After(now) {
		wake = nanos(retryAt)
	}
	err := s.write(ctx, func(t *tx) error {
		n, err := t.execN(s.q.retryActivity, p.RunID, p.Seq, p.Token, p.Attempt.Attempt, nanos(retryAt), wake)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrLeaseLost
		}
		return s.insertAttempt(t, p.RunID, p.Seq, &p.Attempt)
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: retry activity %s/%d: %w", p.RunID, p.Seq, err)
	}
	return nil
}

func (s *Store) insertAttempt(t *tx, runID string, seq int64, a *store.ActivityAttempt) error {
	_, err := t.exec(s.q.insertAttempt, runID, seq, a.Attempt, a.ActivityType, a.Owner,
		nullNanos(a.StartedAt), nullNanos(a.EndedAt), a.Outcome, a.Error)
	return err
}

// HeartbeatActivityTask records p.Details (nil keeps the previous ones) and
// extends the lease to the earlier of Now+HeartbeatTimeout and
// StartedAt+StartToClose.
func (s *Store) HeartbeatActivityTask(ctx context.Context, p store.HeartbeatParams) (store.HeartbeatResult, error) {
	now := nowOr(p.Now)
	var res store.HeartbeatResult
	err := s.write(ctx, func(t *tx) error {
		var cancel int64
		err := t.queryRow(s.q.heartbeat, p.RunID, p.Seq, p.Token, blob(p.Details), nanos(now)).Scan(&cancel)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrLeaseLost
		}
		res.CancelRequested = cancel != 0
		return err
	})
	if err != nil {
		return store.HeartbeatResult{}, fmt.Errorf("sqlitestore: heartbeat activity %s/%d: %w", p.RunID, p.Seq, err)
	}
	return res, nil
}

// ExpiredActivityTasks returns up to limit activity tasks past a timeout at
// now, earliest deadline first.
func (s *Store) ExpiredActivityTasks(ctx context.Context, now time.Time, limit int) ([]store.ActivityTask, error) {
	if limit < 1 {
		return nil, fmt.Errorf("sqlitestore: expired activity tasks: limit %d, want at least 1", limit)
	}
	rows, err := s.q.expired.QueryContext(ctx, nanos(nowOr(now)), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: expired activity tasks: %w", err)
	}
	tasks, err := scanActivityTasks(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: expired activity tasks: %w", err)
	}
	return tasks, nil
}

// ActivityAttempts lists the run's recorded attempts by seq, then attempt.
func (s *Store) ActivityAttempts(ctx context.Context, runID string) ([]store.ActivityAttempt, error) {
	rows, err := s.q.attemptsOfRun.QueryContext(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: activity attempts of run %s: %w", runID, err)
	}
	defer rows.Close()
	var out []store.ActivityAttempt
	for rows.Next() {
		var (
			a            store.ActivityAttempt
			started, end sql.NullInt64
		)
		if err := rows.Scan(&a.RunID, &a.Seq, &a.Attempt, &a.ActivityType, &a.Owner, &started, &end,
			&a.Outcome, &a.Error); err != nil {
			return nil, fmt.Errorf("sqlitestore: activity attempts of run %s: %w", runID, err)
		}
		a.StartedAt, a.EndedAt = fromNullNanos(started), fromNullNanos(end)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: activity attempts of run %s: %w", runID, err)
	}
	return out, nil
}
