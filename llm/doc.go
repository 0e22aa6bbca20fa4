// Package llm holds Keel's provider-neutral types for chat models: messages,
// tool specs and tool calls, structured output, token usage, classified
// errors and prices.
//
// A Model answers a Request with a Response. Implementations live in
// sub-packages: llm/openai talks to OpenAI or any OpenAI-compatible server
// (Azure OpenAI, Ollama, vLLM…), llm/offline is a deterministic local model
// for demos and tests, and llm/llmtest is an HTTP server speaking OpenAI's
// wire format for tests.
//
//	resp, err := model.Chat(ctx, &llm.Request{
//		Messages: []llm.Message{
//			llm.SystemMessage("You are a support agent."),
//			llm.UserMessage("Where is my refund?"),
//		},
//		Tools: []llm.ToolSpec{{Name: "crm_lookup", Parameters: schema}},
//	})
//
// # Storage
//
// Every type here is plain JSON with stable snake_case field names: a model
// call is a durable activity, and its Request and Response are stored in
// the run's history. Money is an integer (USD, micro-dollars), never a
// float.
//
// # Errors
//
// Models return *Error, classified by Kind. errors.Is matches a kind's
// sentinel:
//
//	if errors.Is(err, llm.ErrContextLengthExceeded) { /* shorten the conversation */ }
//
// Rate limits (429), server errors (5xx), timeouts, connection failures and
// invalid responses are retryable; bad requests (400, 422), authentication
// (401, 403), not found (404), an exceeded context length or quota and a
// content filter refusal are not. IsRetryable tells them apart. *Error has
// the methods the durable engine looks for on an activity's error:
// RetryAfter() time.Duration, the provider's Retry-After, and
// NonRetryable() bool. Models never retry by themselves; the activity that
// calls them does.
//
// # Cost
//
// Prices maps model names to a Price in USD per million input, cached
// input and output tokens. DefaultPrices has OpenAI's published prices for
// common models; Merge overrides or extends it, and ParsePrices or
// LoadPrices read a table from JSON:
//
//	prices := llm.DefaultPrices().Merge(custom)
//	cost, err := prices.Cost(resp.Model, resp.Usage) // e.g. $0.000150
package llm
