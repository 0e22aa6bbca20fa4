package kb_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/internal/testdb"
	"github.com/keelhq/keel/tools/kb"
)

// eachDB runs fn as two parallel subtests, on a fresh SQLite file and on a
// fresh Postgres schema.
func eachDB(t *testing.T, fn func(t *testing.T, db *appdb.DB)) {
	t.Helper()
	t.Run("SQLite", func(t *testing.T) {
		t.Parallel()
		db, err := appdb.Open(t.Context(), filepath.Join(t.TempDir(), "keel.db"))
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		fn(t, db)
	})
	t.Run("Postgres", func(t *testing.T) {
		t.Parallel()
		db := appdb.FromPool(testdb.Postgres(t))
		t.Cleanup(func() { db.Close() })
		fn(t, db)
	})
}

func newStore(t *testing.T, db *appdb.DB) *kb.Store {
	t.Helper()
	s, err := kb.New(t.Context(), db, nil)
	require.NoError(t, err)
	return s
}

func demoStore(t *testing.T, db *appdb.DB) *kb.Store {
	t.Helper()
	s := newStore(t, db)
	res, err := kb.LoadDemo(t.Context(), s)
	require.NoError(t, err)
	require.Equal(t, 12, res.Created)
	return s
}

// The shipped knowledge base answers typical support questions with the
// right article first, on both databases.
func TestSearchRelevance(t *testing.T) {
	t.Parallel()
	cases := []struct{ query, want string }{
		{"I was charged twice", "double-charge"},
		{"there are two identical payments on my credit card statement", "double-charge"},
		{"how do I get my money back?", "refunds"},
		{"where can I download a PDF invoice with our VAT number", "invoices"},
		{"upgrade from Starter to Pro", "change-plan"},
		{"I want to cancel my subscription", "cancel-subscription"},
		{"forgot my password and the reset email never arrived", "password-reset"},
		{"lost my phone with the authenticator app", "two-factor-authentication"},
		{"change the email address I log in with", "change-email"},
		{"export all my data to CSV", "export-data"},
		{"API returns 429 Too Many Requests", "api-rate-limits"},
		{"webhook signature verification fails", "webhooks"},
		{"Slack notifications stopped", "integrations"},
	}
	eachDB(t, func(t *testing.T, db *appdb.DB) {
		s := demoStore(t, db)
		for _, c := range cases {
			res, err := s.Search(t.Context(), c.query, nil)
			require.NoError(t, err, c.query)
			require.NotEmpty(t, res, c.query)
			keys := make([]string, len(res))
			for i, r := range res {
				keys[i] = r.Key
			}
			require.Equal(t, c.want, res[0].Key, "query %q ranked %v", c.query, keys)
			for i := 1; i < len(res); i++ {
				require.GreaterOrEqual(t, res[i-1].Score, res[i].Score, "results are sorted by score")
			}
		}
	})
}

func TestSearchResults(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *appdb.DB) {
		s := demoStore(t, db)
		ctx := t.Context()

		res, err := s.Search(ctx, "refund", &kb.SearchOpts{Limit: 2})
		require.NoError(t, err)
		require.Len(t, res, 2)
		require.Equal(t, "refunds", res[0].Key)
		require.Equal(t, "Refund policy and how to request a refund", res[0].Title)
		require.Equal(t, []string{"billing", "refunds"}, res[0].Tags)
		require.Contains(t, strings.ToLower(res[0].Snippet), "**refund")
		require.Positive(t, res[0].Score)

		// The tag filter keeps only documents with every tag.
		res, err = s.Search(ctx, "API key", &kb.SearchOpts{Tags: []string{"Developers", "api"}, Limit: 50})
		require.NoError(t, err)
		require.NotEmpty(t, res)
		for _, r := range res {
			require.Contains(t, []string{"api-rate-limits", "webhooks"}, r.Key)
		}
		res, err = s.Search(ctx, "refund", &kb.SearchOpts{Tags: []string{"security"}})
		require.NoError(t, err)
		require.Empty(t, res)

		// Default limit, and no match at all.
		res, err = s.Search(ctx, "settings", nil)
		require.NoError(t, err)
		require.Len(t, res, kb.DefaultLimit)
		res, err = s.Search(ctx, "xylophone", nil)
		require.NoError(t, err)
		require.Empty(t, res)
	})
}

