package security_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/server"
)

// TestSecurityAPIAuth attacks the API's authentication: every request
// without a valid key of the right scope is refused with a problem
// response, and starts nothing.
func TestSecurityAPIAuth(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, be backend) {
		b := setup(t, setupOpts{backend: be})
		runThreats(t, b, authThreats)
	})
}

var authThreats = []threat{
	{"no key", func(t *testing.T, b *bundle) {
		r := b.do(t, "POST", "/v1/agents/echo/runs", trigger("no-key"), "")
		require.Equal(t, http.StatusUnauthorized, r.Status)
		require.Equal(t, server.CodeUnauthorized, r.problem(t, "/v1/agents/echo/runs").Code)
		require.Equal(t, `Bearer realm="keel"`, r.Header.Get("WWW-Authenticate"))
		b.requireNoRun(t, "no-key")
		for _, path := range []string{"/v1/runs", "/v1/agents", "/v1/approvals", "/v1/runs/x/events", "/metrics"} {
			r := b.do(t, "GET", path, nil, "")
			require.Equal(t, http.StatusUnauthorized, r.Status, path)
			require.Equal(t, server.CodeUnauthorized, r.problem(t, path).Code)
		}
	}},

	{"malformed Authorization header", func(t *testing.T, b *bundle) {
		key := b.newKey(t, "ci", server.ScopeTrigger)
		for i, h := range []string{
			"Basic dXNlcjpwYXNz",
			"Bearer",
			"Bearer ",
			"Bearer" + key, // no space
			"Token " + key,
			key, // no scheme
			"Bearer " + key + " " + key,
			"Bearer " + strings.TrimPrefix(key, "keel_"),
			"Bearer keel_" + strings.Repeat("g", 16) + "_" + keySecret(key), // ID not hex
			"Bearer keel_" + keyID(key),
			"Bearer keel_" + keyID(key) + "_",
			"Bearer keel_" + keyID(key) + "_" + strings.Repeat("A", 101), // secret too long
		} {
			id := "malformed-" + string(rune('a'+i))
			r := b.do(t, "POST", "/v1/agents/echo/runs", trigger(id), "", "Authorization", h)
			require.Equal(t, http.StatusUnauthorized, r.Status, "Authorization: %s", h)
			require.Equal(t, server.CodeUnauthorized, r.problem(t, "/v1/agents/echo/runs").Code)
			b.requireNoRun(t, id)
		}
		// A malformed header is not overlooked in favour of a valid
		// browser session.
		br := b.browser(t)
		br.login(key)
		require.Equal(t, http.StatusOK, br.api("GET", "/v1/runs", nil).Status, "the session reads")
		r := br.api("GET", "/v1/runs", nil, "Authorization", "Basic dXNlcjpwYXNz")
		require.Equal(t, http.StatusUnauthorized, r.Status)
		// The well-formed key works: the refusals above were for the header.
		r = b.do(t, "POST", "/v1/agents/echo/runs", trigger("malformed-control"), key)
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	}},

	{"unknown key", func(t *testing.T, b *bundle) {
		other := b.newKey(t, "other", server.ScopeAdmin)
		for i, key := range []string{
			"keel_0123456789abcdef_" + keySecret(other),       // unknown ID
			"keel_" + keyID(b.admin) + "_" + keySecret(other), // one key's ID, another's secret
		} {
			id := "unknown-" + string(rune('a'+i))
			r := b.do(t, "POST", "/v1/agents/echo/runs", trigger(id), key)
			require.Equal(t, http.StatusUnauthorized, r.Status)
			p := r.problem(t, "/v1/agents/echo/runs")
			require.Equal(t, server.CodeUnauthorized, p.Code)
			b.requireNoRun(t, id)
		}
	}},

	{"revoked key", func(t *testing.T, b *bundle) {
		key := b.newKey(t, "retired-ci", server.ScopeTrigger)
		require.Equal(t, http.StatusOK, b.do(t, "GET", "/v1/runs", nil, key).Status, "the key works before it is revoked")
		require.NoError(t, b.keys.Revoke(context.Background(), keyID(key)))

		r := b.do(t, "POST", "/v1/agents/echo/runs", trigger("revoked"), key)
		require.Equal(t, http.StatusUnauthorized, r.Status)
		revoked := r.problem(t, "/v1/agents/echo/runs")
		require.Equal(t, server.CodeUnauthorized, revoked.Code)
		b.requireNoRun(t, "revoked")
		require.Equal(t, http.StatusUnauthorized, b.do(t, "GET", "/v1/runs", nil, key).Status)

		// A revoked key is refused exactly as an unknown one: the response
		// does not tell an attacker that the key once existed.
		r = b.do(t, "POST", "/v1/agents/echo/runs", trigger("revoked"), "keel_0123456789abcdef_"+keySecret(key))
		requireSameProblem(t, r.problem(t, "/v1/agents/echo/runs"), revoked)
	}},

	{"read key triggers a run", func(t *testing.T, b *bundle) {
		read := b.newKey(t, "dashboard", server.ScopeRead)
		r := b.do(t, "POST", "/v1/agents/echo/runs", trigger("read-trigger"), read)
		require.Equal(t, http.StatusForbidden, r.Status)
		p := r.problem(t, "/v1/agents/echo/runs")
		require.Equal(t, server.CodeForbidden, p.Code)
		require.Contains(t, p.Detail, "trigger scope")
		b.requireNoRun(t, "read-trigger")

		// Nor may it signal, cancel or decide; a review key may not
		// trigger, and a trigger key may not decide.
		review := b.newKey(t, "fred", server.ScopeReview)
		trig := b.newKey(t, "ci", server.ScopeTrigger)
		for _, c := range []struct {
			key, path string
			body      any
		}{
			{read, "/v1/runs/x/signals/go", map[string]any{}},
			{read, "/v1/runs/x/cancel", map[string]any{}},
			{read, "/v1/approvals/x/decision", map[string]any{"decision": "approve", "args_hash": "h"}},
			{review, "/v1/agents/echo/runs", trigger("review-trigger")},
			{trig, "/v1/approvals/x/decision", map[string]any{"decision": "approve", "args_hash": "h"}},
		} {
			r := b.do(t, "POST", c.path, c.body, c.key)
			require.Equal(t, http.StatusForbidden, r.Status, c.path)
			require.Equal(t, server.CodeForbidden, r.problem(t, c.path).Code)
		}
		b.requireNoRun(t, "review-trigger")
		// The read key reads, and the trigger key triggers.
		require.Equal(t, http.StatusOK, b.do(t, "GET", "/v1/runs", nil, read).Status)
		r = b.do(t, "POST", "/v1/agents/echo/runs", trigger("trigger-control"), trig)
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	}},

	{"key hashed at rest", func(t *testing.T, b *bundle) {
		ctx := context.Background()
		key := b.newKey(t, "lena", server.ScopeReview)
		require.Equal(t, http.StatusOK, b.do(t, "GET", "/v1/runs", nil, key).Status)
		secret := keySecret(key)
		raw, err := base64.RawURLEncoding.DecodeString(secret)
		require.NoError(t, err)
		require.Len(t, raw, 32, "a key's secret is 32 random bytes")

		dump := b.dbase.dump(t)
		require.Contains(t, string(dump), keyID(key), "the dump reads the keys table")
		for _, form := range []string{key, secret, hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw),
			hex.EncodeToString([]byte(secret))} {
			require.False(t, bytes.Contains(dump, []byte(form)), "the database holds the key (%q)", form)
		}
		require.False(t, bytes.Contains(dump, raw), "the database holds the secret's bytes")

		// The row holds the SHA-256 of the secret, and nothing else that
		// depends on it.
		var hash string
		err = b.dbase.db.QueryRowContext(ctx, b.dbase.db.Rebind(`SELECT hash FROM keel_api_keys WHERE id = ?`), keyID(key)).Scan(&hash)
		require.NoError(t, err)
		sum := sha256.Sum256([]byte(secret))
		require.Equal(t, hex.EncodeToString(sum[:]), hash)
	}},

	{"constant-time comparison", func(t *testing.T, b *bundle) {
		key := b.newKey(t, "probe", server.ScopeAdmin)
		id, secret := keyID(key), keySecret(key)
		flip := func(s string, i int) string {
			c := []byte(s)
			if c[i] == 'A' {
				c[i] = 'B'
			} else {
				c[i] = 'A'
			}
			return string(c)
		}
		// Keys one guess away from the real one take the comparison path
		// for a known ID; an unknown ID takes the path that hashes and
		// compares anyway. All are refused with the same response, so
		// neither the answer nor its content tells how close a guess was.
		r := b.do(t, "GET", "/v1/runs", nil, "keel_fedcba9876543210_"+secret)
		require.Equal(t, http.StatusUnauthorized, r.Status)
		want := r.problem(t, "/v1/runs")
		for _, guess := range []string{
			flip(secret, 0),
			flip(secret, len(secret)-1),
			secret[:len(secret)-1],
			secret + "A",
			secret[:16],
		} {
			r := b.do(t, "GET", "/v1/runs", nil, "keel_"+id+"_"+guess)
			require.Equal(t, http.StatusUnauthorized, r.Status, guess)
			requireSameProblem(t, r.problem(t, "/v1/runs"), want)
		}
		require.Equal(t, http.StatusOK, b.do(t, "GET", "/v1/runs", nil, key).Status)

		// The comparisons themselves are constant-time: the secret's hash,
		// session cookies, CSRF tokens and review links are compared with
		// subtle.ConstantTimeCompare or hmac.Equal, never with == or
		// bytes.Equal.
		requireConstantTime(t, "../../server/keys.go", "Authenticate", "subtle.ConstantTimeCompare", 2)
		requireConstantTime(t, "../../server/auth.go", "verifySession", "hmac.Equal", 1)
		requireConstantTime(t, "../../server/auth.go", "checkCSRF", "hmac.Equal", 1)
		requireConstantTime(t, "../../hitl/links.go", "VerifyLink", "hmac.Equal", 1)
	}},

	{"loopback only without keys", func(t *testing.T, b *bundle) {
		keyless, local := b.serve(t, false, func(c *server.Config) { c.Keys = nil })
		// A client on another host: the request comes over real HTTP, and
		// the server sees the remote address a client elsewhere would have
		// (203.0.113.0/24 and 2001:db8::/32 are documentation ranges,
		// never contacted).
		for _, addr := range []string{"203.0.113.7:40000", "[2001:db8::7]:40000"} {
			remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r = r.Clone(r.Context())
				r.RemoteAddr = addr
				keyless.ServeHTTP(w, r)
			}))
			t.Cleanup(remote.Close)
			for i, hdr := range [][]string{
				nil,
				// Headers a client sets itself do not make it local.
				{"X-Forwarded-For", "127.0.0.1"},
				{"X-Real-Ip", "127.0.0.1"},
				{"Forwarded", "for=127.0.0.1"},
			} {
				id := "remote-" + string(rune('a'+i))
				for _, c := range []struct {
					method, path string
					body         any
				}{
					{"GET", "/v1/runs", nil},
					{"POST", "/v1/agents/echo/runs", trigger(id)},
				} {
					r := request(t, remote, c.method, c.path, c.body, hdr...)
					require.Equal(t, http.StatusForbidden, r.Status, "%s %s from %s %v", c.method, c.path, addr, hdr)
					p := r.problem(t, c.path)
					require.Equal(t, server.CodeForbidden, p.Code)
					require.Contains(t, p.Detail, "loopback")
				}
				require.Equal(t, http.StatusForbidden, request(t, remote, "GET", "/ui/runs", nil, hdr...).Status)
				b.requireNoRun(t, id)
			}
		}
		// A loopback client is served, with no key.
		r := request(t, local, "POST", "/v1/agents/echo/runs", trigger("loopback-control"))
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))

		// Such a server will not even listen elsewhere.
		require.ErrorIs(t, keyless.Serve(context.Background(), remoteListener{}), server.ErrNoKeys)
		for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
			require.ErrorIs(t, keyless.ListenAndServe(context.Background(), addr), server.ErrNoKeys, addr)
		}
	}},

	{"DNS rebinding without keys", func(t *testing.T, b *bundle) {
		// A page on attacker.example whose name the attacker points at
		// 127.0.0.1 reaches a loopback server from the victim's browser:
		// the connection is local and, to the browser, same-origin. A
		// server without keys must refuse requests not addressed to a
		// loopback name.
		_, local := b.serve(t, false, func(c *server.Config) { c.Keys = nil })
		u, err := url.Parse(local.URL)
		require.NoError(t, err)
		evil := "attacker.example:" + u.Port()
		rebound := []string{"Host", evil, "Origin", "http://" + evil, "Sec-Fetch-Site", "same-origin"}
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/v1/runs", nil},
			{"POST", "/v1/agents/echo/runs", trigger("rebound")},
		} {
			r := request(t, local, c.method, c.path, c.body, rebound...)
			require.Equal(t, http.StatusForbidden, r.Status, "%s %s: %s", c.method, c.path, r.Body)
			require.Equal(t, server.CodeForbidden, r.problem(t, c.path).Code)
		}
		require.Equal(t, http.StatusForbidden, request(t, local, "GET", "/ui/runs", nil, rebound...).Status)
		b.requireNoRun(t, "rebound")
		// Loopback names are served.
		for _, host := range []string{"localhost:" + u.Port(), "127.0.0.1:" + u.Port(), "[::1]:" + u.Port()} {
			r := request(t, local, "GET", "/v1/runs", nil, "Host", host)
			require.Equal(t, http.StatusOK, r.Status, host)
		}
	}},

	{"problem bodies leak nothing", func(t *testing.T, b *bundle) {
		read := b.newKey(t, "dashboard", server.ScopeRead)
		for _, c := range []struct {
			method, path, key string
			body              any
			status            int
			code              string
		}{
			{"POST", "/v1/agents/echo/runs", "", trigger("p1"), 401, server.CodeUnauthorized},
			{"GET", "/v1/runs", "keel_0123456789abcdef_nope", nil, 401, server.CodeUnauthorized},
			{"POST", "/v1/agents/echo/runs", read, trigger("p2"), 403, server.CodeForbidden},
			{"GET", "/v1/nope", b.admin, nil, 404, server.CodeNotFound},
			{"DELETE", "/v1/runs", b.admin, nil, 405, server.CodeMethodNotAllowed},
			{"POST", "/v1/agents/echo/runs", b.admin, `{"run_id": `, 400, server.CodeInvalidJSON},
			{"POST", "/v1/agents/echo/runs", b.admin, `{"run_id": "x", "admin": true}`, 400, server.CodeUnknownField},
			{"GET", "/v1/runs/no-such-run", b.admin, nil, 404, server.CodeRunNotFound},
			{"GET", "/v1/approvals/no-such-approval", b.admin, nil, 404, server.CodeApprovalNotFound},
		} {
			r := b.do(t, c.method, c.path, c.body, c.key)
			require.Equal(t, c.status, r.Status, "%s %s: %s", c.method, c.path, r.Body)
			require.Equal(t, c.code, r.problem(t, c.path).Code)
			requireNoLeak(t, r.Body)
		}

		// An internal error: the key store's database is gone. The client
		// gets a request ID, and the error stays in the server's log.
		db := b.dbase.other(t)
		keys, err := server.NewKeyStore(context.Background(), db)
		require.NoError(t, err)
		res, err := keys.Create(context.Background(), server.CreateKeyParams{Subject: "ops", Scopes: []server.Scope{server.ScopeRead}})
		require.NoError(t, err)
		require.NoError(t, db.Close())
		log := &logBuffer{}
		_, broken := b.serve(t, false, func(c *server.Config) { c.Keys = keys; c.Logger = log.logger() })

		r := request(t, broken, "GET", "/v1/runs", nil, "Authorization", "Bearer "+res.Secret)
		require.Equal(t, http.StatusInternalServerError, r.Status)
		p := r.problem(t, "/v1/runs")
		require.Equal(t, server.CodeInternal, p.Code)
		require.Equal(t, "internal error; see the server log for request "+p.RequestID, p.Detail)
		requireNoLeak(t, r.Body)
		require.Contains(t, log.String(), "database is closed", "the cause is logged")
		require.Contains(t, log.String(), p.RequestID)

		r = request(t, broken, "GET", "/readyz", nil)
		require.Equal(t, http.StatusServiceUnavailable, r.Status)
		require.Equal(t, server.CodeUnavailable, r.problem(t, "/readyz").Code)
		requireNoLeak(t, r.Body)
	}},

	{"keys never echoed or logged", func(t *testing.T, b *bundle) {
		key := b.newKey(t, "ci", server.ScopeTrigger)
		wrong := "keel_" + keyID(key) + "_" + strings.Repeat("Q", 43)
		r := b.do(t, "POST", "/v1/agents/echo/runs", trigger("logged-ok"), key)
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
		r = b.do(t, "POST", "/v1/agents/echo/runs", trigger("logged-wrong"), wrong)
		require.Equal(t, http.StatusUnauthorized, r.Status)
		require.NotContains(t, string(r.Body), "QQQQ", "the presented key is not echoed")
		br := b.browser(t)
		br.login(key)
		require.Equal(t, http.StatusOK, br.get("/ui/runs").Status)

		log := b.log.String()
		require.Contains(t, log, "run triggered", "the requests were logged")
		for _, k := range []string{key, keySecret(key), keySecret(b.admin), "QQQQ"} {
			require.NotContains(t, log, k, "the log holds a key")
		}
		session := br.cookie("keel_session")
		require.NotNil(t, session)
		require.NotContains(t, session.Value, keySecret(key), "the session cookie holds the key")
	}},
}

