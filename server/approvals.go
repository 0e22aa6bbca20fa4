package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/go-chi/chi/v5"

	"github.com/keelhq/keel/hitl"
)

// Approvals is what the server needs of the approval service; a
// *hitl.Service is one.
type Approvals interface {
	// Get returns an approval with its votes (hitl.ErrNotFound).
	Get(ctx context.Context, id string) (*hitl.Approval, error)
	// List lists approvals, newest first.
	List(ctx context.Context, p *hitl.ListParams) ([]hitl.Approval, string, error)
	// CanDecide reports why reviewer may not decide a now, or nil.
	CanDecide(a *hitl.Approval, reviewer string) error
	// Decide records a decision and delivers it to the waiting run.
	Decide(ctx context.Context, approvalID string, in hitl.DecideInput) (*hitl.Approval, error)
	// CheckLink verifies a review link's token and that it is unused.
	CheckLink(ctx context.Context, token string) (hitl.LinkClaims, error)
	// Groups returns the reviewer groups.
	Groups() hitl.Groups
}

var _ Approvals = (*hitl.Service)(nil)

// ApprovalView is an approval as the API shows it to a caller: the
// approval, and whether the caller may decide it.
type ApprovalView struct {
	hitl.Approval
	// CanDecide is true when the caller may decide the approval now.
	CanDecide bool `json:"can_decide"`
	// CannotDecide says why not, when CanDecide is false.
	CannotDecide string `json:"cannot_decide,omitempty"`
}

// ApprovalList is one page of approvals.
type ApprovalList struct {
	Approvals  []hitl.Approval `json:"approvals"`
	NextCursor string          `json:"next_cursor,omitempty"`
}

// DecisionParams is the body of POST /v1/approvals/{id}/decision.
type DecisionParams struct {
	// Decision is "approve" or "reject". Required.
	Decision string `json:"decision"`
	// Comment is the reviewer's reason, recorded with the decision.
	// Optional; at most 16 KiB.
	Comment string `json:"comment,omitempty"`
	// ArgsHash is the approval's args_hash as the reviewer saw it.
	// Required: a decision on other arguments is refused.
	ArgsHash string `json:"args_hash"`
	// EditedArgs are arguments approved instead of the requested ones.
	// Optional; only with approve.
	EditedArgs json.RawMessage `json:"edited_args,omitempty"`
}

func (p *DecisionParams) validate() *Problem {
	switch {
	case p.Decision != "approve" && p.Decision != "reject":
		return fieldProblem(CodeInvalidField, "decision", `must be "approve" or "reject"`)
	case p.ArgsHash == "":
		return fieldProblem(CodeInvalidField, "args_hash", "required: the approval's args_hash, as shown to the reviewer")
	case len(p.ArgsHash) > 128:
		return fieldProblem(CodeInvalidField, "args_hash", "too long")
	case len(p.Comment) > hitl.MaxCommentBytes:
		return fieldProblem(CodeInvalidField, "comment", "at most "+strconv.Itoa(hitl.MaxCommentBytes)+" bytes")
	case len(p.EditedArgs) > 0 && p.Decision != "approve":
		return fieldProblem(CodeInvalidField, "edited_args", "only with approve")
	}
	return nil
}

func (s *Server) approvalsOr404(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Approvals == nil {
		s.problem(w, r, &Problem{Status: http.StatusNotFound, Code: CodeApprovalsDisabled, Detail: "this server has no approval service"})
		return false
	}
	return true
}

// approvalProblem maps an approval service error to a Problem.
func approvalProblem(err error) *Problem {
	p := func(status int, code string) *Problem {
		return &Problem{Status: status, Code: code, Detail: err.Error()}
	}
	switch {
	case errors.Is(err, hitl.ErrNotFound):
		return p(http.StatusNotFound, CodeApprovalNotFound)
	case errors.Is(err, hitl.ErrLinkUsed):
		return p(http.StatusConflict, CodeLinkUsed)
	case errors.Is(err, hitl.ErrInvalidLink):
		return p(http.StatusForbidden, CodeLinkInvalid)
	case errors.Is(err, hitl.ErrNotInGroup):
		return p(http.StatusForbidden, CodeNotInGroup)
	case errors.Is(err, hitl.ErrSelfApproval):
		return p(http.StatusForbidden, CodeSelfApproval)
	case errors.Is(err, hitl.ErrAlreadyVoted):
		return p(http.StatusConflict, CodeAlreadyVoted)
	case errors.Is(err, hitl.ErrExpired):
		return p(http.StatusConflict, CodeApprovalExpired)
	case errors.Is(err, hitl.ErrClosed):
		return p(http.StatusConflict, CodeApprovalClosed)
	case errors.Is(err, hitl.ErrArgsMismatch):
		prob := p(http.StatusConflict, CodeArgsMismatch)
		prob.Errors = []FieldError{{Field: "args_hash", Detail: "does not match the approval's arguments"}}
		return prob
	case errors.Is(err, hitl.ErrEditNotAllowed):
		prob := p(http.StatusBadRequest, CodeEditNotAllowed)
		prob.Errors = []FieldError{{Field: "edited_args", Detail: "not allowed for this decision"}}
		return prob
	case errors.Is(err, hitl.ErrInvalidInput):
		prob := p(http.StatusBadRequest, CodeInvalidField)
		if fe, ok := errors.AsType[*hitl.FieldError](err); ok {
			prob.Errors = []FieldError{{Field: snakeCase(fe.Field), Detail: fe.Detail}}
		}
		return prob
	}
	return nil
}

