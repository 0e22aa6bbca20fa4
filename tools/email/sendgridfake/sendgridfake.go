// Package sendgridfake is a fake SendGrid v3 API for tests: an HTTP server
// that accepts POST /v3/mail/send with the real request shape, checks the
// Authorization header and the fields SendGrid requires, answers 202 with
// an X-Message-Id (200 in sandbox mode), and records every message it
// accepted, countable by the custom_args key package email sends.
//
// Faults can be injected into the next sends (Inject): an HTTP error before
// the message is accepted (500, 429), a message accepted and then never
// answered until the client gives up (a timeout), or a message accepted
// and then the connection closed (the client sees a failure although the
// message went out).
package sendgridfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"
)

// APIKey is the API key the server accepts.
const APIKey = "SG.fake-key"

// CustomArgKey is the custom_args field by which Count groups messages
// (package email's idempotency key).
const CustomArgKey = "keel_idempotency_key"

// Fault is injected into one send. Only one field is meant to be set.
type Fault struct {
	// Status answers with this HTTP status before the message is accepted
	// (429 adds an X-RateLimit-Reset header): nothing is sent.
	Status int
	// Hang accepts the message and then answers nothing until the client
	// gives up (its timeout) or the server closes.
	Hang bool
	// Drop accepts the message and then closes the connection without
	// answering.
	Drop bool
}

// Mail is a message the server accepted.
type Mail struct {
	MessageID string
	// Key is custom_args[keel_idempotency_key], or "".
	Key     string
	From    string
	To      []string
	Cc      []string
	Bcc     []string
	Subject string
	// Content maps content types to values.
	Content map[string]string
	Sandbox bool
	// Body is the request body as received.
	Body json.RawMessage
}

// Server is a fake SendGrid API. Its methods are safe for concurrent use.
type Server struct {
	// URL is the server's base URL, for email.Config.BaseURL.
	URL string

	srv     *httptest.Server
	closing chan struct{}

	mu       sync.Mutex
	faults   []Fault
	accepted []Mail
	requests int
}

// NewServer starts a fake SendGrid API on a loopback port. Close it when
// done.
func NewServer() *Server {
	s := &Server{closing: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.srv.URL
	return s
}

// Close shuts the server down, releasing hanging requests.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.closing:
	default:
		close(s.closing)
	}
	s.mu.Unlock()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Inject queues faults for the next sends, one per request, in order.
func (s *Server) Inject(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, faults...)
}

// Sent returns the messages accepted, oldest first (sandboxed ones
// included; see Mail.Sandbox).
func (s *Server) Sent() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.accepted...)
}

// Count returns how many messages with custom_args key were accepted.
func (s *Server) Count(key string) int {
	n := 0
	for _, m := range s.Sent() {
		if m.Key == key {
			n++
		}
	}
	return n
}

// Requests returns how many send requests reached the server.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// request is the part of a v3 mail send request the server checks.
type request struct {
	Personalizations []struct {
		To      []address `json:"to"`
		Cc      []address `json:"cc"`
		Bcc     []address `json:"bcc"`
		Subject string    `json:"subject"`
	} `json:"personalizations"`
	From       *address          `json:"from"`
	ReplyTo    *address          `json:"reply_to"`
	Subject    string            `json:"subject"`
	Content    []content         `json:"content"`
	TemplateID string            `json:"template_id"`
	CustomArgs map[string]string `json:"custom_args"`
	Mail       struct {
		Sandbox struct {
			Enable bool `json:"enable"`
		} `json:"sandbox_mode"`
	} `json:"mail_settings"`
}

type address struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

type content struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// apiError is one entry of SendGrid's error list.
type apiError struct {
	Message string  `json:"message"`
	Field   *string `json:"field"`
	Help    *string `json:"help"`
}

func writeErrors(w http.ResponseWriter, status int, errs ...apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": errs})
}

