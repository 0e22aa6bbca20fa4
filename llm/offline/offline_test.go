package offline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/llm/offline"
)

// validate fails t unless doc follows schema (formats asserted).
func validate(t *testing.T, schema, doc json.RawMessage) {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	require.NoError(t, err)
	require.NoError(t, c.AddResource("mem://schema.json", s))
	compiled, err := c.Compile("mem://schema.json")
	require.NoError(t, err)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	require.NoError(t, err, "not JSON: %s", doc)
	require.NoError(t, compiled.Validate(inst), "document %s does not follow schema %s", doc, schema)
}

func tool(name, desc, params string) llm.ToolSpec {
	return llm.ToolSpec{Name: name, Description: desc, Parameters: json.RawMessage(params)}
}

// supportTools are shaped like the ones tools.New generates, one with a
// $ref to $defs as invopop/jsonschema writes it.
var supportTools = []llm.ToolSpec{
	tool("send_email", "Send an email to the customer.", `{"type":"object","properties":{"to":{"type":"string","format":"email"},"subject":{"type":"string","minLength":1,"maxLength":120},"body":{"type":"string","minLength":1}},"required":["to","subject","body"],"additionalProperties":false}`),
	tool("update_ticket", "Set a ticket's status.", `{"type":"object","properties":{"ticket_id":{"type":"string","pattern":"^T-[0-9]+$"},"status":{"type":"string","enum":["open","pending","resolved"]},"note":{"type":"string"}},"required":["ticket_id","status"],"additionalProperties":false}`),
	tool("charge", "Charge or refund the customer's card.", `{"type":"object","properties":{"customer_id":{"type":"string","pattern":"^cus_"},"amount_cents":{"type":"integer","minimum":1,"description":"amount in cents"},"currency":{"type":"string","enum":["usd","eur"]},"idempotency_key":{"type":"string"}},"required":["customer_id","amount_cents","currency"],"additionalProperties":false}`),
	tool("crm_lookup", "Find a customer by email.", `{"$schema":"https://json-schema.org/draft/2020-12/schema","$ref":"#/$defs/LookupInput","$defs":{"LookupInput":{"type":"object","properties":{"email":{"type":"string","format":"email"}},"required":["email"],"additionalProperties":false}}}`),
	tool("kb_search", "Search the knowledge base.", `{"type":"object","properties":{"query":{"type":"string","minLength":3},"limit":{"type":"integer","minimum":1,"maximum":10}},"required":["query"],"additionalProperties":false}`),
}

const supportSystem = "You are a support agent. Look up the customer, search the knowledge base, " +
	"reply to the customer by email and update the ticket."

// results are what the fake tools return.
var results = map[string]string{
	"crm_lookup": `{"customer_id":"cus_42","name":"Ada Lovelace","email":"ada@example.com","plan":"pro"}`,
	"kb_search":  `[{"title":"Refund policy","body":"Late deliveries are refunded within 5 days."}]`,
}

// run drives the model like an agent loop: it answers every tool call
// from results and stops at the first reply without tool calls.
func run(t *testing.T, m llm.Model, req llm.Request) (replies []*llm.Response, final *llm.Response) {
	t.Helper()
	specs := map[string]llm.ToolSpec{}
	for _, s := range req.Tools {
		specs[s.Name] = s
	}
	for turn := 0; turn < 10; turn++ {
		resp, err := m.Chat(t.Context(), &req)
		require.NoError(t, err)
		require.Equal(t, llm.RoleAssistant, resp.Message.Role)
		replies = append(replies, resp)
		req.Messages = append(req.Messages, resp.Message)
		if len(resp.Message.ToolCalls) == 0 {
			require.Equal(t, llm.FinishStop, resp.FinishReason)
			return replies, resp
		}
		require.Equal(t, llm.FinishToolCalls, resp.FinishReason)
		for _, c := range resp.Message.ToolCalls {
			spec, ok := specs[c.Name]
			require.True(t, ok, "called a tool that was not offered: %s", c.Name)
			validate(t, spec.Parameters, c.Arguments)
			out, ok := results[c.Name]
			if !ok {
				out = `{"ok":true}`
			}
			req.Messages = append(req.Messages, llm.ToolResultMessage(c.ID, out))
		}
	}
	t.Fatal("the model did not finish in 10 turns")
	return nil, nil
}

