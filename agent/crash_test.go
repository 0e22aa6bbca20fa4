package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/agent"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/llm/llmtest"
	"github.com/keelhq/keel/llm/openai"
	"github.com/keelhq/keel/tools"
)

// The crash tests run an agent in a child process of the test binary,
// against a llmtest server in the parent, and kill the child with SIGKILL
// at a chosen point; a second child process resumes the run. Every tool
// execution appends a line to a file outside the engine.

const (
	helperEnv = "KEEL_AGENT_HELPER" // the scenario: "support" or "budget"
	dbEnv     = "KEEL_AGENT_DB"
	logEnv    = "KEEL_AGENT_LOG"
	llmEnv    = "KEEL_AGENT_LLM_URL"
	killEnv   = "KEEL_AGENT_KILL" // the tool in which the child kills itself
)

// stepLogger appends "tool=… attempt=… key=… pid=…" lines to a file.
type stepLogger struct {
	mu   sync.Mutex
	path string
}

func (l *stepLogger) record(ctx context.Context, extra string) {
	info, _ := tools.CallInfo(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.OpenFile(l.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "tool=%s attempt=%d key=%s pid=%d %s\n", info.Tool, info.Attempt, info.IdempotencyKey, os.Getpid(), extra)
	if err := f.Sync(); err != nil {
		panic(err)
	}
}

type stepLine struct{ tool, attempt, key, pid string }

func readSteps(t *testing.T, path string) []stepLine {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var out []stepLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l stepLine
		for _, field := range strings.Fields(sc.Text()) {
			k, v, _ := strings.Cut(field, "=")
			switch k {
			case "tool":
				l.tool = v
			case "attempt":
				l.attempt = v
			case "key":
				l.key = v
			case "pid":
				l.pid = v
			}
		}
		out = append(out, l)
	}
	require.NoError(t, sc.Err())
	return out
}

func countTool(lines []stepLine, tool string) int {
	n := 0
	for _, l := range lines {
		if l.tool == tool {
			n++
		}
	}
	return n
}

func kill() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }

// Support scenario tools: a CRM lookup, a knowledge-base search and an
// email, with short timeouts so that a dead worker's attempt is retried
// soon.
type crmInput struct {
	Email string `json:"email" jsonschema:"description=The customer's email address"`
}
type crmRecord struct {
	CustomerID string `json:"customer_id"`
	Name       string `json:"name"`
	Plan       string `json:"plan"`
}
type kbInput struct {
	Query string `json:"query" jsonschema:"minLength=1"`
}
type kbArticle struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Body  string `json:"body"`
}
type emailInput struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

func toolOptions() *tools.Options {
	return &tools.Options{Activity: &durable.ActivityOptions{
		StartToCloseTimeout: 2 * time.Second,
		RetryPolicy:         durable.RetryPolicy{InitialInterval: 50 * time.Millisecond, MaximumAttempts: 5},
	}}
}

func supportAgent(log *stepLogger, killIn string) *agent.Agent {
	crm := tools.MustNew("crm_lookup", "Find a customer in the CRM by email",
		func(ctx context.Context, in crmInput) (crmRecord, error) {
			log.record(ctx, "email="+in.Email)
			return crmRecord{CustomerID: "c-42", Name: "Ada Lovelace", Plan: "pro"}, nil
		}, toolOptions())
	kb := tools.MustNew("kb_search", "Search the knowledge base",
		func(ctx context.Context, in kbInput) ([]kbArticle, error) {
			if killIn == "kb_search" {
				kill()
			}
			log.record(ctx, "query="+strings.ReplaceAll(in.Query, " ", "_"))
			return []kbArticle{{ID: "KB-12", Title: "Refunds", Body: "Pro plans are refunded in full within 30 days."}}, nil
		}, toolOptions())
	email := tools.MustNew("send_email", "Send an email to a customer",
		func(ctx context.Context, in emailInput) (string, error) {
			log.record(ctx, "to="+in.To)
			return "queued", nil
		}, toolOptions())
	return &agent.Agent{
		Name:          "support",
		Instructions:  "You are a support agent. Look the customer up, search the knowledge base, then email them.",
		Model:         "gpt",
		Tools:         []*tools.Tool{crm, kb, email},
		MaxTurns:      8,
		ModelActivity: fastModel(),
	}
}

