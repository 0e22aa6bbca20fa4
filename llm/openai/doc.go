// Package openai is an llm.Model on OpenAI's chat completions API, through
// github.com/sashabaranov/go-openai. It works with any server that speaks
// that API: OpenAI, Azure OpenAI, Ollama, vLLM, LM Studio and others.
//
//	m, err := openai.New(&openai.Config{
//		BaseURL: "http://localhost:11434/v1", // Ollama; default $OPENAI_BASE_URL or api.openai.com
//		Model:   "llama3.2",                  // default $OPENAI_MODEL or gpt-4o-mini
//	})
//	resp, err := m.Chat(ctx, &llm.Request{Messages: []llm.Message{llm.UserMessage("Hello")}})
//
// Every Config field is optional: APIKey, BaseURL and Model default to
// $OPENAI_API_KEY, $OPENAI_BASE_URL and $OPENAI_MODEL. Set Config.Azure
// for Azure OpenAI (BaseURL is then the resource endpoint).
//
// # What is sent
//
// Messages, tools (as functions, with their JSON Schema parameters and
// strict flag), tool choice, parallel_tool_calls, structured output
// (response_format of type json_schema), max_completion_tokens and
// temperature (a zero temperature is sent, not dropped). Tool calls come
// back in order, several in one reply when the model calls tools in
// parallel; usage includes prompt_tokens_details.cached_tokens.
//
// # Errors and retries
//
// Chat sends each request once and never retries: a model call is a
// durable activity, and the activity's retry policy decides. Every error is
// an *llm.Error, classified from the HTTP status and OpenAI's error code
// (429 rate_limited, 5xx server, 400 bad_request or, with code
// context_length_exceeded, its own kind, 401/403 auth, 404 not_found),
// from a client timeout or context deadline (timeout), or from a
// connection failure. The Retry-After header (seconds or an HTTP date, or
// OpenAI's retry-after-ms) is read from the failed response and returned
// by the error's RetryAfter method, which the durable engine honours.
// go-openai does not expose response headers on errors, so the model wraps
// the configured HTTP client and records each response's status and
// headers in the request's context.
package openai
