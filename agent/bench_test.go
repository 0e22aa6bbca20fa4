package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keelhq/keel/agent"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/internal/testdb"
	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/llm/llmtest"
	"github.com/keelhq/keel/tools"
)

// The benchmarks measure the agent loop's own cost per turn (a model call
// and a tool call, each a durable activity) with a model that answers at
// once: in process, or through go-openai and a local llmtest server. The
// store is a SQLite file, or with KEEL_BENCH_STORE=postgres a fresh schema
// of TEST_DATABASE_URL, as in durable/bench_test.go:
//
//	go test -run '^$' -bench BenchmarkAgentTurns -benchtime 20x ./agent/
//	KEEL_BENCH_STORE=postgres TEST_DATABASE_URL=… go test -run '^$' -bench BenchmarkAgentTurns -benchtime 20x ./agent/

const benchTurns = 10

// turnsModel asks for a "ping" tool call until the conversation holds
// benchTurns-1 answers, then answers with text. It decides from the
// request alone, so it needs no state.
type turnsModel struct{}

func (turnsModel) Name() string { return "gpt-4o-mini" }

func (turnsModel) Chat(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	answers := 0
	for _, m := range req.Messages {
		if m.Role == llm.RoleAssistant {
			answers++
		}
	}
	resp := &llm.Response{Model: "gpt-4o-mini", Usage: llm.Usage{PromptTokens: 100, CompletionTokens: 10, TotalTokens: 110}}
	if answers < benchTurns-1 {
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

func benchStore(b *testing.B) store.Store {
	if os.Getenv("KEEL_BENCH_STORE") == "postgres" {
		st, err := pgstore.New(context.Background(), testdb.Postgres(b), nil)
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	st, err := sqlitestore.Open(filepath.Join(b.TempDir(), "bench.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	return st
}

func BenchmarkAgentTurns(b *testing.B) {
	b.Run("inprocess", func(b *testing.B) { benchAgent(b, turnsModel{}) })
	b.Run("llmtest", func(b *testing.B) {
		srv := llmtest.NewServer(&llmtest.Config{FallbackFunc: llmtest.ModelFallback(turnsModel{})})
		b.Cleanup(srv.Close)
		benchAgent(b, openaiModel(b, srv))
	})
}

func benchAgent(b *testing.B, model llm.Model) {
	st := benchStore(b)
	e, err := durable.New(st, &durable.Config{CacheSize: 10000, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ping := tools.MustNew("ping", "Ping", func(ctx context.Context, in struct {
		N int `json:"n"`
	}) (int, error) {
		return in.N + 1, nil
	}, nil)
	a := &agent.Agent{Name: "bench", Instructions: "Ping until done.", Model: "gpt", Tools: []*tools.Tool{ping}, MaxTurns: benchTurns}
	rt, err := agent.NewRuntime(e, &agent.Config{Models: map[string]llm.Model{"gpt": model}})
	if err != nil {
		b.Fatal(err)
	}
	rt.MustRegister(a)
	e.NewWorker(nil)
	ctx := context.Background()
	if err := e.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = e.Stop(ctx)
		_ = st.Close()
	})
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		res, err := rt.Run(ctx, a, agent.Input{Message: "go"}, &durable.StartOptions{ID: fmt.Sprint("bench-", i)})
		if err != nil {
			b.Fatal(err)
		}
		if res.Turns != benchTurns || res.Status != agent.StatusCompleted {
			b.Fatalf("run ended after %d turns with %s", res.Turns, res.Status)
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(elapsed.Microseconds())/float64(b.N*benchTurns), "µs/turn")
}
