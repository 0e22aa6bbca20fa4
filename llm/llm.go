package llm

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Model is a chat model: a provider's API (package llm/openai), the offline
// model (package llm/offline) or anything else that answers a conversation.
//
// Chat must not retry by itself: a durable activity calls it and owns the
// retry policy. Errors should be *Error values so that callers can tell a
// rate limit from a bad request.
type Model interface {
	// Name is the default model name used for requests whose Model field is
	// empty, such as "gpt-4o-mini". Price tables are keyed by it.
	Name() string
	// Chat sends one request and returns the model's reply.
	Chat(ctx context.Context, req *Request) (*Response, error)
}

// Role is who wrote a message.
type Role string

// Message roles.
const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	RoleTool      Role = "tool"
)

// Message is one entry of a conversation.
type Message struct {
	Role Role `json:"role"`
	// Content is the text of the message. An assistant message that only
	// calls tools may leave it empty.
	Content string `json:"content,omitempty"`
	// ToolCalls are the calls an assistant message asks for.
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	// ToolCallID links a tool message to the call it answers.
	ToolCallID string `json:"tool_call_id,omitempty"`
}

// SystemMessage returns a system message (the agent's instructions).
func SystemMessage(text string) Message { return Message{Role: RoleSystem, Content: text} }

// UserMessage returns a user message.
func UserMessage(text string) Message { return Message{Role: RoleUser, Content: text} }

// AssistantMessage returns an assistant message with optional tool calls.
func AssistantMessage(text string, calls ...ToolCall) Message {
	return Message{Role: RoleAssistant, Content: text, ToolCalls: calls}
}

// ToolResultMessage returns the message that carries a tool's result back to
// the model; callID is the ToolCall.ID it answers.
func ToolResultMessage(callID, content string) Message {
	return Message{Role: RoleTool, ToolCallID: callID, Content: content}
}

// ToolCall is a model's request to run a tool.
type ToolCall struct {
	// ID identifies the call within the conversation; the tool's result
	// message carries it back in ToolCallID.
	ID   string `json:"id"`
	Name string `json:"name"`
	// Arguments is the JSON the model gave as the tool's input, normally an
	// object. When a provider returns text that is not valid JSON, Arguments
	// holds that text as a JSON string, so nothing is lost and decoding it
	// into the tool's input type reports the problem.
	Arguments json.RawMessage `json:"arguments"`
}

// ArgumentsFromText returns s as ToolCall.Arguments: s itself when it is
// valid JSON, {} when it is empty, and otherwise s encoded as a JSON string.
func ArgumentsFromText(s string) json.RawMessage {
	t := strings.TrimSpace(s)
	switch {
	case t == "":
		return json.RawMessage("{}")
	case json.Valid([]byte(t)):
		return json.RawMessage(t)
	default:
		b, _ := json.Marshal(s)
		return b
	}
}

// ToolSpec describes a tool the model may call.
type ToolSpec struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Parameters is the JSON Schema of the tool's input (an object schema).
	// Empty means the tool takes no input.
	Parameters json.RawMessage `json:"parameters,omitempty"`
	// Strict asks the provider to make arguments follow Parameters exactly
	// (OpenAI's strict function calling).
	Strict bool `json:"strict,omitempty"`
}

// ResponseFormat asks for a reply that is JSON following a schema
// (structured output).
type ResponseFormat struct {
	// Name names the schema, such as "memo"; OpenAI requires it.
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Schema is the JSON Schema the reply must follow.
	Schema json.RawMessage `json:"schema"`
	// Strict asks the provider to enforce the schema exactly.
	Strict bool `json:"strict,omitempty"`
}

// Tool choices for Request.ToolChoice. Any other value is the name of the
// one tool the model must call.
const (
	ToolChoiceAuto     = "auto"
	ToolChoiceNone     = "none"
	ToolChoiceRequired = "required"
)

// Request is one call to a model.
type Request struct {
	// Model overrides the model's default name. Optional.
	Model    string     `json:"model,omitempty"`
	Messages []Message  `json:"messages"`
	Tools    []ToolSpec `json:"tools,omitempty"`
	// ToolChoice is "" or "auto" (the model decides), "none", "required",
	// or the name of a tool the model must call.
	ToolChoice string `json:"tool_choice,omitempty"`
	// ParallelToolCalls, when set, allows or forbids several tool calls in
	// one reply. Nil leaves the provider's default (allowed, for OpenAI).
	ParallelToolCalls *bool `json:"parallel_tool_calls,omitempty"`
	// ResponseFormat asks for structured output. Optional.
	ResponseFormat *ResponseFormat `json:"response_format,omitempty"`
	// MaxOutputTokens bounds the reply's length. Optional; 0 means the
	// provider's limit.
	MaxOutputTokens int `json:"max_output_tokens,omitempty"`
	// Temperature is the sampling temperature. Optional; nil means the
	// provider's default.
	Temperature *float64 `json:"temperature,omitempty"`
}

