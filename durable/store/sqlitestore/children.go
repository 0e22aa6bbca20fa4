package sqlitestore

import (
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/keelhq/keel/durable/store"
)

// Statements of the child-run paths. They are not on the hot path of a
// workflow without children, so they are prepared per transaction.
const (
	insertInboxIfRunningSQL = `INSERT INTO inbox (run_id, type, time, data)
		SELECT run_id, ?2, ?3, ?4 FROM runs WHERE run_id = ?1 AND status = 'running'`
	runningByWorkflowIDSQL = `SELECT run_id FROM runs WHERE workflow_id = ? AND status = 'running'`
	runningChildrenSQL     = `SELECT run_id, parent_close_policy FROM runs
		WHERE parent_run_id = ? AND status = 'running' ORDER BY seq`
	parentOfSQL  = `SELECT parent_run_id, parent_seq, parent_close_policy FROM runs WHERE run_id = ?`
	moveInboxSQL = `INSERT INTO inbox (run_id, type, time, data) SELECT ?2, type, time, data FROM inbox
		WHERE run_id = ?1 AND id > ?3 AND type IN (SELECT value FROM json_each(?4)) ORDER BY id`
)

// pendingInboxSQL counts a run's inbox items after an ID whose type is in a
// JSON list.
const pendingInboxSQL = `SELECT count(*) FROM inbox WHERE run_id = ?1 AND id > ?2
	AND type IN (SELECT value FROM json_each(?3))`

// refuseClose returns store.ErrInboxPending when a closing commit must
// let the workflow see inbox items that arrived after its claim.
func refuseClose(t *tx, p *store.CompleteWorkflowTaskParams) error {
	if len(p.Close.RefuseIfInbox) == 0 {
		return nil
	}
	types, err := json.Marshal(p.Close.RefuseIfInbox)
	if err != nil {
		return err
	}
	var n int64
	if err := t.queryRowSQL(pendingInboxSQL, p.RunID, p.InboxUpTo, string(types)).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return store.ErrInboxPending
	}
	return nil
}

// insertOwnInbox writes an item to a run's inbox; the inbox_wakes_run
// trigger makes its workflow task runnable. An item without a type, or for
// a run that is not running, is not written.
func (s *Store) insertOwnInbox(t *tx, runID string, it store.NewInboxItem, now time.Time) error {
	if it.Type == "" {
		return nil
	}
	_, err := t.execSQL(insertInboxIfRunningSQL, runID, it.Type, nanos(now), blob(it.Data))
	return err
}

// startChildren creates the children of p, or reports to p's run, through
// its own inbox, each child that could not start.
func (s *Store) startChildren(t *tx, p *store.CompleteWorkflowTaskParams, now time.Time) error {
	for i := range p.StartChildren {
		c := p.StartChildren[i]
		c.Run.Eager = nil
		res, err := s.createRun(t, &c.Run, now, false)
		switch {
		case errors.Is(err, store.ErrWorkflowIDInUse), err == nil && !res.Created:
			if err := s.insertOwnInbox(t, p.RunID, c.FailedItem, now); err != nil {
				return err
			}
		case err != nil:
			return err
		}
	}
	return nil
}

