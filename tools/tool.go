package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/invopop/jsonschema"
	validator "github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/keelhq/keel/durable"
)

// ActivityPrefix is prepended to a tool's name to form the name of the
// durable activity that runs it: tool "crm_lookup" runs as activity
// "tool.crm_lookup".
const ActivityPrefix = "tool."

// DefaultMaximumAttempts is how many times a failing handler is tried when
// Options.Activity sets no RetryPolicy.MaximumAttempts.
const DefaultMaximumAttempts = 3

// namePattern is what OpenAI-compatible APIs accept as a function name.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// Options configure a tool. The zero value is valid.
type Options struct {
	// Activity sets the timeouts, retry policy and task queue of the
	// activity that runs each call. Optional; default the engine's
	// defaults, except RetryPolicy.MaximumAttempts, which defaults to
	// DefaultMaximumAttempts so that a failing handler is reported to the
	// model instead of retried forever.
	Activity *durable.ActivityOptions
	// RequiresApproval makes every call wait for an Approver's decision
	// before it runs.
	RequiresApproval bool
	// ApprovalReason tells the reviewer why the call needs approval.
	// Optional; default "tool <name> requires approval".
	ApprovalReason string
	// AllowUnknownFields accepts arguments with properties the input type
	// does not have (they are dropped). Optional; default false: unknown
	// properties are an argument error fed back to the model.
	AllowUnknownFields bool
}

// Tool is a function a model can call: a name, a description, the JSON
// Schema of its input and a typed handler. Build one with New. A Tool is
// immutable and safe for concurrent use.
type Tool struct {
	name        string
	description string
	schema      json.RawMessage // as sent to the model
	validator   *validator.Schema
	opts        Options
	activity    *durable.Activity[callInput, Result]
	// invoke decodes validated arguments and runs the handler.
	invoke func(ctx context.Context, args []byte) (json.RawMessage, error)
	// decode decodes arguments into the input type, strictly unless
	// AllowUnknownFields.
	decode func(args []byte) error
}

// New defines a tool. The input type In must be a struct (or a map); its
// JSON Schema is generated from its fields, their `json` tags and their
// `jsonschema` tags (see github.com/invopop/jsonschema), for example
//
//	type LookupInput struct {
//		CustomerID string `json:"customer_id" jsonschema:"description=The CRM customer ID,minLength=3"`
//	}
//
// Fields without `omitempty` are required. fn receives the decoded,
// validated input; its output is encoded as JSON for the model. opts may be
// nil. New fails with an error matching ErrInvalidTool on a bad name or an
// input type that is not a JSON object.
func New[In, Out any](name, description string, fn func(ctx context.Context, in In) (Out, error), opts *Options) (*Tool, error) {
	if !namePattern.MatchString(name) {
		return nil, fmt.Errorf("%w: name %q must match %s", ErrInvalidTool, name, namePattern)
	}
	if fn == nil {
		return nil, fmt.Errorf("%w: tool %s: nil handler", ErrInvalidTool, name)
	}
	t := &Tool{name: name, description: description}
	if opts != nil {
		t.opts = *opts
	}
	var in In
	schema, err := schemaOf(reflect.TypeOf(&in).Elem(), t.opts.AllowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("%w: tool %s: %w", ErrInvalidTool, name, err)
	}
	t.schema = schema
	if t.validator, err = compileSchema(name, schema); err != nil {
		return nil, fmt.Errorf("%w: tool %s: compile schema: %w", ErrInvalidTool, name, err)
	}
	t.decode = func(args []byte) error {
		var v In
		return decodeStrict(args, &v, !t.opts.AllowUnknownFields)
	}
	t.invoke = func(ctx context.Context, args []byte) (json.RawMessage, error) {
		var v In
		if err := decodeStrict(args, &v, !t.opts.AllowUnknownFields); err != nil {
			return nil, &ArgumentError{Tool: name, Err: err}
		}
		out, err := fn(ctx, v)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(out)
		if err != nil {
			return nil, durable.NonRetryable(fmt.Errorf("tools: encode result of %s: %w", name, err))
		}
		return b, nil
	}
	ao := durable.ActivityOptions{}
	if t.opts.Activity != nil {
		ao = *t.opts.Activity
	}
	if ao.RetryPolicy.MaximumAttempts == 0 {
		ao.RetryPolicy.MaximumAttempts = DefaultMaximumAttempts
	}
	t.activity = durable.NewActivity(ActivityPrefix+name, t.run, &ao)
	return t, nil
}

// MustNew is New that panics on error, for tools defined at startup.
func MustNew[In, Out any](name, description string, fn func(ctx context.Context, in In) (Out, error), opts *Options) *Tool {
	t, err := New(name, description, fn, opts)
	if err != nil {
		panic(err)
	}
	return t
}

// Name returns the tool's name, as the model calls it.
func (t *Tool) Name() string { return t.name }

// Description returns what the tool does, as the model reads it.
func (t *Tool) Description() string { return t.description }

// Schema returns the JSON Schema of the tool's input, as sent to the model.
// The caller must not modify it.
func (t *Tool) Schema() json.RawMessage { return t.schema }

// RequiresApproval reports whether a call waits for an Approver first.
func (t *Tool) RequiresApproval() bool { return t.opts.RequiresApproval }

// ActivityName returns the name of the durable activity that runs the
// tool's calls.
func (t *Tool) ActivityName() string { return t.activity.Name() }

