package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	goopenai "github.com/sashabaranov/go-openai"

	"github.com/keelhq/keel/llm"
)

// Defaults used when neither the Config nor the environment says otherwise.
const (
	DefaultBaseURL         = "https://api.openai.com/v1"
	DefaultModel           = "gpt-4o-mini"
	DefaultAzureAPIVersion = "2024-10-21"
)

// Config configures a Model. Every field is optional.
type Config struct {
	// APIKey authenticates requests. Default: $OPENAI_API_KEY. Local
	// servers such as Ollama need none.
	APIKey string
	// Azure switches to Azure OpenAI: BaseURL is then the resource's
	// endpoint (https://NAME.openai.azure.com) and APIKey its key.
	Azure *Azure
	// BaseURL is the API's base URL, such as http://localhost:11434/v1 for
	// Ollama. Default: $OPENAI_BASE_URL, else https://api.openai.com/v1.
	BaseURL string
	// HTTPClient sends the requests. Default: a client without a timeout;
	// bound each call with the context (an activity's start-to-close
	// timeout) or give a client with Timeout set.
	HTTPClient *http.Client
	// Model is the model used when a Request names none. Default:
	// $OPENAI_MODEL, else gpt-4o-mini.
	Model string
	// Organization is sent as the OpenAI-Organization header. Optional.
	Organization string
}

// Azure holds the settings specific to Azure OpenAI.
type Azure struct {
	// APIVersion is the api-version query parameter. Default: 2024-10-21.
	APIVersion string
	// DeploymentFunc maps a model name to the deployment that serves it.
	// Default: go-openai's mapping (the model name without '.' and ':'
	// for 3.5 models, without ':' otherwise).
	DeploymentFunc func(model string) string
}

// WithDefaults returns a copy of c (which may be nil) with the empty fields
// filled from the environment and the package defaults.
func (c *Config) WithDefaults() *Config {
	var out Config
	if c != nil {
		out = *c
	}
	if out.APIKey == "" {
		out.APIKey = os.Getenv("OPENAI_API_KEY")
	}
	if out.BaseURL == "" {
		out.BaseURL = os.Getenv("OPENAI_BASE_URL")
	}
	if out.BaseURL == "" && out.Azure == nil {
		out.BaseURL = DefaultBaseURL
	}
	if out.Model == "" {
		out.Model = os.Getenv("OPENAI_MODEL")
	}
	if out.Model == "" {
		out.Model = DefaultModel
	}
	if out.HTTPClient == nil {
		out.HTTPClient = &http.Client{}
	}
	if out.Azure != nil {
		az := *out.Azure
		if az.APIVersion == "" {
			az.APIVersion = DefaultAzureAPIVersion
		}
		out.Azure = &az
	}
	return &out
}

func (c *Config) validate() error {
	if c.BaseURL == "" {
		return errors.New("openai: Azure needs BaseURL (or $OPENAI_BASE_URL)")
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("openai: BaseURL %q is not an absolute URL", c.BaseURL)
	}
	return nil
}

// Model is an llm.Model on the OpenAI chat completions API. It is safe for
// concurrent use.
type Model struct {
	cfg    *Config
	client *goopenai.Client
}

var _ llm.Model = (*Model)(nil)

// New returns a Model for cfg (nil for all defaults).
func New(cfg *Config) (*Model, error) {
	c := cfg.WithDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	var oc goopenai.ClientConfig
	if c.Azure != nil {
		oc = goopenai.DefaultAzureConfig(c.APIKey, c.BaseURL)
		oc.APIVersion = c.Azure.APIVersion
		if c.Azure.DeploymentFunc != nil {
			oc.AzureModelMapperFunc = c.Azure.DeploymentFunc
		}
	} else {
		oc = goopenai.DefaultConfig(c.APIKey)
		oc.BaseURL = c.BaseURL
	}
	oc.OrgID = c.Organization
	oc.HTTPClient = recordingDoer{next: c.HTTPClient}
	return &Model{cfg: c, client: goopenai.NewClientWithConfig(oc)}, nil
}

// Name returns the default model name.
func (m *Model) Name() string { return m.cfg.Model }

// Chat sends req to the chat completions endpoint, once: it never retries.
// Every error it returns is an *llm.Error, unwrapped, so that the durable
// engine sees its RetryAfter and NonRetryable methods.
func (m *Model) Chat(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	creq := m.toWire(req)
	rec := &exchange{}
	resp, err := m.client.CreateChatCompletion(context.WithValue(ctx, exchangeKey{}, rec), creq)
	if err != nil {
		return nil, classify(err, rec)
	}
	out, werr := fromWire(resp, creq.Model)
	if werr != nil {
		werr.RequestID = rec.requestID
		werr.StatusCode = rec.status
		return nil, werr
	}
	return out, nil
}

