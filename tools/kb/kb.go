package kb

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keelhq/keel/appdb"
)

//go:embed migrations
var migrations embed.FS

// Errors returned by the knowledge base. Match them with errors.Is.
var (
	// ErrNotFound: no document has the key.
	ErrNotFound = errors.New("kb: document not found")
	// ErrInvalidDocument: a document lacks a key or a title, or a field is
	// too long. The error's text names the field.
	ErrInvalidDocument = errors.New("kb: invalid document")
	// ErrEmptyQuery: a search query holds no word to search for.
	ErrEmptyQuery = errors.New("kb: empty search query")
)

// Limits on a document's fields.
const (
	MaxKeyLen   = 200
	MaxTitleLen = 500
	MaxBodyLen  = 1 << 20
	MaxTags     = 32
	MaxTagLen   = 64
)

// Document is one article of the knowledge base.
type Document struct {
	// ID is assigned by the database when the document is first stored.
	ID int64 `json:"id"`
	// Key identifies the document stably across imports, for example a
	// slug made from its file name ("double-charge"). Upsert matches on it.
	Key   string `json:"key"`
	Title string `json:"title"`
	// Body is the article's text, usually Markdown.
	Body string `json:"body"`
	// Tags are stored lowercased, without duplicates, sorted.
	Tags      []string  `json:"tags,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Config configures a Store. A nil *Config means all defaults.
type Config struct {
	// Test holds stubs for tests.
	Test TestConfig
}

// TestConfig holds stubs for tests.
type TestConfig struct {
	// Now returns the current time. Optional; default time.Now.
	Now func() time.Time
}

// Store is the knowledge base kept in Keel's application database. It is
// safe for concurrent use.
type Store struct {
	db  *appdb.DB
	now func() time.Time
}

// New applies the knowledge base's migrations to db (tables kb_*) and
// returns a Store on it.
func New(ctx context.Context, db *appdb.DB, cfg *Config) (*Store, error) {
	if db == nil {
		return nil, errors.New("kb: nil database")
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("kb: %w", err)
	}
	if err := db.Migrate(ctx, "kb", sub); err != nil {
		return nil, fmt.Errorf("kb: %w", err)
	}
	s := &Store{db: db, now: time.Now}
	if cfg != nil && cfg.Test.Now != nil {
		s.now = cfg.Test.Now
	}
	return s, nil
}

// UpsertResult tells what Upsert did.
type UpsertResult struct {
	Document Document
	// Created is true when no document had the key before.
	Created bool
	// Changed is true when the document was created or its title, body or
	// tags differ from what was stored. An unchanged document keeps its
	// UpdatedAt.
	Changed bool
}

// Upsert stores doc under doc.Key: it creates the document, or replaces
// the title, body and tags of the one already stored with that key. doc.ID,
// CreatedAt and UpdatedAt are ignored.
func (s *Store) Upsert(ctx context.Context, doc Document) (UpsertResult, error) {
	doc, err := normalize(doc)
	if err != nil {
		return UpsertResult{}, err
	}
	tagsJSON, err := json.Marshal(doc.Tags)
	if err != nil {
		return UpsertResult{}, fmt.Errorf("kb: upsert %q: %w", doc.Key, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return UpsertResult{}, fmt.Errorf("kb: upsert %q: %w", doc.Key, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	old, err := s.get(ctx, tx, doc.Key)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return UpsertResult{}, fmt.Errorf("kb: upsert %q: %w", doc.Key, err)
	case old.Title == doc.Title && old.Body == doc.Body && slices.Equal(old.Tags, doc.Tags):
		return UpsertResult{Document: old}, nil
	}

	now := s.now().UTC().Truncate(time.Microsecond)
	var id, created int64
	err = tx.QueryRowContext(ctx, s.db.Rebind(`
		INSERT INTO kb_documents (key, title, body, tags, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET
			title = excluded.title, body = excluded.body, tags = excluded.tags,
			updated_at = excluded.updated_at
		RETURNING id, created_at`),
		doc.Key, doc.Title, doc.Body, string(tagsJSON), now.UnixNano(), now.UnixNano(),
	).Scan(&id, &created)
	if err != nil {
		return UpsertResult{}, fmt.Errorf("kb: upsert %q: %w", doc.Key, err)
	}
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM kb_document_tags WHERE document_id = ?`), id); err != nil {
		return UpsertResult{}, fmt.Errorf("kb: upsert %q: tags: %w", doc.Key, err)
	}
	for _, tag := range doc.Tags {
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO kb_document_tags (document_id, tag) VALUES (?, ?)`), id, tag); err != nil {
			return UpsertResult{}, fmt.Errorf("kb: upsert %q: tags: %w", doc.Key, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return UpsertResult{}, fmt.Errorf("kb: upsert %q: %w", doc.Key, err)
	}
	doc.ID = id
	doc.CreatedAt = time.Unix(0, created).UTC()
	doc.UpdatedAt = now
	return UpsertResult{Document: doc, Created: old.ID == 0, Changed: true}, nil
}

// Get returns the document with the key, or an error matching ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (Document, error) {
	doc, err := s.get(ctx, s.db, key)
	if err != nil {
		return Document{}, fmt.Errorf("kb: get %q: %w", key, err)
	}
	return doc, nil
}

// Delete removes the document with the key. Deleting a key that does not
// exist returns an error matching ErrNotFound.
func (s *Store) Delete(ctx context.Context, key string) error {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM kb_documents WHERE key = ?`), key)
	if err != nil {
		return fmt.Errorf("kb: delete %q: %w", key, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("kb: delete %q: %w", key, ErrNotFound)
	}
	return nil
}