func callNames(r *llm.Response) []string {
	var out []string
	for _, c := range r.Message.ToolCalls {
		out = append(out, c.Name)
	}
	return out
}

func args(t *testing.T, r *llm.Response, i int) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Message.ToolCalls[i].Arguments, &m))
	return m
}

func TestSupportAgentCallsToolsInOrder(t *testing.T) {
	t.Parallel()
	replies, final := run(t, offline.New(nil), llm.Request{
		Messages: []llm.Message{
			llm.SystemMessage(supportSystem + " Refunds are charges with a negative intent; charge only what the customer is owed."),
			llm.UserMessage("Ticket T-7 from ada@example.com: my parcel came late and I was promised a refund of $25.00. How do I get it?"),
		},
		Tools: supportTools,
	})
	require.Len(t, replies, 5)
	// Lookups first, together (parallel calls), in the order offered.
	require.Equal(t, []string{"crm_lookup", "kb_search"}, callNames(replies[0]))
	require.Equal(t, "ada@example.com", args(t, replies[0], 0)["email"])
	q := args(t, replies[0], 1)["query"].(string)
	require.Contains(t, q, "refund")
	require.NotContains(t, q, "ada@example.com", "identifiers are not search terms")
	// Then the actions, one at a time: money, message, record.
	require.Equal(t, []string{"charge"}, callNames(replies[1]))
	charge := args(t, replies[1], 0)
	require.Equal(t, "cus_42", charge["customer_id"], "taken from the CRM result")
	require.EqualValues(t, 2500, charge["amount_cents"])
	require.Equal(t, "usd", charge["currency"])
	require.Equal(t, []string{"send_email"}, callNames(replies[2]))
	email := args(t, replies[2], 0)
	require.Equal(t, "ada@example.com", email["to"])
	require.True(t, strings.HasPrefix(email["body"].(string), offline.Label))
	require.Contains(t, email["body"], "Ada Lovelace")
	require.Contains(t, email["body"], "Late deliveries are refunded within 5 days.")
	require.Equal(t, []string{"update_ticket"}, callNames(replies[3]))
	update := args(t, replies[3], 0)
	require.Equal(t, "T-7", update["ticket_id"])
	require.Equal(t, "resolved", update["status"])
	// The answer is labelled and uses the results.
	require.True(t, strings.HasPrefix(final.Message.Content, offline.Label), final.Message.Content)
	require.Contains(t, final.Message.Content, "Refund policy")
	require.Contains(t, final.Message.Content, "update_ticket (done)")
	// Tool call IDs are unique in the conversation.
	seen := map[string]bool{}
	for _, r := range replies {
		for _, c := range r.Message.ToolCalls {
			require.False(t, seen[c.ID], "duplicate ID %s", c.ID)
			seen[c.ID] = true
		}
	}
}

func TestGuardedActionsNeedAReason(t *testing.T) {
	t.Parallel()
	// No amount and no word about money, email or tickets: only lookups.
	replies, final := run(t, offline.New(nil), llm.Request{
		Messages: []llm.Message{
			llm.SystemMessage("Answer product questions from the knowledge base."),
			llm.UserMessage("Does the pro plan include SSO?"),
		},
		Tools: supportTools,
	})
	require.Len(t, replies, 2)
	require.Equal(t, []string{"crm_lookup", "kb_search"}, callNames(replies[0]))
	require.Contains(t, final.Message.Content, offline.Label)
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	req := &llm.Request{
		Messages: []llm.Message{
			llm.SystemMessage(supportSystem),
			llm.UserMessage("Ticket T-1 from bob@example.com: I was charged $12.50 twice."),
		},
		Tools: supportTools,
	}
	var outs []string
	for i := 0; i < 3; i++ {
		resp, err := offline.New(nil).Chat(context.Background(), req)
		require.NoError(t, err)
		b, err := json.Marshal(resp)
		require.NoError(t, err)
		outs = append(outs, string(b))
	}
	require.Equal(t, outs[0], outs[1])
	require.Equal(t, outs[0], outs[2])

	// The same holds for a whole loop, final answer included.
	_, a := run(t, offline.New(nil), *req)
	_, b := run(t, offline.New(nil), *req)
	require.Equal(t, a, b)
}

