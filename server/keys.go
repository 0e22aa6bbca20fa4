package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/keelhq/keel/appdb"
)

// Scope is what an API key may do.
type Scope string

// Scopes. ScopeAdmin includes every other scope; ScopeTrigger and
// ScopeReview include ScopeRead.
const (
	// ScopeRead reads runs, their histories and events, and approvals.
	ScopeRead Scope = "read"
	// ScopeTrigger starts agent runs, signals and cancels runs.
	ScopeTrigger Scope = "trigger"
	// ScopeReview decides approvals (as the key's subject).
	ScopeReview Scope = "review"
	// ScopeAdmin does everything.
	ScopeAdmin Scope = "admin"
)

// Scopes lists every scope.
func Scopes() []Scope { return []Scope{ScopeRead, ScopeTrigger, ScopeReview, ScopeAdmin} }

// ParseScope returns the scope named s.
func ParseScope(s string) (Scope, error) {
	for _, sc := range Scopes() {
		if string(sc) == s {
			return sc, nil
		}
	}
	return "", fmt.Errorf("%w: %q (want read, trigger, review or admin)", ErrInvalidScope, s)
}

// Key is an API key as stored: everything but its secret.
type Key struct {
	// ID is the public part of the key, used to find it.
	ID string `json:"id"`
	// Subject names who uses the key: a reviewer's identity, a service's
	// name. Decisions taken with the key are recorded under it.
	Subject   string    `json:"subject"`
	Scopes    []Scope   `json:"scopes"`
	CreatedAt time.Time `json:"created_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Has reports whether the key grants scope.
func (k Key) Has(scope Scope) bool { return hasScope(k.Scopes, scope) }

func hasScope(scopes []Scope, want Scope) bool {
	for _, s := range scopes {
		if s == want || s == ScopeAdmin || (want == ScopeRead && (s == ScopeTrigger || s == ScopeReview)) {
			return true
		}
	}
	return false
}

// Errors of the key store.
var (
	// ErrInvalidKey: the presented key is malformed, unknown, revoked or
	// wrong. The cases are not told apart.
	ErrInvalidKey = errors.New("server: invalid API key")
	// ErrKeyNotFound: no key has that ID.
	ErrKeyNotFound = errors.New("server: API key not found")
	// ErrInvalidScope: a scope name is not one of Scopes.
	ErrInvalidScope = errors.New("server: invalid scope")
	// ErrInvalidSubject: a key's subject is empty, too long or holds
	// control characters.
	ErrInvalidSubject = errors.New("server: invalid subject")
)

//go:embed migrations
var migrationsFS embed.FS

// KeyStore keeps API keys in Keel's application database (package appdb),
// in table keel_api_keys. Only a SHA-256 hash of each key's secret is
// stored; the key itself is shown once, by Create.
//
// A key reads keel_<id>_<secret>: the ID, 16 hex characters, finds the
// row, and the secret, 32 random bytes, is compared by hash in constant
// time.
type KeyStore struct {
	db  *appdb.DB
	now func() time.Time
}

// NewKeyStore applies the key store's migrations to db and returns the
// store.
func NewKeyStore(ctx context.Context, db *appdb.DB) (*KeyStore, error) {
	sub, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("server: key store: %w", err)
	}
	if err := db.Migrate(ctx, "apikeys", sub); err != nil {
		return nil, fmt.Errorf("server: key store: %w", err)
	}
	return &KeyStore{db: db, now: time.Now}, nil
}

// CreateKeyParams describe a new key.
type CreateKeyParams struct {
	// Subject names the key's user. Required; at most 200 characters.
	Subject string
	// Scopes granted. Required.
	Scopes []Scope
}

// CreateKeyResult is a new key.
type CreateKeyResult struct {
	Key Key
	// Secret is the whole key, keel_<id>_<secret>, to give to its user. It
	// is not stored and cannot be shown again.
	Secret string
}

const keyPrefix = "keel_"

// Create makes a new key.
func (ks *KeyStore) Create(ctx context.Context, p CreateKeyParams) (CreateKeyResult, error) {
	subject := strings.TrimSpace(p.Subject)
	if subject == "" || len(subject) > 200 || strings.IndexFunc(subject, unicode.IsControl) >= 0 {
		return CreateKeyResult{}, fmt.Errorf("%w: %q (1 to 200 printable characters)", ErrInvalidSubject, p.Subject)
	}
	if len(p.Scopes) == 0 {
		return CreateKeyResult{}, fmt.Errorf("%w: a key needs at least one scope", ErrInvalidScope)
	}
	scopes := make([]Scope, 0, len(p.Scopes))
	for _, s := range p.Scopes {
		if _, err := ParseScope(string(s)); err != nil {
			return CreateKeyResult{}, err
		}
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	idb := make([]byte, 8)
	secret := make([]byte, 32)
	_, _ = rand.Read(idb) // never fails
	_, _ = rand.Read(secret)
	id := hex.EncodeToString(idb)
	secretText := base64.RawURLEncoding.EncodeToString(secret)
	k := Key{ID: id, Subject: subject, Scopes: scopes, CreatedAt: ks.now().UTC().Truncate(time.Millisecond)}
	_, err := ks.db.ExecContext(ctx, ks.db.Rebind(
		"INSERT INTO keel_api_keys (id, hash, subject, scopes, created_at) VALUES (?, ?, ?, ?, ?)"),
		id, hashSecret(secretText), subject, joinScopes(scopes), k.CreatedAt.UnixMilli())
	if err != nil {
		return CreateKeyResult{}, fmt.Errorf("server: create key: %w", err)
	}
	return CreateKeyResult{Key: k, Secret: keyPrefix + id + "_" + secretText}, nil
}

// Authenticate returns the key whose whole text is key, if it exists and
// is not revoked; otherwise ErrInvalidKey.
func (ks *KeyStore) Authenticate(ctx context.Context, key string) (Key, error) {
	id, secret, ok := splitKey(key)
	if !ok {
		return Key{}, ErrInvalidKey
	}
	k, hash, err := ks.get(ctx, id)
	if errors.Is(err, ErrKeyNotFound) {
		// Spend the same hashing work as for a known ID.
		_ = subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(strings.Repeat("0", 64)))
		return Key{}, ErrInvalidKey
	}
	if err != nil {
		return Key{}, err
	}
	if subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(hash)) != 1 || !k.RevokedAt.IsZero() {
		return Key{}, ErrInvalidKey
	}
	return k, nil
}

// Get returns a key by ID (ErrKeyNotFound), revoked or not.
func (ks *KeyStore) Get(ctx context.Context, id string) (Key, error) {
	k, _, err := ks.get(ctx, id)
	return k, err
}

func (ks *KeyStore) get(ctx context.Context, id string) (Key, string, error) {
	row := ks.db.QueryRowContext(ctx, ks.db.Rebind(
		"SELECT id, hash, subject, scopes, created_at, revoked_at FROM keel_api_keys WHERE id = ?"), id)
	var k Key
	var hash, scopes string
	var created int64
	var revoked sql.NullInt64
	if err := row.Scan(&k.ID, &hash, &k.Subject, &scopes, &created, &revoked); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Key{}, "", fmt.Errorf("%w: %q", ErrKeyNotFound, id)
		}
		return Key{}, "", fmt.Errorf("server: get key: %w", err)
	}
	k.Scopes = splitScopes(scopes)
	k.CreatedAt = time.UnixMilli(created).UTC()
	if revoked.Valid {
		k.RevokedAt = time.UnixMilli(revoked.Int64).UTC()
	}
	return k, hash, nil
}

// List returns every key, revoked ones included, oldest first.
func (ks *KeyStore) List(ctx context.Context) ([]Key, error) {
	rows, err := ks.db.QueryContext(ctx,
		"SELECT id, subject, scopes, created_at, revoked_at FROM keel_api_keys ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("server: list keys: %w", err)
	}
	defer rows.Close()
	var keys []Key
	for rows.Next() {
		var k Key
		var scopes string
		var created int64
		var revoked sql.NullInt64
		if err := rows.Scan(&k.ID, &k.Subject, &scopes, &created, &revoked); err != nil {
			return nil, fmt.Errorf("server: list keys: %w", err)
		}
		k.Scopes = splitScopes(scopes)
		k.CreatedAt = time.UnixMilli(created).UTC()
		if revoked.Valid {
			k.RevokedAt = time.UnixMilli(revoked.Int64).UTC()
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("server: list keys: %w", err)
	}
	return keys, nil
}

// Active reports how many keys are not revoked.
func (ks *KeyStore) Active(ctx context.Context) (int, error) {
	var n int
	if err := ks.db.QueryRowContext(ctx, "SELECT count(*) FROM keel_api_keys WHERE revoked_at IS NULL").Scan(&n); err != nil {
		return 0, fmt.Errorf("server: count keys: %w", err)
	}
	return n, nil
}

// Revoke revokes a key by ID (ErrKeyNotFound). Revoking a revoked key
// is a no-op.
func (ks *KeyStore) Revoke(ctx context.Context, id string) error {
	res, err := ks.db.ExecContext(ctx, ks.db.Rebind(
		"UPDATE keel_api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?"), ks.now().UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("server: revoke key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %q", ErrKeyNotFound, id)
	}
	return nil
}

// splitKey parses keel_<id>_<secret>.
func splitKey(key string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(key, keyPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != 16 || secret == "" || len(secret) > 100 {
		return "", "", false
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", "", false
	}
	return id, secret, true
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func joinScopes(s []Scope) string {
	parts := make([]string, len(s))
	for i, sc := range s {
		parts[i] = string(sc)
	}
	return strings.Join(parts, " ")
}

func splitScopes(s string) []Scope {
	var out []Scope
	for _, f := range strings.Fields(s) {
		out = append(out, Scope(f))
	}
	return out
}

// Ping checks that the key store's database answers.
func (ks *KeyStore) Ping(ctx context.Context) error {
	var n int
	if err := ks.db.QueryRowContext(ctx, "SELECT count(*) FROM keel_api_keys WHERE id = ''").Scan(&n); err != nil {
		return fmt.Errorf("server: key store: %w", err)
	}
	return nil
}
