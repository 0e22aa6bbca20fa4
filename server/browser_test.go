package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/internal/hitltest"
	"github.com/keelhq/keel/server"
)

// memo is what the legal agent wants to send.
type memo struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

// memoOutcome is the memo workflow's result.
type memoOutcome struct {
	Sent     string        `json:"sent,omitempty"`
	Decision hitl.Decision `json:"decision"`
}

var (
	sendMemo = durable.NewActivity("send_memo", func(ctx context.Context, m memo) (string, error) {
		return "memo " + m.Subject + " sent to " + m.To, nil
	}, nil)

	// memoWF asks the legal group to approve a memo, then sends the
	// approved memo.
	memoWF = durable.NewWorkflow("memo", func(ctx durable.Context, m memo) (memoOutcome, error) {
		d, err := hitl.Approve(ctx, hitl.Request{
			Title:     "Send the renewal memo to Acme",
			Details:   "Acme's contract renews on 1 March; the memo states our new terms.",
			Action:    "send_memo",
			Args:      m,
			Group:     "legal",
			Requester: "legal-agent",
		})
		if err != nil {
			return memoOutcome{}, err
		}
		out := memoOutcome{Decision: d}
		if !d.Approved() {
			return out, nil
		}
		var approved memo
		if err := json.Unmarshal(d.Args, &approved); err != nil {
			return out, err
		}
		out.Sent, err = sendMemo.Run(ctx, approved)
		return out, err
	})
)

// chromiumPath returns the Chromium to drive: $KEEL_CHROMIUM, or
// chromium on the PATH (Debian's package installs /usr/bin/chromium). It
// skips the test when there is none, and fails it under CI=true.
func chromiumPath(t *testing.T) string {
	t.Helper()
	name := os.Getenv("KEEL_CHROMIUM")
	if name == "" {
		name = "chromium"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		msg := "browser test needs Chromium (" + err.Error() + "): apt-get install chromium, or set KEEL_CHROMIUM"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// newBrowser starts a headless Chromium with its own empty profile and
// returns a tab's context. The browser is closed when the test ends.
func newBrowser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	exe := chromiumPath(t)
	profile := t.TempDir()
	output := &lockedWriter{w: new(bytes.Buffer)}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		// The defaults hold --headless, --no-first-run,
		// --disable-background-networking and --disable-sync; say so
		// anyway, since without them Chromium calls out to a network
		// that is not there.
		chromedp.Headless,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1200, 900),
		chromedp.CombinedOutput(output),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser to exit
		if t.Failed() {
			t.Logf("chromium output:\n%s", output.String())
		}
	})
	// Start the browser now, so a broken install fails here.
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("starting %s: %v\n%s", exe, err, output.String())
	}
	return tab
}

// saveScreenshot writes a full-page PNG of the tab to the test's artifact
// directory (kept by go test -artifacts) and checks that it is a PNG.
func saveScreenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	buf, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NotEmpty(t, buf)
	img, err := png.Decode(bytes.NewReader(buf))
	require.NoError(t, err, "%s is not a PNG", name)
	require.Positive(t, img.Bounds().Dx())
	require.Positive(t, img.Bounds().Dy())
	path := filepath.Join(t.ArtifactDir(), name)
	require.NoError(t, os.WriteFile(path, buf, 0o644))
	t.Logf("screenshot %s (%dx%d, %d bytes)", path, img.Bounds().Dx(), img.Bounds().Dy(), len(buf))
}

