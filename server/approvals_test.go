package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/internal/hitltest"
	"github.com/keelhq/keel/server"
)

// pendingApproval triggers the approver agent and waits for its approval.
func (b *testBundle) pendingApproval(t *testing.T, runID, key string) hitl.Approval {
	t.Helper()
	r := b.do(t, "POST", "/v1/agents/approver/runs", map[string]any{"run_id": runID}, key)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	var a hitl.Approval
	require.Eventually(t, func() bool {
		list, _, err := b.approvals.List(context.Background(), &hitl.ListParams{WorkflowID: runID})
		require.NoError(t, err)
		if len(list) == 1 {
			a = list[0]
			return true
		}
		return false
	}, 10*time.Second, 20*time.Millisecond)
	return a
}

func (b *testBundle) approval(t *testing.T, id string) *hitl.Approval {
	t.Helper()
	a, err := b.approvals.Get(context.Background(), id)
	require.NoError(t, err)
	return a
}

func TestApprovalsAPI(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, be backend) {
		b := setup(t, setupOpts{backend: be, keys: true, approvals: true})
		sch := newSchemas(t)
		fred := b.newKey(t, "fred", server.ScopeReview)
		fiona := b.newKey(t, "fiona", server.ScopeReview)
		requester := b.newKey(t, "support-agent", server.ScopeReview)
		outsider := b.newKey(t, "olga", server.ScopeReview)
		read := b.newKey(t, "dashboard", server.ScopeRead)
		a := b.pendingApproval(t, "refund-1", b.admin)

		// Fred's queue has it; Olga's (in no group) does not.
		r := b.do(t, "GET", "/v1/approvals", nil, fred)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		sch.check(t, "ApprovalList", r.Body)
		var list server.ApprovalList
		r.decode(t, &list)
		require.Len(t, list.Approvals, 1)
		require.Equal(t, a.ID, list.Approvals[0].ID)
		r = b.do(t, "GET", "/v1/approvals", nil, outsider)
		r.decode(t, &list)
		require.Empty(t, list.Approvals)
		r = b.do(t, "GET", "/v1/approvals?all=true&status=pending", nil, read)
		r.decode(t, &list)
		require.Len(t, list.Approvals, 1)
		r = b.do(t, "GET", "/v1/runs/refund-1/approvals", nil, read)
		require.Equal(t, http.StatusOK, r.Status)
		r.decode(t, &list)
		require.Len(t, list.Approvals, 1)

		r = b.do(t, "GET", "/v1/approvals/"+a.ID, nil, fred)
		require.Equal(t, http.StatusOK, r.Status)
		sch.check(t, "ApprovalView", r.Body)
		var v server.ApprovalView
		r.decode(t, &v)
		require.True(t, v.CanDecide)
		require.Equal(t, "refund", v.Action)
		require.JSONEq(t, `{"amount":42,"order":"A-17"}`, string(v.Args))
		r = b.do(t, "GET", "/v1/approvals/"+a.ID, nil, outsider)
		r.decode(t, &v)
		require.False(t, v.CanDecide)
		require.Contains(t, v.CannotDecide, "not a member")

		decide := func(key string, body map[string]any) response {
			return b.do(t, "POST", "/v1/approvals/"+a.ID+"/decision", body, key)
		}
		refused := []struct {
			key    string
			body   map[string]any
			status int
			code   string
		}{
			{read, map[string]any{"decision": "approve", "args_hash": a.ArgsHash}, 403, server.CodeForbidden},
			{requester, map[string]any{"decision": "approve", "args_hash": a.ArgsHash}, 403, server.CodeSelfApproval},
			{outsider, map[string]any{"decision": "approve", "args_hash": a.ArgsHash}, 403, server.CodeNotInGroup},
			{fred, map[string]any{"decision": "approve", "args_hash": strings.Repeat("0", 64)}, 409, server.CodeArgsMismatch},
		}
		for _, c := range refused {
			r := decide(c.key, c.body)
			require.Equal(t, c.status, r.Status, string(r.Body))
			require.Equal(t, c.code, r.problem(t).Code)
		}
		// Input the approval service refuses names its field.
		big := json.RawMessage(`[` + strings.Repeat(`0,`, hitl.MaxEditedArgsBytes/2) + `0]`)
		r = decide(fred, map[string]any{"decision": "approve", "args_hash": a.ArgsHash, "edited_args": big})
		require.Equal(t, http.StatusBadRequest, r.Status, string(r.Body))
		prob := r.problem(t)
		require.Equal(t, server.CodeInvalidField, prob.Code)
		require.Equal(t, []server.FieldError{{Field: "edited_args", Detail: fmt.Sprintf("longer than %d bytes", hitl.MaxEditedArgsBytes)}}, prob.Errors)
		require.Equal(t, hitl.StatusPending, b.approval(t, a.ID).Status)
		require.Empty(t, b.approval(t, a.ID).Votes, "refused decisions change nothing")

		r = decide(fred, map[string]any{"decision": "approve", "args_hash": a.ArgsHash, "comment": "Carrier confirmed the loss."})
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		sch.check(t, "ApprovalView", r.Body)
		r.decode(t, &v)
		require.Equal(t, hitl.StatusApproved, v.Status)
		require.Equal(t, "fred", v.Votes[0].Reviewer)

		r = decide(fred, map[string]any{"decision": "reject", "args_hash": a.ArgsHash})
		require.Equal(t, http.StatusConflict, r.Status)
		require.Equal(t, server.CodeAlreadyVoted, r.problem(t).Code)
		r = decide(fiona, map[string]any{"decision": "reject", "args_hash": a.ArgsHash})
		require.Equal(t, http.StatusConflict, r.Status)
		require.Equal(t, server.CodeApprovalClosed, r.problem(t).Code)

		// The run gets the decision, and its history records who decided.
		done := b.waitRun(t, "refund-1", read, closed)
		require.Equal(t, "completed", done.Status)
		var d hitl.Decision
		require.NoError(t, json.Unmarshal(done.Result, &d))
		require.True(t, d.Approved())
		require.Equal(t, []string{"fred"}, d.DecidedBy)
		require.Equal(t, 1, count(b.eventTypes(t, "refund-1", read), durable.EventSignalReceived))

		// The metrics count the decision.
		r = b.do(t, "GET", "/metrics", nil, read)
		require.Contains(t, string(r.Body), `keel_approval_decisions_total{decision="approve",via="api"} 1`)
	})
}

