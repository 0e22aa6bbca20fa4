package durable_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/keelhq/keel/durable"
)

// FuzzReplayJSON feeds arbitrary bytes to Replayer.ReplayJSON, with the
// workflows behind the golden histories registered, so that mutations of
// the seed corpus (the golden histories, in testdata/fuzz/FuzzReplayJSON)
// reach deep into the replay of valid runs. A replay must never crash the
// process, and must end in nil, an error matching ErrInvalidHistory, or a
// *ReplayError. A *ReplayError caused by a panic must come from the
// workflow code (the "panicking" workflow panics on purpose), never from a
// Go runtime error (a nil dereference, an index out of range) in the
// engine's handling of a malformed history.
func FuzzReplayJSON(f *testing.F) {
	for _, s := range []string{
		``,
		`{}`,
		`{"events":[]}`,
		`{"events":[{"id":1,"type":"WorkflowStarted","data":{"name":"order","input":"o-1"}}]}`,
		`{"events":[{"id":1,"type":"WorkflowStarted","data":{"name":"order","input":"o-1"}},` +
			`{"id":2,"type":"ActivityCompleted","data":{"seq":7,"result":"x"}}]}`,
		`{"events":[{"id":1,"type":"WorkflowStarted","data":{"name":"timers"}},` +
			`{"id":2,"type":"TimerFired","data":{"seq":1}},{"id":3,"type":"WorkflowCompleted","data":{"seq":9}}]}`,
		`{"events":[{"id":2,"type":"WorkflowStarted","data":null}]}`,
		`{"events":[{"id":1,"type":"WorkflowStarted","data":[1,2]}]}`,
	} {
		f.Add([]byte(s))
	}
	g := newGolden(nil, false) // no activity runs in a replay
	r, err := durable.NewReplayer(g.current()...)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := r.ReplayJSON(data)
		if err == nil || errors.Is(err, durable.ErrInvalidHistory) {
			return
		}
		var re *durable.ReplayError
		if !errors.As(err, &re) {
			t.Fatalf("ReplayJSON returned an untyped error %T: %v", err, err)
		}
		var pe *durable.PanicError
		if errors.As(err, &pe) && strings.HasPrefix(pe.Value, "runtime error") {
			t.Fatalf("replay hit a runtime error on this history (an engine bug, not a workflow panic): %v\n%s", pe.Value, pe.Stack)
		}
	})
}
