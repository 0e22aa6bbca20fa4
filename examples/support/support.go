package support

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/agent"
	"github.com/keelhq/keel/billing"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/tools"
	"github.com/keelhq/keel/tools/ticket"
)

// Names of the example's workflow, agent and tools, and what it does.
const (
	// Name is the workflow that handles a ticket, and the example's name.
	Name = "support"
	// AgentName is the support agent's workflow, run as a child of Name.
	AgentName       = "support_agent"
	ReplyToolName   = "send_reply"
	ResolveToolName = "resolve_ticket"
	Description     = "Answers a support ticket: looks the customer up in the CRM, searches the knowledge base, " +
		"emails a reply, marks the ticket solved and charges $0.99 for the resolution."
)

// DefaultFee is the resolution fee in cents: $0.99.
const DefaultFee = 99

// ErrInvalidRequest: a Request lacks its ticket ID or message.
var ErrInvalidRequest = errors.New("support: invalid request")

// Request is the input of a run: a customer's message about a ticket.
type Request struct {
	// TicketID names the ticket ("T-1"). Required. When no such ticket
	// exists it is opened, which needs CustomerEmail.
	TicketID string `json:"ticket_id"`
	// Message is what the customer wrote. Required.
	Message string `json:"message"`
	// CustomerEmail is the customer's address, for a ticket that does not
	// exist yet or has no requester. Optional.
	CustomerEmail string `json:"customer_email,omitempty"`
}

// Fee statuses.
const (
	FeeCharged = "charged"
	FeeFailed  = "failed"
	FeeSkipped = "skipped"
)

// Fee is what became of the resolution fee.
type Fee struct {
	// Status is FeeCharged, FeeFailed or FeeSkipped.
	Status string `json:"status"`
	// Reason says why the fee failed or was skipped.
	Reason string `json:"reason,omitempty"`
	// Entry is the ledger entry of the charge.
	Entry *billing.Entry `json:"entry,omitempty"`
}

// Outcome is the result of a run.
type Outcome struct {
	TicketID string `json:"ticket_id"`
	// StatusBefore and StatusAfter are the ticket's status before and
	// after the agent worked on it.
	StatusBefore ticket.Status `json:"status_before"`
	StatusAfter  ticket.Status `json:"status_after"`
	// Requester is who the reply went to.
	Requester string `json:"requester,omitempty"`
	// AgentStatus and Answer are the agent's outcome and final answer (its
	// summary for the support team).
	AgentStatus agent.Status `json:"agent_status"`
	Answer      string       `json:"answer,omitempty"`
	// Tools counts the agent's tool calls.
	Tools []agent.ToolUsage `json:"tools,omitempty"`
	// Fee is the resolution fee, charged when this run solved the ticket.
	Fee Fee `json:"fee"`
}

// Config configures the example. A nil *Config takes every default.
type Config struct {
	// Fee is the charge for a ticket the agent solves, in cents.
	// Optional; default DefaultFee; negative charges nothing.
	Fee int64
	// TaskQueue is where the runs and the agent work. Optional; default
	// setup.DefaultTaskQueue.
	TaskQueue string
	// MaxTurns bounds the agent's model calls. Optional; default 8.
	MaxTurns int
}

// Example is the support example, registered on an engine.
type Example struct {
	// Agent is the support agent.
	Agent *agent.Agent
	// Workflow handles one Request.
	Workflow *durable.Workflow[Request, Outcome]

	env     *setup.Env
	fee     int64
	queue   string
	agentWF *durable.Workflow[agent.Input, agent.Result]
	prepare *durable.Activity[Request, ticketInfo]
	status  *durable.Activity[string, ticket.Status]
	charge  *durable.Activity[chargeInput, Fee]
}

// Instructions are the support agent's system message.
const Instructions = `You are the customer support agent of a SaaS company. For every customer message:

1. Gather the facts, all at once: read the ticket with ticket_get, look the customer up with crm_lookup_customer (by the customer's email address) and search the knowledge base with kb_search for the articles that answer the question.
2. Reply to the customer by email with send_reply. Answer from the knowledge base articles and the customer's record only: be concise, friendly and specific (name the steps or the policy that applies), and never invent policies, amounts, dates or promises.
3. When your reply answers the question, resolve the ticket with resolve_ticket, with a one-line internal note of what you found and did. When it does not (nothing relevant in the knowledge base, or only a person can do what the customer asks), do not resolve it.

Finish with a two-line summary for the support team: what the customer needed and what you did.`

