package durable_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/durabletest"
)

var update = flag.Bool("update", false, "regenerate the golden histories in testdata/replay") //nolint:gochecknoglobals // test flag

// golden is the workflow code behind the golden histories in
// testdata/replay: the current code, and older versions of it (registered
// under the same names) that recorded the histories the current code must
// refuse.
type golden struct {
	reserve, charge, chargeCard, ship, notify, flaky, refuse *durable.Activity[string, string]
	approve                                                  durable.Signal[string]
	sideEffects                                              atomic.Int32 // SideEffect functions run
}

// newGolden returns the code. With live false, the activities fail the
// test if they run: a replay must never run one.
func newGolden(t *testing.T, live bool) *golden {
	g := &golden{approve: durable.NewSignal[string]("approve")}
	act := func(name string, fn func(ctx context.Context, in string) (string, error)) *durable.Activity[string, string] {
		return durable.NewActivity(name, func(ctx context.Context, in string) (string, error) {
			if !live {
				t.Errorf("activity %s ran during a replay", name)
				return "", errors.New("activity ran during a replay")
			}
			return fn(ctx, in)
		}, &durable.ActivityOptions{RetryPolicy: durable.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3}})
	}
	echo := func(name string) *durable.Activity[string, string] {
		return act(name, func(ctx context.Context, in string) (string, error) { return in + ">" + name, nil })
	}
	g.reserve, g.charge, g.chargeCard, g.ship, g.notify = echo("reserve"), echo("charge"), echo("charge-card"), echo("ship"), echo("notify")
	g.flaky = act("flaky", func(ctx context.Context, in string) (string, error) {
		if info, _ := durable.GetActivityInfo(ctx); info.Attempt == 1 {
			return "", errors.New("try again")
		}
		return in + ">flaky", nil
	})
	g.refuse = act("refuse", func(ctx context.Context, in string) (string, error) {
		return "", durable.NonRetryable(errors.New("refused"))
	})
	return g
}

func (g *golden) activities() []durable.Definition {
	return []durable.Definition{g.reserve, g.charge, g.chargeCard, g.ship, g.notify, g.flaky, g.refuse}
}

// current returns the current code: every workflow and activity.
func (g *golden) current() []durable.Definition {
	return append(g.activities(), g.order(), g.timers(), g.signals(), g.patched(), g.sideEffectsFlow(), g.failing(), g.panicking())
}

// order: activities in sequence and in parallel, one retried, one failing
// for good and handled.
func (g *golden) order() *durable.Workflow[string, string] {
	return durable.NewWorkflow("order", func(ctx durable.Context, in string) (string, error) {
		r, err := g.reserve.Run(ctx, in)
		if err != nil {
			return "", err
		}
		c, err := g.charge.Run(ctx, r)
		if err != nil {
			return "", err
		}
		return g.orderTail(ctx, c)
	})
}

// orderTail is the part of order after the charge, shared by its versions.
func (g *golden) orderTail(ctx durable.Context, c string) (string, error) {
	shipped, notified := g.ship.Start(ctx, c), g.notify.Start(ctx, c)
	s, err := shipped.Get(ctx)
	if err != nil {
		return "", err
	}
	n, err := notified.Get(ctx)
	if err != nil {
		return "", err
	}
	f, err := g.flaky.Run(ctx, c)
	if err != nil {
		return "", err
	}
	_, refused := g.refuse.Run(ctx, c)
	return strings.Join([]string{s, n, f, fmt.Sprint(refused != nil)}, " "), nil
}

// timers: a three-day sleep and two timers at once.
func (g *golden) timers() *durable.Workflow[string, string] {
	return durable.NewWorkflow("timers", func(ctx durable.Context, in string) (string, error) {
		start := durable.Now(ctx)
		if err := durable.Sleep(ctx, 72*time.Hour); err != nil {
			return "", err
		}
		a, b := durable.NewTimer(ctx, 20*time.Minute), durable.NewTimer(ctx, 10*time.Minute)
		if _, err := a.Get(ctx); err != nil {
			return "", err
		}
		if _, err := b.Get(ctx); err != nil {
			return "", err
		}
		return durable.Now(ctx).Sub(start).String(), nil
	})
}

// signals: a signal received, one that beats its deadline, one that does
// not come.
func (g *golden) signals() *durable.Workflow[string, string] {
	return durable.NewWorkflow("signals", func(ctx durable.Context, in string) (string, error) {
		first, err := g.approve.Receive(ctx)
		if err != nil {
			return "", err
		}
		second, _, err := g.approve.ReceiveWithTimeout(ctx, 24*time.Hour)
		if err != nil {
			return "", err
		}
		_, third, err := g.approve.ReceiveWithTimeout(ctx, time.Hour)
		if err != nil {
			return "", err
		}
		return fmt.Sprint(first, second, third), nil
	})
}

