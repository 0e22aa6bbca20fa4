package agent_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/agent"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/internal/testdb"
	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/llm/llmtest"
	"github.com/keelhq/keel/llm/openai"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode))
	}
	goleak.VerifyTestMain(m)
}

// opener opens the test's database; calling it again reopens it.
type opener func(t testing.TB) store.Store

func sqliteDB(t testing.TB) opener {
	path := filepath.Join(t.TempDir(), "keel.db")
	return func(t testing.TB) store.Store {
		st, err := sqlitestore.Open(path, nil)
		require.NoError(t, err)
		return st
	}
}

func postgresDB(t testing.TB) opener {
	pool := testdb.Postgres(t)
	return func(t testing.TB) store.Store {
		st, err := pgstore.New(context.Background(), pool, nil)
		require.NoError(t, err)
		return st
	}
}

// forEachStore runs fn on SQLite and on PostgreSQL (skipped without
// TEST_DATABASE_URL).
func forEachStore(t *testing.T, fn func(t *testing.T, db opener)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, sqliteDB(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, postgresDB(t))
	})
}

// testBundle is an engine with an agent Runtime and workers.
type testBundle struct {
	e  *durable.Engine
	rt *agent.Runtime
}

type setupOpts struct {
	db     opener
	models map[string]llm.Model
	agents []*agent.Agent
	// queues get a worker each, besides "default".
	queues []string
	// defs are extra definitions to register.
	defs []durable.Definition
	cfg  *agent.Config
}

func setup(t testing.TB, o setupOpts) *testBundle {
	t.Helper()
	if o.db == nil {
		o.db = sqliteDB(t)
	}
	st := o.db(t)
	e, err := durable.New(st, &durable.Config{
		PollInterval: 50 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	require.NoError(t, err)
	cfg := o.cfg
	if cfg == nil {
		cfg = &agent.Config{}
	}
	cfg.Models = o.models
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rt, err := agent.NewRuntime(e, cfg)
	require.NoError(t, err)
	require.NoError(t, rt.Register(o.agents...))
	e.MustRegister(o.defs...)
	e.NewWorker(nil)
	for _, q := range o.queues {
		e.NewWorker(&durable.WorkerOptions{TaskQueue: q})
	}
	require.NoError(t, e.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, e.Stop(ctx))
		require.NoError(t, st.Close())
	})
	return &testBundle{e: e, rt: rt}
}

// openaiModel is the real go-openai client pointed at a llmtest server.
func openaiModel(t testing.TB, srv *llmtest.Server) llm.Model {
	t.Helper()
	m, err := openai.New(&openai.Config{BaseURL: srv.URL(), APIKey: "test-key", Model: "gpt-4o-mini"})
	require.NoError(t, err)
	return m
}

// newServer starts a llmtest server, closed when the test ends.
func newServer(t testing.TB) *llmtest.Server {
	srv := llmtest.NewServer(nil)
	t.Cleanup(srv.Close)
	return srv
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fastModel retries model calls quickly, so that only a Retry-After makes
// a retry wait.
func fastModel() *durable.ActivityOptions {
	return &durable.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         durable.RetryPolicy{InitialInterval: 10 * time.Millisecond, MaximumAttempts: 5},
	}
}

// toolMessages returns the tool messages of a request, in order.
func toolMessages(req *llmtest.Request) []llmtest.Message {
	var out []llmtest.Message
	for _, m := range req.Messages {
		if m.Role == "tool" {
			out = append(out, m)
		}
	}
	return out
}

// lastMessage returns a request's last message.
func lastMessage(req *llmtest.Request) llmtest.Message {
	return req.Messages[len(req.Messages)-1]
}