// A reviewer follows a signed review link in a real browser, reads the
// action and its arguments, approves with a comment; the run goes on, and
// its timeline shows the decision, the reviewer and the comment.
func TestBrowserReviewLink(t *testing.T) {
	t.Parallel()
	chromiumPath(t) // skip before building anything
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// A real engine on a SQLite file, the approval service and the server
	// with API keys, over real HTTP.
	st, db := sqliteBackend(t)
	e, err := durable.New(st, &durable.Config{PollInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	e.MustRegister(memoWF, sendMemo)
	review, err := hitl.New(ctx, db, e, &hitl.Config{
		Groups:     hitl.Groups{"legal": {"lena", "lars"}},
		LinkSecret: bytes.Repeat([]byte("s"), 32),
		Logger:     testLogger(t),
	})
	require.NoError(t, err)
	keys, err := server.NewKeyStore(ctx, db)
	require.NoError(t, err)
	auditor, err := keys.Create(ctx, server.CreateKeyParams{Subject: "olga", Scopes: []server.Scope{server.ScopeRead}})
	require.NoError(t, err)
	e.NewWorker(nil)
	require.NoError(t, e.Start(ctx))
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = e.Stop(sctx)
	})
	srv, err := server.New(&server.Config{
		Engine:            e,
		Agents:            []server.Agent{{Name: "memo"}},
		Keys:              keys,
		Approvals:         review,
		EventPollInterval: 20 * time.Millisecond,
		HeartbeatInterval: 100 * time.Millisecond,
		Logger:            testLogger(t),
	})
	require.NoError(t, err)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)

	// The agent asks to send a memo and waits for legal.
	want := memo{To: "counsel@acme.example", Subject: "Renewal terms 2027", Body: "Dear counsel,\nthe new terms are attached."}
	in, err := json.Marshal(want)
	require.NoError(t, err)
	started, err := e.StartWorkflow(ctx, "memo", in, &durable.StartOptions{ID: "memo-1"})
	require.NoError(t, err)
	var a hitl.Approval
	require.Eventually(t, func() bool {
		list, _, err := review.List(ctx, &hitl.ListParams{WorkflowID: "memo-1"})
		require.NoError(t, err)
		if len(list) == 0 {
			return false
		}
		a = list[0]
		return true
	}, 20*time.Second, 20*time.Millisecond, "the run asks for approval")
	link := ts.URL + "/review/" + hitltest.SignLink(t, review, a.ID, "lena", time.Hour)

	tab := newBrowser(t, ctx)
	// Each read waits at most a few seconds for its element.
	run := func(a chromedp.Action[string]) string {
		t.Helper()
		actx, acancel := context.WithTimeout(tab, 10*time.Second)
		defer acancel()
		v, err := chromedp.Run(actx, a)
		require.NoError(t, err)
		return strings.TrimSpace(v)
	}
	text := func(sel string) string {
		t.Helper()
		return run(chromedp.Text(chromedp.CSS(sel)))
	}
	// count counts the elements that match sel and whose text is exactly
	// withText, when given.
	count := func(sel string, withText ...string) int {
		t.Helper()
		js := `Array.from(document.querySelectorAll(` + jsString(sel) + `))`
		if len(withText) > 0 {
			js += `.filter(n => n.textContent.trim() === ` + jsString(withText[0]) + `)`
		}
		n, err := chromedp.Run(tab, chromedp.Evaluate[int](js+`.length`))
		require.NoError(t, err)
		return n
	}

	// Mail scanners and previews open links: loading the page twice
	// decides nothing.
	for range 2 {
		resp, err := chromedp.Run(tab, chromedp.NavigateResponse(link))
		require.NoError(t, err)
		require.EqualValues(t, 200, resp.Status)
	}
	got, err := review.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, hitl.StatusPending, got.Status, "opening the link twice does not decide")
	require.Empty(t, got.Votes)

	// The page shows what the agent wants to do, for whom.
	require.Equal(t, "Send the renewal memo to Acme", text("#approval-title"))
	require.Equal(t, "lena", text("#subject"))
	require.Equal(t, "pending", text("#approval-status"))
	require.Equal(t, "send_memo", text("#approval-action"))
	var shown memo
	require.NoError(t, json.Unmarshal([]byte(text("#approval-args")), &shown), "the arguments are shown as JSON")
	require.Equal(t, want, shown)
	require.Contains(t, text("#approval-details"), "Acme's contract renews on 1 March")
	require.Equal(t, a.ArgsHash, run(chromedp.Value(chromedp.ID("args_hash"))), "the form approves these arguments")
	require.Equal(t, 1, count("#decision-form"))
	saveScreenshot(t, tab, "approval.png")

	// Lena approves with a comment.
	const comment = "Terms match the signed term sheet. OK to send."
	require.NoError(t, chromedp.Do(tab, chromedp.SendKeys(chromedp.ID("comment"), comment)))
	resp, err := chromedp.RunResponse(tab, chromedp.Click(chromedp.ID("approve")))
	require.NoError(t, err)
	require.EqualValues(t, 200, resp.Status)
	require.Contains(t, text("#notice"), "Your decision was recorded")
	require.Equal(t, "approved", text("#approval-status"))
	require.Contains(t, text("#votes"), "lena")
	require.Contains(t, text("#votes"), comment)
	require.Zero(t, count("#decision-form"), "no second decision from this page")
	saveScreenshot(t, tab, "approval-decided.png")

	// The run goes on and sends the approved memo.
	res, err := e.Result(ctx, started.RunID)
	require.NoError(t, err)
	var out memoOutcome
	require.NoError(t, json.Unmarshal(res, &out))
	require.Equal(t, hitl.StatusApproved, out.Decision.Status)
	require.Equal(t, []string{"lena"}, out.Decision.DecidedBy)
	require.Len(t, out.Decision.Votes, 1)
	require.Equal(t, comment, out.Decision.Votes[0].Comment)
	require.True(t, out.Decision.Votes[0].ViaLink)
	require.Equal(t, "memo Renewal terms 2027 sent to counsel@acme.example", out.Sent)

	// Reloading the result page posts the form again: refused, no second vote.
	resp, err = chromedp.RunResponse(tab, chromedp.Reload())
	require.NoError(t, err)
	require.EqualValues(t, 409, resp.Status)
	require.Zero(t, count("#decision-form"))
	// Opening the link again shows it was used, with no form.
	resp, err = chromedp.Run(tab, chromedp.NavigateResponse(link))
	require.NoError(t, err)
	require.EqualValues(t, 409, resp.Status)
	require.Equal(t, "Link already used", text("h1"))
	require.Contains(t, text("#error-message"), "A decision was already made with this link")
	require.Zero(t, count("#decision-form"))
	got, err = review.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, hitl.StatusApproved, got.Status)
	require.Len(t, got.Votes, 1)

	// An auditor signs in with a read key and reads the run's timeline.
	resp, err = chromedp.Run(tab, chromedp.NavigateResponse(ts.URL+"/ui/runs/memo-1"))
	require.NoError(t, err)
	require.EqualValues(t, 200, resp.Status)
	require.Equal(t, 1, count("#login-form"), "pages ask for a key first")
	require.NoError(t, chromedp.Do(tab, chromedp.SendKeys(chromedp.ID("key"), auditor.Secret)))
	resp, err = chromedp.RunResponse(tab, chromedp.Click(chromedp.ID("login")))
	require.NoError(t, err)
	require.EqualValues(t, 200, resp.Status)
	require.Equal(t, "olga", text("#subject"))
	require.Equal(t, "memo-1", text("#run-id"))
	require.Equal(t, "completed", text("#run-status"))
	require.Contains(t, text("#run-result"), "sent to counsel@acme.example")
	approvals := text("#run-approvals")
	require.Contains(t, approvals, "send_memo")
	require.Contains(t, approvals, "lena: approved (link) — “"+comment+"”")
	// The decision is in the timeline itself: the vote's signal event.
	vote := text("#timeline .vote")
	require.Contains(t, vote, "lena")
	require.Contains(t, vote, "approved")
	require.Contains(t, vote, "via a review link")
	require.Contains(t, vote, comment)
	require.Equal(t, 1, count(`#timeline tr[data-type="ActivityScheduled"] code`, "send_memo"), "send_memo ran once")
	saveScreenshot(t, tab, "timeline.png")
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// lockedWriter serializes writes to w, and reads of it.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
