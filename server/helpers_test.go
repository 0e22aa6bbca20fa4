package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/internal/testdb"
	"github.com/keelhq/keel/server"
)

// Test workflows.
var (
	shout = durable.NewActivity("shout", func(ctx context.Context, s string) (string, error) {
		return strings.ToUpper(s), nil
	}, nil)

	echoWF = durable.NewWorkflow("echo", func(ctx durable.Context, in struct {
		Text string `json:"text"`
	}) (string, error) {
		return shout.Run(ctx, in.Text)
	})

	goSignal = durable.NewSignal[string]("go")
	step     = durable.NewActivity("step", func(ctx context.Context, s string) (string, error) {
		return "did " + s, nil
	}, nil)
	// waiterWF runs a step, waits for the "go" signal, runs another step.
	waiterWF = durable.NewWorkflow("waiter", func(ctx durable.Context, _ struct{}) (string, error) {
		a, err := step.Run(ctx, "one")
		if err != nil {
			return "", err
		}
		v, err := goSignal.Receive(ctx)
		if err != nil {
			return "", err
		}
		b, err := step.Run(ctx, v)
		if err != nil {
			return "", err
		}
		return a + ", " + b, nil
	})

	addSignal  = durable.NewSignal[int]("add")
	stopSignal = durable.NewSignal[struct{}]("stop")
	// collectorWF sums "add" signals until "stop".
	collectorWF = durable.NewWorkflow("collector", func(ctx durable.Context, _ struct{}) (int, error) {
		sum, done := 0, false
		for !done {
			sel := durable.NewSelector(ctx)
			sel.AddSignal(addSignal, func() {
				v, _ := addSignal.Receive(ctx)
				sum += v
			})
			sel.AddSignal(stopSignal, func() {
				_, _ = stopSignal.Receive(ctx)
				done = true
			})
			if err := sel.Select(ctx); err != nil {
				return 0, err
			}
		}
		return sum, nil
	})

	// modelCall answers like package agent's model activity: the model's
	// message, its usage, and its cost in microdollars.
	modelCall = durable.NewActivity("model-call", func(ctx context.Context, prompt string) (json.RawMessage, error) {
		return json.RawMessage(`{"message":{"role":"assistant","content":"ok"},"finish":"stop","model":"gpt-4o-mini",
			"usage":{"prompt_tokens":120,"completion_tokens":30,"total_tokens":150},"cost":2100}`), nil
	}, nil)
	flakyFailures atomic.Int64
	flaky         = durable.NewActivity("flaky", func(ctx context.Context, _ string) (string, error) {
		info, _ := durable.GetActivityInfo(ctx)
		if info.Attempt == 1 {
			flakyFailures.Add(1)
			return "", errors.New("upstream said 503: try later")
		}
		return "fine", nil
	}, &durable.ActivityOptions{RetryPolicy: durable.RetryPolicy{InitialInterval: 10 * time.Millisecond}})
	// auditWF has a failed attempt and a model call in its timeline.
	auditWF = durable.NewWorkflow("audit", func(ctx durable.Context, _ struct{}) (string, error) {
		if _, err := modelCall.Run(ctx, "hello"); err != nil {
			return "", err
		}
		return flaky.Run(ctx, "x")
	})

	// approverWF asks the finance group to approve a refund.
	approverWF = durable.NewWorkflow("approver", func(ctx durable.Context, _ struct{}) (hitl.Decision, error) {
		return hitl.Approve(ctx, hitl.Request{
			Title:     "Refund order A-17",
			Details:   "The parcel was lost in transit.",
			Action:    "refund",
			Args:      map[string]any{"order": "A-17", "amount": 42},
			Group:     "finance",
			Requester: "support-agent",
		})
	})
)

var testAgents = []server.Agent{
	{Name: "echo"},
	{Name: "waiter", Workflow: "waiter", TaskQueue: "default"},
	{Name: "collector"},
	{Name: "audit"},
	{Name: "approver"},
	{Name: "side-echo", Workflow: "echo", TaskQueue: "side"},
}

// backend opens a store and the application database on it.
type backend func(t *testing.T) (store.Store, *appdb.DB)

func sqliteBackend(t *testing.T) (store.Store, *appdb.DB) {
	file := filepath.Join(t.TempDir(), "keel.db")
	st, err := sqlitestore.Open(file, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	db, err := appdb.Open(context.Background(), file)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return st, db
}

func postgresBackend(t *testing.T) (store.Store, *appdb.DB) {
	pool := testdb.Postgres(t)
	st, err := pgstore.New(context.Background(), pool, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	db := appdb.FromPool(pool)
	t.Cleanup(func() { _ = db.Close() })
	return st, db
}

// forEachBackend runs fn on SQLite, and on Postgres when
// TEST_DATABASE_URL is set.
func forEachBackend(t *testing.T, fn func(t *testing.T, be backend)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, sqliteBackend)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, postgresBackend)
	})
}

type setupOpts struct {
	backend   backend
	keys      bool // authenticate API keys
	approvals bool // an approval service with group finance = fred, fiona
	maxBody   int64
	baseURL   string
}

