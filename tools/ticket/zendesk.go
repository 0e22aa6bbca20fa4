package ticket

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ZendeskConfig configures a Zendesk desk.
type ZendeskConfig struct {
	// BaseURL is the account's URL, for example
	// "https://acme.zendesk.com". Required.
	BaseURL string
	// Email and APIToken authenticate with an API token (HTTP Basic auth
	// as "email/token:APIToken"). Either these or OAuthToken is required.
	Email    string
	APIToken string
	// OAuthToken, when set, is sent as a bearer token instead.
	OAuthToken string
	// HTTPClient sends the requests. Optional; default a client with a
	// 30-second timeout.
	HTTPClient *http.Client
}

// Zendesk is a Desk backed by Zendesk's Support API v2:
//
//	GET  /api/v2/tickets/{id}.json?include=users
//	PUT  /api/v2/tickets/{id}.json   {"ticket": {"status", "assignee_email" | "assignee_id",
//	                                  "comment": {"body", "public"}, "additional_tags"}}
//	GET  /api/v2/tickets/{id}/comments.json?include=users
//	POST /api/v2/tickets.json        {"ticket": {"subject", "comment", "requester", "status",
//	                                  "assignee_email"}}, with an Idempotency-Key header
//
// Ticket IDs are Zendesk's numeric IDs as decimal strings ("T-" or "#"
// prefixes are accepted). Zendesk's statuses map onto four: new → open,
// hold → pending. RequesterEmail and CustomerKey are the requester user's
// email and external_id; Assignee is the assignee user's email.
//
// Zendesk has no idempotency keys for updates, so an update with an
// IdempotencyKey adds the tag "keel_" + a hash of the key to the ticket in
// the same request, and an update whose tag the ticket already carries is
// not sent again. Comments are written as the API user: NewComment.Author
// is not sent.
type Zendesk struct {
	base string
	auth string
	http *http.Client
}

var _ Desk = (*Zendesk)(nil)

// NewZendesk returns a Zendesk desk for the account at cfg.BaseURL.
func NewZendesk(cfg *ZendeskConfig) (*Zendesk, error) {
	if cfg == nil || cfg.BaseURL == "" {
		return nil, errors.New("ticket: NewZendesk: BaseURL is required")
	}
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("ticket: NewZendesk: BaseURL %q is not an http(s) URL", cfg.BaseURL)
	}
	z := &Zendesk{base: u.String(), http: cfg.HTTPClient}
	switch {
	case cfg.OAuthToken != "":
		z.auth = "Bearer " + cfg.OAuthToken
	case cfg.Email != "" && cfg.APIToken != "":
		req := &http.Request{Header: http.Header{}}
		req.SetBasicAuth(cfg.Email+"/token", cfg.APIToken)
		z.auth = req.Header.Get("Authorization")
	default:
		return nil, errors.New("ticket: NewZendesk: Email and APIToken, or OAuthToken, are required")
	}
	if z.http == nil {
		z.http = &http.Client{Timeout: 30 * time.Second}
	}
	return z, nil
}

// ZendeskError is an error response from Zendesk. A 404 matches
// ErrNotFound, a 400 or 422 ErrInvalid.
type ZendeskError struct {
	StatusCode int
	// Err and Description are Zendesk's "error" and "description".
	Err         string
	Description string
	// RetryAfter is Zendesk's Retry-After on a 429, else 0.
	RetryAfter time.Duration
}

