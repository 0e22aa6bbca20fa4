package openai_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/llm/llmtest"
	"github.com/keelhq/keel/llm/openai"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type testBundle struct {
	srv   *llmtest.Server
	model *openai.Model
}

func setup(t *testing.T, cfg *openai.Config) *testBundle {
	t.Helper()
	srv := llmtest.NewServer(&llmtest.Config{APIKey: "sk-test"})
	t.Cleanup(srv.Close)
	c := openai.Config{}
	if cfg != nil {
		c = *cfg
	}
	if c.BaseURL == "" {
		c.BaseURL = srv.URL()
	}
	if c.APIKey == "" {
		c.APIKey = "sk-test"
	}
	if c.Model == "" {
		c.Model = "gpt-4o-mini"
	}
	if c.HTTPClient == nil {
		// Its own transport, so that its idle connections close with the test.
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		c.HTTPClient = &http.Client{Transport: tr}
	}
	m, err := openai.New(&c)
	require.NoError(t, err)
	return &testBundle{srv: srv, model: m}
}

func hello() *llm.Request {
	return &llm.Request{Messages: []llm.Message{
		llm.SystemMessage("Be brief."),
		llm.UserMessage("Hello?"),
	}}
}

// body decodes the raw JSON body the server received.
func body(t *testing.T, r *llmtest.Request) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m))
	return m
}

