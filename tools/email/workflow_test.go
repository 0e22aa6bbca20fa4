package email_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/internal/crashtest"
	"github.com/keelhq/keel/tools"
	"github.com/keelhq/keel/tools/email"
	"github.com/keelhq/keel/tools/email/sendgridfake"
)

var fastRetry = &durable.ActivityOptions{ //nolint:gochecknoglobals // test constant
	StartToCloseTimeout: 10 * time.Second,
	RetryPolicy:         durable.RetryPolicy{InitialInterval: 10 * time.Millisecond, MaximumAttempts: 5},
}

// startEngine runs an engine on the SQLite file path with defs registered.
func startEngine(t *testing.T, path string, defs ...durable.Definition) *durable.Engine {
	t.Helper()
	st, err := sqlitestore.Open(path, nil)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	e, err := durable.New(st, &durable.Config{PollInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	e.MustRegister(defs...)
	e.NewWorker(nil)
	require.NoError(t, e.Start(t.Context()))
	t.Cleanup(func() { e.Stop(context.Background()) })
	return e
}

// The send tool runs each model call as an activity keyed by the call. A
// call whose first attempt lost SendGrid's answer is retried, sends nothing
// more, and comes back to the model as an outcome-unknown error.
func TestSendTool(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keel.db")
	db, err := appdb.Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	fake := sendgridfake.NewServer()
	t.Cleanup(fake.Close)
	svc := newService(t, db, fake, nil)
	send := email.SendTool(svc, &tools.Options{Activity: fastRetry})
	require.Contains(t, string(send.Schema()), `"subject"`)

	fake.Inject(sendgridfake.Fault{}, sendgridfake.Fault{Drop: true})
	wf := durable.NewWorkflow("agent", func(ctx durable.Context, _ string) ([]tools.Result, error) {
		var out []tools.Result
		for _, args := range []string{
			`{"to":["ada@example.com"],"subject":"Resolved","text":"Done."}`,
			`{"to":["bob@example.com"],"subject":"Resolved","text":"Done."}`,
			`{"to":[],"subject":"Resolved","text":"Done."}`,
		} {
			r, err := send.Start(ctx, tools.Call{Name: send.Name(), Arguments: args}, nil).Get(ctx)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, nil
	})
	e := startEngine(t, path, send.Definition(), wf)
	h, err := wf.Start(t.Context(), e, "", &durable.StartOptions{ID: "agent-1"})
	require.NoError(t, err)
	results, err := h.Result(t.Context())
	require.NoError(t, err)
	require.Len(t, results, 3)

	require.False(t, results[0].IsError, results[0].Text())
	var m email.Message
	require.NoError(t, json.Unmarshal(results[0].Content, &m))
	require.Equal(t, email.StatusSent, m.Status)
	require.Equal(t, h.RunID()+"-1/email", m.Key, "run ID, step, operation")
	require.Equal(t, 1, fake.Count(m.Key))

	require.True(t, results[1].IsError)
	require.Contains(t, results[1].Error, "outcome_unknown")
	require.Equal(t, 2, fake.Requests(), "the retry did not send again")
	require.Len(t, fake.Sent(), 2)

	require.Equal(t, tools.ErrorInvalidArguments, results[2].ErrorKind)
}

// The crash tests send an email from a workflow in a child process of the
// test binary, which SIGKILLs itself before the request leaves or once
// SendGrid has accepted the message, then resume the run in a second child
// process. The fake SendGrid runs in the test process. A process that dies
// mid-send cannot know which of the two happened, so both resume the same
// way: unknown, then the policy.

const (
	crashHelperEnv   = "KEEL_EMAIL_CRASH_HELPER"
	crashDBEnv       = "KEEL_EMAIL_CRASH_DB"
	crashSendGridEnv = "KEEL_EMAIL_CRASH_SENDGRID"
	crashModeEnv     = "KEEL_EMAIL_CRASH_MODE"
	crashPolicyEnv   = "KEEL_EMAIL_CRASH_POLICY"
)

// sendKiller is the transport of the crash helper's SendGrid client: it
// SIGKILLs the process before the first send leaves ("before-send"), or once
// SendGrid's 202 has arrived, before the outbox records it ("after-accept").
func sendKiller(mode string) http.RoundTripper {
	return &crashtest.KillingTransport{
		BeforeFunc: func(*http.Request) bool { return mode == "before-send" },
		AfterFunc: func(_ *http.Request, resp *http.Response) bool {
			return mode == "after-accept" && resp.StatusCode == http.StatusAccepted
		},
		Next: &http.Transport{DisableKeepAlives: true},
	}
}

func crashHelper(ctx context.Context) error {
	path := os.Getenv(crashDBEnv)
	db, err := appdb.Open(ctx, path)
	if err != nil {
		return err
	}
	defer db.Close()
	svc, err := email.New(ctx, db, &email.Config{
		APIKey:     sendgridfake.APIKey,
		BaseURL:    os.Getenv(crashSendGridEnv),
		From:       sender,
		OnUnknown:  email.UnknownPolicy(os.Getenv(crashPolicyEnv)),
		HTTPClient: &http.Client{Transport: sendKiller(os.Getenv(crashModeEnv))},
	})
	if err != nil {
		return err
	}
	send := durable.NewActivity("send-reply", func(ctx context.Context, to string) (string, error) {
		m, err := svc.Send(ctx, email.SendParams{To: []string{to}, Subject: "Ticket resolved", Text: "Done."})
		if err != nil {
			return "", err
		}
		return string(m.Status), nil
	}, &durable.ActivityOptions{
		StartToCloseTimeout: 2 * time.Second,
		RetryPolicy:         durable.RetryPolicy{InitialInterval: 50 * time.Millisecond},
	})
	wf := durable.NewWorkflow("reply", func(ctx durable.Context, to string) (string, error) {
		status, err := send.Run(ctx, to)
		var ae *durable.ApplicationError
		if errors.As(err, &ae) && ae.Type == email.CodeOutcomeUnknown.ErrorType() {
			return "needs a decision", nil // a real workflow would ask for approval here
		}
		return status, err
	})
	e, stop, err := crashtest.StartEngine(ctx, path, send, wf)
	if err != nil {
		return err
	}
	defer stop()
	out, err := wf.Run(ctx, e, "ada@example.com", &durable.StartOptions{ID: "ticket-1"})
	if err != nil {
		return err
	}
	fmt.Println("result:", out)
	return nil
}

// crashEnv is the crash helper's environment: the engine's database, the
// fake SendGrid, where to die ("" for nowhere) and the unknown-outcome
// policy.
func crashEnv(db, url, mode, policy string) []string {
	return []string{crashHelperEnv + "=1", crashDBEnv + "=" + db, crashSendGridEnv + "=" + url,
		crashModeEnv + "=" + mode, crashPolicyEnv + "=" + policy}
}

func TestCrash(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode   string
		policy email.UnknownPolicy
		// sent is what SendGrid accepted after the resume.
		sent   int
		result string
	}{
		{"before-send", email.PolicyAsk, 0, "needs a decision"},
		{"after-accept", email.PolicyAsk, 1, "needs a decision"},
		{"before-send", email.PolicyResend, 1, "sent"},
		{"after-accept", email.PolicyResend, 2, "sent"},
	} {
		t.Run(tc.mode+"/"+string(tc.policy), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "keel.db")
			fake := sendgridfake.NewServer()
			t.Cleanup(fake.Close)

			crashtest.RequireKilled(t, crashEnv(path, fake.URL, tc.mode, string(tc.policy))...)
			db, err := appdb.Open(t.Context(), path)
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			svc := newService(t, db, fake, &email.Config{OnUnknown: tc.policy})
			list, err := svc.List(t.Context(), nil)
			require.NoError(t, err)
			require.Len(t, list, 1)
			require.Equal(t, email.StatusSending, list[0].Status, "written before the send")
			before := 0
			if tc.mode == "after-accept" {
				before = 1
			}
			require.Len(t, fake.Sent(), before)

			out := crashtest.RequireSuccess(t, crashEnv(path, fake.URL, "", string(tc.policy))...)
			require.Contains(t, out, "result: "+tc.result)
			require.Len(t, fake.Sent(), tc.sent)
			m, err := svc.Get(t.Context(), list[0].Key)
			require.NoError(t, err)
			if tc.policy == email.PolicyResend {
				require.Equal(t, email.StatusSent, m.Status)
				return
			}
			require.Equal(t, email.StatusUnknown, m.Status, "not resent blindly")
			// The decision: send it again (before-send) or record that it
			// went out (after-accept).
			decision := email.ResolveResend
			if tc.mode == "after-accept" {
				decision = email.ResolveMarkSent
			}
			m, err = svc.Resolve(t.Context(), m.Key, decision)
			require.NoError(t, err)
			require.Equal(t, email.StatusSent, m.Status)
			require.Len(t, fake.Sent(), 1, "exactly one message in the end")
			require.Equal(t, m.Key, fake.Sent()[0].Key)
		})
	}
}
