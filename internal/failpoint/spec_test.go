package failpoint_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/internal/failpoint"
)

func TestParse(t *testing.T) {
	t.Parallel()
	rules, err := failpoint.Parse(" store.CompleteWorkflowTask.after=kill@3; store.Signal.before=error@1 ;;" +
		"store.*.after=ambiguous%1;hitl.decide.before=error;billing.*=off")
	require.NoError(t, err)
	require.Equal(t, []failpoint.Rule{
		{Pattern: "store.CompleteWorkflowTask.after", Kind: failpoint.Kill, Nth: 3},
		{Pattern: "store.Signal.before", Kind: failpoint.Fail, Nth: 1},
		{Pattern: "store.*.after", Kind: failpoint.Ambiguous, Percent: 1},
		{Pattern: "hitl.decide.before", Kind: failpoint.Fail},
		{Pattern: "billing.*", Kind: failpoint.Off},
	}, rules)
	require.Equal(t, "store.*.after=ambiguous%1", rules[2].String())
	require.Equal(t, "store.CompleteWorkflowTask.after=kill@3", rules[0].String())

	empty, err := failpoint.Parse("")
	require.NoError(t, err)
	require.Empty(t, empty)
}

func TestParseRefusesBadRules(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{
		"store.Signal.before",             // no action
		"=kill",                           // no pattern
		"store.Signal.before=",            // no action
		"store.Signal.before=explode",     // unknown action
		"store.Signal.before=kill@0",      // hits count from 1
		"store.Signal.before=kill@x",      // not a number
		"store.Signal.before=error%0",     // percentage out of range
		"store.Signal.before=error%101",   // percentage out of range
		"store.Signal.before=ambiguous@1", // nothing committed before the write
		"store.*=ambiguous%1",             // could match .before points
		"store.[=kill",                    // bad glob
		"a/b=kill",                        // not a name
	} {
		_, err := failpoint.Parse(spec)
		require.ErrorIs(t, err, failpoint.ErrInvalidSpec, spec)
	}
}

func TestRuleMatches(t *testing.T) {
	t.Parallel()
	r := failpoint.Rule{Pattern: "store.*.after"}
	require.True(t, r.Matches("store.Signal.after"))
	require.True(t, r.Matches("store.CompleteWorkflowTask.close.after"))
	require.False(t, r.Matches("store.Signal.before"))
	require.False(t, r.Matches("hitl.decide.after"))
	require.True(t, failpoint.Rule{Pattern: "hitl.decide.after"}.Matches("hitl.decide.after"))
}

func TestErrorMatchesSentinels(t *testing.T) {
	t.Parallel()
	var plain error = &failpoint.Error{Name: "store.Signal.before", Hit: 1}
	require.ErrorIs(t, plain, failpoint.ErrInjected)
	require.False(t, errors.Is(plain, failpoint.ErrAmbiguous))
	var amb error = &failpoint.Error{Name: "store.Signal.after", Hit: 2, Ambiguous: true}
	require.ErrorIs(t, amb, failpoint.ErrInjected)
	require.ErrorIs(t, amb, failpoint.ErrAmbiguous)
	require.Contains(t, amb.Error(), "store.Signal.after (hit 2)")
}
