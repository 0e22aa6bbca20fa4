// Package bench holds Keel's benchmark workloads, shared by `keel bench`
// and the `go test -bench` benchmarks of packages durable and agent, so
// that both measure the same thing.
//
// # Workloads
//
//   - F, the floor: one INSERT+COMMIT round trip on the same database, with
//     the same durability settings, measured in the same run (half of its
//     samples before the other workloads, half after).
//   - W1: a workflow of three sequential no-op activities, start to
//     result, one workflow at a time (p50/p95/p99).
//   - W2: 2,000 such workflows from 64 concurrent starters, each waiting
//     for its run's result before it starts the next (workflows/s,
//     activities/s).
//   - W3: a signal sent to a waiting workflow, to its result.
//   - W4: a 100 ms durable sleep: how late the workflow code runs again
//     after the timer's fire time.
//   - A1: a 10-turn agent (a model call and a tool call per turn) against
//     a model that answers at once, in process; the time per turn.
//   - S: sleeping workflows (100,000 by default): the process's memory
//     while they sleep, and the fire lag of their timers when they fall
//     due. Not run by default.
//
// Every workload also reports what it sent the database, counted as it
// happened, per workflow: store transactions (CountingStore), commits
// (SQLite, where the group-commit writer lets concurrent transactions
// share one), and round trips (PostgreSQL: queries and pipelined batches,
// counted by a pgx tracer; SQLite: statements, BEGINs and COMMITs,
// counted by a wrapping database/sql connector), the process's CPU time
// per workflow (getrusage) and, when the PostgreSQL server runs on the
// same machine, the CPU time of the backends that served the run (found by
// the pool's application_name, read from /proc). Latency workloads give
// their p50 as a multiple of F's p50, which is what to compare on a noisy
// machine.
//
// # Use
//
//	rep, err := bench.Run(ctx, bench.Options{DB: "postgres://…", Workloads: []string{"W1", "W2"}})
//	rep.WriteTable(os.Stdout)
//
// or, for one workload inside a benchmark, an Env:
//
//	env, err := bench.Open(ctx, "", nil) // a temporary SQLite file
//	defer env.Close()
//	res, err := env.W1(ctx, b.N)
//
// Nothing here weakens durability: the stores are opened with the
// settings they always use (sqlitestore.DSN; the PostgreSQL server's own).
package bench
