package salesfollowup

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/keelhq/keel/agent"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/tools"
	"github.com/keelhq/keel/tools/crm"
	"github.com/keelhq/keel/tools/email"
)

// Names of the example's workflow, agent and signal, and what it does.
const (
	// Name is the workflow that follows a lead up, and the example's name.
	Name = "salesfollowup"
	// AgentName is the agent that writes each email, run as a child of
	// Name.
	AgentName = "sales_writer"
	// SignalName is the signal that tells a run the lead replied.
	SignalName  = "replied"
	Description = "Sends a lead five follow-up emails over two weeks, with durable waits of days between them; " +
		"stops when the lead replies (signal \"replied\") and escalates to a sales manager when no reply comes " +
		"within 24 hours of the last email."
)

// Defaults.
const (
	// DefaultReplyWindow is how long a run waits for a reply after the
	// last email before it escalates.
	DefaultReplyWindow = 24 * time.Hour
	// DefaultManagerEmail is who an escalation goes to unless the Config
	// or the Request names someone.
	DefaultManagerEmail = "sales-manager@example.com"
	// DefaultProduct is what the emails offer unless the Request says.
	DefaultProduct = "Keel"
)

// DefaultWaits returns the waits between the five emails: 3, 3, 4 and 4
// days, so that the last goes out two weeks after the first.
func DefaultWaits() []time.Duration {
	return []time.Duration{72 * time.Hour, 72 * time.Hour, 96 * time.Hour, 96 * time.Hour}
}

// Outcome statuses.
const (
	StatusReplied   = "replied"
	StatusEscalated = "escalated"
)

// ErrInvalidRequest: a Request lacks the lead's email or has a malformed
// wait.
var ErrInvalidRequest = errors.New("salesfollowup: invalid request")

// Replied is the signal that a lead replied; a run stops following up when
// it arrives. Send it with Replied.Send, Engine.Signal, or the HTTP API:
// POST /v1/runs/{id}/signals/replied with {"payload": {"from": …, "message": …}}.
var Replied = durable.NewSignal[Reply](SignalName) //nolint:gochecknoglobals // a signal declaration, immutable

// Reply is the payload of the Replied signal.
type Reply struct {
	// From is who replied. Optional.
	From string `json:"from,omitempty"`
	// Message is what they wrote. Optional.
	Message string `json:"message,omitempty"`
}

// Request is the input of a run: the lead to follow up.
type Request struct {
	// LeadEmail is the lead's address. Required. When the CRM knows the
	// address, the emails are personalised and the outcome is noted on the
	// customer.
	LeadEmail string `json:"lead_email"`
	// Product is what the emails offer. Optional; default DefaultProduct.
	Product string `json:"product,omitempty"`
	// Context says why the lead is worth following up: what they asked
	// for, where they came from. Optional.
	Context string `json:"context,omitempty"`
	// ManagerEmail receives the escalation. Optional; default the
	// Config's.
	ManagerEmail string `json:"manager_email,omitempty"`
	// Waits are the waits between consecutive emails, as Go durations
	// ("72h"); there is one email more than waits. Optional; default
	// DefaultWaits.
	Waits []string `json:"waits,omitempty"`
	// ReplyWindow is how long to wait for a reply after the last email,
	// as a Go duration. Optional; default DefaultReplyWindow.
	ReplyWindow string `json:"reply_window,omitempty"`
}

// SentEmail is one email a run sent.
type SentEmail struct {
	// N numbers the follow-ups from 1.
	N       int          `json:"n"`
	Key     string       `json:"key"`
	To      string       `json:"to"`
	Subject string       `json:"subject"`
	Status  email.Status `json:"status"`
	// At is the workflow time the email was sent.
	At time.Time `json:"at"`
}

// Outcome is the result of a run.
type Outcome struct {
	// Status is StatusReplied or StatusEscalated.
	Status string `json:"status"`
	// Emails are the follow-ups sent, in order.
	Emails []SentEmail `json:"emails"`
	// Reply is the lead's reply, when one came.
	Reply *Reply `json:"reply,omitempty"`
	// Escalation is the email to the manager, when no reply came.
	Escalation *SentEmail `json:"escalation,omitempty"`
	// CustomerKey is the lead's customer in the CRM, where the outcome was
	// noted; empty when the CRM does not know the lead.
	CustomerKey string `json:"customer_key,omitempty"`
}

