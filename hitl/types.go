package hitl

import (
	"encoding/json"
	"time"
)

// Status is an approval's state. An approval is pending until it closes as
// approved, rejected, timed out or canceled; a closed approval never
// changes again.
type Status string

// Approval states.
const (
	// StatusPending: waiting for decisions.
	StatusPending Status = "pending"
	// StatusApproved: Required members of the group approved.
	StatusApproved Status = "approved"
	// StatusRejected: a member of the group rejected (one rejection is
	// enough, whatever Required is).
	StatusRejected Status = "rejected"
	// StatusTimedOut: the deadline passed first.
	StatusTimedOut Status = "timed_out"
	// StatusCanceled: the run that asked closed (canceled, terminated)
	// before the approval was decided.
	StatusCanceled Status = "canceled"
)

// Closed reports whether s is a final state.
func (s Status) Closed() bool { return s != StatusPending && s != "" }

// Approval is a request for approval as the Service stores it: what it
// authorizes, who may decide, and the votes so far.
type Approval struct {
	ID         string `json:"id"`
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	Title      string `json:"title"`
	// Details tell the reviewer why the action is asked for.
	Details string `json:"details,omitempty"`
	// Action and Args are what the approval authorizes; Args is canonical
	// JSON (see Canonical).
	Action string          `json:"action"`
	Args   json.RawMessage `json:"args,omitempty"`
	// ArgsHash is Hash(Action, Args): a decision must present it.
	ArgsHash string `json:"args_hash"`
	// Group is the reviewer group that decides; Required is how many of
	// its members must approve.
	Group     string    `json:"group"`
	Required  int       `json:"required"`
	Requester string    `json:"requester,omitempty"`
	Status    Status    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	// Deadline is when a pending approval times out; decisions from then
	// on are refused with ErrExpired.
	Deadline time.Time `json:"deadline"`
	// ClosedAt is zero while the approval is pending.
	ClosedAt time.Time `json:"closed_at,omitzero"`
	// Votes are the decisions made, in order.
	Votes []Vote `json:"votes"`
}

// Approvals returns how many votes approve.
func (a *Approval) Approvals() int {
	n := 0
	for _, v := range a.Votes {
		if v.Approve {
			n++
		}
	}
	return n
}

// Vote is one reviewer's decision on an approval.
type Vote struct {
	// ID identifies the decision; it is also the request ID of the signal
	// that brings it to the workflow, so a repeated signal applies once.
	ID       string `json:"id"`
	Reviewer string `json:"reviewer"`
	Approve  bool   `json:"approve"`
	Comment  string `json:"comment,omitempty"`
	// ArgsHash is the hash the reviewer was shown and decided on.
	ArgsHash string `json:"args_hash"`
	// EditedArgs, when set, are the arguments the reviewer approved
	// instead of the requested ones; EditedArgsHash is their Hash.
	EditedArgs     json.RawMessage `json:"edited_args,omitempty"`
	EditedArgsHash string          `json:"edited_args_hash,omitempty"`
	// ViaLink is true for a decision made with a signed review link.
	ViaLink bool      `json:"via_link,omitempty"`
	At      time.Time `json:"at"`
	// Delivered is true once the workflow was signalled (or found
	// closed). It is not part of the signal.
	Delivered bool `json:"delivered,omitempty"`
}

// VoteEvent is the payload of the signal that brings a vote to the
// waiting workflow; it is recorded in the run's history, so the run's
// timeline shows who decided, when, and why. Besides the vote it carries
// the approval's state after the vote, so that the vote that closes the
// approval brings every earlier one with it.
type VoteEvent struct {
	ApprovalID string `json:"approval_id"`
	Vote       Vote   `json:"vote"`
	// Status is the approval's status after the vote.
	Status   Status    `json:"status"`
	ClosedAt time.Time `json:"closed_at,omitzero"`
	// Votes are all votes up to and including this one.
	Votes []Vote `json:"votes"`
}

// SignalPrefix starts the name of every approval's decision signal.
const SignalPrefix = "hitl.decision/"

// SignalName returns the name of the signal that carries the votes on one
// approval. Each approval has its own, so that a run waiting on several
// approvals at once (parallel tool calls) never mixes them up.
func SignalName(approvalID string) string { return SignalPrefix + approvalID }

// Decision is what Approve returns: the outcome of an approval.
type Decision struct {
	ApprovalID string `json:"approval_id"`
	Group      string `json:"group"`
	// Status is StatusApproved, StatusRejected or StatusTimedOut.
	Status Status `json:"status"`
	// DecidedBy lists the reviewers whose votes decided: every approver
	// (Required of them) when approved, the rejecting reviewer when
	// rejected, nobody when timed out.
	DecidedBy []string `json:"decided_by,omitempty"`
	// DecidedAt is when the approval closed.
	DecidedAt time.Time `json:"decided_at"`
	// Votes are all votes, in order, with their comments.
	Votes []Vote `json:"votes,omitempty"`
	// Args are the arguments authorized: the requested ones, or the
	// reviewer's edited ones when Edited. ArgsHash is their Hash.
	Args     json.RawMessage `json:"args,omitempty"`
	ArgsHash string          `json:"args_hash"`
	Edited   bool            `json:"edited,omitempty"`
}

// Approved reports whether the action may go ahead.
func (d Decision) Approved() bool { return d.Status == StatusApproved }

// TimedOut reports whether the deadline passed without a decision, so the
// workflow may escalate.
func (d Decision) TimedOut() bool { return d.Status == StatusTimedOut }

// Comments returns the non-empty comments of the votes, as
// "reviewer: comment", in order.
func (d Decision) Comments() []string {
	var out []string
	for _, v := range d.Votes {
		if v.Comment != "" {
			out = append(out, v.Reviewer+": "+v.Comment)
		}
	}
	return out
}

// decisionOf builds the Decision for a closed approval.
func decisionOf(a *Approval) Decision {
	d := Decision{
		ApprovalID: a.ID,
		Group:      a.Group,
		Status:     a.Status,
		DecidedAt:  a.ClosedAt,
		Votes:      a.Votes,
		Args:       a.Args,
		ArgsHash:   a.ArgsHash,
	}
	for _, v := range a.Votes {
		switch {
		case a.Status == StatusApproved && v.Approve:
			d.DecidedBy = append(d.DecidedBy, v.Reviewer)
			if v.EditedArgsHash != "" {
				d.Args, d.ArgsHash, d.Edited = v.EditedArgs, v.EditedArgsHash, true
			}
		case a.Status == StatusRejected && !v.Approve:
			d.DecidedBy = append(d.DecidedBy, v.Reviewer)
		}
	}
	return d
}
