package failpoint

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Environment variables read by a build with the failpoints tag.
const (
	// EnvSpec holds the rules (see the package documentation).
	EnvSpec = "KEEL_FAILPOINTS"
	// EnvLog names a file to which the first hit of each name is appended.
	EnvLog = "KEEL_FAILPOINTS_LOG"
	// EnvSeed seeds the generator of probabilistic triggers.
	EnvSeed = "KEEL_FAILPOINTS_SEED"
)

// ErrInvalidSpec: a configuration does not parse; the error says where.
var ErrInvalidSpec = errors.New("failpoint: invalid configuration")

// ErrInjected is matched by every error Inject returns.
var ErrInjected = errors.New("failpoint: injected error")

// ErrAmbiguous is matched by the errors of ambiguous actions: the write
// committed, and its caller was told it failed.
var ErrAmbiguous = errors.New("failpoint: injected error after the write committed")

// ErrDisabled: Configure was called in a build without the failpoints tag.
var ErrDisabled = errors.New("failpoint: not compiled in (build with -tags failpoints)")

// Error is what Inject returns for an error or ambiguous action.
type Error struct {
	Name      string // the failpoint
	Hit       int64  // the rule's hit count at this hit
	Ambiguous bool
}

func (e *Error) Error() string {
	if e.Ambiguous {
		return fmt.Sprintf("failpoint %s (hit %d): injected error after the write committed", e.Name, e.Hit)
	}
	return fmt.Sprintf("failpoint %s (hit %d): injected error", e.Name, e.Hit)
}

// Is matches ErrInjected, and ErrAmbiguous for an ambiguous action.
func (e *Error) Is(target error) bool {
	return target == ErrInjected || (e.Ambiguous && target == ErrAmbiguous)
}

// Kind is what a rule does when it triggers.
type Kind string

// Kinds of actions.
const (
	Kill      Kind = "kill"
	Fail      Kind = "error"
	Ambiguous Kind = "ambiguous"
	Off       Kind = "off"
)

// Rule is one parsed rule of a configuration.
type Rule struct {
	// Pattern is a name or a glob over names.
	Pattern string
	Kind    Kind
	// Nth, when positive, triggers at that hit only.
	Nth int64
	// Percent, when positive, triggers each hit with that probability.
	Percent float64
}

// String returns the rule in the configuration syntax.
func (r Rule) String() string {
	s := r.Pattern + "=" + string(r.Kind)
	switch {
	case r.Nth > 0:
		s += "@" + strconv.FormatInt(r.Nth, 10)
	case r.Percent > 0:
		s += "%" + strconv.FormatFloat(r.Percent, 'g', -1, 64)
	}
	return s
}

// Matches reports whether the rule's pattern matches name.
func (r Rule) Matches(name string) bool {
	if r.Pattern == name {
		return true
	}
	ok, _ := path.Match(r.Pattern, name) // patterns are checked by Parse
	return ok
}

// Parse parses a configuration: rules separated by ';' (empty rules and
// surrounding spaces are ignored). Errors match ErrInvalidSpec.
func Parse(spec string) ([]Rule, error) {
	var rules []Rule
	for _, part := range strings.Split(spec, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		r, err := parseRule(part)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func parseRule(s string) (Rule, error) {
	pattern, action, ok := strings.Cut(s, "=")
	pattern, action = strings.TrimSpace(pattern), strings.TrimSpace(action)
	if !ok || pattern == "" || action == "" {
		return Rule{}, fmt.Errorf("%w: %q is not pattern=action", ErrInvalidSpec, s)
	}
	if strings.ContainsAny(pattern, "/\\") {
		return Rule{}, fmt.Errorf("%w: %q: a pattern holds no '/' or '\\'", ErrInvalidSpec, s)
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return Rule{}, fmt.Errorf("%w: %q: bad pattern: %w", ErrInvalidSpec, s, err)
	}
	r := Rule{Pattern: pattern}
	kind := action
	if i := strings.IndexAny(action, "@%"); i >= 0 {
		kind = action[:i]
		arg := action[i+1:]
		switch action[i] {
		case '@':
			n, err := strconv.ParseInt(arg, 10, 64)
			if err != nil || n < 1 {
				return Rule{}, fmt.Errorf("%w: %q: @%s is not a hit number >= 1", ErrInvalidSpec, s, arg)
			}
			r.Nth = n
		case '%':
			p, err := strconv.ParseFloat(arg, 64)
			if err != nil || !(p > 0 && p <= 100) {
				return Rule{}, fmt.Errorf("%w: %q: %%%s is not a percentage in (0, 100]", ErrInvalidSpec, s, arg)
			}
			r.Percent = p
		}
	}
	switch k := Kind(kind); k {
	case Kill, Fail, Off:
		r.Kind = k
	case Ambiguous:
		if !strings.HasSuffix(pattern, ".after") {
			return Rule{}, fmt.Errorf("%w: %q: ambiguous applies only to .after failpoints, where the write has committed", ErrInvalidSpec, s)
		}
		r.Kind = k
	default:
		return Rule{}, fmt.Errorf("%w: %q: unknown action %q (kill, error, ambiguous, off)", ErrInvalidSpec, s, kind)
	}
	return r, nil
}
