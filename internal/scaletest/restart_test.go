package scaletest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/pgstore"
)

// outage is how long TestDatabaseRestart keeps the database down.
const outage = 2 * time.Second

// An engine with a worker runs workflows of three activities and two
// durable timers on a PostgreSQL cluster of the test's own; while they run,
// the cluster is stopped (pg_ctl stop -m fast) for two seconds and started
// again. Every run must complete, with the right result and one recorded
// result per activity.
func TestDatabaseRestart(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.start(t)
	ctx := context.Background()

	cfg, err := pgxpool.ParseConfig(c.url())
	require.NoError(t, err)
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	st, err := pgstore.New(ctx, pool, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })

	var executed atomic.Int64
	step := durable.NewActivity("restart-step", func(ctx context.Context, n int) (int, error) {
		executed.Add(1)
		return n*3 + 1, nil
	}, pipelineActivityOptions())
	// Pauses differ from run to run, so that when the database stops some
	// runs wait for a timer, some for an activity, and some have closed.
	wf := durable.NewWorkflow("restart", func(ctx durable.Context, n int) (int, error) {
		pauses := []time.Duration{time.Duration(1+n%5) * 200 * time.Millisecond, time.Duration(1+n%3) * 300 * time.Millisecond, 0}
		for i, pause := range pauses {
			var err error
			if n, err = step.Run(ctx, n); err != nil {
				return 0, fmt.Errorf("step %d: %w", i, err)
			}
			if pause > 0 {
				if err := durable.Sleep(ctx, pause); err != nil {
					return 0, err
				}
			}
		}
		return n, nil
	})
	want := func(n int) int {
		for range 3 {
			n = n*3 + 1
		}
		return n
	}
	errorLogs := &errorCounter{}
	e, err := durable.New(st, &durable.Config{
		Logger:              slog.New(errorLogs),
		PollInterval:        100 * time.Millisecond,
		WorkflowTaskTimeout: time.Second,
	})
	require.NoError(t, err)
	e.MustRegister(step, wf)
	e.NewWorker(&durable.WorkerOptions{MaxConcurrentWorkflowTasks: 32, MaxConcurrentActivities: 64})
	require.NoError(t, e.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, e.Stop(stopCtx))
	})

	workflowID := func(n int) string { return fmt.Sprintf("restart-%04d", n) }
	begin := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, restartWorkflows)
	for n := range restartWorkflows {
		wg.Go(func() {
			if _, err := wf.Start(ctx, e, n, &durable.StartOptions{ID: workflowID(n)}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	require.NoError(t, <-errs)

	// Stop the database once two thirds of the activities ran.
	require.Eventually(t, func() bool { return executed.Load() >= restartWorkflows*2 }, time.Minute, 5*time.Millisecond)
	closed := closedRuns(t, pool)
	require.Less(t, closed, restartWorkflows, "runs are under way when the database stops")
	c.ctl(t, "stop", "-m", "fast", "-w")
	stopped, logsBefore := time.Now(), errorLogs.n.Load()
	// The engine noticed, and the outage lasted.
	require.Eventually(t, func() bool {
		return errorLogs.n.Load() > logsBefore && time.Since(stopped) >= outage
	}, time.Minute, 10*time.Millisecond)
	c.start(t)
	t.Logf("database down for %v with %d of %d runs closed and %d activities run; %d errors logged",
		time.Since(stopped).Round(time.Millisecond), closed, restartWorkflows, executed.Load(), errorLogs.n.Load()-logsBefore)

	require.EventuallyWithT(t, func(c *assert.CollectT) {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM keel_runs WHERE status <> 'running'`).Scan(&n)
		assert.NoError(c, err)
		assert.Equal(c, restartWorkflows, n, "closed runs after the restart")
	}, time.Minute, 50*time.Millisecond)
	t.Logf("%d runs closed %v after their start", restartWorkflows, time.Since(begin).Round(time.Millisecond))

	failures := checkRuns(ctx, restartWorkflows, func(ctx context.Context, n int) (int, error) {
		h, err := wf.Handle(ctx, e, workflowID(n))
		if err != nil {
			return 0, err
		}
		got, err := h.Result(ctx)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", workflowID(n), err)
		}
		if got != want(n) {
			return 0, fmt.Errorf("%s: result %d, want %d", workflowID(n), got, want(n))
		}
		if _, err := checkActivityHistory(ctx, e, h.RunID(), 3); err != nil {
			return 0, fmt.Errorf("%s: %w", workflowID(n), err)
		}
		return 0, nil
	})
	require.Empty(t, failures.errs, "%d of %d runs are wrong", failures.failed, restartWorkflows)
}

// errorCounter is a slog.Handler that counts error records.
type errorCounter struct{ n atomic.Int64 }

func (h *errorCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h *errorCounter) Handle(context.Context, slog.Record) error {
	h.n.Add(1)
	return nil
}
func (h *errorCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *errorCounter) WithGroup(string) slog.Handler      { return h }

// cluster is a PostgreSQL cluster the test created, listening on
// 127.0.0.1 only, with no Unix socket.
type cluster struct {
	bin  string // directory of initdb and pg_ctl
	dir  string // the test's directory, owned by the server's user
	port int
	// runAs is the OS user that runs the server's programs when the test
	// runs as root (which PostgreSQL refuses to run as).
	runAs string
}

// newCluster runs initdb in a temporary directory, with the machine's
// newest PostgreSQL binaries. It skips the test when there are none
// (failing it under CI=true). The cluster is stopped when the test ends.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	initdbs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(initdbs) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			initdbs = []string{p}
		}
	}
	if len(initdbs) == 0 {
		const msg = "no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or on PATH"
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s, and CI=true: the database restart test must run in CI", msg)
		}
		t.Skip(msg + ": skipping the database restart test")
	}
	version := func(p string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return v
	}
	slices.SortFunc(initdbs, func(a, b string) int { return version(a) - version(b) })
	c := &cluster{bin: filepath.Dir(initdbs[len(initdbs)-1]), dir: t.TempDir(), port: freePort(t)}

	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		require.NoError(t, err, "running as root, the cluster needs the postgres OS user")
		uid, err := strconv.Atoi(u.Uid)
		require.NoError(t, err)
		gid, err := strconv.Atoi(u.Gid)
		require.NoError(t, err)
		require.NoError(t, os.Chown(c.dir, uid, gid))
		// Let the server's user reach its directory.
		require.NoError(t, os.Chmod(filepath.Dir(c.dir), 0o711))
		c.runAs = u.Username
	}
	// --no-sync only skips initdb's final flush of the new files; the
	// server runs with fsync on.
	c.run(t, "initdb", "-D", c.data(), "-U", "postgres", "-A", "trust", "--no-locale", "-E", "UTF8", "--no-sync")
	conf := fmt.Sprintf("\nport = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\nmax_connections = 50\n", c.port)
	f, err := os.OpenFile(filepath.Join(c.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(conf)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	t.Cleanup(func() {
		// Whatever state the test left it in.
		if out, err := c.command("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop").CombinedOutput(); err != nil &&
			!strings.Contains(string(out), "Is server running?") {
			t.Errorf("stop the test's PostgreSQL cluster: %v\n%s", err, out)
		}
	})
	return c
}

func (c *cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *cluster) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// start starts the cluster and waits until it accepts connections.
func (c *cluster) start(t *testing.T) {
	t.Helper()
	c.ctl(t, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "start")
}

// ctl runs pg_ctl on the cluster.
func (c *cluster) ctl(t *testing.T, args ...string) {
	t.Helper()
	c.run(t, "pg_ctl", append([]string{"-D", c.data()}, args...)...)
}

// run runs one of the server's programs and fails the test if it fails.
func (c *cluster) run(t *testing.T, program string, args ...string) {
	t.Helper()
	out, err := c.command(program, args...).CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", program, strings.Join(args, " "), out)
}

// command is a command running program as the server's user.
func (c *cluster) command(program string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, program)
	var cmd *exec.Cmd
	if c.runAs != "" {
		cmd = exec.Command("runuser", append([]string{"-u", c.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = c.dir
	return cmd
}

// freePort returns a TCP port that is free on 127.0.0.1 right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