// patched ships before notifying since the "ship-first" patch.
func (g *golden) patched() *durable.Workflow[string, string] {
	return durable.NewWorkflow("patched", func(ctx durable.Context, in string) (string, error) {
		r, err := g.reserve.Run(ctx, in)
		if err != nil {
			return "", err
		}
		if durable.Patch(ctx, "ship-first") {
			return g.ship.Run(ctx, r)
		}
		return g.notify.Run(ctx, r)
	})
}

// patchedBefore is patched before the patch.
func (g *golden) patchedBefore() *durable.Workflow[string, string] {
	return durable.NewWorkflow("patched", func(ctx durable.Context, in string) (string, error) {
		r, err := g.reserve.Run(ctx, in)
		if err != nil {
			return "", err
		}
		return g.notify.Run(ctx, r)
	})
}

// sideEffectsFlow records a random number, a UUID and the time.
func (g *golden) sideEffectsFlow() *durable.Workflow[string, string] {
	return durable.NewWorkflow("side-effects", func(ctx durable.Context, in string) (string, error) {
		n, err := durable.SideEffect(ctx, func() int {
			g.sideEffects.Add(1)
			return rand.IntN(1000) //nolint:gosec // not for security
		})
		if err != nil {
			return "", err
		}
		id := durable.UUID(ctx)
		s, err := g.reserve.Run(ctx, fmt.Sprint(in, n, id))
		return s + " " + durable.Now(ctx).Format(time.RFC3339), err
	})
}

// failing fails with its activity's error.
func (g *golden) failing() *durable.Workflow[string, string] {
	return durable.NewWorkflow("failing", func(ctx durable.Context, in string) (string, error) {
		return g.refuse.Run(ctx, in)
	})
}

// panicking panics once its activity is done; under FailWorkflow the engine
// closes the run with a WorkflowFailed of its own.
func (g *golden) panicking() *durable.Workflow[string, string] {
	return durable.NewWorkflow("panicking", func(ctx durable.Context, in string) (string, error) {
		if _, err := g.reserve.Run(ctx, in); err != nil {
			return "", err
		}
		panic("unexpected state")
	})
}

// orderVariant is an older version of order: its first steps were first
// (instead of reserve then charge), the rest is the same.
func (g *golden) orderVariant(first func(ctx durable.Context, in string) (string, error)) *durable.Workflow[string, string] {
	return durable.NewWorkflow("order", func(ctx durable.Context, in string) (string, error) {
		c, err := first(ctx, in)
		if err != nil {
			return "", err
		}
		return g.orderTail(ctx, c)
	})
}

// goldenCase is one golden history: the code that records it and how the
// test drives the run. run returns the run ID to export.
type goldenCase struct {
	file string
	code func(g *golden) []durable.Definition
	run  func(t *testing.T, env *durabletest.Env, g *golden) string
}

// runToEnd runs wf on input "o-1" and returns its run ID, whatever its
// outcome.
func runToEnd(wf *durable.Workflow[string, string]) func(t *testing.T, env *durabletest.Env, g *golden) string {
	return func(t *testing.T, env *durabletest.Env, g *golden) string {
		h := durabletest.Start(t, env, wf, "o-1", &durable.StartOptions{ID: wf.Name() + "-1"})
		_, _ = durabletest.Result(t, env, h)
		return h.RunID()
	}
}

