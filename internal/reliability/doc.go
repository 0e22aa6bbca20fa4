// Package reliability holds Keel's reliability proof: tests that take the
// engine's storage away in the middle of its work and check that nothing is
// lost and nothing happens twice. Its own code is the choice of profile;
// the proof is its tests:
//
//   - TestSQLiteKillMidWrite runs a heavy workload (workflows with
//     activities and timers) in a child process on a SQLite file and
//     SIGKILLs it at random moments. After every kill the file opens
//     cleanly (PRAGMA integrity_check) and every run's history is a prefix
//     of the history of the same workflow run without a crash; at the end
//     every result is exact and every activity result is recorded once.
//   - TestPoison sends undecodable and deeply nested payloads, panicking and
//     blocking code and an oversized result to a worker, on SQLite and
//     Postgres: each fails (or blocks) one run, and a canary run completes
//     on the same worker after each.
//   - TestPostgresChaos runs workflows with signals and timers on a
//     PostgreSQL cluster of its own (package pgcluster) and stops the
//     server again and again while they run: every result is exact and no
//     history holds an event twice.
//
// The fuzz targets live next to the code they fuzz: durable.FuzzReplayJSON
// and FuzzTape in sqlitestore and pgstore (storetest.RunTape).
//
// # Profiles
//
// By default the tests run the CI profile, sized for a two-core machine
// (30 kills, 500 chaos workflows with an outage every few seconds).
// KEEL_RELIABILITY=full selects the full profile (1,000 kills, 10,000 chaos
// workflows, an outage every 5 to 40 seconds). RELIABILITY.md at the
// repository root has the commands and the figures measured.
package reliability
