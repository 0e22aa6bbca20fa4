package setup

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"

	"github.com/keelhq/keel/agent"
	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/billing"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/llm/offline"
	"github.com/keelhq/keel/llm/openai"
	"github.com/keelhq/keel/tools"
	"github.com/keelhq/keel/tools/crm"
	"github.com/keelhq/keel/tools/email"
	"github.com/keelhq/keel/tools/kb"
	"github.com/keelhq/keel/tools/ticket"
)

// ModelName is the name under which Env registers its model on the agent
// Runtime; the examples' agents name it in Agent.Model.
const ModelName = "examples"

// DefaultFrom is the sender of the examples' emails unless Config.Email
// names one.
const DefaultFrom = "Keel demo <demo@keel.example>"

// DefaultTaskQueue is the task queue the examples' workflows run on.
const DefaultTaskQueue = "default"

// ReviewerGroups returns the reviewer groups the examples ask for approval,
// used when Config.Approvals is nil: "legal" (the lawyers who approve a
// memo), "partners" (who decide when the lawyers do not) and
// "sales-managers". Each holds a named demo reviewer and "local", the
// identity `keel serve` gives a loopback client when no API key exists, so
// that a local user can decide on the reviewer pages.
func ReviewerGroups() hitl.Groups {
	return hitl.Groups{
		"legal":          {"lena", "local"},
		"partners":       {"paula", "local"},
		"sales-managers": {"sam", "local"},
	}
}

// ModelFromEnv returns the model the examples run on: OpenAI's chat API
// (package llm/openai, which reads OPENAI_API_KEY, OPENAI_BASE_URL and
// OPENAI_MODEL) when OPENAI_API_KEY is set, else the deterministic offline
// model (package llm/offline), which needs no network.
func ModelFromEnv() (llm.Model, error) {
	if os.Getenv("OPENAI_API_KEY") == "" {
		return offline.New(nil), nil
	}
	m, err := openai.New(nil)
	if err != nil {
		return nil, fmt.Errorf("setup: openai model: %w", err)
	}
	return m, nil
}

// Config configures an Env. A nil *Config takes every default.
type Config struct {
	// Model answers the examples' agents. Optional; default ModelFromEnv.
	Model llm.Model
	// Runtime is the agent runtime to register the examples' agents on;
	// an engine has one (it owns the model activity). Optional; default a
	// new Runtime on the engine.
	Runtime *agent.Runtime
	// Approvals is the engine's approval service. Optional; default a new
	// one (hitl.New registers its activities on the engine, so an engine
	// has one) with ReviewerGroups and the link secret from
	// KEEL_LINK_SECRET, else a random one.
	Approvals *hitl.Service
	// Email configures the email service. Optional; default
	// SENDGRID_API_KEY and SENDGRID_BASE_URL from the environment, and
	// From DefaultFrom. Without an API key messages stay in the local
	// outbox (status "local").
	Email *email.Config
	// Billing configures the billing service. Optional; default
	// STRIPE_SECRET_KEY and STRIPE_API_BASE from the environment; without
	// a secret key, charges are recorded in the local ledger only.
	Billing *billing.Config
	// NoBilling leaves Env.Billing nil, even when a Stripe secret key is
	// configured: the examples charge nothing.
	NoBilling bool
	// NoDemoData skips loading the demo data (the knowledge base's
	// articles, the CRM's customers and the demo tickets T-1 to T-3),
	// which New otherwise writes; loading it again changes nothing.
	NoDemoData bool
	// Logger. Optional; default slog.Default().
	Logger *slog.Logger

	// Test holds settings for tests.
	Test TestConfig
}

// TestConfig holds settings for tests.
type TestConfig struct {
	// Clock is the engine's fake clock, given to the approval service so
	// that its deadlines follow workflow time. Optional.
	Clock durable.Clock
}

// Env is what the examples are built on: one engine, its agent runtime
// and model, and the application services, all on one database.
type Env struct {
	Engine  *durable.Engine
	Runtime *agent.Runtime
	// Model is the name of the model on Runtime (ModelName).
	Model string
	// ModelKind says which model answers: "offline" or "openai".
	ModelKind string
	DB        *appdb.DB
	CRM       *crm.Store
	KB        *kb.Store
	Tickets   *ticket.Store
	Email     *email.Service
	// Billing records charges: through Stripe with a secret key, else in
	// the local ledger only (billing's local mode). Nil with NoBilling.
	Billing   *billing.Service
	Approvals *hitl.Service
	Logger    *slog.Logger
	// Tools are the built-in tools the examples' agents share.
	Tools Tools

	queues []string
}

// Tools are built-in tools on the Env's stores. An engine registers each
// tool's activity once, under the tool's name, so every agent that offers
// one of these offers this instance.
type Tools struct {
	// CRMLookup is crm_lookup_customer on Env.CRM.
	CRMLookup *tools.Tool
	// KBSearch is kb_search on Env.KB.
	KBSearch *tools.Tool
	// TicketGet is ticket_get on Env.Tickets.
	TicketGet *tools.Tool
}

