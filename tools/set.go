package tools

import (
	"fmt"
	"strings"

	"github.com/keelhq/keel/durable"
)

// Set is an ordered collection of tools with distinct names: the tools one
// agent offers its model.
type Set struct {
	list   []*Tool
	byName map[string]*Tool
}

// NewSet returns a Set of ts, in that order. It fails with ErrDuplicateTool
// when two tools share a name.
func NewSet(ts ...*Tool) (*Set, error) {
	s := &Set{byName: make(map[string]*Tool, len(ts))}
	for _, t := range ts {
		if t == nil {
			return nil, fmt.Errorf("%w: nil tool in set", ErrInvalidTool)
		}
		if _, dup := s.byName[t.name]; dup {
			return nil, fmt.Errorf("%w: %q", ErrDuplicateTool, t.name)
		}
		s.byName[t.name] = t
		s.list = append(s.list, t)
	}
	return s, nil
}

// Get returns the tool named name.
func (s *Set) Get(name string) (*Tool, bool) {
	t, ok := s.byName[name]
	return t, ok
}

// Lookup returns the tool named name, or an error matching ErrUnknownTool
// that lists the tools there are.
func (s *Set) Lookup(name string) (*Tool, error) {
	if t, ok := s.byName[name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("%w: %q; available tools: %s", ErrUnknownTool, name, strings.Join(s.Names(), ", "))
}

// Len returns the number of tools.
func (s *Set) Len() int { return len(s.list) }

// Tools returns the tools in order.
func (s *Set) Tools() []*Tool { return append([]*Tool(nil), s.list...) }

// Names returns the tools' names in order.
func (s *Set) Names() []string {
	names := make([]string, len(s.list))
	for i, t := range s.list {
		names[i] = t.name
	}
	return names
}

// Specs returns the tools' specs in order, to send to a model.
func (s *Set) Specs() []Spec {
	specs := make([]Spec, len(s.list))
	for i, t := range s.list {
		specs[i] = t.Spec()
	}
	return specs
}

// Definitions returns the activities of the set's tools, to register with
// an Engine.
func (s *Set) Definitions() []durable.Definition { return Definitions(s.list...) }

// Start starts call on the tool it names (see Tool.Start). A call to a
// tool not in the set comes back as an ErrorUnknownTool result listing the
// tools there are; nothing runs.
func (s *Set) Start(ctx durable.Context, call Call, opts *CallOptions) *Future {
	t, err := s.Lookup(call.Name)
	if err != nil {
		return readyFuture(call, ErrorUnknownTool, err.Error())
	}
	return t.Start(ctx, call, opts)
}

// Definitions returns the activities of ts, to register with an Engine.
func Definitions(ts ...*Tool) []durable.Definition {
	defs := make([]durable.Definition, len(ts))
	for i, t := range ts {
		defs[i] = t.Definition()
	}
	return defs
}
