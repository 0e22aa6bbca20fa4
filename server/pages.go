package server

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/hitl"
)

//go:embed templates
var templatesFS embed.FS

var pageFuncs = template.FuncMap{
	"pretty": prettyJSON,
	"when":   func(t time.Time) string { return t.Format("2006-01-02 15:04:05 MST") },
	"dur":    func(a, b time.Time) string { return fmtDuration(b.Sub(a)) },
	"join":   strings.Join,
}

var pageTemplates = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"error", "login", "runs", "run", "inbox", "approval"} {
		out[name] = template.Must(template.New(name).Funcs(pageFuncs).ParseFS(templatesFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return out
}()

// pageData is what every page template gets.
type pageData struct {
	Title     string
	Nav       string
	Principal *Principal
	CSRF      string
	Nonce     string
	Data      any
}

// render writes a page. HEAD requests get the headers only.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, d pageData) {
	if d.Principal == nil {
		d.Principal = PrincipalFrom(r.Context())
	}
	if d.CSRF == "" && d.Principal != nil {
		d.CSRF = s.csrfToken(sessionBinding(r))
	}
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	d.Nonce = base64.RawStdEncoding.EncodeToString(nonce)
	var buf bytes.Buffer
	if err := pageTemplates[name].ExecuteTemplate(&buf, "layout", d); err != nil {
		s.internal(w, r, fmt.Errorf("render %s: %w", name, err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-"+d.Nonce+
		"'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// errorPage renders a short error page for people.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	s.render(w, r, status, "error", pageData{Title: title, Data: msg})
}

// parseForm reads a urlencoded form within the body limit and checks its
// CSRF token against binding.
func (s *Server) parseForm(w http.ResponseWriter, r *http.Request, binding string) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		s.errorPage(w, r, http.StatusUnsupportedMediaType, "Unsupported form", "Post this form from its page.")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.errorPage(w, r, http.StatusRequestEntityTooLarge, "Too large", "The form is larger than the server accepts.")
			return false
		}
		s.errorPage(w, r, http.StatusBadRequest, "Bad form", "The form could not be read.")
		return false
	}
	if !s.checkCSRF(r, binding) {
		s.errorPage(w, r, http.StatusForbidden, "Request refused", "The form's security token is missing or stale. Reload the page and try again.")
		return false
	}
	return true
}

// --- sign in and out ---

const loginCookie = "keel_login"

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Keys == nil {
		http.Redirect(w, r, "/ui/runs", http.StatusSeeOther)
		return
	}
	s.renderLogin(w, r, http.StatusOK, safeNext(r.URL.Query().Get("next")), "")
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, next, msg string) {
	v := ""
	if c, err := r.Cookie(loginCookie); err == nil && len(c.Value) == 22 {
		v = c.Value
	} else {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		v = base64.RawURLEncoding.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: v, Path: "/ui/login", HttpOnly: true,
			SameSite: http.SameSiteStrictMode, Secure: s.secureCookies(r), MaxAge: 3600})
	}
	s.render(w, r, status, "login", pageData{Title: "Sign in", CSRF: s.csrfToken("login|" + v),
		Data: map[string]string{"Next": next, "Error": msg}})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Keys == nil {
		http.Redirect(w, r, "/ui/runs", http.StatusSeeOther)
		return
	}
	c, err := r.Cookie(loginCookie)
	if err != nil {
		s.renderLogin(w, r, http.StatusForbidden, "", "Your browser did not send the sign-in cookie; try again.")
		return
	}
	if !s.parseForm(w, r, "login|"+c.Value) {
		return
	}
	next := safeNext(r.PostFormValue("next"))
	k, err := s.cfg.Keys.Authenticate(r.Context(), strings.TrimSpace(r.PostFormValue("key")))
	if err != nil {
		if !errors.Is(err, ErrInvalidKey) {
			s.internal(w, r, err)
			return
		}
		s.renderLogin(w, r, http.StatusUnauthorized, next, "That key is not valid.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.newSession(k.ID), Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: s.secureCookies(r), MaxAge: int(s.cfg.SessionTTL.Seconds())})
	s.log.InfoContext(r.Context(), "signed in", "subject", k.Subject, "key_id", k.ID, "request_id", RequestID(r.Context()))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return
	}
	if !s.parseForm(w, r, "session|"+c.Value) {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, MaxAge: -1})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

func (s *Server) secureCookies(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(s.cfg.BaseURL, "https://")
}

// safeNext keeps a post-login redirect on this server.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/ui/runs"
	}
	if u, err := url.Parse(next); err != nil || u.Host != "" || u.Scheme != "" {
		return "/ui/runs"
	}
	return next
}

