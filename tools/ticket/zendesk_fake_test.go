package ticket_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeZendesk is a small Zendesk Support API v2 server: it stores tickets,
// users and comments in memory and speaks Zendesk's JSON shapes for the
// endpoints the adapter uses, including side-loaded users, paginated
// comments, additional_tags, assignee_email, and Idempotency-Key on ticket
// creation.
type fakeZendesk struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	users    []fzUser
	tickets  map[int64]*fzTicket
	created  map[string]int64 // Idempotency-Key → ticket ID
	nextID   int64
	nextCmt  int64
	puts     int
	requests map[string]int // "METHOD /path" → count
	perPage  int
	apiEmail string
	apiToken string
	now      time.Time
}

type fzUser struct {
	ID         int64   `json:"id"`
	Name       string  `json:"name"`
	Email      string  `json:"email"`
	Role       string  `json:"role"`
	ExternalID *string `json:"external_id"`
}

type fzComment struct {
	ID        int64     `json:"id"`
	Type      string    `json:"type"`
	AuthorID  int64     `json:"author_id"`
	Body      string    `json:"body"`
	Public    bool      `json:"public"`
	CreatedAt time.Time `json:"created_at"`
}

type fzTicket struct {
	ID          int64     `json:"id"`
	URL         string    `json:"url"`
	Subject     string    `json:"subject"`
	Description string    `json:"description"`
	Status      string    `json:"status"`
	RequesterID int64     `json:"requester_id"`
	SubmitterID int64     `json:"submitter_id"`
	AssigneeID  *int64    `json:"assignee_id"`
	Tags        []string  `json:"tags"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	comments    []fzComment
}

const (
	zdEmail = "agent@acme.test"
	zdToken = "zd-token"
)

func newFakeZendesk(t *testing.T) *fakeZendesk {
	t.Helper()
	ext := func(s string) *string { return &s }
	f := &fakeZendesk{
		t: t, tickets: map[int64]*fzTicket{}, created: map[string]int64{}, requests: map[string]int{},
		nextID: 100, nextCmt: 1000, perPage: 2, apiEmail: zdEmail, apiToken: zdToken,
		now: time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC),
		users: []fzUser{
			{ID: 1, Name: "API agent", Email: zdEmail, Role: "agent"},
			{ID: 2, Name: "Ada Lovelace", Email: "ada@example.com", Role: "end-user", ExternalID: ext("cus_ada")},
			{ID: 3, Name: "Sam Support", Email: "sam@support.example.com", Role: "agent"},
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v2/tickets/{file}", f.getTicket)
	mux.HandleFunc("PUT /api/v2/tickets/{file}", f.putTicket)
	mux.HandleFunc("GET /api/v2/tickets/{id}/comments.json", f.getComments)
	mux.HandleFunc("POST /api/v2/tickets.json", f.postTicket)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests[r.Method+" "+r.URL.Path]++
		f.mu.Unlock()
		user, pass, ok := r.BasicAuth()
		if !ok || user != f.apiEmail+"/token" || pass != f.apiToken {
			f.json(w, http.StatusUnauthorized, map[string]any{"error": "Couldn't authenticate you"})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeZendesk) json(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeZendesk) notFound(w http.ResponseWriter) {
	f.json(w, http.StatusNotFound, map[string]any{"error": "RecordNotFound", "description": "Not found"})
}

func (f *fakeZendesk) invalid(w http.ResponseWriter, field, msg string) {
	f.json(w, http.StatusUnprocessableEntity, map[string]any{
		"error": "RecordInvalid", "description": "Record validation errors",
		"details": map[string]any{field: []map[string]string{{"description": msg}}},
	})
}

// tick advances the fake's clock; callers hold mu.
func (f *fakeZendesk) tick() time.Time {
	f.now = f.now.Add(time.Second)
	return f.now
}

// ticketOf finds the ticket named by "{id}.json"; callers hold mu.
func (f *fakeZendesk) ticketOf(file string) *fzTicket {
	idStr, ok := strings.CutSuffix(file, ".json")
	if !ok {
		return nil
	}
	id, err := strconv.ParseInt(idStr, 10, 64)
	if err != nil {
		return nil
	}
	return f.tickets[id]
}

func (f *fakeZendesk) userByID(id int64) *fzUser {
	for i := range f.users {
		if f.users[i].ID == id {
			return &f.users[i]
		}
	}
	return nil
}

// userByEmail finds or creates a user; callers hold mu.
func (f *fakeZendesk) userByEmail(email, role string) *fzUser {
	for i := range f.users {
		if strings.EqualFold(f.users[i].Email, email) {
			return &f.users[i]
		}
	}
	f.users = append(f.users, fzUser{ID: int64(len(f.users) + 1), Name: email, Email: email, Role: role})
	return &f.users[len(f.users)-1]
}

// sideload returns the users a ticket refers to.
func (f *fakeZendesk) sideload(ids ...int64) []fzUser {
	var out []fzUser
	for _, id := range ids {
		if u := f.userByID(id); u != nil && !slices.ContainsFunc(out, func(x fzUser) bool { return x.ID == id }) {
			out = append(out, *u)
		}
	}
	return out
}

func (f *fakeZendesk) ticketJSON(t *fzTicket) map[string]any {
	t.URL = f.srv.URL + "/api/v2/tickets/" + strconv.FormatInt(t.ID, 10) + ".json"
	resp := map[string]any{"ticket": t}
	return resp
}

func (f *fakeZendesk) getTicket(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.ticketOf(r.PathValue("file"))
	if t == nil {
		f.notFound(w)
		return
	}
	resp := f.ticketJSON(t)
	if r.URL.Query().Get("include") == "users" {
		ids := []int64{t.RequesterID, t.SubmitterID}
		if t.AssigneeID != nil {
			ids = append(ids, *t.AssigneeID)
		}
		resp["users"] = f.sideload(ids...)
	}
	f.json(w, http.StatusOK, resp)
}

// ticketBody is the "ticket" object of a PUT or POST, with assignee_id
// kept raw to tell null (unassign) from absent.
type ticketBody struct {
	Subject        string          `json:"subject"`
	Status         string          `json:"status"`
	AssigneeEmail  string          `json:"assignee_email"`
	AssigneeID     json.RawMessage `json:"assignee_id"`
	AdditionalTags []string        `json:"additional_tags"`
	Comment        *struct {
		Body   string `json:"body"`
		Public *bool  `json:"public"`
	} `json:"comment"`
	Requester *struct {
		Email string `json:"email"`
		Name  string `json:"name"`
	} `json:"requester"`
}

func decodeTicketBody(r *http.Request) (ticketBody, error) {
	var body struct {
		Ticket *ticketBody `json:"ticket"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return ticketBody{}, err
	}
	if body.Ticket == nil {
		return ticketBody{}, fmt.Errorf("no ticket object")
	}
	return *body.Ticket, nil
}