// Config configures the example. A nil *Config takes every default.
type Config struct {
	// ManagerEmail receives escalations. Optional; default
	// DefaultManagerEmail.
	ManagerEmail string
	// TaskQueue is where the runs and the agent work. Optional; default
	// setup.DefaultTaskQueue.
	TaskQueue string
}

// Instructions are the sales writer's system message.
const Instructions = `You are a sales development representative. You write one follow-up email at a time to a lead who has not replied yet.

First look the lead up in the CRM with crm_lookup_customer (by their email address): use their name, company, plan and the notes about them to make the email specific.

Then answer with the email's body only, in plain text (no subject line): greet the lead by first name; two to four short sentences that give one concrete reason to talk, tied to what the CRM says they care about; one clear call to action (a 20-minute call next week); sign off as "The Keel team". Each follow-up is shorter than the one before and never repeats it; the last one says politely that this is the last email. Never invent prices, discounts, customers or features.`

// Example is the sales follow-up example, registered on an engine.
type Example struct {
	// Agent writes each email.
	Agent *agent.Agent
	// Workflow follows up one lead.
	Workflow *durable.Workflow[Request, Outcome]

	env     *setup.Env
	manager string
	queue   string
	agentWF *durable.Workflow[agent.Input, agent.Result]
	lookup  *durable.Activity[string, lead]
	send    *durable.Activity[email.SendParams, SentEmail]
	note    *durable.Activity[crm.Note, bool]
}

// New defines the sales follow-up example on env and registers its
// workflow, its agent and its activities on env's engine.
func New(env *setup.Env, cfg *Config) (*Example, error) {
	c := Config{}
	if cfg != nil {
		c = *cfg
	}
	if c.ManagerEmail == "" {
		c.ManagerEmail = DefaultManagerEmail
	}
	if c.TaskQueue == "" {
		c.TaskQueue = setup.DefaultTaskQueue
	}
	x := &Example{env: env, manager: c.ManagerEmail, queue: c.TaskQueue}
	x.Agent = &agent.Agent{
		Name:         AgentName,
		Description:  "Writes a sales follow-up email to a lead.",
		Instructions: Instructions,
		Model:        env.Model,
		Tools:        []*tools.Tool{env.Tools.CRMLookup},
		MaxTurns:     4,
		Budget:       agent.Budget{MaxTokens: 50_000},
		TaskQueue:    c.TaskQueue,
	}
	if err := env.Runtime.Register(x.Agent); err != nil {
		return nil, fmt.Errorf("salesfollowup: %w", err)
	}
	wf, err := env.Runtime.Workflow(x.Agent)
	if err != nil {
		return nil, fmt.Errorf("salesfollowup: %w", err)
	}
	x.agentWF = wf
	quick := &durable.ActivityOptions{StartToCloseTimeout: 30 * time.Second, RetryPolicy: durable.RetryPolicy{MaximumAttempts: 5}}
	x.lookup = durable.NewActivity(Name+".lookup_lead", x.lookupLead, quick)
	x.send = durable.NewActivity(Name+".send_email", x.sendEmail, &durable.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		// The outbox sends at most once per key; its errors say whether a
		// retry can help.
		RetryPolicy: durable.RetryPolicy{MaximumAttempts: 10, MaximumInterval: 5 * time.Minute},
	})
	x.note = durable.NewActivity(Name+".add_note", x.addNote, quick)
	x.Workflow = durable.NewWorkflow(Name, x.run)
	if err := env.Engine.Register(x.Workflow, x.lookup, x.send, x.note); err != nil {
		return nil, fmt.Errorf("salesfollowup: %w", err)
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

// plan is a Request checked and with its defaults filled in.
type plan struct {
	req     Request
	waits   []time.Duration
	window  time.Duration
	manager string
}

func (x *Example) plan(req Request) (plan, error) {
	p := plan{req: req, window: DefaultReplyWindow, manager: x.manager}
	if !strings.Contains(req.LeadEmail, "@") {
		return p, fmt.Errorf("%w: lead_email %q is not an email address", ErrInvalidRequest, req.LeadEmail)
	}
	if p.req.Product == "" {
		p.req.Product = DefaultProduct
	}
	if req.ManagerEmail != "" {
		p.manager = req.ManagerEmail
	}
	p.waits = DefaultWaits()
	if len(req.Waits) > 0 {
		p.waits = p.waits[:0]
		for _, s := range req.Waits {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				return p, fmt.Errorf("%w: wait %q is not a positive duration such as \"72h\"", ErrInvalidRequest, s)
			}
			p.waits = append(p.waits, d)
		}
	}
	if req.ReplyWindow != "" {
		d, err := time.ParseDuration(req.ReplyWindow)
		if err != nil || d <= 0 {
			return p, fmt.Errorf("%w: reply_window %q is not a positive duration such as \"24h\"", ErrInvalidRequest, req.ReplyWindow)
		}
		p.window = d
	}
	return p, nil
}

