package openai_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/llm/llmtest"
	"github.com/keelhq/keel/llm/openai"
)

// A model on an OpenAI-compatible server; here a local llmtest server
// stands in for OpenAI, Ollama or vLLM.
func Example() {
	srv := llmtest.NewServer(nil)
	defer srv.Close()
	srv.Enqueue(
		llmtest.ToolCalls(llmtest.Call("kb_search", map[string]string{"query": "refund policy"})),
		llmtest.RateLimited("2"),
	)

	m, err := openai.New(&openai.Config{BaseURL: srv.URL(), APIKey: "sk-test", Model: "gpt-4o-mini"})
	if err != nil {
		panic(err)
	}
	req := &llm.Request{
		Messages: []llm.Message{llm.UserMessage("How do refunds work?")},
		Tools:    []llm.ToolSpec{{Name: "kb_search", Description: "Search the knowledge base."}},
	}
	resp, err := m.Chat(context.Background(), req)
	if err != nil {
		panic(err)
	}
	call := resp.Message.ToolCalls[0]
	fmt.Println(resp.FinishReason, call.Name, string(call.Arguments))

	_, err = m.Chat(context.Background(), req)
	var le *llm.Error
	if errors.As(err, &le) {
		fmt.Println(le.Kind, le.StatusCode, le.RetryAfter(), llm.IsRetryable(err))
	}
	// Output:
	// tool_calls kb_search {"query":"refund policy"}
	// rate_limited 429 2s true
}
