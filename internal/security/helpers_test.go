package security_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/durabletest"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/internal/testdb"
	"github.com/keelhq/keel/server"
)

// waitFor bounds how long a test waits for a run or an approval to reach
// a state; it is a deadline for a hung test, not a timing assertion.
const waitFor = 60 * time.Second

// The workflows the suite's server exposes as agents.
var (
	// echoWF is the agent the authentication threats try to trigger.
	echoWF = durable.NewWorkflow("echo", func(ctx durable.Context, in struct {
		Text string `json:"text"`
	}) (string, error) {
		return in.Text, nil
	})

	// approverWF asks the finance group to approve a refund, on behalf
	// of support-agent.
	approverWF = durable.NewWorkflow("approver", func(ctx durable.Context, in refund) (hitl.Decision, error) {
		return hitl.Approve(ctx, hitl.Request{
			Title:     "Refund order " + in.Order,
			Details:   "The parcel was lost in transit.",
			Action:    "refund",
			Args:      in.args(),
			Group:     "finance",
			Requester: "support-agent",
			Timeout:   time.Duration(in.TimeoutMS) * time.Millisecond,
		})
	})

	// charge fails its first attempt with an error that names the card,
	// then heartbeats with the card and returns a receipt naming it.
	charge = durable.NewActivity("charge", func(ctx context.Context, card string) (string, error) {
		info, _ := durable.GetActivityInfo(ctx)
		if info.Attempt == 1 {
			return "", errors.New("gateway refused card " + card)
		}
		_ = durable.Heartbeat(ctx, "charging card "+card)
		return "receipt for " + card, nil
	}, &durable.ActivityOptions{RetryPolicy: durable.RetryPolicy{InitialInterval: 10 * time.Millisecond}})

	// ledgerWF is vaultWF's child; its memo holds the card.
	ledgerWF = durable.NewWorkflow("ledger", func(ctx durable.Context, card string) (string, error) {
		return "ledger entry for " + card, nil
	})

	confirm = durable.NewSignal[string]("confirm")

	// vaultWF carries a card number through every kind of payload: its
	// input, an activity's input, failed attempt, heartbeat and result, a
	// child's input, memo and result, a signal, and its own result or
	// failure.
	vaultWF = durable.NewWorkflow("vault", func(ctx durable.Context, in vaultInput) (string, error) {
		receipt, err := charge.Run(ctx, in.Card)
		if err != nil {
			return "", err
		}
		entry, err := ledgerWF.RunChild(ctx, in.Card, &durable.ChildOptions{
			ID:   ctx.Info().WorkflowID + "/ledger",
			Memo: map[string]any{"card": in.Card},
		})
		if err != nil {
			return "", err
		}
		note, err := confirm.Receive(ctx)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(note, "fail") {
			return "", errors.New("refused: " + note)
		}
		return receipt + "; " + entry + "; " + note, nil
	})
)