func TestNoToolsAnswers(t *testing.T) {
	t.Parallel()
	resp, err := offline.New(nil).Chat(t.Context(), &llm.Request{
		Messages: []llm.Message{llm.UserMessage("What is the capital of France?")},
	})
	require.NoError(t, err)
	require.Empty(t, resp.Message.ToolCalls)
	require.Equal(t, llm.FinishStop, resp.FinishReason)
	require.True(t, strings.HasPrefix(resp.Message.Content, offline.Label+" "))
	require.Contains(t, resp.Message.Content, "What is the capital of France?")
	require.Equal(t, "offline", resp.Model)
	require.Positive(t, resp.Usage.PromptTokens)
	require.Positive(t, resp.Usage.CompletionTokens)
	require.Equal(t, resp.Usage.PromptTokens+resp.Usage.CompletionTokens, resp.Usage.TotalTokens)
}

func TestSalesFollowUpComposesAnEmail(t *testing.T) {
	t.Parallel()
	msgs := []llm.Message{
		llm.SystemMessage("You are a sales assistant. Compose a follow-up email to the lead."),
		llm.UserMessage("Lead: grace@hopper.example asked about the enterprise plan for 40 seats after yesterday's demo."),
	}
	resp, err := offline.New(nil).Chat(t.Context(), &llm.Request{Messages: msgs})
	require.NoError(t, err)
	text := resp.Message.Content
	require.True(t, strings.HasPrefix(text, offline.Label))
	require.Contains(t, text, "To: grace@hopper.example")
	require.Contains(t, text, "Subject: Following up")
	require.Contains(t, text, "Hi Grace,")
	require.Contains(t, text, "next steps")

	// Given a tool to send it, it sends it once, then answers.
	send := tool("send_email", "Send an email.", `{"type":"object","properties":{"to":{"type":"array","items":{"type":"string","format":"email"},"minItems":1},"subject":{"type":"string"},"body":{"type":"string"}},"required":["to","subject","body"]}`)
	replies, _ := run(t, offline.New(nil), llm.Request{Messages: msgs, Tools: []llm.ToolSpec{send}})
	require.Len(t, replies, 2)
	require.Equal(t, []any{"grace@hopper.example"}, args(t, replies[0], 0)["to"])
}

var memoSchema = json.RawMessage(`{
	"type": "object",
	"properties": {
		"summary": {"type": "string"},
		"risk_level": {"type": "string", "enum": ["low", "medium", "high"]},
		"issues": {"type": "array", "items": {
			"type": "object",
			"properties": {
				"clause": {"type": "string"},
				"severity": {"type": "string", "enum": ["low", "medium", "high"]},
				"note": {"type": "string"}
			},
			"required": ["clause", "severity", "note"],
			"additionalProperties": false
		}},
		"recommendation": {"type": "string", "enum": ["approve", "negotiate", "reject"]},
		"reviewed_on": {"type": ["string", "null"], "format": "date"}
	},
	"required": ["summary", "risk_level", "issues", "recommendation", "reviewed_on"],
	"additionalProperties": false
}`)

