package ticket_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/internal/testdb"
	"github.com/keelhq/keel/tools/ticket"
)

// databases open a fresh SQLite file and a fresh Postgres schema.
var databases = map[string]func(t *testing.T) *appdb.DB{
	"SQLite": func(t *testing.T) *appdb.DB {
		db, err := appdb.Open(t.Context(), filepath.Join(t.TempDir(), "keel.db"))
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		return db
	},
	"Postgres": func(t *testing.T) *appdb.DB {
		db := appdb.FromPool(testdb.Postgres(t))
		t.Cleanup(func() { db.Close() })
		return db
	},
}

// eachDB runs fn as parallel subtests, each on a fresh database of its
// kind.
func eachDB(t *testing.T, fn func(t *testing.T, db *appdb.DB)) {
	t.Helper()
	for name, open := range databases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, open(t))
		})
	}
}

func newStore(t *testing.T, db *appdb.DB) *ticket.Store {
	t.Helper()
	s, err := ticket.New(t.Context(), db, nil)
	require.NoError(t, err)
	return s
}

func newZendesk(t *testing.T, f *fakeZendesk) *ticket.Zendesk {
	t.Helper()
	z, err := ticket.NewZendesk(&ticket.ZendeskConfig{BaseURL: f.srv.URL, Email: zdEmail, APIToken: zdToken})
	require.NoError(t, err)
	return z
}

// eachDesk runs fn against the Store on both databases and against the
// Zendesk adapter talking to a fake Zendesk.
func eachDesk(t *testing.T, fn func(t *testing.T, d ticket.Desk)) {
	t.Helper()
	eachDB(t, func(t *testing.T, db *appdb.DB) { fn(t, newStore(t, db)) })
	t.Run("Zendesk", func(t *testing.T) {
		t.Parallel()
		fn(t, newZendesk(t, newFakeZendesk(t)))
	})
}

func ptr[T any](v T) *T { return &v }

func TestDesk(t *testing.T) {
	t.Parallel()
	eachDesk(t, func(t *testing.T, d ticket.Desk) {
		ctx := t.Context()
		created, err := d.Create(ctx, ticket.CreateParams{
			Subject: "I was charged twice", RequesterEmail: "Ada@Example.com", CustomerKey: "cus_ada",
			Comment: &ticket.NewComment{Author: "ada@example.com", Body: "Two payments of $49.", Public: true},
		})
		require.NoError(t, err)
		id := created.ID

		got, err := d.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "I was charged twice", got.Subject)
		require.Equal(t, ticket.StatusOpen, got.Status)
		require.Equal(t, "ada@example.com", got.RequesterEmail)
		require.Equal(t, "cus_ada", got.CustomerKey)
		require.Empty(t, got.Assignee)

		// A reply and a move to pending, with an assignee, in one update.
		up, err := d.Update(ctx, id, ticket.UpdateParams{
			Status: ticket.StatusPending, Assignee: ptr("sam@support.example.com"),
			Comment:        &ticket.NewComment{Author: "agent", Body: "Refund issued for the duplicate payment.", Public: true},
			IdempotencyKey: "call-1",
		})
		require.NoError(t, err)
		require.Equal(t, ticket.StatusPending, up.Status)
		require.Equal(t, "sam@support.example.com", up.Assignee)

		// The same update again (a retry) adds nothing.
		again, err := d.Update(ctx, id, ticket.UpdateParams{
			Status:         ticket.StatusPending,
			Comment:        &ticket.NewComment{Author: "agent", Body: "Refund issued for the duplicate payment.", Public: true},
			IdempotencyKey: "call-1",
		})
		require.NoError(t, err)
		require.Equal(t, ticket.StatusPending, again.Status)

		// An internal note, then solve.
		_, err = d.Update(ctx, id, ticket.UpdateParams{Comment: &ticket.NewComment{Body: "Checked in Stripe."}, IdempotencyKey: "call-2"})
		require.NoError(t, err)
		comments, err := d.Comments(ctx, id)
		require.NoError(t, err)
		require.Len(t, comments, 3)
		require.Equal(t, "Two payments of $49.", comments[0].Body)
		require.True(t, comments[0].Public)
		require.Equal(t, "Refund issued for the duplicate payment.", comments[1].Body)
		require.True(t, comments[1].Public)
		require.Equal(t, "Checked in Stripe.", comments[2].Body)
		require.False(t, comments[2].Public)
		require.Equal(t, 1, countBodies(comments, "Refund issued"), "the retried update added no comment")

		// Transitions: pending → closed is not allowed; nothing changes.
		_, err = d.Update(ctx, id, ticket.UpdateParams{Status: ticket.StatusClosed, Comment: &ticket.NewComment{Body: "closing"}})
		var te *ticket.TransitionError
		require.ErrorAs(t, err, &te)
		require.ErrorIs(t, err, ticket.ErrInvalidTransition)
		require.Equal(t, ticket.StatusPending, te.From)
		require.Equal(t, ticket.StatusClosed, te.To)
		comments, err = d.Comments(ctx, id)
		require.NoError(t, err)
		require.Len(t, comments, 3, "a refused update adds no comment")

		for _, st := range []ticket.Status{ticket.StatusSolved, ticket.StatusClosed} {
			_, err = d.Update(ctx, id, ticket.UpdateParams{Status: st})
			require.NoError(t, err, st)
		}
		_, err = d.Update(ctx, id, ticket.UpdateParams{Comment: &ticket.NewComment{Body: "too late"}})
		require.ErrorIs(t, err, ticket.ErrInvalidTransition, "a closed ticket takes no update")
		got, err = d.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, ticket.StatusClosed, got.Status)
		require.Equal(t, "sam@support.example.com", got.Assignee, "the assignee is kept")

		// Bad input.
		_, err = d.Get(ctx, "T-999999")
		require.ErrorIs(t, err, ticket.ErrNotFound)
		_, err = d.Comments(ctx, "999999")
		require.ErrorIs(t, err, ticket.ErrNotFound)
		_, err = d.Update(ctx, "999999", ticket.UpdateParams{Status: ticket.StatusOpen})
		require.ErrorIs(t, err, ticket.ErrNotFound)
		for _, bad := range []string{"", "T-", "T-x", "abc", "-3", "T-0"} {
			_, err = d.Get(ctx, bad)
			require.ErrorIs(t, err, ticket.ErrInvalid, bad)
		}
		_, err = d.Update(ctx, id, ticket.UpdateParams{})
		require.ErrorIs(t, err, ticket.ErrInvalid)
		_, err = d.Update(ctx, id, ticket.UpdateParams{Status: "escalated"})
		require.ErrorIs(t, err, ticket.ErrInvalid)
		_, err = d.Update(ctx, id, ticket.UpdateParams{Comment: &ticket.NewComment{Body: " "}})
		require.ErrorIs(t, err, ticket.ErrInvalid)
		_, err = d.Create(ctx, ticket.CreateParams{Subject: " "})
		require.ErrorIs(t, err, ticket.ErrInvalid)
		_, err = d.Create(ctx, ticket.CreateParams{Subject: "x", RequesterEmail: "not-an-email"})
		require.ErrorIs(t, err, ticket.ErrInvalid)

		// Create with an idempotency key creates once.
		a, err := d.Create(ctx, ticket.CreateParams{Subject: "Export help", RequesterEmail: "ada@example.com", IdempotencyKey: "create-1"})
		require.NoError(t, err)
		b, err := d.Create(ctx, ticket.CreateParams{Subject: "Export help", RequesterEmail: "ada@example.com", IdempotencyKey: "create-1"})
		require.NoError(t, err)
		require.Equal(t, a.ID, b.ID)
		c, err := d.Create(ctx, ticket.CreateParams{Subject: "Export help", RequesterEmail: "ada@example.com"})
		require.NoError(t, err)
		require.NotEqual(t, a.ID, c.ID)
	})
}