func fieldError(field, msg string) apiError {
	return apiError{Message: msg, Field: &field}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v3/mail/send" {
		writeErrors(w, http.StatusNotFound, apiError{Message: "not found"})
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+APIKey {
		writeErrors(w, http.StatusUnauthorized, apiError{Message: "The provided authorization grant is invalid, expired, or revoked"})
		return
	}
	s.mu.Lock()
	s.requests++
	var fault Fault
	if len(s.faults) > 0 {
		fault, s.faults = s.faults[0], s.faults[1:]
	}
	s.mu.Unlock()
	if fault.Status != 0 {
		if fault.Status == http.StatusTooManyRequests {
			w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10))
		}
		writeErrors(w, fault.Status, apiError{Message: http.StatusText(fault.Status) + " (injected)"})
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeErrors(w, http.StatusUnsupportedMediaType, apiError{Message: "Content-Type should be application/json."})
		return
	}
	var body json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeErrors(w, http.StatusBadRequest, apiError{Message: "Bad Request"})
		return
	}
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		writeErrors(w, http.StatusBadRequest, apiError{Message: "Bad Request: " + err.Error()})
		return
	}
	if errs := validate(&req); len(errs) > 0 {
		writeErrors(w, http.StatusBadRequest, errs...)
		return
	}

	m := Mail{
		MessageID: newMessageID(), Key: req.CustomArgs[CustomArgKey], From: req.From.Email,
		Subject: req.Subject, Content: map[string]string{}, Sandbox: req.Mail.Sandbox.Enable, Body: body,
	}
	for _, p := range req.Personalizations {
		for _, a := range p.To {
			m.To = append(m.To, a.Email)
		}
		for _, a := range p.Cc {
			m.Cc = append(m.Cc, a.Email)
		}
		for _, a := range p.Bcc {
			m.Bcc = append(m.Bcc, a.Email)
		}
		if m.Subject == "" {
			m.Subject = p.Subject
		}
	}
	for _, c := range req.Content {
		m.Content[c.Type] = c.Value
	}
	s.mu.Lock()
	s.accepted = append(s.accepted, m)
	s.mu.Unlock()

	switch {
	case fault.Hang:
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		return
	case fault.Drop:
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
		}
		return
	}
	w.Header().Set("X-Message-Id", m.MessageID)
	if m.Sandbox {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// validate checks what SendGrid requires of a v3 mail send request.
func validate(req *request) []apiError {
	var errs []apiError
	if len(req.Personalizations) == 0 {
		errs = append(errs, fieldError("personalizations", "The personalizations field is required and must have at least one personalization."))
	}
	if len(req.Personalizations) > 1000 {
		errs = append(errs, fieldError("personalizations", "You may not have more than 1000 personalizations per API request."))
	}
	for i, p := range req.Personalizations {
		prefix := fmt.Sprintf("personalizations.%d.", i)
		if len(p.To) == 0 {
			errs = append(errs, fieldError(prefix+"to", "The to array is required for all personalization objects, and must have at least one email object with a valid email address."))
		}
		seen := map[string]bool{}
		for _, list := range []struct {
			name  string
			addrs []address
		}{{"to", p.To}, {"cc", p.Cc}, {"bcc", p.Bcc}} {
			for j, a := range list.addrs {
				if !validAddress(a.Email) {
					errs = append(errs, fieldError(fmt.Sprintf("%s%s.%d.email", prefix, list.name, j), "Does not contain a valid address."))
					continue
				}
				lower := strings.ToLower(a.Email)
				if seen[lower] {
					errs = append(errs, fieldError(prefix+list.name, "Each email address in the personalization block should be unique between to, cc, and bcc. We found the first duplicate instance of ["+a.Email+"] in the personalizations."+list.name+" field."))
				}
				seen[lower] = true
			}
		}
		if req.Subject == "" && p.Subject == "" && req.TemplateID == "" {
			errs = append(errs, fieldError("subject", "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined."))
		}
	}
	if req.From == nil || !validAddress(req.From.Email) {
		errs = append(errs, fieldError("from.email", "The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter."))
	}
	if req.ReplyTo != nil && !validAddress(req.ReplyTo.Email) {
		errs = append(errs, fieldError("reply_to.email", "Does not contain a valid address."))
	}
	if len(req.Content) == 0 && req.TemplateID == "" {
		errs = append(errs, fieldError("content", "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block."))
	}
	for i, c := range req.Content {
		if c.Type == "" || c.Value == "" {
			errs = append(errs, fieldError(fmt.Sprintf("content.%d", i), "Content blocks must have a type and a value of at least one character."))
		}
		if c.Type == "text/plain" && i > 0 {
			errs = append(errs, fieldError("content", "If present, text/plain content must be first, followed by any other content."))
		}
	}
	return errs
}

func validAddress(a string) bool {
	if a == "" {
		return false
	}
	addr, err := mail.ParseAddress(a)
	return err == nil && addr.Address == a
}

func newMessageID() string {
	b := make([]byte, 11)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
