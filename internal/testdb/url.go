package testdb

import (
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresWithURL is Postgres that also returns a connection URL on the
// same schema, for code under test that opens the database itself from a
// DSN (a command's --db flag, appdb.Open). Connections opened with the URL
// use the test's schema as their search_path, as the pool's do, and see the
// same tables.
func PostgresWithURL(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	pool := Postgres(t)
	schema := pool.Config().ConnConfig.RuntimeParams["search_path"]
	dsn, err := withSearchPath(PostgresURL(t), schema)
	if err != nil {
		t.Fatalf("testdb: %s: %v", URLEnv, err)
	}
	return pool, dsn
}

// withSearchPath adds a search_path run-time parameter to a postgres://
// URL or a keyword/value DSN. pgx sends parameters it does not know itself
// to the server at connection start-up.
func withSearchPath(dsn, schema string) (string, error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return strings.TrimSpace(dsn) + " search_path=" + schema, nil
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}
