package llmtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/llm/llmtest"
	"github.com/keelhq/keel/llm/offline"
	"github.com/keelhq/keel/llm/openai"
)

// childURLEnv makes the test binary act as a worker process that calls
// the server whose URL it names.
const childURLEnv = "LLMTEST_CHILD_URL"

func TestMain(m *testing.M) {
	if url := os.Getenv(childURLEnv); url != "" {
		os.Exit(childMain(url))
	}
	goleak.VerifyTestMain(m)
}

// childMain is the child process: one model call through go-openai.
func childMain(url string) int {
	m, err := openai.New(&openai.Config{BaseURL: url, APIKey: "sk-child", Model: "gpt-4o-mini"})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	resp, err := m.Chat(context.Background(), &llm.Request{Messages: []llm.Message{llm.UserMessage("from the child")}})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("reply:", resp.Message.Content)
	return 0
}

// post sends body to the server's chat completions endpoint.
func post(t *testing.T, srv *llmtest.Server, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL()+"/chat/completions", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(data, &out), "body: %s", data)
	return resp.StatusCode, resp.Header, out
}

func newServer(t *testing.T, cfg *llmtest.Config) *llmtest.Server {
	t.Helper()
	srv := llmtest.NewServer(cfg)
	t.Cleanup(func() {
		srv.Close()
		http.DefaultClient.CloseIdleConnections()
	})
	return srv
}

const simpleBody = `{"model":"gpt-4o","messages":[{"role":"user","content":"hello there"}]}`

func TestCompletionWireFormat(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	srv.Enqueue(llmtest.ToolCalls(
		llmtest.Call("a", map[string]int{"n": 1}),
		llmtest.Call("b", `{"m":2}`),
	).WithUsage(llm.Usage{PromptTokens: 2000, CompletionTokens: 20, CachedPromptTokens: 1920}))

	status, header, out := post(t, srv, simpleBody)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "application/json", header.Get("Content-Type"))
	require.NotEmpty(t, header.Get("X-Request-Id"))
	require.Regexp(t, `^chatcmpl-`, out["id"])
	require.Equal(t, "chat.completion", out["object"])
	require.Equal(t, "gpt-4o", out["model"])
	require.IsType(t, float64(0), out["created"])
	choices := out["choices"].([]any)
	require.Len(t, choices, 1)
	choice := choices[0].(map[string]any)
	require.EqualValues(t, 0, choice["index"])
	require.Equal(t, "tool_calls", choice["finish_reason"])
	msg := choice["message"].(map[string]any)
	require.Equal(t, "assistant", msg["role"])
	require.Nil(t, msg["content"], "content is null when the reply only calls tools")
	calls := msg["tool_calls"].([]any)
	require.Len(t, calls, 2)
	first := calls[0].(map[string]any)
	require.Regexp(t, `^call_`, first["id"])
	require.Equal(t, "function", first["type"])
	require.Equal(t, map[string]any{"name": "a", "arguments": `{"n":1}`}, first["function"])
	require.Equal(t, map[string]any{"name": "b", "arguments": `{"m":2}`}, calls[1].(map[string]any)["function"])
	usage := out["usage"].(map[string]any)
	require.EqualValues(t, 2000, usage["prompt_tokens"])
	require.EqualValues(t, 20, usage["completion_tokens"])
	require.EqualValues(t, 2020, usage["total_tokens"])
	require.EqualValues(t, 1920, usage["prompt_tokens_details"].(map[string]any)["cached_tokens"])

	// Default usage is an estimate at four characters a token.
	srv.Enqueue(llmtest.Text("12345678"))
	_, _, out = post(t, srv, simpleBody)
	usage = out["usage"].(map[string]any)
	require.EqualValues(t, 2, usage["completion_tokens"])
	require.EqualValues(t, 4, usage["prompt_tokens"]) // "hello there": 3, plus 1 for the message
	msg = out["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)
	require.Equal(t, "12345678", msg["content"])
	require.Equal(t, "stop", out["choices"].([]any)[0].(map[string]any)["finish_reason"])
}