// noteTool records each call; the child kills itself on the call number
// killAt of this process (0: never).
func budgetAgent(log *stepLogger, killAt int) *agent.Agent {
	var mu sync.Mutex
	calls := 0
	note := tools.MustNew("note", "Write a note",
		func(ctx context.Context, in struct {
			Text string `json:"text"`
		}) (string, error) {
			mu.Lock()
			calls++
			n := calls
			mu.Unlock()
			if n == killAt {
				kill()
			}
			log.record(ctx, "")
			return "noted", nil
		}, toolOptions())
	return &agent.Agent{
		Name:          "budgeted",
		Model:         "gpt",
		Tools:         []*tools.Tool{note},
		MaxTurns:      20,
		Budget:        agent.Budget{MaxTokens: 1000},
		ModelActivity: fastModel(),
	}
}

// helperMain is the child process: it runs (or resumes) the scenario's run
// until it ends, unless it kills itself first, and prints its Result.
func helperMain(scenario string) int {
	log := &stepLogger{path: os.Getenv(logEnv)}
	var a *agent.Agent
	var in agent.Input
	switch scenario {
	case "support":
		a = supportAgent(log, os.Getenv(killEnv))
		in = agent.Input{Message: "Hi, I'm ada@example.com. Can I get a refund on my plan?"}
	case "budget":
		killAt := 0
		if os.Getenv(killEnv) != "" {
			killAt = 2
		}
		a = budgetAgent(log, killAt)
		in = agent.Input{Message: "Take notes until you are done."}
	default:
		fmt.Fprintln(os.Stderr, "unknown scenario", scenario)
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	st, err := sqlitestore.Open(os.Getenv(dbEnv), nil)
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	e, err := durable.New(st, &durable.Config{PollInterval: 50 * time.Millisecond, WorkflowTaskTimeout: time.Second})
	if err != nil {
		return fail(err)
	}
	model, err := openai.New(&openai.Config{BaseURL: os.Getenv(llmEnv), APIKey: "test-key", Model: "gpt-4o-mini"})
	if err != nil {
		return fail(err)
	}
	rt, err := agent.NewRuntime(e, &agent.Config{Models: map[string]llm.Model{"gpt": model}})
	if err != nil {
		return fail(err)
	}
	if err := rt.Register(a); err != nil {
		return fail(err)
	}
	e.NewWorker(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		return fail(err)
	}
	defer e.Stop(context.Background())
	res, err := rt.Run(ctx, a, in, &durable.StartOptions{ID: scenario + "-1"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	b, _ := json.Marshal(res)
	fmt.Println("result:", string(b))
	return 0
}

func runHelper(t *testing.T, scenario, db, logPath, llmURL, killIn string) (error, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+scenario, dbEnv+"="+db, logEnv+"="+logPath, llmEnv+"="+llmURL, killEnv+"="+killIn)
	out, err := cmd.CombinedOutput()
	return err, string(out)
}

func parseResult(t *testing.T, out string) agent.Result {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "result: "); ok {
			var r agent.Result
			require.NoError(t, json.Unmarshal([]byte(rest), &r))
			return r
		}
	}
	t.Fatalf("no result in output:\n%s", out)
	return agent.Result{}
}

func supportScript(srv *llmtest.Server) {
	srv.Enqueue(
		llmtest.ToolCalls(llmtest.Call("crm_lookup", map[string]string{"email": "ada@example.com"})),
		llmtest.ToolCalls(llmtest.Call("kb_search", map[string]string{"query": "refund pro plan"})),
		llmtest.ToolCalls(llmtest.Call("send_email", map[string]string{
			"to": "ada@example.com", "subject": "Your refund", "body": "Pro plans are refunded in full within 30 days.",
		})),
		llmtest.Text("I have emailed Ada our refund policy: a full refund within 30 days."),
	)
}

// requestBodies returns the messages of each request the server received,
// as JSON, to compare two runs.
func requestBodies(t *testing.T, srv *llmtest.Server) []string {
	t.Helper()
	var out []string
	for _, r := range srv.Requests() {
		b, err := json.Marshal(r.Messages)
		require.NoError(t, err)
		out = append(out, string(b))
	}
	return out
}

