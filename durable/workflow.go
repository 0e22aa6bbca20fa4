package durable

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/keelhq/keel/durable/store"
)

// Workflow is a registered workflow: a deterministic function whose every
// step is recorded, so that a run survives the crash of any worker.
type Workflow[In, Out any] struct {
	name string
	fn   func(Context, In) (Out, error)
}

// NewWorkflow defines a workflow.
func NewWorkflow[In, Out any](name string, fn func(ctx Context, in In) (Out, error)) *Workflow[In, Out] {
	return &Workflow[In, Out]{name: name, fn: fn}
}

// Name returns the workflow's registered name.
func (w *Workflow[In, Out]) Name() string { return w.name }

// Start starts a run (or, when opts.ID names a running run, returns that
// run) and returns a handle to it. opts may be nil.
func (w *Workflow[In, Out]) Start(ctx context.Context, e *Engine, in In, opts *StartOptions) (*Handle[Out], error) {
	input, err := e.encode(in)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", w.name, err)
	}
	run, err := e.StartWorkflow(ctx, w.name, input, opts)
	if err != nil {
		return nil, err
	}
	return &Handle[Out]{e: e, run: run}, nil
}

// Run starts the workflow and waits for its result.
func (w *Workflow[In, Out]) Run(ctx context.Context, e *Engine, in In, opts *StartOptions) (Out, error) {
	h, err := w.Start(ctx, e, in, opts)
	if err != nil {
		var zero Out
		return zero, err
	}
	return h.Result(ctx)
}

// Handle returns a handle to an existing run by workflow ID (its latest run).
func (w *Workflow[In, Out]) Handle(ctx context.Context, e *Engine, workflowID string) (*Handle[Out], error) {
	run, err := e.Describe(ctx, workflowID)
	if err != nil {
		return nil, err
	}
	return &Handle[Out]{e: e, run: run}, nil
}

func (w *Workflow[In, Out]) registration() registration {
	return registration{workflow: &workflowDef{
		name: w.name,
		run: func(ctx Context, input []byte) ([]byte, error) {
			in, err := decode[In](input)
			if err != nil {
				return nil, fmt.Errorf("workflow %s: %w", w.name, err)
			}
			out, err := w.fn(ctx, in)
			if err != nil {
				return nil, err
			}
			b, err := json.Marshal(out)
			if err != nil {
				return nil, fmt.Errorf("workflow %s: encode result: %w", w.name, err)
			}
			if len(b) > stateOf(ctx).e.limits.MaxPayloadBytes {
				return nil, fmt.Errorf("workflow %s: result: %w: %d bytes", w.name, ErrPayloadTooLarge, len(b))
			}
			return b, nil
		},
	}}
}

type workflowDef struct {
	name string
	run  func(ctx Context, input []byte) ([]byte, error)
}

// Definition is a workflow or activity to register with an Engine.
type Definition interface {
	registration() registration
}

type registration struct {
	workflow *workflowDef
	activity *activityDef
}

// IDReusePolicy decides whether a workflow ID whose previous run closed may
// start a new run. A running workflow ID never gets a second run.
type IDReusePolicy = store.IDReusePolicy

// ID-reuse policies.
const (
	AllowDuplicate           = store.AllowDuplicate
	AllowDuplicateFailedOnly = store.AllowDuplicateFailedOnly
	RejectDuplicate          = store.RejectDuplicate
)

// StartOptions configure a new run.
type StartOptions struct {
	// ID is the workflow ID, unique among running runs. Starting an ID that
	// is running returns that run. Optional; default a new UUID
	// (version 7, time-ordered, like run IDs).
	ID string
	// TaskQueue is where the workflow's tasks run. Optional; default
	// "default".
	TaskQueue string
	// IDReusePolicy applies when the ID's previous run is closed. Optional;
	// default AllowDuplicate.
	IDReusePolicy IDReusePolicy
	// SearchAttributes are the run's initial search attributes, by which
	// ListRuns filters (see MaxSearchAttributes for the value types; nil
	// values are left out). Workflow code changes them with
	// UpsertSearchAttributes. Optional.
	SearchAttributes map[string]any
	// Memo is JSON kept with the run and shown in RunInfo.Memo, not
	// indexed. Optional.
	Memo map[string]any
}

// Handle refers to a run and reads its typed result.
type Handle[Out any] struct {
	e   *Engine
	run RunInfo
}

// WorkflowID returns the run's workflow ID.
func (h *Handle[Out]) WorkflowID() string { return h.run.WorkflowID }

// RunID returns the run's ID.
func (h *Handle[Out]) RunID() string { return h.run.RunID }

// Created is false when Start found the workflow ID already running and
// returned that run.
func (h *Handle[Out]) Created() bool { return h.run.Created }

// Result waits for the run to close and returns its result; for a failed run
// the error, which is ErrCanceled or ErrTerminated for those outcomes.
func (h *Handle[Out]) Result(ctx context.Context) (Out, error) {
	var zero Out
	raw, err := h.e.Result(ctx, h.run.RunID)
	if err != nil {
		return zero, err
	}
	return decode[Out](raw)
}
