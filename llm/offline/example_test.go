package offline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/llm/offline"
)

// The offline model calls the relevant tools with arguments taken from the
// conversation, then answers from their results.
func Example() {
	ctx := context.Background()
	m := offline.New(nil)
	req := &llm.Request{
		Messages: []llm.Message{
			llm.SystemMessage("You are a support agent. Reply to the customer by email."),
			llm.UserMessage("Hi, this is ada@example.com. How long do refunds take?"),
		},
		Tools: []llm.ToolSpec{
			{Name: "send_email", Parameters: json.RawMessage(`{"type":"object","properties":{"to":{"type":"string","format":"email"},"subject":{"type":"string"},"body":{"type":"string"}},"required":["to","subject","body"]}`)},
			{Name: "kb_search", Parameters: json.RawMessage(`{"type":"object","properties":{"query":{"type":"string"}},"required":["query"]}`)},
		},
	}
	for {
		resp, err := m.Chat(ctx, req)
		if err != nil {
			panic(err)
		}
		req.Messages = append(req.Messages, resp.Message)
		if len(resp.Message.ToolCalls) == 0 {
			fmt.Println(strings.SplitN(resp.Message.Content, "\n", 2)[0])
			break
		}
		for _, c := range resp.Message.ToolCalls {
			var args map[string]any
			_ = json.Unmarshal(c.Arguments, &args)
			fmt.Println(c.Name, args["to"], args["query"])
			req.Messages = append(req.Messages, llm.ToolResultMessage(c.ID, `{"answer":"Refunds take 5 days."}`))
		}
	}
	// Output:
	// kb_search <nil> How long do refunds take?
	// send_email ada@example.com <nil>
	// [offline model] Reply to: "Hi, this is ada@example.com."
}
