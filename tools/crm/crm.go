package crm

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors returned by every CRM. Match them with errors.Is.
var (
	// ErrNotFound: no customer has the key or email (or, for contacts,
	// notes and deals, the customer they name does not exist).
	ErrNotFound = errors.New("crm: not found")
	// ErrInvalid: a record lacks a required field or has a malformed one.
	// The error's text names the field.
	ErrInvalid = errors.New("crm: invalid input")
)

// CRM is a customer database: customers, their contacts, notes about them
// and their deals. Store keeps one in Keel's own database; Client talks to
// a CRM over HTTP. Implementations are safe for concurrent use.
//
// Upserts are idempotent: the same upsert twice, or many at once for the
// same key, leave one record. Lookups of something that does not exist
// return an error matching ErrNotFound; malformed input, one matching
// ErrInvalid.
type CRM interface {
	// UpsertCustomer creates the customer with c.Key, or replaces every
	// field of the existing one with c's (an empty field clears it).
	UpsertCustomer(ctx context.Context, c Customer) (Customer, error)
	// Customer returns the customer with the key.
	Customer(ctx context.Context, key string) (Customer, error)
	// CustomerByEmail returns the customer whose email, or one of whose
	// contacts' email, is email (compared without case). When several
	// match, a customer's own email wins over a contact's, then the most
	// recently updated.
	CustomerByEmail(ctx context.Context, email string) (Customer, error)

	// UpsertContact creates or replaces the contact with c.Email at
	// customer c.CustomerKey.
	UpsertContact(ctx context.Context, c Contact) (Contact, error)
	// Contacts returns a customer's contacts, ordered by email.
	Contacts(ctx context.Context, customerKey string) ([]Contact, error)

	// AddNote adds a note to a customer. With n.IdempotencyKey set, adding
	// the same key again returns the note first added and adds nothing.
	AddNote(ctx context.Context, n Note) (Note, error)
	// Notes returns a customer's notes, oldest first.
	Notes(ctx context.Context, customerKey string) ([]Note, error)

	// UpsertDeal creates the deal with d.Key, or replaces the existing
	// one's fields.
	UpsertDeal(ctx context.Context, d Deal) (Deal, error)
	// Deal returns the deal with the key.
	Deal(ctx context.Context, key string) (Deal, error)
	// Deals returns a customer's deals, ordered by key.
	Deals(ctx context.Context, customerKey string) ([]Deal, error)
}

