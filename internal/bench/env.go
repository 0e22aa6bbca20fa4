package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelhq/keel/agent"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/llm"
)

// ErrDatabaseExists is returned when the SQLite file given for a benchmark
// already exists: the benchmark writes thousands of runs, so it only ever
// creates a new file.
var ErrDatabaseExists = errors.New("bench: database file already exists")

// Store kinds, as reported in Report.Store.
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
)

// Env is a started engine on a store whose writes and database calls are
// counted, with the workloads' workflows, activities and agent
// registered: what every workload runs on.
type Env struct {
	// Engine runs the workloads. Its worker runs 64 workflow tasks and 256
	// activities at once (W2's settings) on the default task queue, with a
	// cache of 10,000 runs.
	Engine *durable.Engine
	// Store is the counting wrapper the engine writes through.
	Store *CountingStore
	// Counter holds the counts of Store and of the database handle below it.
	Counter *Counter
	// Kind is StoreSQLite or StorePostgres.
	Kind string
	// Durability describes the durability settings in force, as read from
	// the database.
	Durability string
	// Autovacuum is PostgreSQL's autovacuum setting ("on" or "off"; empty
	// on SQLite). Without it the queue tables keep every dead row until a
	// VACUUM, and claims and timer scans slow down as they accumulate.
	Autovacuum string
	// PoolSize is the PostgreSQL pool's size (0 on SQLite): 16 unless the
	// URL sets pool_max_conns.
	PoolSize int

	// observer reads runs without being counted, for workloads that wait
	// for a run to reach a point before they measure.
	observer store.Store
	// serverPIDs lists the PostgreSQL backends serving the Env's pool
	// (by application_name); nil for SQLite.
	serverPIDs func(ctx context.Context) ([]int, error)

	runtime *agent.Runtime
	agent   *agent.Agent
	floor   func(ctx context.Context) error
	// floorCounter counts the floor's calls (SQLite: its own handle);
	// nil when the floor runs on Counter's handle.
	floorCounter *Counter
	closers      []func()
}

// EnvOptions tune an Env. The zero value is what keel bench uses.
type EnvOptions struct {
	// Logger for the engine. Optional; default discards.
	Logger *slog.Logger
	// CacheSize overrides the engine's run cache size (default 10,000).
	CacheSize int
	// Model answers the A1 agent. Optional; default TurnsModel, in
	// process, with no latency.
	Model llm.Model
}

func (o *EnvOptions) logger() *slog.Logger {
	if o != nil && o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// OpenSQLite creates the SQLite database file path (ErrDatabaseExists if
// it exists) with sqlitestore's settings (sqlitestore.DSN: WAL,
// synchronous=FULL) and starts an Env on it.
func OpenSQLite(ctx context.Context, path string, opts *EnvOptions) (*Env, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrDatabaseExists, path)
	}
	c := &Counter{}
	dsn := sqlitestore.DSN(path)
	db := openCountingSQLite(dsn, c)
	n := max(4, runtime.GOMAXPROCS(0)) // as sqlitestore.Open
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	st, err := sqlitestore.New(db, nil)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bench: open store %s: %w", path, err)
	}
	// The floor runs on its own handle to the same file, with the same
	// settings, counted apart.
	floorCounter := &Counter{}
	floorDB := openCountingSQLite(dsn, floorCounter)
	env := &Env{Counter: c, Kind: StoreSQLite, floorCounter: floorCounter}
	env.closers = append(env.closers, func() { _ = floorDB.Close(); _ = db.Close() })
	var journal string
	var syncMode int
	if err := floorDB.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&journal); err != nil {
		_ = st.Close()
		env.Close()
		return nil, fmt.Errorf("bench: read settings: %w", err)
	}
	if err := floorDB.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&syncMode); err != nil {
		_ = st.Close()
		env.Close()
		return nil, fmt.Errorf("bench: read settings: %w", err)
	}
	env.Durability = fmt.Sprintf("journal_mode=%s synchronous=%s", journal, sqliteSync(syncMode))
	if _, err := floorDB.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS keel_bench_floor (id INTEGER PRIMARY KEY, payload BLOB)`); err != nil {
		_ = st.Close()
		env.Close()
		return nil, fmt.Errorf("bench: create floor table: %w", err)
	}
	observer, err := sqlitestore.Open(path, nil)
	if err != nil {
		_ = st.Close()
		env.Close()
		return nil, fmt.Errorf("bench: open %s: %w", path, err)
	}
	env.observer = observer
	env.closers = append([]func(){func() { _ = observer.Close() }}, env.closers...)
	payload := make([]byte, 100)
	env.floor = func(ctx context.Context) error {
		tx, err := floorDB.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO keel_bench_floor (payload) VALUES (?)`, payload); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	if err := env.start(ctx, st, opts); err != nil {
		env.Close()
		return nil, err
	}
	return env, nil
}

