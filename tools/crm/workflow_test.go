package crm_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/internal/crashtest"
	"github.com/keelhq/keel/tools/crm"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashHelperEnv) != "" {
		os.Exit(crashtest.HelperMain(60*time.Second, crashHelper))
	}
	goleak.VerifyTestMain(m)
}

// The crash tests run a workflow in a child process of the test binary
// whose activity upserts a customer and adds a note through Client. The
// child SIGKILLs itself before the first request leaves, or once the CRM
// has answered the note's POST (before the engine records the activity's
// result); a second child process resumes the run. The CRM (Handler over a
// Store on its own SQLite file) runs in the test process and counts the
// requests it serves.
//
// The upsert is idempotent by the customer's key, and the note by its
// idempotency key, which the activity derives from its own
// (durable.ActivityInfo.IdempotencyKey, the same on every attempt): the
// resumed attempt repeats both requests and the CRM still holds one
// customer and one note.

const (
	crashHelperEnv = "KEEL_CRM_CRASH_HELPER"
	crashDBEnv     = "KEEL_CRM_CRASH_DB"
	crashCRMEnv    = "KEEL_CRM_CRASH_URL"
	crashModeEnv   = "KEEL_CRM_CRASH_MODE"
)

// The customer and note the crash helper's workflow writes.
const crashNote = "Asked to move to annual billing."

func crashCustomer() crm.Customer {
	return crm.Customer{
		Key: "cus_grace", Name: "Grace Hopper", Email: "Grace@Example.com",
		Company: "Navy Labs", Plan: "enterprise", Metadata: map[string]string{"seats": "40"},
	}
}

// syncParams is the input of the crash helper's activity.
type syncParams struct {
	Customer crm.Customer `json:"customer"`
	Note     string       `json:"note"`
}

// crmKiller is the transport of the crash helper's CRM client: it SIGKILLs
// the process before the customer's PUT is sent ("before-send"), or once
// the note's POST has been answered 201 Created ("after-accept").
func crmKiller(mode string) http.RoundTripper {
	return &crashtest.KillingTransport{
		BeforeFunc: func(r *http.Request) bool {
			return mode == "before-send" && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/customers/")
		},
		AfterFunc: func(r *http.Request, resp *http.Response) bool {
			return mode == "after-accept" && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/notes") &&
				resp.StatusCode == http.StatusCreated
		},
		Next: &http.Transport{DisableKeepAlives: true},
	}
}

func crashHelper(ctx context.Context) error {
	client, err := crm.NewClient(&crm.ClientConfig{
		BaseURL:    os.Getenv(crashCRMEnv),
		Token:      testToken,
		HTTPClient: &http.Client{Transport: crmKiller(os.Getenv(crashModeEnv))},
	})
	if err != nil {
		return err
	}
	syncCustomer := durable.NewActivity("crm-sync", func(ctx context.Context, p syncParams) (int64, error) {
		info, ok := durable.GetActivityInfo(ctx)
		if !ok {
			return 0, errors.New("crm-sync: not running as an activity")
		}
		if _, err := client.UpsertCustomer(ctx, p.Customer); err != nil {
			return 0, err
		}
		n, err := client.AddNote(ctx, crm.Note{
			CustomerKey: p.Customer.Key, Author: "agent", Body: p.Note,
			IdempotencyKey: info.IdempotencyKey + "/note",
		})
		if err != nil {
			return 0, err
		}
		return n.ID, nil
	}, &durable.ActivityOptions{
		StartToCloseTimeout: 2 * time.Second,
		RetryPolicy:         durable.RetryPolicy{InitialInterval: 50 * time.Millisecond},
	})
	wf := durable.NewWorkflow("onboard", func(ctx durable.Context, p syncParams) (int64, error) {
		return syncCustomer.Run(ctx, p)
	})
	e, stop, err := crashtest.StartEngine(ctx, os.Getenv(crashDBEnv), syncCustomer, wf)
	if err != nil {
		return err
	}
	defer stop()
	id, err := wf.Run(ctx, e, syncParams{Customer: crashCustomer(), Note: crashNote}, &durable.StartOptions{ID: "onboard-1"})
	if err != nil {
		return err
	}
	fmt.Println("note:", id)
	return nil
}

