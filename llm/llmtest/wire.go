package llmtest

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/keelhq/keel/llm"
)

// Request is a chat completions request as the server received it,
// decoded from OpenAI's wire format.
type Request struct {
	Model               string          `json:"model"`
	Messages            []Message       `json:"messages"`
	Tools               []Tool          `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	ResponseFormat      *ResponseFormat `json:"response_format,omitempty"`
	MaxTokens           int             `json:"max_tokens,omitempty"`
	MaxCompletionTokens int             `json:"max_completion_tokens,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	Stream              bool            `json:"stream,omitempty"`

	// Path is the request's path and query, such as /v1/chat/completions.
	Path string `json:"-"`
	// Header holds the request's HTTP headers.
	Header http.Header `json:"-"`
	// Body is the request body as received.
	Body json.RawMessage `json:"-"`
}

// Message is a chat message on the wire.
type Message struct {
	Role string `json:"role"`
	// Content is the text; a content array's text parts are joined.
	Content    string     `json:"content"`
	Name       string     `json:"name,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

// UnmarshalJSON accepts content as a string, null, or an array of parts.
func (m *Message) UnmarshalJSON(data []byte) error {
	var raw struct {
		Role       string          `json:"role"`
		Content    json.RawMessage `json:"content"`
		Name       string          `json:"name"`
		ToolCalls  []ToolCall      `json:"tool_calls"`
		ToolCallID string          `json:"tool_call_id"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	*m = Message{Role: raw.Role, Name: raw.Name, ToolCalls: raw.ToolCalls, ToolCallID: raw.ToolCallID}
	if len(raw.Content) == 0 || string(raw.Content) == "null" {
		return nil
	}
	if raw.Content[0] == '"' {
		return json.Unmarshal(raw.Content, &m.Content)
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw.Content, &parts); err != nil {
		return err
	}
	var texts []string
	for _, p := range parts {
		if p.Type == "text" {
			texts = append(texts, p.Text)
		}
	}
	m.Content = strings.Join(texts, "\n")
	return nil
}

// ToolCall is a tool call on the wire: the arguments are a string of JSON.
type ToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function FunctionCall `json:"function"`
}

// FunctionCall names the function a tool call runs and its arguments.
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// Tool is an offered tool on the wire.
type Tool struct {
	Type     string   `json:"type"`
	Function Function `json:"function"`
}

// Function describes an offered function.
type Function struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      bool            `json:"strict,omitempty"`
}

// ResponseFormat is the response_format of a request.
type ResponseFormat struct {
	Type       string      `json:"type"`
	JSONSchema *JSONSchema `json:"json_schema,omitempty"`
}

// JSONSchema is a json_schema response format.
type JSONSchema struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema"`
	Strict      bool            `json:"strict,omitempty"`
}

// LLM converts r to an llm.Request, as a Model would have received it.
func (r *Request) LLM() *llm.Request {
	out := &llm.Request{
		Model:             r.Model,
		ParallelToolCalls: r.ParallelToolCalls,
		MaxOutputTokens:   r.MaxCompletionTokens,
		Temperature:       r.Temperature,
	}
	if out.MaxOutputTokens == 0 {
		out.MaxOutputTokens = r.MaxTokens
	}
	for _, m := range r.Messages {
		role := llm.Role(m.Role)
		if role == "developer" {
			role = llm.RoleSystem
		}
		msg := llm.Message{Role: role, Content: m.Content, ToolCallID: m.ToolCallID}
		for _, c := range m.ToolCalls {
			msg.ToolCalls = append(msg.ToolCalls, llm.ToolCall{
				ID: c.ID, Name: c.Function.Name, Arguments: llm.ArgumentsFromText(c.Function.Arguments),
			})
		}
		out.Messages = append(out.Messages, msg)
	}
	for _, t := range r.Tools {
		out.Tools = append(out.Tools, llm.ToolSpec{
			Name: t.Function.Name, Description: t.Function.Description,
			Parameters: t.Function.Parameters, Strict: t.Function.Strict,
		})
	}
	if len(r.ToolChoice) > 0 {
		var s string
		var obj struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if json.Unmarshal(r.ToolChoice, &s) == nil {
			out.ToolChoice = s
		} else if json.Unmarshal(r.ToolChoice, &obj) == nil {
			out.ToolChoice = obj.Function.Name
		}
	}
	if f := r.ResponseFormat; f != nil && f.JSONSchema != nil {
		out.ResponseFormat = &llm.ResponseFormat{
			Name: f.JSONSchema.Name, Description: f.JSONSchema.Description,
			Schema: f.JSONSchema.Schema, Strict: f.JSONSchema.Strict,
		}
	}
	return out
}

// promptTokens estimates the prompt's tokens at four characters a token.
func (r *Request) promptTokens() int64 {
	var n int64
	for _, m := range r.Messages {
		n += llm.EstimateTokens(m.Content) + 1
		for _, c := range m.ToolCalls {
			n += llm.EstimateTokens(c.Function.Name) + llm.EstimateTokens(c.Function.Arguments)
		}
	}
	for _, t := range r.Tools {
		n += llm.EstimateTokens(t.Function.Name) + llm.EstimateTokens(t.Function.Description) +
			llm.EstimateTokens(string(t.Function.Parameters))
	}
	return n
}

// Wire shapes of replies.
type (
	completion struct {
		ID                string   `json:"id"`
		Object            string   `json:"object"`
		Created           int64    `json:"created"`
		Model             string   `json:"model"`
		Choices           []choice `json:"choices"`
		Usage             usage    `json:"usage"`
		SystemFingerprint string   `json:"system_fingerprint"`
	}
	choice struct {
		Index        int             `json:"index"`
		Message      replyMessage    `json:"message"`
		Logprobs     json.RawMessage `json:"logprobs"`
		FinishReason string          `json:"finish_reason"`
	}
	replyMessage struct {
		Role      string     `json:"role"`
		Content   *string    `json:"content"`
		Refusal   *string    `json:"refusal"`
		ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	}
	usage struct {
		PromptTokens            int64             `json:"prompt_tokens"`
		CompletionTokens        int64             `json:"completion_tokens"`
		TotalTokens             int64             `json:"total_tokens"`
		PromptTokensDetails     promptDetails     `json:"prompt_tokens_details"`
		CompletionTokensDetails completionDetails `json:"completion_tokens_details"`
	}
	promptDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
		AudioTokens  int64 `json:"audio_tokens"`
	}
	completionDetails struct {
		ReasoningTokens          int64 `json:"reasoning_tokens"`
		AudioTokens              int64 `json:"audio_tokens"`
		AcceptedPredictionTokens int64 `json:"accepted_prediction_tokens"`
		RejectedPredictionTokens int64 `json:"rejected_prediction_tokens"`
	}
	errorBody struct {
		Error errorObject `json:"error"`
	}
	errorObject struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
)
