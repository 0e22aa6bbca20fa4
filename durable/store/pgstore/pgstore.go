package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelhq/keel/durable/store"
)

// Config configures a Store. A nil *Config takes every default.
type Config struct {
	// Logger receives the store's diagnostic messages: applied migrations
	// and the notification listener's lost connections. Optional; default
	// discards them.
	Logger *slog.Logger
	// MigrationLockTimeout bounds how long New waits for another process
	// that is migrating the same schema. Optional; default 5 minutes.
	MigrationLockTimeout time.Duration
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
	if out.MigrationLockTimeout == 0 {
		out.MigrationLockTimeout = 5 * time.Minute
	}
	return &out
}

func (c *Config) validate() error {
	if c.MigrationLockTimeout < time.Second {
		return fmt.Errorf("MigrationLockTimeout %v is under a second", c.MigrationLockTimeout)
	}
	return nil
}

// Store is the PostgreSQL implementation of store.Store. It is safe for
// concurrent use by many goroutines and by many processes sharing one
// database.
type Store struct {
	pool    *pgxpool.Pool
	logger  *slog.Logger
	schema  string // the schema the store's tables live in
	channel string // the LISTEN/NOTIFY channel of that schema

	// ctx ends when Close is called; it stops the notification listener.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once

	mu        sync.Mutex
	stopped   bool                     // Close was called
	subs      map[chan string]struct{} // Notifications channels
	listening bool                     // the listener goroutine runs
	listened  chan struct{}            // closed after its first connection attempt
}

var _ store.Store = (*Store)(nil)

// New returns a Store on pool, a pool the caller opened, after applying the
// embedded schema migrations. Close does not close pool.
//
// The store's tables live in the first schema of the pool's search_path
// (current_schema()), with goose's version table, keel_schema_version. To
// keep Keel apart from an application's tables, give the pool's
// connections a search_path of its own (for example search_path=keel in the
// URL, after CREATE SCHEMA keel).
//
// Several processes may call New on one database at once: the migrations
// run under a session advisory lock of that schema, and the others wait for
// it (at most Config.MigrationLockTimeout) and then find nothing to do. New
// fails with store.ErrSchemaTooNew if a newer version of Keel migrated the
// schema. It logs a warning when the server's autovacuum is off (see
// "Maintenance" in the package documentation).
func New(ctx context.Context, pool *pgxpool.Pool, cfg *Config) (*Store, error) {
	if pool == nil {
		return nil, errors.New("pgstore: nil *pgxpool.Pool")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("pgstore: config: %w", err)
	}
	var (
		schema     *string
		autovacuum string
	)
	if err := pool.QueryRow(ctx, "SELECT current_schema(), current_setting('autovacuum')").Scan(&schema, &autovacuum); err != nil {
		return nil, fmt.Errorf("pgstore: read current schema: %w", err)
	}
	if schema == nil {
		return nil, errors.New("pgstore: the pool's search_path names no existing schema")
	}
	if err := migrate(ctx, pool, *schema, cfg); err != nil {
		return nil, err
	}
	s := &Store{
		pool:     pool,
		logger:   cfg.Logger,
		schema:   *schema,
		channel:  channelName(*schema),
		subs:     map[chan string]struct{}{},
		listened: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if autovacuum != "on" {
		s.logger.Warn("pgstore: autovacuum is off: the task and timer tables keep their dead rows until a VACUUM, and claims and timers slow down as they accumulate; vacuum them regularly (see the package documentation)",
			"schema", *schema)
	}
	return s, nil
}

// Close stops the notification listener and closes the channels returned
// by Notifications. It does not close the pool. Close is idempotent.
func (s *Store) Close() error {
	s.closed.Do(func() {
		s.mu.Lock()
		s.stopped = true
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
	})
	return nil
}

// channelName is the LISTEN/NOTIFY channel of schema. Channel names are
// identifiers, so a long schema name is replaced by a hash of it.
func channelName(schema string) string {
	const prefix = "keel_tasks_"
	if len(prefix)+len(schema) <= 63 {
		return prefix + schema
	}
	sum := sha256.Sum256([]byte(schema))
	return prefix + hex.EncodeToString(sum[:16])
}

// SQLSTATEs raised by keel_raise (see the migration). Class KL is not used
// by PostgreSQL.
const (
	codeLeaseLost       = "KL001"
	codeNotFound        = "KL002"
	codeRunClosed       = "KL003"
	codeWorkflowIDInUse = "KL004"
	codeRunBusy         = "KL005"
	codeInboxPending    = "KL006"
)

// storeErr turns an error raised by keel_raise into the matching store
// sentinel, followed by the raise's message; other errors are returned as
// they are.
func storeErr(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	var sentinel error
	switch pgErr.Code {
	case codeLeaseLost:
		sentinel = store.ErrLeaseLost
	case codeNotFound:
		sentinel = store.ErrNotFound
	case codeRunClosed:
		sentinel = store.ErrRunClosed
	case codeWorkflowIDInUse:
		sentinel = store.ErrWorkflowIDInUse
	case codeRunBusy:
		sentinel = store.ErrRunBusy
	case codeInboxPending:
		sentinel = store.ErrInboxPending
	default:
		return err
	}
	return fmt.Errorf("%w: %s", sentinel, pgErr.Message)
}

// send runs the statements queued on b in one round trip. Without explicit
// transaction control a pipeline is one implicit transaction: it commits
// after the last statement, and the first error (a failed fence raised by
// keel_raise, say) rolls everything back and skips the statements after it.
// The callbacks registered on b's queued queries run in order.
func (s *Store) send(ctx context.Context, b *pgx.Batch) error {
	return storeErr(s.pool.SendBatch(ctx, b).Close())
}

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
func nullNanos(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixNano()
	return &n
}

// fromNanos is the inverse of nanos, in UTC.
func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// fromNullNanos is the inverse of nullNanos.
func fromNullNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return fromNanos(*n)
}

// bytesOrNil returns nil for an empty value, so that every driver reads
// back an absent payload the same way.
func bytesOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
