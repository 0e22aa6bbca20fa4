package billing_test

import (
	"bufio"
	"errors"
	"go/build"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/billing"
	"github.com/keelhq/keel/billing/stripefake"
	"github.com/keelhq/keel/internal/crashtest"
	"github.com/keelhq/keel/internal/testdb"
)

// stripeMockURL is the base URL of the stripe-mock started by TestMain, or
// "" when the binary is not installed (stripeMockSkip says why).
var (
	stripeMockURL  string //nolint:gochecknoglobals // set once by TestMain
	stripeMockSkip string //nolint:gochecknoglobals // set once by TestMain
)

func TestMain(m *testing.M) {
	if os.Getenv(crashHelperEnv) != "" {
		os.Exit(crashtest.HelperMain(60*time.Second, crashHelper))
	}
	stop := startStripeMock()
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		stop()
		os.Exit(code)
	}))
}

// startStripeMock starts stripe-mock, if installed, as a child process on
// free loopback ports, and returns the function that stops it. Its output
// goes to a file, which is read for the address it listens on.
func startStripeMock() (stop func()) {
	bin, err := exec.LookPath("stripe-mock")
	if err != nil {
		bin = filepath.Join(build.Default.GOPATH, "bin", "stripe-mock")
		if _, err := os.Stat(bin); err != nil {
			stripeMockSkip = "stripe-mock is not installed (go install github.com/stripe/stripe-mock@v0.203.0)"
			return func() {}
		}
	}
	logFile, err := os.CreateTemp("", "stripe-mock-*.log")
	if err != nil {
		stripeMockSkip = "stripe-mock: " + err.Error()
		return func() {}
	}
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:", "-https-addr", "127.0.0.1:")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		stripeMockSkip = "stripe-mock: " + err.Error()
		logFile.Close()
		os.Remove(logFile.Name())
		return func() {}
	}
	stop = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logFile.Close()
		os.Remove(logFile.Name())
	}
	const marker = "Listening for HTTP at address: "
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(logFile.Name())
		if _, rest, ok := strings.Cut(string(b), marker); ok {
			if addr, _, ok := strings.Cut(rest, "\n"); ok {
				stripeMockURL = "http://" + strings.TrimSpace(addr)
				return stop
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(logFile.Name())
	stripeMockSkip = "stripe-mock did not start: " + string(b)
	stop()
	return func() {}
}

// requireStripeMock returns stripe-mock's URL; without it the test is
// skipped, or failed under CI=true.
func requireStripeMock(t *testing.T) string {
	t.Helper()
	if stripeMockURL == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: %s", stripeMockSkip)
		}
		t.Skip(stripeMockSkip)
	}
	return stripeMockURL
}

// clock is a settable clock for Config.Test.Now.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// testBundle is what a test works with.
type testBundle struct {
	db    *appdb.DB
	fake  *stripefake.Server
	svc   *billing.Service
	clock *clock
}

// newService returns a Service over db talking to fake.
func newService(t *testing.T, db *appdb.DB, fake *stripefake.Server, c *clock) *billing.Service {
	t.Helper()
	svc, err := billing.New(t.Context(), db, &billing.Config{
		APIBase:    fake.URL,
		SecretKey:  stripefake.SecretKey,
		HTTPClient: fake.Client(),
		Logger:     slog.New(slog.DiscardHandler),
		Test:       billing.TestConfig{Now: c.Now},
	})
	require.NoError(t, err)
	t.Cleanup(func() { svc.Close() })
	return svc
}

// dbOpener opens a fresh database of one kind.
type dbOpener func(t *testing.T) *appdb.DB

func sqliteDB(t *testing.T) *appdb.DB {
	db, err := appdb.Open(t.Context(), filepath.Join(t.TempDir(), "keel.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func postgresDB(t *testing.T) *appdb.DB {
	db := appdb.FromPool(testdb.Postgres(t))
	t.Cleanup(func() { db.Close() })
	return db
}

// forEachDB runs fn as a subtest on SQLite and on PostgreSQL (which skips
// without TEST_DATABASE_URL, and fails without it under CI=true).
func forEachDB(t *testing.T, fn func(t *testing.T, open dbOpener)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, sqliteDB)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, postgresDB)
	})
}

// setup gives a test a database, a fake Stripe with customer cus_ada
// (default payment method pm_card_visa) and a Service.
func setup(t *testing.T, open dbOpener) *testBundle {
	t.Helper()
	fake := stripefake.NewServer()
	t.Cleanup(fake.Close)
	fake.AddCustomer("cus_ada", "pm_card_visa")
	b := &testBundle{db: open(t), fake: fake, clock: &clock{}}
	b.svc = newService(t, b.db, fake, b.clock)
	return b
}

// posts counts the POST requests the fake answered on path.
func posts(fake *stripefake.Server, path string) (total, replayed int) {
	for _, r := range fake.Requests() {
		if r.Method == "POST" && r.Path == path {
			total++
			if r.Replayed {
				replayed++
			}
		}
	}
	return total, replayed
}

// requireCode asserts that err is a *billing.Error of code and matches
// sentinel.
func requireCode(t *testing.T, err error, code billing.Code, sentinel error) *billing.Error {
	t.Helper()
	require.Error(t, err)
	var be *billing.Error
	require.True(t, errors.As(err, &be), "not a *billing.Error: %v", err)
	require.Equal(t, code, be.Code, "%v", err)
	require.ErrorIs(t, err, sentinel)
	require.Equal(t, !code.Retryable(), be.NonRetryable())
	return be
}

// readLines reads a file of lines, or none if it does not exist.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	require.NoError(t, sc.Err())
	return out
}
