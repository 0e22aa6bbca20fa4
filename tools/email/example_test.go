package email_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/tools/email"
	"github.com/keelhq/keel/tools/email/sendgridfake"
)

// A message is sent once per key: sending it again returns the outbox
// row, and SendGrid sees one request.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "email-example-")
	defer os.RemoveAll(dir)
	db, _ := appdb.Open(ctx, filepath.Join(dir, "keel.db"))
	defer db.Close()

	// A fake SendGrid stands in for api.sendgrid.com; in production leave
	// APIKey and BaseURL empty and set SENDGRID_API_KEY.
	sendgrid := sendgridfake.NewServer()
	defer sendgrid.Close()
	svc, err := email.New(ctx, db, &email.Config{
		APIKey: sendgridfake.APIKey, BaseURL: sendgrid.URL, From: "Support <support@example.com>",
	})
	if err != nil {
		panic(err)
	}
	defer svc.Close()

	p := email.SendParams{
		To: []string{"ada@example.com"}, Subject: "Ticket T-1 resolved", Text: "Reset your password from the login page.",
		Key: "ticket-T-1/reply", // inside an activity, leave it empty: the activity's key is used
	}
	m, _ := svc.Send(ctx, p)
	again, _ := svc.Send(ctx, p)
	fmt.Println(m.Status, again.Replayed, sendgrid.Count("ticket-T-1/reply"))
	// Output: sent true 1
}

// SendGrid took the message but the connection closed before it answered.
// Under PolicyAsk the retry does not send again: it reports the unknown
// outcome, and a person's decision settles it.
func ExampleService_Resolve() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "email-example-")
	defer os.RemoveAll(dir)
	db, _ := appdb.Open(ctx, filepath.Join(dir, "keel.db"))
	defer db.Close()
	sendgrid := sendgridfake.NewServer()
	defer sendgrid.Close()
	svc, _ := email.New(ctx, db, &email.Config{
		APIKey: sendgridfake.APIKey, BaseURL: sendgrid.URL, From: "support@example.com",
		Logger: slog.New(slog.DiscardHandler),
	})
	defer svc.Close()

	sendgrid.Inject(sendgridfake.Fault{Drop: true})
	p := email.SendParams{To: []string{"ada@example.com"}, Subject: "Refund issued", Text: "…", Key: "refund-7/notice"}
	m, err := svc.Send(ctx, p)
	fmt.Println(m.Status, errors.Is(err, email.ErrConnection))
	m, err = svc.Send(ctx, p) // the activity's retry
	fmt.Println(m.Status, errors.Is(err, email.ErrOutcomeUnknown))

	// Someone found it in the recipient's mailbox.
	m, _ = svc.Resolve(ctx, "refund-7/notice", email.ResolveMarkSent)
	fmt.Println(m.Status, m.Resolution, sendgrid.Count("refund-7/notice"))
	// Output:
	// unknown true
	// unknown true
	// sent marked_sent 1
}

// Without an API key nothing leaves the machine: messages are kept in the
// local outbox and listed.
func ExampleService_List() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "email-example-")
	defer os.RemoveAll(dir)
	db, _ := appdb.Open(ctx, filepath.Join(dir, "keel.db"))
	defer db.Close()
	os.Unsetenv(email.APIKeyEnv)
	svc, _ := email.New(ctx, db, &email.Config{From: "support@example.com", Logger: slog.New(slog.DiscardHandler)})
	defer svc.Close()

	_, _ = svc.Send(ctx, email.SendParams{To: []string{"ada@example.com"}, Subject: "Ticket T-1 resolved", Text: "Done.", Key: "t-1"})
	list, _ := svc.List(ctx, nil)
	for _, m := range list {
		fmt.Println(m.Status, m.To, m.Subject)
	}
	// Output: local [ada@example.com] Ticket T-1 resolved
}