func TestErrorWireFormat(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	srv.Enqueue(llmtest.RateLimited("7"), llmtest.ServerError())

	status, header, out := post(t, srv, simpleBody)
	require.Equal(t, http.StatusTooManyRequests, status)
	require.Equal(t, "7", header.Get("Retry-After"))
	require.Equal(t, map[string]any{
		"message": "Rate limit reached for requests. Please try again later.",
		"type":    "requests", "param": nil, "code": "rate_limit_exceeded",
	}, out["error"])

	status, _, out = post(t, srv, simpleBody)
	require.Equal(t, http.StatusInternalServerError, status)
	require.Nil(t, out["error"].(map[string]any)["code"], "no code is sent as null")

	// Nothing left and no fallback: a clear, non-retryable error.
	status, _, out = post(t, srv, simpleBody)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, out["error"].(map[string]any)["message"], "no scripted reply left")

	status, _, _ = post(t, srv, `{"model":`)
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, 4, srv.Calls(), "every request is counted, rejected ones too")
}

func TestAuthAndRouting(t *testing.T) {
	t.Parallel()
	srv := newServer(t, &llmtest.Config{APIKey: "sk-right"})
	srv.Enqueue(llmtest.Text("never sent"))
	status, _, out := post(t, srv, simpleBody)
	require.Equal(t, http.StatusUnauthorized, status)
	require.Equal(t, "invalid_api_key", out["error"].(map[string]any)["code"])
	require.Equal(t, 1, srv.Pending(), "a refused request takes no reply")

	resp, err := http.Get(srv.URL() + "/models")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestRecordsRequestsConcurrently(t *testing.T) {
	t.Parallel()
	srv := newServer(t, &llmtest.Config{FallbackFunc: llmtest.ModelFallback(offline.New(nil))})
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":"question %d"}]}`, i)
			resp, err := http.Post(srv.URL()+"/chat/completions", "application/json", bytes.NewBufferString(body))
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, n, srv.Calls())
	reqs := srv.Requests()
	require.Len(t, reqs, n)
	seen := map[string]bool{}
	for _, r := range reqs {
		require.Len(t, r.Messages, 1)
		seen[r.Messages[0].Content] = true
		require.JSONEq(t, fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":%q}]}`, r.Messages[0].Content), string(r.Body))
	}
	require.Len(t, seen, n)
}

func TestDecodesContentParts(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	srv.Enqueue(llmtest.Text("ok"))
	post(t, srv, `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}}]}]}`)
	r := srv.LastRequest()
	require.Equal(t, "a\nb", r.Messages[0].Content)
	lr := r.LLM()
	require.Equal(t, llm.ToolCall{ID: "c", Name: "f", Arguments: json.RawMessage(`{"x":1}`)}, lr.Messages[1].ToolCalls[0])
}

// The offline model behind the server answers through go-openai exactly
// as it answers in process.
func TestOfflineFallbackThroughTheWire(t *testing.T) {
	t.Parallel()
	srv := newServer(t, &llmtest.Config{FallbackFunc: llmtest.ModelFallback(offline.New(nil))})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	m, err := openai.New(&openai.Config{BaseURL: srv.URL(), APIKey: "k", Model: "gpt-4o-mini", HTTPClient: &http.Client{Transport: tr}})
	require.NoError(t, err)
	req := &llm.Request{
		Messages: []llm.Message{
			llm.SystemMessage("You are a support agent."),
			llm.UserMessage("Ticket T-9 from ada@example.com: how do I reset my password?"),
		},
		Tools: []llm.ToolSpec{
			{Name: "crm_lookup", Parameters: json.RawMessage(`{"type":"object","properties":{"email":{"type":"string"}},"required":["email"]}`)},
			{Name: "kb_search", Parameters: json.RawMessage(`{"type":"object","properties":{"query":{"type":"string"}},"required":["query"]}`)},
		},
	}
	viaWire, err := m.Chat(t.Context(), req)
	require.NoError(t, err)
	direct, err := offline.New(nil).Chat(t.Context(), req)
	require.NoError(t, err)
	require.Equal(t, direct.Message, viaWire.Message)
	require.Equal(t, direct.Usage, viaWire.Usage)
	require.Equal(t, direct.FinishReason, viaWire.FinishReason)
	require.Equal(t, "offline", viaWire.Model)
}

// A worker in a child process reaches a server that lives in the parent.
func TestChildProcessUsesParentServer(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	srv.Enqueue(llmtest.Text("hello, child"))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childURLEnv+"="+srv.URL())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "reply: hello, child")
	require.Equal(t, 1, srv.Calls())
	require.Equal(t, "from the child", srv.LastRequest().Messages[0].Content)
	require.Equal(t, "Bearer sk-child", srv.LastRequest().Header.Get("Authorization"))
}
