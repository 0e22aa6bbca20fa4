package durable_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashHelperEnv) != "" {
		os.Exit(crashHelperMain())
	}
	goleak.VerifyTestMain(m)
}

// testBundle is an engine with one worker on the "default" task queue, over
// a SQLite file in a temporary directory.
type testBundle struct {
	e    *durable.Engine
	st   *sqlitestore.Store
	path string
}

type setupOpts struct {
	cfg  *durable.Config
	path string // reuse a database file
	defs []durable.Definition
	// noStart leaves the engine stopped.
	noStart bool
}

func setup(t *testing.T, o setupOpts) *testBundle {
	t.Helper()
	path := o.path
	if path == "" {
		path = filepath.Join(t.TempDir(), "keel.db")
	}
	st, err := sqlitestore.Open(path, nil)
	require.NoError(t, err)
	cfg := o.cfg
	if cfg == nil {
		cfg = &durable.Config{}
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	e, err := durable.New(st, cfg)
	require.NoError(t, err)
	e.MustRegister(o.defs...)
	e.NewWorker(nil)
	b := &testBundle{e: e, st: st, path: path}
	if !o.noStart {
		require.NoError(t, e.Start(context.Background()))
	}
	t.Cleanup(func() { b.stop(t) })
	return b
}

// stop stops the engine and closes the store; it may be called twice.
func (b *testBundle) stop(t *testing.T) {
	t.Helper()
	if b.st == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, b.e.Stop(ctx))
	require.NoError(t, b.st.Close())
	b.st = nil
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 20*time.Second, 5*time.Millisecond, "waiting for %s", what)
}

// eventTypes returns the types of a run's history events.
func eventTypes(t *testing.T, e *durable.Engine, runID string) []string {
	t.Helper()
	h, err := e.GetHistory(context.Background(), runID)
	require.NoError(t, err)
	out := make([]string, len(h.Events))
	for i, ev := range h.Events {
		out[i] = ev.Type
	}
	return out
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}
