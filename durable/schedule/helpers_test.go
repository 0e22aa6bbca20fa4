package schedule_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/durabletest"
	"github.com/keelhq/keel/durable/schedule"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/internal/testdb"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashHelperEnv) != "" {
		os.Exit(crashHelperMain())
	}
	goleak.VerifyTestMain(m)
}

// t0 is when every test's fake clock starts.
var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

func minute(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

// opener opens a new Store on one database; calling it again reopens the
// same database, as a restarted process would.
type opener func(t *testing.T) store.Store

func sqliteDB(t *testing.T) opener {
	path := filepath.Join(t.TempDir(), "keel.db")
	return func(t *testing.T) store.Store {
		st, err := sqlitestore.Open(path, nil)
		require.NoError(t, err)
		return st
	}
}

func postgresDB(t *testing.T) opener {
	pool := testdb.Postgres(t)
	return func(t *testing.T) store.Store {
		st, err := pgstore.New(context.Background(), pool, nil)
		require.NoError(t, err)
		return st
	}
}

// forEachStore runs fn as a subtest on SQLite and on PostgreSQL.
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

// jobInput is the scheduled test workflow's input: with Hold it runs until
// it receives the finish signal.
type jobInput struct {
	Hold bool `json:"hold,omitempty"`
}

var finish = durable.NewSignal[struct{}]("finish")

func newJob() *durable.Workflow[jobInput, string] {
	return durable.NewWorkflow("job", func(ctx durable.Context, in jobInput) (string, error) {
		if in.Hold {
			if _, err := finish.Receive(ctx); err != nil {
				return "", err
			}
		}
		return ctx.Info().WorkflowID, nil
	})
}

// testBundle is an engine on a fake clock with the schedule client and the
// "job" workflow registered.
type testBundle struct {
	db    opener
	clock *durabletest.Clock
	cfg   *schedule.Config
	e     *durable.Engine
	st    store.Store
	sc    *schedule.Client
}

type setupOpts struct {
	db  opener
	cfg *schedule.Config
}

func setup(t *testing.T, o setupOpts) *testBundle {
	t.Helper()
	if o.db == nil {
		o.db = sqliteDB(t)
	}
	b := &testBundle{db: o.db, clock: durabletest.NewClock(t0), cfg: o.cfg}
	b.start(t)
	t.Cleanup(func() { b.stop(t, 10*time.Second) })
	return b
}

// start opens the store and starts an engine on it.
func (b *testBundle) start(t *testing.T) {
	t.Helper()
	b.st = b.db(t)
	e, err := durable.New(b.st, &durable.Config{
		PollInterval:        50 * time.Millisecond,
		WorkflowTaskTimeout: 2 * time.Second,
		Logger:              slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		Test:                durable.TestConfig{Clock: b.clock},
	})
	require.NoError(t, err)
	b.sc, err = schedule.New(e, b.cfg)
	require.NoError(t, err)
	e.MustRegister(newJob())
	e.NewWorker(nil)
	require.NoError(t, e.Start(context.Background()))
	b.e = e
}

// stop stops the engine, giving in-flight work grace to finish, and closes
// the store; it may be called twice.
func (b *testBundle) stop(t *testing.T, grace time.Duration) {
	t.Helper()
	if b.st == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	_ = b.e.Stop(ctx) // past the grace, running activities are canceled and released
	<-b.e.Stopped()
	require.NoError(t, b.st.Close())
	b.st = nil
}

// restart stops the engine and starts a new one on the same database, as
// a restarted process would.
func (b *testBundle) restart(t *testing.T, grace time.Duration) {
	t.Helper()
	b.stop(t, grace)
	b.start(t)
}

// testWriter sends the engine's log to the test's log.
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

// waitSleeping waits until the schedule's workflow is blocked on its timer:
// it has handled everything that fell due and the clock may move.
func (b *testBundle) waitSleeping(t *testing.T, id string) {
	t.Helper()
	ctx := testContext(t)
	waitFor(t, "schedule "+id+" to sleep", func() bool {
		info, err := b.e.Describe(ctx, schedule.WorkflowID(id))
		if err != nil || info.Status != durable.StatusRunning {
			return false
		}
		h, err := b.e.GetHistory(ctx, info.RunID)
		if err != nil {
			return false
		}
		pending := 0
		for _, ev := range h.Events {
			switch ev.Type {
			case durable.EventTimerStarted:
				pending++
			case durable.EventTimerFired, durable.EventTimerCanceled:
				pending--
			}
		}
		return pending == 1
	})
}

// advanceTo waits for the schedule to sleep and moves the clock to at.
func (b *testBundle) advanceTo(t *testing.T, id string, at time.Time) {
	t.Helper()
	b.waitSleeping(t, id)
	b.clock.Set(at)
}

// jobRuns returns how many runs of the job workflow each workflow ID has.
func jobRuns(ctx context.Context, e *durable.Engine) (map[string]int, error) {
	out := map[string]int{}
	cursor := ""
	for {
		runs, next, err := e.ListRuns(ctx, &durable.ListOptions{WorkflowType: "job", Cursor: cursor, Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, r := range runs {
			out[r.WorkflowID]++
		}
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

// waitRuns waits until the job workflow has runs for as many workflow IDs
// as given, then checks that they are exactly those, with one run each.
func (b *testBundle) waitRuns(t *testing.T, ids ...string) {
	t.Helper()
	ctx := testContext(t)
	want := map[string]int{}
	for _, id := range ids {
		want[id] = 1
	}
	var got map[string]int
	waitFor(t, fmt.Sprintf("runs %v", ids), func() bool {
		m, err := jobRuns(ctx, b.e)
		if err != nil {
			return false
		}
		got = m
		return len(m) >= len(want)
	})
	require.Equal(t, want, got, "have %v", keys(got))
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (b *testBundle) describe(t *testing.T, id string) schedule.Description {
	t.Helper()
	d, err := b.sc.Describe(testContext(t), id)
	require.NoError(t, err)
	return d
}

// waitDescribe waits until the schedule's description satisfies cond.
func (b *testBundle) waitDescribe(t *testing.T, id, what string, cond func(d schedule.Description) bool) schedule.Description {
	t.Helper()
	ctx := testContext(t)
	var d schedule.Description
	waitFor(t, what, func() bool {
		var err error
		d, err = b.sc.Describe(ctx, id)
		return err == nil && cond(d)
	})
	return d
}

func ids(scheduleID string, at ...time.Time) []string {
	out := make([]string, len(at))
	for i, t := range at {
		out[i] = schedule.ActionWorkflowID(scheduleID, t)
	}
	return out
}

// everyMinute fires each minute. Its overlap policy lets runs overlap, so
// that tests which do not wait for each run to finish see every action.
var everyMinute = schedule.Spec{Cron: []string{"* * * * *"}, Overlap: schedule.OverlapAllowAll}

var job = schedule.Action{Workflow: "job"}