// New sets up the examples' Env on an engine (before or after it starts)
// and its application database: it migrates the CRM, knowledge base,
// ticket, outbox, ledger and approval tables, loads the demo data, and
// registers the model on the agent runtime.
func New(ctx context.Context, e *durable.Engine, db *appdb.DB, cfg *Config) (*Env, error) {
	if e == nil || db == nil {
		return nil, errors.New("setup: an engine and a database are required")
	}
	c := Config{}
	if cfg != nil {
		c = *cfg
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	env := &Env{Engine: e, DB: db, Logger: c.Logger, Model: ModelName, queues: []string{DefaultTaskQueue}}

	m := c.Model
	if m == nil {
		var err error
		if m, err = ModelFromEnv(); err != nil {
			return nil, err
		}
	}
	env.ModelKind = "openai"
	if _, ok := m.(*offline.Model); ok {
		env.ModelKind = "offline"
	}
	rt := c.Runtime
	if rt == nil {
		var err error
		if rt, err = agent.NewRuntime(e, &agent.Config{Logger: c.Logger}); err != nil {
			return nil, fmt.Errorf("setup: agent runtime: %w", err)
		}
	}
	if err := rt.RegisterModel(ModelName, m); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	env.Runtime = rt

	var err error
	if env.CRM, err = crm.New(ctx, db, nil); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	if env.KB, err = kb.New(ctx, db, nil); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	if env.Tickets, err = ticket.New(ctx, db, nil); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	env.Tools = Tools{
		CRMLookup: crm.LookupTool(env.CRM, nil),
		KBSearch:  kb.SearchTool(env.KB, nil),
		TicketGet: ticket.GetTool(env.Tickets, nil),
	}
	if !c.NoDemoData {
		if err := LoadDemoData(ctx, env); err != nil {
			return nil, err
		}
	}

	ec := email.Config{}
	if c.Email != nil {
		ec = *c.Email
	}
	if ec.From == "" {
		ec.From = DefaultFrom
	}
	if ec.Logger == nil {
		ec.Logger = c.Logger
	}
	if env.Email, err = email.New(ctx, db, &ec); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}

	if !c.NoBilling {
		bc := billing.Config{}
		if c.Billing != nil {
			bc = *c.Billing
		}
		if bc.Logger == nil {
			bc.Logger = c.Logger
		}
		// Without a Stripe key the examples charge in the local ledger
		// only, as their email stays in the local outbox.
		bc.Local = true
		env.Billing, err = billing.New(ctx, db, &bc)
		switch {
		case errors.Is(err, billing.ErrNoSecretKey):
			env.Billing = nil
			c.Logger.Info("setup: no Stripe secret key (STRIPE_SECRET_KEY): the examples record no charges")
		case err != nil:
			_ = env.Email.Close()
			return nil, fmt.Errorf("setup: %w", err)
		}
	}

	env.Approvals = c.Approvals
	if env.Approvals == nil {
		hc := &hitl.Config{Groups: ReviewerGroups(), Logger: c.Logger, Test: hitl.TestConfig{Clock: c.Test.Clock}}
		if len(os.Getenv(hitl.LinkSecretEnv)) < hitl.MinLinkSecret {
			hc.LinkSecret = make([]byte, 32)
			_, _ = rand.Read(hc.LinkSecret)
		}
		if env.Approvals, err = hitl.New(ctx, db, e, hc); err != nil {
			_ = env.Close()
			return nil, fmt.Errorf("setup: %w", err)
		}
	}
	return env, nil
}

// LoadDemoData writes the demo data to env's stores: the knowledge base's
// twelve articles (kb.LoadDemo), the CRM's three customers (crm.SeedDemo)
// and the tickets T-1 to T-3 (ticket.SeedDemo). Loading it again changes
// nothing.
func LoadDemoData(ctx context.Context, env *Env) error {
	if _, err := kb.LoadDemo(ctx, env.KB); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if err := crm.SeedDemo(ctx, env.CRM); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if err := ticket.SeedDemo(ctx, env.Tickets); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	return nil
}

// AddTaskQueue records that the examples need a worker on queue.
func (env *Env) AddTaskQueue(queue string) {
	if queue != "" && !slices.Contains(env.queues, queue) {
		env.queues = append(env.queues, queue)
	}
}

// Start starts a run of wf with input in on env's engine, the Start of
// every example. opts may be nil; its TaskQueue defaults to queue, the
// example's.
func Start[In, Out any](ctx context.Context, env *Env, wf *durable.Workflow[In, Out], in In, queue string,
	opts *durable.StartOptions) (*durable.Handle[Out], error) {
	o := durable.StartOptions{}
	if opts != nil {
		o = *opts
	}
	if o.TaskQueue == "" {
		o.TaskQueue = queue
	}
	return wf.Start(ctx, env.Engine, in, &o)
}

// TaskQueues returns the task queues that need a worker: the examples'
// own and those of the agents registered on the Runtime, sorted.
func (env *Env) TaskQueues() []string {
	qs := slices.Clone(env.queues)
	for _, q := range env.Runtime.TaskQueues() {
		if !slices.Contains(qs, q) {
			qs = append(qs, q)
		}
	}
	slices.Sort(qs)
	return qs
}

// Close releases the email and billing services' HTTP connections. It
// closes neither the database nor the engine.
func (env *Env) Close() error {
	var errs []error
	if env.Email != nil {
		errs = append(errs, env.Email.Close())
	}
	if env.Billing != nil {
		errs = append(errs, env.Billing.Close())
	}
	return errors.Join(errs...)
}
