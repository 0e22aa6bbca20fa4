//go:build failpoints

package crashall_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/internal/failpoint"
	"github.com/keelhq/keel/internal/testdb"
)

// extraMethods lists the exported methods of v beyond the Store
// interface's: the optional methods that the engine and tests look for.
func extraMethods(v any) []string {
	base := reflect.TypeFor[store.Store]()
	var out []string
	t := reflect.TypeOf(v)
	for i := range t.NumMethod() {
		if name := t.Method(i).Name; name != "Close" {
			if _, ok := base.MethodByName(name); !ok {
				out = append(out, name)
			}
		}
	}
	return out
}

// bareStore has only the Store interface's methods.
type bareStore struct{ store.Store }

// notifyingStore has Notifications besides them.
type notifyingStore struct{ store.Store }

func (notifyingStore) Notifications(context.Context) <-chan string { return nil }

func TestFailpointStoreKeepsOptionalMethods(t *testing.T) {
	t.Parallel()
	sq, err := sqlitestore.Open(filepath.Join(t.TempDir(), "keel.db"), nil)
	require.NoError(t, err)
	defer sq.Close()
	pg, err := pgstore.New(t.Context(), testdb.Postgres(t), nil)
	require.NoError(t, err)
	defer pg.Close()

	for _, tc := range []struct {
		name string
		st   store.Store
	}{{"sqlitestore", sq}, {"pgstore", pg}, {"bare", &bareStore{sq}}, {"notifying", &notifyingStore{sq}}} {
		e, err := durable.New(tc.st, nil)
		require.NoError(t, err)
		wrapped := e.Store()
		require.NotEqual(t, reflect.TypeOf(tc.st), reflect.TypeOf(wrapped), "%s: the engine's store has its failpoints", tc.name)
		// A method added to a store must be passed on by the wrapper
		// (durable/failpoints_on.go), or the engine built with failpoints
		// does not see it.
		require.Equal(t, extraMethods(tc.st), extraMethods(wrapped), tc.name)
	}
	require.Equal(t, []string{"DB", "DeleteClosedRuns", "Idle", "QueueStats"}, extraMethods(sq))
	require.Equal(t, []string{"DeleteClosedRuns", "Idle", "Notifications", "QueueStats"}, extraMethods(pg))

	e, err := durable.New(sq, nil)
	require.NoError(t, err)
	require.Same(t, sq.DB(), e.Store().(interface{ DB() *sql.DB }).DB())
	_, err = e.QueueStats(t.Context())
	require.NoError(t, err)
}

// TestFailpointStoreInjects drives the store's failpoints in this process.
// It does not run in parallel: the configuration is the process's, and
// the parallel tests of this package start once it has ended.
func TestFailpointStoreInjects(t *testing.T) {
	defer func() { require.NoError(t, failpoint.Configure("")) }()
	ctx := context.Background()
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "keel.db"), nil)
	require.NoError(t, err)
	defer st.Close()
	// A start whose commit is reported failed leaves its eagerly leased
	// first task to the lease's expiry: keep it short.
	e, err := durable.New(st, &durable.Config{PollInterval: 20 * time.Millisecond, WorkflowTaskTimeout: 500 * time.Millisecond})
	require.NoError(t, err)
	echo := durable.NewWorkflow("echo", func(ctx durable.Context, _ string) (string, error) {
		return goSignal.Receive(ctx)
	})
	e.MustRegister(echo)
	e.NewWorker(nil)
	require.NoError(t, e.Start(ctx))
	defer e.Stop(ctx)

	// Before: nothing was written.
	require.NoError(t, failpoint.Configure("store.CreateRun.before=error@1"))
	_, err = echo.Start(ctx, e, "", &durable.StartOptions{ID: "echo-1"})
	require.ErrorIs(t, err, failpoint.ErrInjected)
	require.NotErrorIs(t, err, failpoint.ErrAmbiguous)
	_, err = e.Describe(ctx, "echo-1")
	require.ErrorIs(t, err, durable.ErrRunNotFound)

	// After: the write committed, and the caller was told it failed.
	require.NoError(t, failpoint.Configure("store.CreateRun.after=ambiguous@1;store.Signal.after=ambiguous@1"))
	_, err = echo.Start(ctx, e, "", &durable.StartOptions{ID: "echo-1"})
	require.ErrorIs(t, err, failpoint.ErrAmbiguous)
	h, err := echo.Start(ctx, e, "", &durable.StartOptions{ID: "echo-1"})
	require.NoError(t, err)
	require.False(t, h.Created(), "the first start created the run")

	err = e.Signal(ctx, "echo-1", goSignal.Name(), json.RawMessage(`"hello"`), &durable.SignalOptions{RequestID: "r1"})
	require.ErrorIs(t, err, failpoint.ErrAmbiguous)
	require.NoError(t, e.Signal(ctx, "echo-1", goSignal.Name(), json.RawMessage(`"hello"`), &durable.SignalOptions{RequestID: "r1"}))
	out, err := h.Result(ctx)
	require.NoError(t, err)
	require.Equal(t, "hello", out)

	hist, err := e.GetHistory(ctx, h.RunID())
	require.NoError(t, err)
	signals := 0
	for _, ev := range hist.Events {
		if ev.Type == durable.EventSignalReceived {
			signals++
		}
	}
	require.Equal(t, 1, signals, "the repeated signal was applied once")

	hits := failpoint.Hits()
	for _, name := range []string{"store.CreateRun.before", "store.CreateRun.after", "store.Signal.before", "store.Signal.after",
		"store.ClaimWorkflowTasks.before", "store.ClaimWorkflowTasks.after", "store.CompleteWorkflowTask.close.after"} {
		require.Positive(t, hits[name], name)
	}
	require.Equal(t, int64(3), hits["store.CreateRun.before"], "three starts")
	require.Equal(t, int64(1), hits["store.CreateRun.after"], "one run created")
}