// New defines the support example on env and registers its workflow, its
// agent (with the tools ticket_get, crm_lookup_customer, kb_search,
// send_reply and resolve_ticket) and its activities on env's engine.
func New(env *setup.Env, cfg *Config) (*Example, error) {
	c := Config{}
	if cfg != nil {
		c = *cfg
	}
	if c.Fee == 0 {
		c.Fee = DefaultFee
	}
	if c.TaskQueue == "" {
		c.TaskQueue = setup.DefaultTaskQueue
	}
	if c.MaxTurns == 0 {
		c.MaxTurns = 8
	}
	x := &Example{env: env, fee: c.Fee, queue: c.TaskQueue}
	x.Agent = &agent.Agent{
		Name:         AgentName,
		Description:  "Answers a customer's support ticket.",
		Instructions: Instructions,
		Model:        env.Model,
		Tools: []*tools.Tool{
			env.Tools.TicketGet,
			env.Tools.CRMLookup,
			env.Tools.KBSearch,
			ReplyTool(env),
			ResolveTool(env),
		},
		MaxTurns:  c.MaxTurns,
		Budget:    agent.Budget{MaxTokens: 200_000},
		TaskQueue: c.TaskQueue,
	}
	if err := env.Runtime.Register(x.Agent); err != nil {
		return nil, fmt.Errorf("support: %w", err)
	}
	wf, err := env.Runtime.Workflow(x.Agent)
	if err != nil {
		return nil, fmt.Errorf("support: %w", err)
	}
	x.agentWF = wf
	quick := &durable.ActivityOptions{StartToCloseTimeout: 30 * time.Second, RetryPolicy: durable.RetryPolicy{MaximumAttempts: 5}}
	x.prepare = durable.NewActivity(Name+".prepare", x.prepareTicket, quick)
	x.status = durable.NewActivity(Name+".ticket_status", x.ticketStatus, quick)
	x.charge = durable.NewActivity(Name+".charge_fee", x.chargeFee, &durable.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		// Billing errors say themselves whether a retry can help; a retry
		// reuses the ledger key, so it never charges twice.
		RetryPolicy: durable.RetryPolicy{MaximumAttempts: 10, MaximumInterval: time.Minute},
	})
	x.Workflow = durable.NewWorkflow(Name, x.run)
	if err := env.Engine.Register(x.Workflow, x.prepare, x.status, x.charge); err != nil {
		return nil, fmt.Errorf("support: %w", err)
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

func (r Request) validate() error {
	var missing []string
	if strings.TrimSpace(r.TicketID) == "" {
		missing = append(missing, "ticket_id")
	}
	if strings.TrimSpace(r.Message) == "" {
		missing = append(missing, "message")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s required", ErrInvalidRequest, strings.Join(missing, " and "))
	}
	return nil
}

// run is the workflow: prepare the ticket, let the agent work on it, and
// charge the fee when the agent solved it.
func (x *Example) run(ctx durable.Context, req Request) (Outcome, error) {
	if err := req.validate(); err != nil {
		return Outcome{}, err
	}
	tk, err := x.prepare.Run(ctx, req)
	if err != nil {
		return Outcome{}, fmt.Errorf("support: prepare ticket %s: %w", req.TicketID, err)
	}
	out := Outcome{TicketID: tk.ID, StatusBefore: tk.Status, Requester: tk.RequesterEmail}

	res, err := x.agentWF.RunChild(ctx, agent.Input{Message: prompt(req, tk)}, &durable.ChildOptions{
		ID:        ctx.Info().WorkflowID + "/agent",
		TaskQueue: x.queue,
	})
	if err != nil {
		return out, fmt.Errorf("support: agent: %w", err)
	}
	out.AgentStatus, out.Answer, out.Tools = res.Status, res.Output, res.Tools

	if out.StatusAfter, err = x.status.Run(ctx, tk.ID); err != nil {
		return out, fmt.Errorf("support: read ticket %s: %w", tk.ID, err)
	}
	switch {
	case out.StatusAfter != ticket.StatusSolved:
		out.Fee = Fee{Status: FeeSkipped, Reason: "the ticket was not solved"}
	case out.StatusBefore == ticket.StatusSolved:
		out.Fee = Fee{Status: FeeSkipped, Reason: "the ticket was already solved"}
	case x.fee < 0:
		out.Fee = Fee{Status: FeeSkipped, Reason: "no resolution fee configured"}
	case tk.CustomerKey == "":
		out.Fee = Fee{Status: FeeSkipped, Reason: "the requester is not a known customer"}
	default:
		out.Fee, err = x.charge.Run(ctx, chargeInput{
			Customer: tk.CustomerKey, Amount: x.fee, Description: "Resolution of support ticket " + tk.ID,
		})
		if err != nil {
			// A decline or a refused request: the ticket stays solved,
			// and the failure is in the ledger and the outcome.
			out.Fee = Fee{Status: FeeFailed, Reason: err.Error()}
		}
	}
	return out, nil
}

// prompt is the agent's message: the customer's words first, then the
// ticket and who wrote it.
func prompt(req Request, tk ticketInfo) string {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(req.Message))
	fmt.Fprintf(&b, "\n\nTicket %s", tk.ID)
	if tk.RequesterEmail != "" {
		fmt.Fprintf(&b, ", from %s", tk.RequesterEmail)
	}
	if tk.CustomerKey != "" {
		fmt.Fprintf(&b, " (customer %s)", tk.CustomerKey)
	}
	b.WriteString(".")
	return b.String()
}

