package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/agent"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/llm/llmtest"
	"github.com/keelhq/keel/tools"
)

// span is when a tool call ran.
type span struct {
	name       string
	start, end time.Time
}

func TestParallelToolCalls(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	srv.Enqueue(
		llmtest.ToolCalls(
			llmtest.Call("fetch", map[string]string{"source": "a"}),
			llmtest.Call("fetch", map[string]string{"source": "b"}),
			llmtest.Call("fetch", map[string]string{"source": "c"}),
		),
		llmtest.Text("all fetched"),
	)

	// Each call waits until all three have started, which only happens if
	// they run at the same time; then they finish in reverse order (c, b,
	// a), so that results in the model's order are not completion order.
	var mu sync.Mutex
	var spans []span
	started := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{}), "c": make(chan struct{})}
	done := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{}), "c": make(chan struct{})}
	next := map[string]string{"a": "b", "b": "c"}
	wait := func(ch chan struct{}) error {
		select {
		case <-ch:
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("timed out waiting for the other calls: they did not run in parallel")
		}
	}
	fetch := tools.MustNew("fetch", "Fetch a source", func(ctx context.Context, in struct {
		Source string `json:"source"`
	}) (string, error) {
		s := span{name: in.Source, start: time.Now()}
		close(started[in.Source])
		for _, ch := range started {
			if err := wait(ch); err != nil {
				return "", durable.NonRetryable(err)
			}
		}
		if n, ok := next[in.Source]; ok {
			if err := wait(done[n]); err != nil {
				return "", durable.NonRetryable(err)
			}
		}
		s.end = time.Now()
		mu.Lock()
		spans = append(spans, s)
		mu.Unlock()
		close(done[in.Source])
		return "content of " + in.Source, nil
	}, &tools.Options{Activity: &durable.ActivityOptions{RetryPolicy: durable.RetryPolicy{MaximumAttempts: 1}}})

	a := &agent.Agent{Name: "fetcher", Model: "gpt", Tools: []*tools.Tool{fetch}}
	b := setup(t, setupOpts{models: map[string]llm.Model{"gpt": openaiModel(t, srv)}, agents: []*agent.Agent{a}})
	res, err := b.rt.Run(testContext(t), a, agent.Input{Message: "fetch a, b and c"}, nil)
	require.NoError(t, err)
	require.Equal(t, agent.StatusCompleted, res.Status)

	mu.Lock()
	require.Len(t, spans, 3)
	require.Equal(t, []string{"c", "b", "a"}, []string{spans[0].name, spans[1].name, spans[2].name}, "completion order")
	latestStart, earliestEnd := spans[0].start, spans[0].end
	for _, s := range spans {
		if s.start.After(latestStart) {
			latestStart = s.start
		}
		if s.end.Before(earliestEnd) {
			earliestEnd = s.end
		}
	}
	mu.Unlock()
	require.True(t, latestStart.Before(earliestEnd), "the three calls overlapped in time")

	req := srv.Requests()[1]
	tm := toolMessages(req)
	require.Len(t, tm, 3)
	calls := srv.Requests()[1].Messages[len(req.Messages)-4].ToolCalls
	for i, src := range []string{"a", "b", "c"} {
		require.Equal(t, "content of "+src, tm[i].Content, "results come back in the model's order")
		require.Equal(t, calls[i].ID, tm[i].ToolCallID)
	}
	require.Equal(t, []agent.ToolUsage{{Name: "fetch", Calls: 3}}, res.Tools)
}

func TestRateLimitHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	srv.Enqueue(llmtest.RateLimited("1"), llmtest.RateLimited("1"), llmtest.Text("finally"))
	a := &agent.Agent{Name: "patient", Model: "gpt", ModelActivity: fastModel()}
	b := setup(t, setupOpts{models: map[string]llm.Model{"gpt": openaiModel(t, srv)}, agents: []*agent.Agent{a}})
	ctx := testContext(t)

	h, err := b.rt.Start(ctx, a, agent.Input{Message: "hello"}, nil)
	require.NoError(t, err)
	res, err := h.Result(ctx)
	require.NoError(t, err)
	require.Equal(t, agent.StatusCompleted, res.Status)
	require.Equal(t, "finally", res.Output)
	require.Equal(t, 3, srv.Calls())

	attempts, err := b.e.ActivityAttempts(ctx, h.RunID())
	require.NoError(t, err)
	require.Len(t, attempts, 3)
	for i, at := range attempts {
		require.Equal(t, agent.ModelActivityName, at.ActivityType)
		require.Equal(t, i+1, at.Attempt)
	}
	for _, at := range attempts[:2] {
		require.Equal(t, "failed", at.Outcome)
		require.Contains(t, at.Error, "rate_limited")
		require.Contains(t, at.Error, "HTTP 429")
	}
	require.Equal(t, "completed", attempts[2].Outcome)
	// The retry policy alone would retry after 10ms; the provider asked
	// for a second.
	for i := 1; i < 3; i++ {
		gap := attempts[i].StartedAt.Sub(attempts[i-1].EndedAt)
		require.GreaterOrEqual(t, gap, 900*time.Millisecond, "attempt %d waited for Retry-After", i+1)
	}
}

