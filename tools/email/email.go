package email

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/mail"
	"os"
	"strings"
	"time"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
)

// Environment variables read when the Config leaves a field empty.
const (
	APIKeyEnv  = "SENDGRID_API_KEY"
	BaseURLEnv = "SENDGRID_BASE_URL"
)

// DefaultBaseURL is SendGrid's API.
const DefaultBaseURL = "https://api.sendgrid.com"

// CustomArgKey is the custom_args field that carries a message's
// idempotency key to SendGrid, where it shows in the Email Activity feed
// and in event webhooks.
const CustomArgKey = "keel_idempotency_key"

// maxRecipients is SendGrid's limit of recipients per personalization.
const maxRecipients = 1000

//go:embed migrations
var migrations embed.FS

// UnknownPolicy says what a send does when it finds that an earlier send of
// the same message ended without telling whether SendGrid accepted it.
type UnknownPolicy string

// Policies for sends of unknown outcome.
const (
	// PolicyAsk sends nothing and returns an ErrOutcomeUnknown error, so
	// that the workflow can ask a person (or look the message up) and then
	// call Resolve. The default: a duplicate email is worse than a delayed
	// one for most agents' messages.
	PolicyAsk UnknownPolicy = "ask"
	// PolicyResend sends the message again. The recipient may get it
	// twice; both copies carry the same idempotency key in custom_args.
	PolicyResend UnknownPolicy = "resend"
)

// Config configures a Service. The zero value is valid: without an API key
// (here or in SENDGRID_API_KEY) messages are kept in the local outbox only.
type Config struct {
	// APIKey is SendGrid's API key. Optional; default $SENDGRID_API_KEY.
	// Without one, Send records messages in the outbox with StatusLocal and
	// sends nothing (the offline demo).
	APIKey string
	// BaseURL of SendGrid's API. Optional; default $SENDGRID_BASE_URL, else
	// DefaultBaseURL.
	BaseURL string
	// From is the sender of messages whose params name none. Optional.
	From string
	// HTTPClient makes the requests. Optional; default a client of this
	// Service's own with a 30s timeout.
	HTTPClient *http.Client
	// Logger. Optional; default slog.Default().
	Logger *slog.Logger
	// OnUnknown is the policy for sends of unknown outcome. Optional;
	// default PolicyAsk.
	OnUnknown UnknownPolicy
	// Sandbox sets mail_settings.sandbox_mode: SendGrid validates each
	// message and delivers none.
	Sandbox bool

	// Test holds settings for tests.
	Test TestConfig
}

// TestConfig holds settings for tests.
type TestConfig struct {
	// Now replaces time.Now.
	Now func() time.Time
}

// WithDefaults returns a copy of c (which may be nil) with defaults filled
// in from the environment and the documented defaults.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.APIKey == "" {
		out.APIKey = os.Getenv(APIKeyEnv)
	}
	if out.BaseURL == "" {
		out.BaseURL = os.Getenv(BaseURLEnv)
	}
	if out.BaseURL == "" {
		out.BaseURL = DefaultBaseURL
	}
	out.BaseURL = strings.TrimRight(out.BaseURL, "/")
	if out.OnUnknown == "" {
		out.OnUnknown = PolicyAsk
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	if out.Test.Now == nil {
		out.Test.Now = time.Now
	}
	return &out
}

func (c *Config) validate() error {
	if c.OnUnknown != PolicyAsk && c.OnUnknown != PolicyResend {
		return fmt.Errorf("email: config: OnUnknown %q is not %q or %q", c.OnUnknown, PolicyAsk, PolicyResend)
	}
	if !strings.HasPrefix(c.BaseURL, "http://") && !strings.HasPrefix(c.BaseURL, "https://") {
		return fmt.Errorf("email: config: base URL %q is not an http(s) URL", c.BaseURL)
	}
	if c.From != "" {
		if _, err := mail.ParseAddress(c.From); err != nil {
			return fmt.Errorf("email: config: From %q: %w", c.From, err)
		}
	}
	return nil
}

