package hitl

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/internal/failpoint"
)

// Limits on what a decision may carry: it travels to the workflow in a
// signal and stays in the run's history.
const (
	MaxCommentBytes    = 16 << 10
	MaxEditedArgsBytes = 256 << 10
)

// DecideInput is one reviewer's decision.
type DecideInput struct {
	// Reviewer is who decides. Required, unless LinkToken is set: then it
	// defaults to the token's reviewer, and must equal it if given.
	Reviewer string
	// Approve is true to approve, false to reject.
	Approve bool
	// Comment is the reviewer's reason. Optional.
	Comment string
	// ArgsHash is the Approval's ArgsHash as shown to the reviewer.
	// Required: a decision about other arguments than the approval's is
	// refused with ErrArgsMismatch.
	ArgsHash string
	// EditedArgs are arguments the reviewer approves instead of the
	// requested ones. Optional; only with Approve, and only for an
	// approval that needs one approver (else ErrEditNotAllowed). Their
	// Hash is recorded with the vote and becomes the Decision's.
	EditedArgs json.RawMessage
	// LinkToken is the signed review link the decision was made through
	// (see SignLink). Optional; when set it must verify, be for this
	// approval and reviewer, and not have been used: a token decides once.
	LinkToken string
}

// Decide records a reviewer's decision on an approval and delivers it to
// the waiting workflow; it returns the approval as updated.
//
// The vote is written in one transaction that holds the approval's row
// lock, so that concurrent decisions apply one vote per reviewer and close
// the approval once. A rejection closes the approval as rejected; the
// Required-th approval closes it as approved. Refused decisions change
// nothing and return, checked in this order: a link error
// (ErrLinkMalformed, ErrLinkForged, ErrLinkExpired, ErrLinkMismatch),
// ErrInvalidInput, ErrNotFound, ErrLinkUsed, ErrNotInGroup,
// ErrSelfApproval, ErrAlreadyVoted, ErrExpired (deadline passed, or timed
// out), ErrClosed, ErrArgsMismatch, ErrEditNotAllowed.
//
// After the commit the vote is signalled to the run, with the vote's ID as
// the signal's request ID, so that a signal sent twice is applied once.
// A failed signal does not fail Decide: the vote is recorded and stays
// undelivered until the next Decide on the same approval, or Run's next
// pass, delivers it.
func (s *Service) Decide(ctx context.Context, approvalID string, in DecideInput) (*Approval, error) {
	a, err := s.decide(ctx, approvalID, in)
	if err != nil {
		return nil, fmt.Errorf("hitl: decide %s: %w", approvalID, err)
	}
	return a, nil
}

func (s *Service) decide(ctx context.Context, approvalID string, in DecideInput) (*Approval, error) {
	var nonce string
	if in.LinkToken != "" {
		claims, err := s.VerifyLink(in.LinkToken)
		if err != nil {
			return nil, err
		}
		if in.Reviewer == "" {
			in.Reviewer = claims.Reviewer
		}
		if claims.ApprovalID != approvalID || claims.Reviewer != in.Reviewer {
			return nil, ErrLinkMismatch
		}
		nonce = claims.Nonce
	}
	if err := validateInput(&in); err != nil {
		return nil, err
	}

	// Refuse what can be refused without a lock: a crowd of late or
	// repeated decisions never queues for the write lock.
	now := s.now()
	a, err := s.get(ctx, s.db, approvalID)
	if err != nil {
		return nil, err
	}
	if err := s.refuse(ctx, s.db, a, in, nonce, now); err != nil {
		return nil, err
	}

	voteID := uuid.NewString()
	if err := failpoint.Inject("hitl.decide.before"); err != nil {
		return nil, err
	}
	if err := s.commitVote(ctx, approvalID, voteID, in, nonce, now); err != nil {
		return nil, err
	}
	if err := failpoint.Inject("hitl.decide.after"); err != nil {
		return nil, err // the vote is committed; Run delivers it
	}
	// The vote is final now: deliver it and read the result even if the
	// caller gives up (a client that disconnects).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	s.deliverPending(ctx, approvalID)
	a, err = s.get(ctx, s.db, approvalID)
	if err != nil {
		return nil, fmt.Errorf("vote recorded, but reading the approval failed: %w", err)
	}
	return a, nil
}

