package llmtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/keelhq/keel/llm"
)

// Reply is one scripted answer of the server: a completion (text, tool
// calls or both), or an HTTP error. Build it with Text, ToolCalls, JSON,
// Error, RateLimited, ServerError or ContextLengthExceeded, and adjust it
// with the With methods.
type Reply struct {
	// Content is the assistant's text.
	Content string
	// ToolCalls are the tool calls of the reply, in order. Calls without
	// an ID get one from the server.
	ToolCalls []llm.ToolCall
	// Refusal is the model's refusal text.
	Refusal string
	// FinishReason defaults to tool_calls when there are tool calls, else
	// stop.
	FinishReason llm.FinishReason
	// Usage defaults to an estimate at four characters a token.
	Usage *llm.Usage
	// Model defaults to the model named in the request.
	Model string

	// Status, when 400 or more, makes the reply an HTTP error with an
	// OpenAI error body built from ErrorType, ErrorCode and ErrorMessage.
	Status       int
	ErrorType    string
	ErrorCode    string
	ErrorMessage string
	// RawBody, when set, is sent as the body as is (with Status, default
	// 200), for malformed replies.
	RawBody string
	// Header holds extra response headers, such as Retry-After.
	Header http.Header
	// Delay is how long the server waits before answering. A client that
	// gives up first cancels the wait.
	Delay time.Duration
}

// Text returns a reply with the assistant text s.
func Text(s string) Reply { return Reply{Content: s} }

// ToolCalls returns a reply that calls the given tools, in parallel when
// there are several.
func ToolCalls(calls ...llm.ToolCall) Reply { return Reply{ToolCalls: calls} }

// Call returns a tool call of the named tool; args is marshaled to JSON
// (a string or json.RawMessage is taken as JSON text). The server gives it
// an ID.
func Call(name string, args any) llm.ToolCall {
	return llm.ToolCall{Name: name, Arguments: jsonText(args)}
}

// JSON returns a reply whose text is v as JSON, as a structured output
// answer (a string or json.RawMessage is taken as JSON text).
func JSON(v any) Reply { return Reply{Content: string(jsonText(v))} }

func jsonText(v any) json.RawMessage {
	switch x := v.(type) {
	case json.RawMessage:
		return x
	case string:
		return json.RawMessage(x)
	case []byte:
		return json.RawMessage(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("llmtest: cannot marshal %T: %v", v, err))
	}
	return b
}

// Error returns an HTTP error reply with OpenAI's error body
// {"error":{"message","type","param","code"}}; an empty code is sent as
// null.
func Error(status int, typ, code, message string) Reply {
	return Reply{Status: status, ErrorType: typ, ErrorCode: code, ErrorMessage: message}
}

// RateLimited returns a 429 reply; retryAfter, when not empty, is sent as
// the Retry-After header (seconds, or an HTTP date).
func RateLimited(retryAfter string) Reply {
	r := Error(http.StatusTooManyRequests, "requests", "rate_limit_exceeded",
		"Rate limit reached for requests. Please try again later.")
	if retryAfter != "" {
		r = r.WithHeader("Retry-After", retryAfter)
	}
	return r
}

// ServerError returns a 500 reply as OpenAI sends it.
func ServerError() Reply {
	return Error(http.StatusInternalServerError, "server_error", "",
		"The server had an error while processing your request. Sorry about that!")
}

// ContextLengthExceeded returns the 400 reply OpenAI sends for a
// conversation longer than the model's context window.
func ContextLengthExceeded() Reply {
	return Error(http.StatusBadRequest, "invalid_request_error", "context_length_exceeded",
		"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens. Please reduce the length of the messages.")
}

// WithDelay returns r answered after d.
func (r Reply) WithDelay(d time.Duration) Reply { r.Delay = d; return r }

// WithUsage returns r reporting usage u.
func (r Reply) WithUsage(u llm.Usage) Reply { r.Usage = &u; return r }

// WithHeader returns r with an extra response header.
func (r Reply) WithHeader(key, value string) Reply {
	h := r.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Add(key, value)
	r.Header = h
	return r
}

// ModelFallback returns a fallback for Config.FallbackFunc that answers
// with m, such as the offline model: the request is converted to an
// llm.Request, and m's reply (or its error, as an HTTP error) is sent back.
func ModelFallback(m llm.Model) func(ctx context.Context, req *Request) Reply {
	return func(ctx context.Context, req *Request) Reply {
		resp, err := m.Chat(ctx, req.LLM())
		if err != nil {
			return errorReply(err)
		}
		u := resp.Usage
		return Reply{
			Content:      resp.Message.Content,
			ToolCalls:    resp.Message.ToolCalls,
			Refusal:      resp.Refusal,
			FinishReason: resp.FinishReason,
			Usage:        &u,
			Model:        resp.Model,
		}
	}
}

// errorReply turns a model's error into the HTTP error a provider would
// have sent.
func errorReply(err error) Reply {
	var le *llm.Error
	if !errors.As(err, &le) {
		return Error(http.StatusInternalServerError, "server_error", "", err.Error())
	}
	status := le.StatusCode
	if status == 0 {
		switch le.Kind {
		case llm.KindRateLimited, llm.KindQuotaExceeded:
			status = http.StatusTooManyRequests
		case llm.KindBadRequest, llm.KindContextLengthExceeded, llm.KindContentFilter:
			status = http.StatusBadRequest
		case llm.KindAuth:
			status = http.StatusUnauthorized
		case llm.KindNotFound:
			status = http.StatusNotFound
		case llm.KindTimeout:
			status = http.StatusGatewayTimeout
		default:
			status = http.StatusInternalServerError
		}
	}
	code := le.Code
	if code == "" {
		switch le.Kind {
		case llm.KindContextLengthExceeded:
			code = "context_length_exceeded"
		case llm.KindQuotaExceeded:
			code = "insufficient_quota"
		}
	}
	r := Error(status, le.Type, code, le.Message)
	if le.RetryDelay > 0 {
		r = r.WithHeader("Retry-After", strconv.FormatFloat(le.RetryDelay.Seconds(), 'f', -1, 64))
	}
	return r
}