// Search text is never read as a query language: operators, quotes and
// punctuation are words or nothing, never an SQL error.
func TestSearchHostileQueries(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *appdb.DB) {
		s := demoStore(t, db)
		ctx := t.Context()
		for _, q := range []string{
			`"charged twice`, `charged AND NOT twice`, `refund*`, `title:refund`, `NEAR(refund cancel)`,
			`-refund`, `^refund`, `refund OR`, `(refund`, `refund & !cancel | <->`, `'; DROP TABLE kb_documents; --`,
			`refund:*`, `"" OR ""`, `{title}: refund`, `😀 refund`, strings.Repeat("refund ", 500), strings.Repeat("x", 5000) + " refund",
		} {
			_, err := s.Search(ctx, q, nil)
			require.NoError(t, err, "query %q", q)
		}
		res, err := s.Search(ctx, `"refund" OR -"cancel*"`, nil)
		require.NoError(t, err)
		require.NotEmpty(t, res)

		for _, q := range []string{"", "   ", `"*"`, "?!", "()", `\"`} {
			_, err := s.Search(ctx, q, nil)
			require.ErrorIs(t, err, kb.ErrEmptyQuery, "query %q", q)
		}
		// Only common words: a valid query that matches nothing.
		res, err = s.Search(ctx, "how do I", nil)
		require.NoError(t, err)
		require.Empty(t, res)

		n, err := s.Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 12, n)
	})
}

func TestUpsert(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *appdb.DB) {
		ctx := t.Context()
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		var mu sync.Mutex
		s, err := kb.New(ctx, db, &kb.Config{Test: kb.TestConfig{Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			now = now.Add(time.Minute)
			return now
		}}})
		require.NoError(t, err)

		up, err := s.Upsert(ctx, kb.Document{Key: "shipping", Title: " Shipping times ", Body: "Parcels ship in two days.", Tags: []string{"Orders", "orders", " "}})
		require.NoError(t, err)
		require.True(t, up.Created)
		require.True(t, up.Changed)
		require.Equal(t, "Shipping times", up.Document.Title)
		require.Equal(t, []string{"orders"}, up.Document.Tags)
		first := up.Document

		// The same content again changes nothing.
		up, err = s.Upsert(ctx, kb.Document{Key: "shipping", Title: "Shipping times", Body: "Parcels ship in two days.", Tags: []string{"orders"}})
		require.NoError(t, err)
		require.False(t, up.Created)
		require.False(t, up.Changed)
		require.Equal(t, first.UpdatedAt, up.Document.UpdatedAt)

		// New content replaces the old, in the index too.
		up, err = s.Upsert(ctx, kb.Document{Key: "shipping", Title: "Delivery times", Body: "Parcels arrive within a week.", Tags: []string{"delivery"}})
		require.NoError(t, err)
		require.False(t, up.Created)
		require.True(t, up.Changed)
		require.Equal(t, first.ID, up.Document.ID)
		got, err := s.Get(ctx, "shipping")
		require.NoError(t, err)
		require.Equal(t, "Delivery times", got.Title)
		require.Equal(t, []string{"delivery"}, got.Tags)
		require.Equal(t, first.CreatedAt, got.CreatedAt)
		require.True(t, got.UpdatedAt.After(first.UpdatedAt))

		res, err := s.Search(ctx, "parcels ship days", nil)
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.Contains(t, res[0].Snippet, "**Parcels**")
		res, err = s.Search(ctx, "shipping", nil)
		require.NoError(t, err)
		require.Empty(t, res, "the old title is no longer indexed")
		res, err = s.Search(ctx, "parcels", &kb.SearchOpts{Tags: []string{"orders"}})
		require.NoError(t, err)
		require.Empty(t, res, "the old tags are gone")

		n, err := s.Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)

		require.NoError(t, s.Delete(ctx, "shipping"))
		_, err = s.Get(ctx, "shipping")
		require.ErrorIs(t, err, kb.ErrNotFound)
		require.ErrorIs(t, s.Delete(ctx, "shipping"), kb.ErrNotFound)
		res, err = s.Search(ctx, "parcels", nil)
		require.NoError(t, err)
		require.Empty(t, res, "a deleted document leaves the index")
	})
}

