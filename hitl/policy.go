package hitl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/traits"
)

// DefaultPolicyCostLimit is the evaluation cost limit of a rule when
// PolicyConfig.CostLimit is zero: far above any sensible rule, low enough
// that a rule looping over huge arguments stops quickly.
const DefaultPolicyCostLimit = 100_000

// Rule says when an action needs approval, and from whom. When is a CEL
// expression (https://cel.dev) over two variables:
//
//	action  string  the action (tool) name
//	args    dyn     its arguments, decoded from JSON (objects are maps,
//	                iterated in key order; integers int, other numbers
//	                double)
//
// for example
//
//	action == "refund" && args.amount > 500
//	action in ["send_email", "delete_record"]
//	action == "charge" && has(args.currency) && args.currency != "EUR"
//
// A field the arguments lack is an evaluation error; guard it with has().
type Rule struct {
	// Name identifies the rule in errors and in the Match. Required,
	// unique.
	Name string
	// When is the CEL condition; it must evaluate to a bool. Required.
	When string
	// Group is the reviewer group that decides. Required.
	Group string
	// Required is how many of the group must approve. Optional; default 1.
	Required int
	// Timeout is how long to wait for the decision. Optional; default
	// the Request's default.
	Timeout time.Duration
}

// PolicyConfig configures a Policy. The zero value is valid.
type PolicyConfig struct {
	// CostLimit bounds the evaluation cost of one rule on one input.
	// Optional; default DefaultPolicyCostLimit.
	CostLimit uint64
}

// Match is the rule that matched an action.
type Match struct {
	Rule     string
	Group    string
	Required int
	Timeout  time.Duration
}

// Policy decides which actions need approval. Rules are compiled once, by
// NewPolicy, and evaluated in order: the first rule whose condition holds
// wins. A Policy is immutable and safe for concurrent use.
type Policy struct {
	rules []compiledRule
}

type compiledRule struct {
	Rule
	prg cel.Program
}

// NewPolicy compiles rules. A rule that does not parse, does not type-check
// or does not yield a bool fails with a *CompileError naming it (matching
// ErrPolicyCompile); so do a missing name, condition or group, and a
// duplicate name. cfg may be nil.
func NewPolicy(rules []Rule, cfg *PolicyConfig) (*Policy, error) {
	limit := uint64(DefaultPolicyCostLimit)
	if cfg != nil && cfg.CostLimit > 0 {
		limit = cfg.CostLimit
	}
	env, err := cel.NewEnv(
		cel.Variable("action", cel.StringType),
		cel.Variable("args", cel.DynType),
		cel.CrossTypeNumericComparisons(true),
	)
	if err != nil {
		return nil, fmt.Errorf("hitl: policy environment: %w", err)
	}
	p := &Policy{}
	seen := map[string]bool{}
	for i, r := range rules {
		name := r.Name
		if name == "" {
			name = fmt.Sprintf("#%d", i+1)
		}
		switch {
		case r.Name == "":
			return nil, &CompileError{Rule: name, Err: errors.New("rule has no name")}
		case seen[r.Name]:
			return nil, &CompileError{Rule: name, Err: errors.New("duplicate rule name")}
		case r.When == "":
			return nil, &CompileError{Rule: name, Err: errors.New("rule has no condition (When)")}
		case r.Group == "":
			return nil, &CompileError{Rule: name, Err: errors.New("rule has no reviewer group")}
		case r.Required < 0 || r.Timeout < 0:
			return nil, &CompileError{Rule: name, Err: errors.New("negative Required or Timeout")}
		}
		seen[r.Name] = true
		ast, iss := env.Compile(r.When)
		if iss.Err() != nil {
			return nil, &CompileError{Rule: name, Err: iss.Err()}
		}
		if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
			return nil, &CompileError{Rule: name, Err: fmt.Errorf("condition yields %s, not bool", t)}
		}
		prg, err := env.Program(ast, cel.CostLimit(limit))
		if err != nil {
			return nil, &CompileError{Rule: name, Err: err}
		}
		r.Required = max(r.Required, 1)
		p.rules = append(p.rules, compiledRule{Rule: r, prg: prg})
	}
	return p, nil
}

// Match evaluates the rules, in order, on an action and its JSON
// arguments and returns the first that holds; ok is false when none does
// (no approval needed). Empty args are read as {}. A rule that fails to
// evaluate (a missing field, a type error, a non-bool result, the cost
// limit) stops the evaluation with an *EvalError naming it (matching
// ErrPolicyEval): the caller should treat the action as not cleared.
func (p *Policy) Match(action string, args json.RawMessage) (m Match, ok bool, err error) {
	if len(p.rules) == 0 {
		return Match{}, false, nil
	}
	vars := map[string]any{"action": action}
	vars["args"], err = decodeArgs(args)
	if err != nil {
		return Match{}, false, &EvalError{Err: err}
	}
	for _, r := range p.rules {
		hit, err := r.eval(vars)
		if err != nil {
			return Match{}, false, &EvalError{Rule: r.Name, Err: err}
		}
		if hit {
			return Match{Rule: r.Name, Group: r.Group, Required: r.Required, Timeout: r.Timeout}, true, nil
		}
	}
	return Match{}, false, nil
}

// Rules returns the policy's rules, in order.
func (p *Policy) Rules() []Rule {
	out := make([]Rule, len(p.rules))
	for i, r := range p.rules {
		out[i] = r.Rule
	}
	return out
}

func (r *compiledRule) eval(vars map[string]any) (hit bool, err error) {
	defer func() {
		// cel-go reports errors as values; this guards against a bug
		// in it taking the caller down.
		if v := recover(); v != nil {
			hit, err = false, fmt.Errorf("panic in evaluation: %v", v)
		}
	}()
	out, _, err := r.prg.Eval(vars)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("condition yielded %s, not bool", out.Type())
	}
	return bool(b), nil
}

// decodeArgs decodes JSON arguments for CEL: integers as int64, other
// numbers as float64.
func decodeArgs(args json.RawMessage) (any, error) {
	if len(bytes.TrimSpace(args)) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("arguments are not valid JSON: %w", err)
	}
	// More would miss a stray closing bracket: it reports the end of an
	// array or object, not of the input.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("arguments are not valid JSON: data after the value")
	}
	return convertNumbers(v), nil
}

func convertNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64() // valid JSON number; overflow gives ±Inf
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = convertNumbers(e)
		}
		return sortedMap{
			Mapper: types.DefaultTypeAdapter.NativeToValue(x).(traits.Mapper),
			keys:   slices.Sorted(maps.Keys(x)),
		}
	case []any:
		for i, e := range x {
			x[i] = convertNumbers(e)
		}
		return x
	}
	return v
}

// sortedMap is a JSON object as CEL sees it, iterated in key order. cel-go
// iterates a Go map in Go's random order, so a rule whose value depends on
// the order (args.map(k, k)[0] == "a", or an error that depends on which
// entry fails first) would give a different result from one evaluation to
// the next.
type sortedMap struct {
	traits.Mapper
	keys []string
}

// Iterator visits the keys in sorted order.
func (m sortedMap) Iterator() traits.Iterator {
	return types.NewStringList(types.DefaultTypeAdapter, m.keys).Iterator()
}
