// Package scaletest holds the multi-process PostgreSQL tests of Keel's
// durable engine: properties that only show when several operating-system
// processes share one database, and the throughput benchmark of worker
// processes on PostgreSQL. It has no code outside its tests.
//
// # Processes
//
// The test binary is its own helper: TestMain re-executes it with
// KEEL_SCALETEST_MODE set to run a child (a worker, a store-level claimer,
// a starter), which opens the parent test's schema from TEST_DATABASE_URL
// and the schema name passed in KEEL_SCALETEST_SCHEMA. Children print
// "ready" on stdout, take orders on stdin, and stop when stdin closes; the
// parent SIGKILLs them where the test calls for a crash.
//
// # Tests
//
//   - TestScaleOutWorkerKills: three worker processes share 2,000
//     three-activity workflows while one of them is SIGKILLed and restarted
//     every second. Every run completes with the right result, every
//     activity result is recorded once, and every activity ran at most as
//     many times as the engine recorded attempts for it.
//   - TestClaimRace: sixteen pollers in two processes race for 20,000
//     workflow tasks through pgstore directly. Every task is completed by
//     one claimer, a token whose lease expired and was claimed again is
//     refused with store.ErrLeaseLost, and no two live leases of one task
//     overlap.
//   - TestDatabaseRestart: 500 workflows with activities and timers survive
//     a PostgreSQL cluster (a throwaway one the test creates with initdb)
//     being stopped for two seconds while they run.
//   - TestSameIDStartRace: concurrent starts of one workflow ID from two
//     processes create one run, and every start returns it.
//
// BenchmarkW2Throughput measures workflows per second with 1, 2 and 4
// worker processes, and what the workers sent the database per workflow
// (round trips, claims, claims that found nothing):
//
//	go test ./internal/scaletest -run '^$' -bench W2 -benchtime 1x
//
// The tests and the benchmark skip without TEST_DATABASE_URL (and fail
// under CI=true):
//
//	TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable go test ./internal/scaletest
//
// except TestDatabaseRestart, which never touches that server: it needs
// the PostgreSQL server binaries (initdb, pg_ctl) instead, and skips (or
// fails under CI=true) without them. Run as root, it runs them as the
// postgres OS user.
//
// Under the race detector the tests run smaller counts (see
// counts_race_test.go); the full counts run without it.
package scaletest
