package hitl

import (
	"errors"
	"fmt"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrNotFound: no approval has that ID.
	ErrNotFound = errors.New("hitl: approval not found")
	// ErrClosed: the approval was already approved, rejected or canceled;
	// no further decision is accepted.
	ErrClosed = errors.New("hitl: approval closed")
	// ErrExpired: the approval's deadline has passed (it times out, or has
	// timed out, without the decision).
	ErrExpired = errors.New("hitl: approval expired")
	// ErrNotInGroup: the reviewer is not a member of the approval's group.
	ErrNotInGroup = errors.New("hitl: reviewer not in the approval's group")
	// ErrSelfApproval: the reviewer is the one who asked for the approval.
	ErrSelfApproval = errors.New("hitl: requester cannot decide their own request")
	// ErrArgsMismatch: the decision names other arguments (another hash)
	// than the ones the approval authorizes.
	ErrArgsMismatch = errors.New("hitl: arguments hash does not match the approval")
	// ErrAlreadyVoted: the reviewer has already decided on this approval.
	ErrAlreadyVoted = errors.New("hitl: reviewer already decided")
	// ErrEditNotAllowed: edited arguments were sent with a rejection, or
	// for an approval that needs more than one approver (the others would
	// have approved different arguments).
	ErrEditNotAllowed = errors.New("hitl: edited arguments not allowed")
	// ErrInvalidInput: a Decide or List call is malformed (no reviewer,
	// edited arguments that are not JSON, a bad cursor…). The error is a
	// *FieldError naming the field when there is one.
	ErrInvalidInput = errors.New("hitl: invalid input")

	// ErrInvalidRequest: Approve was given a Request it cannot record
	// (no title, action or group, arguments that are not JSON, more
	// approvers than the group can provide…).
	ErrInvalidRequest = errors.New("hitl: invalid approval request")
	// ErrUnknownGroup: the Request names a reviewer group that the
	// Service's Groups do not define.
	ErrUnknownGroup = errors.New("hitl: unknown reviewer group")

	// ErrInvalidConfig: New was given an unusable Config.
	ErrInvalidConfig = errors.New("hitl: invalid config")
	// ErrLinkSecret: the link signing key is missing or shorter than
	// MinLinkSecret bytes. It matches ErrInvalidConfig.
	ErrLinkSecret = fmt.Errorf("%w: link secret must be at least %d bytes (Config.LinkSecret or %s)", ErrInvalidConfig, MinLinkSecret, LinkSecretEnv)

	// ErrInvalidLink is matched by every error about a review link below.
	ErrInvalidLink = errors.New("hitl: invalid review link")
	// ErrLinkMalformed: the token is not one SignLink could have made
	// (truncated, not base64url, wrong layout).
	ErrLinkMalformed = fmt.Errorf("%w: malformed", ErrInvalidLink)
	// ErrLinkForged: the token's signature does not verify with the key.
	ErrLinkForged = fmt.Errorf("%w: bad signature", ErrInvalidLink)
	// ErrLinkExpired: the token is past its expiry.
	ErrLinkExpired = fmt.Errorf("%w: expired", ErrInvalidLink)
	// ErrLinkUsed: a decision was already made with this token.
	ErrLinkUsed = fmt.Errorf("%w: already used", ErrInvalidLink)
	// ErrLinkMismatch: the token was issued for another approval or
	// another reviewer than the decision names.
	ErrLinkMismatch = fmt.Errorf("%w: issued for another approval or reviewer", ErrInvalidLink)

	// ErrPolicyCompile is matched by every *CompileError.
	ErrPolicyCompile = errors.New("hitl: policy rule does not compile")
	// ErrPolicyEval is matched by every *EvalError.
	ErrPolicyEval = errors.New("hitl: policy rule evaluation failed")
)

// CompileError reports a policy rule that does not compile, or does not
// evaluate to a bool.
type CompileError struct {
	Rule string
	Err  error
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("hitl: policy rule %q: %v", e.Rule, e.Err)
}

// Unwrap returns the cause.
func (e *CompileError) Unwrap() error { return e.Err }

// Is matches ErrPolicyCompile.
func (e *CompileError) Is(target error) bool { return target == ErrPolicyCompile }

// EvalError reports a policy rule whose evaluation failed: a missing
// argument, a type error, a result that is not a bool, or the cost limit.
// Rule is empty when the input itself was unusable (arguments that are not
// a JSON object).
type EvalError struct {
	Rule string
	Err  error
}

func (e *EvalError) Error() string {
	if e.Rule == "" {
		return fmt.Sprintf("hitl: policy: %v", e.Err)
	}
	return fmt.Sprintf("hitl: policy rule %q: %v", e.Rule, e.Err)
}

// Unwrap returns the cause.
func (e *EvalError) Unwrap() error { return e.Err }

// Is matches ErrPolicyEval.
func (e *EvalError) Is(target error) bool { return target == ErrPolicyEval }

// FieldError is an invalid field of a call's input: Field is the Go name of
// the input struct's field (DecideInput's "EditedArgs", ListParams'
// "Cursor"), Detail says what is wrong with it. It matches
// ErrInvalidInput.
type FieldError struct {
	Field  string
	Detail string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%v: %s: %s", ErrInvalidInput, e.Field, e.Detail)
}

// Unwrap returns ErrInvalidInput.
func (e *FieldError) Unwrap() error { return ErrInvalidInput }
