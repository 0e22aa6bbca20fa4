package pgstore

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/keelhq/keel/durable/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// versionTable is goose's version table. It is named for Keel so that it
// cannot clash with an application's own goose migrations in the same
// schema.
const versionTable = "keel_schema_version"

// migrate applies the embedded migrations to schema, the first schema of
// pool's search_path.
//
// goose's Postgres session locker holds a session advisory lock while it
// migrates; the lock ID is derived from the schema name, so that stores in
// different schemas (one per test, say) migrate independently while
// processes sharing a schema run its migrations one at a time.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string, cfg *Config) error {
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("pgstore: migrations: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(lockID(schema)),
		lock.WithLockTimeout(1, uint64(cfg.MigrationLockTimeout.Seconds())),
	)
	if err != nil {
		return fmt.Errorf("pgstore: migration lock: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithTableName(versionTable),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSessionLocker(locker),
		goose.WithSlog(cfg.Logger),
	)
	if err != nil {
		_ = db.Close()
		return fmt.Errorf("pgstore: migrations: %w", err)
	}
	defer p.Close() // closes db, not pool

	// Refuse a newer schema before goose looks at it: goose would apply
	// nothing, or fail on a migration it does not know as "missing".
	if err := checkVersion(ctx, p, schema); err != nil {
		return err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: migrate schema %s: %w", schema, err)
	}
	for _, r := range results {
		cfg.Logger.Info("pgstore: applied migration", "schema", schema, "version", r.Source.Version, "duration", r.Duration)
	}
	// A newer binary may have migrated between the check and Up.
	return checkVersion(ctx, p, schema)
}

// checkVersion fails with store.ErrSchemaTooNew if the schema's version is
// above the highest embedded migration.
func checkVersion(ctx context.Context, p *goose.Provider, schema string) error {
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: read schema version of %s: %w", schema, err)
	}
	if current > target {
		return fmt.Errorf("pgstore: schema %s is at version %d, this binary knows up to %d: %w",
			schema, current, target, store.ErrSchemaTooNew)
	}
	return nil
}

// lockID is the advisory lock ID that guards schema's migrations.
func lockID(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("keel/pgstore/migrate/" + schema))
	return int64(h.Sum64())
}