func validateInput(in *DecideInput) error {
	switch {
	case strings.TrimSpace(in.Reviewer) == "":
		return &FieldError{Field: "Reviewer", Detail: "required"}
	case in.ArgsHash == "":
		return &FieldError{Field: "ArgsHash", Detail: "required: the approval's ArgsHash, as shown to the reviewer"}
	case len(in.Comment) > MaxCommentBytes:
		return &FieldError{Field: "Comment", Detail: fmt.Sprintf("longer than %d bytes", MaxCommentBytes)}
	case len(in.EditedArgs) > MaxEditedArgsBytes:
		return &FieldError{Field: "EditedArgs", Detail: fmt.Sprintf("longer than %d bytes", MaxEditedArgsBytes)}
	}
	if len(in.EditedArgs) > 0 {
		canon, err := Canonical(in.EditedArgs)
		if err != nil {
			return &FieldError{Field: "EditedArgs", Detail: "not valid JSON"}
		}
		in.EditedArgs = canon
	}
	return nil
}

// refuse returns the error a decision gets on a, or nil when it may be
// applied.
func (s *Service) refuse(ctx context.Context, q querier, a *Approval, in DecideInput, nonce string, now time.Time) error {
	if nonce != "" {
		var n int
		err := q.QueryRowContext(ctx, s.db.Rebind(`SELECT count(*) FROM hitl_votes WHERE link_nonce = ?`), nonce).Scan(&n)
		if err != nil {
			return fmt.Errorf("check link: %w", err)
		}
		if n > 0 {
			return ErrLinkUsed
		}
	}
	if err := s.check(a, in.Reviewer, now); err != nil {
		return err
	}
	if in.ArgsHash != a.ArgsHash {
		return fmt.Errorf("%w: decision is for %s, approval authorizes %s", ErrArgsMismatch, in.ArgsHash, a.ArgsHash)
	}
	if len(in.EditedArgs) > 0 {
		if !in.Approve {
			return fmt.Errorf("%w: a rejection cannot edit arguments", ErrEditNotAllowed)
		}
		if a.Required > 1 {
			return fmt.Errorf("%w: the approval needs %d approvers, who must approve the same arguments", ErrEditNotAllowed, a.Required)
		}
	}
	return nil
}