// --- runs ---

func (s *Server) runsPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	o, prob := s.listParams(q, false)
	if prob != nil {
		s.errorPage(w, r, http.StatusBadRequest, "Bad filter", prob.Detail)
		return
	}
	infos, next, err := s.engine.ListRuns(r.Context(), &o)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	runs := make([]Run, len(infos))
	for i, info := range infos {
		runs[i] = s.toRun(info)
	}
	nextURL := ""
	if next != "" {
		nq := url.Values{}
		for _, k := range []string{"status", "agent", "workflow_type", "limit"} {
			if v := q.Get(k); v != "" {
				nq.Set(k, v)
			}
		}
		nq.Set("cursor", next)
		nextURL = "/ui/runs?" + nq.Encode()
	}
	sts := make([]string, 0, len(statuses))
	for _, st := range statuses[:5] {
		sts = append(sts, string(st))
	}
	s.render(w, r, http.StatusOK, "runs", pageData{Title: "Runs", Nav: "runs", Data: map[string]any{
		"Runs": runs, "Next": nextURL, "Status": q.Get("status"), "Agent": q.Get("agent"),
		"Agents": s.names, "Statuses": sts,
	}})
}

// timelineRow is one history event on a run's page.
type timelineRow struct {
	ID           int64
	Time         time.Time
	Offset       string
	Type         string
	Kind         string // input, command, close, failed
	Name         string
	Seq          int64
	Summary      string
	Failure      string
	Attempts     []Attempt
	Usage        *Usage
	Vote         *hitl.Vote
	Payload      string
	PayloadLabel string
}

// eventBody mirrors the fields of the engine's event data that a
// timeline shows.
type eventBody struct {
	Seq      int64           `json:"seq"`
	Target   int64           `json:"target"`
	Name     string          `json:"name"`
	Input    json.RawMessage `json:"input"`
	Result   json.RawMessage `json:"result"`
	Failure  *failureBody    `json:"failure"`
	Duration time.Duration   `json:"duration"`
	FireAt   *time.Time      `json:"fire_at"`
	Attempt  int             `json:"attempt"`
	Reason   string          `json:"reason"`
}

type failureBody struct {
	Type    string       `json:"type"`
	Message string       `json:"message"`
	Timeout string       `json:"timeout"`
	Cause   *failureBody `json:"cause"`
}

func (f *failureBody) String() string {
	if f == nil {
		return ""
	}
	s := f.Message
	if f.Type != "" {
		s = f.Type + ": " + s
	}
	if f.Timeout != "" {
		s += " (" + f.Timeout + " timeout)"
	}
	if f.Cause != nil {
		s += " ← " + f.Cause.String()
	}
	return s
}

// runUsage sums the model use of a run.
type runUsage struct {
	Calls            int
	PromptTokens     int64
	CompletionTokens int64
	CostUSD          float64
}

