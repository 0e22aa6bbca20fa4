package main

import (
	"errors"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keelhq/keel/internal/bench"
)

func init() { commands = append(commands, benchCmd) }

func benchCmd() *cobra.Command {
	var (
		db          string
		workloads   string
		asJSON      bool
		n           int
		w2Workflows int
		w2Starters  int
		sleepers    int
		sleepSpread time.Duration
		sleepCache  int
		quiet       bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the engine's latency, throughput and cost per workflow against the database's commit floor",
		Long: `Run Keel's benchmark workloads on a new database and print a table (or JSON).

  F   the floor: one INSERT+COMMIT on the same database and settings
  W1  3 sequential no-op activities, start to result (p50/p95/p99)
  W2  2,000 such workflows from 64 concurrent starters (workflows/s)
  W3  signal sent to a waiting workflow → its result
  W4  100 ms durable sleep: how late the workflow wakes
  A1  10-turn agent against a model with no latency: time per turn
  S   100,000 sleeping workflows: memory while they sleep, fire lag when due
      (not run by default; size it with --sleepers)

Each workload reports store transactions, commits and database round trips
per workflow (counted), this process's CPU per workflow (and, with a
PostgreSQL server on this machine, its backends' CPU per workflow), and its
p50 as a multiple of F's p50 measured in the same run. --db names a SQLite
file to create (it must not exist; default a temporary file) or a
postgres:// URL, where the run uses a new schema and drops it at the end.
Durability is the store's default: SQLite WAL with synchronous=FULL,
PostgreSQL's own settings. The PostgreSQL pool has 16 connections unless
the URL sets pool_max_conns.
` + exitCodesHelp,
		Example: `  keel bench
  keel bench --db postgres://postgres@127.0.0.1:5432/test --json
  keel bench --workloads W1,W2 --n 1000
  keel bench --workloads S --sleepers 100000 --sleep-spread 60s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names, err := bench.ParseWorkloads(workloads)
			if err != nil {
				return usageErrorf("%w", err)
			}
			if n < 0 || w2Workflows <= 0 || w2Starters <= 0 || sleepers <= 0 || sleepSpread <= 0 || sleepCache <= 0 {
				return usageErrorf("keel bench: --n must not be negative; --w2-workflows, --w2-starters, --sleepers, --sleep-spread and --sleep-cache must be positive")
			}
			opts := bench.Options{
				DB: db, Workloads: names, N: n, W2Workflows: w2Workflows, W2Starters: w2Starters,
				Sleep: bench.SleepOptions{N: sleepers, Spread: sleepSpread, CacheSize: sleepCache},
			}
			if !quiet {
				opts.Progress = cmd.ErrOrStderr()
			}
			rep, err := bench.Run(cmd.Context(), opts)
			if errors.Is(err, bench.ErrDatabaseExists) {
				return usageErrorf("%w", err)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return rep.WriteJSON(cmd.OutOrStdout())
			}
			return rep.WriteTable(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&db, "db", "", "SQLite file to create, or postgres:// URL (default: a temporary SQLite file)")
	f.StringVar(&workloads, "workloads", strings.Join(bench.DefaultWorkloads, ","), "comma-separated workloads: "+strings.Join(bench.AllWorkloads, ","))
	f.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	f.IntVar(&n, "n", 0, "samples per latency workload (default: F 500, W1 500, W3 300, W4 50, A1 20)")
	f.IntVar(&w2Workflows, "w2-workflows", 2000, "workflows W2 runs")
	f.IntVar(&w2Starters, "w2-starters", 64, "concurrent starters of W2")
	f.IntVar(&sleepers, "sleepers", 100_000, "sleeping workflows of S")
	f.DurationVar(&sleepSpread, "sleep-spread", time.Minute, "window over which S's timers fall due")
	f.IntVar(&sleepCache, "sleep-cache", 1000, "run cache size of S's engine (the engine's default is 1000)")
	f.BoolVarP(&quiet, "quiet", "q", false, "print no progress on stderr")
	return cmd
}
