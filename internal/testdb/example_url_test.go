package testdb_test

import (
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/internal/testdb"
)

// A test that runs a program against the test's schema gives it the URL;
// the pool sees what the program wrote.
func ExamplePostgresWithURL() {
	testCommand := func(t *testing.T) {
		t.Parallel()
		pool, dsn := testdb.PostgresWithURL(t)

		out, err := exec.Command("keel", "runs", "--db", dsn).CombinedOutput()
		require.NoError(t, err, string(out))
		_ = pool
	}
	_ = testCommand
}
