package testdb

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Queryer is a database/sql handle: *sql.DB, *sql.Tx, *appdb.DB.
type Queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// DumpSQLite returns every value of every table of a SQLite database, for
// tests that look for a string anywhere in what is stored (a secret that
// must have been encrypted, say). See DumpTables for the format.
func DumpSQLite(tb testing.TB, db Queryer) []byte {
	tb.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		tb.Fatalf("testdb: list tables: %v", err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			tb.Fatalf("testdb: list tables: %v", err)
		}
		tables = append(tables, name)
	}
	if err := rows.Close(); err != nil {
		tb.Fatalf("testdb: list tables: %v", err)
	}
	if len(tables) == 0 {
		tb.Fatalf("testdb: the database has no tables")
	}
	return DumpTables(tb, db, tables...)
}

// DumpTables returns every value of every row of the named tables, as
// SELECT * returns them: raw bytes as they are, anything else as fmt
// prints it; each value followed by '|', each row by a newline.
func DumpTables(tb testing.TB, db Queryer, tables ...string) []byte {
	tb.Helper()
	var b bytes.Buffer
	for _, table := range tables {
		if err := dumpTable(&b, db, table); err != nil {
			tb.Fatalf("testdb: dump table %s: %v", table, err)
		}
	}
	return b.Bytes()
}

func dumpTable(b *bytes.Buffer, db Queryer, table string) error {
	rows, err := db.QueryContext(context.Background(), `SELECT * FROM "`+table+`"`)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for _, v := range vals {
			if raw, ok := v.([]byte); ok {
				b.Write(raw)
			} else {
				fmt.Fprint(b, v)
			}
			b.WriteByte('|')
		}
		b.WriteByte('\n')
	}
	return rows.Err()
}

// DumpPostgres returns every row of every table of the pool's current
// schema in PostgreSQL's text form (bytea as \x and hex, so a test looks
// for a secret's hex too), a row per line.
func DumpPostgres(tb testing.TB, pool *pgxpool.Pool) []byte {
	tb.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
	if err != nil {
		tb.Fatalf("testdb: list tables: %v", err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatalf("testdb: list tables: %v", err)
	}
	if len(tables) == 0 {
		tb.Fatalf("testdb: the schema has no tables")
	}
	var b bytes.Buffer
	for _, table := range tables {
		rows, err := pool.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{table}.Sanitize()+` t`)
		if err != nil {
			tb.Fatalf("testdb: dump table %s: %v", table, err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			tb.Fatalf("testdb: dump table %s: %v", table, err)
		}
		for _, s := range texts {
			b.WriteString(s)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}
