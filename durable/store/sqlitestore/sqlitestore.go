package sqlitestore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/keelhq/keel/durable/store"
)

// Config configures a Store. A nil *Config takes every default.
type Config struct {
	// Logger receives the store's diagnostic messages, such as applied
	// migrations. Optional; default discards them.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with every unset field set to its
// default. c may be nil.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return &out
}

// Store is the SQLite implementation of store.Store. It is safe for
// concurrent use by many goroutines and by several processes sharing one
// database file.
type Store struct {
	db     *sql.DB
	ownsDB bool
	q      *queries
	adhoc  *stmtCache

	// ops feeds the writer goroutine, the only one that runs this
	// process's write transactions (see write), so goroutines queue instead
	// of retrying on SQLITE_BUSY. Other processes are kept out by BEGIN
	// IMMEDIATE and busy_timeout.
	ops        chan *writeOp
	writerDone chan struct{}
	// guarded counts down the batches that run under savepoints at once
	// (runTx). Only the writer goroutine uses it.
	guarded int
	closeMu sync.RWMutex // guards closed and sends on ops
	closed  bool
}

var _ store.Store = (*Store)(nil)

// New returns a Store on db, a handle the caller opened with the "sqlite"
// driver (modernc.org/sqlite), and applies the embedded schema migrations.
// It fails with store.ErrSchemaTooNew if a newer version of Keel migrated the
// database. Close does not close db.
//
// Each connection of db should be opened with WAL journaling, a busy
// timeout, synchronous=FULL and "_txlock=immediate" (so that write
// transactions take the write lock when they begin), as Open does; without
// them, writes from several processes can fail with SQLITE_BUSY.
func New(db *sql.DB, cfg *Config) (*Store, error) {
	if db == nil {
		return nil, errors.New("sqlitestore: nil *sql.DB")
	}
	cfg = cfg.WithDefaults()
	ctx := context.Background()
	if err := migrate(ctx, db, cfg.Logger); err != nil {
		return nil, err
	}
	q, err := prepareQueries(ctx, db)
	if err != nil {
		return nil, err
	}
	s := &Store{
		db:         db,
		q:          q,
		adhoc:      newStmtCache(db),
		ops:        make(chan *writeOp, 4*maxBatch),
		writerDone: make(chan struct{}),
	}
	go s.runWriter()
	return s, nil
}

// Open opens (creating it if needed) the SQLite database file at path and
// returns a Store on it. The connections use WAL journaling, a 10 s busy
// timeout, synchronous=FULL (every commit is fsynced before it returns),
// foreign keys and immediate write transactions. Close closes the database.
func Open(path string, cfg *Config) (*Store, error) {
	db, err := sql.Open("sqlite", DSN(path))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	// Keep idle connections (and the statements prepared on them) instead
	// of closing all but two after each burst of reads.
	n := max(4, runtime.GOMAXPROCS(0))
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	if err := WaitReady(context.Background(), db); err != nil {
		_ = db.Close()
		return nil, err
	}
	s, err := New(db, cfg)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s.ownsDB = true
	return s, nil
}

// DSN is the modernc.org/sqlite data source name Open uses for path: pass
// it to sql.Open("sqlite", …) to open a handle for New with the same
// settings.
func DSN(path string) string {
	// A '?' in a plain file name would start the query string; '%' and '#'
	// likewise mean something in a "file:" URI. Escape them in a URI.
	name := path
	if strings.ContainsAny(path, "?#%") {
		r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
		name = "file:" + r.Replace(path)
	}
	// temp_store=memory keeps statement and savepoint journals (which
	// undo one operation of a grouped transaction; crash recovery never
	// reads them) in memory instead of spilling them to a temporary file
	// with a write syscall per page. wal_autocheckpoint=4000 (16 MiB of 4
	// KiB pages, against SQLite's default 1000) makes the writer stop for
	// a checkpoint, and its fsyncs, a quarter as often; every commit is
	// still fsynced to the WAL.
	return name + "?_busy_timeout=10000&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1&_txlock=immediate" +
		"&_pragma=temp_store(memory)&_pragma=wal_autocheckpoint(4000)"
}

// Close waits for the writes in progress, releases the prepared
// statements, and closes the database handle if Open created it. Calls made
// after Close fail.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	close(s.ops)
	s.closeMu.Unlock()
	<-s.writerDone
	err := errors.Join(s.q.close(), s.adhoc.close())
	if s.ownsDB {
		err = errors.Join(err, s.db.Close())
	}
	return err
}

// DB returns the database handle the store uses.
func (s *Store) DB() *sql.DB { return s.db }

// nowOr returns t, or the current time when t is zero.
func nowOr(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// orTime returns t, or def when t is zero.
func orTime(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

// nanos is t as stored: Unix nanoseconds.
func nanos(t time.Time) int64 { return t.UnixNano() }

// nullNanos is an optional moment as stored: NULL when t is zero.
func nullNanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// sqlNullNanos is nullNanos as sql.NullInt64.
func sqlNullNanos(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

// newToken returns a new random lease token: 16 random bytes in lower-case
// hex, as the claim statements' lower(hex(randomblob(16))) draws them.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// fromNanos is the inverse of nanos, in UTC.
func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// fromNullNanos is the inverse of nullNanos.
func fromNullNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromNanos(n.Int64)
}

// blob is b as stored: NULL when b is nil.
func blob(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// bytesOrNil returns nil for an empty value, so that every driver reads
// back an absent payload the same way.
func bytesOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
