package tools

import (
	"encoding/json"

	"github.com/keelhq/keel/durable"
)

// Approver decides whether a gated action may run. It is called from
// workflow code, so it may wait durably (for a human's signal, with a
// timer) and its decision is recorded in the run's history like any other
// step. The hitl package implements it; tests can implement it in a few
// lines.
type Approver interface {
	// Approve returns the decision on req. An error other than
	// durable.ErrCanceled (for example a timeout without a decision) means
	// no decision: the action does not run.
	Approve(ctx durable.Context, req ApprovalRequest) (ApprovalDecision, error)
}

// ApprovalRequest is what a reviewer is asked to approve.
type ApprovalRequest struct {
	// Action is what would run: the tool's name, or another action such as
	// an agent's "budget" for spending past a budget.
	Action string `json:"action"`
	// Arguments are the exact arguments the action would run with.
	Arguments json.RawMessage `json:"arguments,omitempty"`
	// Reason says why approval is needed.
	Reason string `json:"reason"`
	// CallID is the model's ID of the tool call, when there is one.
	CallID string `json:"call_id,omitempty"`
}

// ApprovalDecision is a reviewer's answer.
type ApprovalDecision struct {
	Approved bool   `json:"approved"`
	Reviewer string `json:"reviewer,omitempty"`
	Comment  string `json:"comment,omitempty"`
	// Arguments, when set on an approval, replace the requested arguments:
	// the reviewer edited them.
	Arguments json.RawMessage `json:"arguments,omitempty"`
}

// ApproverFunc adapts a function to the Approver interface.
type ApproverFunc func(ctx durable.Context, req ApprovalRequest) (ApprovalDecision, error)

// Approve calls f.
func (f ApproverFunc) Approve(ctx durable.Context, req ApprovalRequest) (ApprovalDecision, error) {
	return f(ctx, req)
}