// trigger is the body of a request that starts the echo agent as runID.
func trigger(runID string) map[string]any {
	return map[string]any{"run_id": runID, "input": map[string]string{"text": "x"}}
}

// requireNoRun checks that no run has workflow ID runID.
func (b *bundle) requireNoRun(t *testing.T, runID string) {
	t.Helper()
	_, err := b.e.Describe(context.Background(), runID)
	require.ErrorIs(t, err, durable.ErrRunNotFound, "run %s was started", runID)
}

// remoteListener is a listener on an address of another host.
type remoteListener struct{}

func (remoteListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (remoteListener) Close() error              { return nil }
func (remoteListener) Addr() net.Addr {
	return &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 8080}
}

// requireSameProblem checks that two problems are the same but for their
// request IDs.
func requireSameProblem(t *testing.T, got, want server.Problem) {
	t.Helper()
	got.RequestID, want.RequestID = "", ""
	require.Equal(t, want, got)
}

// requireNoLeak checks that a response body shows nothing of the server's
// insides: no database or driver error, stack, file or panic.
func requireNoLeak(t *testing.T, body []byte) {
	t.Helper()
	lower := strings.ToLower(string(body))
	for _, marker := range []string{"sql", "database", "pgx", "pgconn", "goroutine", ".go:", "panic", "keel_api_keys",
		"hitl_", "runtime.", "/tmp/", "no such table", "connection refused"} {
		require.NotContains(t, lower, marker, "the response shows the server's insides: %s", body)
	}
}