// Service sends email through SendGrid at most once per idempotency key,
// through an outbox in Keel's application database. It is safe for
// concurrent use.
type Service struct {
	db      *appdb.DB
	cfg     *Config
	hc      *http.Client
	ownHTTP bool
}

// New returns a Service over db, whose outbox table it creates or migrates.
// cfg may be nil.
func New(ctx context.Context, db *appdb.DB, cfg *Config) (*Service, error) {
	c := cfg.WithDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("email: migrations: %w", err)
	}
	if err := db.Migrate(ctx, "email", sub); err != nil {
		return nil, fmt.Errorf("email: %w", err)
	}
	s := &Service{db: db, cfg: c, hc: c.HTTPClient}
	if s.hc == nil {
		s.hc = &http.Client{Timeout: 30 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}
		s.ownHTTP = true
	}
	return s, nil
}

// Close releases the idle connections of the Service's own HTTP client. It
// does not close the database.
func (s *Service) Close() error {
	if s.ownHTTP {
		s.hc.CloseIdleConnections()
	}
	return nil
}

// Local reports whether the Service only records messages (no API key).
func (s *Service) Local() bool { return s.cfg.APIKey == "" }

func (s *Service) now() time.Time { return s.cfg.Test.Now() }

// SendParams describe a message.
type SendParams struct {
	// To, Cc and Bcc are addresses ("ada@example.com" or
	// "Ada Lovelace <ada@example.com>"). To is required; an address may
	// appear once across the three.
	To  []string `json:"to"`
	Cc  []string `json:"cc,omitempty"`
	Bcc []string `json:"bcc,omitempty"`
	// From is the sender. Optional; default Config.From.
	From string `json:"from,omitempty"`
	// ReplyTo. Optional.
	ReplyTo string `json:"reply_to,omitempty"`
	// Subject. Required.
	Subject string `json:"subject"`
	// Text and HTML are the bodies; at least one is required.
	Text string `json:"text,omitempty"`
	HTML string `json:"html,omitempty"`
	// Key is the outbox key, sent in custom_args. Optional inside a durable
	// activity (or a tool call): default the activity's idempotency key
	// followed by "/email". Set it to send several messages from one
	// activity, or outside an activity.
	Key string `json:"key,omitempty"`
}

// Status is where an outbox message stands.
type Status string

// Statuses of outbox messages.
const (
	// StatusPending: written, not sent yet (or known not to have been
	// sent: a refused connection, a 429).
	StatusPending Status = "pending"
	// StatusSending: a request is (or was, when its process died) in
	// flight. A later send that finds it records StatusUnknown.
	StatusSending Status = "sending"
	// StatusSent: SendGrid accepted the message (202, or 200 in sandbox
	// mode); MessageID is its X-Message-Id.
	StatusSent Status = "sent"
	// StatusFailed: SendGrid refused it; it was not sent.
	StatusFailed Status = "failed"
	// StatusUnknown: a send ended without saying whether SendGrid accepted
	// the message (a timeout, a reset connection, a 5xx, a crash mid-send).
	// The next send follows the UnknownPolicy; Resolve settles it.
	StatusUnknown Status = "unknown"
	// StatusLocal: recorded in the outbox only, because no API key is
	// configured.
	StatusLocal Status = "local"
	// StatusCanceled: an unknown or pending message that Resolve
	// canceled.
	StatusCanceled Status = "canceled"
)

// Message is an outbox row: a message and what became of it.
type Message struct {
	Key       string   `json:"key"`
	Status    Status   `json:"status"`
	From      string   `json:"from"`
	To        []string `json:"to"`
	Cc        []string `json:"cc,omitempty"`
	Bcc       []string `json:"bcc,omitempty"`
	ReplyTo   string   `json:"reply_to,omitempty"`
	Subject   string   `json:"subject"`
	Text      string   `json:"text,omitempty"`
	HTML      string   `json:"html,omitempty"`
	Sandbox   bool     `json:"sandbox,omitempty"`
	MessageID string   `json:"message_id,omitempty"`
	// Attempts counts the requests sent to SendGrid.
	Attempts int `json:"attempts"`
	// ErrorCode and ErrorMessage describe the last failure.
	ErrorCode    Code   `json:"error_code,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
	// Resolution records how Resolve settled a message: "resent",
	// "marked_sent" or "canceled".
	Resolution string    `json:"resolution,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	// Replayed is true when this call returned the recorded outcome
	// without sending. It is not stored.
	Replayed bool `json:"replayed,omitempty"`
}

