package hitl

import (
	"fmt"
	"slices"
	"sort"
)

// Groups maps each reviewer group to its members, by reviewer identity
// (the name the server authenticates, an email address…):
//
//	hitl.Groups{
//		"legal":    {"lena", "lars"},
//		"finance":  {"fred", "fiona", "farid"},
//		"partners": {"paula"},
//	}
//
// A reviewer may belong to several groups.
type Groups map[string][]string

// Members returns a group's members, sorted; nil for an unknown group.
func (g Groups) Members(group string) []string {
	m, ok := g[group]
	if !ok {
		return nil
	}
	out := slices.Clone(m)
	sort.Strings(out)
	return out
}

// Has reports whether reviewer is a member of group.
func (g Groups) Has(group, reviewer string) bool {
	return reviewer != "" && slices.Contains(g[group], reviewer)
}

// Of returns the groups reviewer belongs to, sorted.
func (g Groups) Of(reviewer string) []string {
	var out []string
	for name, members := range g {
		if reviewer != "" && slices.Contains(members, reviewer) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// clone returns a deep copy, so that a Service is not changed by later
// edits to the caller's map.
func (g Groups) clone() Groups {
	out := make(Groups, len(g))
	for k, v := range g {
		out[k] = slices.Clone(v)
	}
	return out
}

func (g Groups) validate() error {
	if len(g) == 0 {
		return fmt.Errorf("%w: no reviewer groups", ErrInvalidConfig)
	}
	for name, members := range g {
		if name == "" {
			return fmt.Errorf("%w: a reviewer group has an empty name", ErrInvalidConfig)
		}
		if len(members) == 0 {
			return fmt.Errorf("%w: reviewer group %q has no members", ErrInvalidConfig, name)
		}
		seen := map[string]bool{}
		for _, m := range members {
			if m == "" {
				return fmt.Errorf("%w: reviewer group %q has an empty member name", ErrInvalidConfig, name)
			}
			if seen[m] {
				return fmt.Errorf("%w: reviewer group %q lists %q twice", ErrInvalidConfig, name, m)
			}
			seen[m] = true
		}
	}
	return nil
}
