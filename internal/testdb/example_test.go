package testdb_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/internal/testdb"
)

// A test gets a pool on a schema of its own; the schema is dropped when the
// test ends. Without TEST_DATABASE_URL the test is skipped (failed under
// CI=true).
func ExamplePostgres() {
	testSomething := func(t *testing.T) {
		t.Parallel()
		pool := testdb.Postgres(t)

		_, err := pool.Exec(t.Context(), "CREATE TABLE notes (body text)")
		require.NoError(t, err)
	}
	_ = testSomething
}