func TestBadRequestIsNotRetried(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	srv.Enqueue(llmtest.ContextLengthExceeded())
	a := &agent.Agent{Name: "verbose", Model: "gpt", ModelActivity: fastModel()}
	b := setup(t, setupOpts{models: map[string]llm.Model{"gpt": openaiModel(t, srv)}, agents: []*agent.Agent{a}})
	_, err := b.rt.Run(testContext(t), a, agent.Input{Message: "hello"}, nil)
	require.Error(t, err)
	require.ErrorContains(t, err, "context_length_exceeded")
	require.Equal(t, 1, srv.Calls(), "an error that repeating cannot fix is not retried")
}

func TestBudgetStopsRun(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		srv := newServer(t)
		for range 6 {
			srv.Enqueue(llmtest.ToolCalls(llmtest.Call("ping", "{}")).WithUsage(llm.Usage{PromptTokens: 100, CompletionTokens: 20, TotalTokens: 120}))
		}
		ping := tools.MustNew("ping", "Ping", func(context.Context, struct{}) (string, error) { return "pong", nil }, nil)
		a := &agent.Agent{Name: "spender", Model: "gpt", Tools: []*tools.Tool{ping}, Budget: agent.Budget{MaxTokens: 300}}
		b := setup(t, setupOpts{db: db, models: map[string]llm.Model{"gpt": openaiModel(t, srv)}, agents: []*agent.Agent{a}})
		res, err := b.rt.Run(testContext(t), a, agent.Input{Message: "go"}, nil)
		require.NoError(t, err, "a budget stop is an outcome, not an error")
		require.Equal(t, agent.StatusBudgetExceeded, res.Status)
		require.Equal(t, 3, res.Turns)
		require.EqualValues(t, 360, res.Usage.TotalTokens)
		require.Equal(t, 3, srv.Calls())
		require.Equal(t, []agent.ToolUsage{{Name: "ping", Calls: 2}}, res.Tools, "the third answer's call did not run")
		// gpt-4o-mini: $0.15 per million input tokens, $0.60 per million
		// output tokens: 100 × 0.15 + 20 × 0.60 = 27 micro-dollars a call.
		require.Equal(t, llm.USD(81), res.Cost)
		for _, mc := range res.ModelCalls {
			require.Equal(t, llm.USD(27), mc.Cost)
			require.Equal(t, "gpt-4o-mini", mc.Model)
		}
	})
}

// scriptedApprover answers approval requests from a list, and records them.
type scriptedApprover struct {
	mu        sync.Mutex
	decisions []tools.ApprovalDecision
	asked     []tools.ApprovalRequest
}

func (s *scriptedApprover) Approve(ctx durable.Context, req tools.ApprovalRequest) (tools.ApprovalDecision, error) {
	// The decision is recorded in history as a side effect, so a replay
	// gets the same answer without asking again.
	return durable.SideEffect(ctx, func() tools.ApprovalDecision {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.asked = append(s.asked, req)
		if len(s.decisions) == 0 {
			return tools.ApprovalDecision{Approved: false, Reviewer: "ops", Comment: "no more"}
		}
		d := s.decisions[0]
		s.decisions = s.decisions[1:]
		return d
	})
}