// refund is approverWF's input.
type refund struct {
	Order  string `json:"order"`
	Amount int    `json:"amount"`
	// TimeoutMS is the approval's timeout; 0 for hitl's default.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

func (r refund) args() map[string]any { return map[string]any{"order": r.Order, "amount": r.Amount} }

// vaultInput is vaultWF's input.
type vaultInput struct {
	Card string `json:"card"`
}

var agents = []server.Agent{{Name: "echo"}, {Name: "approver"}, {Name: "vault"}}

// groups are the reviewer groups: olga is in none, and support-agent
// asks for every approval.
var groups = hitl.Groups{"finance": {"fred", "fiona", "support-agent"}}

// database is one backend: the engine's store and the application
// database on the same file or schema.
type database struct {
	st store.Store
	db *appdb.DB
	// other opens another handle on the application database, which a
	// test may close without disturbing the first.
	other func(t *testing.T) *appdb.DB
	// dump returns every row of every table, as stored, and for SQLite
	// the raw bytes of the database file and its write-ahead log.
	dump func(t *testing.T) []byte
}

type backend func(t *testing.T) *database

func sqliteDB(t *testing.T) *database {
	t.Helper()
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "keel.db")
	st, err := sqlitestore.Open(file, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	open := func(t *testing.T) *appdb.DB {
		db, err := appdb.Open(ctx, file)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	db := open(t)
	return &database{st: st, db: db, other: open, dump: func(t *testing.T) []byte {
		var b bytes.Buffer
		b.Write(testdb.DumpSQLite(t, db))
		for _, f := range []string{file, file + "-wal"} {
			raw, err := os.ReadFile(f)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			require.NoError(t, err)
			b.Write(raw)
		}
		return b.Bytes()
	}}
}

func postgresDB(t *testing.T) *database {
	t.Helper()
	pool := testdb.Postgres(t)
	st, err := pgstore.New(context.Background(), pool, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	open := func(t *testing.T) *appdb.DB {
		db := appdb.FromPool(pool) // closing it leaves the pool open
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	return &database{st: st, db: open(t), other: open, dump: func(t *testing.T) []byte { return testdb.DumpPostgres(t, pool) }}
}

// forEachBackend runs fn on SQLite, and on Postgres when
// TEST_DATABASE_URL is set (skipped without it, failed under CI=true).
func forEachBackend(t *testing.T, fn func(t *testing.T, be backend)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, sqliteDB)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, postgresDB)
	})
}

type setupOpts struct {
	backend backend // default sqliteDB
	noKeys  bool    // no key store: no authentication, loopback only
	codec   durable.Codec
	tls     bool   // serve HTTPS
	baseURL string // server.Config.BaseURL
	// sessionSecret is server.Config.SessionSecret; default random.
	sessionSecret []byte
}

// bundle is a running Keel: engine, key store, approval service and HTTP
// server on one database.
type bundle struct {
	dbase     *database
	e         *durable.Engine
	keys      *server.KeyStore
	approvals *hitl.Service
	// clock is the approval service's clock; it stands still unless a
	// test advances it.
	clock *durabletest.Clock
	cfg   server.Config
	srv   *server.Server
	ts    *httptest.Server
	log   *logBuffer
	admin string // an admin key, when keys are on
}

func setup(t *testing.T, o setupOpts) *bundle {
	t.Helper()
	ctx := context.Background()
	if o.backend == nil {
		o.backend = sqliteDB
	}
	b := &bundle{dbase: o.backend(t), log: &logBuffer{}, clock: durabletest.NewClock(time.Now())}
	var err error
	b.e, err = durable.New(b.dbase.st, &durable.Config{PollInterval: 50 * time.Millisecond, Codec: o.codec, Logger: b.log.logger()})
	require.NoError(t, err)
	b.e.MustRegister(echoWF, approverWF, charge, ledgerWF, vaultWF)
	b.approvals, err = hitl.New(ctx, b.dbase.db, b.e, &hitl.Config{
		Codec:      o.codec, // the engine's: approvals are encoded at rest too
		Groups:     groups,
		LinkSecret: bytes.Repeat([]byte("k"), 32),
		Logger:     b.log.logger(),
		Test:       hitl.TestConfig{Clock: b.clock},
	})
	require.NoError(t, err)
	cfg := &server.Config{
		Agents:        agents,
		Approvals:     b.approvals,
		BaseURL:       o.baseURL,
		Engine:        b.e,
		Logger:        b.log.logger(),
		SessionSecret: o.sessionSecret,
	}
	if !o.noKeys {
		b.keys, err = server.NewKeyStore(ctx, b.dbase.db)
		require.NoError(t, err)
		cfg.Keys = b.keys
		b.admin = b.newKey(t, "root", server.ScopeAdmin)
	}
	b.e.NewWorker(nil)
	require.NoError(t, b.e.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.e.Stop(ctx)
	})
	b.cfg = *cfg
	b.srv, b.ts = b.serve(t, o.tls, nil)
	return b
}

