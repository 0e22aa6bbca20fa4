package hitl_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/durabletest"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/internal/testdb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testSecret = "test-link-secret-0123456789abcdef-0123456789"

func testGroups() hitl.Groups {
	return hitl.Groups{
		"legal":    {"lena", "lars"},
		"finance":  {"fred", "fiona", "farid"},
		"partners": {"paula", "pete"},
		"ops":      {"olga", "omar", "otto", "ona"},
	}
}

// opener opens the engine's store and the application database on one
// database.
type opener func(t *testing.T) (store.Store, *appdb.DB)

func sqliteDB(t *testing.T) opener {
	path := filepath.Join(t.TempDir(), "keel.db")
	return func(t *testing.T) (store.Store, *appdb.DB) {
		st, err := sqlitestore.Open(path, nil)
		require.NoError(t, err)
		db, err := appdb.Open(context.Background(), path)
		require.NoError(t, err)
		return st, db
	}
}

func postgresDB(t *testing.T) opener {
	pool := testdb.Postgres(t)
	return func(t *testing.T) (store.Store, *appdb.DB) {
		st, err := pgstore.New(context.Background(), pool, nil)
		require.NoError(t, err)
		return st, appdb.FromPool(pool)
	}
}

// forEachDB runs fn as a subtest on SQLite and on PostgreSQL.
func forEachDB(t *testing.T, fn func(t *testing.T, db opener)) {
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

// testBundle is an engine with a Service and the test workflows.
type testBundle struct {
	e     *durable.Engine
	svc   *hitl.Service
	db    *appdb.DB
	clock *durabletest.Clock // nil unless setupOpts.fakeClock
}

type setupOpts struct {
	db opener
	// fakeClock gives the engine and the Service one durabletest.Clock.
	fakeClock bool
	// noCache makes every workflow task replay the run's history.
	noCache bool
	// before runs after New, before the engine starts (to set hooks).
	before func(svc *hitl.Service)
	cfg    *hitl.Config
	// codec is the engine's durable.Config.Codec.
	codec durable.Codec
}

// The test workflows.
var (
	askWorkflow = durable.NewWorkflow("ask", func(ctx durable.Context, req hitl.Request) (hitl.Decision, error) {
		return hitl.Approve(ctx, req)
	})
	escalateWorkflow = durable.NewWorkflow("escalate", func(ctx durable.Context, reqs []hitl.Request) ([]hitl.Decision, error) {
		var out []hitl.Decision
		for _, req := range reqs {
			d, err := hitl.Approve(ctx, req)
			if err != nil {
				return out, err
			}
			out = append(out, d)
			if !d.TimedOut() {
				break
			}
		}
		return out, nil
	})
	// probeWorkflow reports which sentinel Approve's error matches.
	probeWorkflow = durable.NewWorkflow("probe", func(ctx durable.Context, req hitl.Request) (string, error) {
		_, err := hitl.Approve(ctx, req)
		for _, s := range []error{hitl.ErrInvalidRequest, hitl.ErrUnknownGroup} {
			if errors.Is(err, s) {
				return s.Error(), nil
			}
		}
		if err != nil {
			return "other: " + err.Error(), nil
		}
		return "no error", nil
	})
)

func setup(t *testing.T, o setupOpts) *testBundle {
	t.Helper()
	if o.db == nil {
		o.db = sqliteDB(t)
	}
	st, db := o.db(t)
	b := &testBundle{db: db}
	ecfg := &durable.Config{
		PollInterval: 50 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	if o.noCache {
		ecfg.CacheSize = -1
	}
	ecfg.Codec = o.codec
	cfg := hitl.Config{}
	if o.cfg != nil {
		cfg = *o.cfg
	}
	if cfg.Groups == nil {
		cfg.Groups = testGroups()
	}
	if cfg.LinkSecret == nil {
		cfg.LinkSecret = []byte(testSecret)
	}
	cfg.Logger = ecfg.Logger
	if o.fakeClock {
		b.clock = durabletest.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
		ecfg.Test.Clock = b.clock
		cfg.Test.Clock = b.clock
	}
	e, err := durable.New(st, ecfg)
	require.NoError(t, err)
	e.MustRegister(askWorkflow, escalateWorkflow, probeWorkflow)
	e.NewWorker(nil)
	b.e = e
	b.svc, err = hitl.New(context.Background(), db, e, &cfg)
	require.NoError(t, err)
	if o.before != nil {
		o.before(b.svc)
	}
	require.NoError(t, e.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, e.Stop(ctx))
		require.NoError(t, st.Close())
		require.NoError(t, db.Close())
	})
	return b
}

// testWriter sends logs to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, failing the test after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 30*time.Second, 5*time.Millisecond, "waiting for %s", what)
}

// pending waits until the run waits for its n-th approval (the row is
// recorded and the workflow's timer started) and returns that approval.
func (b *testBundle) pending(t *testing.T, runID string, n int) hitl.Approval {
	t.Helper()
	var got hitl.Approval
	waitFor(t, "a pending approval", func() bool {
		list, _, err := b.svc.List(context.Background(), &hitl.ListParams{RunID: runID})
		require.NoError(t, err)
		if len(list) < n || list[0].Status != hitl.StatusPending {
			return false
		}
		got = list[0] // newest first
		return true
	})
	b.waitTimers(t, runID, n)
	return got
}

// waitTimers waits until the run's history holds n started timers.
func (b *testBundle) waitTimers(t *testing.T, runID string, n int) {
	t.Helper()
	waitFor(t, "the approval's timer", func() bool {
		return len(b.events(t, runID, durable.EventTimerStarted)) >= n
	})
}

// events returns the run's history events of one type.
func (b *testBundle) events(t *testing.T, runID, typ string) []durable.HistoryEvent {
	t.Helper()
	h, err := b.e.GetHistory(context.Background(), runID)
	require.NoError(t, err)
	var out []durable.HistoryEvent
	for _, ev := range h.Events {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// signals decodes the run's decision signals.
func (b *testBundle) signals(t *testing.T, runID string) []hitl.VoteEvent {
	t.Helper()
	var out []hitl.VoteEvent
	for _, ev := range b.events(t, runID, durable.EventSignalReceived) {
		var d struct {
			Name  string          `json:"name"`
			Input json.RawMessage `json:"input"`
		}
		require.NoError(t, json.Unmarshal(ev.Data, &d))
		require.True(t, strings.HasPrefix(d.Name, hitl.SignalPrefix), d.Name)
		var ve hitl.VoteEvent
		require.NoError(t, json.Unmarshal(d.Input, &ve))
		require.Equal(t, hitl.SignalName(ve.ApprovalID), d.Name)
		out = append(out, ve)
	}
	return out
}

func (b *testBundle) countRows(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.db.QueryRowContext(context.Background(), b.db.Rebind(query), args...).Scan(&n))
	return n
}

func mustHash(t *testing.T, action, args string) string {
	t.Helper()
	h, err := hitl.Hash(action, json.RawMessage(args))
	require.NoError(t, err)
	return h
}