func TestBudgetAsksForApproval(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	for range 8 {
		srv.Enqueue(llmtest.ToolCalls(llmtest.Call("ping", "{}")).WithUsage(llm.Usage{PromptTokens: 90, CompletionTokens: 10, TotalTokens: 100}))
	}
	ping := tools.MustNew("ping", "Ping", func(context.Context, struct{}) (string, error) { return "pong", nil }, nil)
	approver := &scriptedApprover{decisions: []tools.ApprovalDecision{{Approved: true, Reviewer: "maria"}}}
	a := &agent.Agent{
		Name: "asker", Model: "gpt", Tools: []*tools.Tool{ping},
		Budget:   agent.Budget{MaxTokens: 200, AskApproval: true},
		Approver: approver,
	}
	b := setup(t, setupOpts{models: map[string]llm.Model{"gpt": openaiModel(t, srv)}, agents: []*agent.Agent{a}})
	res, err := b.rt.Run(testContext(t), a, agent.Input{Message: "go"}, nil)
	require.NoError(t, err)
	// 200 tokens: approved, raised to 400; 400: refused.
	require.Equal(t, agent.StatusBudgetExceeded, res.Status)
	require.Equal(t, 4, res.Turns)
	require.Contains(t, res.Error, "a reviewer refused to raise it: no more")
	approver.mu.Lock()
	defer approver.mu.Unlock()
	require.Len(t, approver.asked, 2)
	require.Equal(t, agent.BudgetAction, approver.asked[0].Action)
	require.JSONEq(t, `{"agent":"asker","spent_tokens":200,"spent_cost":40,"max_tokens":200}`, string(approver.asked[0].Arguments))
	require.JSONEq(t, `{"agent":"asker","spent_tokens":400,"spent_cost":80,"max_tokens":400}`, string(approver.asked[1].Arguments))
}

