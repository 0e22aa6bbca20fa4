package tools

import "context"

// Info describes the tool call a handler is running.
type Info struct {
	// Tool is the tool's name.
	Tool string
	// CallID is the model's ID for the call, when the caller gave one.
	CallID     string
	WorkflowID string
	RunID      string
	// Attempt is 1 on the first attempt, 2 on the first retry, and so on.
	Attempt int
	// IdempotencyKey is the same on every attempt of this call in this run
	// (it is derived from the run and the step), and differs between
	// calls: pass it to external APIs that accept one so that a retried
	// attempt does not act twice.
	IdempotencyKey string
}

type contextKey struct{ name string }

var callInfoKey = &contextKey{"tool-call"} //nolint:gochecknoglobals // context key

// CallInfo returns the Info of the tool call running with ctx; ok is false
// outside a call run by the engine (for example under Tool.Invoke).
func CallInfo(ctx context.Context) (info Info, ok bool) {
	info, ok = ctx.Value(callInfoKey).(Info)
	return info, ok
}

// IdempotencyKey returns the idempotency key of the tool call running with
// ctx, or "" outside a call run by the engine. See Info.IdempotencyKey.
func IdempotencyKey(ctx context.Context) string {
	info, _ := CallInfo(ctx)
	return info.IdempotencyKey
}
