package llm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/llm"
)

// The JSON field names are part of stored histories: this test pins them.
func TestJSONFieldNames(t *testing.T) {
	t.Parallel()
	temp := 0.2
	yes := true
	req := llm.Request{
		Model: "gpt-4o",
		Messages: []llm.Message{
			llm.SystemMessage("sys"),
			llm.AssistantMessage("", llm.ToolCall{ID: "c1", Name: "f", Arguments: json.RawMessage(`{"a":1}`)}),
			llm.ToolResultMessage("c1", "ok"),
		},
		Tools:             []llm.ToolSpec{{Name: "f", Description: "d", Parameters: json.RawMessage(`{"type":"object"}`), Strict: true}},
		ToolChoice:        "auto",
		ParallelToolCalls: &yes,
		ResponseFormat:    &llm.ResponseFormat{Name: "n", Schema: json.RawMessage(`{"type":"object"}`), Strict: true},
		MaxOutputTokens:   10,
		Temperature:       &temp,
	}
	b, err := json.Marshal(req)
	require.NoError(t, err)
	require.JSONEq(t, `{
		"model":"gpt-4o",
		"messages":[
			{"role":"system","content":"sys"},
			{"role":"assistant","tool_calls":[{"id":"c1","name":"f","arguments":{"a":1}}]},
			{"role":"tool","content":"ok","tool_call_id":"c1"}],
		"tools":[{"name":"f","description":"d","parameters":{"type":"object"},"strict":true}],
		"tool_choice":"auto",
		"parallel_tool_calls":true,
		"response_format":{"name":"n","schema":{"type":"object"},"strict":true},
		"max_output_tokens":10,
		"temperature":0.2}`, string(b))
	var back llm.Request
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, req, back)

	resp := llm.Response{
		ID: "r1", Model: "gpt-4o", FinishReason: llm.FinishToolCalls,
		Message: llm.AssistantMessage("hi"),
		Usage:   llm.Usage{PromptTokens: 10, CompletionTokens: 2, CachedPromptTokens: 4, TotalTokens: 12},
	}
	b, err = json.Marshal(resp)
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"r1","model":"gpt-4o","message":{"role":"assistant","content":"hi"},"finish_reason":"tool_calls",
		"usage":{"prompt_tokens":10,"completion_tokens":2,"cached_prompt_tokens":4,"total_tokens":12}}`, string(b))

	e := &llm.Error{Kind: llm.KindRateLimited, StatusCode: 429, Code: "rate_limit_exceeded", Type: "requests",
		Message: "slow down", RetryDelay: time.Second, RequestID: "req_1"}
	b, err = json.Marshal(e)
	require.NoError(t, err)
	require.JSONEq(t, `{"kind":"rate_limited","status_code":429,"code":"rate_limit_exceeded","type":"requests",
		"message":"slow down","retry_delay":1000000000,"request_id":"req_1"}`, string(b))
}

func TestValidate(t *testing.T) {
	t.Parallel()
	user := []llm.Message{llm.UserMessage("hi")}
	obj := json.RawMessage(`{"type":"object"}`)
	for name, tc := range map[string]struct {
		req  *llm.Request
		want string
	}{
		"ok":                  {req: &llm.Request{Messages: user, Tools: []llm.ToolSpec{{Name: "f", Parameters: obj}}, ToolChoice: "f"}},
		"nil":                 {req: nil, want: "nil request"},
		"no messages":         {req: &llm.Request{}, want: "no messages"},
		"unnamed tool":        {req: &llm.Request{Messages: user, Tools: []llm.ToolSpec{{}}}, want: "tool 0 has no name"},
		"duplicate tool":      {req: &llm.Request{Messages: user, Tools: []llm.ToolSpec{{Name: "f"}, {Name: "f"}}}, want: `tool "f" is listed twice`},
		"bad parameters":      {req: &llm.Request{Messages: user, Tools: []llm.ToolSpec{{Name: "f", Parameters: json.RawMessage(`[1]`)}}}, want: "not a JSON object"},
		"unknown tool choice": {req: &llm.Request{Messages: user, ToolChoice: "g"}, want: `tool choice "g" names no offered tool`},
		"required, no tools":  {req: &llm.Request{Messages: user, ToolChoice: "required"}, want: "without tools"},
		"format without name": {req: &llm.Request{Messages: user, ResponseFormat: &llm.ResponseFormat{Schema: obj}}, want: "no name"},
		"format bad schema":   {req: &llm.Request{Messages: user, ResponseFormat: &llm.ResponseFormat{Name: "n", Schema: json.RawMessage(`"x"`)}}, want: "schema is not a JSON object"},
		"call without ID":     {req: &llm.Request{Messages: []llm.Message{llm.AssistantMessage("", llm.ToolCall{Name: "f"})}}, want: "without ID"},
		"call bad arguments":  {req: &llm.Request{Messages: []llm.Message{llm.AssistantMessage("", llm.ToolCall{ID: "1", Name: "f", Arguments: json.RawMessage(`{`)})}}, want: "not JSON"},
		"result without ID":   {req: &llm.Request{Messages: []llm.Message{llm.ToolResultMessage("", "x")}}, want: "without tool call ID"},
		"unknown role":        {req: &llm.Request{Messages: []llm.Message{{Role: "robot"}}}, want: `unknown role "robot"`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := tc.req.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, llm.ErrBadRequest)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestArgumentsFromText(t *testing.T) {
	t.Parallel()
	require.Equal(t, `{"a":1}`, string(llm.ArgumentsFromText(`{"a":1}`)))
	require.Equal(t, `{}`, string(llm.ArgumentsFromText("  ")))
	raw := llm.ArgumentsFromText(`{"a":`)
	var s string
	require.NoError(t, json.Unmarshal(raw, &s))
	require.Equal(t, `{"a":`, s)
}

func TestUsageAddAndEstimate(t *testing.T) {
	t.Parallel()
	u := llm.Usage{PromptTokens: 10, CompletionTokens: 5, CachedPromptTokens: 2, TotalTokens: 15}
	require.Equal(t, llm.Usage{PromptTokens: 20, CompletionTokens: 10, CachedPromptTokens: 4, TotalTokens: 30}, u.Add(u))
	require.Equal(t, int64(0), llm.EstimateTokens(""))
	require.Equal(t, int64(1), llm.EstimateTokens("abcd"))
	require.Equal(t, int64(2), llm.EstimateTokens("abcde"))
	require.Equal(t, int64(1), llm.EstimateTokens("héll"), "characters, not bytes")
}

func TestHTTPErrorClassification(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status    int
		code, msg string
		kind      llm.Kind
		retryable bool
	}{
		{429, "rate_limit_exceeded", "", llm.KindRateLimited, true},
		{429, "insufficient_quota", "", llm.KindQuotaExceeded, false},
		{500, "", "", llm.KindServer, true},
		{502, "", "", llm.KindServer, true},
		{503, "", "", llm.KindServer, true},
		{504, "", "", llm.KindTimeout, true},
		{408, "", "", llm.KindTimeout, true},
		{409, "", "", llm.KindServer, true},
		{400, "", "bad", llm.KindBadRequest, false},
		{422, "", "", llm.KindBadRequest, false},
		{401, "", "", llm.KindAuth, false},
		{403, "", "", llm.KindAuth, false},
		{404, "", "", llm.KindNotFound, false},
		{400, "context_length_exceeded", "", llm.KindContextLengthExceeded, false},
		{400, "", "This model's maximum context length is 8192 tokens.", llm.KindContextLengthExceeded, false},
		{400, "content_filter", "", llm.KindContentFilter, false},
	} {
		e := llm.HTTPError(tc.status, tc.code, tc.msg)
		require.Equal(t, tc.kind, e.Kind, "%d %s %s", tc.status, tc.code, tc.msg)
		require.Equal(t, tc.retryable, llm.IsRetryable(e), "%d %s", tc.status, tc.code)
		require.Equal(t, !tc.retryable, e.NonRetryable())
	}
}

func TestErrorMatching(t *testing.T) {
	t.Parallel()
	e := &llm.Error{Kind: llm.KindContextLengthExceeded, StatusCode: 400, Message: "too long", Err: http.ErrHandlerTimeout}
	wrapped := fmt.Errorf("agent: turn 3: %w", e)
	require.ErrorIs(t, wrapped, llm.ErrContextLengthExceeded)
	require.NotErrorIs(t, wrapped, llm.ErrBadRequest)
	require.ErrorIs(t, wrapped, http.ErrHandlerTimeout, "the cause stays reachable")
	require.False(t, llm.IsRetryable(wrapped))
	require.Equal(t, "llm: context_length_exceeded (HTTP 400): too long", e.Error())

	rl := &llm.Error{Kind: llm.KindRateLimited, RetryDelay: 1500 * time.Millisecond}
	require.Equal(t, "llm: rate_limited (retry after 1.5s)", rl.Error())
	var ra interface{ RetryAfter() time.Duration }
	require.ErrorAs(t, fmt.Errorf("x: %w", rl), &ra)
	require.Equal(t, 1500*time.Millisecond, ra.RetryAfter())
	require.Zero(t, (&llm.Error{Kind: llm.KindServer}).RetryAfter())

	require.False(t, llm.IsRetryable(nil))
	require.True(t, llm.IsRetryable(errors.New("connection reset")), "unknown errors are retried, as the engine does")
	require.False(t, llm.IsRetryable(fmt.Errorf("x: %w", context.Canceled)))
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	require.Equal(t, time.Second, llm.ParseRetryAfter("1", now))
	require.Equal(t, 1500*time.Millisecond, llm.ParseRetryAfter(" 1.5 ", now))
	require.Equal(t, 30*time.Second, llm.ParseRetryAfter(now.Add(30*time.Second).Format(http.TimeFormat), now))
	for _, bad := range []string{"", "soon", "-1", "0", "NaN", "Inf", now.Add(-time.Minute).Format(http.TimeFormat)} {
		require.Zero(t, llm.ParseRetryAfter(bad, now), bad)
	}
}

func TestUSD(t *testing.T) {
	t.Parallel()
	require.Equal(t, "$0.000150", llm.USD(150).String())
	require.Equal(t, "$2.500000", (2*llm.Dollar + 50*llm.Cent).String())
	require.Equal(t, "-$1.000001", llm.USD(-1_000_001).String())
	require.Equal(t, "$0.000000", llm.USD(0).String())

	for in, want := range map[string]llm.USD{
		"2.50": 2_500_000, "$0.075": 75_000, "10": 10 * llm.Dollar, ".5": 500_000,
		"-3": -3 * llm.Dollar, "0.000001": 1, "1.": llm.Dollar,
	} {
		got, err := llm.ParseUSD(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", ".", "abc", "1.0000001", "1e3", "1,000", "99999999999999999999"} {
		_, err := llm.ParseUSD(bad)
		require.ErrorIs(t, err, llm.ErrInvalidAmount, bad)
	}
}

func TestPriceCost(t *testing.T) {
	t.Parallel()
	p := llm.DefaultPrices()["gpt-4o-mini"] // $0.15 in, $0.075 cached, $0.60 out per million
	// 1,000,000 uncached prompt tokens cost exactly the input price.
	require.Equal(t, 150_000*llm.Microdollar, p.Cost(llm.Usage{PromptTokens: 1_000_000}))
	// 1000 prompt tokens (400 cached) and 500 completion tokens:
	// 600×0.15 + 400×0.075 + 500×0.60 = 90 + 30 + 300 = 420 micro-dollars.
	require.Equal(t, llm.USD(420), p.Cost(llm.Usage{PromptTokens: 1000, CachedPromptTokens: 400, CompletionTokens: 500}))
	// Rounded to the nearest micro-dollar, half away from zero: 10 tokens
	// at $0.15/M is 1.5 µ$ → 2; 3 tokens is 0.45 µ$ → 0.
	require.Equal(t, llm.USD(2), p.Cost(llm.Usage{PromptTokens: 10}))
	require.Equal(t, llm.USD(0), p.Cost(llm.Usage{PromptTokens: 3}))
	// Cached tokens beyond the prompt and negative counts are clamped.
	require.Equal(t, p.Cost(llm.Usage{PromptTokens: 100, CachedPromptTokens: 100}), p.Cost(llm.Usage{PromptTokens: 100, CachedPromptTokens: 500}))
	require.Zero(t, p.Cost(llm.Usage{PromptTokens: -5, CompletionTokens: -5}))
	// Huge counts do not overflow.
	big := llm.Price{Input: 1_000_000 * llm.Dollar}
	require.Equal(t, llm.USD(1<<63-1), big.Cost(llm.Usage{PromptTokens: 1 << 62}))

	prices := llm.DefaultPrices()
	cost, err := prices.Cost("gpt-4o-2024-08-06", llm.Usage{PromptTokens: 1_000_000, CompletionTokens: 1_000_000})
	require.NoError(t, err)
	require.Equal(t, "$12.500000", cost.String(), "a dated snapshot is priced as its model")
	_, err = prices.Cost("my-finetune", llm.Usage{PromptTokens: 1})
	require.ErrorIs(t, err, llm.ErrNoPrice)
	cost, err = prices.Cost("offline", llm.Usage{PromptTokens: 1_000_000})
	require.NoError(t, err)
	require.Zero(t, cost)
}

func TestPriceLookup(t *testing.T) {
	t.Parallel()
	p := llm.Prices{"gpt-4o": {Input: 1}, "gpt-4o-mini": {Input: 2}, "o3": {Input: 3}}
	for model, want := range map[string]llm.USD{
		"gpt-4o": 1, "gpt-4o-2024-11-20": 1, "gpt-4o-mini": 2, "gpt-4o-mini-2024-07-18": 2,
		"openai/gpt-4o-mini": 2, "o3-2025-04-16": 3,
	} {
		got, ok := p.Lookup(model)
		require.True(t, ok, model)
		require.Equal(t, want, got.Input, model)
	}
	for _, model := range []string{"gpt-4o-audio", "o3-mini", "gpt-4", ""} {
		_, ok := p.Lookup(model)
		require.False(t, ok, model)
	}
}

func TestPricesMergeAndLoad(t *testing.T) {
	t.Parallel()
	base := llm.DefaultPrices()
	custom, err := llm.ParsePrices([]byte(`{
		"gpt-4o": {"input": "2.00", "cached_input": 1, "output": 8},
		"llama3.2": {"input": 0.075, "output": 0.3}
	}`))
	require.NoError(t, err)
	merged := base.Merge(custom)
	require.Equal(t, llm.Price{Input: 2 * llm.Dollar, CachedInput: llm.Dollar, Output: 8 * llm.Dollar}, merged["gpt-4o"])
	require.Equal(t, llm.Price{Input: 75_000, CachedInput: 75_000, Output: 300_000}, merged["llama3.2"], "cached input defaults to input")
	require.Equal(t, base["gpt-4.1"], merged["gpt-4.1"])
	require.Equal(t, llm.DefaultPrices()["gpt-4o"], base["gpt-4o"], "Merge leaves its receiver alone")

	// A table written out reads back the same.
	data, err := json.Marshal(merged)
	require.NoError(t, err)
	require.Contains(t, string(data), `"gpt-4o-mini":{"input":0.15,"cached_input":0.075,"output":0.6}`)
	path := filepath.Join(t.TempDir(), "prices.json")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	loaded, err := llm.LoadPrices(path)
	require.NoError(t, err)
	require.Equal(t, merged, loaded)

	for _, bad := range []string{`[]`, `null`, `{"m":{"input":1}}`, `{"m":{"input":-1,"output":1}}`, `{"m":{"input":0.1234567,"output":1}}`, `{"m":{"input":1e-3,"output":1}}`} {
		_, err := llm.ParsePrices([]byte(bad))
		require.Error(t, err, bad)
	}
	_, err = llm.LoadPrices(filepath.Join(t.TempDir(), "missing.json"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
