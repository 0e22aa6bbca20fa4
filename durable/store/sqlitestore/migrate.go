package sqlitestore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/keelhq/keel/durable/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// versionTable is the goose version table. It is named for Keel so that it
// cannot clash with an application's own goose migrations in the same file.
const versionTable = "keel_schema_version"

// lockWait bounds how long migrate waits for another connection's write
// transaction, beyond the handle's own busy timeout.
const lockWait = 30 * time.Second

// migrate applies the embedded migrations to db.
//
// It first checks the schema version in a transaction begun with BEGIN
// IMMEDIATE, which holds SQLite's write lock, creating goose's version table
// if needed; an up-to-date database needs nothing more. Otherwise all
// pending migrations run through goose in one more IMMEDIATE transaction:
// several processes opening the same new file at once migrate it one after
// the other, and all but the first find nothing to do. That transaction
// commits only if every migration applied, so a failure changes nothing.
func migrate(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("sqlitestore: migrations: %w", err)
	}
	l := &migrationLock{}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys,
		goose.WithTableName(versionTable),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSessionLocker(l),
		// goose must not begin transactions of its own: the session lock
		// is the transaction.
		goose.WithIsolateDDL(true),
		goose.WithSlog(logger),
	)
	if err != nil {
		return fmt.Errorf("sqlitestore: migrations: %w", err)
	}
	for _, src := range p.ListSources() {
		l.target = max(l.target, src.Version)
	}

	current, err := prepareVersionTable(ctx, db, l.target)
	if err != nil {
		return err
	}
	if current == l.target {
		return nil
	}
	results, err := p.Up(ctx)
	if err != nil {
		if errors.Is(err, store.ErrSchemaTooNew) {
			return fmt.Errorf("sqlitestore: database schema version %d, this binary knows up to %d: %w", l.found, l.target, store.ErrSchemaTooNew)
		}
		return fmt.Errorf("sqlitestore: migrate: %w", err)
	}
	for _, r := range results {
		logger.Info("sqlitestore: applied migration", "version", r.Source.Version, "duration", r.Duration)
	}
	return nil
}

// prepareVersionTable creates goose's version table if it does not exist
// yet (so that goose never races to create it) and returns the schema
// version, failing with store.ErrSchemaTooNew if it is above target.
func prepareVersionTable(ctx context.Context, db *sql.DB, target int64) (version int64, err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: migrate: %w", err)
	}
	defer conn.Close()
	if err := beginImmediate(ctx, conn); err != nil {
		return 0, fmt.Errorf("sqlitestore: migrate: %w", err)
	}
	defer func() {
		end := "COMMIT"
		if err != nil {
			end = "ROLLBACK"
		}
		if _, e := conn.ExecContext(context.WithoutCancel(ctx), end); e != nil && err == nil {
			err = fmt.Errorf("sqlitestore: migrate: %w", e)
		}
	}()
	exists, err := versionTableExists(ctx, conn)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: migrate: %w", err)
	}
	if !exists {
		vs, err := database.NewStore(database.DialectSQLite3, versionTable)
		if err != nil {
			return 0, fmt.Errorf("sqlitestore: migrate: %w", err)
		}
		if err := vs.CreateVersionTable(ctx, conn); err != nil {
			return 0, fmt.Errorf("sqlitestore: migrate: create version table: %w", err)
		}
		if err := vs.Insert(ctx, conn, database.InsertRequest{Version: 0}); err != nil {
			return 0, fmt.Errorf("sqlitestore: migrate: create version table: %w", err)
		}
		return 0, nil
	}
	v, err := schemaVersion(ctx, conn)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: migrate: %w", err)
	}
	if v > target {
		return v, fmt.Errorf("sqlitestore: database schema version %d, this binary knows up to %d: %w", v, target, store.ErrSchemaTooNew)
	}
	return v, nil
}

// beginImmediate begins a transaction holding SQLite's write lock on conn,
// waiting for another connection's write transaction to end even if the
// handle has no busy timeout of its own.
func beginImmediate(ctx context.Context, conn *sql.Conn) error {
	deadline := time.Now().Add(lockWait)
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		_, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE")
		if err == nil {
			return nil
		}
		if !isBusy(err) || time.Now().After(deadline) {
			return fmt.Errorf("lock database: %w", err)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// migrationLock is a goose session locker that holds SQLite's write lock
// for the whole migration: SessionLock begins an IMMEDIATE transaction on
// the connection goose then migrates on, and SessionUnlock commits it if the
// schema reached the target version, or rolls it back.
type migrationLock struct {
	target int64 // highest embedded migration version
	found  int64 // version found in the database
}

func (l *migrationLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if err := beginImmediate(ctx, conn); err != nil {
		return err
	}
	v, err := schemaVersion(ctx, conn)
	if err == nil && v > l.target {
		l.found = v
		err = store.ErrSchemaTooNew
	}
	if err != nil {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return err
	}
	return nil
}

func (l *migrationLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	v, err := schemaVersion(ctx, conn)
	if err != nil || v != l.target {
		_, _ = conn.ExecContext(ctx, "ROLLBACK")
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		_, _ = conn.ExecContext(ctx, "ROLLBACK")
		return fmt.Errorf("commit migration: %w", err)
	}
	return nil
}

func versionTableExists(ctx context.Context, conn *sql.Conn) (bool, error) {
	var n int
	if err := conn.QueryRowContext(ctx,
		"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", versionTable).Scan(&n); err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	return n > 0, nil
}

// schemaVersion returns the highest migration version recorded in the
// database, 0 for a new database.
func schemaVersion(ctx context.Context, conn *sql.Conn) (int64, error) {
	if ok, err := versionTableExists(ctx, conn); err != nil || !ok {
		return 0, err
	}
	var v sql.NullInt64
	if err := conn.QueryRowContext(ctx,
		"SELECT max(version_id) FROM "+versionTable+" WHERE is_applied").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v.Int64, nil
}

// isBusy reports whether err is SQLite's SQLITE_BUSY (the database is
// locked by another connection).
func isBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}