var zendeskStatuses = []string{"new", "open", "pending", "hold", "solved", "closed"}

func (f *fakeZendesk) putTicket(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts++
	t := f.ticketOf(r.PathValue("file"))
	if t == nil {
		f.notFound(w)
		return
	}
	b, err := decodeTicketBody(r)
	if err != nil {
		f.json(w, http.StatusBadRequest, map[string]any{"error": "InvalidJSON", "description": err.Error()})
		return
	}
	if t.Status == "closed" {
		f.invalid(w, "status", "Status: closed prevents ticket update")
		return
	}
	if b.Status != "" && !slices.Contains(zendeskStatuses, b.Status) {
		f.invalid(w, "status", "Status: is invalid")
		return
	}
	now := f.tick()
	if b.Status != "" {
		t.Status = b.Status
	}
	switch {
	case b.AssigneeEmail != "":
		id := f.userByEmail(b.AssigneeEmail, "agent").ID
		t.AssigneeID = &id
	case string(b.AssigneeID) == "null":
		t.AssigneeID = nil
	case len(b.AssigneeID) > 0:
		id, err := strconv.ParseInt(string(b.AssigneeID), 10, 64)
		if err != nil || f.userByID(id) == nil {
			f.invalid(w, "assignee", "Assignee: is invalid")
			return
		}
		t.AssigneeID = &id
	}
	for _, tag := range b.AdditionalTags {
		if !slices.Contains(t.Tags, tag) {
			t.Tags = append(t.Tags, tag)
		}
	}
	if b.Comment != nil {
		public := true // Zendesk's default
		if b.Comment.Public != nil {
			public = *b.Comment.Public
		}
		f.nextCmt++
		t.comments = append(t.comments, fzComment{ID: f.nextCmt, Type: "Comment", AuthorID: 1, Body: b.Comment.Body, Public: public, CreatedAt: now})
	}
	t.UpdatedAt = now
	resp := f.ticketJSON(t)
	resp["audit"] = map[string]any{"id": f.nextCmt, "ticket_id": t.ID, "created_at": now}
	f.json(w, http.StatusOK, resp)
}

