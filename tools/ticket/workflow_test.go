package ticket_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/internal/crashtest"
	"github.com/keelhq/keel/tools"
	"github.com/keelhq/keel/tools/ticket"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashHelperEnv) != "" {
		os.Exit(crashtest.HelperMain(60*time.Second, crashHelper))
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

// updateKiller is the transport of the crash helper's Zendesk client: it
// SIGKILLs the process before the first ticket update's PUT is sent
// ("before-send"), or once Zendesk's 200 has arrived ("after-accept").
func updateKiller(mode string) http.RoundTripper {
	update := func(r *http.Request) bool {
		return r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/api/v2/tickets/")
	}
	return &crashtest.KillingTransport{
		BeforeFunc: func(r *http.Request) bool { return mode == "before-send" && update(r) },
		AfterFunc: func(r *http.Request, resp *http.Response) bool {
			return mode == "after-accept" && update(r) && resp.StatusCode == http.StatusOK
		},
		Next: &http.Transport{DisableKeepAlives: true},
	}
}

func crashHelper(ctx context.Context) error {
	z, err := ticket.NewZendesk(&ticket.ZendeskConfig{
		BaseURL: os.Getenv(crashZendeskEnv), Email: zdEmail, APIToken: zdToken,
		HTTPClient: &http.Client{Transport: updateKiller(os.Getenv(crashModeEnv))},
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
	e, stop, err := crashtest.StartEngine(ctx, os.Getenv(crashDBEnv), update.Definition(), wf)
	if err != nil {
		return err
	}
	defer stop()
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

// crashEnv is the crash helper's environment: the engine's database,
// the fake Zendesk, the ticket to solve and where to die ("" for nowhere).
func crashEnv(db, zendeskURL, id, mode string) []string {
	return []string{crashHelperEnv + "=1", crashDBEnv + "=" + db, crashZendeskEnv + "=" + zendeskURL,
		crashTicketEnv + "=" + id, crashModeEnv + "=" + mode}
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

			crashtest.RequireKilled(t, crashEnv(path, f.srv.URL, tk.ID, mode)...)
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

			out := crashtest.RequireSuccess(t, crashEnv(path, f.srv.URL, tk.ID, "")...)
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
