package bench_test

import (
	"context"
	"fmt"

	"github.com/keelhq/keel/internal/bench"
)

// Parse a --workloads list: names in any case and order come back in run
// order, with the floor F, which every run measures.
func ExampleParseWorkloads() {
	names, err := bench.ParseWorkloads("w2,w1")
	fmt.Println(names, err)
	// Output: [F W1 W2] <nil>
}

// Run one workload on a temporary SQLite file, as a benchmark does.
func ExampleEnv_W1() {
	ctx := context.Background()
	env, err := bench.Open(ctx, "", nil)
	if err != nil {
		panic(err)
	}
	defer env.Close()
	res, err := env.W1(ctx, 10)
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Workload, res.Workflows, len(res.Samples), res.TxPerWorkflow <= 5)
	// Output: W1 10 10 true
}
