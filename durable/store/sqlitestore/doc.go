// Package sqlitestore is Keel's embedded storage driver: a store.Store on a
// single SQLite file, through the pure-Go modernc.org/sqlite driver (no cgo).
//
// Open a file with [Open], or pass a handle you opened yourself to [New]:
//
//	s, err := sqlitestore.Open("keel.db", nil)
//
// # Durability and concurrency
//
// Open uses WAL journaling with synchronous=FULL: a Store method that writes
// returns once its transaction is committed and fsynced. One goroutine per
// Store, the writer, runs all of its write transactions, so goroutines queue
// instead of retrying on SQLITE_BUSY; the operations that queue up while a
// commit is being written share the next transaction and its fsync (group
// commit), each under its own savepoint, so that one operation's error undoes
// only its own changes. Reads run on other connections, concurrently with
// the writer. Several processes may share one file; their writers are kept
// apart by BEGIN IMMEDIATE and a busy timeout.
//
// # Schema
//
// The schema is migrated on open (goose, embedded migrations/*.sql). All
// pending migrations run in one IMMEDIATE transaction, so processes that
// open a new file at the same time migrate it once, and a failed migration
// changes nothing. A database migrated by a newer Keel is refused with
// store.ErrSchemaTooNew.
//
// Times are stored as Unix nanoseconds and returned in UTC. Two triggers
// keep the store's invariants in the database itself: a row written to a
// run's inbox makes the run's workflow task runnable, and closing a run
// deletes its tasks, timers and inbox.
//
// # Wake-ups
//
// NextWakeup reports timers, activity deadlines, and the moments at which
// delayed tasks become claimable (an expired workflow task lease, the end
// of a retry backoff); it does not report tasks that were ready as soon as
// they were written. FireTimers fires due timers and also acknowledges due
// wake-ups of delayed tasks, so that the next NextWakeup lies in the future
// once the engine has handled everything due.
package sqlitestore