// run is the workflow: draft, send and wait, five times over, until the
// lead replies; escalate when they never do.
func (x *Example) run(ctx durable.Context, req Request) (Outcome, error) {
	p, err := x.plan(req)
	if err != nil {
		return Outcome{}, err
	}
	ld, err := x.lookup.Run(ctx, req.LeadEmail)
	if err != nil {
		return Outcome{}, fmt.Errorf("salesfollowup: look the lead up: %w", err)
	}
	out := Outcome{CustomerKey: ld.CustomerKey}
	total := len(p.waits) + 1
	subject := fmt.Sprintf("%s for %s", p.req.Product, ld.organisation())

	replied := func(r Reply) (Outcome, error) {
		out.Status, out.Reply = StatusReplied, &r
		msg := fmt.Sprintf("Replied after %d of %d follow-up emails", len(out.Emails), total)
		if r.Message != "" {
			msg += ": " + r.Message
		}
		if err := x.noteLead(ctx, ld, msg); err != nil {
			return out, err
		}
		return out, nil
	}

	for n := 1; n <= total; n++ {
		if r, ok, err := Replied.TryReceive(ctx); err != nil {
			return out, fmt.Errorf("salesfollowup: reply signal: %w", err)
		} else if ok {
			return replied(r)
		}
		draft, err := x.agentWF.RunChild(ctx, agent.Input{Message: prompt(p, ld, n, total, out.Emails)}, &durable.ChildOptions{
			ID:        fmt.Sprintf("%s/email-%d", ctx.Info().WorkflowID, n),
			TaskQueue: x.queue,
		})
		if err != nil {
			return out, fmt.Errorf("salesfollowup: draft email %d: %w", n, err)
		}
		if draft.Status != agent.StatusCompleted || strings.TrimSpace(draft.Output) == "" {
			return out, fmt.Errorf("salesfollowup: draft email %d: the agent stopped (%s): %s", n, draft.Status, draft.Error)
		}
		// A reply that came while the email was being written stops it.
		if r, ok, err := Replied.TryReceive(ctx); err != nil {
			return out, fmt.Errorf("salesfollowup: reply signal: %w", err)
		} else if ok {
			return replied(r)
		}
		s := subject
		if n > 1 {
			s = "Re: " + subject
		}
		sent, err := x.send.Run(ctx, email.SendParams{To: []string{req.LeadEmail}, Subject: s, Text: bodyOf(draft.Output)})
		if err != nil {
			return out, fmt.Errorf("salesfollowup: send email %d: %w", n, err)
		}
		sent.N, sent.At = n, durable.Now(ctx)
		out.Emails = append(out.Emails, sent)

		wait := p.window
		if n < total {
			wait = p.waits[n-1]
		}
		r, ok, err := Replied.ReceiveWithTimeout(ctx, wait)
		if err != nil {
			return out, fmt.Errorf("salesfollowup: wait for a reply: %w", err)
		}
		if ok {
			return replied(r)
		}
	}

	// No reply within the window after the last email: the manager
	// decides what happens to the lead.
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s) has not replied to %d follow-up emails about %s, sent:\n\n", ld.display(), req.LeadEmail, len(out.Emails), p.req.Product)
	for _, e := range out.Emails {
		fmt.Fprintf(&b, "  %d. %s — %q\n", e.N, e.At.UTC().Format("Mon 2 Jan 2006 15:04 MST"), e.Subject)
	}
	fmt.Fprintf(&b, "\nThe last went out %s ago. Please decide whether to call them, hand the lead to someone else, or close it.\n", p.window)
	esc, err := x.send.Run(ctx, email.SendParams{
		To:      []string{p.manager},
		Subject: fmt.Sprintf("Escalation: no reply from %s after %d follow-ups", ld.display(), len(out.Emails)),
		Text:    b.String(),
	})
	if err != nil {
		return out, fmt.Errorf("salesfollowup: escalate: %w", err)
	}
	esc.At = durable.Now(ctx)
	out.Status, out.Escalation = StatusEscalated, &esc
	if err := x.noteLead(ctx, ld, fmt.Sprintf("No reply after %d follow-up emails; escalated to %s.", len(out.Emails), p.manager)); err != nil {
		return out, err
	}
	return out, nil
}

