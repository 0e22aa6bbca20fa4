package hitl

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/durable"
)

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const approvalCols = `id, workflow_id, run_id, title, details, action, args, args_hash,
	reviewer_group, required, requester, status, version, created_at, deadline, closed_at`

const voteCols = `id, approval_id, vote_no, reviewer, approve, comment, args_hash,
	edited_args, edited_args_hash, link_nonce, status_after, created_at, delivered_at`

// approvalID derives an approval's ID from the record activity's
// idempotency key, so every attempt of the activity proposes the same ID.
func approvalID(key string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("urn:keel:hitl:approval:"+key)).String()
}

// voteRow is a vote as stored, with what delivery needs.
type voteRow struct {
	Vote
	approvalID  string
	no          int
	statusAfter Status
	linkNonce   string
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func scanApproval(row interface{ Scan(...any) error }) (*Approval, int64, error) {
	var (
		a                 Approval
		args              []byte
		status            string
		version           int64
		created, deadline int64
		closed            sql.NullInt64
	)
	err := row.Scan(&a.ID, &a.WorkflowID, &a.RunID, &a.Title, &a.Details, &a.Action, &args, &a.ArgsHash,
		&a.Group, &a.Required, &a.Requester, &status, &version, &created, &deadline, &closed)
	if err != nil {
		return nil, 0, err
	}
	a.Args = args
	a.Status = Status(status)
	a.CreatedAt = fromMicros(created)
	a.Deadline = fromMicros(deadline)
	if closed.Valid {
		a.ClosedAt = fromMicros(closed.Int64)
	}
	a.Votes = []Vote{}
	return &a, version, nil
}

func scanVote(row interface{ Scan(...any) error }) (*voteRow, error) {
	var (
		v                  voteRow
		edited, editedHash sql.NullString
		nonce              sql.NullString
		status             string
		created            int64
		delivered          sql.NullInt64
	)
	err := row.Scan(&v.ID, &v.approvalID, &v.no, &v.Reviewer, &v.Approve, &v.Comment, &v.ArgsHash,
		&edited, &editedHash, &nonce, &status, &created, &delivered)
	if err != nil {
		return nil, err
	}
	if edited.Valid {
		v.EditedArgs = []byte(edited.String)
		v.EditedArgsHash = editedHash.String
	}
	v.linkNonce = nonce.String
	v.ViaLink = nonce.Valid
	v.statusAfter = Status(status)
	v.At = fromMicros(created)
	v.Delivered = delivered.Valid
	return &v, nil
}

// get loads an approval and its votes.
func (s *Service) get(ctx context.Context, q querier, id string) (*Approval, error) {
	a, _, err := s.getVersion(ctx, q, id)
	return a, err
}

func (s *Service) getVersion(ctx context.Context, q querier, id string) (*Approval, int64, error) {
	a, version, err := scanApproval(q.QueryRowContext(ctx,
		s.db.Rebind(`SELECT `+approvalCols+` FROM hitl_approvals WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("load approval: %w", err)
	}
	if err := s.openApproval(a); err != nil {
		return nil, 0, fmt.Errorf("load approval: %w", err)
	}
	votes, err := s.votes(ctx, q, id)
	if err != nil {
		return nil, 0, err
	}
	for _, v := range votes {
		a.Votes = append(a.Votes, v.Vote)
	}
	return a, version, nil
}

// votes loads an approval's votes in order.
func (s *Service) votes(ctx context.Context, q querier, approvalID string) ([]*voteRow, error) {
	rows, err := q.QueryContext(ctx,
		s.db.Rebind(`SELECT `+voteCols+` FROM hitl_votes WHERE approval_id = ? ORDER BY vote_no`), approvalID)
	if err != nil {
		return nil, fmt.Errorf("load votes: %w", err)
	}
	defer rows.Close()
	var out []*voteRow
	for rows.Next() {
		v, err := scanVote(rows)
		if err == nil {
			err = s.openVote(v)
		}
		if err != nil {
			return nil, fmt.Errorf("load votes: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load votes: %w", err)
	}
	return out, nil
}

// record inserts a pending approval under key, or finds the one an earlier
// attempt inserted.
func (s *Service) record(ctx context.Context, key, workflowID, runID string, attempt int, in recordInput) (*Approval, error) {
	members, ok := s.groups[in.Group]
	if !ok {
		return nil, durable.NonRetryable(durable.NewError(errTypeUnknownGroup, fmt.Sprintf("group %q is not configured", in.Group)))
	}
	eligible := 0
	for _, m := range members {
		if m != in.Requester {
			eligible++
		}
	}
	if in.Required > eligible {
		return nil, durable.NonRetryable(durable.NewError(errTypeInvalidRequest,
			fmt.Sprintf("%d approvers required but group %q has %d eligible members", in.Required, in.Group, eligible)))
	}
	if hash, err := Hash(in.Action, in.Args); err != nil || hash != in.ArgsHash {
		return nil, durable.NonRetryable(durable.NewError(errTypeInvalidRequest, "arguments do not match their hash"))
	}
	// The hash was checked on the plain arguments; the columns get them
	// encoded.
	title, err := s.seal(in.Title)
	if err != nil {
		return nil, fmt.Errorf("hitl: record approval: title: %w", err)
	}
	details, err := s.seal(in.Details)
	if err != nil {
		return nil, fmt.Errorf("hitl: record approval: details: %w", err)
	}
	args, err := s.seal(string(in.Args))
	if err != nil {
		return nil, fmt.Errorf("hitl: record approval: args: %w", err)
	}
	id := approvalID(key)
	_, err = s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO hitl_approvals (id, idempotency_key, workflow_id, run_id,
		title, details, action, args, args_hash, reviewer_group, required, requester, status, created_at, deadline)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (idempotency_key) DO NOTHING`),
		id, key, workflowID, runID, title, details, in.Action, args, in.ArgsHash,
		in.Group, in.Required, in.Requester, string(StatusPending), micros(in.CreatedAt), micros(in.Deadline))
	if err != nil {
		return nil, fmt.Errorf("hitl: record approval: %w", err)
	}
	if s.afterInsert != nil {
		if err := s.afterInsert(attempt); err != nil {
			return nil, err
		}
	}
	var found string
	err = s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT id FROM hitl_approvals WHERE idempotency_key = ?`), key).Scan(&found)
	if err != nil {
		return nil, fmt.Errorf("hitl: record approval: %w", err)
	}
	a, err := s.get(ctx, s.db, found)
	if err != nil {
		return nil, fmt.Errorf("hitl: record approval: %w", err)
	}
	return a, nil
}

// expire closes a pending approval as timed out; it leaves a closed one
// alone.
func (s *Service) expire(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE hitl_approvals
		SET status = ?, closed_at = ?, version = version + 1
		WHERE id = ? AND status = ?`), string(StatusTimedOut), micros(s.now()), id, string(StatusPending))
	if err != nil {
		return fmt.Errorf("hitl: expire approval %s: %w", id, err)
	}
	return nil
}

