package email_test

import (
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/internal/crashtest"
	"github.com/keelhq/keel/internal/testdb"
	"github.com/keelhq/keel/tools/email"
	"github.com/keelhq/keel/tools/email/sendgridfake"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashHelperEnv) != "" {
		os.Exit(crashtest.HelperMain(60*time.Second, crashHelper))
	}
	goleak.VerifyTestMain(m)
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

// testBundle is what a test works with.
type testBundle struct {
	db   *appdb.DB
	fake *sendgridfake.Server
	svc  *email.Service
}

const sender = "Keel Support <support@keel.example>"

// newService returns a Service over db sending to fake. cfg may be nil;
// its APIKey, BaseURL and From are filled in when empty.
func newService(t *testing.T, db *appdb.DB, fake *sendgridfake.Server, cfg *email.Config) *email.Service {
	t.Helper()
	c := email.Config{}
	if cfg != nil {
		c = *cfg
	}
	if c.APIKey == "" {
		c.APIKey = sendgridfake.APIKey
	}
	if c.BaseURL == "" {
		c.BaseURL = fake.URL
	}
	if c.From == "" {
		c.From = sender
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	}
	c.Logger = slog.New(slog.DiscardHandler)
	svc, err := email.New(t.Context(), db, &c)
	require.NoError(t, err)
	t.Cleanup(func() { svc.Close() })
	return svc
}

func setup(t *testing.T, open dbOpener, cfg *email.Config) *testBundle {
	t.Helper()
	fake := sendgridfake.NewServer()
	t.Cleanup(fake.Close)
	b := &testBundle{db: open(t), fake: fake}
	b.svc = newService(t, b.db, fake, cfg)
	return b
}

// requireCode asserts that err is an *email.Error of code matching
// sentinel.
func requireCode(t *testing.T, err error, code email.Code, sentinel error) *email.Error {
	t.Helper()
	require.Error(t, err)
	var ee *email.Error
	require.True(t, errors.As(err, &ee), "not an *email.Error: %v", err)
	require.Equal(t, code, ee.Code, "%v", err)
	require.ErrorIs(t, err, sentinel)
	require.Equal(t, !code.Retryable(), ee.NonRetryable())
	return ee
}

func reply(key string) email.SendParams {
	return email.SendParams{
		To:      []string{"Ada Lovelace <ada@example.com>"},
		Cc:      []string{"ops@example.com"},
		Subject: "Your ticket T-1 is resolved",
		Text:    "Hi Ada, reset your password from the login page.",
		HTML:    "<p>Hi Ada, reset your password from the login page.</p>",
		Key:     key,
	}
}
