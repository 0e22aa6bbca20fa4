package dealdesk

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keelhq/keel/agent"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/tools"
	"github.com/keelhq/keel/tools/crm"
)

// Names of the example's workflow and agents, and what it does.
const (
	// Name is the workflow that takes a deal to closing, and the example's
	// name.
	Name = "dealdesk"
	// AgentName is the sales agent (the deal desk), run as a child of
	// Name; it calls the other two as sub-agents.
	AgentName = "deal_desk"
	// LegalAgentName and BillingAgentName are the sub-agents, each a child
	// workflow of the deal desk on its own task queue.
	LegalAgentName   = "legal_counsel"
	BillingAgentName = "billing_specialist"
	// QuoteToolName and CloseToolName are the tools of this example.
	QuoteToolName = "get_deal_quote"
	CloseToolName = "close_deal"
	Description   = "A sales agent (the deal desk) asks a legal agent and a billing agent, as sub-agents on their own " +
		"task queues and in parallel, to check a deal, then closes it in the CRM (stage won)."
)

// Default task queues of the sub-agents.
const (
	DefaultLegalQueue   = "legal"
	DefaultBillingQueue = "billing"
)

// ErrInvalidRequest: a Request lacks its deal key, or the deal does not
// exist.
var ErrInvalidRequest = errors.New("dealdesk: invalid request")

// Request is the input of a run: the deal to close and its contract terms.
type Request struct {
	// DealKey names the CRM deal ("deal_ada_enterprise"). Required.
	DealKey string `json:"deal_key"`
	// Terms are the contract terms agreed with the customer, for the legal
	// agent to check. Optional.
	Terms string `json:"terms,omitempty"`
}

// Outcome is the result of a run.
type Outcome struct {
	DealKey string `json:"deal_key"`
	// StageBefore and StageAfter are the deal's stage before and after.
	StageBefore crm.Stage `json:"stage_before"`
	StageAfter  crm.Stage `json:"stage_after"`
	// Closed is true when this run moved the deal to won.
	Closed bool `json:"closed"`
	// AgentStatus and Summary are the deal desk's outcome and final answer.
	AgentStatus agent.Status `json:"agent_status"`
	Summary     string       `json:"summary,omitempty"`
	// SubAgents are the runs of the legal and billing agents.
	SubAgents []agent.SubAgentRun `json:"sub_agents,omitempty"`
	// Tools counts the deal desk's tool calls (sub-agents included).
	Tools []agent.ToolUsage `json:"tools,omitempty"`
}

// Config configures the example. A nil *Config takes every default.
type Config struct {
	// TaskQueue is where the runs and the deal desk work. Optional;
	// default setup.DefaultTaskQueue.
	TaskQueue string
	// LegalQueue and BillingQueue are the sub-agents' task queues.
	// Optional; default DefaultLegalQueue and DefaultBillingQueue.
	LegalQueue   string
	BillingQueue string
}

// The agents' system messages.
const (
	DeskInstructions = `You are the deal desk of a B2B software company: you get a deal ready to close.

1. Look the customer up with crm_lookup_customer (by their email address) to see their plan, seats and notes.
2. Then ask your two specialists at the same time, in one step: legal_counsel to review the contract terms, and billing_specialist to check the price and the billing schedule. Each of them sees only what you send: give each the deal key, the customer, the amount and the contract terms word for word.
3. When both clear the deal (no high risk, no blocking billing issue), close it with close_deal, with a short summary of their findings. When either raises a high risk or a blocking issue, do not close it.

Finish with a summary for the account executive: what legal and billing said, and whether the deal was closed or what must change first.`

	LegalInstructions = `You are in-house legal counsel. You review the contract terms of a sales deal before it closes.

Answer in a short memo: each term that carries risk for the company (unlimited liability, indemnities, automatic renewal, termination, exclusivity, penalties, unusual payment terms), how serious it is (low, medium or high), then an overall risk level and a recommendation (approve, or what to renegotiate). Judge only the terms you are given; say so when none are given.`

	BillingInstructions = `You are the billing specialist of a B2B software company. You check that a deal can be billed as agreed before it closes.

Look the deal up with get_deal_quote (by its deal key). Check the amount against the customer's plan and seats, the currency and the billing cycle, and the first invoice. Flag anything unusual: a zero amount, a discount over 20%, a currency other than the customer's, payment terms longer than 60 days. Answer in three short lines: the amount and billing schedule, the issues found (or none), and your verdict: ok or needs review.`
)