func (e *ZendeskError) Error() string {
	msg := fmt.Sprintf("ticket: zendesk: HTTP %d", e.StatusCode)
	if e.Err != "" {
		msg += " " + e.Err
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// Is matches ErrNotFound and ErrInvalid by status code.
func (e *ZendeskError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrInvalid:
		return e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusUnprocessableEntity
	}
	return false
}

// zTicket is a ticket in Zendesk's JSON.
type zTicket struct {
	ID          int64     `json:"id"`
	Subject     string    `json:"subject"`
	Status      string    `json:"status"`
	RequesterID int64     `json:"requester_id"`
	AssigneeID  *int64    `json:"assignee_id"`
	Tags        []string  `json:"tags"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// zUser is a side-loaded user.
type zUser struct {
	ID         int64   `json:"id"`
	Name       string  `json:"name"`
	Email      string  `json:"email"`
	ExternalID *string `json:"external_id"`
}

type zComment struct {
	ID        int64     `json:"id"`
	AuthorID  int64     `json:"author_id"`
	Body      string    `json:"body"`
	Public    bool      `json:"public"`
	CreatedAt time.Time `json:"created_at"`
}

type zNewComment struct {
	Body   string `json:"body"`
	Public bool   `json:"public"`
}

// zUpdate is the "ticket" object of a PUT or POST.
type zUpdate struct {
	Subject        string          `json:"subject,omitempty"`
	Status         string          `json:"status,omitempty"`
	AssigneeEmail  string          `json:"assignee_email,omitempty"`
	AssigneeID     json.RawMessage `json:"assignee_id,omitempty"` // null to unassign
	Comment        *zNewComment    `json:"comment,omitempty"`
	AdditionalTags []string        `json:"additional_tags,omitempty"`
	Requester      *zRequester     `json:"requester,omitempty"`
}

type zRequester struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

// maxZendeskResponse bounds the responses read from Zendesk.
const maxZendeskResponse = 8 << 20

func (z *Zendesk) do(ctx context.Context, method, path string, header http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, z.base+path, body)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", z.auth)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := z.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxZendeskResponse))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode >= 300 {
		ze := &ZendeskError{StatusCode: resp.StatusCode}
		var eb struct {
			Error       json.RawMessage `json:"error"`
			Description string          `json:"description"`
		}
		if json.Unmarshal(data, &eb) == nil {
			// "error" is a string, or an object {"title", "message"}.
			var s string
			var o struct{ Title, Message string }
			switch {
			case json.Unmarshal(eb.Error, &s) == nil:
				ze.Err = s
			case json.Unmarshal(eb.Error, &o) == nil:
				ze.Err, eb.Description = o.Title, o.Message
			}
			ze.Description = eb.Description
		} else {
			ze.Description = strings.TrimSpace(string(data))
		}
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			ze.RetryAfter = time.Duration(secs) * time.Second
		}
		return ze
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode response: %w", err)
		}
	}
	return nil
}

// zendeskStatus maps Zendesk's statuses onto Status.
func zendeskStatus(s string) Status {
	switch s {
	case "new", "open":
		return StatusOpen
	case "hold", "pending":
		return StatusPending
	case "solved":
		return StatusSolved
	case "closed":
		return StatusClosed
	}
	return Status(s)
}

func (z *Zendesk) ticket(t zTicket, users []zUser) Ticket {
	out := Ticket{
		ID: strconv.FormatInt(t.ID, 10), Subject: t.Subject, Status: zendeskStatus(t.Status),
		CreatedAt: t.CreatedAt.UTC(), UpdatedAt: t.UpdatedAt.UTC(),
	}
	for _, u := range users {
		if u.ID == t.RequesterID {
			out.RequesterEmail = strings.ToLower(u.Email)
			if u.ExternalID != nil {
				out.CustomerKey = *u.ExternalID
			}
		}
		if t.AssigneeID != nil && u.ID == *t.AssigneeID {
			out.Assignee = u.Email
			if out.Assignee == "" {
				out.Assignee = u.Name
			}
		}
	}
	if out.Assignee == "" && t.AssigneeID != nil {
		out.Assignee = strconv.FormatInt(*t.AssigneeID, 10)
	}
	return out
}

// fetch returns a ticket with its side-loaded users.
func (z *Zendesk) fetch(ctx context.Context, number int64) (zTicket, []zUser, error) {
	var resp struct {
		Ticket zTicket `json:"ticket"`
		Users  []zUser `json:"users"`
	}
	if err := z.do(ctx, http.MethodGet, "/api/v2/tickets/"+strconv.FormatInt(number, 10)+".json?include=users", nil, nil, &resp); err != nil {
		return zTicket{}, nil, err
	}
	return resp.Ticket, resp.Users, nil
}

// Get implements Desk.
func (z *Zendesk) Get(ctx context.Context, id string) (Ticket, error) {
	number, err := parseNumber(id)
	if err != nil {
		return Ticket{}, err
	}
	t, users, err := z.fetch(ctx, number)
	if err != nil {
		return Ticket{}, fmt.Errorf("ticket: get %d: %w", number, err)
	}
	return z.ticket(t, users), nil
}

// maxCommentPages bounds how many pages of comments Comments reads.
const maxCommentPages = 20

// Comments implements Desk. It follows Zendesk's next_page links.
func (z *Zendesk) Comments(ctx context.Context, id string) ([]Comment, error) {
	number, err := parseNumber(id)
	if err != nil {
		return nil, err
	}
	ticketID := strconv.FormatInt(number, 10)
	path := "/api/v2/tickets/" + ticketID + "/comments.json?include=users"
	out := []Comment{}
	for range maxCommentPages {
		var resp struct {
			Comments []zComment `json:"comments"`
			Users    []zUser    `json:"users"`
			NextPage *string    `json:"next_page"`
		}
		if err := z.do(ctx, http.MethodGet, path, nil, nil, &resp); err != nil {
			return nil, fmt.Errorf("ticket: comments of %s: %w", ticketID, err)
		}
		for _, c := range resp.Comments {
			author := strconv.FormatInt(c.AuthorID, 10)
			for _, u := range resp.Users {
				if u.ID == c.AuthorID {
					author = u.Email
					if author == "" {
						author = u.Name
					}
				}
			}
			out = append(out, Comment{
				ID: c.ID, TicketID: ticketID, Author: author, Body: c.Body, Public: c.Public, CreatedAt: c.CreatedAt.UTC(),
			})
		}
		if resp.NextPage == nil || *resp.NextPage == "" {
			return out, nil
		}
		next, err := url.Parse(*resp.NextPage)
		if err != nil {
			return nil, fmt.Errorf("ticket: comments of %s: next page %q: %w", ticketID, *resp.NextPage, err)
		}
		path = next.RequestURI() // on the same host as the first page
	}
	return nil, fmt.Errorf("ticket: comments of %s: more than %d pages", ticketID, maxCommentPages)
}

// idempotencyTag is the tag an update with key adds to the ticket.
func idempotencyTag(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "keel_" + hex.EncodeToString(sum[:10])
}

// Update implements Desk; see Zendesk for how IdempotencyKey works.
func (z *Zendesk) Update(ctx context.Context, id string, p UpdateParams) (Ticket, error) {
	number, err := parseNumber(id)
	if err != nil {
		return Ticket{}, err
	}
	if p, err = normalizeUpdate(p); err != nil {
		return Ticket{}, err
	}
	zt, users, err := z.fetch(ctx, number)
	if err != nil {
		return Ticket{}, fmt.Errorf("ticket: update %d: %w", number, err)
	}
	cur := z.ticket(zt, users)
	var tag string
	if p.IdempotencyKey != "" {
		tag = idempotencyTag(p.IdempotencyKey)
		if slices.Contains(zt.Tags, tag) {
			return cur, nil // applied before
		}
	}
	to := cur.Status
	if p.Status != "" {
		to = p.Status
	}
	if !cur.Status.CanBecome(to) {
		return Ticket{}, &TransitionError{ID: cur.ID, From: cur.Status, To: to}
	}

	u := zUpdate{}
	if p.Status != "" {
		u.Status = string(p.Status)
	}
	if p.Assignee != nil {
		switch a := *p.Assignee; {
		case a == "":
			u.AssigneeID = json.RawMessage("null")
		case strings.Contains(a, "@"):
			u.AssigneeEmail = a
		default:
			if _, err := strconv.ParseInt(a, 10, 64); err != nil {
				return Ticket{}, invalid("assignee %q is neither an email nor a Zendesk user ID", a)
			}
			u.AssigneeID = json.RawMessage(a)
		}
	}
	if p.Comment != nil {
		u.Comment = &zNewComment{Body: p.Comment.Body, Public: p.Comment.Public}
	}
	if tag != "" {
		u.AdditionalTags = []string{tag}
	}
	path := "/api/v2/tickets/" + strconv.FormatInt(number, 10) + ".json"
	if err := z.do(ctx, http.MethodPut, path, nil, map[string]any{"ticket": u}, nil); err != nil {
		return Ticket{}, fmt.Errorf("ticket: update %d: %w", number, err)
	}
	return z.Get(ctx, cur.ID)
}

// Create implements Desk: POST /api/v2/tickets.json with the key in the
// Idempotency-Key header, which Zendesk honours for ticket creation.
// p.ID and p.CustomerKey cannot be set through Zendesk's API: a p.ID is
// refused with ErrInvalid, and the customer key comes from the requester's
// external_id.
func (z *Zendesk) Create(ctx context.Context, p CreateParams) (Ticket, error) {
	p, err := normalizeCreate(p)
	if err != nil {
		return Ticket{}, err
	}
	if p.ID != "" {
		return Ticket{}, invalid("Zendesk assigns ticket IDs; CreateParams.ID must be empty")
	}
	u := zUpdate{Subject: p.Subject, Status: string(p.Status), AssigneeEmail: p.Assignee}
	if p.RequesterEmail != "" {
		u.Requester = &zRequester{Email: p.RequesterEmail}
	}
	if p.Comment != nil {
		u.Comment = &zNewComment{Body: p.Comment.Body, Public: p.Comment.Public}
	} else {
		// Zendesk requires a first comment: the ticket's description.
		u.Comment = &zNewComment{Body: p.Subject, Public: true}
	}
	var h http.Header
	if p.IdempotencyKey != "" {
		h = http.Header{"Idempotency-Key": {p.IdempotencyKey}}
	}
	var resp struct {
		Ticket zTicket `json:"ticket"`
	}
	if err := z.do(ctx, http.MethodPost, "/api/v2/tickets.json", h, map[string]any{"ticket": u}, &resp); err != nil {
		return Ticket{}, fmt.Errorf("ticket: create: %w", err)
	}
	return z.Get(ctx, strconv.FormatInt(resp.Ticket.ID, 10))
}
