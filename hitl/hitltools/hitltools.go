package hitltools

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/tools"
)

// ErrTimedOut: no decision came before the deadline (nor the escalation's).
var ErrTimedOut = errors.New("hitltools: approval timed out")

// Route says who is asked: a reviewer group, how many of it must approve,
// and how long to wait.
type Route struct {
	// Group is the reviewer group. Required.
	Group string
	// Required approvers. Optional; default 1.
	Required int
	// Timeout. Optional; default hitl.DefaultTimeout.
	Timeout time.Duration
}

// Config configures an Approver. The zero value is valid.
type Config struct {
	// Requester is the identity recorded as asking (the agent's name);
	// that identity can never approve. Optional.
	Requester string
	// Fallback is asked when no rule matches. Optional; default nil:
	// a call no rule matches needs no approval and runs.
	Fallback *Route
	// Escalation is asked once when the first group lets its deadline
	// pass. Optional; default nil: a timeout is final.
	Escalation *Route
}

// Approver implements tools.Approver with a Policy and hitl.Approve. It is
// immutable and safe for concurrent use.
type Approver struct {
	policy *hitl.Policy
	cfg    Config
}

var _ tools.Approver = (*Approver)(nil)

// New returns an Approver that consults policy. cfg may be nil.
func New(policy *hitl.Policy, cfg *Config) (*Approver, error) {
	if policy == nil {
		return nil, errors.New("hitltools: new: nil policy")
	}
	a := &Approver{policy: policy}
	if cfg != nil {
		a.cfg = *cfg
	}
	for _, r := range []*Route{a.cfg.Fallback, a.cfg.Escalation} {
		if r != nil && r.Group == "" {
			return nil, errors.New("hitltools: new: a Route without a group")
		}
	}
	return a, nil
}

// route is the policy's answer for one call, recorded in the run's
// history.
type route struct {
	Needed bool   `json:"needed"`
	Rule   string `json:"rule,omitempty"`
	Route  Route  `json:"route"`
	Err    string `json:"err,omitempty"`
}

// Approve decides req: it evaluates the policy, and if a rule matches (or a
// Fallback is set) asks the rule's group with hitl.Approve and waits.
// The policy's answer is recorded (a durable.SideEffect), so that changing
// the rules never changes what a running run replays. A policy evaluation
// error, like a timeout, means no decision: the error is returned and the
// tool does not run.
func (a *Approver) Approve(ctx durable.Context, req tools.ApprovalRequest) (tools.ApprovalDecision, error) {
	rt, err := durable.SideEffect(ctx, func() route {
		m, ok, err := a.policy.Match(req.Action, req.Arguments)
		switch {
		case err != nil:
			return route{Err: err.Error()}
		case ok:
			return route{Needed: true, Rule: m.Rule, Route: Route{Group: m.Group, Required: m.Required, Timeout: m.Timeout}}
		case a.cfg.Fallback != nil:
			return route{Needed: true, Rule: "fallback", Route: *a.cfg.Fallback}
		}
		return route{}
	})
	if err != nil {
		return tools.ApprovalDecision{}, fmt.Errorf("hitltools: record policy decision: %w", err)
	}
	if rt.Err != "" {
		return tools.ApprovalDecision{}, fmt.Errorf("hitltools: %w: %s", hitl.ErrPolicyEval, rt.Err)
	}
	if !rt.Needed {
		return tools.ApprovalDecision{Approved: true, Comment: "no approval rule applies to this call"}, nil
	}

	routes := []Route{rt.Route}
	if a.cfg.Escalation != nil {
		routes = append(routes, *a.cfg.Escalation)
	}
	for i, r := range routes {
		d, err := hitl.Approve(ctx, a.request(req, rt.Rule, r, i > 0))
		if err != nil {
			return tools.ApprovalDecision{}, fmt.Errorf("hitltools: %w", err)
		}
		if d.TimedOut() {
			continue
		}
		out := tools.ApprovalDecision{
			Approved: d.Approved(),
			Reviewer: strings.Join(d.DecidedBy, ", "),
			Comment:  comment(d),
		}
		if d.Edited {
			out.Arguments = d.Args
		}
		return out, nil
	}
	return tools.ApprovalDecision{}, fmt.Errorf("%w: %s", ErrTimedOut, req.Action)
}

func (a *Approver) request(req tools.ApprovalRequest, rule string, r Route, escalated bool) hitl.Request {
	title := "Approve " + req.Action
	if escalated {
		title = "Escalated: approve " + req.Action
	}
	details := req.Reason
	if rule != "" {
		details += "\n(policy rule: " + rule + ")"
	}
	if req.CallID != "" {
		details += "\n(tool call " + req.CallID + ")"
	}
	var args any = json.RawMessage("null")
	if len(req.Arguments) > 0 {
		args = req.Arguments
	}
	return hitl.Request{
		Title:     title,
		Details:   strings.TrimSpace(details),
		Action:    req.Action,
		Args:      args,
		Group:     r.Group,
		Required:  r.Required,
		Timeout:   r.Timeout,
		Requester: a.cfg.Requester,
	}
}

// comment joins the votes' comments: a single reviewer's as is, several as
// "reviewer: comment; …".
func comment(d hitl.Decision) string {
	var withText []hitl.Vote
	for _, v := range d.Votes {
		if v.Comment != "" {
			withText = append(withText, v)
		}
	}
	if len(withText) == 1 && len(d.Votes) == 1 {
		return withText[0].Comment
	}
	return strings.Join(d.Comments(), "; ")
}