func TestLegalReviewerStructuredMemo(t *testing.T) {
	t.Parallel()
	contract := "Review this contract dated 2025-03-01. The supplier accepts unlimited liability for data loss. " +
		"The agreement renews automatically every year. Either party may terminate with 30 days notice. " +
		"Payment is due in 30 days."
	req := &llm.Request{
		Messages: []llm.Message{
			llm.SystemMessage("You are a legal reviewer. Draft a memo on the contract."),
			llm.UserMessage(contract),
		},
		ResponseFormat: &llm.ResponseFormat{Name: "memo", Schema: memoSchema, Strict: true},
	}
	resp, err := offline.New(nil).Chat(t.Context(), req)
	require.NoError(t, err)
	out := json.RawMessage(resp.Message.Content)
	validate(t, memoSchema, out)

	var memo struct {
		Summary        string `json:"summary"`
		RiskLevel      string `json:"risk_level"`
		Recommendation string `json:"recommendation"`
		ReviewedOn     string `json:"reviewed_on"`
		Issues         []struct{ Clause, Severity, Note string }
	}
	require.NoError(t, json.Unmarshal(out, &memo))
	require.Equal(t, "high", memo.RiskLevel)
	require.Equal(t, "negotiate", memo.Recommendation)
	require.Equal(t, "2025-03-01", memo.ReviewedOn)
	require.True(t, strings.HasPrefix(memo.Summary, offline.Label), "free text is labelled")
	require.Len(t, memo.Issues, 3)
	require.Contains(t, memo.Issues[0].Clause, "unlimited liability")
	require.Equal(t, "high", memo.Issues[0].Severity)
	require.Contains(t, memo.Issues[1].Clause, "renews automatically")
	require.Contains(t, memo.Issues[2].Clause, "terminate")

	// Without a response format, the memo is text.
	req.ResponseFormat = nil
	resp, err = offline.New(nil).Chat(t.Context(), req)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(resp.Message.Content, offline.Label+" MEMORANDUM"))
	require.Contains(t, resp.Message.Content, "unlimited liability")
	require.Contains(t, resp.Message.Content, "risk level high")
}

func TestDealDeskCallsSubAgentsInParallel(t *testing.T) {
	t.Parallel()
	subAgent := `{"type":"object","properties":{"task":{"type":"string","minLength":1}},"required":["task"],"additionalProperties":false}`
	replies, final := run(t, offline.New(nil), llm.Request{
		Messages: []llm.Message{
			llm.SystemMessage("You are the deal desk. Ask the specialists, then decide."),
			llm.UserMessage("Acme wants a 30% discount on a 3-year deal with unlimited liability."),
		},
		Tools: []llm.ToolSpec{
			tool("legal_reviewer", "A legal reviewer agent.", subAgent),
			tool("pricing_analyst", "A pricing agent.", subAgent),
		},
	})
	require.Len(t, replies, 2)
	require.Equal(t, []string{"legal_reviewer", "pricing_analyst"}, callNames(replies[0]))
	require.Contains(t, args(t, replies[0], 0)["task"], "30% discount")
	require.Contains(t, final.Message.Content, "Deal desk summary")
	require.Contains(t, final.Message.Content, "Escalate for review")
}

func TestToolChoice(t *testing.T) {
	t.Parallel()
	m := offline.New(nil)
	base := llm.Request{
		Messages: []llm.Message{
			llm.SystemMessage(supportSystem),
			llm.UserMessage("Ticket T-3 from eve@example.com: where is my order?"),
		},
		Tools: supportTools,
	}

	none := base
	none.ToolChoice = llm.ToolChoiceNone
	resp, err := m.Chat(t.Context(), &none)
	require.NoError(t, err)
	require.Empty(t, resp.Message.ToolCalls)

	named := base
	named.ToolChoice = "update_ticket"
	resp, err = m.Chat(t.Context(), &named)
	require.NoError(t, err)
	require.Equal(t, []string{"update_ticket"}, callNames(resp))

	serial := base
	serial.ParallelToolCalls = new(bool)
	replies, _ := run(t, m, serial)
	for _, r := range replies {
		require.LessOrEqual(t, len(r.Message.ToolCalls), 1)
	}
	require.Equal(t, []string{"crm_lookup"}, callNames(replies[0]))
	require.Equal(t, []string{"kb_search"}, callNames(replies[1]))
}