func goldenCases() []goldenCase {
	withActs := func(wfs ...func(g *golden) durable.Definition) func(g *golden) []durable.Definition {
		return func(g *golden) []durable.Definition {
			defs := g.activities()
			for _, wf := range wfs {
				defs = append(defs, wf(g))
			}
			return defs
		}
	}
	g0 := newGolden(nil, true) // workflow names only
	return []goldenCase{
		{"order.json", withActs(func(g *golden) durable.Definition { return g.order() }), runToEnd(g0.order())},
		{"timers.json", withActs(func(g *golden) durable.Definition { return g.timers() }), runToEnd(g0.timers())},
		{"signals.json", withActs(func(g *golden) durable.Definition { return g.signals() }),
			func(t *testing.T, env *durabletest.Env, g *golden) string {
				h := durabletest.Start(t, env, g.signals(), "", &durable.StartOptions{ID: "signals-1"})
				durabletest.SendSignal(t, env, g.approve, "signals-1", "first")
				env.WaitIdle(t)
				env.Advance(t, 2*time.Hour)
				durabletest.SendSignal(t, env, g.approve, "signals-1", "second")
				_, err := durabletest.Result(t, env, h)
				require.NoError(t, err)
				return h.RunID()
			}},
		{"patch_before.json", withActs(func(g *golden) durable.Definition { return g.patchedBefore() }), runToEnd(g0.patched())},
		{"patch_after.json", withActs(func(g *golden) durable.Definition { return g.patched() }), runToEnd(g0.patched())},
		{"side_effects.json", withActs(func(g *golden) durable.Definition { return g.sideEffectsFlow() }), runToEnd(g0.sideEffectsFlow())},
		{"failed.json", withActs(func(g *golden) durable.Definition { return g.failing() }), runToEnd(g0.failing())},
		{"panicked.json", withActs(func(g *golden) durable.Definition { return g.panicking() }), runToEnd(g0.panicking())},
		{"terminated.json", withActs(func(g *golden) durable.Definition { return g.timers() }),
			func(t *testing.T, env *durabletest.Env, g *golden) string {
				h := durabletest.Start(t, env, g.timers(), "", &durable.StartOptions{ID: "timers-terminated"})
				env.WaitIdle(t)
				require.NoError(t, env.Engine.Terminate(t.Context(), "timers-terminated", "no longer needed"))
				return h.RunID()
			}},

		// Histories of older code that the current code must refuse.
		{"bad/activity_renamed.json", withActs(func(g *golden) durable.Definition {
			return g.orderVariant(func(ctx durable.Context, in string) (string, error) {
				r, err := g.reserve.Run(ctx, in)
				if err != nil {
					return "", err
				}
				return g.chargeCard.Run(ctx, r)
			})
		}), runToEnd(g0.order())},
		{"bad/order_swapped.json", withActs(func(g *golden) durable.Definition {
			return g.orderVariant(func(ctx durable.Context, in string) (string, error) {
				c, err := g.charge.Run(ctx, in)
				if err != nil {
					return "", err
				}
				return g.reserve.Run(ctx, c)
			})
		}), runToEnd(g0.order())},
		{"bad/timer_removed.json", withActs(func(g *golden) durable.Definition {
			return g.orderVariant(func(ctx durable.Context, in string) (string, error) {
				r, err := g.reserve.Run(ctx, in)
				if err != nil {
					return "", err
				}
				if err := durable.Sleep(ctx, time.Hour); err != nil {
					return "", err
				}
				return g.charge.Run(ctx, r)
			})
		}), runToEnd(g0.order())},
		// An older order that waited for a signal after reserving: the
		// current code schedules the charge where history has nothing.
		{"bad/activity_added.json", withActs(func(g *golden) durable.Definition {
			return g.orderVariant(func(ctx durable.Context, in string) (string, error) {
				r, err := g.reserve.Run(ctx, in)
				if err != nil {
					return "", err
				}
				_, err = durable.NewSignal[string]("go").Receive(ctx)
				return r, err
			})
		}), func(t *testing.T, env *durabletest.Env, g *golden) string {
			h := durabletest.Start(t, env, g.order(), "o-1", &durable.StartOptions{ID: "order-1"})
			env.WaitIdle(t)
			return h.RunID()
		}},
	}
}

// TestGoldenHistoriesUpdate regenerates testdata/replay with -update, by
// running each case's code on a real engine.
func TestGoldenHistoriesUpdate(t *testing.T) {
	t.Parallel()
	if !*update {
		t.Skip("run with -update to regenerate the golden histories")
	}
	for _, c := range goldenCases() {
		t.Run(c.file, func(t *testing.T) {
			t.Parallel()
			g := newGolden(t, true)
			env := durabletest.NewEnv(t, nil)
			env.Register(t, c.code(g)...)
			runID := c.run(t, env, g)
			path := filepath.Join("testdata", "replay", c.file)
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
			env.ExportHistory(t, runID, path)
		})
	}
}

