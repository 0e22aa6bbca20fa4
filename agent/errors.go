package agent

import (
	"errors"
	"fmt"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrInvalidAgent: an Agent's definition is incomplete or
	// inconsistent (no name, no model, two tools of one name…).
	ErrInvalidAgent = errors.New("agent: invalid agent")
	// ErrUnknownModel: an Agent names a model not registered on the
	// Runtime.
	ErrUnknownModel = errors.New("agent: unknown model")
	// ErrUnknownAgent: no agent of that name is registered on the Runtime.
	ErrUnknownAgent = errors.New("agent: unknown agent")
	// ErrConversation: a run's conversation could not be rebuilt from its
	// history.
	ErrConversation = errors.New("agent: cannot rebuild conversation")
	// ErrInvalidOutput is matched by every *OutputError.
	ErrInvalidOutput = errors.New("agent: invalid structured output")
)

// OutputError reports a structured answer that is not JSON or does not
// follow the output schema.
type OutputError struct {
	Err error
}

func (e *OutputError) Error() string {
	return fmt.Sprintf("agent: invalid structured output: %v", e.Err)
}

// Unwrap returns the cause.
func (e *OutputError) Unwrap() error { return e.Err }

// Is matches ErrInvalidOutput.
func (e *OutputError) Is(target error) bool { return target == ErrInvalidOutput }
