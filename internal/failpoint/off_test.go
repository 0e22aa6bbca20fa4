//go:build !failpoints

package failpoint_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/internal/failpoint"
)

func TestDisabledBuildInjectsNothing(t *testing.T) {
	t.Parallel()
	require.False(t, failpoint.Enabled)
	require.NoError(t, failpoint.Inject("store.Signal.before"))
	require.Nil(t, failpoint.Hits())
	require.Nil(t, failpoint.Fired())
	require.ErrorIs(t, failpoint.Configure("store.Signal.before=error"), failpoint.ErrDisabled)
}