type testBundle struct {
	e         *durable.Engine
	db        *appdb.DB
	srv       *server.Server
	ts        *httptest.Server
	keys      *server.KeyStore
	approvals *hitl.Service
	admin     string // an admin key, when keys are on
}

func setup(t *testing.T, o setupOpts) *testBundle {
	t.Helper()
	if o.backend == nil {
		o.backend = sqliteBackend
	}
	st, db := o.backend(t)
	e, err := durable.New(st, &durable.Config{PollInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	e.MustRegister(shout, echoWF, step, waiterWF, collectorWF, modelCall, flaky, auditWF, approverWF)
	b := &testBundle{e: e, db: db}
	cfg := &server.Config{
		Agents:            testAgents,
		Engine:            e,
		EventPollInterval: 20 * time.Millisecond,
		HeartbeatInterval: 100 * time.Millisecond,
		MaxBodyBytes:      o.maxBody,
		BaseURL:           o.baseURL,
		Logger:            testLogger(t),
	}
	if o.keys {
		b.keys, err = server.NewKeyStore(context.Background(), db)
		require.NoError(t, err)
		cfg.Keys = b.keys
		b.admin = b.newKey(t, "root", server.ScopeAdmin)
	}
	if o.approvals {
		b.approvals, err = hitl.New(context.Background(), db, e, &hitl.Config{
			Groups:     hitl.Groups{"finance": {"fred", "fiona", "support-agent"}},
			LinkSecret: bytes.Repeat([]byte("k"), 32),
			Logger:     testLogger(t),
		})
		require.NoError(t, err)
		cfg.Approvals = b.approvals
	}
	e.NewWorker(nil)
	e.NewWorker(&durable.WorkerOptions{TaskQueue: "side"})
	require.NoError(t, e.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Stop(ctx)
	})
	b.srv, err = server.New(cfg)
	require.NoError(t, err)
	b.ts = httptest.NewServer(b.srv)
	t.Cleanup(b.ts.Close)
	return b
}

func (b *testBundle) newKey(t *testing.T, subject string, scopes ...server.Scope) string {
	t.Helper()
	res, err := b.keys.Create(context.Background(), server.CreateKeyParams{Subject: subject, Scopes: scopes})
	require.NoError(t, err)
	return res.Secret
}

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

// problem decodes a problem response and checks its media type.
func (r response) problem(t *testing.T) server.Problem {
	t.Helper()
	require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"), string(r.Body))
	var p server.Problem
	r.decode(t, &p)
	require.Equal(t, r.Status, p.Status)
	require.Equal(t, "urn:keel:problem:"+p.Code, p.Type)
	require.NotEmpty(t, p.Title)
	return p
}

// do sends a request with an optional JSON body (a string is sent as is)
// and bearer key.
func (b *testBundle) do(t *testing.T, method, path string, body any, key string, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	case []byte:
		rd = bytes.NewReader(v)
	default:
		buf, err := json.Marshal(v)
		require.NoError(t, err)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, b.ts.URL+path, rd)
	require.NoError(t, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.ts.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// runCount counts every run in the store.
func (b *testBundle) runCount(t *testing.T) int {
	t.Helper()
	runs, _, err := b.e.ListRuns(context.Background(), &durable.ListOptions{Limit: 1000})
	require.NoError(t, err)
	return len(runs)
}

// waitRun polls GET /v1/runs/{id} until cond holds.
func (b *testBundle) waitRun(t *testing.T, id, key string, cond func(server.Run) bool) server.Run {
	t.Helper()
	var run server.Run
	require.Eventually(t, func() bool {
		r := b.do(t, "GET", "/v1/runs/"+id, nil, key)
		if r.Status != http.StatusOK {
			return false
		}
		run = server.Run{}
		r.decode(t, &run)
		return cond(run)
	}, 20*time.Second, 20*time.Millisecond, "run %s", id)
	return run
}

func closed(r server.Run) bool { return durable.Status(r.Status).Closed() }

// eventTypes returns the types of a run's history events.
func (b *testBundle) eventTypes(t *testing.T, id, key string) []string {
	t.Helper()
	r := b.do(t, "GET", "/v1/runs/"+id+"/history", nil, key)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var h server.RunHistory
	r.decode(t, &h)
	out := make([]string, len(h.Events))
	for i, ev := range h.Events {
		out[i] = ev.Type
	}
	return out
}

func count(xs []string, x string) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

// schemas validates JSON against the schemas of the OpenAPI document.
type schemas struct{ c *jsonschema.Compiler }

func newSchemas(t *testing.T) *schemas {
	t.Helper()
	doc, err := server.OpenAPI()
	require.NoError(t, err)
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	require.NoError(t, c.AddResource("https://keel.test/openapi.json", v))
	return &schemas{c: c}
}

// check validates body against components/schemas/name.
func (s *schemas) check(t *testing.T, name string, body []byte) {
	t.Helper()
	require.NoError(t, s.validate(name, body), "%s: %s", name, body)
}

func (s *schemas) validate(name string, body []byte) error {
	sch, err := s.c.Compile("https://keel.test/openapi.json#/components/schemas/" + name)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return err
	}
	return sch.Validate(v)
}
