package security_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/internal/hitltest"
	"github.com/keelhq/keel/server"
)

// TestSecurityBrowser attacks the pages for people: forms without their
// CSRF token, sessions that are forged, expired or revoked, and the
// cookies' flags.
func TestSecurityBrowser(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, be backend) {
		b := setup(t, setupOpts{backend: be})
		runThreats(t, b, browserThreats)
	})
}

var browserThreats = []threat{
	{"CSRF token missing on the approval form", func(t *testing.T, b *bundle) {
		a := b.requestRefund(t, "csrf-missing", refund{Order: "C-1", Amount: 10})
		fred := b.signIn(t, b.newKey(t, "fred", server.ScopeReview))
		csrf := csrfOf(t, fred.get("/ui/approvals/"+a.ID).Body)
		path := "/ui/approvals/" + a.ID + "/decision"

		r := fred.post(path, url.Values{"decision": {"approve"}, "args_hash": {a.ArgsHash}})
		require.Equal(t, http.StatusForbidden, r.Status)
		require.Contains(t, string(r.Body), "security token")
		r = fred.post(path, url.Values{"csrf_token": {""}, "decision": {"approve"}, "args_hash": {a.ArgsHash}})
		require.Equal(t, http.StatusForbidden, r.Status)
		b.requireUntouched(t, a.ID)

		// With its token the same form decides.
		r = fred.post(path, url.Values{"csrf_token": {csrf}, "decision": {"approve"}, "args_hash": {a.ArgsHash}})
		require.Equal(t, http.StatusSeeOther, r.Status, string(r.Body))
		require.Equal(t, hitl.StatusApproved, b.approval(t, a.ID).Status)
	}},

	{"CSRF token wrong on the approval form", func(t *testing.T, b *bundle) {
		a := b.requestRefund(t, "csrf-wrong", refund{Order: "C-2", Amount: 10})
		fred := b.signIn(t, b.newKey(t, "fred", server.ScopeReview))
		csrf := csrfOf(t, fred.get("/ui/approvals/"+a.ID).Body)
		fiona := b.signIn(t, b.newKey(t, "fiona", server.ScopeReview))
		otherSession := csrfOf(t, fiona.get("/ui/approvals/"+a.ID).Body)
		loginPage := csrfOf(t, fred.get("/ui/login").Body)
		link := hitltest.SignLink(t, b.approvals, a.ID, "fred", time.Hour)
		linkPage := csrfOf(t, fred.get("/review/"+link).Body)
		path := "/ui/approvals/" + a.ID + "/decision"

		for name, token := range map[string]string{
			"forged":               "forged",
			"truncated":            csrf[:len(csrf)-1],
			"altered":              flipLast(csrf),
			"another session's":    otherSession,
			"the sign-in page's":   loginPage,
			"a review link page's": linkPage,
		} {
			require.NotEqual(t, csrf, token, name)
			r := fred.post(path, url.Values{"csrf_token": {token}, "decision": {"approve"}, "args_hash": {a.ArgsHash}})
			require.Equal(t, http.StatusForbidden, r.Status, "%s token", name)
		}
		b.requireUntouched(t, a.ID)

		r := fred.post(path, url.Values{"csrf_token": {csrf}, "decision": {"reject"}, "args_hash": {a.ArgsHash}})
		require.Equal(t, http.StatusSeeOther, r.Status, string(r.Body))
		require.Equal(t, hitl.StatusRejected, b.approval(t, a.ID).Status)
	}},

	{"CSRF token missing or wrong on a review link", func(t *testing.T, b *bundle) {
		a := b.requestRefund(t, "csrf-link", refund{Order: "C-3", Amount: 10})
		link := "/review/" + hitltest.SignLink(t, b.approvals, a.ID, "fred", time.Hour)
		other := "/review/" + hitltest.SignLink(t, b.approvals, a.ID, "fiona", time.Hour)
		c := b.browser(t) // no session: the link is the credential
		csrf := csrfOf(t, c.get(link).Body)
		otherCSRF := csrfOf(t, c.get(other).Body)
		require.NotEqual(t, csrf, otherCSRF, "each link's form has its own token")

		for _, form := range []url.Values{
			{"decision": {"approve"}, "args_hash": {a.ArgsHash}},
			{"csrf_token": {"forged"}, "decision": {"approve"}, "args_hash": {a.ArgsHash}},
			{"csrf_token": {otherCSRF}, "decision": {"approve"}, "args_hash": {a.ArgsHash}},
		} {
			r := c.post(link, form)
			require.Equal(t, http.StatusForbidden, r.Status, "%v", form)
		}
		b.requireUntouched(t, a.ID)

		r := c.post(link, url.Values{"csrf_token": {csrf}, "decision": {"approve"}, "args_hash": {a.ArgsHash}})
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		require.Equal(t, hitl.StatusApproved, b.approval(t, a.ID).Status)
	}},

	{"cross-origin form post", func(t *testing.T, b *bundle) {
		a := b.requestRefund(t, "cross-origin", refund{Order: "C-4", Amount: 10})
		fred := b.signIn(t, b.newKey(t, "fred", server.ScopeReview))
		csrf := csrfOf(t, fred.get("/ui/approvals/"+a.ID).Body)
		form := url.Values{"csrf_token": {csrf}, "decision": {"approve"}, "args_hash": {a.ArgsHash}}
		path := "/ui/approvals/" + a.ID + "/decision"
		for _, hdr := range [][]string{
			{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"},
			{"Origin", "https://evil.example", "Sec-Fetch-Site", ""},
		} {
			r := fred.post(path, form, hdr...)
			require.Equal(t, http.StatusForbidden, r.Status, "%v", hdr)
		}
		b.requireUntouched(t, a.ID)
	}},

	{"session cookie cannot write through the API", func(t *testing.T, b *bundle) {
		a := b.requestRefund(t, "cookie-api", refund{Order: "C-5", Amount: 10})
		fred := b.signIn(t, b.newKey(t, "fred", server.ScopeReview))
		root := b.signIn(t, b.newKey(t, "root", server.ScopeAdmin))
		same := []string{"Origin", b.ts.URL, "Sec-Fetch-Site", "same-origin"}

		path := "/v1/approvals/" + a.ID + "/decision"
		r := fred.api("POST", path, map[string]any{"decision": "approve", "args_hash": a.ArgsHash}, same...)
		require.Equal(t, http.StatusUnauthorized, r.Status)
		require.Equal(t, server.CodeUnauthorized, r.problem(t, path).Code)
		b.requireUntouched(t, a.ID)
		r = root.api("POST", "/v1/agents/echo/runs", trigger("cookie-trigger"), same...)
		require.Equal(t, http.StatusUnauthorized, r.Status)
		b.requireNoRun(t, "cookie-trigger")
		r = root.api("POST", "/v1/runs/cookie-api/cancel", map[string]any{}, same...)
		require.Equal(t, http.StatusUnauthorized, r.Status)
		// Sessions read.
		require.Equal(t, http.StatusOK, root.api("GET", "/v1/runs", nil).Status)
		info, err := b.e.Describe(t.Context(), "cookie-api")
		require.NoError(t, err)
		require.Equal(t, durable.StatusRunning, info.Status)
		require.False(t, info.CancelRequested, "the run was not asked to cancel")
	}},

	{"read-only session cannot decide", func(t *testing.T, b *bundle) {
		a := b.requestRefund(t, "read-session", refund{Order: "C-6", Amount: 10})
		fred := b.signIn(t, b.newKey(t, "fred", server.ScopeRead)) // a member, but the key cannot review
		page := fred.get("/ui/approvals/" + a.ID)
		require.Equal(t, http.StatusOK, page.Status)
		require.NotContains(t, string(page.Body), `id="decision-form"`)
		csrf := csrfOf(t, page.Body) // the sign-out form's, bound to this session
		r := fred.post("/ui/approvals/"+a.ID+"/decision", url.Values{"csrf_token": {csrf}, "decision": {"approve"}, "args_hash": {a.ArgsHash}})
		require.Equal(t, http.StatusForbidden, r.Status)
		b.requireUntouched(t, a.ID)
	}},

	{"session cookie flags", func(t *testing.T, b *bundle) {
		key := b.newKey(t, "fred", server.ScopeReview)
		// Plain HTTP on loopback: no Secure flag, so the cookie works.
		c := b.browser(t)
		login := setCookies(c.get("/ui/login"))["keel_login"]
		require.NotNil(t, login)
		require.True(t, login.HttpOnly)
		require.Equal(t, http.SameSiteStrictMode, login.SameSite)
		require.Equal(t, "/ui/login", login.Path)
		require.False(t, login.Secure)
		session := setCookies(c.login(key))["keel_session"]
		requireSessionCookie(t, session, key, false)

		// HTTPS: Secure.
		_, tlsServer := b.serve(t, true, nil)
		c = newBrowser(t, tlsServer)
		require.True(t, setCookies(c.get("/ui/login"))["keel_login"].Secure)
		requireSessionCookie(t, setCookies(c.login(key))["keel_session"], key, true)
		require.Equal(t, http.StatusOK, c.get("/ui/runs").Status, "the secure session works over HTTPS")

		// Plain HTTP behind a proxy that serves BaseURL over HTTPS: Secure.
		_, proxied := b.serve(t, false, func(c *server.Config) { c.BaseURL = "https://keel.example.com" })
		r := request(t, proxied, "GET", "/ui/login", nil)
		login = setCookies(r)["keel_login"]
		require.True(t, login.Secure)
		form := url.Values{"csrf_token": {csrfOf(t, r.Body)}, "key": {key}}
		req, err := http.NewRequest("POST", proxied.URL+"/ui/login", strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.AddCookie(&http.Cookie{Name: login.Name, Value: login.Value})
		r = send(t, noRedirects(proxied.Client()), req)
		require.Equal(t, http.StatusSeeOther, r.Status, string(r.Body))
		requireSessionCookie(t, setCookies(r)["keel_session"], key, true)
	}},

	{"forged session cookie", func(t *testing.T, b *bundle) {
		read := b.signIn(t, b.newKey(t, "dashboard", server.ScopeRead))
		session := read.cookie("keel_session")
		require.NotNil(t, session)
		parts := strings.Split(session.Value, ".")
		require.Len(t, parts, 3)
		require.Equal(t, http.StatusOK, withSession(t, b, session.Value, "/ui/runs").Status, "the genuine cookie works")

		for name, v := range map[string]string{
			"another key's ID":   keyID(b.admin) + "." + parts[1] + "." + parts[2],
			"a later expiry":     parts[0] + "." + strconv.FormatInt(time.Now().Add(24*365*time.Hour).Unix(), 10) + "." + parts[2],
			"an altered MAC":     parts[0] + "." + parts[1] + "." + flipLast(parts[2]),
			"no MAC":             parts[0] + "." + parts[1] + ".",
			"garbage":            "x.y.z",
			"the key itself":     b.admin,
			"an unsigned key ID": keyID(b.admin),
		} {
			r := withSession(t, b, v, "/ui/runs")
			require.Equal(t, http.StatusSeeOther, r.Status, name)
			require.True(t, strings.HasPrefix(r.Header.Get("Location"), "/ui/login"), name)
			r = withSession(t, b, v, "/v1/runs")
			require.Equal(t, http.StatusUnauthorized, r.Status, name)
		}
	}},

	{"expired session cookie", func(t *testing.T, b *bundle) {
		// A server whose session secret the test knows, so that it can
		// sign cookies as the server does.
		secret := bytes.Repeat([]byte("s"), 32)
		_, ts := b.serve(t, false, func(c *server.Config) { c.SessionSecret = secret })
		id := keyID(b.newKey(t, "dashboard", server.ScopeRead))
		cookie := func(exp time.Time) string {
			e := strconv.FormatInt(exp.Unix(), 10)
			m := hmac.New(sha256.New, secret)
			for _, p := range []string{"session", id, e} {
				m.Write([]byte(p))
				m.Write([]byte{0})
			}
			return id + "." + e + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
		}
		get := func(v, path string) response {
			return request(t, ts, "GET", path, nil, "Cookie", "keel_session="+v)
		}
		require.Equal(t, http.StatusOK, get(cookie(time.Now().Add(time.Hour)), "/ui/runs").Status,
			"a cookie signed as the server signs is accepted until it expires")
		expired := cookie(time.Now().Add(-time.Minute))
		r := get(expired, "/ui/runs")
		require.Equal(t, http.StatusSeeOther, r.Status)
		require.True(t, strings.HasPrefix(r.Header.Get("Location"), "/ui/login"))
		require.Equal(t, http.StatusUnauthorized, get(expired, "/v1/runs").Status)
	}},

	{"revoked key ends its sessions", func(t *testing.T, b *bundle) {
		a := b.requestRefund(t, "revoked-session", refund{Order: "C-7", Amount: 10})
		key := b.newKey(t, "fred", server.ScopeReview)
		fred := b.signIn(t, key)
		page := fred.get("/ui/approvals/" + a.ID)
		require.Equal(t, http.StatusOK, page.Status)
		csrf := csrfOf(t, page.Body)
		require.NoError(t, b.keys.Revoke(t.Context(), keyID(key)))

		r := fred.get("/ui/runs")
		require.Equal(t, http.StatusSeeOther, r.Status)
		require.Equal(t, http.StatusUnauthorized, fred.api("GET", "/v1/runs", nil).Status)
		r = fred.post("/ui/approvals/"+a.ID+"/decision", url.Values{"csrf_token": {csrf}, "decision": {"approve"}, "args_hash": {a.ArgsHash}})
		require.Equal(t, http.StatusUnauthorized, r.Status)
		b.requireUntouched(t, a.ID)
	}},

	{"sign-in form CSRF and redirect", func(t *testing.T, b *bundle) {
		key := b.newKey(t, "fred", server.ScopeReview)
		c := b.browser(t)
		csrf := csrfOf(t, c.get("/ui/login").Body)
		other := b.browser(t)
		otherCSRF := csrfOf(t, other.get("/ui/login").Body)

		for _, form := range []url.Values{
			{"key": {key}},
			{"csrf_token": {"forged"}, "key": {key}},
			{"csrf_token": {otherCSRF}, "key": {key}}, // another browser's sign-in form
		} {
			r := c.post("/ui/login", form)
			require.Equal(t, http.StatusForbidden, r.Status)
			require.Nil(t, setCookies(r)["keel_session"], "no session")
		}
		require.Nil(t, c.cookie("keel_session"))

		// After signing in, the browser stays on this server.
		for _, next := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"} {
			r := c.post("/ui/login", url.Values{"csrf_token": {csrf}, "key": {key}, "next": {next}})
			require.Equal(t, http.StatusSeeOther, r.Status)
			require.Equal(t, "/ui/runs", r.Header.Get("Location"), next)
		}
		r := c.post("/ui/login", url.Values{"csrf_token": {csrf}, "key": {key}, "next": {"/ui/approvals"}})
		require.Equal(t, "/ui/approvals", r.Header.Get("Location"))
	}},
}

// signIn returns a browser signed in with key.
func (b *bundle) signIn(t *testing.T, key string) *browser {
	t.Helper()
	c := b.browser(t)
	c.login(key)
	return c
}

// withSession fetches path with only the session cookie v.
func withSession(t *testing.T, b *bundle, v, path string) response {
	t.Helper()
	req, err := http.NewRequest("GET", b.ts.URL+path, nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: "keel_session", Value: v})
	return send(t, noRedirects(b.ts.Client()), req)
}

// requireSessionCookie checks a session cookie's flags, and that it does
// not hold the key.
func requireSessionCookie(t *testing.T, c *http.Cookie, key string, secure bool) {
	t.Helper()
	require.NotNil(t, c, "no session cookie")
	require.True(t, c.HttpOnly, "HttpOnly: scripts cannot read the session")
	require.Equal(t, http.SameSiteLaxMode, c.SameSite)
	require.Equal(t, "/", c.Path)
	require.Positive(t, c.MaxAge)
	require.Equal(t, secure, c.Secure)
	require.NotContains(t, c.Value, keySecret(key))
}

// flipLast changes the last character of s.
func flipLast(s string) string {
	if strings.HasSuffix(s, "A") {
		return s[:len(s)-1] + "B"
	}
	return s[:len(s)-1] + "A"
}