// client is a browser-like client: a cookie jar, no redirects followed.
type client struct {
	t    *testing.T
	b    *testBundle
	http *http.Client
}

func newClient(t *testing.T, b *testBundle) *client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &client{t: t, b: b, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// get fetches a page.
func (c *client) get(path string) response {
	return c.send("GET", path, nil)
}

// post posts a form the way a browser on this server's page would,
// unless hdr overrides Origin and Sec-Fetch-Site.
func (c *client) post(path string, form url.Values, hdr ...string) response {
	h := map[string]string{"Origin": c.b.ts.URL, "Sec-Fetch-Site": "same-origin"}
	for i := 0; i+1 < len(hdr); i += 2 {
		h[hdr[i]] = hdr[i+1]
	}
	return c.send("POST", path, strings.NewReader(form.Encode()), h)
}

func (c *client) send(method, path string, body io.Reader, hdrs ...map[string]string) response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.b.ts.URL+path, body)
	require.NoError(c.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, h := range hdrs {
		for k, v := range h {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.http.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// login signs in with key.
func (c *client) login(key string) {
	c.t.Helper()
	csrf := csrfOf(c.t, c.get("/ui/login").Body)
	r := c.post("/ui/login", url.Values{"csrf_token": {csrf}, "key": {key}})
	require.Equal(c.t, http.StatusSeeOther, r.Status, string(r.Body))
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrfOf(t *testing.T, page []byte) string {
	t.Helper()
	m := csrfRE.FindSubmatch(page)
	require.NotNil(t, m, "no CSRF token in %s", page)
	return html.UnescapeString(string(m[1]))
}

// A review link: GET and HEAD only show the approval; a POST with the
// form's CSRF token decides, once; cross-origin posts are refused.
func TestReviewLink(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{keys: true, approvals: true})
	a := b.pendingApproval(t, "refund-link", b.admin)
	token := hitltest.SignLink(t, b.approvals, a.ID, "fred", time.Hour)
	c := newClient(t, b) // no session: the link is the credential
	path := "/review/" + token

	for range 3 { // mail scanners fetch links, some repeatedly
		r := c.get(path)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		page := string(r.Body)
		require.Contains(t, page, "Refund order A-17")
		require.Contains(t, page, `id="approval-args"`)
		require.Contains(t, page, "&#34;amount&#34;: 42")
		require.Contains(t, page, "The parcel was lost in transit.")
		require.Contains(t, page, `value="`+a.ArgsHash+`"`)
		require.Contains(t, page, `id="approve"`)
		require.Equal(t, "no-referrer", r.Header.Get("Referrer-Policy"))
		r = c.send("HEAD", path, nil)
		require.Equal(t, http.StatusOK, r.Status)
		require.Empty(t, r.Body)
	}
	require.Equal(t, hitl.StatusPending, b.approval(t, a.ID).Status)
	require.Empty(t, b.approval(t, a.ID).Votes, "GET and HEAD never decide")

	csrf := csrfOf(t, c.get(path).Body)
	form := url.Values{"csrf_token": {csrf}, "decision": {"reject"}, "args_hash": {a.ArgsHash}, "comment": {"Not without a carrier report."}}
	noToken := url.Values{"decision": {"reject"}, "args_hash": {a.ArgsHash}}
	require.Equal(t, http.StatusForbidden, c.post(path, noToken).Status)
	require.Equal(t, http.StatusForbidden, c.post(path, form, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site").Status)
	require.Equal(t, http.StatusForbidden, c.post(path, form, "Sec-Fetch-Site", "", "Origin", "https://evil.example").Status)
	require.Empty(t, b.approval(t, a.ID).Votes, "refused posts change nothing")
	forged := []byte(token)
	forged[len(forged)/2] ^= 1
	require.Equal(t, http.StatusForbidden, c.get("/review/"+string(forged)).Status)

	r := c.post(path, form)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Contains(t, string(r.Body), "Your decision was recorded")
	got := b.approval(t, a.ID)
	require.Equal(t, hitl.StatusRejected, got.Status)
	require.Len(t, got.Votes, 1)
	require.Equal(t, "fred", got.Votes[0].Reviewer)
	require.True(t, got.Votes[0].ViaLink)
	require.Equal(t, "Not without a carrier report.", got.Votes[0].Comment)

	// The link decides once.
	r = c.post(path, url.Values{"csrf_token": {csrf}, "decision": {"approve"}, "args_hash": {a.ArgsHash}})
	require.Equal(t, http.StatusConflict, r.Status)
	require.Equal(t, http.StatusConflict, c.get(path).Status)
	require.Len(t, b.approval(t, a.ID).Votes, 1)

	done := b.waitRun(t, "refund-link", b.admin, closed)
	var d hitl.Decision
	require.NoError(t, json.Unmarshal(done.Result, &d))
	require.Equal(t, hitl.StatusRejected, d.Status)
	require.Equal(t, []string{"fred"}, d.DecidedBy)
}

// Pages: sign in with a key, decide from the approval page; posts without
// the form's CSRF token or from another origin are refused.
func TestPagesSessionAndCSRF(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{keys: true, approvals: true})
	fred := b.newKey(t, "fred", server.ScopeReview)
	a := b.pendingApproval(t, "refund-page", b.admin)
	c := newClient(t, b)

	// Pages send people to the sign-in page.
	r := c.get("/ui/approvals")
	require.Equal(t, http.StatusSeeOther, r.Status)
	require.Equal(t, "/ui/login?next=%2Fui%2Fapprovals", r.Header.Get("Location"))

	r = c.get("/ui/login?next=/ui/approvals")
	require.Equal(t, http.StatusOK, r.Status)
	csrf := csrfOf(t, r.Body)
	require.Equal(t, http.StatusForbidden, c.post("/ui/login", url.Values{"key": {fred}, "next": {"/ui/approvals"}}).Status)
	require.Equal(t, http.StatusUnauthorized, c.post("/ui/login", url.Values{"csrf_token": {csrf}, "key": {"keel_0123456789abcdef_no"}}).Status)
	r = c.post("/ui/login", url.Values{"csrf_token": {csrf}, "key": {fred}, "next": {"https://evil.example/"}})
	require.Equal(t, http.StatusSeeOther, r.Status)
	require.Equal(t, "/ui/runs", r.Header.Get("Location"), "next stays on this server")

	r = c.get("/ui/approvals")
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, string(r.Body), `id="approval-`+a.ID+`"`)
	require.Contains(t, string(r.Body), `<b id="subject">fred</b>`)

	page := c.get("/ui/approvals/" + a.ID)
	require.Equal(t, http.StatusOK, page.Status)
	require.Contains(t, string(page.Body), `id="decision-form"`)
	csrf = csrfOf(t, page.Body)
	decide := "/ui/approvals/" + a.ID + "/decision"
	form := url.Values{"csrf_token": {csrf}, "decision": {"approve"}, "args_hash": {a.ArgsHash}, "comment": {"ok"}}

	require.Equal(t, http.StatusForbidden, c.post(decide, url.Values{"decision": {"approve"}, "args_hash": {a.ArgsHash}}).Status)
	require.Equal(t, http.StatusForbidden, c.post(decide, url.Values{"csrf_token": {"forged"}, "decision": {"approve"}, "args_hash": {a.ArgsHash}}).Status)
	require.Equal(t, http.StatusForbidden, c.post(decide, form, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site").Status)
	// Another session's token does not work in this one.
	other := newClient(t, b)
	other.login(b.newKey(t, "fiona", server.ScopeReview))
	otherCSRF := csrfOf(t, other.get("/ui/approvals/"+a.ID).Body)
	require.NotEqual(t, csrf, otherCSRF)
	require.Equal(t, http.StatusForbidden, c.post(decide, url.Values{"csrf_token": {otherCSRF}, "decision": {"approve"}, "args_hash": {a.ArgsHash}}).Status)
	require.Empty(t, b.approval(t, a.ID).Votes, "refused posts change nothing")

	// A wrong arguments hash is refused and shown.
	r = c.post(decide, url.Values{"csrf_token": {csrf}, "decision": {"approve"}, "args_hash": {strings.Repeat("0", 64)}})
	require.Equal(t, http.StatusConflict, r.Status)
	require.Contains(t, string(r.Body), "not recorded")

	r = c.post(decide, form)
	require.Equal(t, http.StatusSeeOther, r.Status, string(r.Body))
	require.Equal(t, hitl.StatusApproved, b.approval(t, a.ID).Status)
	r = c.get(r.Header.Get("Location"))
	require.Contains(t, string(r.Body), "Your decision was recorded")

	// The run's timeline shows the decision.
	b.waitRun(t, "refund-page", b.admin, closed)
	r = c.get("/ui/runs/refund-page")
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, string(r.Body), `<div class="vote"><b>fred</b>`)

	// The API refuses cross-origin browser posts, whatever the key.
	before := b.runCount(t)
	r = b.do(t, "POST", "/v1/agents/echo/runs", map[string]any{}, b.admin, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")
	require.Equal(t, http.StatusForbidden, r.Status)
	require.Equal(t, server.CodeCrossOrigin, r.problem(t).Code)
	require.Equal(t, before, b.runCount(t))

	// Signing out ends the session.
	r = c.get("/ui/runs")
	require.Equal(t, http.StatusOK, r.Status)
	require.Equal(t, http.StatusSeeOther, c.post("/ui/logout", url.Values{"csrf_token": {csrfOf(t, r.Body)}}).Status)
	require.Equal(t, http.StatusSeeOther, c.get("/ui/runs").Status)
}
