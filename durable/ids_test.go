package durable_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
)

// Run IDs, and workflow IDs left to the engine, are UUIDs of version 7,
// so that IDs drawn later sort later (see newRunID).
func TestRunIDsAreTimeOrdered(t *testing.T) {
	t.Parallel()
	child := durable.NewWorkflow("ids-child", func(ctx durable.Context, _ struct{}) (struct{}, error) {
		return struct{}{}, nil
	})
	parent := durable.NewWorkflow("ids-parent", func(ctx durable.Context, _ struct{}) (string, error) {
		f := child.StartChild(ctx, struct{}{}, nil)
		if _, err := f.Get(ctx); err != nil {
			return "", err
		}
		return f.RunID(), nil
	})
	b := setup(t, setupOpts{defs: []durable.Definition{child, parent}})
	ctx := testContext(t)

	var ids []string
	for range 3 {
		h, err := parent.Start(ctx, b.e, struct{}{}, nil)
		require.NoError(t, err)
		childRunID, err := h.Result(ctx)
		require.NoError(t, err)
		ids = append(ids, h.WorkflowID(), h.RunID(), childRunID)
	}
	for i, id := range ids {
		u, err := uuid.Parse(id)
		require.NoError(t, err, id)
		require.Equal(t, uuid.Version(7), u.Version(), id)
		if i > 0 {
			require.Less(t, ids[i-1], id, "IDs drawn in order sort in order")
		}
	}
}
