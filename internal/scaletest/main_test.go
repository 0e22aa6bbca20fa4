package scaletest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/internal/testdb"
)

// Environment of a child process.
const (
	modeEnv   = "KEEL_SCALETEST_MODE"   // which child to run; unset in the parent
	schemaEnv = "KEEL_SCALETEST_SCHEMA" // the parent test's schema
	argEnv    = "KEEL_SCALETEST_ARG"    // mode-specific settings, JSON
)

// childTimeout bounds a child's life, in case its parent vanished without
// closing its stdin.
const childTimeout = 10 * time.Minute

func TestMain(m *testing.M) {
	if mode := os.Getenv(modeEnv); mode != "" {
		os.Exit(childMain(mode))
	}
	goleak.VerifyTestMain(m)
}

// childMain runs the child process of a mode and returns its exit code.
// Children report failures on stderr, which the parent shows when its test
// fails.
func childMain(mode string) int {
	ctx, cancel := context.WithTimeout(context.Background(), childTimeout)
	defer cancel()
	var err error
	switch mode {
	case "worker":
		err = workerMain(ctx)
	case "claimer":
		err = claimerMain(ctx)
	case "starter":
		err = starterMain(ctx)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "scaletest %s (pid %d): %v\n", mode, os.Getpid(), err)
		return 1
	}
	return 0
}

// childPool opens a pool on the parent test's schema: TEST_DATABASE_URL
// with the schema of KEEL_SCALETEST_SCHEMA as search_path.
func childPool(ctx context.Context, maxConns int32, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(os.Getenv(testdb.URLEnv))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", testdb.URLEnv, err)
	}
	schema := os.Getenv(schemaEnv)
	if schema == "" {
		return nil, fmt.Errorf("%s is not set", schemaEnv)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = maxConns
	cfg.ConnConfig.Tracer = tracer
	return pgxpool.NewWithConfig(ctx, cfg)
}

// childStore opens the parent's schema as childPool does and a pgstore on
// it; closeAll closes both.
func childStore(ctx context.Context, maxConns int32, tracer pgx.QueryTracer) (pool *pgxpool.Pool, st *pgstore.Store, closeAll func(), err error) {
	pool, err = childPool(ctx, maxConns, tracer)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err = pgstore.New(ctx, pool, nil)
	if err != nil {
		pool.Close()
		return nil, nil, nil, err
	}
	return pool, st, func() { _ = st.Close(); pool.Close() }, nil
}

// parentIO is a child's side of the conversation with its parent: lines on
// stdin in, lines on stdout out. lines is closed when stdin closes, which
// is the parent's order to stop.
type parentIO struct {
	mu    sync.Mutex
	lines chan string
}

func newParentIO() *parentIO {
	p := &parentIO{lines: make(chan string, 16)}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	return p
}

