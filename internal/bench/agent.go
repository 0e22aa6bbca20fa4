package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/keelhq/keel/agent"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/tools"
)

// AgentTurns is the number of model calls of one A1 run.
const AgentTurns = 10

// TurnsModel is a model that answers at once: it asks for a "ping" tool
// call until the conversation holds Turns-1 answers, then answers with
// text. It reports itself as gpt-4o-mini, so that its calls are priced
// as a real model's are. It decides from the request alone, so it needs no state and is
// safe for concurrent use.
type TurnsModel struct{ Turns int }

// Name implements llm.Model.
func (TurnsModel) Name() string { return "gpt-4o-mini" }

// Chat implements llm.Model.
func (m TurnsModel) Chat(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	answers := 0
	for _, msg := range req.Messages {
		if msg.Role == llm.RoleAssistant {
			answers++
		}
	}
	resp := &llm.Response{Model: "gpt-4o-mini", Usage: llm.Usage{PromptTokens: 100, CompletionTokens: 10, TotalTokens: 110}}
	if answers < m.Turns-1 {
		resp.Message = llm.AssistantMessage("", llm.ToolCall{
			ID: fmt.Sprintf("call_%d", answers+1), Name: "ping", Arguments: json.RawMessage(`{"n":1}`),
		})
		resp.FinishReason = llm.FinishToolCalls
		return resp, nil
	}
	resp.Message = llm.AssistantMessage("done")
	resp.FinishReason = llm.FinishStop
	return resp, nil
}

// NewAgent returns A1's agent: it calls the model named model up to
// AgentTurns times, with one tool, "ping", that answers at once.
func NewAgent(model string) *agent.Agent {
	ping := tools.MustNew("ping", "Ping", func(ctx context.Context, in struct {
		N int `json:"n"`
	}) (int, error) {
		return in.N + 1, nil
	}, nil)
	return &agent.Agent{Name: "bench-agent", Instructions: "Ping until done.", Model: model, Tools: []*tools.Tool{ping}, MaxTurns: AgentTurns}
}

// A1 runs n agent runs of AgentTurns turns each (a model call and a tool
// call per turn, each a durable activity) against the Env's model, one at
// a time; a sample is a run's duration divided by its turns.
func (env *Env) A1(ctx context.Context, n int, batch string) (Result, error) {
	return env.measure(ctx, "A1", fmt.Sprintf("%d-turn agent, model with no latency (sample: time per turn)", AgentTurns), func() ([]time.Duration, int, error) {
		samples := make([]time.Duration, 0, n)
		for i := range n {
			t0 := time.Now()
			res, err := env.runtime.Run(ctx, env.agent, agent.Input{Message: "go"}, &durable.StartOptions{ID: fmt.Sprintf("a1-%s-%d", batch, i)})
			if err != nil {
				return nil, 0, err
			}
			if res.Turns != AgentTurns || res.Status != agent.StatusCompleted {
				return nil, 0, fmt.Errorf("agent run ended after %d turns with %s", res.Turns, res.Status)
			}
			samples = append(samples, time.Since(t0)/AgentTurns)
		}
		return samples, n, nil
	})
}