func TestText(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.srv.Enqueue(llmtest.Text("Hi there.").WithUsage(llm.Usage{PromptTokens: 1200, CompletionTokens: 3, CachedPromptTokens: 1024}))

	resp, err := b.model.Chat(t.Context(), hello())
	require.NoError(t, err)
	require.Equal(t, "Hi there.", resp.Message.Content)
	require.Equal(t, llm.RoleAssistant, resp.Message.Role)
	require.Equal(t, llm.FinishStop, resp.FinishReason)
	require.Equal(t, "gpt-4o-mini", resp.Model)
	require.True(t, strings.HasPrefix(resp.ID, "chatcmpl-"), resp.ID)
	require.Equal(t, llm.Usage{PromptTokens: 1200, CompletionTokens: 3, CachedPromptTokens: 1024, TotalTokens: 1203}, resp.Usage)

	require.Equal(t, 1, b.srv.Calls())
	got := b.srv.LastRequest()
	require.Equal(t, "/v1/chat/completions", got.Path)
	require.Equal(t, "Bearer sk-test", got.Header.Get("Authorization"))
	require.Equal(t, "gpt-4o-mini", got.Model)
	require.Equal(t, []llmtest.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hello?"}}, got.Messages)
	require.Nil(t, got.Tools)
	require.Nil(t, got.ResponseFormat)
}

func TestRequestOptions(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.srv.Enqueue(llmtest.Text("ok"))
	zero := 0.0
	req := hello()
	req.Model = "gpt-4.1"
	req.MaxOutputTokens = 50
	req.Temperature = &zero
	_, err := b.model.Chat(t.Context(), req)
	require.NoError(t, err)
	got := b.srv.LastRequest()
	require.Equal(t, "gpt-4.1", got.Model, "the request's model overrides the default")
	require.Equal(t, 50, got.MaxCompletionTokens)
	require.NotNil(t, got.Temperature, "a zero temperature is sent, not dropped")
	require.InDelta(t, 0, *got.Temperature, 1e-30)
}

var lookupSchema = json.RawMessage(`{"type":"object","properties":{"email":{"type":"string"}},"required":["email"],"additionalProperties":false}`)

func TestToolCalls(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.srv.Enqueue(llmtest.ToolCalls(
		llmtest.Call("crm_lookup", map[string]string{"email": "ada@example.com"}),
		llm.ToolCall{ID: "call_b", Name: "kb_search", Arguments: json.RawMessage(`{"query":"refund"}`)},
		llmtest.Call("ticket_status", `{"ticket_id":"T-1"}`),
	))
	no := false
	req := &llm.Request{
		Messages: []llm.Message{
			llm.UserMessage("Refund for T-1?"),
			llm.AssistantMessage("Checking.", llm.ToolCall{ID: "call_0", Name: "crm_lookup", Arguments: json.RawMessage(`{"email":"x@example.com"}`)}),
			llm.ToolResultMessage("call_0", `{"error":"not found"}`),
		},
		Tools: []llm.ToolSpec{
			{Name: "crm_lookup", Description: "Find a customer.", Parameters: lookupSchema, Strict: true},
			{Name: "kb_search"},
			{Name: "ticket_status"},
		},
		ToolChoice:        "crm_lookup",
		ParallelToolCalls: &no,
	}
	resp, err := b.model.Chat(t.Context(), req)
	require.NoError(t, err)
	require.Equal(t, llm.FinishToolCalls, resp.FinishReason)
	require.Empty(t, resp.Message.Content)
	calls := resp.Message.ToolCalls
	require.Len(t, calls, 3, "parallel tool calls come back together")
	require.Equal(t, []string{"crm_lookup", "kb_search", "ticket_status"}, []string{calls[0].Name, calls[1].Name, calls[2].Name})
	require.JSONEq(t, `{"email":"ada@example.com"}`, string(calls[0].Arguments))
	require.JSONEq(t, `{"query":"refund"}`, string(calls[1].Arguments))
	require.JSONEq(t, `{"ticket_id":"T-1"}`, string(calls[2].Arguments))
	require.Equal(t, "call_b", calls[1].ID)
	require.NotEmpty(t, calls[0].ID)
	require.NotEqual(t, calls[0].ID, calls[2].ID)

	// The request on the wire.
	got := b.srv.LastRequest()
	require.Len(t, got.Tools, 3)
	require.Equal(t, "function", got.Tools[0].Type)
	require.Equal(t, "crm_lookup", got.Tools[0].Function.Name)
	require.Equal(t, "Find a customer.", got.Tools[0].Function.Description)
	require.True(t, got.Tools[0].Function.Strict)
	require.JSONEq(t, string(lookupSchema), string(got.Tools[0].Function.Parameters))
	require.JSONEq(t, `{"type":"object","properties":{}}`, string(got.Tools[1].Function.Parameters), "a tool without input gets an empty object schema")
	require.JSONEq(t, `{"type":"function","function":{"name":"crm_lookup"}}`, string(got.ToolChoice))
	require.NotNil(t, got.ParallelToolCalls)
	require.False(t, *got.ParallelToolCalls)

	raw := body(t, got)
	msgs := raw["messages"].([]any)
	assistant := msgs[1].(map[string]any)
	require.Equal(t, "assistant", assistant["role"])
	tc := assistant["tool_calls"].([]any)[0].(map[string]any)
	require.Equal(t, "call_0", tc["id"])
	require.Equal(t, "function", tc["type"])
	fn := tc["function"].(map[string]any)
	require.Equal(t, "crm_lookup", fn["name"])
	require.Equal(t, `{"email":"x@example.com"}`, fn["arguments"], "arguments travel as a string of JSON")
	toolMsg := msgs[2].(map[string]any)
	require.Equal(t, "tool", toolMsg["role"])
	require.Equal(t, "call_0", toolMsg["tool_call_id"])
	require.Equal(t, `{"error":"not found"}`, toolMsg["content"])
}

func TestInvalidToolArgumentsAreKept(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.srv.Enqueue(llmtest.ToolCalls(llm.ToolCall{ID: "c1", Name: "kb_search", Arguments: json.RawMessage(`"{\"query\": \"refund"`)}))
	resp, err := b.model.Chat(t.Context(), &llm.Request{
		Messages: []llm.Message{llm.UserMessage("refund?")},
		Tools:    []llm.ToolSpec{{Name: "kb_search"}},
	})
	require.NoError(t, err)
	var text string
	require.NoError(t, json.Unmarshal(resp.Message.ToolCalls[0].Arguments, &text), "invalid JSON is kept as a JSON string")
	require.Equal(t, `{"query": "refund`, text)
}

func TestStructuredOutput(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	schema := json.RawMessage(`{"type":"object","properties":{"risk":{"type":"string","enum":["low","high"]}},"required":["risk"],"additionalProperties":false}`)
	b.srv.Enqueue(llmtest.JSON(map[string]string{"risk": "high"}))
	req := hello()
	req.ResponseFormat = &llm.ResponseFormat{Name: "review", Description: "A risk rating.", Schema: schema, Strict: true}
	resp, err := b.model.Chat(t.Context(), req)
	require.NoError(t, err)
	require.JSONEq(t, `{"risk":"high"}`, resp.Message.Content)

	got := b.srv.LastRequest()
	require.NotNil(t, got.ResponseFormat)
	require.Equal(t, "json_schema", got.ResponseFormat.Type)
	require.NotNil(t, got.ResponseFormat.JSONSchema)
	require.Equal(t, "review", got.ResponseFormat.JSONSchema.Name)
	require.Equal(t, "A risk rating.", got.ResponseFormat.JSONSchema.Description)
	require.True(t, got.ResponseFormat.JSONSchema.Strict)
	require.JSONEq(t, string(schema), string(got.ResponseFormat.JSONSchema.Schema))
}

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	date := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		name       string
		reply      llmtest.Reply
		sentinel   error
		status     int
		retryable  bool
		retryAfter time.Duration // exact unless minRetryAfter
		minRA      time.Duration
	}{
		{name: "429 with Retry-After seconds", reply: llmtest.RateLimited("1"), sentinel: llm.ErrRateLimited, status: 429, retryable: true, retryAfter: time.Second},
		{name: "429 with Retry-After date", reply: llmtest.RateLimited(date), sentinel: llm.ErrRateLimited, status: 429, retryable: true, minRA: time.Second},
		{name: "429 with retry-after-ms", reply: llmtest.RateLimited("").WithHeader("retry-after-ms", "1500"), sentinel: llm.ErrRateLimited, status: 429, retryable: true, retryAfter: 1500 * time.Millisecond},
		{name: "429 without Retry-After", reply: llmtest.RateLimited(""), sentinel: llm.ErrRateLimited, status: 429, retryable: true},
		{name: "429 out of quota", reply: llmtest.Error(429, "insufficient_quota", "insufficient_quota", "You exceeded your current quota."), sentinel: llm.ErrQuotaExceeded, status: 429},
		{name: "500", reply: llmtest.ServerError(), sentinel: llm.ErrServer, status: 500, retryable: true},
		{name: "503 with a proxy's HTML body", reply: llmtest.Reply{Status: 503, RawBody: "<html>upstream unavailable</html>"}, sentinel: llm.ErrServer, status: 503, retryable: true},
		{name: "400", reply: llmtest.Error(400, "invalid_request_error", "", "Invalid 'messages'."), sentinel: llm.ErrBadRequest, status: 400},
		{name: "401", reply: llmtest.Error(401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided."), sentinel: llm.ErrAuth, status: 401},
		{name: "403", reply: llmtest.Error(403, "permission_error", "", "Forbidden."), sentinel: llm.ErrAuth, status: 403},
		{name: "404", reply: llmtest.Error(404, "invalid_request_error", "model_not_found", "The model does not exist."), sentinel: llm.ErrNotFound, status: 404},
		{name: "context length exceeded", reply: llmtest.ContextLengthExceeded(), sentinel: llm.ErrContextLengthExceeded, status: 400},
		{name: "200 that is not JSON", reply: llmtest.Reply{RawBody: "not json"}, sentinel: llm.ErrInvalidResponse, status: 200, retryable: true},
		{name: "200 without choices", reply: llmtest.Reply{RawBody: `{"id":"x","object":"chat.completion","choices":[]}`}, sentinel: llm.ErrInvalidResponse, status: 200, retryable: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.srv.Enqueue(tc.reply)
			_, err := b.model.Chat(t.Context(), hello())
			require.Error(t, err)
			require.ErrorIs(t, err, tc.sentinel)
			var le *llm.Error
			require.ErrorAs(t, err, &le)
			require.Equal(t, tc.status, le.StatusCode)
			require.Equal(t, tc.retryable, llm.IsRetryable(err))
			require.Equal(t, !tc.retryable, le.NonRetryable())
			if tc.minRA > 0 {
				require.Greater(t, le.RetryAfter(), tc.minRA)
				require.LessOrEqual(t, le.RetryAfter(), 3*time.Second)
			} else {
				require.Equal(t, tc.retryAfter, le.RetryAfter())
			}
			if tc.status != 200 {
				require.NotEmpty(t, le.RequestID)
			}
			require.Equal(t, 1, b.srv.Calls(), "the library does not retry")
		})
	}
}

