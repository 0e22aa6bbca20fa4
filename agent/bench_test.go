package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/keelhq/keel/internal/bench"
	"github.com/keelhq/keel/internal/testdb"
	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/llm/llmtest"
)

// The benchmarks measure the agent loop's own cost per turn (a model call
// and a tool call, each a durable activity) with a model that answers at
// once: in process (workload A1 of `keel bench`, the same code, package
// internal/bench), or through go-openai and a local llmtest server. The
// store is a SQLite file, or with KEEL_BENCH_STORE=postgres a fresh schema
// of TEST_DATABASE_URL, as in durable/bench_test.go:
//
//	go test -run '^$' -bench BenchmarkAgentTurns -benchtime 20x ./agent/
//	KEEL_BENCH_STORE=postgres TEST_DATABASE_URL=… go test -run '^$' -bench BenchmarkAgentTurns -benchtime 20x ./agent/

func BenchmarkAgentTurns(b *testing.B) {
	b.Run("inprocess", func(b *testing.B) { benchAgent(b, nil) })
	b.Run("llmtest", func(b *testing.B) {
		srv := llmtest.NewServer(&llmtest.Config{FallbackFunc: llmtest.ModelFallback(bench.TurnsModel{Turns: bench.AgentTurns})})
		b.Cleanup(srv.Close)
		benchAgent(b, openaiModel(b, srv))
	})
}

// benchAgent runs b.N agent runs of bench.AgentTurns turns against model
// (nil: bench.TurnsModel in process).
func benchAgent(b *testing.B, model llm.Model) {
	ctx := context.Background()
	opts := &bench.EnvOptions{Model: model}
	var (
		env *bench.Env
		err error
	)
	if os.Getenv("KEEL_BENCH_STORE") == "postgres" {
		env, err = bench.OpenPostgres(ctx, testdb.Postgres(b).Config(), opts)
	} else {
		env, err = bench.OpenSQLite(ctx, filepath.Join(b.TempDir(), "bench.db"), opts)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(env.Close)
	b.ResetTimer()
	r, err := env.A1(ctx, b.N, "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(r.P50*1000, "µs/turn")
	b.ReportMetric(r.TxPerWorkflow/bench.AgentTurns, "tx/turn")
	b.ReportMetric(r.RoundTripsPerWorkflow/bench.AgentTurns, "roundtrips/turn")
}