func sqliteSync(n int) string {
	switch n {
	case 0:
		return "OFF"
	case 1:
		return "NORMAL"
	case 2:
		return "FULL"
	case 3:
		return "EXTRA"
	}
	return fmt.Sprint(n)
}

// defaultPoolSize is the PostgreSQL pool's size unless the URL sets
// pool_max_conns.
const defaultPoolSize = 16

// OpenPostgres starts an Env on the database of cfg: the pool it opens
// from cfg counts round trips. The store's tables go in cfg's search_path
// schema (see NewSchema for a throwaway one).
func OpenPostgres(ctx context.Context, cfg *pgxpool.Config, opts *EnvOptions) (*Env, error) {
	c := &Counter{}
	cfg = cfg.Copy()
	var tag [6]byte
	_, _ = rand.Read(tag[:])
	appName := "keel-bench-" + hex.EncodeToString(tag[:])
	cfg.ConnConfig.RuntimeParams["application_name"] = appName
	if cfg.ConnConfig.Tracer == nil {
		cfg.ConnConfig.Tracer = pgTracer{c}
	}
	// pgxpool's default (four, or one per core) would queue W2's 64
	// starters behind too few connections; a size the URL sets is kept.
	if cfg.MaxConns < defaultPoolSize && !strings.Contains(cfg.ConnString(), "pool_max_conns") {
		cfg.MaxConns = defaultPoolSize
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("bench: connect: %w", err)
	}
	env := &Env{Counter: c, Kind: StorePostgres, PoolSize: int(cfg.MaxConns)}
	env.closers = append(env.closers, pool.Close)
	var fsync, syncCommit string
	if err := pool.QueryRow(ctx, `SELECT current_setting('fsync'), current_setting('synchronous_commit'), current_setting('autovacuum')`).Scan(&fsync, &syncCommit, &env.Autovacuum); err != nil {
		env.Close()
		return nil, fmt.Errorf("bench: read settings: %w", err)
	}
	env.Durability = fmt.Sprintf("fsync=%s synchronous_commit=%s", fsync, syncCommit)
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS keel_bench_floor (id bigserial PRIMARY KEY, payload bytea)`); err != nil {
		env.Close()
		return nil, fmt.Errorf("bench: create floor table: %w", err)
	}
	payload := make([]byte, 100)
	env.floor = func(ctx context.Context) error {
		// One statement outside a transaction block: one round trip,
		// committed (and flushed, by the server's settings) before the
		// answer.
		_, err := pool.Exec(ctx, `INSERT INTO keel_bench_floor (payload) VALUES ($1)`, payload)
		return err
	}
	st, err := pgstore.New(ctx, pool, nil)
	if err != nil {
		env.Close()
		return nil, fmt.Errorf("bench: open store: %w", err)
	}
	ocfg := cfg.Copy()
	ocfg.ConnConfig.Tracer = nil
	ocfg.MaxConns = 2
	opool, err := pgxpool.NewWithConfig(ctx, ocfg)
	if err != nil {
		_ = st.Close()
		env.Close()
		return nil, fmt.Errorf("bench: connect: %w", err)
	}
	observer, err := pgstore.New(ctx, opool, nil)
	if err != nil {
		opool.Close()
		_ = st.Close()
		env.Close()
		return nil, fmt.Errorf("bench: open store: %w", err)
	}
	env.observer = observer
	env.closers = append([]func(){func() { _ = observer.Close(); opool.Close() }}, env.closers...)
	env.serverPIDs = func(ctx context.Context) ([]int, error) {
		rows, err := opool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, appName)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowTo[int])
	}
	if err := env.start(ctx, st, opts); err != nil {
		env.Close()
		return nil, err
	}
	return env, nil
}

// NewSchema creates a schema with a random name on the database at url and
// returns a pool configuration whose connections use it, and a function
// that drops it with everything in it.
func NewSchema(ctx context.Context, url string) (*pgxpool.Config, func(context.Context) error, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: parse database URL: %w", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "keel_bench_" + hex.EncodeToString(b[:])
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return nil, nil, fmt.Errorf("bench: create schema: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	drop := func(ctx context.Context) error {
		conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
		if err != nil {
			return fmt.Errorf("bench: connect: %w", err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			return fmt.Errorf("bench: drop schema %s: %w", schema, err)
		}
		return nil
	}
	return cfg, drop, nil
}

// Open starts an Env on db: a postgres:// or postgresql:// URL (in a new
// schema, dropped by the Env's Close), a SQLite file path that must not
// exist yet, or "" for a new SQLite file in a temporary directory
// (removed by Close).
func Open(ctx context.Context, db string, opts *EnvOptions) (*Env, error) {
	switch {
	case strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://"):
		cfg, drop, err := NewSchema(ctx, db)
		if err != nil {
			return nil, err
		}
		env, err := OpenPostgres(ctx, cfg, opts)
		if err != nil {
			_ = drop(context.WithoutCancel(ctx))
			return nil, err
		}
		env.closers = append(env.closers, func() { _ = drop(context.Background()) })
		return env, nil
	case db == "":
		dir, err := os.MkdirTemp("", "keel-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		env, err := OpenSQLite(ctx, filepath.Join(dir, "bench.db"), opts)
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		env.closers = append(env.closers, func() { _ = os.RemoveAll(dir) })
		return env, nil
	default:
		return OpenSQLite(ctx, db, opts)
	}
}

// start registers the workloads on a new engine over st and starts it.
func (env *Env) start(ctx context.Context, st store.Store, opts *EnvOptions) error {
	cs := NewCountingStore(st, env.Counter)
	env.Store = cs
	cacheSize := 10000
	if opts != nil && opts.CacheSize != 0 {
		cacheSize = opts.CacheSize
	}
	e, err := durable.New(cs, &durable.Config{CacheSize: cacheSize, Logger: opts.logger()})
	if err != nil {
		_ = st.Close()
		return fmt.Errorf("bench: %w", err)
	}
	if err := e.Register(Definitions()...); err != nil {
		_ = st.Close()
		return fmt.Errorf("bench: %w", err)
	}
	var model llm.Model = TurnsModel{Turns: AgentTurns}
	if opts != nil && opts.Model != nil {
		model = opts.Model
	}
	rt, a, err := registerAgent(e, model, opts.logger())
	if err != nil {
		_ = st.Close()
		return err
	}
	env.runtime, env.agent = rt, a
	wo := &durable.WorkerOptions{MaxConcurrentWorkflowTasks: 64, MaxConcurrentActivities: 256}
	e.NewWorker(wo)
	for _, q := range rt.TaskQueues() {
		if q != "default" && q != "" {
			e.NewWorker(&durable.WorkerOptions{TaskQueue: q, MaxConcurrentWorkflowTasks: 64, MaxConcurrentActivities: 256})
		}
	}
	if err := e.Start(context.WithoutCancel(ctx)); err != nil {
		_ = st.Close()
		return fmt.Errorf("bench: %w", err)
	}
	env.Engine = e
	env.closers = append([]func(){func() {
		_ = e.Stop(context.Background())
		_ = st.Close()
	}}, env.closers...)
	return nil
}

// Close stops the engine and releases the store and database, in that
// order, and removes what Open created (temporary file, schema).
func (env *Env) Close() {
	for _, c := range env.closers {
		c()
	}
	env.closers = nil
}

// registerAgent registers the A1 agent with model on e.
func registerAgent(e *durable.Engine, model llm.Model, logger *slog.Logger) (*agent.Runtime, *agent.Agent, error) {
	rt, err := agent.NewRuntime(e, &agent.Config{Models: map[string]llm.Model{"bench-model": model}, Logger: logger})
	if err != nil {
		return nil, nil, fmt.Errorf("bench: agent runtime: %w", err)
	}
	a := NewAgent("bench-model")
	if err := rt.Register(a); err != nil {
		return nil, nil, fmt.Errorf("bench: register agent: %w", err)
	}
	return rt, a, nil
}
