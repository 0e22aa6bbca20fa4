package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/durable/store"
)

// Update errors. Match them with errors.Is.
var (
	// ErrUnknownUpdate: the run has no update handler of that name.
	ErrUnknownUpdate = errors.New("durable: unknown update")
	// ErrUpdateRejected: the update's validator refused it; nothing was
	// recorded.
	ErrUpdateRejected = errors.New("durable: update rejected")
)

// SetUpdateHandler lets clients change the workflow with Engine.Update: a
// request that validate (optional, read-only, like a query handler) may
// refuse before anything is recorded, and that fn then handles in a new
// workflow coroutine — it may run activities, sleep, wait — and answers.
// An update is recorded in history once accepted, with its answer once fn
// returns, so a crash never loses or repeats it; a repeated update ID gets
// the first answer. Register handlers before the workflow first blocks.
func SetUpdateHandler[A, R any](ctx Context, name string, fn func(ctx Context, args A) (R, error), validate func(args A) error) {
	rs := stateOf(ctx)
	rs.updates[name] = &updateHandler{
		validate: func(raw []byte) error {
			args, err := decode[A](raw)
			if err != nil {
				return fmt.Errorf("arguments: %w", err)
			}
			if validate == nil {
				return nil
			}
			return validate(args)
		},
		run: func(ctx Context, raw []byte) ([]byte, error) {
			args, err := decode[A](raw)
			if err != nil {
				return nil, fmt.Errorf("arguments: %w", err)
			}
			out, err := fn(ctx, args)
			if err != nil {
				return nil, err
			}
			return rs.e.encode(out)
		},
	}
}

type updateHandler struct {
	validate func(args []byte) error
	run      func(ctx Context, args []byte) ([]byte, error)
}

// UpdateOptions configure Engine.Update.
type UpdateOptions struct {
	// UpdateID deduplicates: an update with the ID of one the run has
	// already accepted is not applied again and returns the first one's
	// answer. Optional; default a random UUID.
	UpdateID string
}

// Update sends an update to the workflow ID's running run and waits for
// its answer. The update is first validated against the run's current
// state; a refusal (ErrUpdateRejected, or ErrUnknownUpdate) writes nothing.
// Once accepted it is durable: if the worker restarts, the update is
// handled when the run resumes, and this call still gets the answer.
func (e *Engine) Update(ctx context.Context, workflowID, name string, args json.RawMessage, opts *UpdateOptions) (json.RawMessage, error) {
	if len(args) > e.limits.MaxPayloadBytes {
		return nil, fmt.Errorf("update %s: %w: %d bytes", name, ErrPayloadTooLarge, len(args))
	}
	if len(args) > 0 && !json.Valid(args) {
		return nil, fmt.Errorf("update %s: %w: arguments are not valid JSON", name, ErrInvalidPayload)
	}
	o := UpdateOptions{}
	if opts != nil {
		o = *opts
	}
	if o.UpdateID == "" {
		o.UpdateID = uuid.NewString()
	}
	r, err := e.store.GetLatestRun(ctx, workflowID)
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", name, e.runErr(err, workflowID))
	}
	// An update the run already answered is answered again.
	if out, done, _, err := e.updateOutcome(ctx, r.RunID, o.UpdateID, 0); done || err != nil {
		return out, err
	}
	if r.Status.Closed() {
		return nil, fmt.Errorf("update %s: %w: %q is %s", name, ErrRunClosed, workflowID, r.Status)
	}
	err = e.withRunState(ctx, r, func(rs *runState) error {
		h := rs.updates[name]
		if h == nil {
			return fmt.Errorf("%w: %q has none", ErrUnknownUpdate, workflowID)
		}
		if err := rs.callValidator(h, args); err != nil {
			return fmt.Errorf("%w: %w", ErrUpdateRejected, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", name, err)
	}
	run, err := e.store.Signal(ctx, store.SignalParams{
		RunID:     r.RunID,
		Item:      store.NewInboxItem{Type: EventUpdateAccepted, Data: mustMarshal(&eventData{Name: name, Input: args, UpdateID: o.UpdateID})},
		RequestID: "update:" + o.UpdateID,
		Now:       e.clock.Now(),
	})
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", name, e.runErr(err, workflowID))
	}
	e.notifyQueue(run.TaskQueue)
	return e.awaitUpdate(ctx, r.RunID, o.UpdateID)
}

// awaitUpdate waits for the answer of an accepted update.
func (e *Engine) awaitUpdate(ctx context.Context, runID, updateID string) (json.RawMessage, error) {
	var after int64
	wait := 5 * time.Millisecond
	for {
		// The run is read before its history, so that a run seen closed
		// has all its events in the history read next.
		r, err := e.store.GetRun(ctx, runID)
		if err != nil {
			return nil, e.runErr(err, runID)
		}
		out, done, last, err := e.updateOutcome(ctx, runID, updateID, after)
		if done || err != nil {
			return out, err
		}
		if r.Status.Closed() {
			return nil, fmt.Errorf("update %s: %w: the run closed before answering", updateID, ErrRunClosed)
		}
		after = last
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, e.cfg.PollInterval)
	}
}

// updateOutcome looks for the answer of an update in the history after
// event ID after; last is the ID of the last event read.
func (e *Engine) updateOutcome(ctx context.Context, runID, updateID string, after int64) (out json.RawMessage, done bool, last int64, err error) {
	events, err := e.store.History(ctx, runID, after)
	if err != nil {
		return nil, false, after, fmt.Errorf("update %s: %w", updateID, e.runErr(err, runID))
	}
	last = after
	for _, ev := range events {
		last = ev.ID
		if ev.Type != EventUpdateCompleted {
			continue
		}
		d, err := unmarshalEvent(ev.Data)
		if err != nil {
			return nil, false, last, err
		}
		if d.UpdateID != updateID {
			continue
		}
		if d.Failure != nil {
			return nil, true, last, fmt.Errorf("update %s: %w", d.Name, d.Failure.toError())
		}
		return d.Result, true, last, nil
	}
	return nil, false, last, nil
}

// callValidator runs a validator with the run read-only.
func (rs *runState) callValidator(h *updateHandler, args []byte) (err error) {
	_, err = rs.callQuery(func(b []byte) ([]byte, error) { return nil, h.validate(b) }, args)
	return err
}

// applyUpdate handles an accepted update: it is validated again against
// the run's state now (a refusal is recorded as its answer) and handled in
// a coroutine of its own, whose answer is recorded as UpdateCompleted.
func (rs *runState) applyUpdate(d *eventData) {
	complete := func(result []byte, err error) {
		rs.mustCommand(EventUpdateCompleted, &eventData{Name: d.Name, UpdateID: d.UpdateID, Result: result, Failure: toFailure(err)})
	}
	h := rs.updates[d.Name]
	rs.d.spawn("update "+d.Name, func() {
		if h == nil {
			complete(nil, fmt.Errorf("%w: %q", ErrUnknownUpdate, d.Name))
			return
		}
		if err := rs.callValidator(h, d.Input); err != nil {
			complete(nil, fmt.Errorf("%w: %w", ErrUpdateRejected, err))
			return
		}
		complete(h.run(rs.ctx, d.Input))
	})
}