// Customer is a company or person that buys from you.
type Customer struct {
	// Key is the customer's ID in the system of record (for example a
	// billing provider's "cus_…" ID). Required.
	Key string `json:"key"`
	// Name is required.
	Name string `json:"name"`
	// Email is the customer's main address, stored lowercased. Optional.
	Email   string `json:"email,omitempty"`
	Company string `json:"company,omitempty"`
	// Plan is the product plan the customer is on ("free", "pro"…).
	Plan string `json:"plan,omitempty"`
	// Metadata holds any other facts, as strings.
	Metadata  map[string]string `json:"metadata,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// Contact is a person at a customer.
type Contact struct {
	// CustomerKey and Email (stored lowercased) identify the contact.
	// Both required.
	CustomerKey string    `json:"customer_key"`
	Email       string    `json:"email"`
	Name        string    `json:"name,omitempty"`
	Role        string    `json:"role,omitempty"`
	Phone       string    `json:"phone,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Note is a free-text note about a customer.
type Note struct {
	// ID is assigned when the note is added.
	ID          int64  `json:"id"`
	CustomerKey string `json:"customer_key"`
	Author      string `json:"author,omitempty"`
	// Body is required.
	Body string `json:"body"`
	// IdempotencyKey, when set, makes AddNote add the note at most once
	// (for example a tool call's key). It is not returned by reads.
	IdempotencyKey string    `json:"-"`
	CreatedAt      time.Time `json:"created_at"`
}

// Stage is where a deal is in the sales pipeline.
type Stage string

// The stages of a deal.
const (
	StageLead        Stage = "lead"
	StageQualified   Stage = "qualified"
	StageProposal    Stage = "proposal"
	StageNegotiation Stage = "negotiation"
	StageWon         Stage = "won"
	StageLost        Stage = "lost"
)

// Stages lists the valid stages in pipeline order.
func Stages() []Stage {
	return []Stage{StageLead, StageQualified, StageProposal, StageNegotiation, StageWon, StageLost}
}

// Valid reports whether s is one of Stages.
func (s Stage) Valid() bool {
	switch s {
	case StageLead, StageQualified, StageProposal, StageNegotiation, StageWon, StageLost:
		return true
	}
	return false
}

// Deal is a sale in progress with a customer.
type Deal struct {
	// Key identifies the deal. Required.
	Key string `json:"key"`
	// CustomerKey is the customer the deal is with. Required.
	CustomerKey string `json:"customer_key"`
	// Title is required.
	Title string `json:"title"`
	// Stage is required.
	Stage Stage `json:"stage"`
	// Amount is in the currency's minor unit (cents), at least 0.
	Amount int64 `json:"amount"`
	// Currency is an ISO 4217 code, stored uppercase. Optional; default
	// "USD".
	Currency  string    `json:"currency"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Field limits.
const (
	maxKeyLen   = 200
	maxFieldLen = 500
	maxBodyLen  = 64 << 10
	maxMetadata = 64
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func checkText(field, v string, max int, required bool) error {
	switch {
	case required && v == "":
		return invalid("%s is required", field)
	case len(v) > max:
		return invalid("%s is longer than %d bytes", field, max)
	case !utf8.ValidString(v):
		return invalid("%s is not valid UTF-8", field)
	}
	return nil
}

// normalizeEmail trims and lowercases an address and checks it is one bare
// address (name@domain).
func normalizeEmail(field, email string, required bool) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		if required {
			return "", invalid("%s is required", field)
		}
		return "", nil
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return "", invalid("%s %q is not an email address", field, email)
	}
	return email, nil
}

func normalizeKey(field, key string) (string, error) {
	key = strings.TrimSpace(key)
	if err := checkText(field, key, maxKeyLen, true); err != nil {
		return "", err
	}
	return key, nil
}

func normalizeCustomer(c Customer) (Customer, error) {
	var err error
	if c.Key, err = normalizeKey("key", c.Key); err != nil {
		return c, err
	}
	c.Name, c.Company, c.Plan = strings.TrimSpace(c.Name), strings.TrimSpace(c.Company), strings.TrimSpace(c.Plan)
	for _, f := range []struct{ name, v string }{{"name", c.Name}, {"company", c.Company}, {"plan", c.Plan}} {
		if err := checkText(f.name, f.v, maxFieldLen, f.name == "name"); err != nil {
			return c, err
		}
	}
	if c.Email, err = normalizeEmail("email", c.Email, false); err != nil {
		return c, err
	}
	if len(c.Metadata) > maxMetadata {
		return c, invalid("metadata has %d entries, more than %d", len(c.Metadata), maxMetadata)
	}
	for k, v := range c.Metadata {
		if err := checkText("metadata key", k, maxFieldLen, true); err != nil {
			return c, err
		}
		if err := checkText("metadata["+k+"]", v, maxFieldLen, false); err != nil {
			return c, err
		}
	}
	if len(c.Metadata) == 0 {
		c.Metadata = nil
	}
	return c, nil
}

func normalizeContact(c Contact) (Contact, error) {
	var err error
	if c.CustomerKey, err = normalizeKey("customer_key", c.CustomerKey); err != nil {
		return c, err
	}
	if c.Email, err = normalizeEmail("email", c.Email, true); err != nil {
		return c, err
	}
	c.Name, c.Role, c.Phone = strings.TrimSpace(c.Name), strings.TrimSpace(c.Role), strings.TrimSpace(c.Phone)
	for _, f := range []struct{ name, v string }{{"name", c.Name}, {"role", c.Role}, {"phone", c.Phone}} {
		if err := checkText(f.name, f.v, maxFieldLen, false); err != nil {
			return c, err
		}
	}
	return c, nil
}

func normalizeNote(n Note) (Note, error) {
	var err error
	if n.CustomerKey, err = normalizeKey("customer_key", n.CustomerKey); err != nil {
		return n, err
	}
	n.Author, n.Body = strings.TrimSpace(n.Author), strings.TrimSpace(n.Body)
	if err := checkText("author", n.Author, maxFieldLen, false); err != nil {
		return n, err
	}
	if err := checkText("body", n.Body, maxBodyLen, true); err != nil {
		return n, err
	}
	if err := checkText("idempotency key", n.IdempotencyKey, maxFieldLen, false); err != nil {
		return n, err
	}
	return n, nil
}

func normalizeDeal(d Deal) (Deal, error) {
	var err error
	if d.Key, err = normalizeKey("key", d.Key); err != nil {
		return d, err
	}
	if d.CustomerKey, err = normalizeKey("customer_key", d.CustomerKey); err != nil {
		return d, err
	}
	d.Title = strings.TrimSpace(d.Title)
	if err := checkText("title", d.Title, maxFieldLen, true); err != nil {
		return d, err
	}
	d.Stage = Stage(strings.ToLower(strings.TrimSpace(string(d.Stage))))
	if !d.Stage.Valid() {
		return d, invalid("stage %q is not one of %v", d.Stage, Stages())
	}
	if d.Amount < 0 {
		return d, invalid("amount %d is negative", d.Amount)
	}
	d.Currency = strings.ToUpper(strings.TrimSpace(d.Currency))
	if d.Currency == "" {
		d.Currency = "USD"
	}
	if len(d.Currency) != 3 || strings.Trim(d.Currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return d, invalid("currency %q is not a three-letter ISO 4217 code", d.Currency)
	}
	return d, nil
}