func buildTimeline(evs []durable.HistoryEvent, atts []durable.Attempt) ([]timelineRow, runUsage) {
	bySeq := map[int64][]Attempt{}
	for _, a := range toAttempts(atts) {
		bySeq[a.Seq] = append(bySeq[a.Seq], a)
	}
	var total runUsage
	rows := make([]timelineRow, 0, len(evs))
	var start time.Time
	if len(evs) > 0 {
		start = evs[0].Time
	}
	for _, ev := range evs {
		var b eventBody
		_ = json.Unmarshal(ev.Data, &b) // an undecodable body still shows as raw JSON
		row := timelineRow{ID: ev.ID, Time: ev.Time, Offset: fmtDuration(ev.Time.Sub(start)), Type: ev.Type,
			Kind: "command", Name: b.Name, Seq: b.Seq}
		switch ev.Type {
		case durable.EventWorkflowStarted, durable.EventActivityCompleted, durable.EventTimerFired,
			durable.EventSignalReceived, durable.EventCancelRequested, durable.EventChildWorkflowCompleted,
			durable.EventExternalRequestDone, durable.EventUpdateAccepted:
			row.Kind = "input"
		case durable.EventActivityFailed, durable.EventWorkflowFailed, durable.EventChildWorkflowFailed,
			durable.EventChildWorkflowStartFailed, durable.EventExternalRequestFailed, durable.EventWorkflowTimedOut:
			row.Kind = "failed"
		case durable.EventWorkflowCompleted, durable.EventWorkflowCanceled, durable.EventWorkflowTerminated,
			durable.EventWorkflowContinuedAsNew:
			row.Kind = "close"
		}
		switch ev.Type {
		case durable.EventWorkflowStarted:
			row.Payload, row.PayloadLabel = prettyJSON(b.Input), "input"
		case durable.EventActivityScheduled:
			row.Attempts = bySeq[b.Seq]
			row.Payload, row.PayloadLabel = prettyJSON(b.Input), "input"
		case durable.EventActivityCompleted:
			row.Payload, row.PayloadLabel = prettyJSON(b.Result), "result"
			if u, ok := usageOf(ev.Data); ok {
				row.Usage = &u
				total.Calls++
				total.PromptTokens += u.PromptTokens
				total.CompletionTokens += u.CompletionTokens
				total.CostUSD += u.CostUSD
			}
		case durable.EventActivityFailed, durable.EventWorkflowFailed, durable.EventWorkflowCanceled:
			row.Failure = b.Failure.String()
		case durable.EventTimerStarted:
			row.Summary = "sleep " + fmtDuration(b.Duration)
			if b.FireAt != nil {
				row.Summary += " (until " + b.FireAt.Format("2006-01-02 15:04:05 MST") + ")"
			}
		case durable.EventSignalReceived:
			if strings.HasPrefix(b.Name, hitl.SignalPrefix) {
				var ve hitl.VoteEvent
				if json.Unmarshal(b.Input, &ve) == nil && ve.Vote.Reviewer != "" {
					row.Vote = &ve.Vote
					row.Summary = "approval " + ve.ApprovalID + " is now " + string(ve.Status)
				}
			}
			row.Payload, row.PayloadLabel = prettyJSON(b.Input), "payload"
		case durable.EventCancelRequested, durable.EventWorkflowTerminated:
			row.Summary = b.Reason
		case durable.EventWorkflowCompleted:
			row.Payload, row.PayloadLabel = prettyJSON(b.Result), "result"
		case durable.EventMarkerRecorded:
			if len(b.Result) > 0 {
				row.Payload, row.PayloadLabel = prettyJSON(b.Result), "value"
			}
		default:
			row.Payload, row.PayloadLabel = prettyJSON(ev.Data), "data"
		}
		if row.Failure == "" && b.Failure != nil {
			row.Failure = b.Failure.String()
		}
		if b.Target != 0 && row.Summary == "" {
			row.Summary = "of #" + strconv.FormatInt(b.Target, 10)
		}
		rows = append(rows, row)
	}
	return rows, total
}

