// Command keel is Keel's command-line interface.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/examples/catalog"
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/internal/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rootCmd().ExecuteContext(ctx); err != nil {
		os.Exit(reportError(os.Stderr, err)) // exit codes: exitcodes.go
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "keel",
		Short:         "Keel: AI agents in Go that cannot lose their work",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, c := range commands {
		root.AddCommand(c())
	}
	return root
}

// commands are keel's subcommands. Each is defined in a file of its own,
// which adds its constructor here from an init function.
var commands []func() *cobra.Command

func init() {
	commands = append(commands, demoCmd, workerCmd)
}

// openStore opens the store named by dsn: a postgres:// or postgresql://
// URL, or else a SQLite file path.
func openStore(ctx context.Context, dsn string) (store.Store, func(), error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			return nil, nil, fmt.Errorf("open %s: %w", redact(dsn), err)
		}
		st, err := pgstore.New(ctx, pool, nil)
		if err != nil {
			pool.Close()
			return nil, nil, fmt.Errorf("open %s: %w", redact(dsn), err)
		}
		return st, func() { _ = st.Close(); pool.Close() }, nil
	}
	st, err := sqlitestore.Open(dsn, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", dsn, err)
	}
	return st, func() { _ = st.Close() }, nil
}

// redact hides a URL's password.
func redact(dsn string) string {
	if at := strings.LastIndex(dsn, "@"); at > 0 {
		if scheme := strings.Index(dsn, "://"); scheme > 0 && scheme+3 < at {
			return dsn[:scheme+3] + "…" + dsn[at:]
		}
	}
	return dsn
}

func workerCmd() *cobra.Command {
	var examples bool
	var (
		db          string
		queue       string
		wfSlots     int
		actSlots    int
		pollEvery   time.Duration
		stopTimeout time.Duration
		retention   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run workers only (no HTTP), for scale-out: many processes may share one Postgres",
		Long: `Run the engine's workers for one task queue until SIGINT or SIGTERM, with the
workflows built into this binary. Start as many worker processes as you like,
on as many machines, against one PostgreSQL database.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, closeStore, err := openStore(ctx, db)
			if err != nil {
				return err
			}
			defer closeStore()
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			e, err := newEngine(st, &durable.Config{Logger: logger, PollInterval: pollEvery, Retention: retention})
			if err != nil {
				return err
			}
			e.MustRegister(knownDefinitionsTo(cmd.OutOrStdout())...)
			queues := []string{queue}
			if examples {
				// The example agents keel serve serves, so that extra
				// workers share their work.
				adb, err := appdb.Open(ctx, db)
				if err != nil {
					return err
				}
				defer adb.Close()
				cat, err := catalog.Register(ctx, e, adb, &catalog.Config{Logger: logger})
				if err != nil {
					return fmt.Errorf("register the example agents: %w", err)
				}
				defer cat.Env.Close()
				for _, q := range cat.TaskQueues() {
					if q != queue {
						queues = append(queues, q)
					}
				}
			}
			for _, q := range queues {
				e.NewWorker(&durable.WorkerOptions{TaskQueue: q, MaxConcurrentWorkflowTasks: wfSlots, MaxConcurrentActivities: actSlots})
			}
			if err := e.Start(context.WithoutCancel(ctx)); err != nil {
				return err
			}
			logger.Info("worker started", "db", redact(db), "task_queues", queues)
			<-ctx.Done()
			logger.Info("stopping: finishing in-flight tasks", "timeout", stopTimeout)
			stopCtx, cancel := context.WithTimeout(context.Background(), stopTimeout)
			defer cancel()
			return e.Stop(stopCtx)
		},
	}
	cmd.Flags().StringVar(&db, "db", envOr("KEEL_DB", "keel.db"), "SQLite file or postgres:// URL (env KEEL_DB)")
	cmd.Flags().StringVar(&queue, "queue", "default", "task queue to poll")
	cmd.Flags().IntVar(&wfSlots, "workflow-concurrency", 16, "workflow tasks run at once")
	cmd.Flags().IntVar(&actSlots, "activity-concurrency", 64, "activities run at once")
	cmd.Flags().DurationVar(&pollEvery, "poll-interval", time.Second, "slow poll for work made runnable by other processes")
	cmd.Flags().DurationVar(&stopTimeout, "stop-timeout", 30*time.Second, "how long a graceful stop waits for in-flight tasks")
	cmd.Flags().BoolVar(&examples, "examples", true, "also work for the example agents keel serve serves (support, salesfollowup, legalreview, dealdesk)")
	cmd.Flags().DurationVar(&retention, "retention", 0, "delete runs closed longer than this ago, e.g. 720h (default: keep forever)")
	return cmd
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func demoCmd() *cobra.Command {
	var db string
	var worker bool
	cmd := &cobra.Command{
		Use:   "demo [NAME]",
		Short: "Run an example agent; with no NAME, kill the support agent's worker with SIGKILL and watch a new one resume it",
		Long: `With no NAME, keel demo plays Keel's main demo: the support agent answers
ticket T-1 on the offline model, its worker process is killed with SIGKILL
while the model answers, and a new worker process resumes the run — no
model answer asked for twice, one email, one charge.

With NAME (` + strings.Join(catalog.Names(), ", ") + `) it plays that example's demo
on its own engine. Everything runs on a SQLite file (a new temporary one
unless --db) and the offline model, unless OPENAI_API_KEY is set.`,
		Example: "  keel demo\n  keel demo legalreview --db demo.db",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if worker {
				ctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				return demo.Worker(ctx, db, cmd.OutOrStdout())
			}
			if len(args) == 1 {
				return catalog.RunDemo(ctx, args[0], &setup.RunOptions{DB: db, Out: cmd.OutOrStdout()})
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			return demo.Run(ctx, demo.Options{
				DB:  db,
				Out: cmd.OutOrStdout(),
				WorkerCommand: func(db string) *exec.Cmd {
					return exec.Command(exe, "demo", "--worker", "--db", db)
				},
			})
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "SQLite file (default: a new temporary file)")
	cmd.Flags().BoolVar(&worker, "worker", false, "run as the demo's worker process")
	_ = cmd.Flags().MarkHidden("worker")
	return cmd
}
