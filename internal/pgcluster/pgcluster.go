package pgcluster

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// StopMode is how Stop shuts the server down (pg_ctl stop -m).
type StopMode string

const (
	// Fast rolls back open transactions and disconnects clients, then
	// shuts down cleanly.
	Fast StopMode = "fast"
	// Immediate kills the server processes without a clean shutdown, as a
	// crash would; the next Start recovers from the write-ahead log.
	Immediate StopMode = "immediate"
)

// Cluster is a PostgreSQL cluster a test created, listening on 127.0.0.1
// only.
type Cluster struct {
	bin  string // directory of initdb and pg_ctl
	dir  string // the test's directory, owned by the server's user
	port int
	// runAs is the OS user that runs the server's programs when the test
	// runs as root.
	runAs string
}

// New runs initdb in a temporary directory with the machine's newest
// PostgreSQL binaries; the server is not started. It skips t when there
// are none (failing it under CI=true). The cluster is stopped when t ends.
func New(t testing.TB) *Cluster {
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
			t.Fatalf("pgcluster: %s, and CI=true: tests with a cluster of their own must run in CI", msg)
		}
		t.Skip(msg + ": skipping a test that needs a PostgreSQL cluster of its own")
	}
	version := func(p string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return v
	}
	slices.SortFunc(initdbs, func(a, b string) int { return version(a) - version(b) })
	c := &Cluster{bin: filepath.Dir(initdbs[len(initdbs)-1]), dir: t.TempDir(), port: freePort(t)}

	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("pgcluster: running as root, the cluster needs the postgres OS user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(c.dir, uid, gid); err != nil {
			t.Fatalf("pgcluster: %v", err)
		}
		// Let the server's user reach its directory.
		if err := os.Chmod(filepath.Dir(c.dir), 0o711); err != nil {
			t.Fatalf("pgcluster: %v", err)
		}
		c.runAs = u.Username
	}
	// --no-sync only skips initdb's final flush of the new files; the
	// server runs with fsync on.
	c.run(t, "initdb", "-D", c.data(), "-U", "postgres", "-A", "trust", "--no-locale", "-E", "UTF8", "--no-sync")
	conf := fmt.Sprintf("\nport = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\nmax_connections = 100\n", c.port)
	f, err := os.OpenFile(filepath.Join(c.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("pgcluster: %v", err)
	}
	if _, err := f.WriteString(conf); err != nil {
		t.Fatalf("pgcluster: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("pgcluster: %v", err)
	}
	t.Cleanup(func() {
		// Whatever state the test left it in.
		if out, err := c.command("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop").CombinedOutput(); err != nil &&
			!strings.Contains(string(out), "Is server running?") {
			t.Errorf("pgcluster: stop the test's cluster: %v\n%s", err, out)
		}
	})
	return c
}

// URL is the connection URL of the cluster's postgres database, as the
// postgres superuser.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Start starts the server and waits until it accepts connections. It is
// safe to call from any goroutine.
func (c *Cluster) Start() error {
	return c.ctl("-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "start")
}

// Stop stops the server in the given mode and waits until it is down. It
// is safe to call from any goroutine.
func (c *Cluster) Stop(mode StopMode) error {
	return c.ctl("stop", "-m", string(mode), "-w")
}

// Log returns the server's log so far, for a failing test's message.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
	return string(b)
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// ctl runs pg_ctl on the cluster.
func (c *Cluster) ctl(args ...string) error {
	return c.exec("pg_ctl", append([]string{"-D", c.data()}, args...)...)
}

// run runs one of the server's programs and fails the test if it fails.
func (c *Cluster) run(t testing.TB, program string, args ...string) {
	t.Helper()
	if err := c.exec(program, args...); err != nil {
		t.Fatal(err)
	}
}

// exec runs one of the server's programs.
func (c *Cluster) exec(program string, args ...string) error {
	if out, err := c.command(program, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("pgcluster: %s %s: %w\n%s", program, strings.Join(args, " "), err, out)
	}
	return nil
}

// command is a command running program as the server's user.
func (c *Cluster) command(program string, args ...string) *exec.Cmd {
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
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgcluster: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