// requireConstantTime checks that function fn of a Go source file calls
// the constant-time comparison call at least calls times, and compares no
// hash, MAC or signature with ==, != or bytes.Equal.
func requireConstantTime(t *testing.T, file, fn, call string, calls int) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	require.NoError(t, err)
	var decl *ast.FuncDecl
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == fn {
			decl = fd
		}
	}
	require.NotNil(t, decl, "%s has no func %s", file, fn)
	isCall := func(e ast.Expr) bool {
		c, ok := e.(*ast.CallExpr)
		return ok && types.ExprString(c.Fun) == call
	}
	n := 0
	ast.Inspect(decl.Body, func(node ast.Node) bool {
		switch node := node.(type) {
		case *ast.CallExpr:
			name := types.ExprString(node.Fun)
			if name == call {
				n++
			}
			require.NotEqual(t, "bytes.Equal", name, "%s: %s compares with bytes.Equal", file, fn)
		case *ast.BinaryExpr:
			if node.Op != token.EQL && node.Op != token.NEQ {
				return true
			}
			for _, side := range []ast.Expr{node.X, node.Y} {
				if isCall(side) {
					return true // the constant-time call's result
				}
			}
			for _, side := range []ast.Expr{node.X, node.Y} {
				s := strings.ToLower(types.ExprString(side))
				for _, w := range []string{"hash", "sign(", ".mac(", "csrftoken("} {
					require.NotContains(t, s, w, "%s: %s compares %s with %s", file, fn, types.ExprString(side), node.Op)
				}
			}
		}
		return true
	})
	require.GreaterOrEqual(t, n, calls, "%s: %s calls %s", file, fn, call)
}
