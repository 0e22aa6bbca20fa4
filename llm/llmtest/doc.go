// Package llmtest runs a local HTTP server that speaks OpenAI's chat
// completions wire format, with scripted replies, for tests of code that
// calls a model through llm/openai (or any OpenAI client).
//
//	srv := llmtest.NewServer(nil)
//	defer srv.Close()
//	srv.Enqueue(
//		llmtest.ToolCalls(llmtest.Call("crm_lookup", map[string]string{"email": "ada@example.com"})),
//		llmtest.RateLimited("1"),             // a 429 with Retry-After: 1
//		llmtest.Text("Your refund is on its way."),
//	)
//	m, _ := openai.New(&openai.Config{BaseURL: srv.URL(), APIKey: "test"})
//
// Each request takes the next scripted Reply: text, tool calls (several
// for parallel calls), structured JSON, an HTTP error with OpenAI's error
// body and optional headers, a malformed body, each optionally delayed.
// When the script is used up, Config.FallbackFunc answers; ModelFallback
// turns any llm.Model, such as the offline model, into one, for tests and
// benchmarks that need many replies at no latency. Without a fallback such
// a request gets a 400 that says so.
//
// The server counts requests and records each one decoded (Requests,
// LastRequest), with its path, headers and raw body, so tests can assert
// what was sent. It is safe for concurrent use, and since it is a real
// HTTP server on a loopback port, a worker in a child process reaches it
// through URL().
package llmtest
