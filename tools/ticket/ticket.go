package ticket

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors returned by every Desk. Match them with errors.Is (and
// *TransitionError with errors.As).
var (
	// ErrNotFound: no ticket has the ID.
	ErrNotFound = errors.New("ticket: not found")
	// ErrInvalid: malformed input, such as an empty subject, an unknown
	// status or an update that changes nothing. The text names the field.
	ErrInvalid = errors.New("ticket: invalid input")
	// ErrInvalidTransition is matched by every *TransitionError.
	ErrInvalidTransition = errors.New("ticket: invalid status transition")
	// ErrExists: Create was given the ID of a ticket that exists.
	ErrExists = errors.New("ticket: already exists")
	// ErrKeyReused: an idempotency key already applied to one ticket was
	// given with another.
	ErrKeyReused = errors.New("ticket: idempotency key already used for another ticket")
)

// Desk is a help desk's tickets. Store keeps them in Keel's own database;
// Zendesk talks to Zendesk's API. Implementations are safe for concurrent
// use.
type Desk interface {
	// Create opens a ticket. With p.IdempotencyKey set, creating with the
	// same key again returns the ticket first created.
	Create(ctx context.Context, p CreateParams) (Ticket, error)
	// Get returns the ticket with the ID.
	Get(ctx context.Context, id string) (Ticket, error)
	// Comments returns a ticket's comments, oldest first.
	Comments(ctx context.Context, id string) ([]Comment, error)
	// Update changes a ticket's status or assignee and adds a comment,
	// all at once. A status change must be allowed by
	// Status.CanBecome, or the update fails with a *TransitionError and
	// changes nothing. With p.IdempotencyKey set, an update whose key was
	// applied before is not applied again: Update returns the ticket as
	// it is now, so a retried call never adds its comment twice.
	Update(ctx context.Context, id string, p UpdateParams) (Ticket, error)
}

// Status is where a ticket is in its life.
type Status string

// The statuses of a ticket.
const (
	// StatusOpen: waiting for the support team.
	StatusOpen Status = "open"
	// StatusPending: waiting for the requester.
	StatusPending Status = "pending"
	// StatusSolved: the team considers it solved; the requester may reopen
	// it.
	StatusSolved Status = "solved"
	// StatusClosed: final; a closed ticket can no longer be updated.
	StatusClosed Status = "closed"
)

// Valid reports whether s is one of the four statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusOpen, StatusPending, StatusSolved, StatusClosed:
		return true
	}
	return false
}

// CanBecome reports whether a ticket in status s may move to status to:
//
//	open    → pending, solved
//	pending → open, solved
//	solved  → open (reopened), closed
//	closed  → nothing
//
// Staying in the same status is allowed, except for closed.
func (s Status) CanBecome(to Status) bool {
	if !s.Valid() || !to.Valid() || s == StatusClosed {
		return false
	}
	if s == to {
		return true
	}
	switch s {
	case StatusOpen:
		return to == StatusPending || to == StatusSolved
	case StatusPending:
		return to == StatusOpen || to == StatusSolved
	case StatusSolved:
		return to == StatusOpen || to == StatusClosed
	}
	return false
}

// TransitionError reports an update that would move a ticket to a status
// it cannot reach from its current one, or update a closed ticket.
type TransitionError struct {
	ID       string
	From, To Status
}

func (e *TransitionError) Error() string {
	if e.From == StatusClosed {
		return fmt.Sprintf("ticket: %s is closed and cannot be updated", e.ID)
	}
	return fmt.Sprintf("ticket: %s cannot go from %s to %s", e.ID, e.From, e.To)
}

// Is matches ErrInvalidTransition.
func (e *TransitionError) Is(target error) bool { return target == ErrInvalidTransition }