// Send sends a message at most once per key (unless the policy is
// PolicyResend and an earlier send's outcome is unknown). It writes the
// message to the outbox before the request and records the outcome after:
//
//   - a repeat that finds it sent (or local) returns it without sending;
//   - one that finds it failed or canceled returns the same error;
//   - one that finds a send in flight from a process that died, or an
//     earlier send of unknown outcome, follows Config.OnUnknown: PolicyAsk
//     returns an ErrOutcomeUnknown error (call Resolve once someone has
//     decided), PolicyResend sends again;
//   - one that finds it pending sends it.
//
// Without an API key the message is recorded with StatusLocal and not sent.
// On error the message is returned too when it is in the outbox. Errors
// are *Error values.
func (s *Service) Send(ctx context.Context, p SendParams) (*Message, error) {
	key := p.Key
	if key == "" {
		info, ok := durable.GetActivityInfo(ctx)
		if !ok || info.IdempotencyKey == "" {
			return nil, fmt.Errorf("email: send: %w", ErrNoIdempotencyKey)
		}
		key = info.IdempotencyKey + "/email"
	}
	if p.From == "" {
		p.From = s.cfg.From
	}
	m, err := s.prepare(key, p)
	if err != nil {
		return nil, err
	}
	m, err = s.begin(ctx, m, paramsHash(p))
	if err != nil {
		return nil, err
	}
	switch m.Status {
	case StatusSent, StatusLocal:
		m.Replayed = true
		return m, nil
	case StatusFailed:
		m.Replayed = true
		return m, &Error{Key: key, Code: m.ErrorCode, Message: m.ErrorMessage}
	case StatusCanceled:
		m.Replayed = true
		return m, newError(key, CodeCanceled, "canceled by Resolve")
	case StatusSending:
		// The attempt that was sending it is gone (its process died, or
		// its activity attempt timed out): nobody knows what SendGrid got.
		if m, err = s.markUnknown(ctx, m, newError(key, CodeConnection, "an earlier attempt died while sending")); err != nil {
			return nil, err
		}
	}
	if m.Status == StatusUnknown && s.cfg.OnUnknown == PolicyAsk {
		return m, newError(key, CodeOutcomeUnknown, "an earlier send ended without an answer (%s: %s); not sending again until Resolve is called", m.ErrorCode, m.ErrorMessage)
	}
	return s.deliver(ctx, m, StatusPending, StatusUnknown)
}

// Resolution is a decision on a message of unknown outcome.
type Resolution string

// Resolutions.
const (
	// ResolveResend sends the message again.
	ResolveResend Resolution = "resend"
	// ResolveMarkSent records that the message did arrive (someone checked
	// the recipient's mailbox or SendGrid's activity feed); nothing is
	// sent.
	ResolveMarkSent Resolution = "mark_sent"
	// ResolveCancel gives the message up; nothing is sent.
	ResolveCancel Resolution = "cancel"
)

