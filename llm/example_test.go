package llm_test

import (
	"errors"
	"fmt"

	"github.com/keelhq/keel/llm"
)

// Cost is computed exactly, in micro-dollars, from a response's usage.
func ExamplePrices_Cost() {
	prices := llm.DefaultPrices().Merge(llm.Prices{
		"llama3.2": {Input: 10 * llm.Cent, CachedInput: 5 * llm.Cent, Output: 40 * llm.Cent},
	})
	usage := llm.Usage{PromptTokens: 12_000, CachedPromptTokens: 8_000, CompletionTokens: 900, TotalTokens: 12_900}

	for _, model := range []string{"gpt-4o-mini-2024-07-18", "llama3.2", "offline"} {
		cost, err := prices.Cost(model, usage)
		fmt.Println(model, cost, err)
	}
	// Output:
	// gpt-4o-mini-2024-07-18 $0.001740 <nil>
	// llama3.2 $0.001160 <nil>
	// offline $0.000000 <nil>
}

// Price tables load from JSON in dollars per million tokens.
func ExampleParsePrices() {
	prices, err := llm.ParsePrices([]byte(`{"my-model": {"input": 0.5, "output": "1.50"}}`))
	if err != nil {
		panic(err)
	}
	fmt.Printf("%+v\n", prices["my-model"])
	// Output: {Input:$0.500000 CachedInput:$0.500000 Output:$1.500000}
}

// Errors are classified; errors.Is matches a kind and IsRetryable says
// whether another attempt can help.
func ExampleError() {
	for _, err := range []error{
		llm.HTTPError(429, "rate_limit_exceeded", "Rate limit reached."),
		llm.HTTPError(400, "context_length_exceeded", "This model's maximum context length is 128000 tokens."),
		fmt.Errorf("agent: %w", llm.HTTPError(503, "", "Service unavailable.")),
	} {
		fmt.Println(llm.IsRetryable(err), errors.Is(err, llm.ErrContextLengthExceeded), err)
	}
	// Output:
	// true false llm: rate_limited (HTTP 429): Rate limit reached.
	// false true llm: context_length_exceeded (HTTP 400): This model's maximum context length is 128000 tokens.
	// true false agent: llm: server (HTTP 503): Service unavailable.
}
