package ticket_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/tools"
	"github.com/keelhq/keel/tools/ticket"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashHelperEnv) != "" {
		os.Exit(crashHelperMain())
	}
	goleak.VerifyTestMain(m)
}

// The crash tests run a workflow in a child process of the test binary
// that solves a ticket with a public comment through the ticket_update
// tool on the Zendesk adapter. The child SIGKILLs itself before the
// ticket's PUT leaves, or once Zendesk has answered it (before the engine
// records the tool call's result); a second child process resumes the run.
// The fake Zendesk runs in the test process.
//
// The PUT carries the tag derived from the call's idempotency key, so the
// resumed attempt after an accepted PUT finds the tag on the ticket and
// sends nothing more.

const (
	crashHelperEnv  = "KEEL_TICKET_CRASH_HELPER"
	crashDBEnv      = "KEEL_TICKET_CRASH_DB"
	crashZendeskEnv = "KEEL_TICKET_CRASH_ZENDESK"
	crashModeEnv    = "KEEL_TICKET_CRASH_MODE"
	crashTicketEnv  = "KEEL_TICKET_CRASH_TICKET"
)

// crashReply is the comment the crash helper's workflow adds.
const crashReply = "We refunded the duplicate payment of $49."

// killingTransport SIGKILLs the process around the first ticket update:
// before the PUT is sent, or once Zendesk's 200 has arrived.
type killingTransport struct {
	mode string
	next http.RoundTripper
}

func (k *killingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	update := r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/api/v2/tickets/")
	if update && k.mode == "before-send" {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	resp, err := k.next.RoundTrip(r)
	if update && k.mode == "after-accept" && err == nil && resp.StatusCode == http.StatusOK {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	return resp, err
}

func crashHelperMain() int {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := crashHelper(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "crash helper:", err)
		return 1
	}
	return 0
}

func crashHelper(ctx context.Context) error {
	z, err := ticket.NewZendesk(&ticket.ZendeskConfig{
		BaseURL: os.Getenv(crashZendeskEnv), Email: zdEmail, APIToken: zdToken,
		HTTPClient: &http.Client{Transport: &killingTransport{
			mode: os.Getenv(crashModeEnv),
			next: &http.Transport{DisableKeepAlives: true},
		}},
	})
	if err != nil {
		return err
	}
	update := ticket.UpdateTool(z, &tools.Options{Activity: &durable.ActivityOptions{
		StartToCloseTimeout: 2 * time.Second,
		RetryPolicy:         durable.RetryPolicy{InitialInterval: 50 * time.Millisecond},
	}})
	wf := durable.NewWorkflow("solve", func(ctx durable.Context, id string) (tools.Result, error) {
		args, err := json.Marshal(ticket.UpdateInput{TicketID: id, Status: ticket.StatusSolved, Comment: crashReply, Public: true})
		if err != nil {
			return tools.Result{}, err
		}
		return update.Run(ctx, tools.Call{ID: "call_1", Name: ticket.UpdateToolName, Arguments: string(args)}, nil)
	})
	st, err := sqlitestore.Open(os.Getenv(crashDBEnv), nil)
	if err != nil {
		return err
	}
	defer st.Close()
	e, err := durable.New(st, &durable.Config{PollInterval: 50 * time.Millisecond, WorkflowTaskTimeout: time.Second})
	if err != nil {
		return err
	}
	e.MustRegister(update.Definition(), wf)
	e.NewWorker(nil)
	if err := e.Start(ctx); err != nil {
		return err
	}
	defer e.Stop(context.Background())
	id := os.Getenv(crashTicketEnv)
	r, err := wf.Run(ctx, e, id, &durable.StartOptions{ID: "solve-" + id})
	if err != nil {
		return err
	}
	if r.IsError {
		return errors.New(r.Error)
	}
	var tk ticket.Ticket
	if err := json.Unmarshal(r.Content, &tk); err != nil {
		return err
	}
	fmt.Println("status:", tk.Status)
	return nil
}

func runCrashHelper(t *testing.T, db, zendeskURL, id, mode string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashHelperEnv+"=1", crashDBEnv+"="+db, crashZendeskEnv+"="+zendeskURL,
		crashTicketEnv+"="+id, crashModeEnv+"="+mode)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestCrash(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"before-send", "after-accept"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			f := newFakeZendesk(t)
			z := newZendesk(t, f)
			tk, err := z.Create(t.Context(), ticket.CreateParams{Subject: "I was charged twice", RequesterEmail: "ada@example.com"})
			require.NoError(t, err)
			require.Equal(t, ticket.StatusOpen, tk.Status)
			path := filepath.Join(t.TempDir(), "keel.db")
			ticketPath := "/api/v2/tickets/" + tk.ID + ".json"

			out, err := runCrashHelper(t, path, f.srv.URL, tk.ID, mode)
			require.Error(t, err, out)
			require.Equal(t, "signal: killed", err.Error(), out)
			cs, err := z.Comments(t.Context(), tk.ID)
			require.NoError(t, err)
			if mode == "before-send" {
				require.Zero(t, f.putCount(), "killed before the PUT")
				require.Equal(t, 0, countBodies(cs, crashReply))
			} else {
				require.Equal(t, 1, f.putCount())
				require.Equal(t, 1, countBodies(cs, crashReply), "Zendesk applied the update before the kill")
			}
			gets := f.requestCount(http.MethodGet, ticketPath)

			out, err = runCrashHelper(t, path, f.srv.URL, tk.ID, "")
			require.NoError(t, err, out)
			require.Contains(t, out, "status: solved")

			// The resumed attempt read the ticket; after an accepted PUT it
			// found the update's tag there and sent no second PUT.
			require.Greater(t, f.requestCount(http.MethodGet, ticketPath), gets, "the resumed attempt ran")
			require.Equal(t, 1, f.putCount(), "one PUT in all")
			require.Equal(t, 1, f.requestCount(http.MethodPut, ticketPath))
			keelTags := 0
			for _, tag := range f.tags(tk.ID) {
				if strings.HasPrefix(tag, "keel_") {
					keelTags++
				}
			}
			require.Equal(t, 1, keelTags, "the update's idempotency tag")

			got, err := z.Get(t.Context(), tk.ID)
			require.NoError(t, err)
			require.Equal(t, ticket.StatusSolved, got.Status)
			cs, err = z.Comments(t.Context(), tk.ID)
			require.NoError(t, err)
			require.Len(t, cs, 2, "the description and the reply")
			require.Equal(t, 1, countBodies(cs, crashReply), "one reply")
			require.Equal(t, crashReply, cs[1].Body)
			require.True(t, cs[1].Public)
		})
	}
}
