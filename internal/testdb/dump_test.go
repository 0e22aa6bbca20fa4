package testdb_test

import (
	"bytes"
	"database/sql"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/keelhq/keel/internal/testdb"
)

func TestDumpSQLiteHoldsEveryValue(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "dump.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`CREATE TABLE a (id INTEGER, note TEXT)`,
		`CREATE TABLE b (data BLOB)`,
		`INSERT INTO a VALUES (42, 'plain-secret')`,
		`INSERT INTO b VALUES (x'736563726574626c6f62')`, // "secretblob"
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	dump := testdb.DumpSQLite(t, db)
	for _, want := range []string{"42|plain-secret|\n", "secretblob|\n"} {
		if !bytes.Contains(dump, []byte(want)) {
			t.Errorf("dump %q lacks %q", dump, want)
		}
	}
	if got := testdb.DumpTables(t, db, "b"); !bytes.Equal(got, []byte("secretblob|\n")) {
		t.Errorf("DumpTables(b) = %q", got)
	}
}
