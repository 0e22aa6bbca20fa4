package ticket

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/keelhq/keel/appdb"
)

//go:embed migrations
var migrations embed.FS

// Config configures a Store. A nil *Config means all defaults.
type Config struct {
	// Test holds stubs for tests.
	Test TestConfig
}

// TestConfig holds stubs for tests.
type TestConfig struct {
	// Now returns the current time. Optional; default time.Now.
	Now func() time.Time
}

// Store keeps tickets in Keel's application database (tables ticket_*). It
// implements Desk and is safe for concurrent use.
type Store struct {
	db  *appdb.DB
	now func() time.Time
}

var _ Desk = (*Store)(nil)

// New applies the tickets' migrations to db and returns a Store on it.
func New(ctx context.Context, db *appdb.DB, cfg *Config) (*Store, error) {
	if db == nil {
		return nil, errors.New("ticket: nil database")
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("ticket: %w", err)
	}
	if err := db.Migrate(ctx, "ticket", sub); err != nil {
		return nil, fmt.Errorf("ticket: %w", err)
	}
	s := &Store{db: db, now: time.Now}
	if cfg != nil && cfg.Test.Now != nil {
		s.now = cfg.Test.Now
	}
	return s, nil
}

func (s *Store) stamp() int64 { return s.now().UTC().UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const ticketColumns = `number, subject, status, assignee, requester_email, customer_key, created_at, updated_at`

func scanTicket(row interface{ Scan(...any) error }) (Ticket, error) {
	var (
		t                Ticket
		number           int64
		status           string
		created, updated int64
	)
	if err := row.Scan(&number, &t.Subject, &status, &t.Assignee, &t.RequesterEmail, &t.CustomerKey, &created, &updated); err != nil {
		return Ticket{}, err
	}
	t.ID, t.Status = FormatID(number), Status(status)
	t.CreatedAt, t.UpdatedAt = fromNanos(created), fromNanos(updated)
	return t, nil
}

func (s *Store) get(ctx context.Context, q querier, number int64, forUpdate bool) (Ticket, error) {
	query := `SELECT ` + ticketColumns + ` FROM ticket_tickets WHERE number = ?`
	if forUpdate && s.db.Dialect == appdb.Postgres {
		query += ` FOR UPDATE`
	}
	t, err := scanTicket(q.QueryRowContext(ctx, s.db.Rebind(query), number))
	if errors.Is(err, sql.ErrNoRows) {
		return Ticket{}, fmt.Errorf("%s: %w", FormatID(number), ErrNotFound)
	}
	return t, err
}

// Create implements Desk. It fails with ErrExists when p.ID names a ticket
// that exists (and p.IdempotencyKey is not the key that created it).
func (s *Store) Create(ctx context.Context, p CreateParams) (Ticket, error) {
	p, err := normalizeCreate(p)
	if err != nil {
		return Ticket{}, err
	}
	var explicit int64
	if p.ID != "" {
		if explicit, err = parseNumber(p.ID); err != nil {
			return Ticket{}, err
		}
	}
	if p.IdempotencyKey != "" {
		if t, err := s.byCreateKey(ctx, s.db, p.IdempotencyKey); err == nil || !errors.Is(err, ErrNotFound) {
			return t, err
		}
	}

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Ticket{}, fmt.Errorf("ticket: create: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	number := explicit
	if number == 0 {
		err = tx.QueryRowContext(ctx, `UPDATE ticket_counter SET n = n + 1 WHERE id = 1 RETURNING n`).Scan(&number)
	} else {
		if _, err = s.get(ctx, tx, number, false); err == nil {
			return Ticket{}, fmt.Errorf("ticket: create %s: %w", FormatID(number), ErrExists)
		} else if !errors.Is(err, ErrNotFound) {
			return Ticket{}, fmt.Errorf("ticket: create: %w", err)
		}
		_, err = tx.ExecContext(ctx, s.db.Rebind(`UPDATE ticket_counter SET n = CASE WHEN n < ? THEN ? ELSE n END WHERE id = 1`), number, number)
	}
	if err != nil {
		return Ticket{}, fmt.Errorf("ticket: create: number: %w", err)
	}

	var key any // NULL without a key
	if p.IdempotencyKey != "" {
		key = p.IdempotencyKey
	}
	now := s.stamp()
	var got int64
	err = tx.QueryRowContext(ctx, s.db.Rebind(`
		INSERT INTO ticket_tickets (number, subject, status, assignee, requester_email, customer_key, idempotency_key, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (idempotency_key) DO NOTHING
		RETURNING number`),
		number, p.Subject, string(p.Status), p.Assignee, p.RequesterEmail, p.CustomerKey, key, now, now,
	).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		// A concurrent Create with the same key won.
		_ = tx.Rollback()
		return s.byCreateKey(ctx, s.db, p.IdempotencyKey)
	}
	if err != nil {
		if explicit != 0 && isUniqueViolation(err) {
			return Ticket{}, fmt.Errorf("ticket: create %s: %w", FormatID(number), ErrExists)
		}
		return Ticket{}, fmt.Errorf("ticket: create: %w", err)
	}
	if p.Comment != nil {
		if err := s.addComment(ctx, tx, number, *p.Comment, now); err != nil {
			return Ticket{}, fmt.Errorf("ticket: create: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return Ticket{}, fmt.Errorf("ticket: create: %w", err)
	}
	return Ticket{
		ID: FormatID(number), Subject: p.Subject, Status: p.Status, Assignee: p.Assignee,
		RequesterEmail: p.RequesterEmail, CustomerKey: p.CustomerKey,
		CreatedAt: fromNanos(now), UpdatedAt: fromNanos(now),
	}, nil
}

// isUniqueViolation reports whether err is a unique-constraint violation,
// as two concurrent Creates of one explicit ID cause.
func isUniqueViolation(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "SQLSTATE 23505")
}

func (s *Store) byCreateKey(ctx context.Context, q querier, key string) (Ticket, error) {
	t, err := scanTicket(q.QueryRowContext(ctx, s.db.Rebind(`SELECT `+ticketColumns+` FROM ticket_tickets WHERE idempotency_key = ?`), key))
	if errors.Is(err, sql.ErrNoRows) {
		return Ticket{}, ErrNotFound
	}
	if err != nil {
		return Ticket{}, fmt.Errorf("ticket: create: find ticket of idempotency key %q: %w", key, err)
	}
	return t, nil
}

func (s *Store) addComment(ctx context.Context, tx *sql.Tx, number int64, c NewComment, now int64) error {
	_, err := tx.ExecContext(ctx, s.db.Rebind(`
		INSERT INTO ticket_comments (ticket_number, author, body, public, created_at) VALUES (?, ?, ?, ?, ?)`),
		number, c.Author, c.Body, c.Public, now)
	if err != nil {
		return fmt.Errorf("add comment: %w", err)
	}
	return nil
}

// Get implements Desk. It accepts "T-12", "#12" and "12" alike.
func (s *Store) Get(ctx context.Context, id string) (Ticket, error) {
	number, err := parseNumber(id)
	if err != nil {
		return Ticket{}, err
	}
	t, err := s.get(ctx, s.db, number, false)
	if err != nil {
		return Ticket{}, fmt.Errorf("ticket: get: %w", err)
	}
	return t, nil
}

// Comments implements Desk.
func (s *Store) Comments(ctx context.Context, id string) ([]Comment, error) {
	number, err := parseNumber(id)
	if err != nil {
		return nil, err
	}
	if _, err := s.get(ctx, s.db, number, false); err != nil {
		return nil, fmt.Errorf("ticket: comments: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`
		SELECT id, author, body, public, created_at FROM ticket_comments
		WHERE ticket_number = ? ORDER BY id`), number)
	if err != nil {
		return nil, fmt.Errorf("ticket: comments of %s: %w", FormatID(number), err)
	}
	defer rows.Close()
	out := []Comment{}
	for rows.Next() {
		c := Comment{TicketID: FormatID(number)}
		var created int64
		if err := rows.Scan(&c.ID, &c.Author, &c.Body, &c.Public, &created); err != nil {
			return nil, fmt.Errorf("ticket: comments of %s: %w", FormatID(number), err)
		}
		c.CreatedAt = fromNanos(created)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ticket: comments of %s: %w", FormatID(number), err)
	}
	return out, nil
}

// Update implements Desk.
func (s *Store) Update(ctx context.Context, id string, p UpdateParams) (Ticket, error) {
	number, err := parseNumber(id)
	if err != nil {
		return Ticket{}, err
	}
	if p, err = normalizeUpdate(p); err != nil {
		return Ticket{}, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Ticket{}, fmt.Errorf("ticket: update %s: %w", FormatID(number), err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	// Lock the ticket first, so that updates of one ticket run one at a
	// time and see each other's status.
	t, err := s.get(ctx, tx, number, true)
	if err != nil {
		return Ticket{}, fmt.Errorf("ticket: update: %w", err)
	}
	now := s.stamp()
	if p.IdempotencyKey != "" {
		var applied int64
		err := tx.QueryRowContext(ctx, s.db.Rebind(`
			INSERT INTO ticket_updates (idempotency_key, ticket_number, applied_at) VALUES (?, ?, ?)
			ON CONFLICT (idempotency_key) DO NOTHING
			RETURNING ticket_number`), p.IdempotencyKey, number, now).Scan(&applied)
		if errors.Is(err, sql.ErrNoRows) {
			// Applied before: report the ticket as it is.
			var other int64
			if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT ticket_number FROM ticket_updates WHERE idempotency_key = ?`),
				p.IdempotencyKey).Scan(&other); err != nil {
				return Ticket{}, fmt.Errorf("ticket: update %s: %w", t.ID, err)
			}
			if other != number {
				return Ticket{}, fmt.Errorf("ticket: update %s: key %q was applied to %s: %w", t.ID, p.IdempotencyKey, FormatID(other), ErrKeyReused)
			}
			return t, nil
		}
		if err != nil {
			return Ticket{}, fmt.Errorf("ticket: update %s: %w", t.ID, err)
		}
	}

	to := t.Status
	if p.Status != "" {
		to = p.Status
	}
	if !t.Status.CanBecome(to) {
		return Ticket{}, &TransitionError{ID: t.ID, From: t.Status, To: to}
	}
	t.Status = to
	if p.Assignee != nil {
		t.Assignee = *p.Assignee
	}
	t.UpdatedAt = fromNanos(now)
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE ticket_tickets SET status = ?, assignee = ?, updated_at = ? WHERE number = ?`),
		string(t.Status), t.Assignee, now, number); err != nil {
		return Ticket{}, fmt.Errorf("ticket: update %s: %w", t.ID, err)
	}
	if p.Comment != nil {
		if err := s.addComment(ctx, tx, number, *p.Comment, now); err != nil {
			return Ticket{}, fmt.Errorf("ticket: update %s: %w", t.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return Ticket{}, fmt.Errorf("ticket: update %s: %w", t.ID, err)
	}
	return t, nil
}

// ListOpts filter Store.List. A nil *ListOpts lists all tickets.
type ListOpts struct {
	// RequesterEmail, CustomerKey and Status, when set, keep only the
	// tickets that match all of them.
	RequesterEmail string
	CustomerKey    string
	Status         Status
	// Limit is the most tickets to return. Optional; default 50, at most
	// 500.
	Limit int
}

// List returns tickets, most recently updated first.
func (s *Store) List(ctx context.Context, opts *ListOpts) ([]Ticket, error) {
	var o ListOpts
	if opts != nil {
		o = *opts
	}
	var (
		where []string
		args  []any
	)
	if o.RequesterEmail != "" {
		where, args = append(where, "requester_email = ?"), append(args, strings.ToLower(strings.TrimSpace(o.RequesterEmail)))
	}
	if o.CustomerKey != "" {
		where, args = append(where, "customer_key = ?"), append(args, o.CustomerKey)
	}
	if o.Status != "" {
		st, err := normalizeStatus(o.Status, "")
		if err != nil {
			return nil, err
		}
		where, args = append(where, "status = ?"), append(args, string(st))
	}
	switch {
	case o.Limit <= 0:
		o.Limit = 50
	case o.Limit > 500:
		o.Limit = 500
	}
	q := `SELECT ` + ticketColumns + ` FROM ticket_tickets`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY updated_at DESC, number DESC LIMIT ?`
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(q), append(args, o.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("ticket: list: %w", err)
	}
	defer rows.Close()
	out := []Ticket{}
	for rows.Next() {
		t, err := scanTicket(rows)
		if err != nil {
			return nil, fmt.Errorf("ticket: list: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ticket: list: %w", err)
	}
	return out, nil
}