// Count returns the number of documents.
func (s *Store) Count(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM kb_documents`).Scan(&n); err != nil {
		return 0, fmt.Errorf("kb: count: %w", err)
	}
	return n, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) get(ctx context.Context, q querier, key string) (Document, error) {
	var (
		doc              Document
		tags             string
		created, updated int64
	)
	err := q.QueryRowContext(ctx, s.db.Rebind(`
		SELECT id, key, title, body, tags, created_at, updated_at
		FROM kb_documents WHERE key = ?`), key,
	).Scan(&doc.ID, &doc.Key, &doc.Title, &doc.Body, &tags, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Document{}, ErrNotFound
	}
	if err != nil {
		return Document{}, err
	}
	if doc.Tags, err = decodeTags(tags); err != nil {
		return Document{}, err
	}
	doc.CreatedAt = time.Unix(0, created).UTC()
	doc.UpdatedAt = time.Unix(0, updated).UTC()
	return doc, nil
}

func decodeTags(s string) ([]string, error) {
	var tags []string
	if err := json.Unmarshal([]byte(s), &tags); err != nil {
		return nil, fmt.Errorf("decode tags: %w", err)
	}
	if len(tags) == 0 {
		return nil, nil
	}
	return tags, nil
}

// normalize trims and checks a document's fields and puts its tags in
// canonical form.
func normalize(doc Document) (Document, error) {
	doc.Key = strings.TrimSpace(doc.Key)
	doc.Title = strings.TrimSpace(doc.Title)
	doc.Body = strings.TrimSpace(doc.Body)
	switch {
	case doc.Key == "":
		return doc, fmt.Errorf("%w: key is empty", ErrInvalidDocument)
	case len(doc.Key) > MaxKeyLen:
		return doc, fmt.Errorf("%w: key is longer than %d bytes", ErrInvalidDocument, MaxKeyLen)
	case doc.Title == "":
		return doc, fmt.Errorf("%w: %q: title is empty", ErrInvalidDocument, doc.Key)
	case len(doc.Title) > MaxTitleLen:
		return doc, fmt.Errorf("%w: %q: title is longer than %d bytes", ErrInvalidDocument, doc.Key, MaxTitleLen)
	case len(doc.Body) > MaxBodyLen:
		return doc, fmt.Errorf("%w: %q: body is longer than %d bytes", ErrInvalidDocument, doc.Key, MaxBodyLen)
	case !utf8.ValidString(doc.Key) || !utf8.ValidString(doc.Title) || !utf8.ValidString(doc.Body):
		return doc, fmt.Errorf("%w: %q: text is not valid UTF-8", ErrInvalidDocument, doc.Key)
	}
	tags, err := normalizeTags(doc.Tags)
	if err != nil {
		return doc, fmt.Errorf("%w: %q: %w", ErrInvalidDocument, doc.Key, err)
	}
	doc.Tags = tags
	return doc, nil
}

// normalizeTags lowercases and trims tags, drops empty ones and
// duplicates, and sorts them. It returns nil for no tags.
func normalizeTags(in []string) ([]string, error) {
	var tags []string
	for _, t := range in {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" {
			continue
		}
		if len(t) > MaxTagLen || !utf8.ValidString(t) {
			return nil, fmt.Errorf("tag %q is longer than %d bytes or not UTF-8", t, MaxTagLen)
		}
		tags = append(tags, t)
	}
	slices.Sort(tags)
	tags = slices.Compact(tags)
	if len(tags) > MaxTags {
		return nil, fmt.Errorf("%d tags, more than %d", len(tags), MaxTags)
	}
	return tags, nil
}