// commitVote checks the decision again under the approval's row lock and
// writes the vote and the approval's new state.
func (s *Service) commitVote(ctx context.Context, approvalID, voteID string, in DecideInput, nonce string, now time.Time) (err error) {
	if s.db.Dialect == appdb.SQLite {
		s.sqliteWrite.Lock()
		defer s.sqliteWrite.Unlock()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	// Lock first, read after: a no-op update takes the row lock on
	// Postgres and the write lock on SQLite before anything is read, so
	// the checks below see the last committed vote.
	res, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE hitl_approvals SET version = version WHERE id = ?`), approvalID)
	if err != nil {
		return fmt.Errorf("lock approval: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("lock approval: %w", err)
	} else if n == 0 {
		return ErrNotFound
	}
	a, version, err := s.getVersion(ctx, tx, approvalID)
	if err != nil {
		return err
	}
	if err := s.refuse(ctx, tx, a, in, nonce, now); err != nil {
		return err
	}

	status := StatusPending
	switch {
	case !in.Approve:
		status = StatusRejected
	case a.Approvals()+1 >= a.Required:
		status = StatusApproved
	}
	var edited, editedHash, linkNonce sql.NullString
	if len(in.EditedArgs) > 0 {
		h, err := Hash(a.Action, in.EditedArgs)
		if err != nil {
			return err
		}
		sealed, err := s.seal(string(in.EditedArgs))
		if err != nil {
			return fmt.Errorf("edited args: %w", err)
		}
		edited = sql.NullString{String: sealed, Valid: true}
		editedHash = sql.NullString{String: h, Valid: true}
	}
	comment, err := s.seal(in.Comment)
	if err != nil {
		return fmt.Errorf("comment: %w", err)
	}
	if nonce != "" {
		linkNonce = sql.NullString{String: nonce, Valid: true}
	}
	_, err = tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO hitl_votes (id, approval_id, vote_no, reviewer, approve,
		comment, args_hash, edited_args, edited_args_hash, link_nonce, status_after, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		voteID, approvalID, len(a.Votes)+1, in.Reviewer, in.Approve, comment, in.ArgsHash,
		edited, editedHash, linkNonce, string(status), micros(now))
	if err != nil {
		return fmt.Errorf("insert vote: %w", err)
	}
	var closedAt sql.NullInt64
	if status.Closed() {
		closedAt = sql.NullInt64{Int64: micros(now), Valid: true}
	}
	res, err = tx.ExecContext(ctx, s.db.Rebind(`UPDATE hitl_approvals SET status = ?, closed_at = ?, version = version + 1
		WHERE id = ? AND status = ? AND version = ?`),
		string(status), closedAt, approvalID, string(StatusPending), version)
	if err != nil {
		return fmt.Errorf("update approval: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update approval: %w", err)
	} else if n != 1 {
		return errors.New("update approval: changed concurrently") // the lock makes this unreachable
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit vote: %w", err)
	}
	return nil
}

// deliverPending signals an approval's undelivered votes to its run, in
// order, and reports how many it delivered. Failures are logged and left
// for the next try.
func (s *Service) deliverPending(ctx context.Context, approvalID string) int {
	a, err := s.get(ctx, s.db, approvalID)
	if err != nil {
		s.log.Warn("hitl: deliver decisions", "approval", approvalID, "error", err)
		return 0
	}
	votes, err := s.votes(ctx, s.db, approvalID)
	if err != nil {
		s.log.Warn("hitl: deliver decisions", "approval", approvalID, "error", err)
		return 0
	}
	n := 0
	for i, v := range votes {
		if v.Delivered {
			continue
		}
		if err := s.deliver(ctx, a, votes[:i+1]); err != nil {
			s.log.Warn("hitl: deliver decision", "approval", approvalID, "vote", v.ID, "error", err)
			return n // keep the order: later votes wait for this one
		}
		n++
	}
	return n
}

// deliver signals the last of votes (with the earlier ones) to a's run and
// marks it delivered.
func (s *Service) deliver(ctx context.Context, a *Approval, votes []*voteRow) error {
	v := votes[len(votes)-1]
	ev := VoteEvent{ApprovalID: a.ID, Vote: v.Vote, Status: v.statusAfter, Votes: make([]Vote, len(votes))}
	ev.Vote.Delivered = false
	for i, w := range votes {
		ev.Votes[i] = w.Vote
		ev.Votes[i].Delivered = false
	}
	if v.statusAfter.Closed() {
		ev.ClosedAt = v.At
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode vote: %w", err)
	}
	now := micros(s.now())
	err = s.signal(ctx, a.WorkflowID, SignalName(a.ID), payload, &durable.SignalOptions{RunID: a.RunID, RequestID: v.ID})
	// Record the outcome even if ctx ends now: a signal that went out
	// should not be sent again for nothing.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if errors.Is(err, durable.ErrRunClosed) || errors.Is(err, durable.ErrRunNotFound) {
		// Nobody waits any more: the run closed (canceled, terminated,
		// or timed out on its own clock). The approval can never be
		// acted on; close it if it is still open.
		if _, uerr := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE hitl_approvals
			SET status = ?, closed_at = ?, version = version + 1 WHERE id = ? AND status = ?`),
			string(StatusCanceled), now, a.ID, string(StatusPending)); uerr != nil {
			return fmt.Errorf("close approval of a closed run: %w", uerr)
		}
		_, uerr := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE hitl_votes
			SET delivered_at = ?, delivery_attempts = delivery_attempts + 1, delivery_error = ? WHERE id = ?`),
			now, err.Error(), v.ID)
		if uerr != nil {
			return fmt.Errorf("mark vote delivered: %w", uerr)
		}
		return nil
	}
	if err != nil {
		_, _ = s.db.ExecContext(ctx, s.db.Rebind(`UPDATE hitl_votes
			SET delivery_attempts = delivery_attempts + 1, delivery_error = ? WHERE id = ?`), err.Error(), v.ID)
		return fmt.Errorf("signal run %s: %w", a.RunID, err)
	}
	_, err = s.db.ExecContext(ctx, s.db.Rebind(`UPDATE hitl_votes
		SET delivered_at = ?, delivery_attempts = delivery_attempts + 1, delivery_error = '' WHERE id = ?`), now, v.ID)
	if err != nil {
		return fmt.Errorf("mark vote delivered: %w", err)
	}
	return nil
}

// Redeliver signals every vote whose signal has not reached its workflow
// yet (the process died, or the engine's store was unreachable, between
// the vote's commit and its signal) and returns how many it delivered.
// Run calls it periodically; a vote signalled twice is applied once.
func (s *Service) Redeliver(ctx context.Context) (int, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT DISTINCT approval_id FROM hitl_votes
		WHERE delivered_at IS NULL LIMIT 1000`))
	if err != nil {
		return 0, fmt.Errorf("hitl: redeliver: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("hitl: redeliver: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("hitl: redeliver: %w", err)
	}
	n := 0
	for _, id := range ids {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		n += s.deliverPending(ctx, id)
	}
	return n, nil
}
