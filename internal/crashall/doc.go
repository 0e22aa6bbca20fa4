// Package crashall is the crash-at-every-boundary part of Keel's
// reliability proof. It holds tests only; they need the failpoints build
// tag (package internal/failpoint), without which this package has
// nothing to run:
//
//	go test -tags failpoints -count=1 ./internal/crashall/
//
// # Crash at every boundary
//
// TestCrashAtEveryBoundary runs a mixed workload in child processes of the
// test binary, on a SQLite file and again on a PostgreSQL schema (from
// TEST_DATABASE_URL, as package internal/testdb gives it): workflows with activities (whose side
// effects go to a table of their own, keyed by the activity's idempotency
// key, with a count of attempts), a timer, a signal, a child workflow,
// continue-as-new, a cancel and a terminate, an approval (package hitl)
// decided by a reviewer process, and a charge (package billing) against a
// fake Stripe (billing/stripefake) served by the test process.
//
// A baseline run with no failpoints lists the failpoints the worker and
// the reviewer cross, and records the final state: each run's status,
// result and history (scrubbed of times, IDs and attempt numbers), the side
// effects, the ledger, the charges and the votes. Then, for each failpoint
// and each seed, a fresh workload is SIGKILLed at that failpoint (the seed
// picks which hit), resumed in a fresh process without failpoints, and its
// final state must equal the baseline's: same results, same histories,
// every side effect exactly once, one ledger entry and one charge, one
// vote.
//
// A resumed process runs with its clock two minutes ahead of the killed
// one per generation, so that the killed process's leases (a workflow
// task's, an activity attempt's) have expired when it starts, as they
// would after a real restart, without the test waiting for them.
//
// # Ambiguous commits
//
// TestAmbiguousCommits runs many workflows (activities, a timer, a signal,
// a child, continue-as-new, charges for some) in a child process where 1%
// of the hits of every ".after" failpoint report an error although the
// write committed. Every workflow must complete with the expected result,
// every history must be well formed (contiguous event IDs, each command
// sequence number once, each activity completed once), and every side
// effect must have happened once.
//
// # Profiles
//
// The CI profile (the default) runs 3 seeds per failpoint on SQLite and 1
// on Postgres, and 500 workflows per store for the ambiguous commits;
// KEEL_RELIABILITY=full runs 115 seeds and 10,000 workflows on each store.
// KEEL_CRASHALL_SEEDS overrides the seeds per failpoint of either profile.
// RELIABILITY.md at the repository root records the figures.
//
// TestTwoProcessesOpenANewSQLiteFile reproduces a bug the suite found: two
// processes opening one new SQLite file at once may fail with SQLITE_BUSY.
// Until it is fixed, the crash suite creates each SQLite file before its
// processes start.
package crashall
