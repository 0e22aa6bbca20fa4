package durabletest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/durable"
)

// History is a run's history with each event's data decoded.
type History struct {
	Run    durable.RunInfo
	Events []Event
}

// Event is one decoded history event: its ID (1-based position), type
// (durable.EventActivityScheduled…), time, and the fields its type sets.
type Event struct {
	ID   int64
	Type string
	Time time.Time
	durable.EventDetails
}

// NewHistory decodes an exported history.
func NewHistory(h *durable.History) (*History, error) {
	out := &History{Run: h.Run, Events: make([]Event, len(h.Events))}
	for i, ev := range h.Events {
		d, err := ev.Details()
		if err != nil {
			return nil, fmt.Errorf("durabletest: %w", err)
		}
		out.Events[i] = Event{ID: ev.ID, Type: ev.Type, Time: ev.Time, EventDetails: d}
	}
	return out, nil
}

// History returns a run's decoded history, failing the test if it cannot.
func (env *Env) History(t testing.TB, runID string) *History {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), env.timeout)
	defer cancel()
	raw, err := env.Engine.GetHistory(ctx, runID)
	if err != nil {
		t.Fatalf("durabletest: history of %s: %v", runID, err)
	}
	h, err := NewHistory(raw)
	if err != nil {
		t.Fatalf("durabletest: history of %s: %v", runID, err)
	}
	return h
}

// ExportHistory writes a run's history to path as Engine.ExportHistory
// renders it: the form that durable.Replayer and `keel replay` read, and
// that golden histories in testdata are kept in.
func (env *Env) ExportHistory(t testing.TB, runID, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), env.timeout)
	defer cancel()
	b, err := env.Engine.ExportHistory(ctx, runID)
	if err != nil {
		t.Fatalf("durabletest: export history of %s: %v", runID, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil { //nolint:gosec // a test file
		t.Fatalf("durabletest: export history of %s: %v", runID, err)
	}
}

// Types returns the event types in order.
func (h *History) Types() []string {
	out := make([]string, len(h.Events))
	for i, ev := range h.Events {
		out[i] = ev.Type
	}
	return out
}

// Find returns the events of type typ, in order; when name is not empty,
// only those with that Name (activity type, signal or marker name).
func (h *History) Find(typ, name string) []Event {
	var out []Event
	for _, ev := range h.Events {
		if ev.Type == typ && (name == "" || ev.Name == name) {
			out = append(out, ev)
		}
	}
	return out
}

// Activities returns the ActivityScheduled events of an activity type.
func (h *History) Activities(name string) []Event {
	return h.Find(durable.EventActivityScheduled, name)
}

// Signals returns the SignalReceived events of a signal name.
func (h *History) Signals(name string) []Event {
	return h.Find(durable.EventSignalReceived, name)
}

// Markers returns the MarkerRecorded events of a marker name: "SideEffect"
// for SideEffect and UUID, "Patch:" and the change ID for Patch.
func (h *History) Markers(name string) []Event {
	return h.Find(durable.EventMarkerRecorded, name)
}

// Outcome returns the event that answered the command with sequence number
// seq (ActivityCompleted, ActivityFailed, TimerFired), and false if none
// has yet.
func (h *History) Outcome(seq int64) (Event, bool) {
	for _, ev := range h.Events {
		switch ev.Type {
		case durable.EventActivityCompleted, durable.EventActivityFailed, durable.EventTimerFired:
			if ev.Seq == seq {
				return ev, true
			}
		}
	}
	return Event{}, false
}

// AssertActivityCalled checks that the history scheduled the activity type
// exactly times times.
func AssertActivityCalled(t testing.TB, h *History, name string, times int) {
	t.Helper()
	if got := len(h.Activities(name)); got != times {
		t.Errorf("activity %q scheduled %d time(s), want %d; history: %s", name, got, times, h)
	}
}

// AssertEventTypes checks that the history's event types are exactly types,
// in order.
func AssertEventTypes(t testing.TB, h *History, types ...string) {
	t.Helper()
	if got := h.Types(); !slices.Equal(got, types) {
		t.Errorf("history event types:\n got  %s\n want %s", strings.Join(got, ", "), strings.Join(types, ", "))
	}
}

// String renders the history one event per line: ID, type and name.
func (h *History) String() string {
	var b strings.Builder
	for _, ev := range h.Events {
		fmt.Fprintf(&b, "\n  %3d %s", ev.ID, ev.Type)
		if ev.Name != "" {
			fmt.Fprintf(&b, " %s", ev.Name)
		}
	}
	return b.String()
}