// ListParams filter List. The zero value lists every approval, newest
// first.
type ListParams struct {
	// Status keeps approvals in that state.
	Status Status
	// Group keeps approvals of that reviewer group.
	Group string
	// Reviewer keeps the approvals that reviewer may still vote on: of
	// one of their groups, not requested by them, not yet voted on by
	// them. With Status StatusPending it is the reviewer's queue (a
	// pending approval past its deadline is listed until it is marked
	// timed out; see CanDecide).
	Reviewer string
	// WorkflowID and RunID keep the approvals asked by that workflow or
	// run.
	WorkflowID string
	RunID      string
	// Cursor continues from a previous page's next cursor.
	Cursor string
	// Limit is the page size. Optional; default 50, at most 500.
	Limit int
}

// List returns approvals, newest first, with their votes; next is the
// cursor of the following page, empty on the last. params may be nil.
func (s *Service) List(ctx context.Context, params *ListParams) (approvals []Approval, next string, err error) {
	p := ListParams{}
	if params != nil {
		p = *params
	}
	limit := p.Limit
	switch {
	case limit <= 0:
		limit = 50
	case limit > 500:
		limit = 500
	}
	var (
		where []string
		args  []any
	)
	if p.Status != "" {
		where = append(where, "a.status = ?")
		args = append(args, string(p.Status))
	}
	if p.Group != "" {
		where = append(where, "a.reviewer_group = ?")
		args = append(args, p.Group)
	}
	if p.WorkflowID != "" {
		where = append(where, "a.workflow_id = ?")
		args = append(args, p.WorkflowID)
	}
	if p.RunID != "" {
		where = append(where, "a.run_id = ?")
		args = append(args, p.RunID)
	}
	if p.Reviewer != "" {
		groups := s.groups.Of(p.Reviewer)
		if len(groups) == 0 {
			return []Approval{}, "", nil
		}
		where = append(where, "a.reviewer_group IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(groups)), ", ")+")")
		for _, g := range groups {
			args = append(args, g)
		}
		where = append(where, "a.requester <> ?",
			"NOT EXISTS (SELECT 1 FROM hitl_votes v WHERE v.approval_id = a.id AND v.reviewer = ?)")
		args = append(args, p.Reviewer, p.Reviewer)
	}
	if p.Cursor != "" {
		at, id, err := decodeCursor(p.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("hitl: list: %w", err)
		}
		where = append(where, "(a.created_at < ? OR (a.created_at = ? AND a.id < ?))")
		args = append(args, at, at, id)
	}
	query := `SELECT ` + approvalCols + ` FROM hitl_approvals a`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += fmt.Sprintf(" ORDER BY a.created_at DESC, a.id DESC LIMIT %d", limit+1)

	rows, err := s.db.QueryContext(ctx, s.db.Rebind(query), args...)
	if err != nil {
		return nil, "", fmt.Errorf("hitl: list: %w", err)
	}
	defer rows.Close()
	approvals = []Approval{}
	for rows.Next() {
		a, _, err := scanApproval(rows)
		if err == nil {
			err = s.openApproval(a)
		}
		if err != nil {
			return nil, "", fmt.Errorf("hitl: list: %w", err)
		}
		approvals = append(approvals, *a)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("hitl: list: %w", err)
	}
	rows.Close()
	if len(approvals) > limit {
		approvals = approvals[:limit]
		last := approvals[limit-1]
		next = encodeCursor(micros(last.CreatedAt), last.ID)
	}
	if err := s.attachVotes(ctx, approvals); err != nil {
		return nil, "", fmt.Errorf("hitl: list: %w", err)
	}
	return approvals, next, nil
}

