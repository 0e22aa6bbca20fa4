package main

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/internal/testdb"
	"github.com/keelhq/keel/tools/kb"
)

// kbDatabases name a fresh SQLite file and a fresh Postgres schema as the
// --db flag takes them.
func kbDatabases() map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"SQLite": func(t *testing.T) string { return filepath.Join(t.TempDir(), "keel.db") },
		"Postgres": func(t *testing.T) string {
			pool := testdb.Postgres(t)
			u, err := url.Parse(testdb.PostgresURL(t))
			require.NoError(t, err)
			q := u.Query()
			q.Set("search_path", pool.Config().ConnConfig.RuntimeParams["search_path"])
			u.RawQuery = q.Encode()
			return u.String()
		},
	}
}

func TestKBImport(t *testing.T) {
	t.Parallel()
	for name, newDB := range kbDatabases() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := newDB(t)
			dir := t.TempDir()
			write := func(file, text string) {
				require.NoError(t, os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644))
			}
			write("shipping.md", "---\ntags: [orders]\n---\n# Shipping times\n\nParcels ship within two days.\n")
			write("returns.md", "# Returns\n\nSend items back within 30 days.\n")

			out, err := keel("kb", "import", dir, "--db", db).CombinedOutput()
			require.NoError(t, err, string(out))
			require.Contains(t, string(out), "imported 2 articles from "+dir)
			require.Contains(t, string(out), "2 created, 0 updated, 0 unchanged")

			write("returns.md", "# Returns\n\nSend items back within 60 days.\n")
			out, err = keel("kb", "import", dir, "--db", db).CombinedOutput()
			require.NoError(t, err, string(out))
			require.Contains(t, string(out), "0 created, 1 updated, 1 unchanged")

			out, err = keel("kb", "search", "when", "do", "parcels", "ship", "--db", db).CombinedOutput()
			require.NoError(t, err, string(out))
			require.Contains(t, string(out), "1. Shipping times (shipping) [orders]")

			// What the command wrote is what the package reads.
			adb, err := appdb.Open(t.Context(), db)
			require.NoError(t, err)
			defer adb.Close()
			s, err := kb.New(t.Context(), adb, nil)
			require.NoError(t, err)
			n, err := s.Count(t.Context())
			require.NoError(t, err)
			require.Equal(t, 2, n)
			doc, err := s.Get(t.Context(), "returns")
			require.NoError(t, err)
			require.Contains(t, doc.Body, "60 days")

			// A bad file fails the import and writes nothing.
			write("broken.md", "no title here\n")
			out, err = keel("kb", "import", dir, "--db", db).CombinedOutput()
			require.Error(t, err)
			require.Contains(t, string(out), "broken.md")
			n, err = s.Count(t.Context())
			require.NoError(t, err)
			require.Equal(t, 2, n)
		})
	}
}

func TestKBImportDemo(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "keel.db")
	out, err := keel("kb", "import", "--demo", "--db", db).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "imported 12 articles from the demo knowledge base")

	out, err = keel("kb", "search", "I was charged twice", "--limit", "1", "--db", db).CombinedOutput()
	require.NoError(t, err, string(out))
	require.True(t, strings.HasPrefix(string(out), "1. I was charged twice: duplicate charges on my card (double-charge)"), string(out))

	out, err = keel("kb", "search", "?!", "--db", db).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "empty search query")

	out, err = keel("kb", "import", "--db", db).CombinedOutput()
	require.Error(t, err, "a directory is required without --demo")
	require.Contains(t, string(out), "accepts 1 arg")
	out, err = keel("kb", "import", filepath.Join(t.TempDir(), "missing"), "--db", db).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "no such file or directory")
}
