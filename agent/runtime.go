package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"sync"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/tools"
)

// ModelActivityName is the name of the durable activity that makes every
// model call of every agent on a Runtime.
const ModelActivityName = "agent.model"

// HandoffPrefix starts the name of the tool through which a model hands the
// conversation to another agent: "transfer_to_" + the agent's name.
const HandoffPrefix = "transfer_to_"

var namePattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// Config configures a Runtime. The zero value is valid.
type Config struct {
	// Models are registered as by RegisterModel, by name. Optional.
	Models map[string]llm.Model
	// Prices price model calls, by the model name the provider reports.
	// Optional; default llm.DefaultPrices(). A call to a model the table
	// does not list costs 0 (and is logged).
	Prices llm.Prices
	// Logger. Optional; default slog.Default().
	Logger *slog.Logger
	// ConversationCacheSize is how many runs' conversations the model
	// activity keeps in memory, so that a model call need not read the
	// run's history. Optional; default 1000; negative disables the cache
	// (every model call reads the run's history).
	ConversationCacheSize int

	// Test holds settings for tests.
	Test TestConfig
}

// TestConfig holds test-only settings.
type TestConfig struct {
	// ToolActivity, when set, gives the activity registered for each tool
	// instead of the tool's own (it must have the tool's ActivityName).
	// Package agenttest uses it to feed recorded tool results back.
	ToolActivity func(t *tools.Tool) durable.Definition
}

// Runtime runs agents on a durable engine: it holds the models (which are
// not serializable, so runs name them) and registers each agent's workflow,
// its tools' activities and the model activity with the engine. Create it
// before the engine starts; register every agent on every worker process.
type Runtime struct {
	e      *durable.Engine
	prices llm.Prices
	logger *slog.Logger
	test   TestConfig
	convs  *convCache

	modelAct *durable.Activity[modelInput, modelOutput]

	mu       sync.RWMutex
	models   map[string]llm.Model
	agents   map[string]*registered
	toolActs map[string]*tools.Tool // by activity name
}

// registered is an agent as the Runtime runs it.
type registered struct {
	a        *Agent
	wf       *durable.Workflow[Input, Result]
	tools    *tools.Set
	subs     map[string]*Agent      // sub-agents by tool name
	subTools map[string]*tools.Tool // their argument schemas
	handoffs map[string]*Agent      // handoff targets by tool name
	specs    []llm.ToolSpec
}

// NewRuntime returns a Runtime over e and registers the model activity
// with it. cfg may be nil.
func NewRuntime(e *durable.Engine, cfg *Config) (*Runtime, error) {
	if e == nil {
		return nil, errors.New("agent: NewRuntime: nil engine")
	}
	if cfg == nil {
		cfg = &Config{}
	}
	rt := &Runtime{
		e:        e,
		prices:   cfg.Prices,
		logger:   cfg.Logger,
		test:     cfg.Test,
		models:   map[string]llm.Model{},
		agents:   map[string]*registered{},
		toolActs: map[string]*tools.Tool{},
	}
	if rt.prices == nil {
		rt.prices = llm.DefaultPrices()
	}
	if rt.logger == nil {
		rt.logger = slog.Default()
	}
	size := cfg.ConversationCacheSize
	switch {
	case size == 0:
		size = 1000
	case size < 0:
		size = 0
	}
	rt.convs = newConvCache(size)
	rt.modelAct = durable.NewActivity(ModelActivityName, rt.callModel, DefaultModelActivity())
	if err := e.Register(rt.modelAct); err != nil {
		return nil, fmt.Errorf("agent: NewRuntime: %w", err)
	}
	names := make([]string, 0, len(cfg.Models))
	for name := range cfg.Models {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := rt.RegisterModel(name, cfg.Models[name]); err != nil {
			return nil, err
		}
	}
	return rt, nil
}

// Engine returns the Runtime's engine.
func (rt *Runtime) Engine() *durable.Engine { return rt.e }

