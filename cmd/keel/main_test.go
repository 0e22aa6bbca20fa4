package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/internal/demo"
)

// The tests run the keel command as real processes: the test binary re-runs
// itself as keel when asMainEnv is set.
const asMainEnv = "KEEL_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func keel(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asMainEnv+"=1")
	return cmd
}

func TestDemoSurvivesKill(t *testing.T) {
	t.Parallel()
	out, err := keel("demo", "--db", filepath.Join(t.TempDir(), "keel.db")).CombinedOutput()
	text := string(out)
	require.NoError(t, err, text)
	require.Contains(t, text, "killed with SIGKILL while the model was answering")
	require.Contains(t, text, "running; resuming it")
	require.Contains(t, text, "✓ run completed: ticket T-1 open → solved")
	// The first answer is recorded before the kill and never asked for
	// again; the call in flight at the kill is made again.
	require.Equal(t, 1, strings.Count(text, "model call for turn 1:"), text)
	require.Equal(t, 2, strings.Count(text, "model call for turn 2:"), text)
	require.Contains(t, text, "Emails (1,")
	require.Equal(t, 1, strings.Count(text, "to ada@example.com"), text)
	require.Equal(t, 1, strings.Count(text, "charge local cus_ada 99 usd"), text)
	require.Contains(t, text, "Run support-T-1 is completed.")
}

func TestDemoByName(t *testing.T) {
	t.Parallel()
	out, err := keel("demo", "salesfollowup", "--db", filepath.Join(t.TempDir(), "keel.db")).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "salesfollowup")
	out, err = keel("demo", "no-such-example").CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "unknown example")
}

func TestWorkerRunsWorkflowsAndStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "keel.db")
	// Create the database first so that the worker and the client do not
	// race to migrate it.
	st, err := sqlitestore.Open(db, nil)
	require.NoError(t, err)
	defer st.Close()

	var stdout, stderr bytes.Buffer
	w := keel("worker", "--db", db, "--poll-interval", "50ms")
	w.Stdout, w.Stderr = &stdout, &stderr
	require.NoError(t, w.Start())

	e, err := durable.New(st, &durable.Config{PollInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	support, defs := demo.Definitions(&bytes.Buffer{})
	e.MustRegister(defs...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reply, err := support.Run(ctx, e, demo.Ticket{CustomerID: "cus_7", Question: "Where is my invoice?"}, &durable.StartOptions{ID: "ticket-7"})
	require.NoError(t, err)
	require.Contains(t, reply, "[offline model]")

	require.NoError(t, w.Process.Signal(syscall.SIGTERM))
	require.NoError(t, w.Wait(), stderr.String())
	require.Contains(t, stdout.String(), "→ step 4 ")
	require.Contains(t, stderr.String(), "stopping: finishing in-flight tasks")
}
