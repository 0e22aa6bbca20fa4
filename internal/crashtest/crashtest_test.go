//go:build unix

package crashtest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/internal/crashtest"
)

// The helper child runs a workflow whose activity GETs and then POSTs to
// the server at helperURLEnv, on the engine database at helperDBEnv. It is
// killed as helperModeEnv says: "before" the POST is sent, "after" its 201
// has arrived, not at all (""), or "hang": it waits for its context to end,
// which HelperMain ends after a millisecond.
const (
	helperEnv     = "KEEL_CRASHTEST_HELPER"
	helperDBEnv   = "KEEL_CRASHTEST_DB"
	helperURLEnv  = "KEEL_CRASHTEST_URL"
	helperModeEnv = "KEEL_CRASHTEST_MODE"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		timeout := time.Minute
		if os.Getenv(helperModeEnv) == "hang" {
			timeout = time.Millisecond
		}
		os.Exit(crashtest.HelperMain(timeout, helper))
	}
	goleak.VerifyTestMain(m)
}

func helper(ctx context.Context) error {
	mode := os.Getenv(helperModeEnv)
	if mode == "hang" {
		<-ctx.Done()
		return ctx.Err()
	}
	client := &http.Client{Transport: &crashtest.KillingTransport{
		BeforeFunc: func(r *http.Request) bool {
			return mode == "before" && r.Method == http.MethodPost
		},
		AfterFunc: func(r *http.Request, resp *http.Response) bool {
			return mode == "after" && r.Method == http.MethodPost && resp.StatusCode == http.StatusCreated
		},
	}}
	call := durable.NewActivity("call", func(ctx context.Context, url string) (string, error) {
		var body []byte
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			req, err := http.NewRequestWithContext(ctx, method, url, nil)
			if err != nil {
				return "", err
			}
			resp, err := client.Do(req)
			if err != nil {
				return "", err
			}
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return "", err
			}
			fmt.Printf("%s: %d %s\n", method, resp.StatusCode, body)
		}
		return string(body), nil
	}, &durable.ActivityOptions{
		StartToCloseTimeout: 2 * time.Second,
		RetryPolicy:         durable.RetryPolicy{InitialInterval: 50 * time.Millisecond},
	})
	wf := durable.NewWorkflow("calls", func(ctx durable.Context, url string) (string, error) {
		return call.Run(ctx, url)
	})
	e, stop, err := crashtest.StartEngine(ctx, os.Getenv(helperDBEnv), call, wf)
	if err != nil {
		return err
	}
	defer stop()
	out, err := wf.Run(ctx, e, os.Getenv(helperURLEnv)+"/things", &durable.StartOptions{ID: "calls-1"})
	if err != nil {
		return err
	}
	fmt.Println("result:", out)
	return nil
}

// server counts the requests it answers by method, and numbers the things
// the POSTs make.
type server struct {
	*httptest.Server
	mu sync.Mutex
	n  map[string]int
}

func newServer(t *testing.T) *server {
	t.Helper()
	s := &server{n: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.n[r.Method]++
		made := s.n[http.MethodPost]
		s.mu.Unlock()
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, "made #%d", made)
			return
		}
		io.WriteString(w, "listed")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) count(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[method]
}

// helperEnvFor is the helper's environment: a new engine database, the
// server s, and where to die.
func helperEnvFor(t *testing.T, s *server, mode string) []string {
	t.Helper()
	return resumeEnv(filepath.Join(t.TempDir(), "keel.db"), s, mode)
}

func resumeEnv(db string, s *server, mode string) []string {
	return []string{helperEnv + "=1", helperDBEnv + "=" + db, helperURLEnv + "=" + s.URL, helperModeEnv + "=" + mode}
}

// A child killed before the POST left, or once its answer had arrived, is
// resumed by a second child, whose retry of the activity POSTs (again).
func TestKillAndResume(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode   string
		killed string // the line the kill wrote
		posts  int    // POSTs the server answered before the resume
	}{
		{"before", "crashtest: SIGKILL before POST %s/things\n", 0},
		{"after", "crashtest: SIGKILL after POST %s/things answered 201\n", 1},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			s := newServer(t)
			db := filepath.Join(t.TempDir(), "keel.db")

			out := crashtest.RequireKilled(t, resumeEnv(db, s, tc.mode)...)
			require.Contains(t, out, "GET: 200 listed\n", "requests the functions pass are sent")
			require.Contains(t, out, fmt.Sprintf(tc.killed, s.URL))
			require.NotContains(t, out, "POST:", "the caller never saw the POST's answer")
			require.Equal(t, 1, s.count(http.MethodGet))
			require.Equal(t, tc.posts, s.count(http.MethodPost))

			out = crashtest.RequireSuccess(t, resumeEnv(db, s, "")...)
			require.NotContains(t, out, "SIGKILL")
			made := fmt.Sprintf("made #%d", tc.posts+1)
			require.Contains(t, out, "POST: 201 "+made+"\nresult: "+made+"\n", "the resumed run finished")
			require.Equal(t, 2, s.count(http.MethodGet), "the activity ran again")
			require.Equal(t, tc.posts+1, s.count(http.MethodPost))
		})
	}
}

func TestNoKill(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	out := crashtest.RequireSuccess(t, helperEnvFor(t, s, "")...)
	require.Contains(t, out, "GET: 200 listed\nPOST: 201 made #1\nresult: made #1\n")
	require.NotContains(t, out, "SIGKILL")
	require.Equal(t, 1, s.count(http.MethodPost))
}

// recorder is a testing.TB that records the failure of a Require function.
type recorder struct {
	testing.TB
	failure string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failure = fmt.Sprintf(format, args...)
}

// The Require functions fail the test, with the child's output, when the
// child ended the other way.
func TestRequireFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		require func(t testing.TB, env ...string) string
		mode    string
		want    []string // in the failure message
	}{
		{"exited 0, want killed", crashtest.RequireKilled, "",
			[]string{"got <nil>, want death by SIGKILL", "result: made #1"}},
		{"exited 1, want killed", crashtest.RequireKilled, "hang",
			// HelperMain ended the context and reported run's error.
			[]string{"exit status 1, want death by SIGKILL", "crash helper: context deadline exceeded"}},
		{"killed, want exit 0", crashtest.RequireSuccess, "before",
			[]string{"signal: killed, want exit status 0", "crashtest: SIGKILL before POST"}},
		{"exited 1, want exit 0", crashtest.RequireSuccess, "hang",
			[]string{"exit status 1, want exit status 0", "crash helper: context deadline exceeded"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r recorder
			tc.require(&r, helperEnvFor(t, newServer(t), tc.mode)...)
			for _, w := range tc.want {
				require.Contains(t, r.failure, w)
			}
		})
	}
}