func (m *Model) toWire(req *llm.Request) goopenai.ChatCompletionRequest {
	model := req.Model
	if model == "" {
		model = m.cfg.Model
	}
	out := goopenai.ChatCompletionRequest{
		Model:               model,
		MaxCompletionTokens: req.MaxOutputTokens,
	}
	if req.Temperature != nil {
		t := float32(*req.Temperature)
		if t == 0 {
			// go-openai omits a zero temperature; the smallest positive
			// float32 is sent instead and means the same.
			t = math.SmallestNonzeroFloat32
		}
		out.Temperature = t
	}
	for _, msg := range req.Messages {
		w := goopenai.ChatCompletionMessage{
			Role:       string(msg.Role),
			Content:    msg.Content,
			ToolCallID: msg.ToolCallID,
		}
		for _, c := range msg.ToolCalls {
			args := string(c.Arguments)
			if args == "" {
				args = "{}"
			}
			var s string
			if json.Unmarshal(c.Arguments, &s) == nil {
				args = s // arguments that were kept as text go back as text
			}
			w.ToolCalls = append(w.ToolCalls, goopenai.ToolCall{
				ID:       c.ID,
				Type:     goopenai.ToolTypeFunction,
				Function: goopenai.FunctionCall{Name: c.Name, Arguments: args},
			})
		}
		out.Messages = append(out.Messages, w)
	}
	for _, t := range req.Tools {
		params := t.Parameters
		if len(params) == 0 {
			params = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, goopenai.Tool{
			Type: goopenai.ToolTypeFunction,
			Function: &goopenai.FunctionDefinition{
				Name:        t.Name,
				Description: t.Description,
				Strict:      t.Strict,
				Parameters:  params,
			},
		})
	}
	if len(req.Tools) > 0 {
		switch req.ToolChoice {
		case "":
		case llm.ToolChoiceAuto, llm.ToolChoiceNone, llm.ToolChoiceRequired:
			out.ToolChoice = req.ToolChoice
		default:
			out.ToolChoice = goopenai.ToolChoice{
				Type:     goopenai.ToolTypeFunction,
				Function: goopenai.ToolFunction{Name: req.ToolChoice},
			}
		}
		if req.ParallelToolCalls != nil {
			out.ParallelToolCalls = *req.ParallelToolCalls
		}
	}
	if f := req.ResponseFormat; f != nil {
		out.ResponseFormat = &goopenai.ChatCompletionResponseFormat{
			Type: goopenai.ChatCompletionResponseFormatTypeJSONSchema,
			JSONSchema: &goopenai.ChatCompletionResponseFormatJSONSchema{
				Name:        f.Name,
				Description: f.Description,
				Schema:      f.Schema,
				Strict:      f.Strict,
			},
		}
	}
	return out
}

func fromWire(resp goopenai.ChatCompletionResponse, model string) (*llm.Response, *llm.Error) {
	if len(resp.Choices) == 0 {
		return nil, &llm.Error{Kind: llm.KindInvalidResponse, Message: "completion has no choices"}
	}
	choice := resp.Choices[0]
	out := &llm.Response{
		ID:      resp.ID,
		Model:   resp.Model,
		Refusal: choice.Message.Refusal,
		Message: llm.Message{Role: llm.RoleAssistant, Content: choice.Message.Content},
		Usage: llm.Usage{
			PromptTokens:     int64(resp.Usage.PromptTokens),
			CompletionTokens: int64(resp.Usage.CompletionTokens),
			TotalTokens:      int64(resp.Usage.TotalTokens),
		},
	}
	if out.Model == "" {
		out.Model = model
	}
	if d := resp.Usage.PromptTokensDetails; d != nil {
		out.Usage.CachedPromptTokens = int64(d.CachedTokens)
	}
	if out.Usage.TotalTokens == 0 {
		out.Usage.TotalTokens = out.Usage.PromptTokens + out.Usage.CompletionTokens
	}
	for i, c := range choice.Message.ToolCalls {
		if c.Function.Name == "" {
			return nil, &llm.Error{Kind: llm.KindInvalidResponse, Message: fmt.Sprintf("tool call %d has no function name", i)}
		}
		id := c.ID
		if id == "" {
			// Some compatible servers leave tool call IDs out.
			id = fmt.Sprintf("call_%d", i)
		}
		out.Message.ToolCalls = append(out.Message.ToolCalls, llm.ToolCall{
			ID:        id,
			Name:      c.Function.Name,
			Arguments: llm.ArgumentsFromText(c.Function.Arguments),
		})
	}
	switch fr := choice.FinishReason; fr {
	case goopenai.FinishReasonFunctionCall:
		out.FinishReason = llm.FinishToolCalls
	case goopenai.FinishReasonNull:
		out.FinishReason = ""
	default:
		out.FinishReason = llm.FinishReason(fr)
	}
	if len(out.Message.ToolCalls) > 0 && (out.FinishReason == "" || out.FinishReason == llm.FinishStop) {
		// Some compatible servers answer "stop" alongside tool calls.
		out.FinishReason = llm.FinishToolCalls
	}
	return out, nil
}