func TestSubAgent(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		salesSrv, legalSrv := newServer(t), newServer(t)
		legal := &agent.Agent{
			Name:          "legal",
			Description:   "Reviews contract clauses.",
			Instructions:  "You are a lawyer.",
			Model:         "legal-model",
			TaskQueue:     "legal",
			ModelActivity: fastModel(),
		}
		sales := &agent.Agent{
			Name:          "sales",
			Instructions:  "You sell. Ask legal about contract terms.",
			Model:         "sales-model",
			SubAgents:     []*agent.Agent{legal},
			ModelActivity: fastModel(),
		}
		b := setup(t, setupOpts{
			db:     db,
			models: map[string]llm.Model{"sales-model": openaiModel(t, salesSrv), "legal-model": openaiModel(t, legalSrv)},
			agents: []*agent.Agent{sales},
			queues: []string{"legal"},
		})
		require.Equal(t, []string{"default", "legal"}, b.rt.TaskQueues())
		ctx := testContext(t)
		salesUse := llm.Usage{PromptTokens: 100, CompletionTokens: 10, TotalTokens: 110}
		legalUse := llm.Usage{PromptTokens: 50, CompletionTokens: 5, TotalTokens: 55}

		// The legal agent answers.
		salesSrv.Enqueue(
			llmtest.ToolCalls(llmtest.Call("legal", map[string]string{"input": "Can we offer net-90 payment terms?"})).WithUsage(salesUse),
			llmtest.Text("Legal says net-90 is fine for this deal.").WithUsage(salesUse),
		)
		legalSrv.Enqueue(llmtest.Text("Net-90 is acceptable under our standard terms.").WithUsage(legalUse))
		h, err := b.rt.Start(ctx, sales, agent.Input{Message: "Draft an offer for ACME"}, &durable.StartOptions{ID: "deal-1"})
		require.NoError(t, err)
		res, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, agent.StatusCompleted, res.Status)
		require.Equal(t, "Net-90 is acceptable under our standard terms.", lastMessage(salesSrv.Requests()[1]).Content)
		require.Equal(t, "Can we offer net-90 payment terms?", lastMessage(legalSrv.Requests()[0]).Content)
		require.Equal(t, "You are a lawyer.", legalSrv.Requests()[0].Messages[0].Content)

		// Tokens and cost roll up from the sub-agent.
		require.EqualValues(t, 2*110+55, res.Usage.TotalTokens)
		require.Len(t, res.SubAgents, 1)
		sub := res.SubAgents[0]
		require.Equal(t, "legal", sub.Agent)
		require.Equal(t, "deal-1/legal-1-1", sub.WorkflowID)
		require.Equal(t, agent.StatusCompleted, sub.Status)
		require.EqualValues(t, 55, sub.Usage.TotalTokens)
		require.Equal(t, res.ModelCalls[0].Cost+res.ModelCalls[1].Cost+sub.Cost, res.Cost)
		require.Equal(t, []agent.ToolUsage{{Name: "legal", Calls: 1, Usage: legalUse, Cost: sub.Cost}}, res.Tools)

		// The legal run is a child workflow with a history of its own, on
		// its own task queue; the sales history holds no legal model call.
		child, err := b.e.Describe(ctx, sub.WorkflowID)
		require.NoError(t, err)
		require.Equal(t, "legal", child.WorkflowType)
		require.Equal(t, "legal", child.TaskQueue)
		require.Equal(t, durable.StatusCompleted, child.Status)
		childConv, err := b.rt.Conversation(ctx, child.RunID)
		require.NoError(t, err)
		require.Len(t, childConv, 2)
		parentHist, err := b.e.GetHistory(ctx, h.RunID())
		require.NoError(t, err)
		for _, ev := range parentHist.Events {
			if ev.Type == durable.EventActivityScheduled {
				require.NotContains(t, string(ev.Data), "You are a lawyer")
				require.NotContains(t, string(ev.Data), `"agent":"legal"`)
			}
		}

		// The legal agent fails (its model refuses the request as
		// malformed): the sales model reads the failure as a tool error.
		salesSrv.Enqueue(
			llmtest.ToolCalls(llmtest.Call("legal", map[string]string{"input": "Review clause 7"})),
			llmtest.Text("Legal could not review it; I will follow up."),
		)
		legalSrv.Enqueue(llmtest.Error(400, "invalid_request_error", "", "messages: malformed"))
		res, err = b.rt.Run(ctx, sales, agent.Input{Message: "Draft an offer for Initech"}, &durable.StartOptions{ID: "deal-2"})
		require.NoError(t, err, "a failed sub-agent does not fail its parent")
		require.Equal(t, agent.StatusCompleted, res.Status)
		fed := lastMessage(salesSrv.Requests()[3])
		require.Equal(t, "tool", fed.Role)
		require.True(t, strings.HasPrefix(fed.Content, "error: agent legal failed"), fed.Content)
		require.Contains(t, fed.Content, "malformed")
		require.Equal(t, []agent.ToolUsage{{Name: "legal", Calls: 1, Errors: 1}}, res.Tools)
		failed, err := b.e.Describe(ctx, "deal-2/legal-1-1")
		require.NoError(t, err)
		require.Equal(t, durable.StatusFailed, failed.Status)
		require.Len(t, res.SubAgents, 1)
		require.Equal(t, agent.StatusFailed, res.SubAgents[0].Status)

		// The legal agent spends a turn, then fails: what it spent counts
		// in the sales run's totals and its sub-agent record.
		salesSrv.Enqueue(
			llmtest.ToolCalls(llmtest.Call("legal", map[string]string{"input": "Review clause 9"})).WithUsage(salesUse),
			llmtest.Text("Legal could not finish; I will follow up.").WithUsage(salesUse),
		)
		legalSrv.Enqueue(
			llmtest.ToolCalls(llmtest.Call("lookup_precedent", "{}")).WithUsage(legalUse),
			llmtest.Error(400, "invalid_request_error", "", "messages: malformed"),
		)
		res, err = b.rt.Run(ctx, sales, agent.Input{Message: "Draft an offer for Hooli"}, &durable.StartOptions{ID: "deal-3"})
		require.NoError(t, err)
		require.EqualValues(t, 2*110+55, res.Usage.TotalTokens, "the failed sub-agent's tokens count")
		require.Len(t, res.SubAgents, 1)
		sub = res.SubAgents[0]
		require.Equal(t, agent.StatusFailed, sub.Status)
		require.Equal(t, 2, sub.Turns)
		require.Equal(t, legalUse, sub.Usage)
		require.Equal(t, res.ModelCalls[0].Cost+res.ModelCalls[1].Cost+sub.Cost, res.Cost)
		require.Equal(t, []agent.ToolUsage{{Name: "legal", Calls: 1, Errors: 1, Usage: legalUse, Cost: sub.Cost}}, res.Tools)

		// A run that fails returns its error with what it had spent.
		salesSrv.Enqueue(
			llmtest.ToolCalls(llmtest.Call("no_such_tool", "{}")).WithUsage(salesUse),
			llmtest.Error(400, "invalid_request_error", "", "messages: malformed"),
		)
		res, err = b.rt.Run(ctx, sales, agent.Input{Message: "Draft an offer for Pied Piper"}, &durable.StartOptions{ID: "deal-4"})
		require.Error(t, err)
		require.Equal(t, agent.StatusFailed, res.Status)
		require.Equal(t, "sales", res.Agent)
		require.Equal(t, 2, res.Turns)
		require.Equal(t, salesUse, res.Usage)
	})
}

