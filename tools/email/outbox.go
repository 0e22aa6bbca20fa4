package email

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/sendgrid/rest"
	"github.com/sendgrid/sendgrid-go"
	sgmail "github.com/sendgrid/sendgrid-go/helpers/mail"
)

const messageColumns = `idem_key, status, params_hash, from_addr, to_addrs, cc_addrs, bcc_addrs, reply_to,
	subject, text_body, html_body, sandbox, message_id, attempts, error_code, error_message, resolution,
	created_at, updated_at`

// begin writes m to the outbox unless its key exists (as pending, or local
// without an API key) and returns the stored message. A stored message
// with other parameters is an ErrIdempotencyMismatch.
func (s *Service) begin(ctx context.Context, m *Message, hash string) (*Message, error) {
	status := StatusPending
	if s.Local() {
		status = StatusLocal
	}
	now := s.now().UnixMicro()
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO email_outbox (`+messageColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', 0, '', '', '', ?, ?)
		ON CONFLICT (idem_key) DO NOTHING`),
		m.Key, string(status), hash, m.From, jsonList(m.To), jsonList(m.Cc), jsonList(m.Bcc), m.ReplyTo,
		m.Subject, m.Text, m.HTML, boolInt(m.Sandbox), now, now)
	if err != nil {
		return nil, fmt.Errorf("email: %s: write outbox: %w", m.Key, err)
	}
	got, storedHash, err := s.get(ctx, m.Key)
	if err != nil {
		return nil, fmt.Errorf("email: %s: %w", m.Key, err)
	}
	if storedHash != hash {
		return nil, newError(m.Key, CodeIdempotencyMismatch, "the outbox holds a different message under this key (subject %q)", got.Subject)
	}
	if status == StatusLocal && got.Status == StatusLocal {
		s.cfg.Logger.InfoContext(ctx, "email: recorded in the local outbox, not sent (no SendGrid API key)",
			"key", got.Key, "to", strings.Join(got.To, ", "), "subject", got.Subject)
	}
	return got, nil
}

func jsonList(v []string) string {
	if v == nil {
		v = []string{}
	}
	b, _ := json.Marshal(v) // strings always encode
	return string(b)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

type scanner interface{ Scan(dest ...any) error }

func scanMessage(r scanner) (*Message, string, error) {
	var (
		m                    Message
		status, code, hash   string
		to, cc, bcc          string
		sandbox              int64
		createdAt, updatedAt int64
	)
	err := r.Scan(&m.Key, &status, &hash, &m.From, &to, &cc, &bcc, &m.ReplyTo, &m.Subject, &m.Text, &m.HTML,
		&sandbox, &m.MessageID, &m.Attempts, &code, &m.ErrorMessage, &m.Resolution, &createdAt, &updatedAt)
	if err != nil {
		return nil, "", err
	}
	m.Status, m.ErrorCode, m.Sandbox = Status(status), Code(code), sandbox != 0
	for _, f := range []struct {
		raw string
		dst *[]string
	}{{to, &m.To}, {cc, &m.Cc}, {bcc, &m.Bcc}} {
		if err := json.Unmarshal([]byte(f.raw), f.dst); err != nil {
			return nil, "", fmt.Errorf("decode addresses of %s: %w", m.Key, err)
		}
		if len(*f.dst) == 0 {
			*f.dst = nil
		}
	}
	m.CreatedAt, m.UpdatedAt = time.UnixMicro(createdAt).UTC(), time.UnixMicro(updatedAt).UTC()
	return &m, hash, nil
}

func (s *Service) get(ctx context.Context, key string) (*Message, string, error) {
	row := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT `+messageColumns+` FROM email_outbox WHERE idem_key = ?`), key)
	m, hash, err := scanMessage(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", ErrNotFound
	}
	if err != nil {
		return nil, "", fmt.Errorf("read outbox: %w", err)
	}
	return m, hash, nil
}

func (s *Service) list(ctx context.Context, opts *ListOpts) ([]Message, error) {
	var o ListOpts
	if opts != nil {
		o = *opts
	}
	if o.Limit <= 0 {
		o.Limit = 100
	}
	q, args := `SELECT `+messageColumns+` FROM email_outbox`, []any{}
	if o.Status != "" {
		q, args = q+` WHERE status = ?`, append(args, string(o.Status))
	}
	q += ` ORDER BY created_at DESC, idem_key LIMIT ?`
	args = append(args, o.Limit)
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("email: list outbox: %w", err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, _, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("email: list outbox: %w", err)
		}
		out = append(out, *m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("email: list outbox: %w", err)
	}
	return out, nil
}

// outcome is what to record on a message.
type outcome struct {
	status        Status
	messageID     string
	keepMessageID bool
	code          Code
	message       string
	resolution    string
}

// settle moves m from one of the from states to o.status and returns the
// message as stored (unchanged if it was in none of them).
func (s *Service) settle(ctx context.Context, m *Message, from []Status, o outcome) (*Message, error) {
	q := `UPDATE email_outbox SET status = ?, error_code = ?, error_message = ?, updated_at = ?`
	args := []any{string(o.status), string(o.code), o.message, s.now().UnixMicro()}
	if !o.keepMessageID {
		q, args = q+`, message_id = ?`, append(args, o.messageID)
	}
	if o.resolution != "" {
		q, args = q+`, resolution = ?`, append(args, o.resolution)
	}
	q += ` WHERE idem_key = ? AND status IN (` + strings.TrimSuffix(strings.Repeat("?, ", len(from)), ", ") + `)`
	args = append(args, m.Key)
	for _, f := range from {
		args = append(args, string(f))
	}
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(q), args...); err != nil {
		return m, fmt.Errorf("email: %s: record %s: %w", m.Key, o.status, err)
	}
	got, _, err := s.get(ctx, m.Key)
	if err != nil {
		return m, fmt.Errorf("email: %s: %w", m.Key, err)
	}
	return got, nil
}

// markUnknown records that a send in flight ended without an answer.
func (s *Service) markUnknown(ctx context.Context, m *Message, cause *Error) (*Message, error) {
	s.cfg.Logger.WarnContext(ctx, "email: outcome of a send is unknown", "key", m.Key, "cause", cause.Error())
	return s.settle(ctx, m, []Status{StatusSending}, outcome{status: StatusUnknown, keepMessageID: true, code: cause.Code, message: cause.Message})
}

func (s *Service) setResolution(ctx context.Context, m *Message, resolution string) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE email_outbox SET resolution = ?, updated_at = ? WHERE idem_key = ?`),
		resolution, s.now().UnixMicro(), m.Key)
	if err != nil {
		return fmt.Errorf("email: %s: record resolution: %w", m.Key, err)
	}
	return nil
}