// deliverExternal delivers p's external requests, and reports each
// outcome to p's run through its own inbox.
func (s *Store) deliverExternal(t *tx, p *store.CompleteWorkflowTaskParams, now time.Time) error {
	for _, r := range p.External {
		var target string
		err := t.queryRowSQL(runningByWorkflowIDSQL, r.WorkflowID).Scan(&target)
		if errors.Is(err, sql.ErrNoRows) {
			if err := s.insertOwnInbox(t, p.RunID, r.FailedItem, now); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if r.Cancel {
			if err := s.requestCancelTx(t, target, r.Item, now); err != nil {
				return err
			}
		} else if err := s.insertOwnInbox(t, target, r.Item, now); err != nil {
			return err
		}
		if err := s.insertOwnInbox(t, p.RunID, r.DoneItem, now); err != nil {
			return err
		}
	}
	return nil
}

// requestCancelTx marks a running run and its activity tasks
// cancel-requested and writes item to its inbox, unless it is
// cancel-requested already.
func (s *Store) requestCancelTx(t *tx, runID string, item store.NewInboxItem, now time.Time) error {
	n, err := t.execN(s.q.requestCancel, runID, nanos(now))
	if err != nil || n == 0 {
		return err
	}
	if _, err := t.exec(s.q.cancelRunActs, runID); err != nil {
		return err
	}
	return s.insertOwnInbox(t, runID, item, now)
}

// parentOf returns the parent link of a run, nil for a top-level run.
func parentOf(t *tx, runID string) (*store.ParentRef, error) {
	var (
		parent   sql.NullString
		seq, pol int64
	)
	if err := t.queryRowSQL(parentOfSQL, runID).Scan(&parent, &seq, &pol); err != nil {
		return nil, err
	}
	if !parent.Valid {
		return nil, nil
	}
	return &store.ParentRef{RunID: parent.String, Seq: seq, ClosePolicy: store.ParentClosePolicy(pol)}, nil
}

// prepareContinue moves the inbox items to carry over to the successor of
// a run continuing as new, before the close deletes the run's inbox.
func prepareContinue(t *tx, p *store.CompleteWorkflowTaskParams) error {
	can := p.Close.ContinueAsNew
	if can == nil {
		return errors.New("close status continued_as_new needs ContinueAsNew")
	}
	// The successor's items are copied (new IDs, in order) before the
	// close deletes the closing run's inbox.
	for _, it := range can.Inbox {
		if _, err := t.execSQL(`INSERT INTO inbox (run_id, type, time, data) VALUES (?, ?, ?, ?)`,
			can.Run.RunID, it.Type, nanos(nowOr(p.Now)), blob(it.Data)); err != nil {
			return err
		}
	}
	if len(can.CarryInboxTypes) == 0 {
		return nil
	}
	types, err := json.Marshal(can.CarryInboxTypes)
	if err != nil {
		return err
	}
	_, err = t.execSQL(moveInboxSQL, p.RunID, can.Run.RunID, p.InboxUpTo, string(types))
	return err
}

// afterClose does what closing runID entails beyond its own row: start
// its successor, or tell its parent and apply the close policy of its
// children.
func (s *Store) afterClose(t *tx, runID string, cl *store.CloseRun, now time.Time) error {
	parent, err := parentOf(t, runID)
	if err != nil {
		return err
	}
	if cl.Status == store.StatusContinuedAsNew {
		next := cl.ContinueAsNew.Run
		next.Eager, next.Parent = nil, parent
		res, err := s.createRun(t, &next, now, true)
		if err != nil {
			return err
		}
		if !res.Created {
			return errors.New("continue as new: the workflow ID has another running run")
		}
		// The children of the closed run now belong to its successor.
		_, err = t.execSQL(`UPDATE runs SET parent_run_id = ? WHERE parent_run_id = ? AND status = 'running'`,
			next.RunID, runID)
		return err
	}
	return s.closeFamily(t, parent, cl.ParentItem, cl.Children, runID, now)
}

// closeFamily tells a closed run's running parent (item) and applies the
// close policy of its running children.
func (s *Store) closeFamily(t *tx, parent *store.ParentRef, item *store.NewInboxItem, cc *store.ChildrenClose, runID string, now time.Time) error {
	if parent != nil && item != nil {
		if _, err := t.execSQL(insertInboxIfRunningSQL, parent.RunID, item.Type, nanos(now), blob(item.Data)); err != nil {
			return err
		}
	}
	if cc == nil {
		return nil
	}
	return s.closeChildren(t, runID, cc, now)
}

// closeChildren applies each running child's parent close policy, and
// recursively that of the children of the children it terminates.
func (s *Store) closeChildren(t *tx, runID string, cc *store.ChildrenClose, now time.Time) error {
	rows, err := t.querySQL(runningChildrenSQL, runID)
	if err != nil {
		return err
	}
	type child struct {
		runID  string
		policy store.ParentClosePolicy
	}
	var children []child
	for rows.Next() {
		var c child
		if err := rows.Scan(&c.runID, &c.policy); err != nil {
			rows.Close()
			return err
		}
		children = append(children, c)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	for _, c := range children {
		switch c.policy {
		case store.ParentCloseTerminate:
			if err := s.terminateTx(t, c.runID, cc.TerminateEvent, cc.TerminateFailure, now); err != nil {
				return err
			}
			if err := s.closeChildren(t, c.runID, cc, now); err != nil {
				return err
			}
		case store.ParentCloseRequestCancel:
			if err := s.requestCancelTx(t, c.runID, cc.CancelItem, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// terminateTx closes a running run as terminated and appends ev to its
// history; it returns sql.ErrNoRows when the run is not running.
func (s *Store) terminateTx(t *tx, runID string, ev store.Event, failure []byte, now time.Time) error {
	var id int64
	if err := t.queryRow(s.q.terminateRun, runID, blob(failure), int64(len(ev.Data)), nanos(now)).Scan(&id); err != nil {
		return err
	}
	_, err := t.exec(s.q.insertEvent, runID, id, ev.Type, nanos(orTime(ev.Time, now)), blob(ev.Data))
	return err
}