// send writes one line to the parent.
func (p *parentIO) send(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

// expect waits for the parent to send want; it fails if stdin closes first.
func (p *parentIO) expect(ctx context.Context, want string) error {
	select {
	case line, ok := <-p.lines:
		if !ok {
			return fmt.Errorf("stdin closed while waiting for %q", want)
		}
		if line != want {
			return fmt.Errorf("got %q from the parent, want %q", line, want)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for %q: %w", want, ctx.Err())
	}
}

// waitClosed waits until the parent closes stdin.
func (p *parentIO) waitClosed(ctx context.Context) error {
	for {
		select {
		case _, ok := <-p.lines:
			if !ok {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// child is a running child process, from the parent's side.
type child struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string   // stdout, closed at EOF
	exited chan struct{} // closed once the process was reaped
	err    error         // Wait's error, set before exited is closed
	log    string        // path of the file holding the child's stderr
}

// childEnv is what a child needs to know.
type childEnv struct {
	mode   string
	schema string // the test's schema on TEST_DATABASE_URL
	arg    string // mode-specific JSON
}

// startChild runs the test binary as a child process. The child is killed
// (if still running) and reaped when tb ends; its stderr is shown if tb
// failed.
func startChild(tb testing.TB, name string, env childEnv) *child {
	tb.Helper()
	logPath := filepath.Join(tb.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		tb.Fatalf("create child log: %v", err)
	}
	defer logFile.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), modeEnv+"="+env.mode, schemaEnv+"="+env.schema, argEnv+"="+env.arg)
	cmd.Stderr = logFile
	// A child whose parent dies goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatalf("child stdin: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("child stdout: %v", err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start child %s: %v", name, err)
	}
	c := &child{name: name, cmd: cmd, stdin: stdin, lines: make(chan string, 1024), exited: make(chan struct{}), log: logPath}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.err = cmd.Wait()
		close(c.exited)
	}()
	tb.Cleanup(func() {
		c.kill()
		if tail := c.stderrTail(4096); tb.Failed() && tail != "" {
			tb.Logf("stderr of %s (pid %d):\n%s", name, cmd.Process.Pid, tail)
		}
	})
	return c
}

// send writes one line to the child's stdin.
func (c *child) send(tb testing.TB, line string) {
	tb.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		tb.Fatalf("write to %s: %v", c.name, err)
	}
}

// expect waits for the child to print want.
func (c *child) expect(tb testing.TB, want string, timeout time.Duration) {
	tb.Helper()
	select {
	case line, ok := <-c.lines:
		if !ok {
			<-c.exited
			tb.Fatalf("%s exited (%v) while the test waited for %q; stderr:\n%s", c.name, c.err, want, c.stderrTail(4096))
		}
		if line != want {
			tb.Fatalf("%s printed %q, want %q", c.name, line, want)
		}
	case <-time.After(timeout):
		tb.Fatalf("%s did not print %q within %v; stderr:\n%s", c.name, want, timeout, c.stderrTail(4096))
	}
}

// stop closes the child's stdin, its order to stop, and waits for it to
// exit; it returns Wait's error.
func (c *child) stop(tb testing.TB, timeout time.Duration) error {
	tb.Helper()
	_ = c.stdin.Close()
	select {
	case <-c.exited:
		return c.err
	case <-time.After(timeout):
		c.kill()
		return fmt.Errorf("%s did not stop within %v", c.name, timeout)
	}
}

// kill SIGKILLs the child and reaps it. Lines it printed and nobody read
// are dropped.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	_ = c.stdin.Close()
	for range c.lines { // unblocks the reader if nobody read them
	}
	<-c.exited
}

// stderrTail returns the last n bytes of the child's stderr.
func (c *child) stderrTail(n int) string {
	b, err := os.ReadFile(c.log)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// testBundle is a test's schema on the shared server, with a store on it
// for the parent (already migrated, so children find the tables).
type testBundle struct {
	ctx    context.Context
	pool   *pgxpool.Pool
	schema string // passed to children
	st     *pgstore.Store
}

// setup gives the test a fresh schema (testdb.Postgres: skipped without
// TEST_DATABASE_URL, failed under CI=true) and a store on it.
func setup(tb testing.TB) *testBundle {
	tb.Helper()
	ctx := tb.Context()
	pool := testdb.Postgres(tb)
	var schema string
	if err := pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		tb.Fatalf("read current schema: %v", err)
	}
	st, err := pgstore.New(ctx, pool, nil)
	if err != nil {
		tb.Fatalf("pgstore: %v", err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return &testBundle{ctx: ctx, pool: pool, schema: schema, st: st}
}

// morePool opens another pool on the bundle's schema, closed when tb ends.
func (b *testBundle) morePool(tb testing.TB, maxConns int32, params map[string]string) *pgxpool.Pool {
	tb.Helper()
	cfg := b.pool.Config()
	cfg.MaxConns = maxConns
	for k, v := range params {
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	pool, err := pgxpool.NewWithConfig(b.ctx, cfg)
	if err != nil {
		tb.Fatalf("open pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}