// deliver claims m (moving it from one of the from states to sending),
// sends it and records the outcome.
func (s *Service) deliver(ctx context.Context, m *Message, from ...Status) (*Message, error) {
	if s.Local() {
		return s.settle(ctx, m, from, outcome{status: StatusLocal})
	}
	q := `UPDATE email_outbox SET status = ?, attempts = attempts + 1, updated_at = ?
		WHERE idem_key = ? AND status IN (` + strings.TrimSuffix(strings.Repeat("?, ", len(from)), ", ") + `)`
	args := []any{string(StatusSending), s.now().UnixMicro(), m.Key}
	for _, f := range from {
		args = append(args, string(f))
	}
	res, err := s.db.ExecContext(ctx, s.db.Rebind(q), args...)
	if err != nil {
		return m, fmt.Errorf("email: %s: claim: %w", m.Key, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		got, _, gerr := s.get(ctx, m.Key)
		if gerr == nil && (got.Status == StatusSent || got.Status == StatusLocal) {
			got.Replayed = true
			return got, nil
		}
		return m, newError(m.Key, CodeBusy, "the message is %s", m.Status)
	}
	m.Status, m.Attempts = StatusSending, m.Attempts+1

	req := sendgrid.GetRequest(s.cfg.APIKey, "/v3/mail/send", s.cfg.BaseURL)
	req.Method = rest.Post
	req.Body = requestBody(m)
	resp, err := (&rest.Client{HTTPClient: s.hc}).SendWithContext(ctx, req)
	if resp == nil {
		if err == nil {
			err = errors.New("no response")
		}
		be := &Error{Key: m.Key, Code: CodeConnection, Message: err.Error(), Err: err}
		if notSent(err) {
			got, serr := s.settle(ctx, m, []Status{StatusSending}, outcome{status: StatusPending, keepMessageID: true, code: be.Code, message: be.Message})
			return got, withErr(be, serr)
		}
		got, serr := s.markUnknown(ctx, m, be)
		return got, withErr(be, serr)
	}
	// A status line is an answer even if reading the body failed.
	switch st := resp.StatusCode; {
	case st == http.StatusAccepted || st == http.StatusOK:
		id := ""
		if v := resp.Headers["X-Message-Id"]; len(v) > 0 {
			id = v[0]
		}
		// A definite answer overrides an unknown recorded meanwhile by an
		// attempt that took this one for dead.
		return s.settle(ctx, m, []Status{StatusSending, StatusUnknown}, outcome{status: StatusSent, messageID: id})
	case st == http.StatusTooManyRequests:
		be := &Error{Key: m.Key, Code: CodeRateLimited, HTTPStatus: st, Message: apiMessage(resp), retryAfter: rateLimitReset(resp, s.now())}
		got, serr := s.settle(ctx, m, []Status{StatusSending}, outcome{status: StatusPending, keepMessageID: true, code: be.Code, message: be.Message})
		return got, withErr(be, serr)
	case st == http.StatusUnauthorized || st == http.StatusForbidden:
		be := &Error{Key: m.Key, Code: CodeAuthentication, HTTPStatus: st, Message: apiMessage(resp)}
		got, serr := s.settle(ctx, m, []Status{StatusSending}, outcome{status: StatusPending, keepMessageID: true, code: be.Code, message: be.Message})
		return got, withErr(be, serr)
	case st >= 400 && st < 500:
		be := &Error{Key: m.Key, Code: CodeRejected, HTTPStatus: st, Message: apiMessage(resp)}
		got, serr := s.settle(ctx, m, []Status{StatusSending}, outcome{status: StatusFailed, keepMessageID: true, code: be.Code, message: be.Message})
		return got, withErr(be, serr)
	default:
		be := &Error{Key: m.Key, Code: CodeUnavailable, HTTPStatus: st, Message: fmt.Sprintf("HTTP %d: %s", st, apiMessage(resp))}
		got, serr := s.markUnknown(ctx, m, be)
		return got, withErr(be, serr)
	}
}

// notSent reports whether a transport error happened before any byte of
// the request could reach SendGrid: the connection was never made.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// apiMessage extracts SendGrid's error messages from a response body.
func apiMessage(resp *rest.Response) string {
	var body struct {
		Errors []struct {
			Message string  `json:"message"`
			Field   *string `json:"field"`
		} `json:"errors"`
	}
	if json.Unmarshal([]byte(resp.Body), &body) != nil || len(body.Errors) == 0 {
		return strings.TrimSpace(resp.Body)
	}
	var parts []string
	for _, e := range body.Errors {
		if e.Field != nil && *e.Field != "" {
			parts = append(parts, *e.Field+": "+e.Message)
		} else {
			parts = append(parts, e.Message)
		}
	}
	return strings.Join(parts, "; ")
}

// rateLimitReset reads X-RateLimit-Reset (a Unix time) as a wait.
func rateLimitReset(resp *rest.Response, now time.Time) time.Duration {
	v := resp.Headers["X-Ratelimit-Reset"]
	if len(v) == 0 {
		return 0
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil {
		return 0
	}
	return max(0, time.Unix(n, 0).Sub(now))
}

// requestBody builds the v3 mail send request of m.
func requestBody(m *Message) []byte {
	sg := sgmail.NewV3Mail()
	sg.SetFrom(sgEmail(m.From))
	sg.Subject = m.Subject
	p := sgmail.NewPersonalization()
	for _, a := range m.To {
		p.AddTos(sgEmail(a))
	}
	for _, a := range m.Cc {
		p.AddCCs(sgEmail(a))
	}
	for _, a := range m.Bcc {
		p.AddBCCs(sgEmail(a))
	}
	sg.AddPersonalizations(p)
	// SendGrid requires text/plain before text/html.
	if m.Text != "" {
		sg.AddContent(sgmail.NewContent("text/plain", m.Text))
	}
	if m.HTML != "" {
		sg.AddContent(sgmail.NewContent("text/html", m.HTML))
	}
	if m.ReplyTo != "" {
		sg.SetReplyTo(sgEmail(m.ReplyTo))
	}
	sg.SetCustomArg(CustomArgKey, m.Key)
	if m.Sandbox {
		sg.SetMailSettings(sgmail.NewMailSettings().SetSandboxMode(sgmail.NewSetting(true)))
	}
	return sgmail.GetRequestBody(sg)
}

// sgEmail converts a validated address.
func sgEmail(a string) *sgmail.Email {
	addr, err := mail.ParseAddress(a)
	if err != nil {
		return sgmail.NewEmail("", a) // validated before; unreachable
	}
	return sgmail.NewEmail(addr.Name, addr.Address)
}

// withErr returns be, joined with err when recording the outcome failed.
func withErr(be *Error, err error) error {
	if err == nil {
		return be
	}
	return errors.Join(be, err)
}
