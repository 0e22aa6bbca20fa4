package storetest_test

import (
	"path/filepath"
	"testing"

	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/durable/store/storetest"
)

// A driver fuzzes its store with tapes of random engine operations: the
// seed corpus runs as a normal test, and `go test -fuzz FuzzTape` mutates
// it.
func ExampleFuzzTape() {
	_ = func(f *testing.F) {
		s, err := sqlitestore.Open(filepath.Join(f.TempDir(), "keel.db"), nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { _ = s.Close() })
		storetest.FuzzTape(f, s, nil)
	}
}

// A test plays generated tapes, each checked against the model step by
// step.
func ExampleRunTape() {
	_ = func(t *testing.T) {
		s, err := sqlitestore.Open(filepath.Join(t.TempDir(), "keel.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for seed := range uint64(100) {
			stats := storetest.RunTape(t, s, storetest.RandomTape(seed, 500), nil)
			t.Logf("tape %d: %d operations, %d fenced writes refused", seed, stats.Ops, stats.Fenced)
		}
	}
}
