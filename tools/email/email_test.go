package email_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/tools/email"
	"github.com/keelhq/keel/tools/email/sendgridfake"
)

func TestSendOnce(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, open dbOpener) {
		b := setup(t, open, nil)
		ctx := t.Context()

		m, err := b.svc.Send(ctx, reply("run-1-4/email"))
		require.NoError(t, err)
		require.Equal(t, email.StatusSent, m.Status)
		require.Equal(t, 1, m.Attempts)
		require.False(t, m.Replayed)
		require.Equal(t, sender, m.From, "Config.From")

		sent := b.fake.Sent()
		require.Len(t, sent, 1)
		require.Equal(t, sent[0].MessageID, m.MessageID)
		require.Equal(t, "run-1-4/email", sent[0].Key, "the key travels in custom_args")
		require.Equal(t, "support@keel.example", sent[0].From)
		require.Equal(t, []string{"ada@example.com"}, sent[0].To)
		require.Equal(t, []string{"ops@example.com"}, sent[0].Cc)
		require.Equal(t, "Your ticket T-1 is resolved", sent[0].Subject)
		require.Contains(t, sent[0].Content["text/plain"], "reset your password")
		require.Contains(t, sent[0].Content["text/html"], "<p>")
		require.False(t, sent[0].Sandbox)

		again, err := b.svc.Send(ctx, reply("run-1-4/email"))
		require.NoError(t, err)
		require.True(t, again.Replayed)
		require.Equal(t, m.MessageID, again.MessageID)
		require.Equal(t, 1, b.fake.Requests(), "the outbox answered")

		got, err := b.svc.Get(ctx, "run-1-4/email")
		require.NoError(t, err)
		require.Equal(t, []string{"Ada Lovelace <ada@example.com>"}, got.To)
		require.Equal(t, email.StatusSent, got.Status)
	})
}

// SendGrid accepted the message but the connection closed before its
// answer: the outbox records the outcome as unknown. With PolicyAsk the
// retry sends nothing and asks; with PolicyResend it sends again.
func TestAcceptedThenDropped(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, open dbOpener) {
		t.Run("ask", func(t *testing.T) {
			t.Parallel()
			b := setup(t, open, nil)
			ctx := t.Context()
			b.fake.Inject(sendgridfake.Fault{Drop: true})

			m, err := b.svc.Send(ctx, reply("k"))
			requireCode(t, err, email.CodeConnection, email.ErrConnection)
			require.Equal(t, email.StatusUnknown, m.Status)
			require.Equal(t, 1, b.fake.Count("k"), "SendGrid did accept it")

			m, err = b.svc.Send(ctx, reply("k"))
			requireCode(t, err, email.CodeOutcomeUnknown, email.ErrOutcomeUnknown)
			require.Equal(t, email.StatusUnknown, m.Status)
			require.Equal(t, 1, b.fake.Requests(), "the retry did not send")
			require.Equal(t, 1, m.Attempts)
			var ae *durable.ApplicationError
			require.True(t, errors.As(err, &ae))
			require.Equal(t, "email.outcome_unknown", ae.Type)

			unknown, err := b.svc.List(ctx, &email.ListOpts{Status: email.StatusUnknown})
			require.NoError(t, err)
			require.Len(t, unknown, 1)

			// Someone checked: it arrived.
			m, err = b.svc.Resolve(ctx, "k", email.ResolveMarkSent)
			require.NoError(t, err)
			require.Equal(t, email.StatusSent, m.Status)
			require.Equal(t, "marked_sent", m.Resolution)
			m, err = b.svc.Resolve(ctx, "k", email.ResolveMarkSent)
			require.NoError(t, err)
			require.True(t, m.Replayed)
			m, err = b.svc.Send(ctx, reply("k"))
			require.NoError(t, err)
			require.True(t, m.Replayed)
			require.Equal(t, 1, b.fake.Count("k"))
		})
		t.Run("resend", func(t *testing.T) {
			t.Parallel()
			b := setup(t, open, &email.Config{OnUnknown: email.PolicyResend})
			ctx := t.Context()
			b.fake.Inject(sendgridfake.Fault{Drop: true})

			_, err := b.svc.Send(ctx, reply("k"))
			requireCode(t, err, email.CodeConnection, email.ErrConnection)
			m, err := b.svc.Send(ctx, reply("k"))
			require.NoError(t, err)
			require.Equal(t, email.StatusSent, m.Status)
			require.Equal(t, 2, m.Attempts)
			// Documented: the recipient gets it twice, both copies with the
			// same key in custom_args.
			require.Equal(t, 2, b.fake.Count("k"))
			_, err = b.svc.Send(ctx, reply("k"))
			require.NoError(t, err)
			require.Equal(t, 2, b.fake.Count("k"), "a sent message is not sent again")
		})
	})
}