func (s *Server) runPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	info, err := s.findRun(ctx, chi.URLParam(r, "id"))
	if errors.Is(err, durable.ErrRunNotFound) {
		s.errorPage(w, r, http.StatusNotFound, "No such run", "There is no run "+strconv.Quote(chi.URLParam(r, "id"))+".")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	h, err := s.engine.GetHistory(ctx, info.RunID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	atts, err := s.engine.ActivityAttempts(ctx, info.RunID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	run := s.toRun(h.Run)
	if err := s.withOutcome(ctx, &run); err != nil {
		s.internal(w, r, err)
		return
	}
	rows, usage := buildTimeline(h.Events, atts)
	var approvals []hitl.Approval
	if s.cfg.Approvals != nil {
		approvals, _, err = s.cfg.Approvals.List(ctx, &hitl.ListParams{WorkflowID: info.WorkflowID, Limit: 500})
		if err != nil {
			s.internal(w, r, err)
			return
		}
	}
	var last int64
	if n := len(h.Events); n > 0 {
		last = h.Events[n-1].ID
	}
	s.render(w, r, http.StatusOK, "run", pageData{Title: "Run " + run.RunID, Nav: "runs", Data: map[string]any{
		"Run": run, "Rows": rows, "Usage": usage, "Approvals": approvals, "LastEventID": last, "EventTypes": eventTypes,
		"CanCancel": PrincipalFrom(ctx).Has(ScopeTrigger),
	}})
}

func (s *Server) cancelRunForm(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r, sessionBinding(r)) {
		return
	}
	info, err := s.findRun(r.Context(), chi.URLParam(r, "id"))
	if errors.Is(err, durable.ErrRunNotFound) {
		s.errorPage(w, r, http.StatusNotFound, "No such run", "There is no run "+strconv.Quote(chi.URLParam(r, "id"))+".")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if _, err := s.cancel(r.Context(), info, "canceled from the run's page"); err != nil && !errors.Is(err, durable.ErrRunClosed) {
		s.internal(w, r, err)
		return
	}
	http.Redirect(w, r, "/ui/runs/"+url.PathEscape(info.WorkflowID), http.StatusSeeOther)
}

// --- approvals ---

func (s *Server) approvalsPageOr404(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Approvals == nil {
		s.errorPage(w, r, http.StatusNotFound, "No approvals", "This server has no approval service.")
		return false
	}
	return true
}

func (s *Server) inboxPage(w http.ResponseWriter, r *http.Request) {
	if !s.approvalsPageOr404(w, r) {
		return
	}
	p := PrincipalFrom(r.Context())
	all := r.URL.Query().Get("all") == "1"
	params := &hitl.ListParams{Reviewer: p.Subject, Status: hitl.StatusPending, Cursor: r.URL.Query().Get("cursor")}
	if all {
		params = &hitl.ListParams{Cursor: r.URL.Query().Get("cursor")}
	}
	list, next, err := s.cfg.Approvals.List(r.Context(), params)
	if errors.Is(err, hitl.ErrInvalidInput) {
		s.errorPage(w, r, http.StatusBadRequest, "Bad cursor", "That page link is not valid.")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	nextURL := ""
	if next != "" {
		nq := url.Values{"cursor": {next}}
		if all {
			nq.Set("all", "1")
		}
		nextURL = "/ui/approvals?" + nq.Encode()
	}
	s.render(w, r, http.StatusOK, "inbox", pageData{Title: "Approvals", Nav: "approvals", Data: map[string]any{
		"Approvals": list, "Next": nextURL, "All": all, "Groups": s.cfg.Approvals.Groups().Of(p.Subject),
	}})
}

// approvalPageData is the data of the approval page.
type approvalPageData struct {
	Approval    *hitl.Approval
	CanDecide   bool
	WhyNot      string
	Reviewer    string
	FormAction  string
	ViaLink     bool
	Notice      string
	NoticeClass string
}

func (s *Server) approvalPage(w http.ResponseWriter, r *http.Request) {
	if !s.approvalsPageOr404(w, r) {
		return
	}
	id := chi.URLParam(r, "id")
	a, err := s.cfg.Approvals.Get(r.Context(), id)
	if errors.Is(err, hitl.ErrNotFound) {
		s.errorPage(w, r, http.StatusNotFound, "No such approval", "There is no approval "+strconv.Quote(id)+".")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	d := approvalPageData{Approval: a, FormAction: "/ui/approvals/" + url.PathEscape(a.ID) + "/decision"}
	if r.URL.Query().Get("decided") == "1" {
		d.Notice, d.NoticeClass = "Your decision was recorded.", "ok"
	}
	s.fillDecide(&d, PrincipalFrom(r.Context()))
	s.render(w, r, http.StatusOK, "approval", pageData{Title: a.Title, Nav: "approvals", Data: d})
}

func (s *Server) fillDecide(d *approvalPageData, p *Principal) {
	if !p.Has(ScopeReview) {
		d.WhyNot = "Your key cannot decide approvals (it lacks the review scope)."
		return
	}
	if err := s.cfg.Approvals.CanDecide(d.Approval, p.Subject); err != nil {
		d.WhyNot = "You cannot decide: " + whyNot(err) + "."
		return
	}
	d.CanDecide = true
}

// formDecision reads the decision form.
func formDecision(r *http.Request) (DecisionParams, *Problem) {
	p := DecisionParams{
		Decision: r.PostFormValue("decision"),
		Comment:  r.PostFormValue("comment"),
		ArgsHash: r.PostFormValue("args_hash"),
	}
	return p, p.validate()
}

func (s *Server) decideForm(w http.ResponseWriter, r *http.Request) {
	if !s.approvalsPageOr404(w, r) {
		return
	}
	if !s.parseForm(w, r, sessionBinding(r)) {
		return
	}
	id := chi.URLParam(r, "id")
	p := PrincipalFrom(r.Context())
	params, prob := formDecision(r)
	if prob == nil {
		_, err := s.decide(r.Context(), id, p.Subject, params, "", "page")
		if err == nil {
			http.Redirect(w, r, "/ui/approvals/"+url.PathEscape(id)+"?decided=1", http.StatusSeeOther)
			return
		}
		if prob = approvalProblem(err); prob == nil {
			s.internal(w, r, err)
			return
		}
	}
	a, err := s.cfg.Approvals.Get(r.Context(), id)
	if err != nil {
		s.errorPage(w, r, prob.Status, "Decision refused", prob.Detail)
		return
	}
	d := approvalPageData{Approval: a, FormAction: "/ui/approvals/" + url.PathEscape(a.ID) + "/decision",
		Notice: "Your decision was not recorded: " + prob.Detail, NoticeClass: "bad"}
	s.fillDecide(&d, p)
	s.render(w, r, prob.Status, "approval", pageData{Title: a.Title, Nav: "approvals", Data: d})
}

// --- review links ---

// reviewPage shows the approval a signed review link is for. It never
// decides: mail scanners and link previews fetch links, so only the form's
// POST does.
func (s *Server) reviewPage(w http.ResponseWriter, r *http.Request) {
	if !s.approvalsPageOr404(w, r) {
		return
	}
	token := chi.URLParam(r, "token")
	w.Header().Set("X-Robots-Tag", "noindex, nofollow")
	claims, err := s.cfg.Approvals.CheckLink(r.Context(), token)
	if err != nil {
		s.linkError(w, r, err)
		return
	}
	a, err := s.cfg.Approvals.Get(r.Context(), claims.ApprovalID)
	if err != nil {
		s.linkError(w, r, err)
		return
	}
	d := approvalPageData{Approval: a, ViaLink: true, Reviewer: claims.Reviewer, FormAction: "/review/" + token}
	if err := s.cfg.Approvals.CanDecide(a, claims.Reviewer); err != nil {
		d.WhyNot = "You cannot decide: " + whyNot(err) + "."
	} else {
		d.CanDecide = true
		d.Notice, d.NoticeClass = "This link lets "+claims.Reviewer+" decide once, until "+claims.ExpiresAt.Format("2006-01-02 15:04 MST")+".", "warn"
	}
	s.render(w, r, http.StatusOK, "approval", pageData{Title: a.Title, Principal: &Principal{Subject: claims.Reviewer, Via: "link"},
		CSRF: s.csrfToken("link|" + token), Data: d})
}

func (s *Server) reviewDecide(w http.ResponseWriter, r *http.Request) {
	if !s.approvalsPageOr404(w, r) {
		return
	}
	token := chi.URLParam(r, "token")
	w.Header().Set("X-Robots-Tag", "noindex, nofollow")
	if !s.parseForm(w, r, "link|"+token) {
		return
	}
	claims, err := s.cfg.Approvals.CheckLink(r.Context(), token)
	if err != nil {
		s.linkError(w, r, err)
		return
	}
	params, prob := formDecision(r)
	var a *hitl.Approval
	var decideErr error
	if prob == nil {
		a, decideErr = s.decide(r.Context(), claims.ApprovalID, claims.Reviewer, params, token, "link")
		if decideErr != nil {
			if prob = approvalProblem(decideErr); prob == nil {
				s.internal(w, r, decideErr)
				return
			}
		}
	}
	status := http.StatusOK
	d := approvalPageData{ViaLink: true, Reviewer: claims.Reviewer}
	if prob != nil {
		status = prob.Status
		d.Notice, d.NoticeClass = "Your decision was not recorded: "+prob.Detail, "bad"
		if a, err = s.cfg.Approvals.Get(r.Context(), claims.ApprovalID); err != nil {
			s.linkError(w, r, err)
			return
		}
		if decideErr == nil || errors.Is(decideErr, hitl.ErrArgsMismatch) {
			// The link is still unused: let the reviewer try again.
			d.FormAction = "/review/" + token
			d.CanDecide = s.cfg.Approvals.CanDecide(a, claims.Reviewer) == nil
		}
	} else {
		d.Notice, d.NoticeClass = "Your decision was recorded. This link cannot be used again.", "ok"
	}
	d.Approval = a
	s.render(w, r, status, "approval", pageData{Title: a.Title, Principal: &Principal{Subject: claims.Reviewer, Via: "link"},
		CSRF: s.csrfToken("link|" + token), Data: d})
}

func (s *Server) linkError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, hitl.ErrLinkUsed):
		s.errorPage(w, r, http.StatusConflict, "Link already used", "A decision was already made with this link. Each review link decides once.")
	case errors.Is(err, hitl.ErrLinkExpired):
		s.errorPage(w, r, http.StatusGone, "Link expired", "This review link has expired. Ask for a new one, or sign in to decide.")
	case errors.Is(err, hitl.ErrInvalidLink):
		s.errorPage(w, r, http.StatusForbidden, "Invalid link", "This review link is not valid. Check that it was copied whole.")
	case errors.Is(err, hitl.ErrNotFound):
		s.errorPage(w, r, http.StatusNotFound, "No such approval", "The approval this link is for does not exist any more.")
	default:
		s.internal(w, r, err)
	}
}

// --- helpers ---

// prettyJSON indents JSON for people; anything else is shown as is.
func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		return d.Round(time.Second).String()
	default:
		d = d.Round(time.Minute)
		h, m := int64(d/time.Hour), int64(d%time.Hour/time.Minute)
		if m == 0 {
			return strconv.FormatInt(h, 10) + "h"
		}
		return strconv.FormatInt(h, 10) + "h" + strconv.FormatInt(m, 10) + "m"
	}
}