// attachVotes loads the votes of a page of approvals in one query.
func (s *Service) attachVotes(ctx context.Context, approvals []Approval) error {
	if len(approvals) == 0 {
		return nil
	}
	index := make(map[string]int, len(approvals))
	args := make([]any, len(approvals))
	for i, a := range approvals {
		index[a.ID] = i
		args[i] = a.ID
	}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT `+voteCols+` FROM hitl_votes
		WHERE approval_id IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(args)), ", ")+`)
		ORDER BY approval_id, vote_no`), args...)
	if err != nil {
		return fmt.Errorf("load votes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scanVote(rows)
		if err == nil {
			err = s.openVote(v)
		}
		if err != nil {
			return fmt.Errorf("load votes: %w", err)
		}
		a := &approvals[index[v.approvalID]]
		a.Votes = append(a.Votes, v.Vote)
	}
	return rows.Err()
}

func encodeCursor(at int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at, 10) + "/" + id))
}

func decodeCursor(c string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", &FieldError{Field: "Cursor", Detail: "not a cursor from a previous page"}
	}
	at, id, ok := strings.Cut(string(b), "/")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || id == "" {
		return 0, "", &FieldError{Field: "Cursor", Detail: "not a cursor from a previous page"}
	}
	return n, id, nil
}
