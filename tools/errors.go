package tools

import (
	"errors"
	"fmt"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrInvalidTool: New was given a bad name, a nil handler or an input
	// type that is not a JSON object.
	ErrInvalidTool = errors.New("tools: invalid tool definition")
	// ErrInvalidArguments is matched by every *ArgumentError.
	ErrInvalidArguments = errors.New("tools: invalid arguments")
	// ErrDuplicateTool: a Set was given two tools of the same name.
	ErrDuplicateTool = errors.New("tools: duplicate tool name")
	// ErrUnknownTool: no tool of that name is in the Set.
	ErrUnknownTool = errors.New("tools: unknown tool")
)

// ArgumentError reports arguments that do not fit a tool's input: not JSON,
// a schema violation or an unknown field.
type ArgumentError struct {
	Tool string
	Err  error
}

func (e *ArgumentError) Error() string {
	return fmt.Sprintf("invalid arguments for tool %s: %v", e.Tool, e.Err)
}

// Unwrap returns the cause.
func (e *ArgumentError) Unwrap() error { return e.Err }

// Is matches ErrInvalidArguments.
func (e *ArgumentError) Is(target error) bool { return target == ErrInvalidArguments }

// ErrorKind classifies an error Result.
type ErrorKind string

// Kinds of error Results.
const (
	// ErrorInvalidArguments: the arguments were not JSON or did not fit the
	// schema; the handler did not run.
	ErrorInvalidArguments ErrorKind = "invalid_arguments"
	// ErrorUnknownTool: the model called a tool that does not exist.
	ErrorUnknownTool ErrorKind = "unknown_tool"
	// ErrorFailed: the handler failed on every attempt its retry policy
	// allowed, or timed out.
	ErrorFailed ErrorKind = "failed"
	// ErrorRejected: a reviewer refused the call; the handler did not run.
	ErrorRejected ErrorKind = "rejected"
	// ErrorApproval: asking for approval failed (for example it timed out
	// without a decision); the handler did not run.
	ErrorApproval ErrorKind = "approval_failed"
)