// RegisterModel makes m available to agents under name (Agent.Model).
func (rt *Runtime) RegisterModel(name string, m llm.Model) error {
	if name == "" || m == nil {
		return fmt.Errorf("agent: RegisterModel: empty name or nil model")
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if _, dup := rt.models[name]; dup {
		return fmt.Errorf("agent: RegisterModel: model %q is already registered", name)
	}
	rt.models[name] = m
	return nil
}

// Register registers agents with the Runtime and their workflows, tools'
// activities, sub-agents and handoff targets with the engine. An agent
// already registered (the same *Agent) is skipped. It fails with an error
// matching ErrInvalidAgent or ErrUnknownModel.
func (rt *Runtime) Register(agents ...*Agent) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, a := range agents {
		if err := rt.register(a); err != nil {
			return err
		}
	}
	return nil
}

// MustRegister is Register that panics on error, for use at startup.
func (rt *Runtime) MustRegister(agents ...*Agent) {
	if err := rt.Register(agents...); err != nil {
		panic(err)
	}
}

func (rt *Runtime) register(a *Agent) error {
	if a == nil {
		return fmt.Errorf("%w: nil agent", ErrInvalidAgent)
	}
	if r, ok := rt.agents[a.Name]; ok {
		if r.a == a {
			return nil
		}
		return fmt.Errorf("%w: another agent named %q is registered", ErrInvalidAgent, a.Name)
	}
	if !namePattern.MatchString(a.Name) {
		return fmt.Errorf("%w: name %q must match %s", ErrInvalidAgent, a.Name, namePattern)
	}
	if a.Model == "" {
		return fmt.Errorf("%w: agent %s names no model", ErrInvalidAgent, a.Name)
	}
	if _, ok := rt.models[a.Model]; !ok {
		return fmt.Errorf("%w: agent %s: model %q is not registered (RegisterModel)", ErrUnknownModel, a.Name, a.Model)
	}
	if a.MaxTurns < 0 {
		return fmt.Errorf("%w: agent %s: negative MaxTurns", ErrInvalidAgent, a.Name)
	}
	set, err := tools.NewSet(a.Tools...)
	if err != nil {
		return fmt.Errorf("%w: agent %s: %w", ErrInvalidAgent, a.Name, err)
	}
	r := &registered{
		a:        a,
		tools:    set,
		subs:     map[string]*Agent{},
		subTools: map[string]*tools.Tool{},
		handoffs: map[string]*Agent{},
	}
	taken := map[string]bool{}
	for _, t := range set.Tools() {
		taken[t.Name()] = true
		r.specs = append(r.specs, llm.ToolSpec{Name: t.Name(), Description: t.Description(), Parameters: t.Schema()})
	}
	for _, sub := range a.SubAgents {
		if sub == nil || taken[sub.Name] {
			return fmt.Errorf("%w: agent %s: sub-agent %q is nil or its name is taken", ErrInvalidAgent, a.Name, nameOf(sub))
		}
		taken[sub.Name] = true
		st, err := subAgentTool(sub)
		if err != nil {
			return fmt.Errorf("%w: agent %s: sub-agent %s: %w", ErrInvalidAgent, a.Name, sub.Name, err)
		}
		r.subs[sub.Name], r.subTools[sub.Name] = sub, st
		r.specs = append(r.specs, llm.ToolSpec{Name: st.Name(), Description: st.Description(), Parameters: st.Schema()})
	}
	for _, h := range a.Handoffs {
		name := HandoffPrefix + nameOf(h)
		if h == nil || taken[name] {
			return fmt.Errorf("%w: agent %s: handoff %q is nil or its name is taken", ErrInvalidAgent, a.Name, name)
		}
		taken[name] = true
		r.handoffs[name] = h
		r.specs = append(r.specs, llm.ToolSpec{Name: name, Description: handoffDescription(h), Parameters: emptyObject})
	}
	// Tool activities, once per name.
	var defs []durable.Definition
	for _, t := range set.Tools() {
		name := t.ActivityName()
		if prev, ok := rt.toolActs[name]; ok {
			if prev != t {
				return fmt.Errorf("%w: agent %s: another tool named %q is registered", ErrInvalidAgent, a.Name, t.Name())
			}
			continue
		}
		def := t.Definition()
		if rt.test.ToolActivity != nil {
			def = rt.test.ToolActivity(t)
		}
		defs = append(defs, def)
	}
	r.wf = durable.NewWorkflow(a.Name, rt.loop(a.Name))
	defs = append(defs, r.wf)
	if err := rt.e.Register(defs...); err != nil {
		return fmt.Errorf("agent: register %s: %w", a.Name, err)
	}
	for _, t := range set.Tools() {
		rt.toolActs[t.ActivityName()] = t
	}
	rt.agents[a.Name] = r
	// Sub-agents and handoff targets, which may refer back to a.
	for _, sub := range a.SubAgents {
		if err := rt.register(sub); err != nil {
			return err
		}
	}
	for _, h := range a.Handoffs {
		if err := rt.register(h); err != nil {
			return err
		}
	}
	return nil
}

