package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/keelhq/keel/durable"
)

// terminal reports whether an event closes its run.
func terminal(typ string) bool {
	switch typ {
	case durable.EventWorkflowCompleted, durable.EventWorkflowFailed, durable.EventWorkflowCanceled,
		durable.EventWorkflowTerminated, durable.EventWorkflowContinuedAsNew:
		return true
	}
	return false
}

// eventTypes lists the engine's event types, for the run page's script.
var eventTypes = []string{
	durable.EventWorkflowStarted, durable.EventActivityCompleted, durable.EventActivityFailed, durable.EventTimerFired,
	durable.EventSignalReceived, durable.EventCancelRequested, durable.EventWorkflowTimedOut,
	durable.EventChildWorkflowStartFailed, durable.EventChildWorkflowCompleted, durable.EventChildWorkflowFailed,
	durable.EventExternalRequestDone, durable.EventExternalRequestFailed, durable.EventUpdateAccepted,
	durable.EventActivityScheduled, durable.EventActivityCancelRequested, durable.EventTimerStarted,
	durable.EventTimerCanceled, durable.EventMarkerRecorded, durable.EventWorkflowCompleted, durable.EventWorkflowFailed,
	durable.EventWorkflowCanceled, durable.EventWorkflowContinuedAsNew, durable.EventChildWorkflowInitiated,
	durable.EventExternalSignalInitiated, durable.EventExternalCancelInitiated, durable.EventUpdateCompleted,
	durable.EventWorkflowTerminated,
}

// streamEvents serves a run's history as server-sent events: the events
// recorded so far, then each new one as it is appended, until the run
// closes. Each SSE event has the history event's ID (so a client that
// reconnects with Last-Event-ID resumes after it), its type as the event
// name, and the history event as JSON data. An idle stream gets a comment
// line every Config.HeartbeatInterval. When the run has closed the stream
// sends an "end" event with the run and ends.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) {
	var after int64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			s.problem(w, r, fieldProblem(CodeInvalidField, "Last-Event-ID", "must be an event ID"))
			return
		}
		after = n
	}
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
		after = max(after, n)
	}
	info, ok := s.runOr404(w, r)
	if !ok {
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	_ = rc.Flush()

	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()
	ctx := r.Context()
	log := s.log.With("run_id", info.WorkflowID, "request_id", RequestID(ctx))
	log.DebugContext(ctx, "event stream opened", "after", after)

	st := s.engine.Store()
	poll := time.NewTicker(s.cfg.EventPollInterval)
	defer poll.Stop()
	lastWrite := time.Now()
	lastDescribe := time.Now()
	closed := info.Status.Closed()
	for {
		evs, err := st.History(ctx, info.RunID, after)
		if err != nil {
			if ctx.Err() == nil {
				log.ErrorContext(ctx, "event stream: read history", "err", err)
				fmt.Fprintf(w, "event: error\ndata: %s\n\n", mustJSON(map[string]string{"code": CodeInternal, "request_id": RequestID(ctx)}))
				_ = rc.Flush()
			}
			return
		}
		for _, ev := range evs {
			data := mustJSON(durable.HistoryEvent{ID: ev.ID, Type: ev.Type, Time: ev.Time, Data: ev.Data})
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, data); err != nil {
				return
			}
			after = ev.ID
			if terminal(ev.Type) {
				closed = true
			}
		}
		if len(evs) > 0 {
			lastWrite = time.Now()
			if err := rc.Flush(); err != nil {
				return
			}
		}
		// A closing event is written in the same transaction that closes
		// the run; a run found closed by Describe needs one more read of
		// the history to be sure every event was sent.
		if closed && len(evs) == 0 {
			if fresh, err := s.engine.DescribeRun(ctx, info.RunID); err == nil {
				info = fresh
			}
			fmt.Fprintf(w, "event: end\ndata: %s\n\n", mustJSON(s.toRun(info)))
			_ = rc.Flush()
			return
		}
		if !closed && time.Since(lastDescribe) > 5*time.Second {
			// A run closed without a closing event in history (deleted by
			// retention, say) must still end the stream.
			lastDescribe = time.Now()
			fresh, err := s.engine.DescribeRun(ctx, info.RunID)
			if err != nil || fresh.Status.Closed() {
				closed = true
				continue
			}
		}
		if time.Since(lastWrite) >= s.cfg.HeartbeatInterval {
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			lastWrite = time.Now()
		}
		if closed {
			continue // one more read to drain
		}
		select {
		case <-ctx.Done():
			return
		case <-s.stopping:
			return
		case <-poll.C:
		}
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`null`)
	}
	return b
}
