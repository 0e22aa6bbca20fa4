// Package appdb opens the database that Keel's integrations keep their own
// tables in — the CRM, the knowledge base, tickets, the email outbox, the
// billing ledger and approvals — and migrates each package's tables.
//
// It is the same database the engine's store uses: a SQLite file, or a
// PostgreSQL database named by a postgres:// URL. Each package embeds its
// migrations in two folders, sqlite/ and postgres/, and applies them with
// Migrate under a version table of its own (keel_<name>_schema_version), so
// packages evolve their tables independently and never clash with the
// engine's schema or an application's own migrations.
//
// Queries are written with '?' placeholders; Rebind turns them into $1, $2…
// for Postgres.
package appdb
