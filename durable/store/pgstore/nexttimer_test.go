package pgstore_test

import (
	"testing"

	"github.com/keelhq/keel/durable/store/storetest"
	"github.com/keelhq/keel/internal/testdb"
)

func TestIdle(t *testing.T) {
	t.Parallel()
	storetest.ExerciseIdle(t, func(t *testing.T) storetest.IdleStore { return newStore(t, testdb.Postgres(t)) })
}
