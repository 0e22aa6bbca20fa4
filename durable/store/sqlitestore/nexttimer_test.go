package sqlitestore_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/durable/store/storetest"
)

func TestIdle(t *testing.T) {
	t.Parallel()
	storetest.ExerciseIdle(t, func(t *testing.T) storetest.IdleStore {
		s, err := sqlitestore.Open(filepath.Join(t.TempDir(), "keel.db"), nil)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}
