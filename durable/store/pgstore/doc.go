// Package pgstore is the PostgreSQL implementation of store.Store, for
// many worker processes on many machines sharing one database.
//
// # Opening
//
// New takes a *pgxpool.Pool the caller opened and applies the embedded
// schema migrations (goose, migrations/NNN_name.sql) before returning:
//
//	pool, err := pgxpool.New(ctx, "postgres://keel@db/keel?search_path=keel")
//	...
//	st, err := pgstore.New(ctx, pool, nil)
//	...
//	defer st.Close()
//
// The tables, goose's version table (keel_schema_version) and one helper
// function live in the first schema of the pool's search_path; every name
// starts with keel_. Several processes may start at once: migrations run
// under a session advisory lock of that schema. A schema migrated by a newer
// Keel is refused with store.ErrSchemaTooNew.
//
// # Transactions and round trips
//
// Every Store method is one transaction, and every method takes one round
// trip to the server once its statements are prepared on the connection
// (pgx caches them per connection). A method is either one statement, with
// data-modifying CTEs where it writes several tables, or a pipeline of
// statements sent together, which PostgreSQL runs as one implicit
// transaction: a failed fence raises an error (the keel_raise function,
// SQLSTATE class KL) that rolls back everything before it and skips
// everything after it. CreateRun takes a second round trip only when it
// loses a race to start the same workflow ID; DeleteClosedRuns one per
// batch.
//
// The eager-dispatch fast paths stay within that round trip: CreateRun
// with Eager writes the first workflow task already leased,
// CompleteWorkflowTask with EagerActivities inserts those activity tasks
// already leased, and CompleteActivityTask with Eager adds one statement
// that leases the workflow task, if it is claimable, and reads it back
// with its inbox. Without the eager fields, none of this adds a statement.
// CompleteActivityWithWorkflowTask is the activity completion and the
// commit of the workflow task run on it, in one round trip too: instead of
// a lease it locks the run's row as a commit does and checks that the run
// is idle (its expected history length and no workflow task row), in a
// statement of its own after the lock, so that an inbox write racing with
// it (a signal, a timer, another activity) lands wholly before it, and
// makes it fail with store.ErrRunBusy, or wholly after it, and makes a
// workflow task as usual.
//
// # Concurrency
//
// Claims lease rows with FOR UPDATE SKIP LOCKED, so concurrent workers
// neither wait for nor take each other's tasks. Writers lock a run's row
// before its task rows, which keeps them free of deadlocks. Every write to a
// run's inbox first upserts (and so locks) the run's workflow task row, and
// the inbox ID is taken under that lock: a run's inbox IDs follow commit
// order, so a commit that deletes the inbox up to the last item it claimed
// never deletes an item it did not see. A unique index on the workflow IDs
// of running runs makes concurrent starts of one workflow ID, from any
// number of processes, create one run.
//
// Times are stored as bigint Unix nanoseconds and read back in UTC, so
// every time.Time survives a round trip exactly.
//
// # Plans
//
// pgx prepares every statement, and PostgreSQL settles on a generic plan
// for a prepared statement after a few executions, made with statistics
// that may be far out of date for queue tables, which grow and shrink by
// many thousands of rows between analyses. A statement that picks a batch
// of rows (due timers, claimable tasks) and then changes them therefore
// reaches the rows it picked through the array of their keys (col =
// ANY(ARRAY(SELECT ...))), which the primary key answers whatever the
// statistics say, rather than through a join that the planner may make by
// hashing the whole table; and it looks runs up by ID alone, checking their
// status afterwards, so that an index on the status cannot be chosen to
// read every running run. TestQueuePlansReadTheBatchNotTheTable checks the
// generic plans of these statements against tables that grew after they
// were analysed.
//
// # Notifications
//
// Store.Notifications delivers the task queues whose tasks may have become
// runnable, from every process sharing the database, through LISTEN/NOTIFY
// on a channel of the schema (keel_tasks_<schema>). The payload names the
// kind of task as well as the queue: "w/<queue>" for a workflow task,
// "a/<queue>" for an activity task. Pollers use it to wake up at once
// instead of waiting for their next poll, and only the pollers of that kind
// of task wake. A task that an eager fast path leases to its caller is not
// notified.
//
// # Retention
//
// Closed runs are kept until DeleteClosedRuns removes those closed before a
// given time, with all their rows, in batches.
//
// # Maintenance
//
// The queue tables (keel_workflow_tasks, keel_activity_tasks, keel_timers,
// keel_inbox) delete almost every row soon after writing it. Like any
// queue in PostgreSQL they rely on autovacuum, which is on by default, to
// remove the dead rows and keep the planner's statistics current. With
// autovacuum off (New logs a warning), claims, timer scans and NextWakeup
// walk over every dead row at the head of their indexes, and the planner
// may take a table of 100,000 dead rows for an empty one and scan it:
// run VACUUM ANALYZE on these tables every minute or so. BENCHMARKS.md
// measures the difference.
//
// # Pool size
//
// Each Store method holds one of the pool's connections for its round
// trip, so the pool bounds how many transactions the server runs at once.
// A pool much larger than the server's cores costs the server CPU for
// every transaction (backends queue for the same locks and the same WAL
// flush): in BENCHMARKS.md's W2 on a 2-core machine that also runs the
// server, 64 connections used 55 to 75 % more server CPU per workflow than
// 16 and ran about a quarter fewer workflows per second; 8 used about 8 %
// less than 16, at a throughput the machine's noise could not tell apart.
// Size the pool from the server's cores (pool_max_conns in the URL), a few
// connections per core, not from the number of concurrent workflows.
package pgstore