func countBodies(cs []ticket.Comment, prefix string) int {
	n := 0
	for _, c := range cs {
		if strings.HasPrefix(c.Body, prefix) {
			n++
		}
	}
	return n
}

func TestCanBecome(t *testing.T) {
	t.Parallel()
	all := []ticket.Status{ticket.StatusOpen, ticket.StatusPending, ticket.StatusSolved, ticket.StatusClosed}
	allowed := map[[2]ticket.Status]bool{
		{"open", "open"}: true, {"open", "pending"}: true, {"open", "solved"}: true,
		{"pending", "pending"}: true, {"pending", "open"}: true, {"pending", "solved"}: true,
		{"solved", "solved"}: true, {"solved", "open"}: true, {"solved", "closed"}: true,
	}
	for _, from := range all {
		for _, to := range all {
			require.Equal(t, allowed[[2]ticket.Status{from, to}], from.CanBecome(to), "%s → %s", from, to)
		}
	}
	require.False(t, ticket.Status("new").CanBecome(ticket.StatusOpen))
	require.False(t, ticket.StatusOpen.CanBecome("hold"))
}

func TestStore(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *appdb.DB) {
		s := newStore(t, db)
		ctx := t.Context()

		// Explicit IDs, then the counter goes on past them.
		t7, err := s.Create(ctx, ticket.CreateParams{ID: "T-7", Subject: "Seven"})
		require.NoError(t, err)
		require.Equal(t, "T-7", t7.ID)
		_, err = s.Create(ctx, ticket.CreateParams{ID: "t-7", Subject: "Seven again"})
		require.ErrorIs(t, err, ticket.ErrExists)
		t2, err := s.Create(ctx, ticket.CreateParams{ID: "2", Subject: "Two", Status: ticket.StatusPending, CustomerKey: "cus_b", RequesterEmail: "b@example.com"})
		require.NoError(t, err)
		require.Equal(t, "T-2", t2.ID)
		next, err := s.Create(ctx, ticket.CreateParams{Subject: "Next"})
		require.NoError(t, err)
		require.Equal(t, "T-8", next.ID)
		got, err := s.Get(ctx, "#8")
		require.NoError(t, err)
		require.Equal(t, "Next", got.Subject)

		list, err := s.List(ctx, &ticket.ListOpts{CustomerKey: "cus_b"})
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, "T-2", list[0].ID)
		list, err = s.List(ctx, &ticket.ListOpts{Status: ticket.StatusOpen})
		require.NoError(t, err)
		require.Len(t, list, 2)
		list, err = s.List(ctx, &ticket.ListOpts{RequesterEmail: "B@example.com", Status: ticket.StatusPending})
		require.NoError(t, err)
		require.Len(t, list, 1)
		_, err = s.List(ctx, &ticket.ListOpts{Status: "bogus"})
		require.ErrorIs(t, err, ticket.ErrInvalid)
		all, err := s.List(ctx, nil)
		require.NoError(t, err)
		require.Len(t, all, 3)

		// A key applied to one ticket cannot be used for another.
		_, err = s.Update(ctx, "T-7", ticket.UpdateParams{Status: ticket.StatusSolved, IdempotencyKey: "k"})
		require.NoError(t, err)
		_, err = s.Update(ctx, "T-8", ticket.UpdateParams{Status: ticket.StatusSolved, IdempotencyKey: "k"})
		require.ErrorIs(t, err, ticket.ErrKeyReused)
		got, err = s.Get(ctx, "T-8")
		require.NoError(t, err)
		require.Equal(t, ticket.StatusOpen, got.Status)

		// A refused update does not use up its key.
		_, err = s.Update(ctx, "T-2", ticket.UpdateParams{Status: ticket.StatusClosed, IdempotencyKey: "k2"})
		require.ErrorIs(t, err, ticket.ErrInvalidTransition)
		_, err = s.Update(ctx, "T-2", ticket.UpdateParams{Status: ticket.StatusSolved, IdempotencyKey: "k2"})
		require.NoError(t, err)
	})
}

