package testdb

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeTB records what a helper does to its test: a skip or a failure ends
// the goroutine, as testing.T does, and cleanups are kept to run later.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	skipped  string
	failed   string
	cleanups []func()
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.mu.Lock()
	f.skipped = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.failed = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Errorf(format string, args ...any) { f.Fatalf(format, args...) }

func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// runCleanups runs the recorded cleanups last first, as testing does.
func (f *fakeTB) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

// run calls fn with f on a goroutine of its own, so that a skip or a
// failure can end it.
func (f *fakeTB) run(fn func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
}

func TestPostgresURL(t *testing.T) {
	t.Parallel()

	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}

	t.Run("Set", func(t *testing.T) {
		t.Parallel()
		f := &fakeTB{TB: t}
		var got string
		f.run(func(tb testing.TB) { got = postgresURL(tb, env(map[string]string{URLEnv: "postgres://x"})) })
		require.Equal(t, "postgres://x", got)
		require.Empty(t, f.skipped)
		require.Empty(t, f.failed)
	})

	t.Run("UnsetSkips", func(t *testing.T) {
		t.Parallel()
		f := &fakeTB{TB: t}
		f.run(func(tb testing.TB) { postgresURL(tb, env(nil)) })
		require.Contains(t, f.skipped, URLEnv)
		require.Empty(t, f.failed)
	})

	t.Run("UnsetFailsUnderCI", func(t *testing.T) {
		t.Parallel()
		f := &fakeTB{TB: t}
		f.run(func(tb testing.TB) { postgresURL(tb, env(map[string]string{"CI": "true"})) })
		require.Contains(t, f.failed, URLEnv)
		require.Empty(t, f.skipped)
	})
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	PostgresURL(t) // skip both subtests at once
	ctx := context.Background()

	t.Run("SchemaPerTest", func(t *testing.T) {
		t.Parallel()
		a, b := Postgres(t), Postgres(t)
		var schemaA, schemaB string
		require.NoError(t, a.QueryRow(ctx, "SELECT current_schema()").Scan(&schemaA))
		require.NoError(t, b.QueryRow(ctx, "SELECT current_schema()").Scan(&schemaB))
		require.True(t, strings.HasPrefix(schemaA, "keeltest_"), schemaA)
		require.NotEqual(t, schemaA, schemaB)

		// Unqualified tables land in the pool's schema, invisible to the
		// other pool.
		_, err := a.Exec(ctx, "CREATE TABLE t (id int)")
		require.NoError(t, err)
		_, err = b.Exec(ctx, "SELECT * FROM t")
		require.Error(t, err)
		_, err = b.Exec(ctx, "CREATE TABLE t (id int)")
		require.NoError(t, err)
	})

	t.Run("DropsSchemaOnCleanup", func(t *testing.T) {
		t.Parallel()
		f := &fakeTB{TB: t}
		var schema string
		f.run(func(tb testing.TB) {
			pool := Postgres(tb)
			require.NoError(t, pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema))
			_, err := pool.Exec(ctx, "CREATE TABLE t (id int)")
			require.NoError(t, err)
		})
		require.Empty(t, f.failed)
		require.NotEmpty(t, schema)

		admin := Postgres(t) // any connection to the server will do
		exists := func() bool {
			var n int
			require.NoError(t, admin.QueryRow(ctx,
				"SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema).Scan(&n))
			return n == 1
		}
		require.True(t, exists())
		f.runCleanups()
		require.Empty(t, f.failed)
		require.False(t, exists(), "schema %s is dropped", schema)
	})
}