func TestUsageAndCost(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("The customer wrote a long message. ", 200)
	req := &llm.Request{
		Messages: []llm.Message{
			llm.SystemMessage(supportSystem),
			llm.UserMessage(long),
			llm.AssistantMessage("", llm.ToolCall{ID: "c1", Name: "kb_search", Arguments: json.RawMessage(`{"query":"x"}`)}),
			llm.ToolResultMessage("c1", `{"hits":0}`),
		},
		Tools: supportTools,
	}
	resp, err := offline.New(nil).Chat(t.Context(), req)
	require.NoError(t, err)
	u := resp.Usage
	require.Greater(t, u.PromptTokens, int64(1024))
	require.Positive(t, u.CachedPromptTokens, "the resent prefix of a long prompt counts as cached")
	require.Zero(t, u.CachedPromptTokens%128)
	require.Less(t, u.CachedPromptTokens, u.PromptTokens)

	prices := llm.DefaultPrices()
	cost, err := prices.Cost(resp.Model, u)
	require.NoError(t, err)
	require.Zero(t, cost, "the offline model is free")

	// Named after a priced model, its usage has a cost.
	resp, err = offline.New(&offline.Config{Name: "gpt-4o-mini"}).Chat(t.Context(), req)
	require.NoError(t, err)
	require.Equal(t, "gpt-4o-mini", resp.Model)
	cost, err = prices.Cost(resp.Model, resp.Usage)
	require.NoError(t, err)
	require.Equal(t, prices["gpt-4o-mini"].Cost(u), cost)
	require.Positive(t, cost)
}

func TestMaxOutputTokensTruncates(t *testing.T) {
	t.Parallel()
	resp, err := offline.New(nil).Chat(t.Context(), &llm.Request{
		Messages:        []llm.Message{llm.UserMessage("Tell me everything about refunds.")},
		MaxOutputTokens: 5,
	})
	require.NoError(t, err)
	require.Equal(t, llm.FinishLength, resp.FinishReason)
	require.Equal(t, offline.Label+" You", resp.Message.Content)
}

func TestErrors(t *testing.T) {
	t.Parallel()
	m := offline.New(nil)
	_, err := m.Chat(t.Context(), &llm.Request{})
	require.ErrorIs(t, err, llm.ErrBadRequest)
	require.False(t, llm.IsRetryable(err))

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = m.Chat(ctx, &llm.Request{Messages: []llm.Message{llm.UserMessage("hi")}})
	require.ErrorIs(t, err, llm.ErrCanceled)
	require.True(t, errors.Is(err, context.Canceled))
}