// exchange records what the HTTP layer saw of one call: go-openai's errors
// do not carry response headers.
type exchange struct {
	status     int
	retryAfter time.Duration
	requestID  string
}

type exchangeKey struct{}

// recordingDoer passes requests to the configured client and records the
// status and headers of each response in the request context's exchange.
type recordingDoer struct{ next *http.Client }

func (d recordingDoer) Do(req *http.Request) (*http.Response, error) {
	resp, err := d.next.Do(req)
	if resp != nil {
		if rec, ok := req.Context().Value(exchangeKey{}).(*exchange); ok {
			rec.status = resp.StatusCode
			rec.requestID = resp.Header.Get("X-Request-Id")
			rec.retryAfter = retryAfter(resp.Header, time.Now())
		}
	}
	return resp, err
}

// retryAfter reads retry-after-ms (sent by OpenAI and Azure, more precise)
// or else Retry-After (seconds or an HTTP date).
func retryAfter(h http.Header, now time.Time) time.Duration {
	if ms, err := strconv.ParseFloat(strings.TrimSpace(h.Get("Retry-After-Ms")), 64); err == nil && ms > 0 && ms < 1e12 {
		return time.Duration(ms * float64(time.Millisecond))
	}
	return llm.ParseRetryAfter(h.Get("Retry-After"), now)
}

// classify turns an error from go-openai into an *llm.Error.
func classify(err error, rec *exchange) *llm.Error {
	var e *llm.Error
	var apiErr *goopenai.APIError
	var reqErr *goopenai.RequestError
	var netErr net.Error
	var urlErr *url.Error
	local := func(kind llm.Kind, what string) *llm.Error {
		return &llm.Error{Kind: kind, Message: what + ": " + err.Error()}
	}
	switch {
	case errors.As(err, &apiErr):
		e = llm.HTTPError(apiErr.HTTPStatusCode, codeString(apiErr.Code), apiErr.Message)
		e.Type = apiErr.Type
		if apiErr.InnerError != nil && apiErr.InnerError.Code == "ResponsibleAIPolicyViolation" {
			e.Kind = llm.KindContentFilter
		}
	case errors.As(err, &reqErr):
		// An error status whose body is not OpenAI's error object.
		msg := strings.TrimSpace(string(reqErr.Body))
		if len(msg) > 500 {
			msg = msg[:500] + "…"
		}
		if msg == "" {
			msg = reqErr.HTTPStatus
		}
		e = llm.HTTPError(reqErr.HTTPStatusCode, "", msg)
	case errors.Is(err, context.Canceled):
		e = local(llm.KindCanceled, "call canceled")
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		e = local(llm.KindTimeout, "call timed out")
	case rec.status >= 200 && rec.status < 300:
		e = local(llm.KindInvalidResponse, "cannot decode completion")
	case errors.As(err, &urlErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		e = local(llm.KindConnection, "no response")
	case rec.status == 0:
		e = local(llm.KindBadRequest, "request refused before sending")
	default:
		e = local(llm.KindInvalidResponse, "unexpected reply")
	}
	if e.StatusCode == 0 {
		e.StatusCode = rec.status
	}
	e.RetryDelay = rec.retryAfter
	e.RequestID = rec.requestID
	e.Err = err
	return e
}

// codeString renders an API error code, which OpenAI sends as a string and
// some servers as a number.
func codeString(code any) string {
	switch c := code.(type) {
	case nil:
		return ""
	case string:
		return c
	default:
		return fmt.Sprint(c)
	}
}