// A 5xx and a timeout leave the outcome unknown; a 429, a refused
// connection and a refused key are known not to have sent, and the retry
// sends; a 4xx rejection is final.
func TestFailureOutcomes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	t.Run("500", func(t *testing.T) {
		t.Parallel()
		b := setup(t, sqliteDB, nil)
		b.fake.Inject(sendgridfake.Fault{Status: http.StatusInternalServerError})
		m, err := b.svc.Send(ctx, reply("k"))
		ee := requireCode(t, err, email.CodeUnavailable, email.ErrUnavailable)
		require.Equal(t, http.StatusInternalServerError, ee.HTTPStatus)
		require.Equal(t, email.StatusUnknown, m.Status)
		_, err = b.svc.Send(ctx, reply("k"))
		requireCode(t, err, email.CodeOutcomeUnknown, email.ErrOutcomeUnknown)
		require.Equal(t, 0, b.fake.Count("k"))

		// A person decided to send it again.
		m, err = b.svc.Resolve(ctx, "k", email.ResolveResend)
		require.NoError(t, err)
		require.Equal(t, email.StatusSent, m.Status)
		require.Equal(t, "resent", m.Resolution)
		require.Equal(t, 1, b.fake.Count("k"))
		m, err = b.svc.Resolve(ctx, "k", email.ResolveResend)
		require.NoError(t, err)
		require.True(t, m.Replayed, "a repeated decision is not applied twice")
		require.Equal(t, 1, b.fake.Count("k"))
	})

	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		fake := sendgridfake.NewServer()
		t.Cleanup(fake.Close)
		svc := newService(t, sqliteDB(t), fake, &email.Config{
			HTTPClient: &http.Client{Timeout: 200 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}},
		})
		fake.Inject(sendgridfake.Fault{Hang: true})
		m, err := svc.Send(ctx, reply("k"))
		requireCode(t, err, email.CodeConnection, email.ErrConnection)
		require.Equal(t, email.StatusUnknown, m.Status)
		require.Equal(t, 1, fake.Count("k"))
		_, err = svc.Send(ctx, reply("k"))
		requireCode(t, err, email.CodeOutcomeUnknown, email.ErrOutcomeUnknown)
		require.Equal(t, 1, fake.Requests())
	})

	t.Run("429", func(t *testing.T) {
		t.Parallel()
		b := setup(t, sqliteDB, nil)
		b.fake.Inject(sendgridfake.Fault{Status: http.StatusTooManyRequests})
		m, err := b.svc.Send(ctx, reply("k"))
		ee := requireCode(t, err, email.CodeRateLimited, email.ErrRateLimited)
		require.Equal(t, http.StatusTooManyRequests, ee.HTTPStatus)
		require.Equal(t, email.StatusPending, m.Status)
		m, err = b.svc.Send(ctx, reply("k"))
		require.NoError(t, err)
		require.Equal(t, email.StatusSent, m.Status)
		require.Equal(t, 1, b.fake.Count("k"))
	})

	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		fake := sendgridfake.NewServer()
		url := fake.URL
		fake.Close()
		svc := newService(t, sqliteDB(t), fake, &email.Config{BaseURL: url})
		m, err := svc.Send(ctx, reply("k"))
		requireCode(t, err, email.CodeConnection, email.ErrConnection)
		require.Equal(t, email.StatusPending, m.Status, "the request never left: known not sent")
	})

	t.Run("bad key", func(t *testing.T) {
		t.Parallel()
		b := setup(t, sqliteDB, &email.Config{APIKey: "SG.wrong"})
		m, err := b.svc.Send(ctx, reply("k"))
		ee := requireCode(t, err, email.CodeAuthentication, email.ErrAuthentication)
		require.Equal(t, http.StatusUnauthorized, ee.HTTPStatus)
		require.Equal(t, email.StatusPending, m.Status)
		require.Empty(t, b.fake.Sent())
	})

	t.Run("rejected", func(t *testing.T) {
		t.Parallel()
		b := setup(t, sqliteDB, nil)
		b.fake.Inject(sendgridfake.Fault{Status: http.StatusBadRequest})
		m, err := b.svc.Send(ctx, reply("k"))
		requireCode(t, err, email.CodeRejected, email.ErrRejected)
		require.Equal(t, email.StatusFailed, m.Status)
		m, err = b.svc.Send(ctx, reply("k"))
		requireCode(t, err, email.CodeRejected, email.ErrRejected)
		require.True(t, m.Replayed)
		require.Equal(t, 1, b.fake.Requests())
	})
}

