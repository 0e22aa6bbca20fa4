package legalreview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/keelhq/keel/agent"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/tools/email"
)

// Names of the example's workflow and agent, and what it does.
const (
	// Name is the workflow that reviews a contract, and the example's name.
	Name = "legalreview"
	// AgentName is the agent that drafts the memo, run as a child of Name.
	AgentName = "legal_drafter"
	// Action is the action the reviewers approve: sending the memo.
	Action      = "send_memo"
	Description = "Drafts a legal memo on a contract, waits up to 24 hours for a lawyer's approval on the reviewer " +
		"page (group \"legal\"), then emails it; when no lawyer decides in time it escalates to a partner (group \"partners\")."
)

// Defaults.
const (
	DefaultLawyers       = "legal"
	DefaultPartners      = "partners"
	DefaultReviewTimeout = 24 * time.Hour
	// DefaultPartnerTimeout is how long an escalated approval waits.
	DefaultPartnerTimeout = 24 * time.Hour
)

// Outcome statuses.
const (
	// StatusSent: a reviewer approved and the memo was emailed.
	StatusSent = "sent"
	// StatusRejected: a reviewer rejected the memo; nothing was sent.
	StatusRejected = "rejected"
	// StatusExpired: neither the lawyers nor the partners decided in time;
	// nothing was sent.
	StatusExpired = "expired"
)

// ErrInvalidRequest: a Request lacks its contract or recipient.
var ErrInvalidRequest = errors.New("legalreview: invalid request")

// Request is the input of a run: a contract to review and who gets the
// memo.
type Request struct {
	// Title names the matter ("Supply agreement with Acme"). Optional;
	// default "Contract review".
	Title string `json:"title,omitempty"`
	// Contract is the text to review. Required.
	Contract string `json:"contract"`
	// ClientEmail receives the approved memo. Required.
	ClientEmail string `json:"client_email"`
	// Requester is who asked for the review; they may not approve it
	// themselves. Optional; default the workflow's name.
	Requester string `json:"requester,omitempty"`
}

// Memo is what the reviewers approve: the email that will be sent. A
// reviewer may approve an edited memo (hitl.DecideInput.EditedArgs).
type Memo struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

// Outcome is the result of a run.
type Outcome struct {
	// Status is StatusSent, StatusRejected or StatusExpired.
	Status string `json:"status"`
	// Draft is the memo the agent drafted; Sent the one emailed (the
	// reviewer's edit, if they made one).
	Draft Memo  `json:"draft"`
	Sent  *Memo `json:"sent,omitempty"`
	// EmailKey is the sent memo's outbox key.
	EmailKey string `json:"email_key,omitempty"`
	// Escalated is true when the lawyers did not decide in time and the
	// partners were asked.
	Escalated bool `json:"escalated,omitempty"`
	// Decisions are the approvals' outcomes, in order: the lawyers', then
	// the partners' when escalated.
	Decisions []hitl.Decision `json:"decisions"`
}

// Config configures the example. A nil *Config takes every default.
type Config struct {
	// Lawyers is the reviewer group that approves memos. Optional;
	// default DefaultLawyers.
	Lawyers string
	// Partners is the group asked when the lawyers do not decide in time.
	// Optional; default DefaultPartners.
	Partners string
	// ReviewTimeout is how long the lawyers have. Optional; default
	// DefaultReviewTimeout.
	ReviewTimeout time.Duration
	// PartnerTimeout is how long the partners have. Optional; default
	// DefaultPartnerTimeout.
	PartnerTimeout time.Duration
	// TaskQueue is where the runs and the agent work. Optional; default
	// setup.DefaultTaskQueue.
	TaskQueue string
}

// Instructions are the drafting agent's system message.
const Instructions = `You are a lawyer at a commercial law firm. You review the contract you are given and draft a memo for the client, which a senior lawyer will check before it is sent.

Write the memo in plain text: a one-paragraph summary; then each clause that carries risk for the client (unlimited or uncapped liability, indemnities, automatic renewal, termination rights, exclusivity, penalties, governing law, assignment), quoted briefly, with how serious it is (low, medium or high) and what to negotiate instead; then an overall risk level and your recommendation (sign, negotiate, or do not sign). Do not invent clauses that are not in the text, and say so when the text is too short to judge.`

// Example is the legal review example, registered on an engine.
type Example struct {
	// Agent drafts the memo.
	Agent *agent.Agent
	// Workflow reviews one contract.
	Workflow *durable.Workflow[Request, Outcome]

	env     *setup.Env
	cfg     Config
	agentWF *durable.Workflow[agent.Input, agent.Result]
	send    *durable.Activity[Memo, string]
}

