package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/tools"
)

// Output is the type of an agent's structured final answer: a name and the
// JSON Schema generated from a Go struct type. Make one with OutputOf.
type Output struct {
	name   string
	schema *tools.Tool // its input schema and validation are the output's
}

// OutputOf returns the Output of type T, which must be a struct; its
// schema is generated from T's fields and tags as a tool's input is (see
// tools.New). name names the schema for the model (OpenAI requires one);
// letters, digits, '_' and '-' only.
func OutputOf[T any](name string) (*Output, error) {
	t, err := tools.New(name, "", func(context.Context, T) (struct{}, error) { return struct{}{}, nil }, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: output %s: %w", ErrInvalidAgent, name, err)
	}
	return &Output{name: name, schema: t}, nil
}

// MustOutputOf is OutputOf that panics on error, for agents defined at
// startup.
func MustOutputOf[T any](name string) *Output {
	o, err := OutputOf[T](name)
	if err != nil {
		panic(err)
	}
	return o
}

// Name returns the schema's name.
func (o *Output) Name() string { return o.name }

// Schema returns the JSON Schema of the answer.
func (o *Output) Schema() json.RawMessage { return o.schema.Schema() }

// Validate checks an answer against the schema. It returns nil or an
// *OutputError saying what is wrong. A Markdown code fence around the JSON
// is accepted (and must be removed with Normalize before decoding).
func (o *Output) Validate(answer string) error {
	err := o.schema.Validate(Normalize(answer))
	if err == nil {
		return nil
	}
	var ae *tools.ArgumentError
	if errors.As(err, &ae) {
		return &OutputError{Err: ae.Err}
	}
	return &OutputError{Err: err}
}

// Normalize trims spaces and a Markdown code fence (```json … ```) around
// a structured answer.
func Normalize(answer string) string {
	s := strings.TrimSpace(answer)
	if rest, ok := strings.CutPrefix(s, "```"); ok {
		if body, ok := strings.CutSuffix(rest, "```"); ok {
			// Drop the info string ("json") on the opening line.
			if i := strings.IndexByte(body, '\n'); i >= 0 {
				body = body[i+1:]
			}
			s = strings.TrimSpace(body)
		}
	}
	return s
}

// responseFormat is the request's structured output setting.
func (o *Output) responseFormat() *llm.ResponseFormat {
	return &llm.ResponseFormat{Name: o.name, Schema: o.schema.Schema()}
}

// repairMessage asks the model to fix an answer that failed validation.
func (o *Output) repairMessage(err error) llm.Message {
	var oe *OutputError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return llm.UserMessage(fmt.Sprintf(
		"Your answer is not valid: %v. Answer again with only a JSON object that follows the %q schema, and no other text.",
		err, o.name))
}