// noteLead notes the outcome on the lead's CRM customer, if there is one.
func (x *Example) noteLead(ctx durable.Context, ld lead, body string) error {
	if ld.CustomerKey == "" {
		return nil
	}
	if _, err := x.note.Run(ctx, crm.Note{CustomerKey: ld.CustomerKey, Author: AgentName, Body: body}); err != nil {
		return fmt.Errorf("salesfollowup: note the outcome: %w", err)
	}
	return nil
}

// prompt asks the agent for email n of total.
func prompt(p plan, ld lead, n, total int, sent []SentEmail) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Write follow-up email %d of %d to %s <%s> about %s.", n, total, ld.display(), p.req.LeadEmail, p.req.Product)
	if p.req.Context != "" {
		fmt.Fprintf(&b, "\nContext: %s", p.req.Context)
	}
	if len(sent) == 0 {
		b.WriteString("\nThis is the first email.")
	} else {
		fmt.Fprintf(&b, "\nNo reply yet to the %d earlier email(s); the last went out on %s.", len(sent), sent[len(sent)-1].At.UTC().Format("2 January"))
	}
	if n == total {
		b.WriteString("\nThis is the last email of the sequence.")
	}
	return b.String()
}

// bodyOf returns a drafted email without the header lines (To:, Subject:…)
// that a model may write at its top although it was asked for the body
// only: the workflow sets the recipient and the subject itself.
func bodyOf(draft string) string {
	lines := strings.Split(strings.TrimSpace(draft), "\n")
	out := make([]string, 0, len(lines))
	blank := false
	for i, l := range lines {
		if i < 8 && reHeader.MatchString(l) {
			continue
		}
		if strings.TrimSpace(l) == "" {
			if blank || len(out) == 0 {
				continue
			}
			blank = true
		} else {
			blank = false
		}
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}

var reHeader = regexp.MustCompile(`(?i)^\s*(to|from|cc|subject)\s*:`) //nolint:gochecknoglobals // compiled once

// lead is what the CRM knows about a lead.
type lead struct {
	Email       string `json:"email"`
	CustomerKey string `json:"customer_key,omitempty"`
	Name        string `json:"name,omitempty"`
	Company     string `json:"company,omitempty"`
}

func (l lead) display() string {
	if l.Name != "" {
		return l.Name
	}
	return l.Email
}

func (l lead) organisation() string {
	switch {
	case l.Company != "":
		return l.Company
	case l.Name != "":
		return l.Name
	}
	_, domain, _ := strings.Cut(l.Email, "@")
	return domain
}

func (x *Example) lookupLead(ctx context.Context, addr string) (lead, error) {
	c, err := x.env.CRM.CustomerByEmail(ctx, addr)
	switch {
	case errors.Is(err, crm.ErrNotFound):
		return lead{Email: addr}, nil
	case err != nil:
		return lead{}, err
	}
	return lead{Email: addr, CustomerKey: c.Key, Name: c.Name, Company: c.Company}, nil
}

// sendEmail sends through the outbox under the activity's idempotency
// key, so that a retried attempt never sends twice.
func (x *Example) sendEmail(ctx context.Context, p email.SendParams) (SentEmail, error) {
	m, err := x.env.Email.Send(ctx, p)
	if err != nil {
		return SentEmail{}, err
	}
	return SentEmail{Key: m.Key, To: strings.Join(m.To, ", "), Subject: m.Subject, Status: m.Status}, nil
}

// addNote adds a note once per activity: its idempotency key is the
// note's.
func (x *Example) addNote(ctx context.Context, n crm.Note) (bool, error) {
	if info, ok := durable.GetActivityInfo(ctx); ok {
		n.IdempotencyKey = info.IdempotencyKey
	}
	_, err := x.env.CRM.AddNote(ctx, n)
	return err == nil, err
}
