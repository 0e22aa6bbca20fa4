package agenttest_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/agent"
	"github.com/keelhq/keel/agent/agenttest"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/llm/llmtest"
	"github.com/keelhq/keel/llm/openai"
	"github.com/keelhq/keel/tools"
)

var update = flag.Bool("update", false, "record testdata/support.json again")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fixture is the code under test: a support agent with two tools and a
// legal sub-agent. Its tools count their executions.
type fixture struct {
	support, legal *agent.Agent
	executions     atomic.Int64
}

func newFixture(withKB bool) *fixture {
	f := &fixture{}
	crm := tools.MustNew("crm_lookup", "Find a customer", func(ctx context.Context, in struct {
		Email string `json:"email"`
	}) (map[string]string, error) {
		f.executions.Add(1)
		return map[string]string{"id": "c-42", "name": "Ada", "plan": "pro"}, nil
	}, nil)
	kb := tools.MustNew("kb_search", "Search the knowledge base", func(ctx context.Context, in struct {
		Query string `json:"query"`
	}) ([]string, error) {
		f.executions.Add(1)
		return []string{"KB-12: Pro plans are refunded within 30 days."}, nil
	}, nil)
	ts := []*tools.Tool{crm}
	if withKB {
		ts = append(ts, kb)
	}
	f.legal = &agent.Agent{Name: "legal", Description: "Checks refund terms.", Instructions: "You are a lawyer.", Model: "gpt", TaskQueue: "legal"}
	f.support = &agent.Agent{
		Name:         "support",
		Instructions: "Help the customer.",
		Model:        "gpt",
		Tools:        ts,
		SubAgents:    []*agent.Agent{f.legal},
	}
	return f
}

func script(srv *llmtest.Server) {
	use := func(n int64) llm.Usage {
		return llm.Usage{PromptTokens: n, CompletionTokens: n / 10, TotalTokens: n + n/10}
	}
	srv.Enqueue(
		// support: two tool calls in parallel
		llmtest.ToolCalls(
			llmtest.Call("crm_lookup", map[string]string{"email": "ada@example.com"}),
			llmtest.Call("kb_search", map[string]string{"query": "refund"}),
		).WithUsage(use(200)),
		// support: ask legal
		llmtest.ToolCalls(llmtest.Call("legal", map[string]string{"input": "May we refund a pro plan after 20 days?"})).WithUsage(use(300)),
		// legal answers
		llmtest.Text("Yes, within 30 days.").WithUsage(use(50)),
		// support: final answer
		llmtest.Text("Ada, your pro plan will be refunded.").WithUsage(use(400)),
	)
}

// record runs the fixture against a llmtest server and records the run.
func record(t *testing.T) *agenttest.Recording {
	t.Helper()
	srv := llmtest.NewServer(nil)
	defer srv.Close()
	script(srv)
	f := newFixture(true)
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "keel.db"), nil)
	require.NoError(t, err)
	defer st.Close()
	e, err := durable.New(st, &durable.Config{PollInterval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	model, err := openai.New(&openai.Config{BaseURL: srv.URL(), APIKey: "k", Model: "gpt-4o-mini"})
	require.NoError(t, err)
	rt, err := agent.NewRuntime(e, &agent.Config{Models: map[string]llm.Model{"gpt": model}})
	require.NoError(t, err)
	rt.MustRegister(f.support)
	e.NewWorker(nil)
	e.NewWorker(&durable.WorkerOptions{TaskQueue: "legal"})
	ctx := context.Background()
	require.NoError(t, e.Start(ctx))
	defer e.Stop(ctx)
	res, err := rt.Run(ctx, f.support, agent.Input{Message: "I want a refund. I am ada@example.com."}, &durable.StartOptions{ID: "ticket-7"})
	require.NoError(t, err)
	require.Equal(t, agent.StatusCompleted, res.Status)
	rec, err := agenttest.Record(ctx, e, "ticket-7")
	require.NoError(t, err)
	return rec
}

func TestReplayMatchesRecording(t *testing.T) {
	t.Parallel()
	rec := record(t)
	require.Len(t, rec.Runs, 2, "the run and its sub-agent run")
	require.Contains(t, rec.Runs, "ticket-7/legal-2-1")
	path := filepath.Join(t.TempDir(), "ticket-7.json")
	require.NoError(t, rec.Save(path))
	loaded, err := agenttest.Load(path)
	require.NoError(t, err)

	// The server is gone: a replay that called the network would fail.
	f := newFixture(true)
	rep := agenttest.RequireReplay(t, loaded, []*agent.Agent{f.support}, nil)
	require.True(t, rep.OK())
	require.Equal(t, agent.StatusCompleted, rep.Result.Status)
	require.Equal(t, "Ada, your pro plan will be refunded.", rep.Result.Output)
	require.Equal(t, rep.Recorded.Usage, rep.Result.Usage)
	require.EqualValues(t, 220+330+55+440, rep.Result.Usage.TotalTokens, "the sub-agent's usage rolls up in the replay too")
	require.Zero(t, f.executions.Load(), "recorded tool results were fed back; no tool ran")
}

func TestReplayReportsChangedBehaviour(t *testing.T) {
	t.Parallel()
	rec := record(t)

	// The new code dropped the knowledge-base tool: the model's recorded
	// call to it now gets an unknown-tool error, so the next model call
	// is sent another conversation than the recorded one.
	f := newFixture(false)
	rep, err := agenttest.Replay(context.Background(), rec, []*agent.Agent{f.support}, nil)
	require.NoError(t, err)
	require.False(t, rep.OK())
	joined := strings.Join(rep.Diffs, "\n")
	t.Log(joined)
	require.Contains(t, joined, "run ticket-7: model call 2 was sent other messages than recorded, from message 4")
	require.Contains(t, joined, "unknown tool")
	require.Contains(t, joined, "result tools:")

	// Code that makes another agent of the recorded one cannot replay it.
	other := &agent.Agent{Name: "other", Model: "gpt"}
	_, err = agenttest.Replay(context.Background(), rec, []*agent.Agent{other}, nil)
	require.ErrorContains(t, err, `agent "support"`)
}

func TestReplayGolden(t *testing.T) {
	t.Parallel()
	path := filepath.Join("testdata", "support.json")
	if *update {
		require.NoError(t, record(t).Save(path))
	}
	rec, err := agenttest.Load(path)
	require.NoError(t, err, "run go test -run TestReplayGolden -update to record it")
	f := newFixture(true)
	rep := agenttest.RequireReplay(t, rec, []*agent.Agent{f.support}, nil)
	require.Equal(t, "Ada, your pro plan will be refunded.", rep.Result.Output)
	require.Equal(t, 3, rep.Result.Turns)
	require.Equal(t, fmt.Sprint(rep.Recorded.Cost), fmt.Sprint(rep.Result.Cost))
}
