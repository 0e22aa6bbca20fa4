package crm

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
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

// Store is the CRM kept in Keel's application database (tables crm_*). It
// implements CRM and is safe for concurrent use.
type Store struct {
	db  *appdb.DB
	now func() time.Time
}

var _ CRM = (*Store)(nil)

// New applies the CRM's migrations to db and returns a Store on it.
func New(ctx context.Context, db *appdb.DB, cfg *Config) (*Store, error) {
	if db == nil {
		return nil, errors.New("crm: nil database")
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("crm: %w", err)
	}
	if err := db.Migrate(ctx, "crm", sub); err != nil {
		return nil, fmt.Errorf("crm: %w", err)
	}
	s := &Store{db: db, now: time.Now}
	if cfg != nil && cfg.Test.Now != nil {
		s.now = cfg.Test.Now
	}
	return s, nil
}

func (s *Store) stamp() int64 { return s.now().UTC().UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// UpsertCustomer implements CRM.
func (s *Store) UpsertCustomer(ctx context.Context, c Customer) (Customer, error) {
	c, err := normalizeCustomer(c)
	if err != nil {
		return Customer{}, err
	}
	meta, err := json.Marshal(c.Metadata)
	if err != nil {
		return Customer{}, fmt.Errorf("crm: upsert customer %q: %w", c.Key, err)
	}
	if c.Metadata == nil {
		meta = []byte("{}")
	}
	now := s.stamp()
	var created, updated int64
	err = s.db.QueryRowContext(ctx, s.db.Rebind(`
		INSERT INTO crm_customers (key, name, email, company, plan, metadata, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET
			name = excluded.name, email = excluded.email, company = excluded.company,
			plan = excluded.plan, metadata = excluded.metadata, updated_at = excluded.updated_at
		RETURNING created_at, updated_at`),
		c.Key, c.Name, c.Email, c.Company, c.Plan, string(meta), now, now,
	).Scan(&created, &updated)
	if err != nil {
		return Customer{}, fmt.Errorf("crm: upsert customer %q: %w", c.Key, err)
	}
	c.CreatedAt, c.UpdatedAt = fromNanos(created), fromNanos(updated)
	return c, nil
}

const customerColumns = `c.key, c.name, c.email, c.company, c.plan, c.metadata, c.created_at, c.updated_at`

func scanCustomer(row interface{ Scan(...any) error }) (Customer, error) {
	var (
		c                Customer
		meta             string
		created, updated int64
	)
	if err := row.Scan(&c.Key, &c.Name, &c.Email, &c.Company, &c.Plan, &meta, &created, &updated); err != nil {
		return Customer{}, err
	}
	if err := json.Unmarshal([]byte(meta), &c.Metadata); err != nil {
		return Customer{}, fmt.Errorf("decode metadata: %w", err)
	}
	if len(c.Metadata) == 0 {
		c.Metadata = nil
	}
	c.CreatedAt, c.UpdatedAt = fromNanos(created), fromNanos(updated)
	return c, nil
}

// Customer implements CRM.
func (s *Store) Customer(ctx context.Context, key string) (Customer, error) {
	c, err := scanCustomer(s.db.QueryRowContext(ctx, s.db.Rebind(
		`SELECT `+customerColumns+` FROM crm_customers c WHERE c.key = ?`), key))
	if errors.Is(err, sql.ErrNoRows) {
		return Customer{}, fmt.Errorf("crm: customer %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return Customer{}, fmt.Errorf("crm: customer %q: %w", key, err)
	}
	return c, nil
}

// CustomerByEmail implements CRM.
func (s *Store) CustomerByEmail(ctx context.Context, email string) (Customer, error) {
	norm, err := normalizeEmail("email", email, true)
	if err != nil {
		return Customer{}, err
	}
	c, err := scanCustomer(s.db.QueryRowContext(ctx, s.db.Rebind(`
		SELECT `+customerColumns+` FROM (
			SELECT key, 0 AS via, updated_at FROM crm_customers WHERE email = ?
			UNION ALL
			SELECT customer_key, 1, updated_at FROM crm_contacts WHERE email = ?
		) m JOIN crm_customers c ON c.key = m.key
		ORDER BY m.via, m.updated_at DESC, c.key LIMIT 1`), norm, norm))
	if errors.Is(err, sql.ErrNoRows) {
		return Customer{}, fmt.Errorf("crm: customer with email %q: %w", norm, ErrNotFound)
	}
	if err != nil {
		return Customer{}, fmt.Errorf("crm: customer with email %q: %w", norm, err)
	}
	return c, nil
}

// requireCustomer returns ErrNotFound unless the customer exists.
func (s *Store) requireCustomer(ctx context.Context, q querier, key string) error {
	var one int
	err := q.QueryRowContext(ctx, s.db.Rebind(`SELECT 1 FROM crm_customers WHERE key = ?`), key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("customer %q: %w", key, ErrNotFound)
	}
	return err
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// UpsertContact implements CRM.
func (s *Store) UpsertContact(ctx context.Context, c Contact) (Contact, error) {
	c, err := normalizeContact(c)
	if err != nil {
		return Contact{}, err
	}
	if err := s.requireCustomer(ctx, s.db, c.CustomerKey); err != nil {
		return Contact{}, fmt.Errorf("crm: upsert contact %q: %w", c.Email, err)
	}
	now := s.stamp()
	var created, updated int64
	err = s.db.QueryRowContext(ctx, s.db.Rebind(`
		INSERT INTO crm_contacts (customer_key, email, name, role, phone, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (customer_key, email) DO UPDATE SET
			name = excluded.name, role = excluded.role, phone = excluded.phone,
			updated_at = excluded.updated_at
		RETURNING created_at, updated_at`),
		c.CustomerKey, c.Email, c.Name, c.Role, c.Phone, now, now,
	).Scan(&created, &updated)
	if err != nil {
		return Contact{}, fmt.Errorf("crm: upsert contact %q: %w", c.Email, err)
	}
	c.CreatedAt, c.UpdatedAt = fromNanos(created), fromNanos(updated)
	return c, nil
}

// Contacts implements CRM.
func (s *Store) Contacts(ctx context.Context, customerKey string) ([]Contact, error) {
	if err := s.requireCustomer(ctx, s.db, customerKey); err != nil {
		return nil, fmt.Errorf("crm: contacts: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`
		SELECT customer_key, email, name, role, phone, created_at, updated_at
		FROM crm_contacts WHERE customer_key = ? ORDER BY email`), customerKey)
	if err != nil {
		return nil, fmt.Errorf("crm: contacts of %q: %w", customerKey, err)
	}
	defer rows.Close()
	out := []Contact{}
	for rows.Next() {
		var (
			c                Contact
			created, updated int64
		)
		if err := rows.Scan(&c.CustomerKey, &c.Email, &c.Name, &c.Role, &c.Phone, &created, &updated); err != nil {
			return nil, fmt.Errorf("crm: contacts of %q: %w", customerKey, err)
		}
		c.CreatedAt, c.UpdatedAt = fromNanos(created), fromNanos(updated)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("crm: contacts of %q: %w", customerKey, err)
	}
	return out, nil
}

// AddNote implements CRM.
func (s *Store) AddNote(ctx context.Context, n Note) (Note, error) {
	n, err := normalizeNote(n)
	if err != nil {
		return Note{}, err
	}
	if err := s.requireCustomer(ctx, s.db, n.CustomerKey); err != nil {
		return Note{}, fmt.Errorf("crm: add note: %w", err)
	}
	var key any // NULL without a key: any number of such notes
	if n.IdempotencyKey != "" {
		key = n.IdempotencyKey
	}
	var id, created int64
	err = s.db.QueryRowContext(ctx, s.db.Rebind(`
		INSERT INTO crm_notes (customer_key, author, body, idempotency_key, created_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (idempotency_key) DO NOTHING
		RETURNING id, created_at`),
		n.CustomerKey, n.Author, n.Body, key, s.stamp(),
	).Scan(&id, &created)
	if errors.Is(err, sql.ErrNoRows) {
		// The key was used before: return the note it added.
		return s.noteByKey(ctx, n.IdempotencyKey)
	}
	if err != nil {
		return Note{}, fmt.Errorf("crm: add note: %w", err)
	}
	n.ID, n.CreatedAt = id, fromNanos(created)
	return n, nil
}

func (s *Store) noteByKey(ctx context.Context, key string) (Note, error) {
	var (
		n       Note
		created int64
	)
	err := s.db.QueryRowContext(ctx, s.db.Rebind(`
		SELECT id, customer_key, author, body, created_at FROM crm_notes WHERE idempotency_key = ?`), key,
	).Scan(&n.ID, &n.CustomerKey, &n.Author, &n.Body, &created)
	if err != nil {
		return Note{}, fmt.Errorf("crm: add note: find note of idempotency key %q: %w", key, err)
	}
	n.IdempotencyKey, n.CreatedAt = key, fromNanos(created)
	return n, nil
}

// Notes implements CRM.
func (s *Store) Notes(ctx context.Context, customerKey string) ([]Note, error) {
	if err := s.requireCustomer(ctx, s.db, customerKey); err != nil {
		return nil, fmt.Errorf("crm: notes: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`
		SELECT id, customer_key, author, body, created_at
		FROM crm_notes WHERE customer_key = ? ORDER BY id`), customerKey)
	if err != nil {
		return nil, fmt.Errorf("crm: notes of %q: %w", customerKey, err)
	}
	defer rows.Close()
	out := []Note{}
	for rows.Next() {
		var (
			n       Note
			created int64
		)
		if err := rows.Scan(&n.ID, &n.CustomerKey, &n.Author, &n.Body, &created); err != nil {
			return nil, fmt.Errorf("crm: notes of %q: %w", customerKey, err)
		}
		n.CreatedAt = fromNanos(created)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("crm: notes of %q: %w", customerKey, err)
	}
	return out, nil
}

// UpsertDeal implements CRM.
func (s *Store) UpsertDeal(ctx context.Context, d Deal) (Deal, error) {
	d, err := normalizeDeal(d)
	if err != nil {
		return Deal{}, err
	}
	if err := s.requireCustomer(ctx, s.db, d.CustomerKey); err != nil {
		return Deal{}, fmt.Errorf("crm: upsert deal %q: %w", d.Key, err)
	}
	now := s.stamp()
	var created, updated int64
	err = s.db.QueryRowContext(ctx, s.db.Rebind(`
		INSERT INTO crm_deals (key, customer_key, title, stage, amount, currency, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET
			customer_key = excluded.customer_key, title = excluded.title, stage = excluded.stage,
			amount = excluded.amount, currency = excluded.currency, updated_at = excluded.updated_at
		RETURNING created_at, updated_at`),
		d.Key, d.CustomerKey, d.Title, string(d.Stage), d.Amount, d.Currency, now, now,
	).Scan(&created, &updated)
	if err != nil {
		return Deal{}, fmt.Errorf("crm: upsert deal %q: %w", d.Key, err)
	}
	d.CreatedAt, d.UpdatedAt = fromNanos(created), fromNanos(updated)
	return d, nil
}

const dealColumns = `key, customer_key, title, stage, amount, currency, created_at, updated_at`

func scanDeal(row interface{ Scan(...any) error }) (Deal, error) {
	var (
		d                Deal
		stage            string
		created, updated int64
	)
	if err := row.Scan(&d.Key, &d.CustomerKey, &d.Title, &stage, &d.Amount, &d.Currency, &created, &updated); err != nil {
		return Deal{}, err
	}
	d.Stage = Stage(stage)
	d.CreatedAt, d.UpdatedAt = fromNanos(created), fromNanos(updated)
	return d, nil
}

// Deal implements CRM.
func (s *Store) Deal(ctx context.Context, key string) (Deal, error) {
	d, err := scanDeal(s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT `+dealColumns+` FROM crm_deals WHERE key = ?`), key))
	if errors.Is(err, sql.ErrNoRows) {
		return Deal{}, fmt.Errorf("crm: deal %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return Deal{}, fmt.Errorf("crm: deal %q: %w", key, err)
	}
	return d, nil
}

// Deals implements CRM.
func (s *Store) Deals(ctx context.Context, customerKey string) ([]Deal, error) {
	if err := s.requireCustomer(ctx, s.db, customerKey); err != nil {
		return nil, fmt.Errorf("crm: deals: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`
		SELECT `+dealColumns+` FROM crm_deals WHERE customer_key = ? ORDER BY key`), customerKey)
	if err != nil {
		return nil, fmt.Errorf("crm: deals of %q: %w", customerKey, err)
	}
	defer rows.Close()
	out := []Deal{}
	for rows.Next() {
		d, err := scanDeal(rows)
		if err != nil {
			return nil, fmt.Errorf("crm: deals of %q: %w", customerKey, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("crm: deals of %q: %w", customerKey, err)
	}
	return out, nil
}