// Example is the deal desk example, registered on an engine.
type Example struct {
	// Desk is the sales agent; Legal and Billing are its sub-agents.
	Desk, Legal, Billing *agent.Agent
	// Workflow takes one deal to closing.
	Workflow *durable.Workflow[Request, Outcome]

	env     *setup.Env
	queue   string
	deskWF  *durable.Workflow[agent.Input, agent.Result]
	load    *durable.Activity[string, dealInfo]
	stageOf *durable.Activity[string, crm.Stage]
}

// New defines the deal desk example on env and registers its workflow,
// its three agents and its activities on env's engine. The legal and
// billing agents run on their own task queues, which need workers
// (env.TaskQueues lists them).
func New(env *setup.Env, cfg *Config) (*Example, error) {
	c := Config{}
	if cfg != nil {
		c = *cfg
	}
	if c.TaskQueue == "" {
		c.TaskQueue = setup.DefaultTaskQueue
	}
	if c.LegalQueue == "" {
		c.LegalQueue = DefaultLegalQueue
	}
	if c.BillingQueue == "" {
		c.BillingQueue = DefaultBillingQueue
	}
	x := &Example{env: env, queue: c.TaskQueue}
	x.Legal = &agent.Agent{
		Name:         LegalAgentName,
		Description:  "Ask legal counsel to review a deal's contract terms: the risky terms, the risk level and a recommendation.",
		Instructions: LegalInstructions,
		Model:        env.Model,
		MaxTurns:     3,
		TaskQueue:    c.LegalQueue,
	}
	x.Billing = &agent.Agent{
		Name:         BillingAgentName,
		Description:  "Ask the billing specialist to check a deal's price, billing schedule and first invoice.",
		Instructions: BillingInstructions,
		Model:        env.Model,
		Tools:        []*tools.Tool{QuoteTool(env)},
		MaxTurns:     4,
		TaskQueue:    c.BillingQueue,
	}
	x.Desk = &agent.Agent{
		Name:         AgentName,
		Description:  "Gets a sales deal ready to close.",
		Instructions: DeskInstructions,
		Model:        env.Model,
		Tools:        []*tools.Tool{env.Tools.CRMLookup, CloseTool(env)},
		SubAgents:    []*agent.Agent{x.Legal, x.Billing},
		MaxTurns:     8,
		Budget:       agent.Budget{MaxTokens: 300_000},
		TaskQueue:    c.TaskQueue,
	}
	if err := env.Runtime.Register(x.Desk); err != nil {
		return nil, fmt.Errorf("dealdesk: %w", err)
	}
	wf, err := env.Runtime.Workflow(x.Desk)
	if err != nil {
		return nil, fmt.Errorf("dealdesk: %w", err)
	}
	x.deskWF = wf
	quick := &durable.ActivityOptions{StartToCloseTimeout: 30 * time.Second, RetryPolicy: durable.RetryPolicy{MaximumAttempts: 5}}
	x.load = durable.NewActivity(Name+".load_deal", x.loadDeal, quick)
	x.stageOf = durable.NewActivity(Name+".deal_stage", x.dealStage, quick)
	x.Workflow = durable.NewWorkflow(Name, x.run)
	if err := env.Engine.Register(x.Workflow, x.load, x.stageOf); err != nil {
		return nil, fmt.Errorf("dealdesk: %w", err)
	}
	env.AddTaskQueue(c.TaskQueue)
	return x, nil
}

// TaskQueue returns the task queue runs start on.
func (x *Example) TaskQueue() string { return x.queue }

// Start starts a run for req. opts may be nil; its TaskQueue defaults to
// the example's.
func (x *Example) Start(ctx context.Context, req Request, opts *durable.StartOptions) (*durable.Handle[Outcome], error) {
	return setup.Start(ctx, x.env, x.Workflow, req, x.queue, opts)
}