// serve starts another server on the bundle's engine, with the bundle's
// configuration changed by edit (when not nil).
func (b *bundle) serve(t *testing.T, tls bool, edit func(c *server.Config)) (*server.Server, *httptest.Server) {
	t.Helper()
	cfg := b.cfg
	if edit != nil {
		edit(&cfg)
	}
	srv, err := server.New(&cfg)
	require.NoError(t, err)
	ts := httptest.NewUnstartedServer(srv)
	if tls {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	return srv, ts
}

// newKey creates an API key and returns its whole text.
func (b *bundle) newKey(t *testing.T, subject string, scopes ...server.Scope) string {
	t.Helper()
	res, err := b.keys.Create(context.Background(), server.CreateKeyParams{Subject: subject, Scopes: scopes})
	require.NoError(t, err)
	return res.Secret
}

// keyID returns the ID part of a key, keel_<id>_<secret>.
func keyID(key string) string { return strings.SplitN(key, "_", 3)[1] }

// keySecret returns the secret part of a key.
func keySecret(key string) string { return strings.SplitN(key, "_", 3)[2] }

// response is a finished HTTP exchange.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.Body, v), string(r.Body))
}

// problem checks that r is an RFC 9457 problem response for path and
// returns it decoded.
func (r response) problem(t *testing.T, path string) server.Problem {
	t.Helper()
	require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"), string(r.Body))
	require.Equal(t, "no-store", r.Header.Get("Cache-Control"))
	var fields map[string]any
	r.decode(t, &fields)
	for _, f := range []string{"type", "title", "status", "code"} {
		require.Contains(t, fields, f, "problem member %q: %s", f, r.Body)
	}
	var p server.Problem
	r.decode(t, &p)
	require.Equal(t, r.Status, p.Status, "status member equals the HTTP status")
	require.Equal(t, "urn:keel:problem:"+p.Code, p.Type)
	require.NotEmpty(t, p.Title)
	require.Equal(t, path, p.Instance)
	require.NotEmpty(t, p.RequestID)
	require.Equal(t, r.Header.Get("X-Request-Id"), p.RequestID)
	return p
}

// do sends a request to the bundle's server with an optional JSON body (a
// string is sent as is) and bearer key; hdr are more header name, value
// pairs.
func (b *bundle) do(t *testing.T, method, path string, body any, key string, hdr ...string) response {
	t.Helper()
	if key != "" {
		hdr = append(hdr, "Authorization", "Bearer "+key)
	}
	return request(t, b.ts, method, path, body, hdr...)
}

// bodyReader returns body as JSON, or as is if it is a string; nil for
// none.
func bodyReader(t *testing.T, body any) io.Reader {
	t.Helper()
	switch v := body.(type) {
	case nil:
		return nil
	case string:
		return strings.NewReader(v)
	default:
		buf, err := json.Marshal(v)
		require.NoError(t, err)
		return bytes.NewReader(buf)
	}
}

// request sends a request to ts with an optional JSON body (a string is
// sent as is) and header name, value pairs; "Host" sets the request's
// Host line. Redirects are not followed.
func request(t *testing.T, ts *httptest.Server, method, path string, body any, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, bodyReader(t, body))
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return send(t, noRedirects(ts.Client()), req)
}

