package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/server"
)

// fuzzMaxBody is the body limit of the server FuzzDecodeRequest drives:
// small, so that fuzzed bodies cross it.
const fuzzMaxBody = 512

// decodeBundle is a server on a SQLite file with two runs on a task
// queue no worker polls (so nothing but requests changes their rows) and
// one pending approval that the caller ("local") may decide.
type decodeBundle struct {
	srv        *server.Server
	db         *appdb.DB
	target     durable.RunInfo // receives signals
	victim     durable.RunInfo // receives cancel requests
	approvalID string
	argsHash   string
}

func newDecodeBundle(tb testing.TB) *decodeBundle {
	tb.Helper()
	ctx := context.Background()
	file := filepath.Join(tb.TempDir(), "keel.db")
	st, err := sqlitestore.Open(file, nil)
	must(tb, err)
	tb.Cleanup(func() { _ = st.Close() })
	db, err := appdb.Open(ctx, file)
	must(tb, err)
	tb.Cleanup(func() { _ = db.Close() })
	log := testLogger(tb)
	e, err := durable.New(st, &durable.Config{PollInterval: 50 * time.Millisecond, Logger: log})
	must(tb, err)
	e.MustRegister(shout, echoWF, step, waiterWF, approverWF)
	approvals, err := hitl.New(ctx, db, e, &hitl.Config{
		Groups:     hitl.Groups{"finance": {"local", "fred"}},
		LinkSecret: bytes.Repeat([]byte("k"), 32),
		Logger:     log,
	})
	must(tb, err)
	e.NewWorker(nil)
	must(tb, e.Start(ctx))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Stop(ctx)
	})
	b := &decodeBundle{db: db}
	b.srv, err = server.New(&server.Config{
		Agents: []server.Agent{
			{Name: "echo", TaskQueue: "parked"},
			{Name: "waiter", TaskQueue: "parked"},
		},
		Approvals:    approvals,
		Engine:       e,
		Logger:       log,
		MaxBodyBytes: fuzzMaxBody,
	})
	must(tb, err)
	b.target, err = e.StartWorkflow(ctx, "waiter", nil, &durable.StartOptions{ID: "target", TaskQueue: "parked"})
	must(tb, err)
	b.victim, err = e.StartWorkflow(ctx, "waiter", nil, &durable.StartOptions{ID: "victim", TaskQueue: "parked"})
	must(tb, err)
	h, err := approverWF.Start(ctx, e, struct{}{}, nil)
	must(tb, err)
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, _, err := approvals.List(ctx, &hitl.ListParams{WorkflowID: h.WorkflowID(), Status: hitl.StatusPending})
		must(tb, err)
		if len(list) == 1 {
			b.approvalID, b.argsHash = list[0].ID, list[0].ArgsHash
			break
		}
		if time.Now().After(deadline) {
			tb.Fatal("the approver run recorded no approval in 30s")
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	return b
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// writes counts what a request can write: runs, the inbox rows and
// accepted signal request IDs of the two parked runs, the victim's cancel
// request, and approval votes.
type writes struct {
	Runs, Inbox, SignalIDs, Cancel, Votes int
}

func (b *decodeBundle) writes(t *testing.T) writes {
	t.Helper()
	var w writes
	err := b.db.QueryRowContext(context.Background(), `SELECT
		(SELECT count(*) FROM runs),
		(SELECT count(*) FROM inbox WHERE run_id IN (?1, ?2)),
		(SELECT count(*) FROM signal_requests WHERE run_id IN (?1, ?2)),
		(SELECT cancel_requested FROM runs WHERE run_id = ?2),
		(SELECT count(*) FROM hitl_votes)`, b.target.RunID, b.victim.RunID).
		Scan(&w.Runs, &w.Inbox, &w.SignalIDs, &w.Cancel, &w.Votes)
	must(t, err)
	return w
}

// FuzzDecodeRequest sends fuzzed bodies, with fuzzed content types and
// sizes, sent with or without a length, to the endpoints that decode a
// JSON body: trigger a run, signal a run, cancel a run, decide an
// approval. The server never answers 5xx; every 4xx is a problem
// (application/problem+json with type, title and status); a body over the
// limit gets 413, a body of another media type 415, malformed JSON or a
// JSON value that is not an object 400 invalid_json (with an offset within
// the body); and a refused request writes nothing.
func FuzzDecodeRequest(f *testing.F) {
	b := newDecodeBundle(f)
	decision := `{"decision":"approve","args_hash":"` + b.argsHash + `","comment":"fine"}`
	for _, s := range []struct {
		route   uint8
		ctype   string
		body    string
		pad     uint16
		chunked bool
	}{
		{0, "application/json", `{"input": {"text": "hi"}}`, 0, false},
		{0, "", `{"input": {"text": }`, 0, false},
		{0, "application/json", `{"run_id": "r-1"}`, 0, true},
		{0, "application/json", `{"run_id": "target"}`, 0, false},
		{0, "application/json; charset=utf-8", ` [1]`, 0, false},
		{0, "application/x-www-form-urlencoded", `input=1`, 0, false},
		{0, "application/merge-patch+json", `{} {}`, 0, false},
		{0, "text/plain", ``, 0, false},
		{0, "application/json", `{"input": "` + strings.Repeat("x", 600) + `"}`, 0, true},
		{1, "application/json", `{"payload": 1, "request_id": "q-1"}`, 0, false},
		{1, "", `{"payload": "x"`, 0, false},
		{1, "application/json", `{"value": "x"}`, fuzzMaxBody, false},
		{1, "application/json", "{\"payload\": \"\xff\xfe\"}", 0, true},
		{1, ";;", `{}`, 0, false},
		{2, "application/json", decision, 0, false},
		{2, "application/json", ``, 0, false},
		{2, "application/json", `{"decision":"reject","args_hash":"h","edited_args":{"a":1}}`, 0, false},
		{2, "application/json", `{"decision":"approve","args_hash":"h","edited_args":{"a":1,"a":2}}`, 0, false},
		{2, "application/json", `{"decision":"approve","args_hash":"h","edited_args":[1,2}`, 0, false},
		{2, "application/json", `{"decision": true}`, 0, false},
		{3, "", `{"reason": "stop"}`, 0, false},
		{3, "application/json", `{"reason": 7}`, 0, false},
		{3, "application/json", `null`, 0, false},
		{3, "application/json", "\ufeff{}", 0, false},
	} {
		f.Add(s.route, s.ctype, []byte(s.body), s.pad, s.chunked)
	}

	paths := []string{
		"/v1/agents/echo/runs",
		"/v1/runs/target/signals/note",
		"/v1/approvals/" + b.approvalID + "/decision",
		"/v1/runs/victim/cancel",
	}
	// Inputs run one at a time (no t.Parallel): each compares the rows
	// before and after its own request.
	f.Fuzz(func(t *testing.T, route uint8, ctype string, body []byte, pad uint16, chunked bool) {
		path := paths[int(route)%len(paths)]
		full := append(body[:len(body):len(body)], bytes.Repeat([]byte(" "), int(pad%1024))...)
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1"+path, bytes.NewReader(full))
		req.RemoteAddr = "127.0.0.1:40000"
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if chunked {
			req.ContentLength = -1
			req.Body = io.NopCloser(bytes.NewReader(full))
		}
		before := b.writes(t)
		rec := httptest.NewRecorder()
		b.srv.ServeHTTP(rec, req)
		after := b.writes(t)
		status := rec.Code
		what := func() string {
			return path + " " + ctype + " " + string(full) + ": " + rec.Body.String()
		}

		if status >= 500 {
			t.Fatalf("%d for %s", status, what())
		}
		if status < 400 {
			if got := rec.Header().Get("Content-Type"); got != "application/json" {
				t.Fatalf("%d with Content-Type %q: %s", status, got, what())
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%d with a body that is not JSON: %s", status, what())
			}
			if status == http.StatusCreated && after.Runs != before.Runs+1 {
				t.Fatalf("201, but %d runs before and %d after: %s", before.Runs, after.Runs, what())
			}
			return
		}

		// A refusal: a problem, and nothing written.
		p := requireProblem(t, rec, path, what)
		if after != before {
			t.Fatalf("%d %s, yet it wrote: %+v before, %+v after: %s", status, p.Code, before, after, what())
		}

		trimmed := bytes.TrimSpace(full)
		jsonType := ctype == ""
		if mt, _, err := mime.ParseMediaType(ctype); err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
			jsonType = true
		}
		switch {
		case len(full) > fuzzMaxBody:
			requireCode(t, p, http.StatusRequestEntityTooLarge, server.CodeBodyTooLarge, what)
		case len(trimmed) == 0 && path == paths[2]:
			requireCode(t, p, http.StatusBadRequest, server.CodeInvalidJSON, what)
		case len(trimmed) == 0:
			t.Fatalf("an empty body reads as {} here, and {} is accepted, yet: %s", what())
		case !jsonType:
			requireCode(t, p, http.StatusUnsupportedMediaType, server.CodeUnsupportedMediaType, what)
		case trimmed[0] != '{':
			requireCode(t, p, http.StatusBadRequest, server.CodeInvalidJSON, what)
		case !json.Valid(full):
			// The server reports the first thing wrong in reading order: a
			// well-formed object with an unknown or mistyped field, then
			// something after it, is refused for the field.
			if p.Status != http.StatusBadRequest {
				t.Fatalf("malformed JSON got %d %s: %s", p.Status, p.Code, what())
			}
			switch p.Code {
			case server.CodeInvalidJSON, server.CodeUnknownField, server.CodeInvalidField:
			default:
				t.Fatalf("malformed JSON got %s: %s", p.Code, what())
			}
		}
		if p.Code == server.CodeInvalidJSON && len(trimmed) > 0 &&
			(p.Offset == nil || *p.Offset < 0 || *p.Offset > int64(len(full))) {
			t.Fatalf("offset %v is not within the %d-byte body: %s", p.Offset, len(full), what())
		}
		if p.Code == server.CodeUnknownField && len(p.Errors) == 0 {
			t.Fatalf("%s names no field: %s", p.Code, what())
		}
	})
}

// requireProblem checks that a refusal is an RFC 9457 problem.
func requireProblem(t *testing.T, rec *httptest.ResponseRecorder, path string, what func() string) server.Problem {
	t.Helper()
	if got := rec.Header().Get("Content-Type"); got != "application/problem+json" {
		t.Fatalf("%d with Content-Type %q: %s", rec.Code, got, what())
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &fields); err != nil {
		t.Fatalf("%d with a problem that is not a JSON object: %v: %s", rec.Code, err, what())
	}
	for _, k := range []string{"type", "title", "status"} {
		if _, ok := fields[k]; !ok {
			t.Fatalf("the problem has no %q: %s", k, what())
		}
	}
	var p server.Problem
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("problem: %v: %s", err, what())
	}
	if p.Status != rec.Code || p.Code == "" || p.Type != "urn:keel:problem:"+p.Code || p.Title == "" || p.Instance != path {
		t.Fatalf("problem %+v for status %d: %s", p, rec.Code, what())
	}
	return p
}

func requireCode(t *testing.T, p server.Problem, status int, code string, what func() string) {
	t.Helper()
	if p.Status != status || p.Code != code {
		t.Fatalf("got %d %s, want %d %s: %s", p.Status, p.Code, status, code, what())
	}
}
