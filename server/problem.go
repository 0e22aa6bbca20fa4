package server

import (
	"encoding/json"
	"net/http"
)

// Problem is an error response: a problem details object (RFC 9457),
// served as application/problem+json. Code is stable and meant for
// programs; Title and Detail are for people.
type Problem struct {
	// Type is a URI naming the kind of problem: "urn:keel:problem:" + Code.
	Type string `json:"type"`
	// Title is a short summary of the kind of problem.
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail explains this occurrence.
	Detail string `json:"detail,omitempty"`
	// Instance is the request's path.
	Instance string `json:"instance,omitempty"`
	// Code is the stable machine-readable code, such as "run_not_found".
	Code string `json:"code"`
	// Errors lists the fields of the request that are wrong.
	Errors []FieldError `json:"errors,omitempty"`
	// Offset is the byte offset in the request body of malformed JSON.
	Offset *int64 `json:"offset,omitempty"`
	// RequestID identifies the request in the server's logs.
	RequestID string `json:"request_id,omitempty"`
}

// FieldError names a field of a request (a JSON body field, a path or a
// query parameter) and what is wrong with it.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// Error implements error.
func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Code + ": " + p.Detail
	}
	return p.Code
}

// Problem codes. They are part of the API: clients may match on them.
const (
	CodeInvalidJSON          = "invalid_json"
	CodeUnknownField         = "unknown_field"
	CodeInvalidField         = "invalid_field"
	CodeBodyTooLarge         = "body_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeUnauthorized         = "unauthorized"
	CodeForbidden            = "forbidden"
	CodeCrossOrigin          = "cross_origin_request"
	CodeCSRF                 = "csrf_token_invalid"
	CodeAgentNotFound        = "agent_not_found"
	CodeRunNotFound          = "run_not_found"
	CodeRunClosed            = "run_closed"
	CodeRunIDConflict        = "run_id_conflict"
	CodePayloadTooLarge      = "payload_too_large"
	CodeApprovalsDisabled    = "approvals_disabled"
	CodeApprovalNotFound     = "approval_not_found"
	CodeApprovalClosed       = "approval_closed"
	CodeApprovalExpired      = "approval_expired"
	CodeNotInGroup           = "not_in_group"
	CodeSelfApproval         = "self_approval"
	CodeArgsMismatch         = "args_mismatch"
	CodeAlreadyVoted         = "already_voted"
	CodeEditNotAllowed       = "edit_not_allowed"
	CodeLinkUsed             = "link_used"
	CodeLinkInvalid          = "link_invalid"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeUnavailable          = "unavailable"
	CodeInternal             = "internal"
)

// problem writes p as application/problem+json.
func (s *Server) problem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Type == "" {
		p.Type = "urn:keel:problem:" + p.Code
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	if p.Instance == "" {
		p.Instance = r.URL.Path
	}
	p.RequestID = RequestID(r.Context())
	if p.Status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "code", p.Code, "detail", p.Detail, "request_id", p.RequestID, "path", r.URL.Path)
		if p.Code == CodeInternal {
			p.Detail = "internal error; see the server log for request " + p.RequestID
		}
	}
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="keel"`)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// internal writes a 500 for err, logging it.
func (s *Server) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.log.ErrorContext(r.Context(), "internal error", "err", err, "request_id", RequestID(r.Context()), "path", r.URL.Path)
	s.problem(w, r, &Problem{Status: http.StatusInternalServerError, Code: CodeInternal})
}

func fieldProblem(code, field, detail string) *Problem {
	return &Problem{
		Status: http.StatusBadRequest,
		Code:   code,
		Detail: field + ": " + detail,
		Errors: []FieldError{{Field: field, Detail: detail}},
	}
}

// writeJSON writes v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
