//go:build unix

package crashtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
)

// KillingTransport is an http.RoundTripper that SIGKILLs its own process
// around the requests its functions choose. The process dies before
// RoundTrip returns, so the caller never sees the request's outcome.
type KillingTransport struct {
	// BeforeFunc reports whether to kill the process before r is sent.
	// Optional; nil kills before no request.
	BeforeFunc func(r *http.Request) bool

	// AfterFunc reports whether to kill the process once resp, the
	// response to r, has arrived (its body unread). It is not called when
	// the request failed. Optional; nil kills after no request.
	AfterFunc func(r *http.Request, resp *http.Response) bool

	// Next sends the requests. Optional; default http.DefaultTransport.
	Next http.RoundTripper
}

// RoundTrip sends r through Next, killing the process before or after as
// BeforeFunc and AfterFunc say.
func (k *KillingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if k.BeforeFunc != nil && k.BeforeFunc(r) {
		kill("before " + r.Method + " " + r.URL.String())
	}
	next := k.Next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(r)
	if err == nil && k.AfterFunc != nil && k.AfterFunc(r, resp) {
		kill(fmt.Sprintf("after %s %s answered %d", r.Method, r.URL, resp.StatusCode))
	}
	return resp, err
}

// kill SIGKILLs the process, saying where on stderr first (the test shows
// the child's output when it fails).
func kill(where string) {
	fmt.Fprintln(os.Stderr, "crashtest: SIGKILL", where)
	if err := syscall.Kill(os.Getpid(), syscall.SIGKILL); err != nil {
		panic(fmt.Sprintf("crashtest: SIGKILL %s: %v", where, err))
	}
	for {
		time.Sleep(time.Hour) // the signal is on its way
	}
}

// HelperMain runs a helper child's work and returns the process's exit
// code, for TestMain to pass to os.Exit: 0 when run returns nil; 1 when it
// returns an error, which goes to stderr. run's context ends after timeout,
// so a helper that hangs fails instead of outliving the test.
func HelperMain(timeout time.Duration, run func(ctx context.Context) error) int {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "crash helper:", err)
		return 1
	}
	return 0
}

// StartEngine starts an engine with one worker on the SQLite file at path,
// for a helper child's workflow, with defs registered. The engine polls
// every 50ms, and takes over a workflow task a killed process held after a
// second. stop stops the engine and closes the store.
func StartEngine(ctx context.Context, path string, defs ...durable.Definition) (e *durable.Engine, stop func(), err error) {
	st, err := sqlitestore.Open(path, nil)
	if err != nil {
		return nil, nil, err
	}
	e, err = durable.New(st, &durable.Config{PollInterval: 50 * time.Millisecond, WorkflowTaskTimeout: time.Second})
	if err == nil {
		err = e.Register(defs...)
	}
	if err == nil {
		e.NewWorker(nil)
		err = e.Start(ctx)
	}
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return e, func() {
		e.Stop(context.Background())
		st.Close()
	}, nil
}

// RequireKilled runs the test binary as a helper child, with env
// ("NAME=value" entries) added to this process's environment and no test
// selected, and fails t unless SIGKILL ended the child. It returns the
// child's stdout and stderr, interleaved.
func RequireKilled(t testing.TB, env ...string) string {
	t.Helper()
	out, err := runHelper(env)
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("crash helper: got %v, want death by SIGKILL; output:\n%s", err, out)
		return out
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("crash helper: %v, want death by SIGKILL; output:\n%s", err, out)
	}
	return out
}

// RequireSuccess runs the test binary as a helper child as RequireKilled
// does, and fails t unless the child exited with status 0. It returns the
// child's output.
func RequireSuccess(t testing.TB, env ...string) string {
	t.Helper()
	out, err := runHelper(env)
	if err != nil {
		t.Fatalf("crash helper: %v, want exit status 0; output:\n%s", err, out)
	}
	return out
}

func runHelper(env []string) (string, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