func TestHandoff(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	refund := tools.MustNew("refund", "Refund an order", func(ctx context.Context, in struct {
		Order string `json:"order"`
	}) (string, error) {
		return "refunded " + in.Order, nil
	}, nil)
	billing := &agent.Agent{Name: "billing", Description: "Handles refunds.", Instructions: "You handle billing.", Model: "gpt", Tools: []*tools.Tool{refund}}
	triage := &agent.Agent{Name: "triage", Instructions: "Route the customer.", Model: "gpt", Handoffs: []*agent.Agent{billing}}
	srv.Enqueue(
		llmtest.ToolCalls(llmtest.Call("transfer_to_billing", "{}")),
		llmtest.ToolCalls(llmtest.Call("refund", map[string]string{"order": "A-7"})),
		llmtest.Text("Your order A-7 is refunded."),
	)
	b := setup(t, setupOpts{models: map[string]llm.Model{"gpt": openaiModel(t, srv)}, agents: []*agent.Agent{triage}})
	res, err := b.rt.Run(testContext(t), triage, agent.Input{Message: "refund order A-7"}, nil)
	require.NoError(t, err)
	require.Equal(t, agent.StatusCompleted, res.Status)
	require.Equal(t, "billing", res.Agent)
	require.Equal(t, []string{"billing"}, res.Handoffs)

	reqs := srv.Requests()
	require.Equal(t, "Route the customer.", reqs[0].Messages[0].Content)
	require.Equal(t, []string{"transfer_to_billing"}, toolNames(reqs[0]))
	require.Equal(t, "You handle billing.", reqs[1].Messages[0].Content, "the conversation goes on with the target's instructions")
	require.Equal(t, []string{"refund"}, toolNames(reqs[1]))
	require.Equal(t, "refund order A-7", reqs[1].Messages[1].Content, "and the whole conversation")
	require.Equal(t, "refunded A-7", lastMessage(reqs[2]).Content)
}

func toolNames(req *llmtest.Request) []string {
	var out []string
	for _, t := range req.Tools {
		out = append(out, t.Function.Name)
	}
	return out
}

type memo struct {
	Verdict string   `json:"verdict" jsonschema:"enum=approve,enum=reject"`
	Reasons []string `json:"reasons"`
}