// crashEnv is the crash helper's environment: the engine's database, the
// CRM and where to die ("" for nowhere).
func crashEnv(db, crmURL, mode string) []string {
	return []string{crashHelperEnv + "=1", crashDBEnv + "=" + db, crashCRMEnv + "=" + crmURL, crashModeEnv + "=" + mode}
}

// requestLog counts the requests a server received, by method and path.
type requestLog struct {
	mu sync.Mutex
	n  map[string]int
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.n[r.Method+" "+r.URL.Path]++
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (l *requestLog) count(method, path string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[method+" "+path]
}

func (l *requestLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	sum := 0
	for _, n := range l.n {
		sum += n
	}
	return sum
}

// countRows returns how many rows table has.
func countRows(t *testing.T, db *appdb.DB, table string) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+table).Scan(&n))
	return n
}

func TestCrash(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"before-send", "after-accept"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			db, err := appdb.Open(t.Context(), filepath.Join(dir, "crm.db"))
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			s := newStore(t, db)
			log := &requestLog{n: map[string]int{}}
			h := crm.Handler(s)
			srv := httptest.NewServer(http.StripPrefix("/api/v1", log.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "Bearer "+testToken {
					http.Error(w, `{"error":{"code":"unauthorized","message":"bad token"}}`, http.StatusUnauthorized)
					return
				}
				h.ServeHTTP(w, r)
			}))))
			t.Cleanup(srv.Close)
			crmURL := srv.URL + "/api/v1"
			engineDB := filepath.Join(dir, "keel.db")
			want := crashCustomer()
			const (
				putCustomer = "/customers/cus_grace"
				postNote    = "/customers/cus_grace/notes"
			)

			crashtest.RequireKilled(t, crashEnv(engineDB, crmURL, mode)...)
			if mode == "before-send" {
				require.Zero(t, log.total(), "killed before the first request")
				require.Zero(t, countRows(t, db, "crm_customers"))
			} else {
				require.Equal(t, 1, log.count(http.MethodPut, putCustomer))
				require.Equal(t, 1, log.count(http.MethodPost, postNote))
				require.Equal(t, 1, countRows(t, db, "crm_notes"), "the CRM added the note before the kill")
			}

			out := crashtest.RequireSuccess(t, crashEnv(engineDB, crmURL, "")...)

			// The resumed attempt sent both requests (again, after an
			// accepted call).
			sent := 1
			if mode == "after-accept" {
				sent = 2
			}
			require.Equal(t, sent, log.count(http.MethodPut, putCustomer))
			require.Equal(t, sent, log.count(http.MethodPost, postNote))

			// The CRM holds one customer and one note.
			require.Equal(t, 1, countRows(t, db, "crm_customers"))
			require.Equal(t, 1, countRows(t, db, "crm_notes"))
			c, err := s.Customer(t.Context(), want.Key)
			require.NoError(t, err)
			require.Equal(t, want.Name, c.Name)
			require.Equal(t, "grace@example.com", c.Email)
			require.Equal(t, want.Company, c.Company)
			require.Equal(t, want.Plan, c.Plan)
			require.Equal(t, want.Metadata, c.Metadata)
			notes, err := s.Notes(t.Context(), want.Key)
			require.NoError(t, err)
			require.Len(t, notes, 1)
			require.Equal(t, crashNote, notes[0].Body)
			require.Equal(t, "agent", notes[0].Author)
			require.Contains(t, out, fmt.Sprintf("note: %d\n", notes[0].ID), "the run's result is the CRM's note")
		})
	}
}
