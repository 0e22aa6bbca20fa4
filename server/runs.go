package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/keelhq/keel/durable"
)

// Run is a run as the API shows it. RunID is the engine's workflow ID: the
// run_id a client chose when it triggered the run, or a generated UUID.
type Run struct {
	RunID        string `json:"run_id"`
	Agent        string `json:"agent,omitempty"`
	WorkflowType string `json:"workflow_type"`
	// ExecutionID is the engine's ID of this execution of the run.
	ExecutionID     string          `json:"execution_id"`
	Status          string          `json:"status"`
	TaskQueue       string          `json:"task_queue"`
	CreatedAt       time.Time       `json:"created_at"`
	ClosedAt        time.Time       `json:"closed_at,omitzero"`
	HistoryLength   int64           `json:"history_length"`
	CancelRequested bool            `json:"cancel_requested,omitempty"`
	LastTaskFailure string          `json:"last_task_failure,omitempty"`
	Result          json.RawMessage `json:"result,omitempty"`
	Error           *RunError       `json:"error,omitempty"`
}

// RunError is why a run did not complete.
type RunError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

func (s *Server) toRun(info durable.RunInfo) Run {
	return Run{
		RunID:           info.WorkflowID,
		Agent:           s.agentOf(info),
		WorkflowType:    info.WorkflowType,
		ExecutionID:     info.RunID,
		Status:          string(info.Status),
		TaskQueue:       info.TaskQueue,
		CreatedAt:       info.CreatedAt,
		ClosedAt:        info.ClosedAt,
		HistoryLength:   info.HistoryLength,
		CancelRequested: info.CancelRequested,
		LastTaskFailure: info.LastTaskFailure,
	}
}

// agentOf names the agent a run belongs to, if any.
func (s *Server) agentOf(info durable.RunInfo) string {
	if name, ok := s.byWF[info.WorkflowType+"\x00"+info.TaskQueue]; ok {
		return name
	}
	return s.byWF[info.WorkflowType]
}

// withOutcome adds a closed run's result or error.
func (s *Server) withOutcome(ctx context.Context, run *Run) error {
	if !durable.Status(run.Status).Closed() {
		return nil
	}
	res, err := s.engine.Result(ctx, run.ExecutionID)
	if err == nil {
		run.Result = res
		return nil
	}
	var app *durable.ApplicationError
	switch {
	case errors.As(err, &app):
		run.Error = &RunError{Type: app.Type, Message: app.Message}
	case errors.Is(err, durable.ErrTerminated):
		run.Error = &RunError{Type: "terminated", Message: err.Error()}
	case errors.Is(err, durable.ErrCanceled):
		run.Error = &RunError{Type: "canceled", Message: err.Error()}
	case errors.Is(err, durable.ErrRunNotFound), errors.Is(err, context.Canceled):
		return err
	default:
		run.Error = &RunError{Type: "error", Message: err.Error()}
	}
	return nil
}

