package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/keelhq/keel/durable/store"
)

// ErrUnknownQuery: the run has no query handler of that name.
var ErrUnknownQuery = errors.New("durable: unknown query")

// SetQueryHandler lets clients read the workflow's live state with
// Engine.Query. fn runs outside the workflow's coroutines and must only read
// workflow state: it cannot call activities, timers or any other blocking
// workflow function, and what it returns is never recorded. Register
// handlers before the workflow first blocks, so that every replay has them.
func SetQueryHandler[A, R any](ctx Context, name string, fn func(args A) (R, error)) {
	rs := stateOf(ctx)
	rs.queries[name] = func(raw []byte) ([]byte, error) {
		args, err := decode[A](raw)
		if err != nil {
			return nil, fmt.Errorf("query %s: arguments: %w", name, err)
		}
		out, err := fn(args)
		if err != nil {
			return nil, err
		}
		return rs.e.encode(out)
	}
}

// Query runs a query handler of the workflow ID's latest run and returns its
// JSON answer. It reads the run's state as of its last committed workflow
// task: from this process's cache, or else by replaying the history, and it
// writes nothing. It fails with ErrUnknownQuery for a name the run has no
// handler for.
func (e *Engine) Query(ctx context.Context, workflowID, name string, args json.RawMessage) (json.RawMessage, error) {
	if len(args) > 0 && !json.Valid(args) {
		return nil, fmt.Errorf("query %s: %w: arguments are not valid JSON", name, ErrInvalidPayload)
	}
	r, err := e.store.GetLatestRun(ctx, workflowID)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", name, e.runErr(err, workflowID))
	}
	var out []byte
	err = e.withRunState(ctx, r, func(rs *runState) error {
		handler := rs.queries[name]
		if handler == nil {
			return fmt.Errorf("%w: %q has none", ErrUnknownQuery, workflowID)
		}
		var err error
		out, err = rs.callQuery(handler, args)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", name, err)
	}
	return out, nil
}

// withRunState runs fn, which must only read, on the run's state as of its
// last committed workflow task: from this process's cache, or else
// replayed from the history.
func (e *Engine) withRunState(ctx context.Context, r store.Run, fn func(rs *runState) error) error {
	def := e.workflowDef(r.WorkflowType)
	if def == nil {
		return fmt.Errorf("%w: %q", ErrUnknownWorkflow, r.WorkflowType)
	}
	rs := e.cache.take(r.RunID)
	if rs != nil && rs.historyLen != r.HistoryLen {
		rs.close()
		rs = nil
	}
	if rs == nil {
		events, err := e.store.History(ctx, r.RunID, 0)
		if err != nil {
			return fmt.Errorf("load history: %w", err)
		}
		rs = newRunState(e, def, r)
		if err := rs.replay(events); err != nil {
			rs.close()
			return fmt.Errorf("replay: %w", err)
		}
		rs.resetOutput() // a run whose first task never committed issued commands here; they are dropped
		defer rs.close()
	} else {
		cached := rs
		defer func() {
			// A handler that tried to change the run may have left it
			// half-changed: evict it, and the next task replays.
			if cached.readOnlyViolated || r.Status.Closed() {
				cached.close()
			} else {
				e.cache.put(cached)
			}
		}()
	}
	return fn(rs)
}

// callQuery runs a handler with the run read-only.
func (rs *runState) callQuery(h func([]byte) ([]byte, error), args []byte) (out []byte, err error) {
	rs.readOnly = true
	defer func() {
		rs.readOnly = false
		if r := recover(); r != nil {
			rs.readOnlyViolated = true
			err = fmt.Errorf("durable: query handler failed (a query must not block or call workflow functions): %v", r)
		}
	}()
	return h(args)
}