// Arguments follow schemas that use the less common keywords too.
func TestSynthesizedArgumentsFollowSchemas(t *testing.T) {
	t.Parallel()
	schemas := map[string]string{
		"lookup_order": `{"type":"object","properties":{"order_id":{"type":"string","pattern":"^ORD-[0-9]{4}$"},"include_items":{"type":"boolean","default":true}},"required":["order_id","include_items"]}`,
		"get_weather":  `{"type":"object","properties":{"city":{"type":"string","examples":["Paris"]},"unit":{"enum":["celsius","fahrenheit"]},"days":{"type":"integer","minimum":1,"maximum":7,"default":3}},"required":["city","unit","days"]}`,
		"find_slots": `{"type":"object","properties":{"day":{"type":"string","format":"date"},"at":{"type":"string","format":"date-time"},
			"link":{"type":"string","format":"uri"},"ref":{"type":"string","format":"uuid"},"duration":{"type":"number","exclusiveMinimum":0,"multipleOf":0.5}},
			"required":["day","at","link","ref","duration"]}`,
		"search_docs": `{"type":"object","properties":{"filters":{"type":"object","properties":{"tags":{"type":"array","items":{"type":"string","minLength":2},"minItems":2,"uniqueItems":true},"kind":{"const":"article"}},"required":["tags","kind"]},
			"q":{"anyOf":[{"type":"null"},{"type":"string","maxLength":20}]}},"required":["filters","q"]}`,
		"check_status": `{"allOf":[{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]},{"properties":{"b":{"type":"integer"}},"required":["b"]}]}`,
		"list_things":  `{"type":"object"}`,
		"get_time":     ``,
	}
	var tools []llm.ToolSpec
	for _, name := range []string{"lookup_order", "get_weather", "find_slots", "search_docs", "check_status", "list_things", "get_time"} {
		tools = append(tools, tool(name, "", schemas[name]))
	}
	resp, err := offline.New(nil).Chat(t.Context(), &llm.Request{
		Messages: []llm.Message{llm.UserMessage("Where is ORD-1234? See https://shop.example/orders on 2025-05-02, in Fahrenheit please.")},
		Tools:    tools,
	})
	require.NoError(t, err)
	require.Len(t, resp.Message.ToolCalls, len(tools))
	got := map[string]json.RawMessage{}
	for _, c := range resp.Message.ToolCalls {
		got[c.Name] = c.Arguments
		schema := schemas[c.Name]
		if schema == "" {
			schema = `{"type":"object","maxProperties":0}`
		}
		validate(t, json.RawMessage(schema), c.Arguments)
	}
	require.JSONEq(t, `{"order_id":"ORD-1234","include_items":true}`, string(got["lookup_order"]))
	require.JSONEq(t, `{"city":"Paris","unit":"fahrenheit","days":3}`, string(got["get_weather"]))
	var slots map[string]any
	require.NoError(t, json.Unmarshal(got["find_slots"], &slots))
	require.Equal(t, "2025-05-02", slots["day"])
	require.Equal(t, "https://shop.example/orders", slots["link"])
}

func TestHandoffOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	tools := []llm.ToolSpec{
		tool("transfer_to_billing", "Hand the conversation to the billing agent.", `{"type":"object","properties":{"message":{"type":"string"}},"required":["message"]}`),
		tool("kb_search", "", `{"type":"object","properties":{"query":{"type":"string"}},"required":["query"]}`),
	}
	ask := func(q string) []string {
		resp, err := offline.New(nil).Chat(t.Context(), &llm.Request{Messages: []llm.Message{llm.UserMessage(q)}, Tools: tools})
		require.NoError(t, err)
		return callNames(resp)
	}
	require.Equal(t, []string{"kb_search"}, ask("How do I reset my password?"))
	// The lookup comes first; the handoff follows in the next reply.
	replies, _ := run(t, offline.New(nil), llm.Request{
		Messages: []llm.Message{llm.UserMessage("I have a billing question about my invoice.")},
		Tools:    tools,
	})
	require.Equal(t, []string{"kb_search"}, callNames(replies[0]))
	require.Equal(t, []string{"transfer_to_billing"}, callNames(replies[1]))
	require.Equal(t, "I have a billing question about my invoice.", args(t, replies[1], 0)["message"])
}

func TestRequiredToolChoiceAlwaysCalls(t *testing.T) {
	t.Parallel()
	search := tool("kb_search", "", `{"type":"object","properties":{"query":{"type":"string"}},"required":["query"]}`)
	resp, err := offline.New(nil).Chat(t.Context(), &llm.Request{
		Messages: []llm.Message{
			llm.UserMessage("refunds?"),
			llm.AssistantMessage("", llm.ToolCall{ID: "c1", Name: "kb_search", Arguments: json.RawMessage(`{"query":"refunds"}`)}),
			llm.ToolResultMessage("c1", "[]"),
		},
		Tools:      []llm.ToolSpec{search},
		ToolChoice: llm.ToolChoiceRequired,
	})
	require.NoError(t, err)
	require.Equal(t, []string{"kb_search"}, callNames(resp))
}