func TestGoldenHistoriesReplay(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "replay", "*.json"))
	require.NoError(t, err)
	require.Len(t, files, 9, "one golden history per case")

	g := newGolden(t, false)
	r, err := durable.NewReplayer(g.current()...)
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, f := range files {
		require.NoError(t, r.ReplayFile(f))
		h := readHistory(t, f)
		for _, ev := range h.Events {
			seen[ev.Type] = true
		}
	}
	require.Zero(t, g.sideEffects.Load(), "a replay returns recorded side effects without running them")
	// The goldens cover every kind of event the engine records today.
	for _, typ := range []string{
		durable.EventActivityScheduled, durable.EventActivityCompleted, durable.EventActivityFailed,
		durable.EventTimerStarted, durable.EventTimerFired, durable.EventTimerCanceled,
		durable.EventSignalReceived, durable.EventMarkerRecorded, durable.EventWorkflowCompleted,
		durable.EventWorkflowFailed, durable.EventWorkflowTerminated,
	} {
		require.True(t, seen[typ], "no golden history holds a %s event", typ)
	}
	patches := readHistory(t, filepath.Join("testdata", "replay", "patch_after.json")).Markers("Patch:ship-first")
	require.Len(t, patches, 1, "patch_after.json recorded the patch marker")
}

func readHistory(t *testing.T, path string) *durabletest.History {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var raw durable.History
	require.NoError(t, json.Unmarshal(b, &raw))
	h, err := durabletest.NewHistory(&raw)
	require.NoError(t, err)
	return h
}

func TestGoldenHistoriesOfChangedCodeFail(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file               string
		eventID            int64
		eventType          string
		recorded, produced string // prefixes of the two commands
		recordedNothing    bool
	}{
		{file: "activity_renamed.json", eventID: 4, eventType: durable.EventActivityScheduled,
			recorded: "ActivityScheduled(charge-card, input sha256:", produced: "ActivityScheduled(charge, input sha256:"},
		{file: "order_swapped.json", eventID: 2, eventType: durable.EventActivityScheduled,
			recorded: "ActivityScheduled(charge, input sha256:", produced: "ActivityScheduled(reserve, input sha256:"},
		{file: "timer_removed.json", eventID: 4, eventType: durable.EventTimerStarted,
			recorded: "TimerStarted", produced: "ActivityScheduled(charge, input sha256:"},
		{file: "activity_added.json", eventID: 3, eventType: durable.EventActivityCompleted,
			recordedNothing: true, produced: "ActivityScheduled(charge, input sha256:"},
	}
	g := newGolden(t, false)
	r, err := durable.NewReplayer(g.current()...)
	require.NoError(t, err)
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			t.Parallel()
			err := r.ReplayFile(filepath.Join("testdata", "replay", "bad", c.file))
			require.ErrorIs(t, err, durable.ErrNonDeterminism)
			var re *durable.ReplayError
			require.ErrorAs(t, err, &re)
			require.Equal(t, "order", re.WorkflowType)
			require.Equal(t, c.eventID, re.EventID, "event of %v", err)
			require.Equal(t, c.eventType, re.EventType)
			var nd *durable.NonDeterminismError
			require.ErrorAs(t, err, &nd)
			if c.recordedNothing {
				require.Empty(t, nd.Expected)
				require.Contains(t, err.Error(), "history has nothing")
			} else {
				require.True(t, strings.HasPrefix(nd.Expected, c.recorded), "recorded %q", nd.Expected)
			}
			require.True(t, strings.HasPrefix(nd.Actual, c.produced), "produced %q", nd.Actual)
			msg := err.Error()
			require.Contains(t, msg, fmt.Sprintf("event %d (%s)", c.eventID, c.eventType))
			require.Contains(t, msg, c.produced)
			require.Contains(t, msg, c.recorded)
		})
	}
}