func TestBadModelOutputIsFedBack(t *testing.T) {
	t.Parallel()
	lookup := tools.MustNew("lookup", "Look a customer up", func(ctx context.Context, in struct {
		ID string `json:"id" jsonschema:"minLength=3"`
	}) (string, error) {
		return "customer " + in.ID, nil
	}, nil)

	t.Run("tool calls", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t)
		srv.Enqueue(
			llmtest.ToolCalls(llmtest.Call("lookup", `{"id": "c-4`)), // malformed JSON
			llmtest.ToolCalls(llmtest.Call("lookup", map[string]any{"id": 42, "extra": true})),
			llmtest.ToolCalls(llmtest.Call("look_up", map[string]string{"id": "c-42"})),
			llmtest.ToolCalls(llmtest.Call("lookup", map[string]string{"id": "c-42"})),
			llmtest.Text("Customer c-42 found."),
		)
		a := &agent.Agent{Name: "clumsy", Model: "gpt", Tools: []*tools.Tool{lookup}}
		b := setup(t, setupOpts{models: map[string]llm.Model{"gpt": openaiModel(t, srv)}, agents: []*agent.Agent{a}})
		ctx := testContext(t)
		h, err := b.rt.Start(ctx, a, agent.Input{Message: "find c-42"}, nil)
		require.NoError(t, err)
		res, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, agent.StatusCompleted, res.Status)
		reqs := srv.Requests()
		require.Contains(t, lastMessage(reqs[1]).Content, "error: invalid arguments for tool lookup")
		require.Contains(t, lastMessage(reqs[1]).Content, "not valid JSON")
		require.Contains(t, lastMessage(reqs[2]).Content, "/id")
		require.Contains(t, lastMessage(reqs[2]).Content, "'extra' not allowed")
		require.Contains(t, lastMessage(reqs[3]).Content, `error: tools: unknown tool: "look_up"; available tools: lookup`)
		require.Equal(t, "customer c-42", lastMessage(reqs[4]).Content)
		require.Equal(t, []agent.ToolUsage{{Name: "lookup", Calls: 3, Errors: 2}, {Name: "look_up", Calls: 1, Errors: 1}}, res.Tools)
		info, err := b.e.DescribeRun(ctx, h.RunID())
		require.NoError(t, err)
		require.Empty(t, info.LastTaskFailure, "no workflow task failed")
	})

	t.Run("bounded by max turns", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t)
		for range 5 {
			srv.Enqueue(llmtest.ToolCalls(llmtest.Call("lookup", `{"id": `)))
		}
		a := &agent.Agent{Name: "stubborn", Model: "gpt", Tools: []*tools.Tool{lookup}, MaxTurns: 3}
		b := setup(t, setupOpts{models: map[string]llm.Model{"gpt": openaiModel(t, srv)}, agents: []*agent.Agent{a}})
		res, err := b.rt.Run(testContext(t), a, agent.Input{Message: "find c-42"}, nil)
		require.NoError(t, err)
		require.Equal(t, agent.StatusMaxTurns, res.Status)
		require.Equal(t, 3, res.Turns)
		require.Equal(t, 3, srv.Calls())
	})

	t.Run("structured output", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t)
		srv.Enqueue(
			llmtest.Text("Sure! I think we should approve it."),
			llmtest.JSON(map[string]any{"verdict": "maybe", "reasons": []string{"unclear"}}),
			llmtest.Text("```json\n{\"verdict\": \"approve\", \"reasons\": [\"standard terms\"]}\n```"),
		)
		a := &agent.Agent{Name: "reviewer", Model: "gpt", Output: agent.MustOutputOf[memo]("memo")}
		b := setup(t, setupOpts{models: map[string]llm.Model{"gpt": openaiModel(t, srv)}, agents: []*agent.Agent{a}})
		res, err := b.rt.Run(testContext(t), a, agent.Input{Message: "review the contract"}, nil)
		require.NoError(t, err)
		require.Equal(t, agent.StatusCompleted, res.Status, res.Error)
		m, err := agent.DecodeOutput[memo](res)
		require.NoError(t, err)
		require.Equal(t, memo{Verdict: "approve", Reasons: []string{"standard terms"}}, m)

		reqs := srv.Requests()
		require.Equal(t, "memo", reqs[0].ResponseFormat.JSONSchema.Name)
		require.Contains(t, string(reqs[0].ResponseFormat.JSONSchema.Schema), `"verdict"`)
		require.Equal(t, "user", lastMessage(reqs[1]).Role)
		require.Contains(t, lastMessage(reqs[1]).Content, "Your answer is not valid")
		require.Contains(t, lastMessage(reqs[1]).Content, "not valid JSON")
		require.Contains(t, lastMessage(reqs[2]).Content, "/verdict")
	})

	t.Run("structured output bounded by repairs", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t)
		for range 5 {
			srv.Enqueue(llmtest.Text("no JSON for you"))
		}
		a := &agent.Agent{Name: "prose", Model: "gpt", Output: agent.MustOutputOf[memo]("memo"), MaxRepairs: 2}
		b := setup(t, setupOpts{models: map[string]llm.Model{"gpt": openaiModel(t, srv)}, agents: []*agent.Agent{a}})
		res, err := b.rt.Run(testContext(t), a, agent.Input{Message: "review"}, nil)
		require.NoError(t, err)
		require.Equal(t, agent.StatusInvalidOutput, res.Status)
		require.Equal(t, 3, srv.Calls(), "one answer and two repairs")
		require.Equal(t, "no JSON for you", res.Output)
		_, err = agent.DecodeOutput[memo](res)
		require.ErrorIs(t, err, agent.ErrInvalidOutput)
	})
}

// totalBytes is the size of the messages of a conversation, as JSON.
func totalBytes(t *testing.T, msgs []llm.Message) int64 {
	t.Helper()
	var n int64
	for _, m := range msgs {
		b, err := json.Marshal(m)
		require.NoError(t, err)
		n += int64(len(b))
	}
	return n
}

