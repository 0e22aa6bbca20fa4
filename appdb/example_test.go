package appdb_test

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/appdb"
)

//go:embed testdata/migrations
var migrations embed.FS

// A package keeps its tables in the application database: it opens (or is
// given) a DB, applies its own migrations, and writes its queries once with
// '?' placeholders.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "appdb")
	defer os.RemoveAll(dir)

	db, err := appdb.Open(ctx, filepath.Join(dir, "keel.db")) // or a postgres:// URL
	if err != nil {
		panic(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx, "notes", mustSub(migrations, "testdata/migrations")); err != nil {
		panic(err)
	}
	if _, err := db.ExecContext(ctx, db.Rebind("INSERT INTO notes (body) VALUES (?)"), "hello"); err != nil {
		panic(err)
	}
	var body string
	if err := db.QueryRowContext(ctx, "SELECT body FROM notes").Scan(&body); err != nil {
		panic(err)
	}
	fmt.Println(db.Dialect, body)
	// Output: sqlite hello
}

func mustSub(fsys embed.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return sub
}
