package ticket_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/tools"
	"github.com/keelhq/keel/tools/ticket"
)

func TestGetTool(t *testing.T) {
	t.Parallel()
	eachDesk(t, func(t *testing.T, d ticket.Desk) {
		ctx := t.Context()
		tk, err := d.Create(ctx, ticket.CreateParams{Subject: "I was charged twice", RequesterEmail: "ada@example.com",
			Comment: &ticket.NewComment{Body: "Two payments.", Public: true}})
		require.NoError(t, err)
		get := ticket.GetTool(d, nil)
		r := get.Invoke(ctx, `{"ticket_id":"`+tk.ID+`"}`)
		require.False(t, r.IsError, r.Error)
		var out ticket.GetOutput
		require.NoError(t, json.Unmarshal(r.Content, &out))
		require.Equal(t, "I was charged twice", out.Ticket.Subject)
		require.Len(t, out.Comments, 1)
		require.Equal(t, "Two payments.", out.Comments[0].Body)

		r = get.Invoke(ctx, `{"ticket_id":"T-424242"}`)
		require.True(t, r.IsError)
		require.Contains(t, strings.ToLower(r.Error), "not found")

		update := ticket.UpdateTool(d, nil)
		r = update.Invoke(ctx, `{"ticket_id":"`+tk.ID+`","status":"closed"}`)
		require.True(t, r.IsError)
		require.Contains(t, r.Error, "cannot go from open to closed")
		r = update.Invoke(ctx, `{"ticket_id":"`+tk.ID+`","status":"escalated"}`)
		require.Equal(t, tools.ErrorInvalidArguments, r.ErrorKind)
		r = update.Invoke(ctx, `{"ticket_id":"`+tk.ID+`"}`)
		require.True(t, r.IsError)
		require.Contains(t, r.Error, "changes nothing")
	})
}

// failOnce fails the first Update after it has been applied, as a lost
// response or a crash right after the write would.
type failOnce struct {
	ticket.Desk
	failed atomic.Bool
}

func (f *failOnce) Update(ctx context.Context, id string, p ticket.UpdateParams) (ticket.Ticket, error) {
	t, err := f.Desk.Update(ctx, id, p)
	if err == nil && f.failed.CompareAndSwap(false, true) {
		return ticket.Ticket{}, errors.New("connection reset after the write")
	}
	return t, err
}

// A ticket_update call that the engine retries after its update was
// applied adds its comment once: the tool passes the call's idempotency
// key.
func TestUpdateToolRetry(t *testing.T) {
	t.Parallel()
	eachDesk(t, func(t *testing.T, d ticket.Desk) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		tk, err := d.Create(ctx, ticket.CreateParams{Subject: "I was charged twice", RequesterEmail: "ada@example.com"})
		require.NoError(t, err)

		flaky := &failOnce{Desk: d}
		update := ticket.UpdateTool(flaky, &tools.Options{Activity: &durable.ActivityOptions{
			RetryPolicy: durable.RetryPolicy{InitialInterval: 10 * time.Millisecond, MaximumAttempts: 3},
		}})
		wf := durable.NewWorkflow("solve", func(ctx durable.Context, id string) (tools.Result, error) {
			args, _ := json.Marshal(ticket.UpdateInput{TicketID: id, Status: ticket.StatusSolved,
				Comment: "We refunded the duplicate payment of $49.", Public: true})
			return update.Run(ctx, tools.Call{ID: "call_1", Name: ticket.UpdateToolName, Arguments: string(args)}, nil)
		})
		st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "engine.db"), nil)
		require.NoError(t, err)
		defer st.Close()
		e, err := durable.New(st, &durable.Config{PollInterval: 50 * time.Millisecond})
		require.NoError(t, err)
		e.MustRegister(wf, update.Definition())
		e.NewWorker(nil)
		require.NoError(t, e.Start(ctx))
		defer e.Stop(context.Background())

		r, err := wf.Run(ctx, e, tk.ID, &durable.StartOptions{ID: "solve-" + tk.ID})
		require.NoError(t, err)
		require.False(t, r.IsError, r.Error)
		require.True(t, flaky.failed.Load(), "the first attempt failed after applying the update")
		var got ticket.Ticket
		require.NoError(t, json.Unmarshal(r.Content, &got))
		require.Equal(t, ticket.StatusSolved, got.Status)

		cs, err := d.Comments(ctx, tk.ID)
		require.NoError(t, err)
		require.Equal(t, 1, countBodies(cs, "We refunded"), "the retry added no second comment")
	})
}
