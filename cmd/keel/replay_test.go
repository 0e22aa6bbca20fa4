package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/internal/demo"
)

// runKeel runs keel with args and returns its combined output and exit
// status.
func runKeel(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := keel(args...).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}
	require.NoError(t, err, string(out))
	return string(out), 0
}

// engineOn returns a started engine on the SQLite file db with a worker on
// queue, and defs registered; it is stopped when the test ends.
func engineOn(t *testing.T, db, queue string, defs ...durable.Definition) *durable.Engine {
	t.Helper()
	st, err := sqlitestore.Open(db, nil)
	require.NoError(t, err)
	e, err := durable.New(st, &durable.Config{PollInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	for _, d := range defs {
		if err := e.Register(d); err != nil && !errors.Is(err, durable.ErrAlreadyRegistered) {
			require.NoError(t, err)
		}
	}
	e.NewWorker(&durable.WorkerOptions{TaskQueue: queue})
	require.NoError(t, e.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_ = e.Stop(ctx) // cancels activities still blocked
		require.NoError(t, st.Close())
	})
	return e
}

// waitForEvents waits until the workflow ID's run has n history events.
func waitForEvents(t *testing.T, e *durable.Engine, workflowID string, n int64) {
	t.Helper()
	require.Eventually(t, func() bool {
		info, err := e.Describe(context.Background(), workflowID)
		return err == nil && info.HistoryLength >= n
	}, 20*time.Second, 10*time.Millisecond, "waiting for %d events of %s", n, workflowID)
}

func TestReplayFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "keel.db")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A real run of the demo workflow, exported.
	support, defs := demo.Definitions(io.Discard)
	e := engineOn(t, db, "default", defs...)
	h, err := support.Start(ctx, e, demo.Ticket{CustomerID: "cus_9", Question: "Where is my invoice?"}, &durable.StartOptions{ID: "ticket-9"})
	require.NoError(t, err)
	_, err = h.Result(ctx)
	require.NoError(t, err)
	history, err := e.ExportHistory(ctx, h.RunID())
	require.NoError(t, err)
	good := filepath.Join(dir, "good.json")
	require.NoError(t, os.WriteFile(good, history, 0o600))
	// The same history as recorded by older code whose first activity had
	// another name.
	require.Contains(t, string(history), `"name": "fetch-customer"`)
	changed := filepath.Join(dir, "changed.json")
	require.NoError(t, os.WriteFile(changed, []byte(strings.Replace(string(history), `"name": "fetch-customer"`, `"name": "fetch-client"`, 1)), 0o600))
	notJSON := filepath.Join(dir, "not.json")
	require.NoError(t, os.WriteFile(notJSON, []byte("{"), 0o600))

	out, code := runKeel(t, "replay", good)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "ok    "+good)
	require.Contains(t, out, "1 replayed: 1 ok, 0 failed, 0 unreadable")

	out, code = runKeel(t, "replay", good, changed)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "ok    "+good)
	require.Contains(t, out, "FAIL  "+changed+": workflow steps, run "+h.RunID()+", event 2 (ActivityScheduled): non-deterministic: "+
		"history has ActivityScheduled(fetch-client, input sha256:")
	require.Contains(t, out, "code issued ActivityScheduled(fetch-customer, input sha256:")

	// Unreadable files: exit 2, unless a history failed.
	out, code = runKeel(t, "replay", good, notJSON, filepath.Join(dir, "missing.json"))
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "ERROR "+notJSON+": durable: invalid history")
	require.Contains(t, out, "3 replayed: 1 ok, 0 failed, 2 unreadable")
	out, code = runKeel(t, "replay", notJSON, changed)
	require.Equal(t, 1, code, out)

	// Usage errors.
	out, code = runKeel(t, "replay")
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "no history files given")
	out, code = runKeel(t, "replay", "--no-such-flag")
	require.Equal(t, 2, code, out)
	out, code = runKeel(t, "replay", "--running", good)
	require.Equal(t, 2, code, out)
	out, code = runKeel(t, "replay", "--running", "--db", filepath.Join(dir, "missing.db"))
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "missing.db")
}

func TestReplayRunning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "keel.db")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ticket := demo.Ticket{CustomerID: "cus_3", Question: "Can I change my plan?"}

	// A run of the current demo code, in the middle of generating its reply
	// (the model call is held until the engine stops).
	support, defs := demo.Definitions(io.Discard)
	slowModel := durable.NewActivity("generate-reply", func(ctx context.Context, prompt string) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	}, nil)
	current := engineOn(t, db, "current", append([]durable.Definition{slowModel}, defs...)...)
	_, err := support.Start(ctx, current, ticket, &durable.StartOptions{ID: "ticket-current", TaskQueue: "current"})
	require.NoError(t, err)
	waitForEvents(t, current, "ticket-current", 6)

	// A run of older code that waited for a signal after fetching the
	// customer, where the current code searches the knowledge base.
	fetch := durable.NewActivity("fetch-customer", func(ctx context.Context, id string) (string, error) {
		return "Ada", nil
	}, nil)
	older := durable.NewWorkflow("steps", func(ctx durable.Context, t demo.Ticket) (string, error) {
		c, err := fetch.Run(ctx, t.CustomerID)
		if err != nil {
			return "", err
		}
		_, err = durable.NewSignal[string]("go-on").Receive(ctx)
		return c, err
	})
	old := engineOn(t, db, "old", fetch, older)
	_, err = older.Start(ctx, old, ticket, &durable.StartOptions{ID: "ticket-old", TaskQueue: "old"})
	require.NoError(t, err)
	waitForEvents(t, old, "ticket-old", 3)

	out, code := runKeel(t, "replay", "--running", "--db", db)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "ok    ticket-current\n")
	require.Contains(t, out, "FAIL  ticket-old: workflow steps, run ")
	require.Contains(t, out, ", event 3 (ActivityCompleted): non-deterministic: history has nothing, "+
		"code issued ActivityScheduled(search-kb, input sha256:")
	require.Contains(t, out, "2 replayed: 1 ok, 1 failed, 0 unreadable")
}
