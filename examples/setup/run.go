package setup

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/sqlitestore"
)

// Demo is an example that can play a demo run.
type Demo interface {
	// Demo starts a run on demo input, plays the people the run waits
	// for (a reviewer, a customer who replies), waits for its outcome and
	// writes what happened to out.
	Demo(ctx context.Context, out io.Writer) error
}

// BuildFunc builds an example on an Env: it defines its agents and
// workflows and registers them on env.Engine.
type BuildFunc func(env *Env) (Demo, error)

// Main is the main function of an example's standalone program: it reads
// the flags -db (a SQLite file, by default a new one in a temporary
// directory, or a postgres:// URL) and -v (log to stderr), runs RunDemo
// and exits with status 1 on error.
func Main(name string, build BuildFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := mainErr(ctx, name, os.Args[1:], build)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

func mainErr(ctx context.Context, name string, args []string, build BuildFunc) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	dsn := fs.String("db", "", "SQLite file or postgres:// URL (default: a new SQLite file in a temporary directory)")
	verbose := fs.Bool("v", false, "log the engine's and the services' work to stderr")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [-db FILE|URL] [-v]\n\nRuns the %s example once, on the offline model unless OPENAI_API_KEY is set.\n\n", name, name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	opts := &RunOptions{DB: *dsn, Out: os.Stdout}
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return RunDemo(ctx, name, opts, build)
}

// RunOptions configure RunDemo. A nil *RunOptions takes every default.
type RunOptions struct {
	// DB is a SQLite file or a postgres:// URL. Optional; default a new
	// SQLite file in a temporary directory.
	DB string
	// Out receives the demo's narration. Optional; default os.Stdout.
	Out io.Writer
	// Logger receives the engine's and the services' logs. Optional;
	// default warnings and errors only, to stderr.
	Logger *slog.Logger
	// Config is the Env's configuration; its Logger defaults to Logger.
	// Optional.
	Config *Config
}

// RunDemo runs an example's demo once, standalone: it opens the database,
// starts an engine with workers on the example's task queues, builds the
// example with build, plays its demo and stops the engine.
func RunDemo(ctx context.Context, name string, opts *RunOptions, build BuildFunc) error {
	o := RunOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	cfg := Config{}
	if o.Config != nil {
		cfg = *o.Config
	}
	if cfg.Logger == nil {
		cfg.Logger = o.Logger
	}
	if o.DB == "" {
		dir, err := os.MkdirTemp("", "keel-"+name+"-")
		if err != nil {
			return err
		}
		o.DB = filepath.Join(dir, "keel.db")
	}
	st, db, closeDB, err := Open(ctx, o.DB)
	if err != nil {
		return err
	}
	defer closeDB()

	e, err := durable.New(st, &durable.Config{Logger: o.Logger})
	if err != nil {
		return err
	}
	env, err := New(ctx, e, db, &cfg)
	if err != nil {
		return err
	}
	defer env.Close()
	demo, err := build(env)
	if err != nil {
		return err
	}
	for _, q := range env.TaskQueues() {
		e.NewWorker(&durable.WorkerOptions{TaskQueue: q})
	}
	if err := e.Start(ctx); err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), durableStopTimeout)
		defer cancel()
		_ = e.Stop(stopCtx)
	}()
	fmt.Fprintf(o.Out, "Keel example %q on %s, with the %s model.\n\n", name, redact(o.DB), env.ModelKind)
	return demo.Demo(ctx, o.Out)
}

// Open opens the engine's store and the application database on dsn: a
// postgres:// URL (one pool for both), or a SQLite file (two handles on
// the one file). The returned function closes them.
func Open(ctx context.Context, dsn string) (store.Store, *appdb.DB, func(), error) {
	if appdb.IsPostgresURL(dsn) {
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("setup: open %s: %w", redact(dsn), err)
		}
		st, err := pgstore.New(ctx, pool, nil)
		if err != nil {
			pool.Close()
			return nil, nil, nil, fmt.Errorf("setup: open %s: %w", redact(dsn), err)
		}
		db := appdb.FromPool(pool)
		return st, db, func() { _ = db.Close(); _ = st.Close(); pool.Close() }, nil
	}
	st, err := sqlitestore.Open(dsn, nil)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("setup: open %s: %w", dsn, err)
	}
	db, err := appdb.Open(ctx, dsn)
	if err != nil {
		_ = st.Close()
		return nil, nil, nil, fmt.Errorf("setup: open %s: %w", dsn, err)
	}
	return st, db, func() { _ = db.Close(); _ = st.Close() }, nil
}
