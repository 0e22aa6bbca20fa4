package hitl_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/hitl"
)

func testPolicy(t *testing.T, cfg *hitl.PolicyConfig) *hitl.Policy {
	t.Helper()
	p, err := hitl.NewPolicy([]hitl.Rule{
		{Name: "big-refund", When: `action == "refund" && args.amount > 500`, Group: "finance", Required: 2, Timeout: 4 * time.Hour},
		{Name: "any-refund", When: `action == "refund"`, Group: "finance"},
		{Name: "foreign-charge", When: `action == "charge" && has(args.currency) && args.currency != "EUR"`, Group: "finance"},
		{Name: "outbound", When: `action in ["send_email", "delete_record"]`, Group: "legal"},
		{Name: "many-items", When: `action == "bulk" && args.items.exists(i, i.qty > 10)`, Group: "ops"},
	}, cfg)
	require.NoError(t, err)
	return p
}

func TestPolicyMatch(t *testing.T) {
	t.Parallel()
	p := testPolicy(t, nil)
	cases := []struct {
		action, args string
		rule         string // "" for no match
	}{
		{"refund", `{"amount": 750}`, "big-refund"},
		{"refund", `{"amount": 500.5}`, "big-refund"}, // a double against an int literal
		{"refund", `{"amount": 500}`, "any-refund"},   // the first matching rule wins
		{"charge", `{"amount": 10, "currency": "USD"}`, "foreign-charge"},
		{"charge", `{"amount": 10}`, ""},
		{"send_email", ``, "outbound"},
		{"bulk", `{"items": [{"qty": 1}, {"qty": 12}]}`, "many-items"},
		{"bulk", `{"items": [{"qty": 1}]}`, ""},
		{"lookup", `{"id": "c-1"}`, ""},
	}
	for _, c := range cases {
		m, ok, err := p.Match(c.action, json.RawMessage(c.args))
		require.NoError(t, err, "%s %s", c.action, c.args)
		require.Equal(t, c.rule != "", ok, "%s %s", c.action, c.args)
		require.Equal(t, c.rule, m.Rule, "%s %s", c.action, c.args)
	}
	m, _, err := p.Match("refund", json.RawMessage(`{"amount": 9000}`))
	require.NoError(t, err)
	require.Equal(t, hitl.Match{Rule: "big-refund", Group: "finance", Required: 2, Timeout: 4 * time.Hour}, m)
	m, _, err = p.Match("send_email", nil)
	require.NoError(t, err)
	require.Equal(t, 1, m.Required, "Required defaults to 1")
	require.Len(t, p.Rules(), 5)
}

func TestPolicyCompileErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		rule hitl.Rule
		msg  string
	}{
		"syntax":    {hitl.Rule{Name: "broken", When: `action == "refund" &&`, Group: "g"}, "Syntax error"},
		"type":      {hitl.Rule{Name: "typed", When: `action + 1 > 2`, Group: "g"}, "no matching overload"},
		"undefined": {hitl.Rule{Name: "unknown-var", When: `amount > 5`, Group: "g"}, "undeclared reference"},
		"not bool":  {hitl.Rule{Name: "stringy", When: `action + "!"`, Group: "g"}, "not bool"},
		"no group":  {hitl.Rule{Name: "nogroup", When: `true`}, "no reviewer group"},
		"no when":   {hitl.Rule{Name: "empty", Group: "g"}, "no condition"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ok := hitl.Rule{Name: "fine", When: `true`, Group: "g"}
			_, err := hitl.NewPolicy([]hitl.Rule{ok, c.rule}, nil)
			require.ErrorIs(t, err, hitl.ErrPolicyCompile)
			var ce *hitl.CompileError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, c.rule.Name, ce.Rule)
			require.Contains(t, err.Error(), c.msg)
			require.Contains(t, err.Error(), fmt.Sprintf("%q", c.rule.Name))
		})
	}
	_, err := hitl.NewPolicy([]hitl.Rule{{Name: "a", When: "true", Group: "g"}, {Name: "a", When: "false", Group: "g"}}, nil)
	require.ErrorIs(t, err, hitl.ErrPolicyCompile)
	require.Contains(t, err.Error(), "duplicate")
	_, err = hitl.NewPolicy([]hitl.Rule{{When: "true", Group: "g"}}, nil)
	require.ErrorIs(t, err, hitl.ErrPolicyCompile)
}