// New defines the legal review example on env and registers its
// workflow, its agent and its activities on env's engine. env.Approvals
// must know the Lawyers and Partners groups.
func New(env *setup.Env, cfg *Config) (*Example, error) {
	c := Config{}
	if cfg != nil {
		c = *cfg
	}
	if c.Lawyers == "" {
		c.Lawyers = DefaultLawyers
	}
	if c.Partners == "" {
		c.Partners = DefaultPartners
	}
	if c.ReviewTimeout <= 0 {
		c.ReviewTimeout = DefaultReviewTimeout
	}
	if c.PartnerTimeout <= 0 {
		c.PartnerTimeout = DefaultPartnerTimeout
	}
	if c.TaskQueue == "" {
		c.TaskQueue = setup.DefaultTaskQueue
	}
	if env.Approvals == nil {
		return nil, errors.New("legalreview: the Env has no approval service")
	}
	groups := env.Approvals.Groups()
	for _, g := range []string{c.Lawyers, c.Partners} {
		if len(groups.Members(g)) == 0 {
			return nil, fmt.Errorf("legalreview: %w: %q (the approval service has %v)", hitl.ErrUnknownGroup, g, keys(groups))
		}
	}
	x := &Example{env: env, cfg: c}
	x.Agent = &agent.Agent{
		Name:         AgentName,
		Description:  "Drafts a legal memo on a contract.",
		Instructions: Instructions,
		Model:        env.Model,
		MaxTurns:     3,
		Budget:       agent.Budget{MaxTokens: 100_000},
		TaskQueue:    c.TaskQueue,
	}
	if err := env.Runtime.Register(x.Agent); err != nil {
		return nil, fmt.Errorf("legalreview: %w", err)
	}
	wf, err := env.Runtime.Workflow(x.Agent)
	if err != nil {
		return nil, fmt.Errorf("legalreview: %w", err)
	}
	x.agentWF = wf
	x.send = durable.NewActivity(Name+".send_memo", x.sendMemo, &durable.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         durable.RetryPolicy{MaximumAttempts: 10, MaximumInterval: 5 * time.Minute},
	})
	x.Workflow = durable.NewWorkflow(Name, x.run)
	if err := env.Engine.Register(x.Workflow, x.send); err != nil {
		return nil, fmt.Errorf("legalreview: %w", err)
	}
	env.AddTaskQueue(c.TaskQueue)
	return x, nil
}

func keys(g hitl.Groups) []string { return slices.Sorted(maps.Keys(g)) }

// TaskQueue returns the task queue runs start on.
func (x *Example) TaskQueue() string { return x.cfg.TaskQueue }

// Start starts a run for req. opts may be nil; its TaskQueue defaults to
// the example's.
func (x *Example) Start(ctx context.Context, req Request, opts *durable.StartOptions) (*durable.Handle[Outcome], error) {
	return setup.Start(ctx, x.env, x.Workflow, req, x.cfg.TaskQueue, opts)
}

// run is the workflow: draft, ask the lawyers, escalate to the partners on
// a timeout, and send what was approved.
func (x *Example) run(ctx durable.Context, req Request) (Outcome, error) {
	if strings.TrimSpace(req.Contract) == "" || !strings.Contains(req.ClientEmail, "@") {
		return Outcome{}, fmt.Errorf("%w: contract and client_email are required", ErrInvalidRequest)
	}
	if req.Title == "" {
		req.Title = "Contract review"
	}
	if req.Requester == "" {
		req.Requester = Name
	}
	res, err := x.agentWF.RunChild(ctx, agent.Input{Message: prompt(req)}, &durable.ChildOptions{
		ID:        ctx.Info().WorkflowID + "/draft",
		TaskQueue: x.cfg.TaskQueue,
	})
	if err != nil {
		return Outcome{}, fmt.Errorf("legalreview: draft: %w", err)
	}
	if res.Status != agent.StatusCompleted || strings.TrimSpace(res.Output) == "" {
		return Outcome{}, fmt.Errorf("legalreview: draft: the agent stopped (%s): %s", res.Status, res.Error)
	}
	out := Outcome{Draft: Memo{To: req.ClientEmail, Subject: "Legal memo: " + req.Title, Body: res.Output}}

	ask := hitl.Request{
		Title:     "Send legal memo: " + req.Title,
		Details:   fmt.Sprintf("Memo drafted by the %s agent for %s. Approve to email it as it stands (or edit it first); reject to send nothing.\n\n%s", AgentName, req.ClientEmail, res.Output),
		Action:    Action,
		Args:      out.Draft,
		Group:     x.cfg.Lawyers,
		Timeout:   x.cfg.ReviewTimeout,
		Requester: req.Requester,
	}
	d, err := hitl.Approve(ctx, ask)
	if err != nil {
		return out, fmt.Errorf("legalreview: ask the lawyers: %w", err)
	}
	out.Decisions = append(out.Decisions, d)
	if d.TimedOut() {
		out.Escalated = true
		ask.Title = "Escalated, no lawyer decided within " + x.cfg.ReviewTimeout.String() + ": " + ask.Title
		ask.Group, ask.Timeout = x.cfg.Partners, x.cfg.PartnerTimeout
		if d, err = hitl.Approve(ctx, ask); err != nil {
			return out, fmt.Errorf("legalreview: ask the partners: %w", err)
		}
		out.Decisions = append(out.Decisions, d)
	}
	switch {
	case d.TimedOut():
		out.Status = StatusExpired
		return out, nil
	case !d.Approved():
		out.Status = StatusRejected
		return out, nil
	}
	var memo Memo
	if err := json.Unmarshal(d.Args, &memo); err != nil {
		return out, fmt.Errorf("legalreview: approved memo: %w", err)
	}
	if memo.To == "" || memo.Body == "" {
		return out, fmt.Errorf("legalreview: the approved memo has no recipient or no body")
	}
	if out.EmailKey, err = x.send.Run(ctx, memo); err != nil {
		return out, fmt.Errorf("legalreview: send: %w", err)
	}
	out.Status, out.Sent = StatusSent, &memo
	return out, nil
}

func prompt(req Request) string {
	return fmt.Sprintf("Review this contract for %s (%s) and draft the memo.\n\n%s", req.Title, req.ClientEmail, strings.TrimSpace(req.Contract))
}

// sendMemo emails the approved memo through the outbox, once: the key is
// the activity's idempotency key.
func (x *Example) sendMemo(ctx context.Context, m Memo) (string, error) {
	msg, err := x.env.Email.Send(ctx, email.SendParams{To: []string{m.To}, Subject: m.Subject, Text: m.Body})
	if err != nil {
		return "", err
	}
	return msg.Key, nil
}