// Definition returns the durable activity that runs the tool's calls, to
// register with an Engine on every worker that runs them.
func (t *Tool) Definition() durable.Definition { return t.activity }

// Spec returns the tool's name, description and input schema, the form in
// which model APIs take tool definitions.
func (t *Tool) Spec() Spec {
	return Spec{Name: t.name, Description: t.description, Parameters: t.schema}
}

// Spec describes a tool to a model.
type Spec struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters"`
}

// Validate checks arguments against the tool's input schema and type. It
// returns nil or an *ArgumentError (matching ErrInvalidArguments) whose
// message says what is wrong in words a model can act on. Empty arguments
// are read as {}.
func (t *Tool) Validate(args string) error {
	b := normalizeArgs(args)
	v, err := validator.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return &ArgumentError{Tool: t.name, Err: fmt.Errorf("arguments are not valid JSON: %w", err)}
	}
	if err := t.validator.Validate(v); err != nil {
		return &ArgumentError{Tool: t.name, Err: errors.New(validationMessage(err))}
	}
	if err := t.decode(b); err != nil {
		return &ArgumentError{Tool: t.name, Err: err}
	}
	return nil
}

// Invoke validates args and runs the handler once, in this process, outside
// any engine: for tests and tools used without the agent loop. Argument
// errors and handler errors come back in the Result, as the model would see
// them; CallInfo is not available to the handler.
func (t *Tool) Invoke(ctx context.Context, args string) Result {
	r, err := t.run(ctx, callInput{Args: args})
	if err != nil {
		return Result{Tool: t.name, IsError: true, ErrorKind: ErrorFailed, Error: err.Error()}
	}
	r.Tool = t.name
	return r
}

// callInput is the input of a tool's activity: as small as possible, since
// it is stored in the run's history. Args is a string because a model's
// arguments may not be JSON at all.
type callInput struct {
	CallID string `json:"id,omitempty"`
	Args   string `json:"args,omitempty"`
}

// run is the tool's activity: it validates the arguments and runs the
// handler. Argument errors complete the activity with an error Result (a
// retry would not fix them); handler errors fail the attempt and are
// retried by the tool's policy.
func (t *Tool) run(ctx context.Context, in callInput) (Result, error) {
	if err := t.Validate(in.Args); err != nil {
		return Result{IsError: true, ErrorKind: ErrorInvalidArguments, Error: err.Error()}, nil
	}
	if ai, ok := durable.GetActivityInfo(ctx); ok {
		ctx = context.WithValue(ctx, callInfoKey, Info{
			Tool:           t.name,
			CallID:         in.CallID,
			WorkflowID:     ai.WorkflowID,
			RunID:          ai.RunID,
			Attempt:        ai.Attempt,
			IdempotencyKey: ai.IdempotencyKey,
		})
	}
	content, err := t.invoke(ctx, normalizeArgs(in.Args))
	if err != nil {
		var ae *ArgumentError
		if errors.As(err, &ae) {
			return Result{IsError: true, ErrorKind: ErrorInvalidArguments, Error: ae.Error()}, nil
		}
		return Result{}, err
	}
	return Result{Content: content}, nil
}

// normalizeArgs reads empty or null arguments as an empty object, which is
// what models send for tools without parameters.
func normalizeArgs(args string) []byte {
	trimmed := strings.TrimSpace(args)
	if trimmed == "" || trimmed == "null" {
		return []byte("{}")
	}
	return []byte(args)
}

// decodeStrict decodes one JSON value into v, refusing unknown fields when
// strict, and trailing data.
func decodeStrict(args []byte, v any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(args))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode arguments: %w", err)
	}
	if dec.More() {
		return errors.New("decode arguments: unexpected data after the JSON object")
	}
	return nil
}

// schemaOf generates the JSON Schema of a tool's input type.
func schemaOf(typ reflect.Type, allowUnknown bool) (json.RawMessage, error) {
	r := &jsonschema.Reflector{
		ExpandedStruct:            true,
		Anonymous:                 true,
		AllowAdditionalProperties: allowUnknown,
	}
	s := r.ReflectFromType(typ)
	if s.Type != "object" {
		return nil, fmt.Errorf("input type %s has JSON Schema type %q; a tool's input must be a JSON object (a struct)", typ, s.Type)
	}
	// Model APIs take the schema inline; the meta-schema URL only adds
	// bytes to every request (and some providers reject it).
	s.Version = ""
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode schema: %w", err)
	}
	return b, nil
}

// compileSchema compiles a tool's schema for validation (draft 2020-12, the
// draft the generator writes).
func compileSchema(name string, schema json.RawMessage) (*validator.Schema, error) {
	doc, err := validator.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, err
	}
	c := validator.NewCompiler()
	c.DefaultDraft(validator.Draft2020)
	url := "urn:keel:tool:" + name
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

// validationMessage turns a validation error into lines a model can read:
// "at '/limit': maximum: got 20, want 10". The first line of the library's
// message, which names the schema's internal URL, is dropped.
func validationMessage(err error) string {
	msg := err.Error()
	var ve *validator.ValidationError
	if errors.As(err, &ve) {
		if _, rest, ok := strings.Cut(msg, "\n"); ok {
			msg = rest
		}
	}
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(strings.TrimSpace(l), "- ")
	}
	return "schema violation: " + strings.Join(lines, "; ")
}