// ticketInfo is the ticket a run works on.
type ticketInfo struct {
	ID             string        `json:"id"`
	Subject        string        `json:"subject"`
	Status         ticket.Status `json:"status"`
	RequesterEmail string        `json:"requester_email,omitempty"`
	CustomerKey    string        `json:"customer_key,omitempty"`
}

// prepareTicket finds the ticket, or opens it from the request; adds the
// message to it unless the ticket holds it already; and finds the
// requester's customer key in the CRM when the ticket has none.
func (x *Example) prepareTicket(ctx context.Context, req Request) (ticketInfo, error) {
	desk := x.env.Tickets
	key := durableKey(ctx)
	t, err := desk.Get(ctx, req.TicketID)
	switch {
	case errors.Is(err, ticket.ErrNotFound):
		if req.CustomerEmail == "" {
			return ticketInfo{}, durable.NonRetryable(fmt.Errorf("%w: ticket %s does not exist; give customer_email to open it", ErrInvalidRequest, req.TicketID))
		}
		t, err = desk.Create(ctx, ticket.CreateParams{
			ID: req.TicketID, Subject: headline(req.Message), RequesterEmail: req.CustomerEmail,
			CustomerKey:    x.customerKey(ctx, req.CustomerEmail),
			Comment:        &ticket.NewComment{Author: req.CustomerEmail, Body: req.Message, Public: true},
			IdempotencyKey: key + "/create",
		})
		if err != nil {
			return ticketInfo{}, err
		}
	case err != nil:
		return ticketInfo{}, err
	case t.Status == ticket.StatusClosed:
		return ticketInfo{}, durable.NonRetryable(fmt.Errorf("%w: ticket %s is closed; write about a new ticket", ErrInvalidRequest, t.ID))
	default:
		comments, err := desk.Comments(ctx, t.ID)
		if err != nil {
			return ticketInfo{}, err
		}
		if !holds(t, comments, req.Message) {
			author := t.RequesterEmail
			if author == "" {
				author = req.CustomerEmail
			}
			// The update's key makes a retried attempt add it once; the
			// status is what it was before the comment.
			status := t.Status
			t, err = desk.Update(ctx, t.ID, ticket.UpdateParams{
				Comment:        &ticket.NewComment{Author: author, Body: req.Message, Public: true},
				IdempotencyKey: key + "/message",
			})
			if err != nil {
				return ticketInfo{}, err
			}
			t.Status = status
		}
	}
	info := ticketInfo{ID: t.ID, Subject: t.Subject, Status: t.Status, RequesterEmail: t.RequesterEmail, CustomerKey: t.CustomerKey}
	if info.RequesterEmail == "" {
		info.RequesterEmail = req.CustomerEmail
	}
	if info.CustomerKey == "" && info.RequesterEmail != "" {
		info.CustomerKey = x.customerKey(ctx, info.RequesterEmail)
	}
	return info, nil
}