func TestUpsertInvalid(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *appdb.DB) {
		s := newStore(t, db)
		ctx := t.Context()
		for _, doc := range []kb.Document{
			{Title: "No key"},
			{Key: "no-title", Body: "text"},
			{Key: strings.Repeat("k", kb.MaxKeyLen+1), Title: "Long key"},
			{Key: "bad-utf8", Title: "Bad \xff"},
			{Key: "long-tag", Title: "T", Tags: []string{strings.Repeat("t", kb.MaxTagLen+1)}},
		} {
			_, err := s.Upsert(ctx, doc)
			require.ErrorIs(t, err, kb.ErrInvalidDocument)
		}
		tags := make([]string, kb.MaxTags+1)
		for i := range tags {
			tags[i] = strings.Repeat("t", i+1)
		}
		_, err := s.Upsert(ctx, kb.Document{Key: "many-tags", Title: "T", Tags: tags})
		require.ErrorIs(t, err, kb.ErrInvalidDocument)
		n, err := s.Count(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

func TestImportDir(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *appdb.DB) {
		s := newStore(t, db)
		ctx := t.Context()
		dir := t.TempDir()
		write := func(name, text string) {
			t.Helper()
			p := filepath.Join(dir, name)
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
		}
		write("returns.md", "---\ntags: [orders, refunds]\n---\n# Returning an item\n\nSend it back within 30 days.\n")
		write("faq/Opening-Hours.markdown", "---\ntitle: When we are open\ntags: support, hours\n---\nMonday to Friday, 9 to 5.\n")
		write("notes.txt", "not markdown")

		res, err := kb.ImportDir(ctx, s, dir)
		require.NoError(t, err)
		require.Equal(t, kb.ImportResult{Created: 2, Keys: []string{"opening-hours", "returns"}}, res)

		doc, err := s.Get(ctx, "returns")
		require.NoError(t, err)
		require.Equal(t, "Returning an item", doc.Title)
		require.Equal(t, "Send it back within 30 days.", doc.Body)
		require.Equal(t, []string{"orders", "refunds"}, doc.Tags)
		doc, err = s.Get(ctx, "opening-hours")
		require.NoError(t, err)
		require.Equal(t, "When we are open", doc.Title)
		require.Equal(t, []string{"hours", "support"}, doc.Tags)

		// Importing again updates what changed and adds nothing.
		write("returns.md", "# Returning an item\n\nSend it back within 60 days.\n")
		res, err = kb.ImportDir(ctx, s, dir)
		require.NoError(t, err)
		require.Equal(t, 1, res.Updated)
		require.Equal(t, 1, res.Unchanged)
		require.Zero(t, res.Created)
		n, err := s.Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		doc, err = s.Get(ctx, "returns")
		require.NoError(t, err)
		require.Equal(t, "Send it back within 60 days.", doc.Body)
		require.Empty(t, doc.Tags)

		// A bad file fails the import before anything is written.
		write("zz-new.md", "# A new article\n\nBody.\n")
		write("untitled.md", "Just text, no heading.\n")
		_, err = kb.ImportDir(ctx, s, dir)
		require.ErrorIs(t, err, kb.ErrInvalidDocument)
		require.ErrorContains(t, err, "untitled.md")
		_, err = s.Get(ctx, "zz-new")
		require.ErrorIs(t, err, kb.ErrNotFound)
		require.NoError(t, os.Remove(filepath.Join(dir, "untitled.md")))

		write("other/returns.md", "# Another returns page\n")
		_, err = kb.ImportDir(ctx, s, dir)
		require.ErrorIs(t, err, kb.ErrDuplicateKey)

		_, err = kb.ImportDir(ctx, s, filepath.Join(dir, "missing"))
		require.Error(t, err)
	})
}

func TestParseMarkdown(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, text string
		want       kb.Document
		err        error
	}{
		{
			name: "Heading.md",
			text: "Intro line\n# The Title #\nBody text\n",
			want: kb.Document{Key: "heading", Title: "The Title", Body: "Intro line\nBody text"},
		},
		{
			name: "fence.md",
			text: "```\n# not a title\n```\n# Real title\n",
			want: kb.Document{Key: "fence", Title: "Real title", Body: "```\n# not a title\n```"},
		},
		{
			name: "front.md",
			text: "\ufeff---\r\ntitle: From front matter\r\ntags:\r\n  - B\r\n  - a\r\n---\r\n# Heading stays\r\nText\r\n",
			want: kb.Document{Key: "front", Title: "From front matter", Body: "# Heading stays\nText", Tags: []string{"a", "b"}},
		},
		{
			name: "empty-front.md",
			text: "---\n---\n# T\n",
			want: kb.Document{Key: "empty-front", Title: "T"},
		},
		{name: "none.md", text: "## Only a subheading\n", err: kb.ErrInvalidDocument},
		{name: "open.md", text: "---\ntitle: x\n# T\n", err: kb.ErrInvalidDocument},
		{name: "yaml.md", text: "---\ntitle: [unclosed\n---\n# T\n", err: kb.ErrInvalidDocument},
	}
	for _, c := range cases {
		doc, err := kb.ParseMarkdown(c.name, []byte(c.text))
		if c.err != nil {
			require.True(t, errors.Is(err, c.err), "%s: %v", c.name, err)
			continue
		}
		require.NoError(t, err, c.name)
		require.Equal(t, c.want, doc, c.name)
	}
}

func TestMigrateTwice(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *appdb.DB) {
		s := demoStore(t, db)
		// A second Store on the same database (another process, a restart)
		// finds the tables and the documents.
		s2 := newStore(t, db)
		n, err := s2.Count(t.Context())
		require.NoError(t, err)
		require.Equal(t, 12, n)
		res, err := kb.LoadDemo(t.Context(), s)
		require.NoError(t, err)
		require.Equal(t, 12, res.Unchanged)
	})
}