func TestSendValidation(t *testing.T) {
	t.Parallel()
	b := setup(t, sqliteDB, nil)
	ctx := t.Context()
	ok := reply("k")
	for name, mutate := range map[string]func(p *email.SendParams){
		"no recipient":  func(p *email.SendParams) { p.To = nil },
		"bad address":   func(p *email.SendParams) { p.To = []string{"not an address"} },
		"duplicate":     func(p *email.SendParams) { p.Cc = []string{"ADA@example.com"} },
		"no subject":    func(p *email.SendParams) { p.Subject = " " },
		"no body":       func(p *email.SendParams) { p.Text, p.HTML = "", "" },
		"bad sender":    func(p *email.SendParams) { p.From = "nobody" },
		"bad reply-to":  func(p *email.SendParams) { p.ReplyTo = "x@" },
		"too many rcpt": func(p *email.SendParams) { p.Bcc = make([]string, 1000) },
	} {
		p := ok
		p.Key = name
		mutate(&p)
		m, err := b.svc.Send(ctx, p)
		requireCode(t, err, email.CodeInvalidMessage, email.ErrInvalidMessage)
		require.Nil(t, m, name)
	}
	list, err := b.svc.List(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, list, "nothing written")
	require.Zero(t, b.fake.Requests())

	_, err = b.svc.Send(ctx, ok)
	require.NoError(t, err)
	other := ok
	other.Subject = "Something else"
	_, err = b.svc.Send(ctx, other)
	requireCode(t, err, email.CodeIdempotencyMismatch, email.ErrIdempotencyMismatch)

	noKey := ok
	noKey.Key = ""
	_, err = b.svc.Send(ctx, noKey)
	require.ErrorIs(t, err, email.ErrNoIdempotencyKey)

	_, err = email.New(ctx, b.db, &email.Config{OnUnknown: "maybe"})
	require.Error(t, err)
	_, err = email.New(ctx, b.db, &email.Config{From: "@@"})
	require.Error(t, err)
}

func TestResolve(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, open dbOpener) {
		b := setup(t, open, nil)
		ctx := t.Context()
		_, err := b.svc.Send(ctx, reply("sent"))
		require.NoError(t, err)
		_, err = b.svc.Resolve(ctx, "sent", email.ResolveResend)
		requireCode(t, err, email.CodeInvalidState, email.ErrInvalidState)
		_, err = b.svc.Resolve(ctx, "sent", "shrug")
		requireCode(t, err, email.CodeInvalidState, email.ErrInvalidState)
		_, err = b.svc.Resolve(ctx, "missing", email.ResolveCancel)
		require.ErrorIs(t, err, email.ErrNotFound)

		b.fake.Inject(sendgridfake.Fault{Status: http.StatusBadGateway})
		_, err = b.svc.Send(ctx, reply("lost"))
		requireCode(t, err, email.CodeUnavailable, email.ErrUnavailable)
		m, err := b.svc.Resolve(ctx, "lost", email.ResolveCancel)
		require.NoError(t, err)
		require.Equal(t, email.StatusCanceled, m.Status)
		_, err = b.svc.Send(ctx, reply("lost"))
		requireCode(t, err, email.CodeCanceled, email.ErrCanceled)
		_, err = b.svc.Resolve(ctx, "lost", email.ResolveResend)
		requireCode(t, err, email.CodeInvalidState, email.ErrInvalidState)
		require.Equal(t, 0, b.fake.Count("lost"))
	})
}

func TestSandbox(t *testing.T) {
	t.Parallel()
	b := setup(t, sqliteDB, &email.Config{Sandbox: true})
	m, err := b.svc.Send(t.Context(), reply("k"))
	require.NoError(t, err)
	require.Equal(t, email.StatusSent, m.Status)
	require.True(t, m.Sandbox)
	sent := b.fake.Sent()
	require.Len(t, sent, 1)
	require.True(t, sent[0].Sandbox)
	var body struct {
		MailSettings struct {
			SandboxMode struct {
				Enable bool `json:"enable"`
			} `json:"sandbox_mode"`
		} `json:"mail_settings"`
	}
	require.NoError(t, json.Unmarshal(sent[0].Body, &body))
	require.True(t, body.MailSettings.SandboxMode.Enable)
}

// Without an API key, messages go to the local outbox only: recorded,
// listed, never sent.
func TestLocalOutbox(t *testing.T) {
	// Not parallel: it clears SENDGRID_API_KEY.
	t.Setenv(email.APIKeyEnv, "")
	for name, open := range map[string]dbOpener{"sqlite": sqliteDB, "postgres": postgresDB} {
		t.Run(name, func(t *testing.T) { testLocalOutbox(t, open) })
	}
}

func testLocalOutbox(t *testing.T, open dbOpener) {
	{
		fake := sendgridfake.NewServer()
		t.Cleanup(fake.Close)
		svc, err := email.New(t.Context(), open(t), &email.Config{BaseURL: fake.URL, From: sender})
		require.NoError(t, err)
		require.True(t, svc.Local())
		ctx := t.Context()

		m, err := svc.Send(ctx, reply("k1"))
		require.NoError(t, err)
		require.Equal(t, email.StatusLocal, m.Status)
		require.Zero(t, m.Attempts)
		again, err := svc.Send(ctx, reply("k1"))
		require.NoError(t, err)
		require.True(t, again.Replayed)
		second := reply("k2")
		second.Subject = "Second"
		_, err = svc.Send(ctx, second)
		require.NoError(t, err)

		list, err := svc.List(ctx, &email.ListOpts{Status: email.StatusLocal})
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.ElementsMatch(t, []string{"k1", "k2"}, []string{list[0].Key, list[1].Key})
		require.Equal(t, "Hi Ada, reset your password from the login page.", list[0].Text)
		require.Zero(t, fake.Requests(), "nothing was sent")
	}
}
