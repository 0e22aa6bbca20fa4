package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/examples/dealdesk"
	"github.com/keelhq/keel/examples/legalreview"
	"github.com/keelhq/keel/examples/salesfollowup"
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/examples/support"
	"github.com/keelhq/keel/hitl"
)

// DefaultDemo is the example `keel demo` runs when it is given no name.
const DefaultDemo = support.Name

// Config configures Register: the model, the approval service, the email
// and billing settings (see setup.Config). A nil *Config takes every
// default.
type Config = setup.Config

// Entry is one example agent as `keel serve` exposes it and `keel demo`
// runs it.
type Entry struct {
	// Name is the agent's public name (POST /v1/agents/{Name}/runs) and
	// the example's name.
	Name string `json:"name"`
	// Description says in one sentence what the agent does.
	Description string `json:"description"`
	// Workflow is the registered workflow a run starts; TaskQueue the
	// queue it starts on.
	Workflow  string `json:"workflow"`
	TaskQueue string `json:"task_queue"`
	// Input is an example input of a run, as JSON.
	Input json.RawMessage `json:"input"`
	// Demo plays a demo run on the registered engine (which must be
	// started, with workers on Catalog.TaskQueues): it starts a run, plays
	// the people it waits for, and writes what happened to out.
	Demo func(ctx context.Context, out io.Writer) error `json:"-"`
}

// ErrUnknownExample: no example has that name.
var ErrUnknownExample = errors.New("catalog: unknown example")

// Catalog is the example agents registered on one engine.
type Catalog struct {
	// Entries are the registered examples, in the order support,
	// salesfollowup, legalreview, dealdesk.
	Entries []Entry
	// Skipped names the examples that were not registered, with the
	// reason (legalreview needs the reviewer groups "legal" and
	// "partners").
	Skipped map[string]string
	// Env holds the services the examples share; Env.Approvals is the
	// approval service their runs ask (Config.Approvals, or one Register
	// made with setup.ReviewerGroups).
	Env *setup.Env

	Support       *support.Example
	SalesFollowUp *salesfollowup.Example
	LegalReview   *legalreview.Example
	DealDesk      *dealdesk.Example
}

// Names returns the examples' names, in catalog order.
func Names() []string {
	return []string{support.Name, salesfollowup.Name, legalreview.Name, dealdesk.Name}
}

// Register sets up the examples' services on db (migrating their tables
// and loading the demo data unless cfg.NoDemoData) and registers the four
// example agents, their workflows and activities on e, before or after
// it starts. Give every task queue in TaskQueues a worker.
//
// An example whose requirements are missing is skipped (see
// Catalog.Skipped), not an error: legalreview needs the reviewer groups
// "legal" and "partners" in cfg.Approvals.
func Register(ctx context.Context, e *durable.Engine, db *appdb.DB, cfg *Config) (*Catalog, error) {
	env, err := setup.New(ctx, e, db, cfg)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	c, err := RegisterOn(env)
	if err != nil {
		_ = env.Close()
		return nil, err
	}
	return c, nil
}

// RegisterOn registers the four examples on an Env already set up (see
// Register).
func RegisterOn(env *setup.Env) (*Catalog, error) {
	c := &Catalog{Env: env, Skipped: map[string]string{}}
	fail := func(err error) (*Catalog, error) {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	var err error

	if c.Support, err = support.New(env, nil); err != nil {
		return fail(err)
	}
	c.add(support.Name, support.Description, c.Support.TaskQueue(), support.DemoRequest(), c.Support.Demo)

	if c.SalesFollowUp, err = salesfollowup.New(env, nil); err != nil {
		return fail(err)
	}
	c.add(salesfollowup.Name, salesfollowup.Description, c.SalesFollowUp.TaskQueue(), salesfollowup.DemoRequest(), c.SalesFollowUp.Demo)

	c.LegalReview, err = legalreview.New(env, nil)
	switch {
	case err == nil:
		c.add(legalreview.Name, legalreview.Description, c.LegalReview.TaskQueue(), legalreview.DemoRequest(), c.LegalReview.Demo)
	case errors.Is(err, hitl.ErrUnknownGroup):
		c.Skipped[legalreview.Name] = err.Error()
		env.Logger.Warn("catalog: legalreview is not registered: the approval service lacks its reviewer groups", "err", err)
	default:
		return fail(err)
	}

	if c.DealDesk, err = dealdesk.New(env, nil); err != nil {
		return fail(err)
	}
	c.add(dealdesk.Name, dealdesk.Description, c.DealDesk.TaskQueue(), dealdesk.DemoRequest(), c.DealDesk.Demo)
	return c, nil
}

func (c *Catalog) add(name, desc, queue string, input any, demo func(context.Context, io.Writer) error) {
	in, _ := json.Marshal(input) // plain structs of strings
	c.Entries = append(c.Entries, Entry{
		Name: name, Description: desc, Workflow: name, TaskQueue: queue, Input: in, Demo: demo,
	})
}

// Lookup returns the registered example of that name.
func (c *Catalog) Lookup(name string) (Entry, bool) {
	i := slices.IndexFunc(c.Entries, func(e Entry) bool { return e.Name == name })
	if i < 0 {
		return Entry{}, false
	}
	return c.Entries[i], true
}

// TaskQueues returns the task queues that need a worker: the examples'
// and their agents' (dealdesk's sub-agents work on "legal" and
// "billing").
func (c *Catalog) TaskQueues() []string { return c.Env.TaskQueues() }

// Approvals returns the approval service the examples' runs ask.
func (c *Catalog) Approvals() *hitl.Service { return c.Env.Approvals }

// Demo plays the demo of the named example ("" is DefaultDemo) on the
// registered, started engine.
func (c *Catalog) Demo(ctx context.Context, name string, out io.Writer) error {
	if name == "" {
		name = DefaultDemo
	}
	e, ok := c.Lookup(name)
	if !ok {
		if reason, skipped := c.Skipped[name]; skipped {
			return fmt.Errorf("catalog: example %q is not registered: %s", name, reason)
		}
		return fmt.Errorf("%w %q (there are %s)", ErrUnknownExample, name, strings.Join(Names(), ", "))
	}
	return e.Demo(ctx, out)
}

// RunDemo plays the named example's demo ("" is DefaultDemo) standalone,
// as the examples' own programs do: on the database opts.DB names (by
// default a new SQLite file), with an engine of its own, on the offline
// model unless OPENAI_API_KEY is set. It is what `keel demo NAME` runs.
func RunDemo(ctx context.Context, name string, opts *setup.RunOptions) error {
	if name == "" {
		name = DefaultDemo
	}
	if !slices.Contains(Names(), name) {
		return fmt.Errorf("%w %q (there are %s)", ErrUnknownExample, name, strings.Join(Names(), ", "))
	}
	return setup.RunDemo(ctx, name, opts, func(env *setup.Env) (setup.Demo, error) {
		c, err := RegisterOn(env)
		if err != nil {
			return nil, err
		}
		e, ok := c.Lookup(name)
		if !ok {
			return nil, fmt.Errorf("catalog: example %q is not registered: %s", name, c.Skipped[name])
		}
		return demoFunc(e.Demo), nil
	})
}

// demoFunc adapts a function to setup.Demo.
type demoFunc func(ctx context.Context, out io.Writer) error

func (f demoFunc) Demo(ctx context.Context, out io.Writer) error { return f(ctx, out) }

// Close releases the services' HTTP connections; it closes neither the
// database nor the engine.
func (c *Catalog) Close() error { return c.Env.Close() }
