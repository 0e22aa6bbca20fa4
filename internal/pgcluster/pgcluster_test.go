package pgcluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/internal/pgcluster"
)

// The cluster serves, is gone after Stop in either mode, and keeps its
// committed data across stops.
func TestStartStop(t *testing.T) {
	t.Parallel()
	c := pgcluster.New(t)
	require.NoError(t, c.Start())
	ctx := context.Background()
	connect := func() (*pgx.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return pgx.Connect(ctx, c.URL())
	}
	conn, err := connect()
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)`)
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))

	for _, mode := range []pgcluster.StopMode{pgcluster.Fast, pgcluster.Immediate} {
		require.NoError(t, c.Stop(mode))
		_, err := connect()
		require.Error(t, err, "the server is down after a %s stop", mode)
		require.NoError(t, c.Start())
		conn, err := connect()
		require.NoError(t, err)
		var n int
		require.NoError(t, conn.QueryRow(ctx, `SELECT n FROM kept`).Scan(&n))
		require.Equal(t, 42, n, "committed data survives a %s stop", mode)
		require.NoError(t, conn.Close(ctx))
	}
	require.Contains(t, c.Log(), "database system is ready to accept connections")
}