var (
	runIDRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$`)
	signalRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$`)
	requestIDRE2 = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$`)
)

const runIDRule = "1 to 200 characters from [A-Za-z0-9._:@-], starting with a letter or digit"

// TriggerParams is the body of POST /v1/agents/{agent}/runs.
type TriggerParams struct {
	// Input is the agent's input. Optional.
	Input json.RawMessage `json:"input,omitempty"`
	// RunID makes the trigger idempotent: a second trigger with the same
	// run_id returns the first run and starts nothing. Optional; default a
	// new UUID.
	RunID string `json:"run_id,omitempty"`
}

func (s *Server) triggerRun(w http.ResponseWriter, r *http.Request) {
	agent := chi.URLParam(r, "agent")
	ag, ok := s.agents[agent]
	if !ok {
		s.problem(w, r, &Problem{Status: http.StatusNotFound, Code: CodeAgentNotFound, Detail: "no agent named " + strconv.Quote(agent),
			Errors: []FieldError{{Field: "agent", Detail: "unknown agent"}}})
		return
	}
	var p TriggerParams
	if prob := s.decodeJSON(w, r, &p, true); prob != nil {
		s.problem(w, r, prob)
		return
	}
	if p.RunID == "" {
		p.RunID = uuid.NewString()
	} else if !runIDRE.MatchString(p.RunID) {
		s.problem(w, r, fieldProblem(CodeInvalidField, "run_id", "must be "+runIDRule))
		return
	}
	input := p.Input
	if string(input) == "null" {
		input = nil
	}
	ctx := r.Context()
	wf := ag.Workflow
	info, err := s.engine.StartWorkflow(ctx, wf, input, &durable.StartOptions{
		ID: p.RunID, TaskQueue: ag.TaskQueue, IDReusePolicy: durable.RejectDuplicate})
	if errors.Is(err, durable.ErrWorkflowIDInUse) {
		// The run_id was used by a run that has closed: return that run.
		info, err = s.engine.Describe(ctx, p.RunID)
	}
	switch {
	case errors.Is(err, durable.ErrPayloadTooLarge):
		prob := fieldProblem(CodePayloadTooLarge, "input", err.Error())
		prob.Status = http.StatusRequestEntityTooLarge
		s.problem(w, r, prob)
		return
	case err != nil:
		s.internal(w, r, err)
		return
	}
	if info.WorkflowType != wf || info.TaskQueue != ag.TaskQueue {
		s.problem(w, r, &Problem{Status: http.StatusConflict, Code: CodeRunIDConflict,
			Detail: "run_id " + strconv.Quote(p.RunID) + " belongs to a run of another agent",
			Errors: []FieldError{{Field: "run_id", Detail: "used by another agent's run"}}})
		return
	}
	s.metrics.triggered.WithLabelValues(agent, strconv.FormatBool(info.Created)).Inc()
	run := s.toRun(info)
	w.Header().Set("Location", "/v1/runs/"+url.PathEscape(run.RunID))
	status := http.StatusOK
	if info.Created {
		status = http.StatusCreated
		s.log.InfoContext(ctx, "run triggered", "agent", agent, "run_id", run.RunID, "execution_id", run.ExecutionID, "request_id", RequestID(ctx))
	} else if err := s.withOutcome(ctx, &run); err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, status, run)
}

// findRun resolves a run by its run_id (workflow ID) or execution ID.
func (s *Server) findRun(ctx context.Context, id string) (durable.RunInfo, error) {
	if id == "" || len(id) > 200 {
		return durable.RunInfo{}, durable.ErrRunNotFound
	}
	info, err := s.engine.Describe(ctx, id)
	if errors.Is(err, durable.ErrRunNotFound) {
		info, err = s.engine.DescribeRun(ctx, id)
	}
	return info, err
}

// runOr404 resolves the {id} of the route, writing the error response
// when it fails.
func (s *Server) runOr404(w http.ResponseWriter, r *http.Request) (durable.RunInfo, bool) {
	id := chi.URLParam(r, "id")
	info, err := s.findRun(r.Context(), id)
	if errors.Is(err, durable.ErrRunNotFound) {
		s.problem(w, r, &Problem{Status: http.StatusNotFound, Code: CodeRunNotFound, Detail: "no run " + strconv.Quote(id)})
		return info, false
	}
	if err != nil {
		s.internal(w, r, err)
		return info, false
	}
	return info, true
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	info, ok := s.runOr404(w, r)
	if !ok {
		return
	}
	run := s.toRun(info)
	if err := s.withOutcome(r.Context(), &run); err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, run)
}

// RunList is one page of runs, newest first.
type RunList struct {
	Runs []Run `json:"runs"`
	// NextCursor continues the listing; empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

var statuses = []durable.Status{durable.StatusRunning, durable.StatusCompleted, durable.StatusFailed,
	durable.StatusCanceled, durable.StatusTerminated, "continued_as_new"}

// listParams parses the filters of GET /v1/runs and /ui/runs.
func (s *Server) listParams(q url.Values, strict bool) (durable.ListOptions, *Problem) {
	var o durable.ListOptions
	if strict {
		for k := range q {
			switch k {
			case "status", "agent", "workflow_type", "cursor", "limit":
			default:
				return o, fieldProblem(CodeInvalidField, k, "unknown query parameter")
			}
		}
	}
	if v := q.Get("status"); v != "" {
		ok := false
		for _, st := range statuses {
			if string(st) == v {
				ok = true
			}
		}
		if !ok {
			return o, fieldProblem(CodeInvalidField, "status", "must be one of running, completed, failed, canceled, terminated, continued_as_new")
		}
		o.Status = durable.Status(v)
	}
	if v := q.Get("agent"); v != "" {
		ag, ok := s.agents[v]
		if !ok {
			return o, fieldProblem(CodeInvalidField, "agent", "no agent named "+strconv.Quote(v))
		}
		o.WorkflowType = ag.Workflow
	}
	if v := q.Get("workflow_type"); v != "" {
		if o.WorkflowType != "" && o.WorkflowType != v {
			return o, fieldProblem(CodeInvalidField, "workflow_type", "contradicts agent")
		}
		o.WorkflowType = v
	}
	if v := q.Get("cursor"); v != "" {
		// Both stores page by a positive sequence number.
		if n, err := strconv.ParseInt(v, 10, 64); err != nil || n <= 0 {
			return o, fieldProblem(CodeInvalidField, "cursor", "not a cursor from a previous page's next_cursor")
		}
		o.Cursor = v
	}
	o.Limit = 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return o, fieldProblem(CodeInvalidField, "limit", "must be an integer from 1 to 500")
		}
		o.Limit = n
	}
	return o, nil
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	o, prob := s.listParams(r.URL.Query(), true)
	if prob != nil {
		s.problem(w, r, prob)
		return
	}
	infos, next, err := s.engine.ListRuns(r.Context(), &o)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	out := RunList{Runs: make([]Run, len(infos)), NextCursor: next}
	for i, info := range infos {
		out.Runs[i] = s.toRun(info)
	}
	writeJSON(w, http.StatusOK, out)
}

// RunHistory is a run's event history.
type RunHistory struct {
	Run    Run                    `json:"run"`
	Events []durable.HistoryEvent `json:"events"`
}

func (s *Server) getHistory(w http.ResponseWriter, r *http.Request) {
	var after int64
	for k, v := range r.URL.Query() {
		if k != "after" {
			s.problem(w, r, fieldProblem(CodeInvalidField, k, "unknown query parameter"))
			return
		}
		n, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil || n < 0 {
			s.problem(w, r, fieldProblem(CodeInvalidField, "after", "must be an event ID (a non-negative integer)"))
			return
		}
		after = n
	}
	info, ok := s.runOr404(w, r)
	if !ok {
		return
	}
	evs, err := s.engine.Store().History(r.Context(), info.RunID, after)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	out := RunHistory{Run: s.toRun(info), Events: make([]durable.HistoryEvent, len(evs))}
	for i, ev := range evs {
		out.Events[i] = durable.HistoryEvent{ID: ev.ID, Type: ev.Type, Time: ev.Time, Data: ev.Data}
	}
	writeJSON(w, http.StatusOK, out)
}

// Attempt is one activity attempt, kept for the audit trail.
type Attempt struct {
	Seq          int64     `json:"seq"`
	Attempt      int       `json:"attempt"`
	ActivityType string    `json:"activity_type"`
	Owner        string    `json:"owner"`
	StartedAt    time.Time `json:"started_at"`
	EndedAt      time.Time `json:"ended_at,omitzero"`
	Outcome      string    `json:"outcome"`
	Error        string    `json:"error,omitempty"`
}

func toAttempts(as []durable.Attempt) []Attempt {
	out := make([]Attempt, len(as))
	for i, a := range as {
		out[i] = Attempt{Seq: a.Seq, Attempt: a.Attempt, ActivityType: a.ActivityType, Owner: a.Owner,
			StartedAt: a.StartedAt, EndedAt: a.EndedAt, Outcome: a.Outcome, Error: a.Error}
	}
	return out
}

func (s *Server) getAttempts(w http.ResponseWriter, r *http.Request) {
	info, ok := s.runOr404(w, r)
	if !ok {
		return
	}
	as, err := s.engine.ActivityAttempts(r.Context(), info.RunID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"run_id": info.WorkflowID, "attempts": toAttempts(as)})
}

// SignalParams is the body of POST /v1/runs/{id}/signals/{name}.
type SignalParams struct {
	// Payload is the signal's JSON value. Optional.
	Payload json.RawMessage `json:"payload,omitempty"`
	// RequestID makes the signal idempotent: a repeated request_id is
	// accepted and applied once. Optional.
	RequestID string `json:"request_id,omitempty"`
}

func (s *Server) signalRun(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	if !signalRE.MatchString(name) {
		s.problem(w, r, fieldProblem(CodeInvalidField, "name", "a signal name is 1 to 100 characters from [A-Za-z0-9._:-]"))
		return
	}
	var p SignalParams
	if prob := s.decodeJSON(w, r, &p, true); prob != nil {
		s.problem(w, r, prob)
		return
	}
	if p.RequestID != "" && !requestIDRE2.MatchString(p.RequestID) {
		s.problem(w, r, fieldProblem(CodeInvalidField, "request_id", "must be 1 to 200 characters from [A-Za-z0-9._:-]"))
		return
	}
	info, ok := s.runOr404(w, r)
	if !ok {
		return
	}
	payload := p.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	err := s.engine.Signal(r.Context(), info.WorkflowID, name, payload, &durable.SignalOptions{RunID: info.RunID, RequestID: p.RequestID})
	if s.runActionError(w, r, info, err) {
		return
	}
	s.metrics.signals.Inc()
	s.log.InfoContext(r.Context(), "run signalled", "run_id", info.WorkflowID, "signal", name, "request_id", RequestID(r.Context()))
	writeJSON(w, http.StatusAccepted, map[string]any{"run_id": info.WorkflowID, "signal": name, "request_id": p.RequestID})
}

// runActionError writes the response for a failed signal or cancel and
// reports whether err was one.
func (s *Server) runActionError(w http.ResponseWriter, r *http.Request, info durable.RunInfo, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, durable.ErrRunClosed):
		s.problem(w, r, &Problem{Status: http.StatusConflict, Code: CodeRunClosed, Detail: "run " + strconv.Quote(info.WorkflowID) + " has closed"})
	case errors.Is(err, durable.ErrRunNotFound):
		s.problem(w, r, &Problem{Status: http.StatusNotFound, Code: CodeRunNotFound, Detail: "no run " + strconv.Quote(info.WorkflowID)})
	case errors.Is(err, durable.ErrPayloadTooLarge):
		prob := fieldProblem(CodePayloadTooLarge, "payload", err.Error())
		prob.Status = http.StatusRequestEntityTooLarge
		s.problem(w, r, prob)
	default:
		s.internal(w, r, err)
	}
	return true
}

// CancelParams is the body of POST /v1/runs/{id}/cancel.
type CancelParams struct {
	// Reason is recorded with the cancel request. Optional.
	Reason string `json:"reason,omitempty"`
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) {
	var p CancelParams
	if prob := s.decodeJSON(w, r, &p, true); prob != nil {
		s.problem(w, r, prob)
		return
	}
	if len(p.Reason) > 1000 {
		s.problem(w, r, fieldProblem(CodeInvalidField, "reason", "at most 1000 bytes"))
		return
	}
	info, ok := s.runOr404(w, r)
	if !ok {
		return
	}
	run, err := s.cancel(r.Context(), info, p.Reason)
	if s.runActionError(w, r, info, err) {
		return
	}
	writeJSON(w, http.StatusAccepted, run)
}

func (s *Server) cancel(ctx context.Context, info durable.RunInfo, reason string) (Run, error) {
	if info.Status.Closed() {
		return Run{}, durable.ErrRunClosed
	}
	if reason == "" {
		reason = "canceled over HTTP"
	}
	if p := PrincipalFrom(ctx); p != nil {
		reason += " (by " + p.Subject + ")"
	}
	if err := s.engine.Cancel(ctx, info.WorkflowID, reason); err != nil {
		return Run{}, err
	}
	s.metrics.cancels.Inc()
	s.log.InfoContext(ctx, "run cancel requested", "run_id", info.WorkflowID, "request_id", RequestID(ctx))
	info, err := s.engine.DescribeRun(ctx, info.RunID)
	if err != nil {
		return Run{}, err
	}
	return s.toRun(info), nil
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) {
	out := make([]Agent, len(s.names))
	for i, name := range s.names {
		out[i] = s.agents[name]
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": out})
}