// customerKey returns the CRM key of the customer with that email, or ""
// when the CRM does not know them.
func (x *Example) customerKey(ctx context.Context, email string) string {
	c, err := x.env.CRM.CustomerByEmail(ctx, email)
	if err != nil {
		return ""
	}
	return c.Key
}

// holds reports whether the ticket already carries the message, as its
// subject or inside one of its comments.
func holds(t ticket.Ticket, comments []ticket.Comment, msg string) bool {
	m := strings.ToLower(strings.TrimSpace(msg))
	if strings.Contains(strings.ToLower(t.Subject), m) {
		return true
	}
	for _, c := range comments {
		if strings.Contains(strings.ToLower(c.Body), m) {
			return true
		}
	}
	return false
}

func (x *Example) ticketStatus(ctx context.Context, id string) (ticket.Status, error) {
	t, err := x.env.Tickets.Get(ctx, id)
	if err != nil {
		return "", err
	}
	return t.Status, nil
}

type chargeInput struct {
	Customer    string `json:"customer"`
	Amount      int64  `json:"amount"`
	Description string `json:"description"`
}

// chargeFee charges the fee through billing, once: the ledger key is the
// activity's idempotency key, the same on every attempt. Without a billing
// service it records that nothing was charged.
func (x *Example) chargeFee(ctx context.Context, in chargeInput) (Fee, error) {
	if x.env.Billing == nil {
		return Fee{Status: FeeSkipped, Reason: "billing is not configured (no STRIPE_SECRET_KEY)"}, nil
	}
	e, err := x.env.Billing.Charge(ctx, billing.ChargeParams{Customer: in.Customer, Amount: in.Amount, Description: in.Description})
	if err != nil {
		return Fee{}, err
	}
	return Fee{Status: FeeCharged, Entry: e}, nil
}

// durableKey returns the running activity's idempotency key.
func durableKey(ctx context.Context) string {
	if info, ok := durable.GetActivityInfo(ctx); ok {
		return info.IdempotencyKey
	}
	return ""
}

// headline is the first line of text, at most 120 characters.
func headline(text string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(text), "\n")
	if r := []rune(line); len(r) > 120 {
		line = string(r[:119]) + "…"
	}
	return line
}

// DemoRequest is the demo's request: Ada Lovelace's ticket T-1 of the demo
// data.
func DemoRequest() Request {
	return Request{TicketID: "T-1", Message: "I was charged twice"}
}

// Demo runs the demo request and writes what happened: the agent's
// answer, the email in the outbox, the ticket's status and comments, and
// the ledger.
func (x *Example) Demo(ctx context.Context, out io.Writer) error {
	since := time.Now().Add(-time.Second)
	req := DemoRequest()
	fmt.Fprintf(out, "Ticket %s, from the customer: %q\n\n", req.TicketID, req.Message)
	h, err := x.Start(ctx, req, &durable.StartOptions{ID: "support-demo-" + uuid.NewString()[:8]})
	if err != nil {
		return err
	}
	o, err := h.Result(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Run %s: agent %s.\n\nThe agent's summary:\n%s\n\n", h.WorkflowID(), o.AgentStatus, setup.Indent(o.Answer, "  "))
	if err := x.env.PrintOutbox(ctx, out, since); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nTicket %s: %s → %s\n", o.TicketID, o.StatusBefore, o.StatusAfter)
	comments, err := x.env.Tickets.Comments(ctx, o.TicketID)
	if err != nil {
		return err
	}
	for _, c := range comments {
		kind := "internal note"
		if c.Public {
			kind = "public"
		}
		fmt.Fprintf(out, "  ── %s (%s):\n%s\n", c.Author, kind, setup.Indent(c.Body, "     "))
	}
	fmt.Fprintf(out, "\nResolution fee: %s", o.Fee.Status)
	if o.Fee.Reason != "" {
		fmt.Fprintf(out, " (%s)", o.Fee.Reason)
	}
	fmt.Fprintln(out)
	return x.env.PrintLedger(ctx, out, since)
}
