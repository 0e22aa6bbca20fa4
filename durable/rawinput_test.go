package durable_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
)

// A start's raw input reaches the workflow as its history holds it
// (compacted, HTML characters escaped), in the task that runs it first as
// in every replay, so code that reads the bytes behaves the same in both.
func TestRawInputIsSeenAsHistoryHoldsIt(t *testing.T) {
	seen := durable.NewWorkflow("raw.seen", func(ctx durable.Context, in json.RawMessage) (string, error) {
		return string(in), nil
	})
	b := setup(t, setupOpts{defs: []durable.Definition{seen}})
	ctx := testContext(t)
	run, err := b.e.StartWorkflow(ctx, seen.Name(), json.RawMessage("{ \"a\" : [1, 2],\n \"h\": \"<b>\" }"), nil)
	require.NoError(t, err)
	raw, err := b.e.Result(ctx, run.RunID)
	require.NoError(t, err)
	var got string
	require.NoError(t, json.Unmarshal(raw, &got))
	require.Equal(t, `{"a":[1,2],"h":"\u003cb\u003e"}`, got)

	h, err := b.e.GetHistory(ctx, run.RunID)
	require.NoError(t, err)
	r, err := durable.NewReplayer(seen)
	require.NoError(t, err)
	require.NoError(t, r.Replay(h), "the replay must return what the first run returned")
}
