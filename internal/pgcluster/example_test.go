package pgcluster_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelhq/keel/internal/pgcluster"
)

// A test takes its database away for an outage and gives it back.
func Example() {
	var t *testing.T // the test's
	c := pgcluster.New(t)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(context.Background(), c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	// The outage: queries fail until the server is back, and the pool
	// reconnects.
	if err := c.Stop(pgcluster.Immediate); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
}
