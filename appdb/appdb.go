package appdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/keelhq/keel/durable/store/sqlitestore"
)

// Dialect names the kind of database behind a DB.
type Dialect string

// The dialects Keel supports.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is a database handle together with its dialect.
type DB struct {
	*sql.DB
	Dialect Dialect
	pool    *pgxpool.Pool
}

// IsPostgresURL reports whether dsn names a PostgreSQL database rather
// than a SQLite file.
func IsPostgresURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open opens dsn: a postgres:// or postgresql:// URL, or else the path of
// a SQLite file, opened with the same durability settings as the engine's
// SQLite store (WAL, synchronous=FULL, a busy timeout).
func Open(ctx context.Context, dsn string) (*DB, error) {
	if IsPostgresURL(dsn) {
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("appdb: open postgres: %w", err)
		}
		if err := pool.Ping(ctx); err != nil {
			pool.Close()
			return nil, fmt.Errorf("appdb: open postgres: %w", err)
		}
		db := FromPool(pool)
		db.pool = pool
		return db, nil
	}
	sdb, err := sql.Open("sqlite", sqlitestore.DSN(dsn))
	if err != nil {
		return nil, fmt.Errorf("appdb: open sqlite %s: %w", dsn, err)
	}
	if err := sqlitestore.WaitReady(ctx, sdb); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("appdb: open sqlite %s: %w", dsn, err)
	}
	return &DB{DB: sdb, Dialect: SQLite}, nil
}

// FromPool wraps a pgx pool (for example the one a pgstore.Store uses, or
// testdb.Postgres in tests) as a Postgres DB. Closing the DB does not close
// the pool.
func FromPool(pool *pgxpool.Pool) *DB {
	return &DB{DB: stdlib.OpenDBFromPool(pool), Dialect: Postgres}
}

// FromSQLite wraps a database/sql handle on a SQLite file as a DB.
func FromSQLite(db *sql.DB) *DB {
	return &DB{DB: db, Dialect: SQLite}
}

// Close closes the handle, and the pool if Open created it.
func (db *DB) Close() error {
	err := db.DB.Close()
	if db.pool != nil {
		db.pool.Close()
	}
	return err
}

// Rebind rewrites the '?' placeholders of query as $1, $2… for Postgres and
// returns it unchanged for SQLite. A '?' inside a single-quoted string
// literal is left alone.
func (db *DB) Rebind(query string) string {
	if db.Dialect != Postgres {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	inString := false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			inString = !inString
			b.WriteByte(c)
		case c == '?' && !inString:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Migrate applies the migrations for one package. fsys holds two folders,
// sqlite/ and postgres/, of goose SQL migrations; the folder for db's
// dialect is applied under the version table keel_<name>_schema_version.
//
// Several processes may migrate at once: on Postgres a session advisory
// lock serializes them; on SQLite a process that loses the race finds the
// migration applied when it tries again.
func (db *DB) Migrate(ctx context.Context, name string, fsys fs.FS) error {
	sub, err := fs.Sub(fsys, string(db.Dialect))
	if err != nil {
		return fmt.Errorf("appdb: %s migrations: %w", name, err)
	}
	opts := []goose.ProviderOption{
		goose.WithTableName("keel_" + name + "_schema_version"),
		goose.WithDisableGlobalRegistry(true),
	}
	dialect := goose.DialectSQLite3
	if db.Dialect == Postgres {
		dialect = goose.DialectPostgres
		// The tables live in the connection's schema: migrations of the
		// same package into different schemas need not wait for each other.
		var schema string
		if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
			return fmt.Errorf("appdb: %s migrations: %w", name, err)
		}
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID(schema + "." + name)))
		if err != nil {
			return fmt.Errorf("appdb: %s migrations: %w", name, err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db.DB, sub, opts...)
	if err != nil {
		return fmt.Errorf("appdb: %s migrations: %w", name, err)
	}
	_, err = p.Up(ctx)
	if err != nil && db.Dialect == SQLite {
		// Another process may have applied the same migration between
		// goose's version check and its write; look again.
		_, err = p.Up(ctx)
	}
	if err != nil && !errors.Is(err, goose.ErrNoNextVersion) {
		return fmt.Errorf("appdb: migrate %s: %w", name, err)
	}
	return nil
}

// lockID derives a stable advisory lock ID from a package name, distinct
// per package so that unrelated migrations do not wait for each other.
func lockID(name string) int64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return int64(h >> 1)
}
