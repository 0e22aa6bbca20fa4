package llmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/keelhq/keel/llm"
)

// Config configures a Server. Every field is optional.
type Config struct {
	// APIKey, when set, is required: a request without "Authorization:
	// Bearer APIKey" (or Azure's "api-key: APIKey") gets a 401.
	APIKey string
	// FallbackFunc answers requests once the scripted replies are used up.
	// ModelFallback(offline.New(nil)) answers with the offline model.
	// Without it such a request gets a 400 saying no reply is scripted.
	FallbackFunc func(ctx context.Context, req *Request) Reply
}

// Server is a local HTTP server that speaks OpenAI's chat completions wire
// format with scripted replies. It is safe for concurrent use.
type Server struct {
	cfg Config
	srv *httptest.Server

	mu       sync.Mutex
	queue    []Reply
	requests []*Request
	calls    int
	ids      int
}

// NewServer starts a server on a loopback port. Close it when done.
func NewServer(cfg *Config) *Server {
	s := &Server{}
	if cfg != nil {
		s.cfg = *cfg
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s
}

// URL returns the API's base URL (ending in /v1), for openai.Config.BaseURL
// or OPENAI_BASE_URL; a child process can be given it too.
func (s *Server) URL() string { return s.srv.URL + "/v1" }

// Close shuts the server down, waiting for requests in progress.
func (s *Server) Close() { s.srv.Close() }

// Enqueue appends replies to the script. Each request takes the first
// reply left.
func (s *Server) Enqueue(replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, replies...)
}

// Pending returns the number of scripted replies not yet sent.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Calls returns the number of chat completion requests received.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Requests returns every chat completion request received, in arrival
// order.
func (s *Server) Requests() []*Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Request(nil), s.requests...)
}

// LastRequest returns the latest request received, or nil.
func (s *Server) LastRequest() *Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) == 0 {
		return nil
	}
	return s.requests[len(s.requests)-1]
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/chat/completions") {
		writeError(w, Error(http.StatusNotFound, "invalid_request_error", "unknown_url",
			fmt.Sprintf("Unknown request URL: %s %s.", r.Method, r.URL.Path)))
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, Error(http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed",
			"Only POST is allowed on "+r.URL.Path+"."))
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, Error(http.StatusBadRequest, "invalid_request_error", "", "cannot read body: "+err.Error()))
		return
	}
	req := &Request{}
	decodeErr := json.Unmarshal(body, req)
	req.Path = r.URL.RequestURI()
	req.Header = r.Header.Clone()
	req.Body = append(json.RawMessage(nil), body...)

	s.mu.Lock()
	s.calls++
	s.requests = append(s.requests, req)
	s.mu.Unlock()

	switch {
	case s.cfg.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+s.cfg.APIKey && r.Header.Get("api-key") != s.cfg.APIKey:
		writeError(w, Error(http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
			"Incorrect API key provided."))
		return
	case decodeErr != nil:
		writeError(w, Error(http.StatusBadRequest, "invalid_request_error", "",
			"We could not parse the JSON body of your request: "+decodeErr.Error()))
		return
	case req.Stream:
		writeError(w, Error(http.StatusBadRequest, "invalid_request_error", "",
			"llmtest: streaming is not supported"))
		return
	}

	reply, ok := s.next()
	if !ok {
		if s.cfg.FallbackFunc == nil {
			writeError(w, Error(http.StatusBadRequest, "invalid_request_error", "llmtest_no_reply",
				"llmtest: no scripted reply left and no fallback"))
			return
		}
		reply = s.cfg.FallbackFunc(r.Context(), req)
	}
	if reply.Delay > 0 {
		t := time.NewTimer(reply.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	for k, vs := range reply.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("X-Request-Id", fmt.Sprintf("req_llmtest_%d", s.seq()))
	switch {
	case reply.RawBody != "":
		status := reply.Status
		if status == 0 {
			status = http.StatusOK
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, reply.RawBody)
	case reply.Status >= 400:
		writeError(w, reply)
	default:
		s.writeCompletion(w, req, reply)
	}
}

func (s *Server) next() (Reply, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return Reply{}, false
	}
	r := s.queue[0]
	s.queue = s.queue[1:]
	return r, true
}

func (s *Server) seq() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids++
	return s.ids
}

func (s *Server) writeCompletion(w http.ResponseWriter, req *Request, reply Reply) {
	msg := replyMessage{Role: "assistant"}
	if reply.Content != "" || len(reply.ToolCalls) == 0 {
		c := reply.Content
		msg.Content = &c
	}
	if reply.Refusal != "" {
		msg.Refusal = &reply.Refusal
	}
	completionText := reply.Content
	for _, c := range reply.ToolCalls {
		id := c.ID
		if id == "" {
			id = fmt.Sprintf("call_llmtest_%d", s.seq())
		}
		args := string(c.Arguments)
		if args == "" {
			args = "{}"
		}
		var text string
		if json.Unmarshal(c.Arguments, &text) == nil {
			args = text // arguments kept as text go out as that text
		}
		msg.ToolCalls = append(msg.ToolCalls, ToolCall{
			ID: id, Type: "function", Function: FunctionCall{Name: c.Name, Arguments: args},
		})
		completionText += c.Name + args
	}
	finish := string(reply.FinishReason)
	if finish == "" {
		finish = string(llm.FinishStop)
		if len(reply.ToolCalls) > 0 {
			finish = string(llm.FinishToolCalls)
		}
	}
	u := llm.Usage{PromptTokens: req.promptTokens(), CompletionTokens: llm.EstimateTokens(completionText)}
	if reply.Usage != nil {
		u = *reply.Usage
	}
	if u.TotalTokens == 0 {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	model := reply.Model
	if model == "" {
		model = req.Model
	}
	out := completion{
		ID:                fmt.Sprintf("chatcmpl-llmtest-%d", s.seq()),
		Object:            "chat.completion",
		Created:           time.Now().Unix(),
		Model:             model,
		SystemFingerprint: "fp_llmtest",
		Choices: []choice{{
			Index:        0,
			Message:      msg,
			Logprobs:     json.RawMessage("null"),
			FinishReason: finish,
		}},
		Usage: usage{
			PromptTokens:        u.PromptTokens,
			CompletionTokens:    u.CompletionTokens,
			TotalTokens:         u.TotalTokens,
			PromptTokensDetails: promptDetails{CachedTokens: u.CachedPromptTokens},
		},
	}
	writeJSON(w, http.StatusOK, out)
}

func writeError(w http.ResponseWriter, r Reply) {
	obj := errorObject{Message: r.ErrorMessage, Type: r.ErrorType}
	if r.ErrorCode != "" {
		obj.Code = &r.ErrorCode
	}
	writeJSON(w, r.Status, errorBody{Error: obj})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
