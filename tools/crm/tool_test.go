package crm_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/tools"
	"github.com/keelhq/keel/tools/crm"
)

func TestLookupTool(t *testing.T) {
	t.Parallel()
	eachCRM(t, func(t *testing.T, c crm.CRM) {
		ctx := t.Context()
		require.NoError(t, crm.SeedDemo(ctx, c))
		lookup := crm.LookupTool(c, nil)
		require.Equal(t, crm.LookupToolName, lookup.Name())

		for _, args := range []string{`{"email":"ada@example.com"}`, `{"key":"cus_ada"}`, `{"email":"charles@example.com"}`} {
			r := lookup.Invoke(ctx, args)
			require.False(t, r.IsError, "%s: %s", args, r.Error)
			var out crm.LookupOutput
			require.NoError(t, json.Unmarshal(r.Content, &out))
			require.Equal(t, "Ada Lovelace", out.Customer.Name)
			require.Equal(t, "pro", out.Customer.Plan)
			require.Len(t, out.Contacts, 1)
			require.Len(t, out.Notes, 1)
			require.Len(t, out.Deals, 1)
		}
		for args, want := range map[string]string{
			`{"email":"nobody@example.com"}`: "not found",
			`{}`:                             "exactly one of email and key",
			`{"email":"a@example.com","key":"cus_a"}`: "exactly one of email and key",
			`{"emial":"ada@example.com"}`:             "emial",
		} {
			r := lookup.Invoke(ctx, args)
			require.True(t, r.IsError, args)
			require.Contains(t, r.Error, want, args)
		}
	})
}

func TestUpdateDealTool(t *testing.T) {
	t.Parallel()
	eachCRM(t, func(t *testing.T, c crm.CRM) {
		ctx := t.Context()
		require.NoError(t, crm.SeedDemo(ctx, c))
		update := crm.UpdateDealTool(c, nil)
		r := update.Invoke(ctx, `{"deal_key":"deal_ada_enterprise","stage":"won","amount":0}`)
		require.False(t, r.IsError, r.Error)
		d, err := c.Deal(ctx, "deal_ada_enterprise")
		require.NoError(t, err)
		require.Equal(t, crm.StageWon, d.Stage)
		require.Zero(t, d.Amount)
		require.Equal(t, "Upgrade to Enterprise", d.Title, "other fields are kept")

		r = update.Invoke(ctx, `{"deal_key":"deal_ada_enterprise","stage":"closing"}`)
		require.True(t, r.IsError)
		require.Equal(t, tools.ErrorInvalidArguments, r.ErrorKind, "the schema lists the stages")
		r = update.Invoke(ctx, `{"deal_key":"deal_ada_enterprise"}`)
		require.True(t, r.IsError)
		r = update.Invoke(ctx, `{"deal_key":"deal_missing","stage":"won"}`)
		require.True(t, r.IsError)
		require.Contains(t, r.Error, "not found")
	})
}

// failOnce fails the first AddNote after it has written the note, as a
// lost response or a crash after the write would.
type failOnce struct {
	crm.CRM
	failed atomic.Bool
}

func (f *failOnce) AddNote(ctx context.Context, n crm.Note) (crm.Note, error) {
	out, err := f.CRM.AddNote(ctx, n)
	if err == nil && f.failed.CompareAndSwap(false, true) {
		return crm.Note{}, errors.New("connection reset after the write")
	}
	return out, err
}

// A retried crm_add_note call, run by the engine, adds its note once: the
// tool passes the call's idempotency key to the CRM.
func TestAddNoteToolRetry(t *testing.T) {
	t.Parallel()
	eachCRM(t, func(t *testing.T, c crm.CRM) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		require.NoError(t, crm.SeedDemo(ctx, c))
		flaky := &failOnce{CRM: c}
		addNote := crm.AddNoteTool(flaky, &tools.Options{Activity: &durable.ActivityOptions{
			RetryPolicy: durable.RetryPolicy{InitialInterval: 10 * time.Millisecond, MaximumAttempts: 3},
		}})
		wf := durable.NewWorkflow("add-note", func(ctx durable.Context, body string) (tools.Result, error) {
			args, _ := json.Marshal(crm.AddNoteInput{CustomerKey: crm.DemoAlan, Body: body})
			return addNote.Run(ctx, tools.Call{ID: "call_1", Name: crm.AddNoteToolName, Arguments: string(args)}, nil)
		})

		st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "engine.db"), nil)
		require.NoError(t, err)
		defer st.Close()
		e, err := durable.New(st, &durable.Config{PollInterval: 50 * time.Millisecond})
		require.NoError(t, err)
		e.MustRegister(wf, addNote.Definition())
		e.NewWorker(nil)
		require.NoError(t, e.Start(ctx))
		defer e.Stop(context.Background())

		r, err := wf.Run(ctx, e, "Asked about SSO.", &durable.StartOptions{ID: "note-1"})
		require.NoError(t, err)
		require.False(t, r.IsError, r.Error)
		require.True(t, flaky.failed.Load(), "the first attempt failed")
		var note crm.Note
		require.NoError(t, json.Unmarshal(r.Content, &note))
		require.Equal(t, "agent", note.Author)

		notes, err := c.Notes(ctx, crm.DemoAlan)
		require.NoError(t, err)
		require.Len(t, notes, 1, "the retry added nothing")
		require.Equal(t, "Asked about SSO.", notes[0].Body)
	})
}
