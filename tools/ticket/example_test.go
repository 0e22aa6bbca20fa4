package ticket_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/tools/ticket"
)

// Seed the demo tickets, answer T-1 and solve it. The update carries an
// idempotency key, so running it twice adds one comment.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "ticket-example-")
	defer os.RemoveAll(dir)

	db, err := appdb.Open(ctx, filepath.Join(dir, "keel.db")) // or a postgres:// URL
	if err != nil {
		panic(err)
	}
	defer db.Close()
	s, err := ticket.New(ctx, db, nil)
	if err != nil {
		panic(err)
	}
	if err := ticket.SeedDemo(ctx, s); err != nil {
		panic(err)
	}

	t1, _ := s.Get(ctx, "T-1")
	fmt.Println(t1.ID, t1.Subject, t1.Status, t1.RequesterEmail)

	solve := ticket.UpdateParams{
		Status:         ticket.StatusSolved,
		Comment:        &ticket.NewComment{Author: "agent", Body: "We refunded the duplicate payment.", Public: true},
		IdempotencyKey: "run-42/step-7",
	}
	for range 2 { // a retry
		if _, err := s.Update(ctx, "T-1", solve); err != nil {
			panic(err)
		}
	}
	comments, _ := s.Comments(ctx, "T-1")
	t1, _ = s.Get(ctx, "T-1")
	fmt.Println(t1.Status, len(comments))

	// Solved tickets can be reopened or closed, but not made pending.
	_, err = s.Update(ctx, "T-1", ticket.UpdateParams{Status: ticket.StatusPending})
	fmt.Println(errors.Is(err, ticket.ErrInvalidTransition), err)
	// Output:
	// T-1 I was charged twice open ada@example.com
	// solved 2
	// true ticket: T-1 cannot go from solved to pending
}
