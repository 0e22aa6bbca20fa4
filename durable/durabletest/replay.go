package durabletest

import (
	"testing"

	"github.com/keelhq/keel/durable"
)

// ReplayFile replays a history exported with Engine.ExportHistory (or
// Env.ExportHistory) against the given workflow code, and fails the test
// with the non-determinism, panic or other failure if the code no longer
// reproduces it. Keep such golden histories in testdata and replay them in
// a test, so that a change that would break running runs fails before it
// is deployed.
func ReplayFile(t testing.TB, path string, defs ...durable.Definition) {
	t.Helper()
	r, err := durable.NewReplayer(defs...)
	if err != nil {
		t.Fatalf("durabletest: %v", err)
	}
	if err := r.ReplayFile(path); err != nil {
		t.Errorf("durabletest: %v", err)
	}
}