// run is the workflow: load the deal, let the deal desk work on it (it
// calls the specialists), and read where the deal ended up.
func (x *Example) run(ctx durable.Context, req Request) (Outcome, error) {
	if strings.TrimSpace(req.DealKey) == "" {
		return Outcome{}, fmt.Errorf("%w: deal_key is required", ErrInvalidRequest)
	}
	d, err := x.load.Run(ctx, req.DealKey)
	if err != nil {
		return Outcome{}, fmt.Errorf("dealdesk: load deal %s: %w", req.DealKey, err)
	}
	out := Outcome{DealKey: d.Key, StageBefore: d.Stage}
	res, err := x.deskWF.RunChild(ctx, agent.Input{Message: prompt(d, req.Terms)}, &durable.ChildOptions{
		ID:        ctx.Info().WorkflowID + "/desk",
		TaskQueue: x.queue,
	})
	if err != nil {
		return out, fmt.Errorf("dealdesk: deal desk: %w", err)
	}
	out.AgentStatus, out.Summary, out.SubAgents, out.Tools = res.Status, res.Output, res.SubAgents, res.Tools
	if out.StageAfter, err = x.stageOf.Run(ctx, d.Key); err != nil {
		return out, fmt.Errorf("dealdesk: read deal %s: %w", d.Key, err)
	}
	out.Closed = out.StageBefore != crm.StageWon && out.StageAfter == crm.StageWon
	return out, nil
}

// prompt is the deal desk's message: the deal, the customer and the terms.
func prompt(d dealInfo, terms string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Close deal %s, %q, with %s", d.Key, d.Title, d.CustomerName)
	if d.Company != "" {
		fmt.Fprintf(&b, " of %s", d.Company)
	}
	if d.CustomerEmail != "" {
		fmt.Fprintf(&b, " (%s)", d.CustomerEmail)
	}
	fmt.Fprintf(&b, ": %s, now at stage %s.", money(d.Amount, d.Currency), d.Stage)
	if t := strings.TrimSpace(terms); t != "" {
		fmt.Fprintf(&b, "\n\nTerms agreed:\n%s", t)
	} else {
		b.WriteString("\n\nNo terms were agreed beyond our standard agreement.")
	}
	return b.String()
}

// money formats an amount in cents: "12,000.00 USD".
func money(cents int64, currency string) string {
	whole := fmt.Sprint(cents / 100)
	var b strings.Builder
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return fmt.Sprintf("%s.%02d %s", b.String(), cents%100, currency)
}

// dealInfo is a deal with its customer.
type dealInfo struct {
	Key           string    `json:"key"`
	Title         string    `json:"title"`
	Stage         crm.Stage `json:"stage"`
	Amount        int64     `json:"amount"`
	Currency      string    `json:"currency"`
	CustomerKey   string    `json:"customer_key"`
	CustomerName  string    `json:"customer_name"`
	CustomerEmail string    `json:"customer_email,omitempty"`
	Company       string    `json:"company,omitempty"`
}

func (x *Example) loadDeal(ctx context.Context, key string) (dealInfo, error) {
	d, err := x.env.CRM.Deal(ctx, key)
	if errors.Is(err, crm.ErrNotFound) {
		return dealInfo{}, durable.NonRetryable(fmt.Errorf("%w: no deal %q in the CRM", ErrInvalidRequest, key))
	}
	if err != nil {
		return dealInfo{}, err
	}
	c, err := x.env.CRM.Customer(ctx, d.CustomerKey)
	if err != nil {
		return dealInfo{}, err
	}
	return dealInfo{Key: d.Key, Title: d.Title, Stage: d.Stage, Amount: d.Amount, Currency: d.Currency,
		CustomerKey: c.Key, CustomerName: c.Name, CustomerEmail: c.Email, Company: c.Company}, nil
}

func (x *Example) dealStage(ctx context.Context, key string) (crm.Stage, error) {
	d, err := x.env.CRM.Deal(ctx, key)
	if err != nil {
		return "", err
	}
	return d.Stage, nil
}
