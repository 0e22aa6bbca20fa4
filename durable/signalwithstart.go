package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/keelhq/keel/durable/store"
)

// SignalWithStart sends a signal to the running run of opts.ID, first
// starting it with input if no run of that ID is running. A run it starts
// is created with the signal already in its inbox, in one commit, so its
// first workflow task sees it (even a workflow that closes in that task).
// A run that was running gets the signal as by Signal; if it closes before
// the signal reaches it, a new run is started (as the ID-reuse policy
// allows) with the signal instead. The signal is delivered exactly once,
// to the run returned. opts.ID is required.
func (e *Engine) SignalWithStart(ctx context.Context, workflow string, input json.RawMessage, signal string, payload json.RawMessage, opts *StartOptions) (RunInfo, error) {
	if opts == nil || opts.ID == "" {
		return RunInfo{}, errors.New("durable: SignalWithStart needs StartOptions.ID")
	}
	if err := e.checkSignalPayload(signal, payload); err != nil {
		return RunInfo{}, err
	}
	item := signalItem(signal, payload)
	const tries = 3
	for range tries {
		run, err := e.startWorkflow(ctx, workflow, input, opts, []store.NewInboxItem{item})
		if err != nil {
			return RunInfo{}, err
		}
		if run.Created {
			return run, nil // the signal was written with the run
		}
		err = e.Signal(ctx, run.WorkflowID, signal, payload, &SignalOptions{RunID: run.RunID})
		if errors.Is(err, ErrRunClosed) {
			continue // it closed under us: start the next run
		}
		if err != nil {
			return RunInfo{}, err
		}
		return run, nil
	}
	return RunInfo{}, fmt.Errorf("signal-with-start %s: run %q kept closing before it could be signalled", workflow, opts.ID)
}

// SignalWithStart is the typed form of Engine.SignalWithStart.
func SignalWithStart[In, Out, S any](ctx context.Context, e *Engine, wf *Workflow[In, Out], in In, sig Signal[S], v S, opts *StartOptions) (*Handle[Out], error) {
	input, err := e.encode(in)
	if err != nil {
		return nil, fmt.Errorf("signal-with-start %s: %w", wf.name, err)
	}
	payload, err := e.encode(v)
	if err != nil {
		return nil, fmt.Errorf("signal-with-start %s: %w", sig.name, err)
	}
	run, err := e.SignalWithStart(ctx, wf.name, input, sig.name, payload, opts)
	if err != nil {
		return nil, err
	}
	return &Handle[Out]{e: e, run: run}, nil
}
