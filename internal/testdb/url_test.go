package testdb

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

func TestWithSearchPath(t *testing.T) {
	t.Parallel()
	got, err := withSearchPath("postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "keeltest_ab")
	require.NoError(t, err)
	require.Equal(t, "postgres://postgres@127.0.0.1:5432/test?search_path=keeltest_ab&sslmode=disable", got)
	got, err = withSearchPath("host=127.0.0.1 dbname=test ", "keeltest_ab")
	require.NoError(t, err)
	require.Equal(t, "host=127.0.0.1 dbname=test search_path=keeltest_ab", got)
	_, err = withSearchPath("postgres://%zz", "keeltest_ab")
	require.Error(t, err)
}

func TestPostgresWithURL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, dsn := PostgresWithURL(t)
	_, err := pool.Exec(ctx, "CREATE TABLE notes (body text)")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "INSERT INTO notes VALUES ('from the pool')")
	require.NoError(t, err)

	// A pool opened from the URL alone works in the same schema.
	other, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	defer other.Close()
	var schema, want, body string
	require.NoError(t, other.QueryRow(ctx, "SELECT current_schema()").Scan(&schema))
	require.NoError(t, pool.QueryRow(ctx, "SELECT current_schema()").Scan(&want))
	require.Equal(t, want, schema)
	require.NoError(t, other.QueryRow(ctx, "SELECT body FROM notes").Scan(&body))
	require.Equal(t, "from the pool", body)
}
