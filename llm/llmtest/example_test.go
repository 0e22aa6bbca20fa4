package llmtest_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/llm/llmtest"
	"github.com/keelhq/keel/llm/offline"
	"github.com/keelhq/keel/llm/openai"
)

// Scripted replies first, then the offline model for whatever follows.
func Example() {
	srv := llmtest.NewServer(&llmtest.Config{FallbackFunc: llmtest.ModelFallback(offline.New(nil))})
	defer srv.Close()
	srv.Enqueue(llmtest.ServerError(), llmtest.Text("Scripted answer."))

	m, _ := openai.New(&openai.Config{BaseURL: srv.URL(), APIKey: "sk-test"})
	req := &llm.Request{Messages: []llm.Message{llm.UserMessage("Ping?")}}
	for range 3 {
		resp, err := m.Chat(context.Background(), req)
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(resp.Model+":", strings.SplitN(resp.Message.Content, "\n", 2)[0])
	}
	fmt.Println(srv.Calls(), "calls;", srv.LastRequest().Messages[0].Content)
	// Output:
	// error: llm: server (HTTP 500): The server had an error while processing your request. Sorry about that!
	// gpt-4o-mini: Scripted answer.
	// offline: [offline model] You asked: "Ping?"
	// 3 calls; Ping?
}