func TestErrorCarriesProviderDetails(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.srv.Enqueue(llmtest.ContextLengthExceeded())
	_, err := b.model.Chat(t.Context(), hello())
	var le *llm.Error
	require.ErrorAs(t, err, &le)
	require.Equal(t, llm.KindContextLengthExceeded, le.Kind)
	require.Equal(t, "context_length_exceeded", le.Code)
	require.Equal(t, "invalid_request_error", le.Type)
	require.Contains(t, le.Message, "maximum context length")
	require.Contains(t, err.Error(), "llm: context_length_exceeded (HTTP 400): This model's maximum context length")
}

func TestClientTimeoutIsRetryable(t *testing.T) {
	t.Parallel()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	b := setup(t, &openai.Config{HTTPClient: &http.Client{Transport: tr, Timeout: 50 * time.Millisecond}})
	b.srv.Enqueue(llmtest.Text("too late").WithDelay(time.Minute))
	_, err := b.model.Chat(t.Context(), hello())
	require.ErrorIs(t, err, llm.ErrTimeout)
	require.True(t, llm.IsRetryable(err))
}

func TestContextDeadlineIsRetryable(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.srv.Enqueue(llmtest.Text("too late").WithDelay(time.Minute))
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := b.model.Chat(ctx, hello())
	require.ErrorIs(t, err, llm.ErrTimeout)
	require.True(t, llm.IsRetryable(err))
}