// Ticket is a support request.
type Ticket struct {
	// ID is "T-" and a number for Store tickets, Zendesk's numeric ID for
	// Zendesk tickets.
	ID      string `json:"id"`
	Subject string `json:"subject"`
	Status  Status `json:"status"`
	// Assignee is the agent (a name or an email) handling the ticket;
	// empty when unassigned.
	Assignee string `json:"assignee,omitempty"`
	// RequesterEmail is who asked, lowercased.
	RequesterEmail string `json:"requester_email,omitempty"`
	// CustomerKey is the requester's customer in the CRM (package crm).
	CustomerKey string    `json:"customer_key,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Comment is a message on a ticket.
type Comment struct {
	ID       int64  `json:"id"`
	TicketID string `json:"ticket_id"`
	Author   string `json:"author,omitempty"`
	Body     string `json:"body"`
	// Public comments are seen by the requester; others are internal
	// notes for the team.
	Public    bool      `json:"public"`
	CreatedAt time.Time `json:"created_at"`
}

// NewComment is a comment to add.
type NewComment struct {
	// Author is who writes it (a name or an email). Optional.
	Author string `json:"author,omitempty"`
	// Body is required.
	Body   string `json:"body"`
	Public bool   `json:"public"`
}

// CreateParams describe a new ticket.
type CreateParams struct {
	// ID asks for a specific ID ("T-7"), as when seeding or importing.
	// Optional; default the next free number. Store only.
	ID string
	// Subject is required.
	Subject        string
	RequesterEmail string
	CustomerKey    string
	Assignee       string
	// Status is optional; default open.
	Status Status
	// Comment is the first message, usually the requester's. Optional.
	Comment *NewComment
	// IdempotencyKey makes Create create the ticket at most once.
	// Optional.
	IdempotencyKey string
}

// UpdateParams describe a change to a ticket. At least one of Status,
// Assignee and Comment must be set.
type UpdateParams struct {
	// Status, when set, is the new status.
	Status Status
	// Assignee, when not nil, is the new assignee; "" unassigns.
	Assignee *string
	// Comment, when not nil, is added to the ticket.
	Comment *NewComment
	// IdempotencyKey, when set, makes the update apply at most once (for
	// example a tool call's key).
	IdempotencyKey string
}

// Field limits.
const (
	maxFieldLen = 500
	maxBodyLen  = 64 << 10
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

func normalizeEmail(email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return "", nil
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return "", invalid("requester email %q is not an email address", email)
	}
	return email, nil
}

func normalizeComment(c *NewComment) (*NewComment, error) {
	if c == nil {
		return nil, nil
	}
	n := *c
	n.Author, n.Body = strings.TrimSpace(n.Author), strings.TrimSpace(n.Body)
	if err := checkText("comment author", n.Author, maxFieldLen, false); err != nil {
		return nil, err
	}
	if err := checkText("comment body", n.Body, maxBodyLen, true); err != nil {
		return nil, err
	}
	return &n, nil
}

func normalizeStatus(s Status, dflt Status) (Status, error) {
	s = Status(strings.ToLower(strings.TrimSpace(string(s))))
	if s == "" {
		return dflt, nil
	}
	if !s.Valid() {
		return "", invalid("status %q is not one of open, pending, solved, closed", s)
	}
	return s, nil
}

func normalizeCreate(p CreateParams) (CreateParams, error) {
	p.Subject, p.CustomerKey, p.Assignee = strings.TrimSpace(p.Subject), strings.TrimSpace(p.CustomerKey), strings.TrimSpace(p.Assignee)
	for _, f := range []struct {
		name, v  string
		required bool
	}{{"subject", p.Subject, true}, {"customer key", p.CustomerKey, false}, {"assignee", p.Assignee, false}, {"idempotency key", p.IdempotencyKey, false}} {
		if err := checkText(f.name, f.v, maxFieldLen, f.required); err != nil {
			return p, err
		}
	}
	var err error
	if p.RequesterEmail, err = normalizeEmail(p.RequesterEmail); err != nil {
		return p, err
	}
	if p.Status, err = normalizeStatus(p.Status, StatusOpen); err != nil {
		return p, err
	}
	if p.Comment, err = normalizeComment(p.Comment); err != nil {
		return p, err
	}
	return p, nil
}

func normalizeUpdate(p UpdateParams) (UpdateParams, error) {
	var err error
	if p.Status, err = normalizeStatus(p.Status, ""); err != nil {
		return p, err
	}
	if p.Assignee != nil {
		a := strings.TrimSpace(*p.Assignee)
		if err := checkText("assignee", a, maxFieldLen, false); err != nil {
			return p, err
		}
		p.Assignee = &a
	}
	if p.Comment, err = normalizeComment(p.Comment); err != nil {
		return p, err
	}
	if err := checkText("idempotency key", p.IdempotencyKey, maxFieldLen, false); err != nil {
		return p, err
	}
	if p.Status == "" && p.Assignee == nil && p.Comment == nil {
		return p, invalid("the update changes nothing: give a status, an assignee or a comment")
	}
	return p, nil
}

// parseNumber reads a ticket ID: "T-12", "t-12", "#12" or "12".
func parseNumber(id string) (int64, error) {
	s := strings.TrimSpace(id)
	if len(s) > 2 && (s[:2] == "T-" || s[:2] == "t-") {
		s = s[2:]
	} else {
		s = strings.TrimPrefix(s, "#")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || strings.HasPrefix(s, "+") {
		return 0, invalid("ticket ID %q is not T-<number>", id)
	}
	return n, nil
}

// FormatID returns the Store ID of ticket number n: "T-" and n.
func FormatID(n int64) string { return "T-" + strconv.FormatInt(n, 10) }
