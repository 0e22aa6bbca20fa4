package billing

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keelhq/keel/internal/failpoint"
)

// Kind is what a ledger entry records.
type Kind string

// Kinds of ledger entries.
const (
	KindCharge Kind = "charge"
	KindRefund Kind = "refund"
	KindUsage  Kind = "usage"
)

// Status is where a ledger entry stands.
type Status string

// Statuses of ledger entries.
const (
	// StatusPending: the entry was written and Stripe was (or is about to
	// be) called; the outcome is not recorded yet. A retry sends the same
	// request with the same Idempotency-Key.
	StatusPending Status = "pending"
	// StatusSucceeded: Stripe accepted the operation; StripeID names its
	// object. A retry returns the entry without calling Stripe.
	StatusSucceeded Status = "succeeded"
	// StatusFailed: Stripe refused it for good (a declined card, invalid
	// parameters). A retry returns the same error without calling Stripe.
	StatusFailed Status = "failed"
)

// Entry is one row of the ledger: a charge, refund or usage record and
// what became of it.
type Entry struct {
	// Key is the entry's idempotency key, also sent to Stripe as the
	// Idempotency-Key and stored in the object's metadata.
	Key    string `json:"key"`
	Kind   Kind   `json:"kind"`
	Status Status `json:"status"`
	// Customer is Stripe's customer ID.
	Customer string `json:"customer,omitempty"`
	// Amount is in the currency's smallest unit (cents) for charges and
	// refunds; for usage it is the quantity.
	Amount      int64  `json:"amount"`
	Currency    string `json:"currency,omitempty"`
	Description string `json:"description,omitempty"`
	// PaymentMethod is the payment method charged.
	PaymentMethod string `json:"payment_method,omitempty"`
	// Target is the PaymentIntent a refund refunds, or the meter event
	// name of a usage record.
	Target string `json:"target,omitempty"`
	// StripeID is Stripe's object: a PaymentIntent (pi_…), a Refund
	// (re_…), or the identifier of a meter event.
	StripeID string `json:"stripe_id,omitempty"`
	// StripeStatus is the object's status at Stripe when it was recorded.
	StripeStatus string `json:"stripe_status,omitempty"`
	// ErrorCode and ErrorMessage describe a failed entry, or the last
	// transient error of a pending one.
	ErrorCode    Code   `json:"error_code,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
	// Attempts counts the requests sent to Stripe for this entry.
	Attempts int `json:"attempts"`
	// Reconciled is true when the outcome was found by looking the object
	// up at Stripe after its idempotency key had expired, rather than from
	// the answer to a request.
	Reconciled bool      `json:"reconciled,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	// Replayed is true when this call returned the recorded outcome
	// without calling Stripe. It is not stored.
	Replayed bool `json:"replayed,omitempty"`
}

// failure returns the stored error of a failed entry.
func (e *Entry) failure() *Error {
	return &Error{Op: string(e.Kind), Key: e.Key, Code: e.ErrorCode, Message: e.ErrorMessage}
}

const entryColumns = `ledger_key, kind, status, params_hash, customer, amount, currency, description,
	payment_method, target, stripe_id, stripe_status, error_code, error_message, attempts, reconciled,
	created_at, updated_at`

// paramsHash hashes the parameters that must not change under one key.
func paramsHash(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("billing: hash params: %v", err)) // plain structs always encode
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// begin writes e as a pending entry unless its key exists, and returns the
// stored entry. An existing entry written with other parameters is an
// ErrIdempotencyMismatch.
func (s *Service) begin(ctx context.Context, e *Entry, hash string) (*Entry, error) {
	now := s.now().UnixMicro()
	if err := failpoint.Inject("billing.ledger.before"); err != nil {
		return nil, fmt.Errorf("billing: %s %s: write ledger: %w", e.Kind, e.Key, err)
	}
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO billing_ledger (`+entryColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '', '', '', 0, 0, ?, ?)
		ON CONFLICT (ledger_key) DO NOTHING`),
		e.Key, string(e.Kind), string(StatusPending), hash, e.Customer, e.Amount, e.Currency, e.Description,
		e.PaymentMethod, e.Target, now, now)
	if err != nil {
		return nil, fmt.Errorf("billing: %s %s: write ledger: %w", e.Kind, e.Key, err)
	}
	if err := failpoint.Inject("billing.ledger.after"); err != nil {
		return nil, fmt.Errorf("billing: %s %s: write ledger: %w", e.Kind, e.Key, err)
	}
	got, storedHash, err := s.get(ctx, e.Key)
	if err != nil {
		return nil, fmt.Errorf("billing: %s %s: %w", e.Kind, e.Key, err)
	}
	if got.Kind != e.Kind || storedHash != hash {
		return nil, newError(string(e.Kind), e.Key, CodeIdempotencyMismatch,
			"the ledger holds a %s with this key and different parameters", got.Kind)
	}
	return got, nil
}