func TestCancelIsNotRetryable(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	srv := llmtest.NewServer(&llmtest.Config{FallbackFunc: func(ctx context.Context, _ *llmtest.Request) llmtest.Reply {
		close(arrived)
		<-ctx.Done() // held until the client gives up
		return llmtest.Text("too late")
	}})
	t.Cleanup(srv.Close)
	m, err := openai.New(&openai.Config{BaseURL: srv.URL(), APIKey: "k"})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-arrived
		cancel()
	}()
	_, err = m.Chat(ctx, hello())
	require.ErrorIs(t, err, llm.ErrCanceled)
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, llm.IsRetryable(err))
}

func TestConnectionRefusedIsRetryable(t *testing.T) {
	t.Parallel()
	srv := llmtest.NewServer(nil)
	url := srv.URL()
	srv.Close()
	m, err := openai.New(&openai.Config{BaseURL: url, APIKey: "k"})
	require.NoError(t, err)
	_, err = m.Chat(t.Context(), hello())
	require.ErrorIs(t, err, llm.ErrConnection)
	require.True(t, llm.IsRetryable(err))
}

func TestInvalidRequestIsNotSent(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, err := b.model.Chat(t.Context(), &llm.Request{Messages: []llm.Message{llm.ToolResultMessage("", "x")}})
	require.ErrorIs(t, err, llm.ErrBadRequest)
	require.False(t, llm.IsRetryable(err))
	require.Zero(t, b.srv.Calls())
}