func TestPolicyEvalErrors(t *testing.T) {
	t.Parallel()
	p := testPolicy(t, &hitl.PolicyConfig{CostLimit: 200})
	cases := []struct {
		name, action, args string
		rule               string
	}{
		{"missing field", "refund", `{"order": "A-1"}`, "big-refund"},
		{"wrong type", "refund", `{"amount": "lots"}`, "big-refund"},
		{"not JSON", "refund", `{"amount":`, ""},
		{"trailing data", "refund", `{} {}`, ""},
		{"cost limit", "bulk", `{"items": [` + strings.TrimSuffix(strings.Repeat(`{"qty": 1},`, 500), ",") + `]}`, "many-items"},
	}
	for _, c := range cases {
		_, ok, err := p.Match(c.action, json.RawMessage(c.args))
		require.False(t, ok, c.name)
		require.ErrorIs(t, err, hitl.ErrPolicyEval, c.name)
		var ee *hitl.EvalError
		require.True(t, errors.As(err, &ee), c.name)
		require.Equal(t, c.rule, ee.Rule, c.name)
	}
	// A rule yielding a non-bool at run time (args is dynamic).
	q, err := hitl.NewPolicy([]hitl.Rule{{Name: "flag", When: `args.flag`, Group: "g"}}, nil)
	require.NoError(t, err)
	_, _, err = q.Match("x", json.RawMessage(`{"flag": "yes"}`))
	require.ErrorIs(t, err, hitl.ErrPolicyEval)
	require.Contains(t, err.Error(), "not bool")
	m, ok, err := q.Match("x", json.RawMessage(`{"flag": true}`))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "flag", m.Rule)

	// Evaluation is safe for concurrent use.
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 50 {
				_, _, _ = p.Match("refund", json.RawMessage(`{"amount": 600}`))
			}
		}()
	}
	for range 4 {
		<-done
	}
}

func TestHash(t *testing.T) {
	t.Parallel()
	h1 := mustHash(t, "refund", `{"order":"A-17","amount":750}`)
	require.Len(t, h1, 64)
	// Key order and white space do not matter.
	require.Equal(t, h1, mustHash(t, "refund", " {\n \"amount\" : 750, \"order\":\"A-17\" } "))
	// Anything else does.
	require.NotEqual(t, h1, mustHash(t, "refund", `{"order":"A-17","amount":751}`))
	require.NotEqual(t, h1, mustHash(t, "charge", `{"order":"A-17","amount":750}`))
	require.NotEqual(t, h1, mustHash(t, "refund", `{"order":"A-17","amount":"750"}`))
	// Integers past 2^53 keep their digits.
	require.NotEqual(t, mustHash(t, "pay", `{"n":9007199254740993}`), mustHash(t, "pay", `{"n":9007199254740992}`))
	// Empty is null.
	require.Equal(t, mustHash(t, "x", `null`), mustHash(t, "x", ``))

	_, err := hitl.Hash("refund", json.RawMessage(`{"amount":`))
	require.ErrorIs(t, err, hitl.ErrInvalidInput)
	_, err = hitl.Hash("refund", json.RawMessage(`{"a":1,"a":2}`))
	require.ErrorIs(t, err, hitl.ErrInvalidInput, "duplicate keys are refused, not resolved")

	canon, err := hitl.Canonical(json.RawMessage(`{ "b": [1, 2.50, "x"], "a": {"d": true, "c": null} }`))
	require.NoError(t, err)
	require.Equal(t, `{"a":{"c":null,"d":true},"b":[1,2.5,"x"]}`, string(canon))
}

func TestGroups(t *testing.T) {
	t.Parallel()
	g := testGroups()
	require.Nil(t, g.Members("nobody"))
	require.Equal(t, []string{"farid", "fiona", "fred"}, g.Members("finance"))
	require.True(t, g.Has("legal", "lena"))
	require.False(t, g.Has("legal", "fred"))
	require.False(t, g.Has("legal", ""))
	g["ops"] = append(g["ops"], "lena")
	require.Equal(t, []string{"legal", "ops"}, g.Of("lena"))
	require.Empty(t, g.Of("mallory"))
}

// A rule sees a JSON object's keys in sorted order, so a rule that depends
// on the order gives one answer every time (cel-go walks a Go map in Go's
// random order). Trailing data after the arguments is refused.
func TestPolicyObjectKeysInOrder(t *testing.T) {
	t.Parallel()
	p, err := hitl.NewPolicy([]hitl.Rule{{Name: "first-key", When: `args.map(k, k)[0] == "a"`, Group: "g"}}, nil)
	require.NoError(t, err)
	for range 200 {
		_, ok, err := p.Match("refund", json.RawMessage(`{"c": 1, "b": 2, "a": 3, "d": 4, "e": 5, "f": 6}`))
		require.NoError(t, err)
		require.True(t, ok)
	}
	_, _, err = p.Match("refund", json.RawMessage(`{"amount": 750}}`))
	require.Error(t, err)
}