func TestReplayFailures(t *testing.T) {
	t.Parallel()
	order, err := os.ReadFile(filepath.Join("testdata", "replay", "order.json"))
	require.NoError(t, err)

	t.Run("UnknownWorkflow", func(t *testing.T) {
		t.Parallel()
		g := newGolden(t, false)
		r, err := durable.NewReplayer(g.timers())
		require.NoError(t, err)
		err = r.ReplayJSON(order)
		require.ErrorIs(t, err, durable.ErrUnknownWorkflow)
		var re *durable.ReplayError
		require.ErrorAs(t, err, &re)
		require.Equal(t, "order", re.WorkflowType)
		require.Zero(t, re.EventID)
	})

	t.Run("InvalidHistory", func(t *testing.T) {
		t.Parallel()
		r, err := durable.NewReplayer(newGolden(t, false).current()...)
		require.NoError(t, err)
		for name, data := range map[string]string{
			"not JSON":      `{"run": `,
			"no events":     `{"run": {}, "events": []}`,
			"IDs not 1,2,3": `{"events": [{"id": 1, "type": "WorkflowStarted", "data": {"name": "order"}}, {"id": 3, "type": "TimerFired", "data": {}}]}`,
			"no start":      `{"events": [{"id": 1, "type": "TimerFired", "data": {}}]}`,
			"bad data":      `{"events": [{"id": 1, "type": "WorkflowStarted", "data": "order"}]}`,
		} {
			require.ErrorIs(t, r.ReplayJSON([]byte(data)), durable.ErrInvalidHistory, name)
		}
		require.ErrorIs(t, r.Replay(nil), durable.ErrInvalidHistory)
		err = r.ReplayFile(filepath.Join(t.TempDir(), "missing.json"))
		require.ErrorIs(t, err, os.ErrNotExist)
	})

	t.Run("PanicInWorkflowCode", func(t *testing.T) {
		t.Parallel()
		g := newGolden(t, false)
		broken := durable.NewWorkflow("order", func(ctx durable.Context, in string) (string, error) {
			if _, err := g.reserve.Run(ctx, in); err != nil {
				return "", err
			}
			var m map[string]int
			m["boom"]++ // nil map: the code panics once reserve's result is in
			return "", nil
		})
		r, err := durable.NewReplayer(append(g.activities(), broken)...)
		require.NoError(t, err)
		err = r.ReplayJSON(order)
		var pe *durable.PanicError
		require.ErrorAs(t, err, &pe)
		require.Contains(t, pe.Value, "nil map")
		var re *durable.ReplayError
		require.ErrorAs(t, err, &re)
		require.Equal(t, int64(3), re.EventID, "the ActivityCompleted being applied")
		require.Equal(t, durable.EventActivityCompleted, re.EventType)
	})

	t.Run("StartOnlyRunsNoCode", func(t *testing.T) {
		t.Parallel()
		g := newGolden(t, false)
		ran := false
		wf := durable.NewWorkflow("order", func(ctx durable.Context, in string) (string, error) {
			ran = true
			return g.reserve.Run(ctx, in)
		})
		r, err := durable.NewReplayer(wf)
		require.NoError(t, err)
		require.NoError(t, r.ReplayJSON([]byte(`{"events": [{"id": 1, "type": "WorkflowStarted", "data": {"name": "order", "input": "x"}}]}`)))
		require.False(t, ran, "nothing is recorded to compare with")
	})

	t.Run("DuplicateDefinition", func(t *testing.T) {
		t.Parallel()
		g := newGolden(t, false)
		_, err := durable.NewReplayer(g.order(), g.order())
		require.ErrorIs(t, err, durable.ErrAlreadyRegistered)
	})
}

func TestReplayRunning(t *testing.T) {
	t.Parallel()
	g := newGolden(t, true)
	env := durabletest.NewEnv(t, nil)
	env.Register(t, g.current()...)
	// More running runs than one page of ListRuns, each asleep.
	const n = 103
	for i := range n {
		durabletest.Start(t, env, g.timers(), "", &durable.StartOptions{ID: fmt.Sprintf("sleeper-%d", i)})
	}
	closed, err := durabletest.Run(t, env, g.patched(), "o-1", nil)
	require.NoError(t, err)
	require.NotEmpty(t, closed)
	env.WaitIdle(t)

	r, err := durable.NewReplayer(newGolden(t, false).current()...)
	require.NoError(t, err)
	res, err := r.ReplayRunning(t.Context(), env.Engine)
	require.NoError(t, err)
	require.Len(t, res, n, "every running run, and only those")
	ids := map[string]bool{}
	for _, rr := range res {
		require.NoError(t, rr.Err, rr.WorkflowID)
		require.Equal(t, "timers", rr.WorkflowType)
		require.Equal(t, 2, rr.Events)
		ids[rr.WorkflowID] = true
	}
	require.Len(t, ids, n)

	// A deploy that puts an activity before the sleep breaks them all.
	g2 := newGolden(t, false)
	changed := durable.NewWorkflow("timers", func(ctx durable.Context, in string) (string, error) {
		if _, err := g2.reserve.Run(ctx, in); err != nil {
			return "", err
		}
		return "", durable.Sleep(ctx, 72*time.Hour)
	})
	r2, err := durable.NewReplayer(append(g2.activities(), changed)...)
	require.NoError(t, err)
	res, err = r2.ReplayRunning(t.Context(), env.Engine)
	require.NoError(t, err)
	require.Len(t, res, n)
	for _, rr := range res {
		var re *durable.ReplayError
		require.ErrorAs(t, rr.Err, &re)
		require.ErrorIs(t, rr.Err, durable.ErrNonDeterminism)
		require.Equal(t, int64(2), re.EventID)
		require.Equal(t, durable.EventTimerStarted, re.EventType)
	}
}
