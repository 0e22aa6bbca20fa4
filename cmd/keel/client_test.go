package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
)

// outcome is what a keel process printed and how it exited.
type outcome struct {
	stdout, stderr string
	code           int
}

func (o outcome) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", o.code, o.stdout, o.stderr)
}

// call runs keel with args and the extra environment variables env
// (KEY=VALUE), and returns its outcome.
func call(t *testing.T, env []string, args ...string) outcome {
	t.Helper()
	cmd := keelCmd(env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	o := outcome{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		o.code = exit.ExitCode()
	} else {
		require.NoError(t, err, o.String())
	}
	return o
}

// keelCmd returns the command that runs keel with args and the extra
// environment variables env (KEY=VALUE).
func keelCmd(env []string, args ...string) *exec.Cmd {
	cmd := keel(args...)
	if os.Getenv("GORACE") == "" {
		// A binary built with -race sleeps a second at exit by default.
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// requireUsageError asserts that o is a usage error: exit 2, one line on
// stderr that contains want, nothing on stdout.
func requireUsageError(t *testing.T, o outcome, want string) {
	t.Helper()
	requireOneLineError(t, o, exitUsage, want)
}

// requireOneLineError asserts exit code code, one line on stderr that
// contains want, and nothing on stdout.
func requireOneLineError(t *testing.T, o outcome, code int, want string) {
	t.Helper()
	require.Equal(t, code, o.code, o.String())
	require.Empty(t, o.stdout, o.String())
	require.Equal(t, 1, strings.Count(o.stderr, "\n"), o.String())
	require.True(t, strings.HasPrefix(o.stderr, "keel: "), o.String())
	require.Contains(t, o.stderr, want, o.String())
}

// newDB creates an empty keel database file and returns its path.
func newDB(t *testing.T) string {
	t.Helper()
	db := filepath.Join(t.TempDir(), "keel.db")
	st, err := sqlitestore.Open(db, nil)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	return db
}

// clientOn returns an engine on the SQLite file db without workers, to
// inspect what keel did.
func clientOn(t *testing.T, db string) *durable.Engine {
	t.Helper()
	st, err := sqlitestore.Open(db, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	e, err := durable.New(st, &durable.Config{PollInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	return e
}

// requireNoRuns asserts that the database holds no run.
func requireNoRuns(t *testing.T, e *durable.Engine) {
	t.Helper()
	runs, _, err := e.ListRuns(context.Background(), nil)
	require.NoError(t, err)
	require.Empty(t, runs)
}

// requireNoFile asserts that path does not exist.
func requireNoFile(t *testing.T, path string) {
	t.Helper()
	_, err := os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist)
}

// Test workflows, run by the test process's own engine against the
// database that keel works on.
var (
	// waiter returns the first "go-on" signal's value.
	waiter = durable.NewWorkflow("waiter", func(ctx durable.Context, _ struct{}) (string, error) {
		return durable.NewSignal[string]("go-on").Receive(ctx)
	})
	// collector returns the values of its "note" signals up to the first
	// 0.
	collector = durable.NewWorkflow("collector", func(ctx durable.Context, _ struct{}) ([]int, error) {
		notes := []int{}
		for {
			n, err := durable.NewSignal[int]("note").Receive(ctx)
			if err != nil || n == 0 {
				return notes, err
			}
			notes = append(notes, n)
		}
	})
	// noop completes at once.
	noop = durable.NewWorkflow("noop", func(ctx durable.Context, in string) (string, error) {
		return in, nil
	})
)

func TestExitCodes(t *testing.T) {
	t.Parallel()
	require.Equal(t, 0, exitCode(nil))
	require.Equal(t, 1, exitCode(errors.New("database unreachable")))
	require.Equal(t, 2, exitCode(usageErrorf("bad")))
	require.Equal(t, 3, exitCode(notFoundErrorf("none")))
	require.Equal(t, 4, exitCode(&exitError{code: exitTimeout}))
	require.Equal(t, 1, exitCode(exitSilently(exitFailed)))
	require.Equal(t, 2, exitCode(errors.New(`unknown command "nope" for "keel"`)))

	var buf bytes.Buffer
	require.Equal(t, 3, reportError(&buf, notFoundErrorf("history: no run %q", "x")))
	require.Equal(t, "keel: history: no run \"x\"\n", buf.String())
	buf.Reset()
	require.Equal(t, 1, reportError(&buf, exitSilently(exitFailed)))
	require.Empty(t, buf.String())
}

// Every client command documents its exit codes and shows an example.
func TestClientCommandsHelp(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"run", "runs", "history", "signal", "cancel", "approve", "approvals"} {
		o := call(t, nil, name, "--help")
		require.Equal(t, 0, o.code, o.String())
		require.Contains(t, o.stdout, "Exit status:", name)
		require.Contains(t, o.stdout, "3  not found", name)
		require.Contains(t, o.stdout, "4  timeout", name)
		require.Contains(t, o.stdout, "Examples:\n  keel "+name, name)
	}
	o := call(t, nil, "run", "--help")
	require.Contains(t, o.stdout, "Workflows in this build: steps.")
	o = call(t, nil, "approve", "--help")
	require.Contains(t, o.stdout, "KEEL_GROUPS")
	require.Contains(t, o.stdout, "--groups FILE")

	o = call(t, nil, "no-such-command")
	require.Equal(t, exitUsage, o.code, o.String())
}
