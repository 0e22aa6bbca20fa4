// Package pgcluster gives a test a PostgreSQL cluster of its own: initdb in
// a temporary directory, a server on a free port of 127.0.0.1 (no Unix
// socket), and Start and Stop to take the database away from the code under
// test and give it back, as a database restart or an outage would. The
// shared test server (TEST_DATABASE_URL) is never touched.
//
// New uses the machine's newest PostgreSQL server binaries, from
// /usr/lib/postgresql/*/bin or PATH. Without them it skips the test with a
// message, or fails it under CI=true. Run as root, the server runs as the
// postgres OS user (PostgreSQL refuses to run as root).
//
//	c := pgcluster.New(t)
//	require.NoError(t, c.Start())
//	pool, err := pgxpool.New(ctx, c.URL())
//	...
//	require.NoError(t, c.Stop(pgcluster.Fast)) // the outage
//	require.NoError(t, c.Start())
//
// The cluster is stopped when the test ends, whatever state it was left in.
package pgcluster