func (f *fakeZendesk) getComments(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.ticketOf(r.PathValue("id") + ".json")
	if t == nil {
		f.notFound(w)
		return
	}
	page := 1
	if p := r.URL.Query().Get("page"); p != "" {
		page, _ = strconv.Atoi(p)
	}
	start := min((page-1)*f.perPage, len(t.comments))
	end := min(start+f.perPage, len(t.comments))
	cs := t.comments[start:end]
	var next *string
	if end < len(t.comments) {
		s := fmt.Sprintf("%s/api/v2/tickets/%d/comments.json?include=users&page=%d", f.srv.URL, t.ID, page+1)
		next = &s
	}
	resp := map[string]any{"comments": cs, "next_page": next, "previous_page": nil, "count": len(t.comments)}
	if r.URL.Query().Get("include") == "users" {
		var ids []int64
		for _, c := range cs {
			ids = append(ids, c.AuthorID)
		}
		resp["users"] = f.sideload(ids...)
	}
	f.json(w, http.StatusOK, resp)
}

func (f *fakeZendesk) postTicket(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := r.Header.Get("Idempotency-Key")
	if id, ok := f.created[key]; ok && key != "" {
		f.json(w, http.StatusCreated, f.ticketJSON(f.tickets[id]))
		return
	}
	b, err := decodeTicketBody(r)
	if err != nil {
		f.json(w, http.StatusBadRequest, map[string]any{"error": "InvalidJSON", "description": err.Error()})
		return
	}
	if b.Comment == nil || b.Comment.Body == "" {
		f.invalid(w, "description", "Description: cannot be blank")
		return
	}
	now := f.tick()
	f.nextID++
	t := &fzTicket{ID: f.nextID, Subject: b.Subject, Description: b.Comment.Body, Status: "new",
		RequesterID: 1, SubmitterID: 1, Tags: []string{}, CreatedAt: now, UpdatedAt: now}
	if b.Status != "" {
		t.Status = b.Status
	}
	if b.Requester != nil {
		t.RequesterID = f.userByEmail(b.Requester.Email, "end-user").ID
	}
	if b.AssigneeEmail != "" {
		id := f.userByEmail(b.AssigneeEmail, "agent").ID
		t.AssigneeID = &id
	}
	f.nextCmt++
	public := b.Comment.Public == nil || *b.Comment.Public
	t.comments = append(t.comments, fzComment{ID: f.nextCmt, Type: "Comment", AuthorID: t.RequesterID, Body: b.Comment.Body, Public: public, CreatedAt: now})
	f.tickets[t.ID] = t
	if key != "" {
		f.created[key] = t.ID
	}
	f.json(w, http.StatusCreated, f.ticketJSON(t))
}

// putCount returns how many PUTs the server received.
func (f *fakeZendesk) putCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts
}

// requestCount returns how many requests the server received with the
// method and path (without the query).
func (f *fakeZendesk) requestCount(method, path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[method+" "+path]
}

// tags returns a ticket's tags.
func (f *fakeZendesk) tags(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, _ := strconv.ParseInt(id, 10, 64)
	return slices.Clone(f.tickets[n].Tags)
}

// setStatus sets a ticket's raw Zendesk status, as an agent in Zendesk's
// own interface would.
func (f *fakeZendesk) setStatus(id string, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, _ := strconv.ParseInt(id, 10, 64)
	f.tickets[n].Status = status
}