func nameOf(a *Agent) string {
	if a == nil {
		return "<nil>"
	}
	return a.Name
}

// lookup returns a registered agent.
func (rt *Runtime) lookup(name string) (*registered, error) {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	r, ok := rt.agents[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownAgent, name)
	}
	return r, nil
}

// model returns a registered model.
func (rt *Runtime) model(name string) (llm.Model, error) {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	m, ok := rt.models[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownModel, name)
	}
	return m, nil
}

// Agent returns the registered agent of that name.
func (rt *Runtime) Agent(name string) (*Agent, bool) {
	r, err := rt.lookup(name)
	if err != nil {
		return nil, false
	}
	return r.a, true
}

// TaskQueues returns the task queues the registered agents' workflows and
// model calls run on, sorted: each needs a worker (Engine.NewWorker).
func (rt *Runtime) TaskQueues() []string {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	seen := map[string]bool{}
	for _, r := range rt.agents {
		seen[queueOf(r.a)] = true
	}
	out := make([]string, 0, len(seen))
	for q := range seen {
		out = append(out, q)
	}
	sort.Strings(out)
	return out
}

func queueOf(a *Agent) string {
	if a.TaskQueue == "" {
		return "default"
	}
	return a.TaskQueue
}

// Start starts a run of a registered agent and returns its handle. opts
// may be nil; its TaskQueue defaults to the agent's. When opts.ID names a
// running run, that run is returned.
func (rt *Runtime) Start(ctx context.Context, a *Agent, in Input, opts *durable.StartOptions) (*durable.Handle[Result], error) {
	r, err := rt.lookup(nameOf(a))
	if err != nil {
		return nil, err
	}
	o := durable.StartOptions{}
	if opts != nil {
		o = *opts
	}
	if o.TaskQueue == "" {
		o.TaskQueue = queueOf(a)
	}
	return r.wf.Start(ctx, rt.e, in, &o)
}

// Run starts a run of a registered agent and waits for its Result. When
// the run fails, the Result beside the error holds what it had spent
// (Turns, Usage, Cost) as far as its error carries it.
func (rt *Runtime) Run(ctx context.Context, a *Agent, in Input, opts *durable.StartOptions) (Result, error) {
	h, err := rt.Start(ctx, a, in, opts)
	if err != nil {
		return Result{}, err
	}
	res, err := h.Result(ctx)
	if err != nil {
		if sp, ok := spentOf(err); ok {
			res = Result{Agent: nameOf(a), Status: StatusFailed, Error: err.Error(), Turns: sp.Turns, Usage: sp.Usage, Cost: sp.Cost}
		}
	}
	return res, err
}

// Workflow returns the durable workflow of a registered agent, to start
// it as a child of another workflow.
func (rt *Runtime) Workflow(a *Agent) (*durable.Workflow[Input, Result], error) {
	r, err := rt.lookup(nameOf(a))
	if err != nil {
		return nil, err
	}
	return r.wf, nil
}