// snakeCase is the API's name of a Go field name: "EditedArgs" is
// "edited_args".
func snakeCase(name string) string {
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (s *Server) approvalError(w http.ResponseWriter, r *http.Request, err error) {
	if p := approvalProblem(err); p != nil {
		s.problem(w, r, p)
		return
	}
	s.internal(w, r, err)
}

func (s *Server) listApprovals(w http.ResponseWriter, r *http.Request) {
	if !s.approvalsOr404(w, r) {
		return
	}
	q := r.URL.Query()
	params := hitl.ListParams{}
	all := false
	for k := range q {
		switch k {
		case "all":
			v := q.Get("all")
			if v != "true" && v != "false" {
				s.problem(w, r, fieldProblem(CodeInvalidField, "all", `must be "true" or "false"`))
				return
			}
			all = v == "true"
		case "status":
			st := hitl.Status(q.Get("status"))
			switch st {
			case hitl.StatusPending, hitl.StatusApproved, hitl.StatusRejected, hitl.StatusTimedOut, hitl.StatusCanceled:
			default:
				s.problem(w, r, fieldProblem(CodeInvalidField, "status", "must be one of pending, approved, rejected, timed_out, canceled"))
				return
			}
			params.Status = st
		case "group":
			params.Group = q.Get("group")
		case "run_id":
			params.WorkflowID = q.Get("run_id")
		case "cursor":
			params.Cursor = q.Get("cursor")
		case "limit":
			n, err := strconv.Atoi(q.Get("limit"))
			if err != nil || n < 1 || n > 500 {
				s.problem(w, r, fieldProblem(CodeInvalidField, "limit", "must be an integer from 1 to 500"))
				return
			}
			params.Limit = n
		default:
			s.problem(w, r, fieldProblem(CodeInvalidField, k, "unknown query parameter"))
			return
		}
	}
	if !all {
		// The caller's queue: pending approvals they may still vote on.
		params.Reviewer = PrincipalFrom(r.Context()).Subject
		if params.Status == "" {
			params.Status = hitl.StatusPending
		}
	}
	list, next, err := s.cfg.Approvals.List(r.Context(), &params)
	if errors.Is(err, hitl.ErrInvalidInput) {
		s.problem(w, r, fieldProblem(CodeInvalidField, "cursor", "not a cursor from a previous page's next_cursor"))
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ApprovalList{Approvals: list, NextCursor: next})
}

func (s *Server) view(a *hitl.Approval, reviewer string) ApprovalView {
	v := ApprovalView{Approval: *a}
	if err := s.cfg.Approvals.CanDecide(a, reviewer); err != nil {
		v.CannotDecide = whyNot(err)
	} else {
		v.CanDecide = true
	}
	return v
}

// whyNot explains to a reviewer why they cannot decide.
func whyNot(err error) string {
	switch {
	case errors.Is(err, hitl.ErrNotInGroup):
		return "you are not a member of the group that decides this approval"
	case errors.Is(err, hitl.ErrSelfApproval):
		return "you asked for this approval, so someone else must decide it"
	case errors.Is(err, hitl.ErrAlreadyVoted):
		return "you have already decided"
	case errors.Is(err, hitl.ErrExpired):
		return "the deadline has passed"
	case errors.Is(err, hitl.ErrClosed):
		return "the approval is closed"
	}
	return err.Error()
}

func (s *Server) getApproval(w http.ResponseWriter, r *http.Request) {
	if !s.approvalsOr404(w, r) {
		return
	}
	a, err := s.cfg.Approvals.Get(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.approvalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.view(a, PrincipalFrom(r.Context()).Subject))
}

func (s *Server) decideApproval(w http.ResponseWriter, r *http.Request) {
	if !s.approvalsOr404(w, r) {
		return
	}
	var p DecisionParams
	if prob := s.decodeJSON(w, r, &p, false); prob != nil {
		s.problem(w, r, prob)
		return
	}
	if prob := p.validate(); prob != nil {
		s.problem(w, r, prob)
		return
	}
	a, err := s.decide(r.Context(), chi.URLParam(r, "id"), PrincipalFrom(r.Context()).Subject, p, "", "api")
	if err != nil {
		s.approvalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.view(a, PrincipalFrom(r.Context()).Subject))
}

// decide records a decision; token is the review link's, or empty.
func (s *Server) decide(ctx context.Context, id, reviewer string, p DecisionParams, token, via string) (*hitl.Approval, error) {
	a, err := s.cfg.Approvals.Decide(ctx, id, hitl.DecideInput{
		Reviewer:   reviewer,
		Approve:    p.Decision == "approve",
		Comment:    strings.TrimSpace(p.Comment),
		ArgsHash:   p.ArgsHash,
		EditedArgs: p.EditedArgs,
		LinkToken:  token,
	})
	if err != nil {
		s.log.InfoContext(ctx, "decision refused", "approval_id", id, "reviewer", reviewer, "via", via, "err", err, "request_id", RequestID(ctx))
		return nil, err
	}
	s.metrics.decisions.WithLabelValues(p.Decision, via).Inc()
	s.log.InfoContext(ctx, "approval decided", "approval_id", id, "run_id", a.WorkflowID, "reviewer", reviewer,
		"decision", p.Decision, "via", via, "status", a.Status, "request_id", RequestID(ctx))
	return a, nil
}

func (s *Server) runApprovals(w http.ResponseWriter, r *http.Request) {
	if !s.approvalsOr404(w, r) {
		return
	}
	info, ok := s.runOr404(w, r)
	if !ok {
		return
	}
	list, _, err := s.cfg.Approvals.List(r.Context(), &hitl.ListParams{WorkflowID: info.WorkflowID, Limit: 500})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ApprovalList{Approvals: list})
}
