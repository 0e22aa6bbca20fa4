package hitl

import (
	"context"
	"encoding/json"

	"github.com/keelhq/keel/durable"
)

// SetSignal replaces how s signals decisions to workflows. Call it before
// the engine starts.
func SetSignal(s *Service, f func(ctx context.Context, workflowID, name string, payload json.RawMessage, opts *durable.SignalOptions) error) {
	s.signal = f
}

// SetAfterInsert makes the record activity call f after its insert. Call
// it before the engine starts.
func SetAfterInsert(s *Service, f func(attempt int) error) { s.afterInsert = f }

// DecodeArgs is how Match reads JSON arguments for CEL.
var DecodeArgs = decodeArgs
