package crm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/internal/testdb"
	"github.com/keelhq/keel/tools/crm"
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

func newStore(t *testing.T, db *appdb.DB) *crm.Store {
	t.Helper()
	s, err := crm.New(t.Context(), db, nil)
	require.NoError(t, err)
	return s
}

const testToken = "s3cret"

// serve runs Handler over c, mounted under /api/v1 behind a bearer-token
// check, as a real HTTP server, and returns a Client for it.
func serve(t *testing.T, c crm.CRM) (*crm.Client, *httptest.Server) {
	t.Helper()
	h := crm.Handler(c)
	auth := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			http.Error(w, `{"error":{"code":"unauthorized","message":"bad token"}}`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(http.StripPrefix("/api/v1", auth))
	t.Cleanup(srv.Close)
	client, err := crm.NewClient(&crm.ClientConfig{BaseURL: srv.URL + "/api/v1/", Token: testToken})
	require.NoError(t, err)
	return client, srv
}

// eachCRM runs fn against the built-in Store and against a Client talking
// to a Store over HTTP, each on a fresh database of each kind.
func eachCRM(t *testing.T, fn func(t *testing.T, c crm.CRM)) {
	t.Helper()
	for name, open := range databases {
		t.Run(name+"/Store", func(t *testing.T) {
			t.Parallel()
			fn(t, newStore(t, open(t)))
		})
		t.Run(name+"/Client", func(t *testing.T) {
			t.Parallel()
			client, _ := serve(t, newStore(t, open(t)))
			fn(t, client)
		})
	}
}

func TestCustomers(t *testing.T) {
	t.Parallel()
	eachCRM(t, func(t *testing.T, c crm.CRM) {
		ctx := t.Context()
		in := crm.Customer{Key: "cus 1/ü", Name: " Ada Lovelace ", Email: "Ada@Example.com", Company: "AE", Plan: "pro",
			Metadata: map[string]string{"seats": "12"}}
		got, err := c.UpsertCustomer(ctx, in)
		require.NoError(t, err)
		require.Equal(t, "Ada Lovelace", got.Name)
		require.Equal(t, "ada@example.com", got.Email)
		require.False(t, got.CreatedAt.IsZero())

		again, err := c.UpsertCustomer(ctx, in)
		require.NoError(t, err)
		require.Equal(t, got.CreatedAt, again.CreatedAt, "an upsert of an existing key keeps its creation time")

		byKey, err := c.Customer(ctx, "cus 1/ü")
		require.NoError(t, err)
		require.Equal(t, again, byKey)
		byEmail, err := c.CustomerByEmail(ctx, " ADA@example.COM ")
		require.NoError(t, err)
		require.Equal(t, "cus 1/ü", byEmail.Key)
		require.Equal(t, map[string]string{"seats": "12"}, byEmail.Metadata)

		// An upsert replaces every field.
		_, err = c.UpsertCustomer(ctx, crm.Customer{Key: "cus 1/ü", Name: "Ada King", Email: "ada@example.org"})
		require.NoError(t, err)
		byKey, err = c.Customer(ctx, "cus 1/ü")
		require.NoError(t, err)
		require.Equal(t, "Ada King", byKey.Name)
		require.Empty(t, byKey.Plan)
		require.Nil(t, byKey.Metadata)
		_, err = c.CustomerByEmail(ctx, "ada@example.com")
		require.ErrorIs(t, err, crm.ErrNotFound)

		_, err = c.Customer(ctx, "cus_missing")
		require.ErrorIs(t, err, crm.ErrNotFound)
		for _, bad := range []crm.Customer{
			{Name: "No key"},
			{Key: "k"},
			{Key: "k", Name: "N", Email: "not an email"},
			{Key: "k", Name: "N", Email: "Ada <ada@example.com>"},
			{Key: strings.Repeat("k", 201), Name: "N"},
			{Key: "k", Name: "N", Metadata: map[string]string{"": "v"}},
		} {
			_, err := c.UpsertCustomer(ctx, bad)
			require.ErrorIs(t, err, crm.ErrInvalid, "%+v", bad)
		}
		_, err = c.CustomerByEmail(ctx, "nope")
		require.ErrorIs(t, err, crm.ErrInvalid)
	})
}

func TestContactsNotesDeals(t *testing.T) {
	t.Parallel()
	eachCRM(t, func(t *testing.T, c crm.CRM) {
		ctx := t.Context()
		_, err := c.UpsertCustomer(ctx, crm.Customer{Key: "cus_a", Name: "A", Email: "a@example.com"})
		require.NoError(t, err)
		_, err = c.UpsertCustomer(ctx, crm.Customer{Key: "cus_b", Name: "B", Email: "b@example.com"})
		require.NoError(t, err)

		// Contacts: upsert by (customer, email); a contact's email finds
		// its customer, but a customer's own email wins.
		_, err = c.UpsertContact(ctx, crm.Contact{CustomerKey: "cus_a", Email: "Zed@Example.com", Name: "Zed"})
		require.NoError(t, err)
		_, err = c.UpsertContact(ctx, crm.Contact{CustomerKey: "cus_a", Email: "zed@example.com", Name: "Zed Z", Role: "billing"})
		require.NoError(t, err)
		_, err = c.UpsertContact(ctx, crm.Contact{CustomerKey: "cus_a", Email: "b@example.com", Name: "B at A"})
		require.NoError(t, err)
		contacts, err := c.Contacts(ctx, "cus_a")
		require.NoError(t, err)
		require.Len(t, contacts, 2)
		require.Equal(t, "b@example.com", contacts[0].Email)
		require.Equal(t, "Zed Z", contacts[1].Name)
		require.Equal(t, "billing", contacts[1].Role)
		cu, err := c.CustomerByEmail(ctx, "zed@example.com")
		require.NoError(t, err)
		require.Equal(t, "cus_a", cu.Key)
		cu, err = c.CustomerByEmail(ctx, "b@example.com")
		require.NoError(t, err)
		require.Equal(t, "cus_b", cu.Key)
		contacts, err = c.Contacts(ctx, "cus_b")
		require.NoError(t, err)
		require.Empty(t, contacts)
		require.NotNil(t, contacts)
		_, err = c.UpsertContact(ctx, crm.Contact{CustomerKey: "cus_missing", Email: "x@example.com"})
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = c.UpsertContact(ctx, crm.Contact{CustomerKey: "cus_a"})
		require.ErrorIs(t, err, crm.ErrInvalid)
		_, err = c.Contacts(ctx, "cus_missing")
		require.ErrorIs(t, err, crm.ErrNotFound)

		// Notes: an idempotency key adds a note once.
		n1, err := c.AddNote(ctx, crm.Note{CustomerKey: "cus_a", Author: "support", Body: "Called about invoices.", IdempotencyKey: "call-1"})
		require.NoError(t, err)
		n1again, err := c.AddNote(ctx, crm.Note{CustomerKey: "cus_a", Author: "support", Body: "Called about invoices.", IdempotencyKey: "call-1"})
		require.NoError(t, err)
		require.Equal(t, n1.ID, n1again.ID)
		_, err = c.AddNote(ctx, crm.Note{CustomerKey: "cus_a", Body: "Second."})
		require.NoError(t, err)
		_, err = c.AddNote(ctx, crm.Note{CustomerKey: "cus_a", Body: "Second."})
		require.NoError(t, err, "notes without a key are all added")
		notes, err := c.Notes(ctx, "cus_a")
		require.NoError(t, err)
		require.Len(t, notes, 3)
		require.Equal(t, "Called about invoices.", notes[0].Body)
		require.Equal(t, "support", notes[0].Author)
		_, err = c.AddNote(ctx, crm.Note{CustomerKey: "cus_a", Body: "  "})
		require.ErrorIs(t, err, crm.ErrInvalid)
		_, err = c.AddNote(ctx, crm.Note{CustomerKey: "cus_missing", Body: "x"})
		require.ErrorIs(t, err, crm.ErrNotFound)

		// Deals.
		d, err := c.UpsertDeal(ctx, crm.Deal{Key: "deal_1", CustomerKey: "cus_a", Title: "Pro upgrade", Stage: "Lead", Amount: 120000, Currency: "eur"})
		require.NoError(t, err)
		require.Equal(t, crm.StageLead, d.Stage)
		require.Equal(t, "EUR", d.Currency)
		_, err = c.UpsertDeal(ctx, crm.Deal{Key: "deal_1", CustomerKey: "cus_a", Title: "Pro upgrade", Stage: crm.StageWon, Amount: 100000})
		require.NoError(t, err)
		got, err := c.Deal(ctx, "deal_1")
		require.NoError(t, err)
		require.Equal(t, crm.StageWon, got.Stage)
		require.Equal(t, int64(100000), got.Amount)
		require.Equal(t, "USD", got.Currency)
		deals, err := c.Deals(ctx, "cus_a")
		require.NoError(t, err)
		require.Len(t, deals, 1)
		_, err = c.Deal(ctx, "deal_missing")
		require.ErrorIs(t, err, crm.ErrNotFound)
		for _, bad := range []crm.Deal{
			{Key: "d", CustomerKey: "cus_a", Title: "T", Stage: "closing"},
			{Key: "d", CustomerKey: "cus_a", Title: "T", Stage: crm.StageLead, Amount: -1},
			{Key: "d", CustomerKey: "cus_a", Title: "T", Stage: crm.StageLead, Currency: "dollars"},
			{Key: "d", CustomerKey: "cus_a", Stage: crm.StageLead},
		} {
			_, err := c.UpsertDeal(ctx, bad)
			require.ErrorIs(t, err, crm.ErrInvalid, "%+v", bad)
		}
		_, err = c.UpsertDeal(ctx, crm.Deal{Key: "d", CustomerKey: "cus_missing", Title: "T", Stage: crm.StageLead})
		require.ErrorIs(t, err, crm.ErrNotFound)
	})
}

// Concurrent upserts and notes of one key leave one record, on both
// databases and through the HTTP API.
func TestConcurrentUpserts(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *appdb.DB) {
		s := newStore(t, db)
		client, _ := serve(t, s)
		ctx := t.Context()
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for i := range 16 {
			var c crm.CRM = s
			if i%2 == 1 {
				c = client
			}
			wg.Go(func() {
				_, err := c.UpsertCustomer(ctx, crm.Customer{Key: "cus_race", Name: fmt.Sprint("N", i), Email: "race@example.com"})
				errs <- err
				_, err = c.UpsertContact(ctx, crm.Contact{CustomerKey: "cus_race", Email: "c@example.com", Name: fmt.Sprint(i)})
				errs <- err
				_, err = c.AddNote(ctx, crm.Note{CustomerKey: "cus_race", Body: "once", IdempotencyKey: "note-race"})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		for table, want := range map[string]int{"crm_customers": 1, "crm_contacts": 1, "crm_notes": 1} {
			var n int
			require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n))
			require.Equal(t, want, n, table)
		}
	})
}