// Concurrent attempts of one update (same key) add one comment; concurrent
// creates get distinct numbers.
func TestConcurrency(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *appdb.DB) {
		s := newStore(t, db)
		ctx := t.Context()
		tk, err := s.Create(ctx, ticket.CreateParams{Subject: "Race"})
		require.NoError(t, err)

		var wg sync.WaitGroup
		errs := make([]error, 12)
		ids := make([]string, 12)
		for i := range errs {
			wg.Go(func() {
				if i%2 == 0 {
					_, errs[i] = s.Update(ctx, tk.ID, ticket.UpdateParams{
						Status: ticket.StatusPending, Comment: &ticket.NewComment{Body: "once"}, IdempotencyKey: "same-call",
					})
					return
				}
				var c ticket.Ticket
				c, errs[i] = s.Create(ctx, ticket.CreateParams{Subject: fmt.Sprint("Concurrent ", i)})
				ids[i] = c.ID
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		comments, err := s.Comments(ctx, tk.ID)
		require.NoError(t, err)
		require.Len(t, comments, 1)
		seen := map[string]bool{}
		for i, id := range ids {
			if i%2 == 1 {
				require.False(t, seen[id], "duplicate ID %s", id)
				seen[id] = true
			}
		}
		require.Len(t, seen, 6)

		// Concurrent creates with one key make one ticket.
		keyed := make([]string, 8)
		for i := range keyed {
			wg.Go(func() {
				c, err := s.Create(ctx, ticket.CreateParams{Subject: "Keyed", IdempotencyKey: "create-race"})
				errs[i] = err
				keyed[i] = c.ID
			})
		}
		wg.Wait()
		for i := range keyed {
			require.NoError(t, errs[i])
			require.Equal(t, keyed[0], keyed[i])
		}
		list, err := s.List(ctx, nil)
		require.NoError(t, err)
		require.Len(t, list, 1+6+1)
	})
}

func TestSeedDemo(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *appdb.DB) {
		s := newStore(t, db)
		ctx := t.Context()
		require.NoError(t, ticket.SeedDemo(ctx, s))
		require.NoError(t, ticket.SeedDemo(ctx, s), "seeding twice is harmless")
		t1, err := s.Get(ctx, "T-1")
		require.NoError(t, err)
		require.Equal(t, "I was charged twice", t1.Subject)
		require.Equal(t, "ada@example.com", t1.RequesterEmail)
		require.Equal(t, "cus_ada", t1.CustomerKey)
		require.Equal(t, ticket.StatusOpen, t1.Status)
		cs, err := s.Comments(ctx, "T-1")
		require.NoError(t, err)
		require.Len(t, cs, 1)
		require.Contains(t, cs[0].Body, "charged twice")
		all, err := s.List(ctx, nil)
		require.NoError(t, err)
		require.Len(t, all, 3)
		n, err := s.Create(ctx, ticket.CreateParams{Subject: "After the demo"})
		require.NoError(t, err)
		require.Equal(t, "T-4", n.ID)
	})
}
