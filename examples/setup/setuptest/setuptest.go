// Package setuptest runs the example agents in tests: an engine with a
// fake clock that skips time (package durabletest), the examples' Env on
// the same database (a SQLite file, or a Postgres schema), the offline
// model, a fake Stripe (package billing/stripefake) that knows the demo
// customers, and the local email outbox.
//
//	b := setuptest.New(t, nil)
//	x, err := support.New(b.Env, nil)
//	h := durabletest.Start(t, b.Test, x.Workflow, support.DemoRequest(), nil)
//	out, err := durabletest.Result(t, b.Test, h)
package setuptest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/billing"
	"github.com/keelhq/keel/billing/stripefake"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/durabletest"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/internal/testdb"
	"github.com/keelhq/keel/llm/offline"
	"github.com/keelhq/keel/tools/crm"
	"github.com/keelhq/keel/tools/email"
	"github.com/keelhq/keel/tools/email/sendgridfake"
)

// DemoPaymentMethod is the saved payment method of the demo customers at
// the fake Stripe: a card that is charged successfully.
const DemoPaymentMethod = "pm_card_visa"

// linkSecret signs review links in tests.
const linkSecret = "setuptest review link secret, 32+ bytes"

// Options configure New. A nil *Options takes every default.
type Options struct {
	// Postgres runs on a schema of the Postgres test server
	// (TEST_DATABASE_URL; the test is skipped without it, and fails under
	// CI=true) instead of a SQLite file.
	Postgres bool
	// TaskQueues lists task queues that get a worker besides "default".
	TaskQueues []string
	// NoBilling leaves Env.Billing nil, as without a Stripe key.
	NoBilling bool
	// SendGrid sends the email through a fake SendGrid (Bundle.SendGrid)
	// instead of keeping it in the local outbox. It is on whenever
	// SENDGRID_API_KEY is set, so that a test never sends real email.
	SendGrid bool
	// Groups are the reviewer groups of the approval service. Optional;
	// default setup.ReviewerGroups.
	Groups hitl.Groups
	// Timeout bounds each wait of the durabletest Env. Optional; default
	// two minutes.
	Timeout time.Duration
}

// Bundle is what New sets up.
type Bundle struct {
	// Env is the examples' Env; build an example on it.
	Env *setup.Env
	// Test is the engine under test, with its fake clock.
	Test *durabletest.Env
	// DB is the application database.
	DB *appdb.DB
	// Stripe is the fake Stripe API that Env.Billing charges; nil with
	// Options.NoBilling.
	Stripe *stripefake.Server
	// SendGrid is the fake SendGrid API; nil unless email is sent through
	// it.
	SendGrid *sendgridfake.Server
}

// New sets up a Bundle for the test. Everything is closed when the test
// ends.
func New(t testing.TB, opts *Options) *Bundle {
	t.Helper()
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	ctx := context.Background()
	b := &Bundle{}

	var st store.Store
	if o.Postgres {
		pool := testdb.Postgres(t)
		pg, err := pgstore.New(ctx, pool, nil)
		if err != nil {
			t.Fatalf("setuptest: pgstore: %v", err)
		}
		t.Cleanup(func() { _ = pg.Close() })
		st, b.DB = pg, appdb.FromPool(pool)
	} else {
		path := filepath.Join(t.TempDir(), "keel.db")
		sq, err := sqlitestore.Open(path, nil)
		if err != nil {
			t.Fatalf("setuptest: sqlitestore: %v", err)
		}
		t.Cleanup(func() { _ = sq.Close() })
		db, err := appdb.Open(ctx, path)
		if err != nil {
			t.Fatalf("setuptest: appdb: %v", err)
		}
		t.Cleanup(func() { _ = db.Close() })
		st, b.DB = sq, db
	}
	b.Test = durabletest.NewEnv(t, &durabletest.EnvOptions{Store: st, TaskQueues: o.TaskQueues, Timeout: o.Timeout})

	cfg := &setup.Config{
		Model:     offline.New(nil),
		Logger:    slog.New(slog.DiscardHandler),
		NoBilling: o.NoBilling,
		Email:     &email.Config{},
		Test:      setup.TestConfig{Clock: b.Test.Clock},
	}
	if !o.NoBilling {
		b.Stripe = stripefake.NewServer()
		t.Cleanup(b.Stripe.Close)
		for _, c := range []string{crm.DemoAda, crm.DemoGrace, crm.DemoAlan} {
			b.Stripe.AddCustomer(c, DemoPaymentMethod)
		}
		cfg.Billing = &billing.Config{SecretKey: stripefake.SecretKey, APIBase: b.Stripe.URL, HTTPClient: b.Stripe.Client()}
	}
	if o.SendGrid || os.Getenv(email.APIKeyEnv) != "" {
		b.SendGrid = sendgridfake.NewServer()
		t.Cleanup(b.SendGrid.Close)
		cfg.Email = &email.Config{APIKey: sendgridfake.APIKey, BaseURL: b.SendGrid.URL}
	}
	if o.Groups != nil {
		svc, err := hitl.New(ctx, b.DB, b.Test.Engine, &hitl.Config{Groups: o.Groups, LinkSecret: []byte(linkSecret),
			Logger: cfg.Logger, Test: hitl.TestConfig{Clock: b.Test.Clock}})
		if err != nil {
			t.Fatalf("setuptest: %v", err)
		}
		cfg.Approvals = svc
	}
	env, err := setup.New(ctx, b.Test.Engine, b.DB, cfg)
	if err != nil {
		t.Fatalf("setuptest: %v", err)
	}
	t.Cleanup(func() { _ = env.Close() })
	b.Env = env
	return b
}

// Engine returns the engine under test.
func (b *Bundle) Engine() *durable.Engine { return b.Test.Engine }