// The HTTP shape on the wire, as documented, and the client's handling of
// errors it does not know.
func TestRESTShape(t *testing.T) {
	t.Parallel()
	db, err := appdb.Open(t.Context(), filepath.Join(t.TempDir(), "keel.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	s, err := crm.New(t.Context(), db, &crm.Config{Test: crm.TestConfig{Now: func() time.Time {
		return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	}}})
	require.NoError(t, err)
	_, srv := serve(t, s)

	call := func(method, path, body string, header ...string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+"/api/v1"+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+testToken)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}

	code, body := call("PUT", "/customers/cus_ada", `{"name":"Ada Lovelace","email":"ada@example.com","plan":"pro","metadata":{"seats":"12"}}`)
	require.Equal(t, 200, code, body)
	require.JSONEq(t, `{"key":"cus_ada","name":"Ada Lovelace","email":"ada@example.com","plan":"pro","metadata":{"seats":"12"},
		"created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z"}`, body)
	code, body = call("GET", "/customers?email=ADA%40example.com", "")
	require.Equal(t, 200, code, body)
	require.Contains(t, body, `"customers":[{"key":"cus_ada"`)
	code, body = call("GET", "/customers?email=nobody%40example.com", "")
	require.Equal(t, 200, code)
	require.JSONEq(t, `{"customers":[]}`, body)
	code, body = call("GET", "/customers/cus_nobody", "")
	require.Equal(t, 404, code)
	require.JSONEq(t, `{"error":{"code":"not_found","message":"crm: customer \"cus_nobody\": crm: not found"}}`, body)
	code, body = call("PUT", "/customers/cus_ada", `{"key":"cus_other","name":"X"}`)
	require.Equal(t, 400, code)
	require.Contains(t, body, `"code":"invalid"`)
	code, body = call("PUT", "/customers/cus_ada", `{"name":"X","favourite_colour":"blue"}`)
	require.Equal(t, 400, code, "unknown fields are refused")
	require.Contains(t, body, "favourite_colour")

	code, body = call("POST", "/customers/cus_ada/notes", `{"body":"hello"}`, "Idempotency-Key", "k1")
	require.Equal(t, 201, code, body)
	require.JSONEq(t, `{"id":1,"customer_key":"cus_ada","body":"hello","created_at":"2026-01-02T03:04:05Z"}`, body)
	code, _ = call("POST", "/customers/cus_ada/notes", `{"body":"hello"}`, "Idempotency-Key", "k1")
	require.Equal(t, 201, code)
	code, body = call("GET", "/customers/cus_ada/notes", "")
	require.Equal(t, 200, code)
	require.Equal(t, 1, strings.Count(body, `"body":"hello"`))

	code, body = call("PUT", "/deals/deal_1", `{"customer_key":"cus_ada","title":"Upgrade","stage":"proposal","amount":5000}`)
	require.Equal(t, 200, code, body)
	require.Contains(t, body, `"currency":"USD"`)
	code, body = call("PUT", "/customers/cus_ada/contacts/bob%40example.com", `{"name":"Bob"}`)
	require.Equal(t, 200, code, body)
	require.Contains(t, body, `"email":"bob@example.com"`)

	// A wrong token: an APIError with the status, matching neither
	// sentinel.
	bad, err := crm.NewClient(&crm.ClientConfig{BaseURL: srv.URL + "/api/v1", Token: "wrong"})
	require.NoError(t, err)
	_, err = bad.Customer(t.Context(), "cus_ada")
	var apiErr *crm.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, 401, apiErr.StatusCode)
	require.Equal(t, "unauthorized", apiErr.Code)
	require.False(t, errors.Is(err, crm.ErrNotFound))

	_, err = crm.NewClient(&crm.ClientConfig{BaseURL: "ftp://x"})
	require.Error(t, err)
	_, err = crm.NewClient(nil)
	require.Error(t, err)
}

func TestSeedDemo(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *appdb.DB) {
		s := newStore(t, db)
		ctx := context.Background()
		require.NoError(t, crm.SeedDemo(ctx, s))
		require.NoError(t, crm.SeedDemo(ctx, s), "seeding twice is harmless")
		ada, err := s.CustomerByEmail(ctx, "ada@example.com")
		require.NoError(t, err)
		require.Equal(t, crm.DemoAda, ada.Key)
		require.Equal(t, "Ada Lovelace", ada.Name)
		notes, err := s.Notes(ctx, crm.DemoAda)
		require.NoError(t, err)
		require.Len(t, notes, 1)
		for _, key := range []string{crm.DemoGrace, crm.DemoAlan} {
			_, err := s.Customer(ctx, key)
			require.NoError(t, err)
		}
		var n int
		require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM crm_customers").Scan(&n))
		require.Equal(t, 3, n)
	})
}