func TestHistoryIsLinearInTurns(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		const turns = 50
		srv := newServer(t)
		for i := range turns - 1 {
			srv.Enqueue(llmtest.ToolCalls(llmtest.Call("kb_search", map[string]string{"query": fmt.Sprintf("question %d about refunds and plans", i)})))
		}
		srv.Enqueue(llmtest.Text("Here is everything I found."))
		// A knowledge-base hit of about a kilobyte, as real ones are.
		article := strings.Repeat("Refunds are granted within 30 days of purchase for annual plans. ", 16)
		kb := tools.MustNew("kb_search", "Search the knowledge base", func(ctx context.Context, in kbInput) (kbArticle, error) {
			return kbArticle{ID: "KB-" + in.Query, Title: "Refunds", Body: article}, nil
		}, nil)
		instructions := "You are a support agent. Search the knowledge base before you answer."
		a := &agent.Agent{Name: "researcher", Instructions: instructions, Model: "gpt", Tools: []*tools.Tool{kb}, MaxTurns: turns}
		b := setup(t, setupOpts{db: db, models: map[string]llm.Model{"gpt": openaiModel(t, srv)}, agents: []*agent.Agent{a}})
		ctx := testContext(t)
		h, err := b.rt.Start(ctx, a, agent.Input{Message: "Tell me everything about refunds."}, nil)
		require.NoError(t, err)
		res, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, agent.StatusCompleted, res.Status)
		require.Equal(t, turns, res.Turns)
		require.Len(t, srv.Requests()[turns-1].Messages, 2+2*(turns-1), "the last call carried the whole conversation")

		conv, err := b.rt.Conversation(ctx, h.RunID())
		require.NoError(t, err)
		require.Len(t, conv, 1+2*(turns-1)+1)
		exchanged := totalBytes(t, append([]llm.Message{llm.SystemMessage(instructions)}, conv...))
		info, err := b.e.DescribeRun(ctx, h.RunID())
		require.NoError(t, err)
		var sent int64 // what the model received over all calls
		for _, r := range srv.Requests() {
			sent += int64(len(r.Body))
		}
		t.Logf("%d turns: history %d bytes in %d events; messages %d bytes (%.2fx); requests %d bytes",
			turns, info.HistoryBytes, info.HistoryLength, exchanged, float64(info.HistoryBytes)/float64(exchanged), sent)
		require.LessOrEqual(t, info.HistoryBytes, 3*exchanged, "history stays linear in the conversation")
		require.Less(t, 5*info.HistoryBytes, sent, "the conversation is not stored again in each event")
	})
}

// A model activity whose cache is cold (another process made the previous
// call) rebuilds the conversation from history and sends the same request.
func TestConversationRebuiltWithoutCache(t *testing.T) {
	t.Parallel()
	run := func(cacheSize int) []string {
		srv := newServer(t)
		srv.Enqueue(
			llmtest.ToolCalls(llmtest.Call("kb_search", map[string]string{"query": "refund"})),
			llmtest.ToolCalls(llmtest.Call("kb_search", map[string]string{"query": "plans"}), llmtest.Call("kb_search", map[string]string{"query": "terms"})),
			llmtest.Text("done"),
		)
		kb := tools.MustNew("kb_search", "Search", func(ctx context.Context, in kbInput) (string, error) { return "about " + in.Query, nil }, nil)
		a := &agent.Agent{Name: "searcher", Instructions: "Search.", Model: "gpt", Tools: []*tools.Tool{kb}}
		b := setup(t, setupOpts{
			models: map[string]llm.Model{"gpt": openaiModel(t, srv)}, agents: []*agent.Agent{a},
			cfg: &agent.Config{ConversationCacheSize: cacheSize},
		})
		res, err := b.rt.Run(testContext(t), a, agent.Input{Message: "go"}, &durable.StartOptions{ID: "s-1"})
		require.NoError(t, err)
		require.Equal(t, agent.StatusCompleted, res.Status)
		return requestBodies(t, srv)
	}
	cached, uncached := run(0), run(-1)
	require.Len(t, cached, 3)
	require.Equal(t, cached, uncached)
}