// noRedirects returns a client like c that does not follow redirects.
func noRedirects(c *http.Client) *http.Client {
	return &http.Client{Transport: c.Transport, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

func send(t *testing.T, c *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// runCount counts every run in the store.
func (b *bundle) runCount(t *testing.T) int {
	t.Helper()
	runs, _, err := b.e.ListRuns(context.Background(), &durable.ListOptions{Limit: 1000})
	require.NoError(t, err)
	return len(runs)
}

// waitClosed polls GET /v1/runs/{id} until the run is closed.
func (b *bundle) waitClosed(t *testing.T, id string) server.Run {
	t.Helper()
	var run server.Run
	require.Eventually(t, func() bool {
		r := b.do(t, "GET", "/v1/runs/"+url.PathEscape(id), nil, b.admin)
		if r.Status != http.StatusOK {
			return false
		}
		run = server.Run{}
		r.decode(t, &run)
		return durable.Status(run.Status).Closed()
	}, waitFor, 20*time.Millisecond, "run %s", id)
	return run
}

// requestRefund triggers approverWF over HTTP and waits for its pending
// approval.
func (b *bundle) requestRefund(t *testing.T, runID string, in refund) *hitl.Approval {
	t.Helper()
	r := b.do(t, "POST", "/v1/agents/approver/runs", map[string]any{"run_id": runID, "input": in}, b.admin)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	var id string
	require.Eventually(t, func() bool {
		list, _, err := b.approvals.List(context.Background(), &hitl.ListParams{WorkflowID: runID})
		require.NoError(t, err)
		if len(list) == 1 {
			id = list[0].ID
			return true
		}
		return false
	}, waitFor, 20*time.Millisecond, "approval of run %s", runID)
	return b.approval(t, id)
}

func (b *bundle) approval(t *testing.T, id string) *hitl.Approval {
	t.Helper()
	a, err := b.approvals.Get(context.Background(), id)
	require.NoError(t, err)
	return a
}

// requireUntouched checks that approval id is still pending with no vote.
func (b *bundle) requireUntouched(t *testing.T, id string) {
	t.Helper()
	a := b.approval(t, id)
	require.Equal(t, hitl.StatusPending, a.Status, "the approval is still pending")
	require.Empty(t, a.Votes, "no vote was recorded")
}

// browser is a browser-like client of one server: a cookie jar,
// redirects not followed.
type browser struct {
	t    *testing.T
	ts   *httptest.Server
	http *http.Client
}

// browser returns a new browser on the bundle's server.
func (b *bundle) browser(t *testing.T) *browser { return newBrowser(t, b.ts) }

func newBrowser(t *testing.T, ts *httptest.Server) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := &http.Client{Jar: jar, Transport: ts.Client().Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &browser{t: t, ts: ts, http: c}
}

func (c *browser) get(path string) response {
	c.t.Helper()
	req, err := http.NewRequest("GET", c.ts.URL+path, nil)
	require.NoError(c.t, err)
	return send(c.t, c.http, req)
}

// post posts a form as a page of this server would; hdr override
// Origin and Sec-Fetch-Site, or add headers.
func (c *browser) post(path string, form url.Values, hdr ...string) response {
	c.t.Helper()
	req, err := http.NewRequest("POST", c.ts.URL+path, strings.NewReader(form.Encode()))
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", c.ts.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return send(c.t, c.http, req)
}

// login signs in with key and returns the sign-in response.
func (c *browser) login(key string) response {
	c.t.Helper()
	csrf := csrfOf(c.t, c.get("/ui/login").Body)
	r := c.post("/ui/login", url.Values{"csrf_token": {csrf}, "key": {key}})
	require.Equal(c.t, http.StatusSeeOther, r.Status, string(r.Body))
	return r
}

// cookie returns the browser's cookie name for the server, or nil.
func (c *browser) cookie(name string) *http.Cookie {
	u, err := url.Parse(c.ts.URL)
	require.NoError(c.t, err)
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == name {
			return ck
		}
	}
	return nil
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrfOf returns the CSRF token of a page's form.
func csrfOf(t *testing.T, page []byte) string {
	t.Helper()
	m := csrfRE.FindSubmatch(page)
	require.NotNil(t, m, "no CSRF token in %s", page)
	return html.UnescapeString(string(m[1]))
}

// setCookies returns the cookies a response sets, by name.
func setCookies(r response) map[string]*http.Cookie {
	out := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		out[c.Name] = c
	}
	return out
}

// api sends an API request with the browser's cookies and no key: a JSON
// body (when not nil) and more header name, value pairs.
func (c *browser) api(method, path string, body any, hdr ...string) response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.ts.URL+path, bodyReader(c.t, body))
	require.NoError(c.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return send(c.t, c.http, req)
}

// threat is one attack the suite makes, and what it checks.
type threat struct {
	name string
	run  func(t *testing.T, b *bundle)
}

// runThreats runs each threat as a parallel subtest on b.
func runThreats(t *testing.T, b *bundle, threats []threat) {
	t.Helper()
	for _, th := range threats {
		t.Run(th.name, func(t *testing.T) {
			t.Parallel()
			th.run(t, b)
		})
	}
}