// Validate reports the first problem that makes r unusable, as an *Error of
// kind bad_request. Models call it before sending anything.
func (r *Request) Validate() error {
	bad := func(format string, args ...any) error {
		return &Error{Kind: KindBadRequest, Message: fmt.Sprintf(format, args...)}
	}
	if r == nil {
		return bad("nil request")
	}
	if len(r.Messages) == 0 {
		return bad("request has no messages")
	}
	names := make(map[string]bool, len(r.Tools))
	for i, t := range r.Tools {
		if t.Name == "" {
			return bad("tool %d has no name", i)
		}
		if names[t.Name] {
			return bad("tool %q is listed twice", t.Name)
		}
		names[t.Name] = true
		if len(t.Parameters) > 0 && !isJSONObject(t.Parameters) {
			return bad("tool %q: parameters are not a JSON object", t.Name)
		}
	}
	switch r.ToolChoice {
	case "", ToolChoiceAuto, ToolChoiceNone:
	case ToolChoiceRequired:
		if len(r.Tools) == 0 {
			return bad("tool choice %q without tools", r.ToolChoice)
		}
	default:
		if !names[r.ToolChoice] {
			return bad("tool choice %q names no offered tool", r.ToolChoice)
		}
	}
	if f := r.ResponseFormat; f != nil {
		if f.Name == "" {
			return bad("response format has no name")
		}
		if !isJSONObject(f.Schema) {
			return bad("response format %q: schema is not a JSON object", f.Name)
		}
	}
	for i, m := range r.Messages {
		switch m.Role {
		case RoleSystem, RoleUser:
		case RoleAssistant:
			for _, c := range m.ToolCalls {
				if c.ID == "" || c.Name == "" {
					return bad("message %d: tool call without ID or name", i)
				}
				if len(c.Arguments) > 0 && !json.Valid(c.Arguments) {
					return bad("message %d: tool call %s: arguments are not JSON", i, c.ID)
				}
			}
		case RoleTool:
			if m.ToolCallID == "" {
				return bad("message %d: tool result without tool call ID", i)
			}
		default:
			return bad("message %d: unknown role %q", i, m.Role)
		}
	}
	return nil
}

func isJSONObject(raw json.RawMessage) bool {
	var v map[string]json.RawMessage
	return json.Unmarshal(raw, &v) == nil && v != nil
}

// FinishReason says why the model stopped.
type FinishReason string

// Finish reasons.
const (
	FinishStop          FinishReason = "stop"
	FinishToolCalls     FinishReason = "tool_calls"
	FinishLength        FinishReason = "length"
	FinishContentFilter FinishReason = "content_filter"
)

// Response is a model's reply.
type Response struct {
	// ID is the provider's completion ID.
	ID string `json:"id,omitempty"`
	// Model is the model that answered, as the provider names it (it may be
	// a dated snapshot such as "gpt-4o-2024-08-06").
	Model string `json:"model"`
	// Message is the assistant's message: text, tool calls, or both.
	Message      Message      `json:"message"`
	FinishReason FinishReason `json:"finish_reason"`
	// Refusal is the model's refusal text, when it refused.
	Refusal string `json:"refusal,omitempty"`
	Usage   Usage  `json:"usage"`
}

// Usage counts the tokens of one call or, summed with Add, of many.
type Usage struct {
	// PromptTokens counts all input tokens, cached ones included.
	PromptTokens int64 `json:"prompt_tokens"`
	// CompletionTokens counts output tokens (reasoning tokens included).
	CompletionTokens int64 `json:"completion_tokens"`
	// CachedPromptTokens is the part of PromptTokens served from the
	// provider's prompt cache, billed at the cached-input price.
	CachedPromptTokens int64 `json:"cached_prompt_tokens,omitempty"`
	TotalTokens        int64 `json:"total_tokens"`
}

// Add returns the sum of u and v.
func (u Usage) Add(v Usage) Usage {
	return Usage{
		PromptTokens:       u.PromptTokens + v.PromptTokens,
		CompletionTokens:   u.CompletionTokens + v.CompletionTokens,
		CachedPromptTokens: u.CachedPromptTokens + v.CachedPromptTokens,
		TotalTokens:        u.TotalTokens + v.TotalTokens,
	}
}

// EstimateTokens estimates the number of tokens in text at about four
// characters per token, rounding up; the offline model and llmtest use it
// so that token counts are deterministic.
func EstimateTokens(text string) int64 {
	return int64((utf8.RuneCountInString(text) + 3) / 4)
}