func TestRegisterRejectsBadAgents(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	b := setup(t, setupOpts{models: map[string]llm.Model{"gpt": openaiModel(t, srv)}})
	ping := tools.MustNew("ping", "", func(context.Context, struct{}) (string, error) { return "", nil }, nil)
	other := tools.MustNew("ping", "", func(context.Context, struct{}) (string, error) { return "", nil }, nil)

	require.ErrorIs(t, b.rt.Register(&agent.Agent{Name: "no model"}), agent.ErrInvalidAgent)
	require.ErrorIs(t, b.rt.Register(&agent.Agent{Name: "a", Model: "claude"}), agent.ErrUnknownModel)
	require.ErrorIs(t, b.rt.Register(&agent.Agent{Name: "b", Model: "gpt", Tools: []*tools.Tool{ping, ping}}), agent.ErrInvalidAgent)
	require.ErrorIs(t, b.rt.Register(&agent.Agent{Name: "c", Model: "gpt", Tools: []*tools.Tool{ping},
		SubAgents: []*agent.Agent{{Name: "ping", Model: "gpt"}}}), agent.ErrInvalidAgent)
	require.NoError(t, b.rt.Register(&agent.Agent{Name: "d", Model: "gpt", Tools: []*tools.Tool{ping}}))
	require.ErrorIs(t, b.rt.Register(&agent.Agent{Name: "e", Model: "gpt", Tools: []*tools.Tool{other}}), agent.ErrInvalidAgent,
		"two different tools cannot share a name on one engine")
	require.ErrorIs(t, b.rt.Register(&agent.Agent{Name: "d", Model: "gpt"}), agent.ErrInvalidAgent)
	_, err := b.rt.Run(testContext(t), &agent.Agent{Name: "unregistered"}, agent.Input{}, nil)
	require.ErrorIs(t, err, agent.ErrUnknownAgent)
}

func TestToolApprovalThroughAgent(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	srv.Enqueue(
		llmtest.ToolCalls(
			llmtest.Call("refund", map[string]any{"order": "A-1", "cents": 5000}),
			llmtest.Call("refund", map[string]any{"order": "A-2", "cents": 90000}),
		),
		llmtest.Text("One refund went through; the other needs a manager."),
	)
	var mu sync.Mutex
	var refunded []string
	refund := tools.MustNew("refund", "Refund an order", func(ctx context.Context, in struct {
		Order string `json:"order"`
		Cents int    `json:"cents"`
	}) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		refunded = append(refunded, fmt.Sprintf("%s:%d", in.Order, in.Cents))
		return "refunded", nil
	}, &tools.Options{RequiresApproval: true, ApprovalReason: "refunds need a human"})
	approver := &scriptedApprover{decisions: []tools.ApprovalDecision{
		{Approved: true, Reviewer: "li"},
		{Approved: false, Reviewer: "li", Comment: "over 500 dollars; ask a manager"},
	}}
	a := &agent.Agent{Name: "refunder", Model: "gpt", Tools: []*tools.Tool{refund}, Approver: approver}
	b := setup(t, setupOpts{models: map[string]llm.Model{"gpt": openaiModel(t, srv)}, agents: []*agent.Agent{a}})
	res, err := b.rt.Run(testContext(t), a, agent.Input{Message: "refund A-1 and A-2"}, nil)
	require.NoError(t, err)
	require.Equal(t, agent.StatusCompleted, res.Status)
	mu.Lock()
	require.Equal(t, []string{"A-1:5000"}, refunded)
	mu.Unlock()
	tm := toolMessages(srv.Requests()[1])
	require.Equal(t, "refunded", tm[0].Content)
	require.Contains(t, tm[1].Content, "refused by reviewer li")
	require.Contains(t, tm[1].Content, "over 500 dollars; ask a manager")
	require.Equal(t, []agent.ToolUsage{{Name: "refund", Calls: 2, Errors: 1}}, res.Tools)
}

// idlessModel answers with a tool call that has no ID, as some
// OpenAI-compatible servers do, then with text.
type idlessModel struct{}

func (idlessModel) Name() string { return "local" }

func (idlessModel) Chat(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	last := req.Messages[len(req.Messages)-1]
	if last.Role == llm.RoleTool {
		return &llm.Response{Message: llm.AssistantMessage("got " + last.Content), FinishReason: llm.FinishStop}, nil
	}
	return &llm.Response{Message: llm.AssistantMessage("", llm.ToolCall{Name: "ping"}), FinishReason: llm.FinishToolCalls}, nil
}

func TestToolCallsWithoutIDs(t *testing.T) {
	t.Parallel()
	ping := tools.MustNew("ping", "Ping", func(context.Context, struct{}) (string, error) { return "pong", nil }, nil)
	a := &agent.Agent{Name: "local", Model: "local", Tools: []*tools.Tool{ping}}
	b := setup(t, setupOpts{models: map[string]llm.Model{"local": idlessModel{}}, agents: []*agent.Agent{a}})
	res, err := b.rt.Run(testContext(t), a, agent.Input{Message: "ping"}, nil)
	require.NoError(t, err)
	require.Equal(t, agent.StatusCompleted, res.Status)
	require.Equal(t, "got pong", res.Output)
}