func TestAzure(t *testing.T) {
	t.Parallel()
	srv := llmtest.NewServer(&llmtest.Config{APIKey: "azure-key"})
	t.Cleanup(srv.Close)
	srv.Enqueue(llmtest.Text("from azure"))
	base := strings.TrimSuffix(srv.URL(), "/v1")
	m, err := openai.New(&openai.Config{
		BaseURL: base,
		APIKey:  "azure-key",
		Model:   "gpt-4o",
		Azure:   &openai.Azure{DeploymentFunc: func(model string) string { return "prod-" + model }},
	})
	require.NoError(t, err)
	resp, err := m.Chat(t.Context(), hello())
	require.NoError(t, err)
	require.Equal(t, "from azure", resp.Message.Content)
	got := srv.LastRequest()
	require.Equal(t, "/openai/deployments/prod-gpt-4o/chat/completions?api-version="+openai.DefaultAzureAPIVersion, got.Path)
	require.Equal(t, "azure-key", got.Header.Get("api-key"))
}

// Not parallel: it sets environment variables.
func TestEnvironmentDefaults(t *testing.T) {
	srv := llmtest.NewServer(&llmtest.Config{APIKey: "sk-env"})
	t.Cleanup(srv.Close)
	srv.Enqueue(llmtest.Text("ok"))
	t.Setenv("OPENAI_BASE_URL", srv.URL())
	t.Setenv("OPENAI_API_KEY", "sk-env")
	t.Setenv("OPENAI_MODEL", "llama3.2")

	m, err := openai.New(&openai.Config{Organization: "org-1"})
	require.NoError(t, err)
	require.Equal(t, "llama3.2", m.Name())
	_, err = m.Chat(t.Context(), hello())
	require.NoError(t, err)
	got := srv.LastRequest()
	require.Equal(t, "llama3.2", got.Model)
	require.Equal(t, "Bearer sk-env", got.Header.Get("Authorization"))
	require.Equal(t, "org-1", got.Header.Get("OpenAI-Organization"))

	// Explicit settings win over the environment.
	c := (&openai.Config{Model: "gpt-4o", BaseURL: "http://127.0.0.1:1/v1"}).WithDefaults()
	require.Equal(t, "gpt-4o", c.Model)
	require.Equal(t, "http://127.0.0.1:1/v1", c.BaseURL)
	require.Equal(t, "sk-env", c.APIKey)

	// Without environment, the package defaults.
	t.Setenv("OPENAI_BASE_URL", "")
	t.Setenv("OPENAI_MODEL", "")
	c = (*openai.Config)(nil).WithDefaults()
	require.Equal(t, openai.DefaultBaseURL, c.BaseURL)
	require.Equal(t, openai.DefaultModel, c.Model)

	_, err = openai.New(&openai.Config{BaseURL: "not a url"})
	require.Error(t, err)
}

func TestServerFinishReasonStopWithToolCalls(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	r := llmtest.ToolCalls(llmtest.Call("kb_search", `{}`))
	r.FinishReason = llm.FinishStop // as some compatible servers answer
	b.srv.Enqueue(r)
	resp, err := b.model.Chat(t.Context(), &llm.Request{
		Messages: []llm.Message{llm.UserMessage("x")},
		Tools:    []llm.ToolSpec{{Name: "kb_search"}},
	})
	require.NoError(t, err)
	require.Equal(t, llm.FinishToolCalls, resp.FinishReason)
}

func TestErrorsSurviveJSON(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.srv.Enqueue(llmtest.RateLimited("2"))
	_, err := b.model.Chat(t.Context(), hello())
	var le *llm.Error
	require.True(t, errors.As(err, &le))
	data, jerr := json.Marshal(le)
	require.NoError(t, jerr)
	var back llm.Error
	require.NoError(t, json.Unmarshal(data, &back))
	require.Equal(t, 2*time.Second, back.RetryAfter())
	require.ErrorIs(t, &back, llm.ErrRateLimited)
}