// get reads one entry and its parameters' hash.
func (s *Service) get(ctx context.Context, key string) (*Entry, string, error) {
	row := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT `+entryColumns+` FROM billing_ledger WHERE ledger_key = ?`), key)
	e, hash, err := scanEntry(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", ErrNotFound
	}
	if err != nil {
		return nil, "", fmt.Errorf("read ledger: %w", err)
	}
	return e, hash, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanEntry(r scanner) (*Entry, string, error) {
	var (
		e                    Entry
		kind, status, code   string
		hash                 string
		reconciled           int64
		createdAt, updatedAt int64
	)
	err := r.Scan(&e.Key, &kind, &status, &hash, &e.Customer, &e.Amount, &e.Currency, &e.Description,
		&e.PaymentMethod, &e.Target, &e.StripeID, &e.StripeStatus, &code, &e.ErrorMessage, &e.Attempts, &reconciled,
		&createdAt, &updatedAt)
	if err != nil {
		return nil, "", err
	}
	e.Kind, e.Status, e.ErrorCode = Kind(kind), Status(status), Code(code)
	e.Reconciled = reconciled != 0
	e.CreatedAt, e.UpdatedAt = time.UnixMicro(createdAt).UTC(), time.UnixMicro(updatedAt).UTC()
	return &e, hash, nil
}

// startAttempt counts a request about to be sent and, the first time, fixes
// the payment method it charges, so that every retry sends the same
// parameters even if the customer's default changes meanwhile. It returns
// the entry as stored.
func (s *Service) startAttempt(ctx context.Context, e *Entry, paymentMethod string) (*Entry, error) {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE billing_ledger
		SET attempts = attempts + 1,
		    payment_method = CASE WHEN payment_method = '' THEN ? ELSE payment_method END,
		    updated_at = ?
		WHERE ledger_key = ?`), paymentMethod, s.now().UnixMicro(), e.Key)
	if err != nil {
		return nil, fmt.Errorf("billing: %s %s: write ledger: %w", e.Kind, e.Key, err)
	}
	got, _, err := s.get(ctx, e.Key)
	if err != nil {
		return nil, fmt.Errorf("billing: %s %s: %w", e.Kind, e.Key, err)
	}
	return got, nil
}

// outcome is what to record on a pending entry.
type outcome struct {
	status       Status
	stripeID     string
	stripeStatus string
	amount       int64 // 0 keeps the stored amount
	code         Code
	message      string
	reconciled   bool
}

// settle records the outcome of a pending entry and returns the entry as
// stored. When another attempt settled it first, its outcome stands.
func (s *Service) settle(ctx context.Context, e *Entry, o outcome) (*Entry, error) {
	if err := failpoint.Inject("billing.ledger.settle.before"); err != nil {
		return nil, fmt.Errorf("billing: %s %s: record outcome %s (%s): %w", e.Kind, e.Key, o.status, o.stripeID, err)
	}
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE billing_ledger
		SET status = ?, stripe_id = ?, stripe_status = ?, error_code = ?, error_message = ?,
		    amount = CASE WHEN CAST(? AS BIGINT) > 0 THEN ? ELSE amount END,
		    reconciled = ?, updated_at = ?
		WHERE ledger_key = ? AND status = ?`),
		string(o.status), o.stripeID, o.stripeStatus, string(o.code), o.message,
		o.amount, o.amount, boolInt(o.reconciled), s.now().UnixMicro(), e.Key, string(StatusPending))
	if err != nil {
		return nil, fmt.Errorf("billing: %s %s: record outcome %s (%s): %w", e.Kind, e.Key, o.status, o.stripeID, err)
	}
	if err := failpoint.Inject("billing.ledger.settle.after"); err != nil {
		return nil, fmt.Errorf("billing: %s %s: record outcome %s (%s): %w", e.Kind, e.Key, o.status, o.stripeID, err)
	}
	got, _, err := s.get(ctx, e.Key)
	if err != nil {
		return nil, fmt.Errorf("billing: %s %s: %w", e.Kind, e.Key, err)
	}
	return got, nil
}

// noteTransient records the last transient error on a pending entry, for
// whoever inspects the ledger; the entry stays pending.
func (s *Service) noteTransient(ctx context.Context, e *Entry, be *Error) {
	e.ErrorCode, e.ErrorMessage = be.Code, be.Message
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE billing_ledger
		SET error_code = ?, error_message = ?, updated_at = ?
		WHERE ledger_key = ? AND status = ?`),
		string(be.Code), be.Message, s.now().UnixMicro(), e.Key, string(StatusPending))
	if err != nil {
		s.cfg.Logger.WarnContext(ctx, "billing: record transient error", "key", e.Key, "err", err)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Entry returns the ledger entry of a key, or an error matching
// ErrNotFound.
func (s *Service) Entry(ctx context.Context, key string) (*Entry, error) {
	e, _, err := s.get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("billing: entry %s: %w", key, err)
	}
	return e, nil
}

// ListOpts filter Entries. The zero value lists the newest entries.
type ListOpts struct {
	Customer string
	Kind     Kind
	Status   Status
	// Limit. Optional; default 100.
	Limit int
}

// Entries lists ledger entries, newest first.
func (s *Service) Entries(ctx context.Context, opts *ListOpts) ([]Entry, error) {
	var o ListOpts
	if opts != nil {
		o = *opts
	}
	if o.Limit <= 0 {
		o.Limit = 100
	}
	var (
		where []string
		args  []any
	)
	if o.Customer != "" {
		where, args = append(where, "customer = ?"), append(args, o.Customer)
	}
	if o.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, string(o.Kind))
	}
	if o.Status != "" {
		where, args = append(where, "status = ?"), append(args, string(o.Status))
	}
	q := `SELECT ` + entryColumns + ` FROM billing_ledger`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at DESC, ledger_key LIMIT ?"
	args = append(args, o.Limit)
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("billing: list ledger: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e, _, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("billing: list ledger: %w", err)
		}
		out = append(out, *e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("billing: list ledger: %w", err)
	}
	return out, nil
}