func TestSupportScenarioSurvivesSIGKILL(t *testing.T) {
	t.Parallel()

	// The same scenario without a crash, for comparison.
	baseline := newServer(t)
	supportScript(baseline)
	dir := t.TempDir()
	err, out := runHelper(t, "support", filepath.Join(dir, "keel.db"), filepath.Join(dir, "steps.log"), baseline.URL(), "")
	require.NoError(t, err, out)
	require.Equal(t, 4, baseline.Calls())

	srv := newServer(t)
	supportScript(srv)
	dir = t.TempDir()
	db, logPath := filepath.Join(dir, "keel.db"), filepath.Join(dir, "steps.log")

	// The worker dies once the model's second answer is recorded, as the
	// knowledge-base search it asked for starts.
	err, out = runHelper(t, "support", db, logPath, srv.URL(), "kb_search")
	require.Error(t, err, out)
	require.Equal(t, "signal: killed", err.Error(), out)
	require.Equal(t, 2, srv.Calls(), "the model answered twice before the kill")
	before := readSteps(t, logPath)
	require.Equal(t, 1, countTool(before, "crm_lookup"))
	require.Zero(t, countTool(before, "kb_search"))
	require.Zero(t, countTool(before, "send_email"))

	// A fresh process resumes the run.
	err, out = runHelper(t, "support", db, logPath, srv.URL(), "")
	require.NoError(t, err, out)
	res := parseResult(t, out)
	require.Equal(t, agent.StatusCompleted, res.Status)
	require.Equal(t, "I have emailed Ada our refund policy: a full refund within 30 days.", res.Output)
	require.Equal(t, 4, res.Turns)

	require.Equal(t, 4, srv.Calls(), "the model got exactly the calls of a run without the crash")
	require.Equal(t, requestBodies(t, baseline), requestBodies(t, srv),
		"the model got exactly the requests of a run without the crash: the new process rebuilt the conversation from history")
	steps := readSteps(t, logPath)
	require.Equal(t, 1, countTool(steps, "crm_lookup"))
	require.Equal(t, 1, countTool(steps, "kb_search"))
	require.Equal(t, 1, countTool(steps, "send_email"), "the email was sent exactly once")
	require.NotEqual(t, before[0].pid, steps[len(steps)-1].pid)

	// The third request, made by the second process, carries both tool
	// results in order.
	third := srv.Requests()[2]
	var roles []string
	for _, m := range third.Messages {
		roles = append(roles, m.Role)
	}
	require.Equal(t, []string{"system", "user", "assistant", "tool", "assistant", "tool"}, roles)
	tm := toolMessages(third)
	require.JSONEq(t, `{"customer_id":"c-42","name":"Ada Lovelace","plan":"pro"}`, tm[0].Content)
	require.Contains(t, tm[1].Content, "KB-12")
}

func TestBudgetSurvivesCrash(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	use := llm.Usage{PromptTokens: 250, CompletionTokens: 50, TotalTokens: 300}
	for i := range 8 {
		srv.Enqueue(llmtest.ToolCalls(llmtest.Call("note", map[string]string{"text": fmt.Sprint("step ", i+1)})).WithUsage(use))
	}
	dir := t.TempDir()
	db, logPath := filepath.Join(dir, "keel.db"), filepath.Join(dir, "steps.log")

	// The worker dies after the model's second answer (600 tokens spent).
	err, out := runHelper(t, "budget", db, logPath, srv.URL(), "note")
	require.Error(t, err, out)
	require.Equal(t, "signal: killed", err.Error(), out)
	require.Equal(t, 2, srv.Calls())

	err, out = runHelper(t, "budget", db, logPath, srv.URL(), "")
	require.NoError(t, err, out)
	res := parseResult(t, out)
	require.Equal(t, agent.StatusBudgetExceeded, res.Status, res.Error)
	require.Contains(t, res.Error, "1200 tokens of its budget of 1000")
	require.Equal(t, 4, res.Turns, "spending before the crash still counted")
	require.EqualValues(t, 1200, res.Usage.TotalTokens)
	require.Len(t, res.ModelCalls, 4)
	require.Equal(t, 4, srv.Calls(), "a reset budget would have let the resumed run call the model again")
	require.Equal(t, 3, countTool(readSteps(t, logPath), "note"), "the last answer's tool call did not run")
}
