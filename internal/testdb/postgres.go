package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// URLEnv is the environment variable that holds the Postgres test server's
// URL.
const URLEnv = "TEST_DATABASE_URL"

// cleanupTimeout bounds dropping a test's schema.
const cleanupTimeout = 30 * time.Second

// PostgresURL returns the Postgres test server's URL from TEST_DATABASE_URL.
// When the variable is unset it skips the test, or fails it under CI=true.
func PostgresURL(t testing.TB) string {
	t.Helper()
	return postgresURL(t, os.Getenv)
}

func postgresURL(t testing.TB, getenv func(string) string) string {
	t.Helper()
	if url := getenv(URLEnv); url != "" {
		return url
	}
	const howTo = "set it to run them, e.g. " + URLEnv + "=postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	if getenv("CI") == "true" {
		t.Fatalf("%s is not set and CI=true: Postgres tests must run in CI; %s", URLEnv, howTo)
	}
	t.Skipf("%s is not set: skipping Postgres test; %s", URLEnv, howTo)
	return ""
}

// Postgres returns a pool on the Postgres test server whose connections use
// a new, empty schema as their search_path. The schema has a random name
// and is dropped, after the pool is closed, when the test ends. Tables
// created without a schema name land in it.
//
// The pool's settings come from the URL (pool_max_conns and the like);
// Postgres adds only the search_path. Use pool.Config() to open a second
// pool on the same schema.
func Postgres(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := PostgresURL(t)
	ctx := context.Background()

	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("testdb: parse %s: %v", URLEnv, err)
	}
	schema := newSchemaName()
	if err := exec(ctx, cfg.ConnConfig, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("testdb: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := exec(ctx, cfg.ConnConfig, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("testdb: drop schema %s: %v", schema, err)
		}
	})

	// A startup parameter, not a SET: it holds on every connection the
	// pool opens, from its first statement, and survives RESET ALL.
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("testdb: open pool: %v", err)
	}
	t.Cleanup(pool.Close) // runs before the schema is dropped
	return pool
}

// newSchemaName returns a random schema name, short enough to leave room
// for prefixes in derived identifiers (Postgres truncates them at 63 bytes).
func newSchemaName() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails
	return "keeltest_" + hex.EncodeToString(b)
}

// exec runs one statement on a connection of its own.
func exec(ctx context.Context, cfg *pgx.ConnConfig, sql string) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return err
	}
	return nil
}
