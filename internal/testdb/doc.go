// Package testdb gives tests an isolated database.
//
// Postgres tests read the server's URL from TEST_DATABASE_URL. When it is
// unset they are skipped with a message saying how to run them, except when
// CI=true, where a missing URL fails the test: CI must not silently skip the
// Postgres half of the suite.
//
// Postgres(t) creates a schema of its own for each test, returns a pool
// whose connections use it as their search_path, and drops it when the test
// ends, so tests run in parallel against one database without seeing each
// other's rows:
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		pool := testdb.Postgres(t)
//		st, err := pgstore.New(t.Context(), pool, nil)
//		require.NoError(t, err)
//		...
//	}
//
// Run them with, for example:
//
//	TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable go test ./...
package testdb