// Resolve settles a message whose outcome is unknown, as decided by a
// person or a lookup: send it again, record it as sent, or cancel it. It
// applies to StatusUnknown messages (ResolveCancel also to pending ones);
// repeating a decision that was already applied returns the message as it
// is, so Resolve is safe to retry. Other states are an ErrInvalidState
// error.
func (s *Service) Resolve(ctx context.Context, key string, r Resolution) (*Message, error) {
	m, _, err := s.get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("email: resolve %s: %w", key, err)
	}
	applied := map[Resolution]string{ResolveResend: "resent", ResolveMarkSent: "marked_sent", ResolveCancel: "canceled"}[r]
	if applied == "" {
		return nil, newError(key, CodeInvalidState, "unknown resolution %q", r)
	}
	if m.Resolution == applied && (m.Status == StatusSent || m.Status == StatusCanceled || m.Status == StatusFailed) {
		m.Replayed = true
		return m, nil
	}
	if m.Status == StatusSending {
		// A resend that died mid-send: unknown again.
		if m, err = s.markUnknown(ctx, m, newError(key, CodeConnection, "an earlier attempt died while sending")); err != nil {
			return nil, err
		}
		return m, newError(key, CodeOutcomeUnknown, "the resend ended without an answer; decide again")
	}
	switch {
	case r == ResolveCancel && (m.Status == StatusUnknown || m.Status == StatusPending):
		return s.settle(ctx, m, []Status{StatusUnknown, StatusPending}, outcome{status: StatusCanceled, resolution: applied})
	case r == ResolveMarkSent && m.Status == StatusUnknown:
		return s.settle(ctx, m, []Status{StatusUnknown}, outcome{status: StatusSent, resolution: applied, keepMessageID: true})
	case r == ResolveResend && m.Status == StatusUnknown:
		if err := s.setResolution(ctx, m, applied); err != nil {
			return nil, err
		}
		return s.deliver(ctx, m, StatusUnknown)
	}
	return m, newError(key, CodeInvalidState, "message is %s; %s applies to messages of unknown outcome", m.Status, r)
}

// prepare validates params and returns the message they describe.
func (s *Service) prepare(key string, p SendParams) (*Message, error) {
	bad := func(format string, args ...any) (*Message, error) {
		return nil, newError(key, CodeInvalidMessage, format, args...)
	}
	if len(p.To) == 0 {
		return bad("no recipient (To)")
	}
	if n := len(p.To) + len(p.Cc) + len(p.Bcc); n > maxRecipients {
		return bad("%d recipients; SendGrid takes at most %d", n, maxRecipients)
	}
	seen := map[string]bool{}
	for _, list := range [][]string{p.To, p.Cc, p.Bcc} {
		for _, a := range list {
			addr, err := mail.ParseAddress(a)
			if err != nil {
				return bad("recipient %q: %v", a, err)
			}
			lower := strings.ToLower(addr.Address)
			if seen[lower] {
				return bad("recipient %s appears twice across To, Cc and Bcc", addr.Address)
			}
			seen[lower] = true
		}
	}
	if p.From == "" {
		return bad("no sender (From, or Config.From)")
	}
	if _, err := mail.ParseAddress(p.From); err != nil {
		return bad("sender %q: %v", p.From, err)
	}
	if p.ReplyTo != "" {
		if _, err := mail.ParseAddress(p.ReplyTo); err != nil {
			return bad("reply-to %q: %v", p.ReplyTo, err)
		}
	}
	if strings.TrimSpace(p.Subject) == "" {
		return bad("no subject")
	}
	if p.Text == "" && p.HTML == "" {
		return bad("no body (Text or HTML)")
	}
	return &Message{
		Key: key, From: p.From, To: p.To, Cc: p.Cc, Bcc: p.Bcc, ReplyTo: p.ReplyTo,
		Subject: p.Subject, Text: p.Text, HTML: p.HTML, Sandbox: s.cfg.Sandbox && !s.Local(),
	}, nil
}

// paramsHash hashes what must not change under one key.
func paramsHash(p SendParams) string {
	p.Key = ""
	b, _ := json.Marshal(p) // plain strings always encode
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// List returns outbox messages, newest first.
func (s *Service) List(ctx context.Context, opts *ListOpts) ([]Message, error) {
	return s.list(ctx, opts)
}

// Get returns the outbox message of a key, or an error matching
// ErrNotFound.
func (s *Service) Get(ctx context.Context, key string) (*Message, error) {
	m, _, err := s.get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("email: get %s: %w", key, err)
	}
	return m, nil
}

// ListOpts filter List. The zero value lists the newest messages.
type ListOpts struct {
	Status Status
	// Limit. Optional; default 100.
	Limit int
}
