package storetest_test

import (
	"path/filepath"
	"testing"

	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/durable/store/storetest"
)

// A driver runs the suite from its own tests, with a new, empty store per
// subtest.
func ExampleExercise() {
	_ = func(t *testing.T) {
		storetest.Exercise(t, func(t *testing.T) store.Store {
			s, err := sqlitestore.Open(filepath.Join(t.TempDir(), "keel.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		})
	}
}
