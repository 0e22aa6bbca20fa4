package reliability_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/internal/testdb"
)

// nestedJSON returns depth nested JSON arrays: [[[…]]].
func nestedJSON(depth int) []byte {
	return []byte(strings.Repeat("[", depth) + strings.Repeat("]", depth))
}

// jsonDepth returns the nesting depth of a decoded JSON value.
func jsonDepth(v any) int {
	d := 0
	for {
		a, ok := v.([]any)
		if !ok || len(a) == 0 {
			if ok {
				d++
			}
			return d
		}
		d++
		v = a[0]
	}
}

// poison is the code a poison test runs on one worker.
type poison struct {
	released atomic.Bool // lets blocked workflow code return

	canaryStep     *durable.Activity[int, int]
	canary         *durable.Workflow[int, int]
	typedSignal    *durable.Workflow[string, int]
	countSignal    durable.Signal[int]
	decodeAct      *durable.Activity[int, int]    // registered: takes an int
	decodeActWrong *durable.Activity[string, int] // what the workflow schedules: a string
	badInput       *durable.Workflow[string, int]
	depth          *durable.Workflow[any, int]
	nestedResult   *durable.Activity[int, json.RawMessage]
	nestedFlow     *durable.Workflow[string, string]
	panicFlow      *durable.Workflow[string, string]
	panicAct       *durable.Activity[string, string]
	panicActFlow   *durable.Workflow[string, string]
	blockFlow      *durable.Workflow[string, string]
	hugeFlow       *durable.Workflow[string, string]
}

func newPoison() *poison {
	p := &poison{countSignal: durable.NewSignal[int]("count")}
	once := &durable.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         durable.RetryPolicy{InitialInterval: 10 * time.Millisecond, MaximumAttempts: 2},
	}
	p.canaryStep = durable.NewActivity("canary-step", func(ctx context.Context, n int) (int, error) { return n + 1, nil }, once)
	p.canary = durable.NewWorkflow("canary", func(ctx durable.Context, n int) (int, error) {
		n, err := p.canaryStep.Run(ctx, n)
		if err != nil {
			return 0, err
		}
		if err := durable.Sleep(ctx, 5*time.Millisecond); err != nil {
			return 0, err
		}
		return p.canaryStep.Run(ctx, n)
	})
	p.typedSignal = durable.NewWorkflow("typed-signal", func(ctx durable.Context, _ string) (int, error) {
		return p.countSignal.Receive(ctx)
	})
	p.decodeAct = durable.NewActivity("decode-me", func(ctx context.Context, n int) (int, error) { return n, nil }, once)
	p.decodeActWrong = durable.NewActivity("decode-me", func(ctx context.Context, s string) (int, error) {
		return 0, errors.New("never registered: never runs")
	}, once)
	p.badInput = durable.NewWorkflow("bad-activity-input", func(ctx durable.Context, _ string) (int, error) {
		return p.decodeActWrong.Run(ctx, "not an int")
	})
	p.depth = durable.NewWorkflow("depth", func(ctx durable.Context, v any) (int, error) {
		return jsonDepth(v), nil
	})
	p.nestedResult = durable.NewActivity("nested-result", func(ctx context.Context, depth int) (json.RawMessage, error) {
		return nestedJSON(depth), nil
	}, once)
	p.nestedFlow = durable.NewWorkflow("nested-result", func(ctx durable.Context, _ string) (string, error) {
		_, err := p.nestedResult.Run(ctx, 100_000)
		return "unreachable", err
	})
	p.panicFlow = durable.NewWorkflow("panicking", func(ctx durable.Context, _ string) (string, error) {
		panic("poison: workflow panic")
	})
	p.panicAct = durable.NewActivity("panicking", func(ctx context.Context, _ string) (string, error) {
		panic("poison: activity panic")
	}, once)
	p.panicActFlow = durable.NewWorkflow("panicking-activity", func(ctx durable.Context, in string) (string, error) {
		return p.panicAct.Run(ctx, in)
	})
	p.blockFlow = durable.NewWorkflow("blocking", func(ctx durable.Context, _ string) (string, error) {
		for !p.released.Load() {
			time.Sleep(10 * time.Millisecond) // never do this in workflow code
		}
		return "released", nil
	})
	p.hugeFlow = durable.NewWorkflow("huge-result", func(ctx durable.Context, _ string) (string, error) {
		return strings.Repeat("x", 100<<20), nil
	})
	return p
}

func (p *poison) defs() []durable.Definition {
	return []durable.Definition{p.canaryStep, p.canary, p.typedSignal, p.decodeAct, p.badInput, p.depth,
		p.nestedResult, p.nestedFlow, p.panicFlow, p.panicAct, p.panicActFlow, p.blockFlow, p.hugeFlow}
}

// TestPoison sends each kind of poison to a worker, on both stores and
// under both panic policies: undecodable payloads, deeply nested JSON,
// panicking workflow and activity code, workflow code that blocks outside
// the engine, and a 100 MB result. Each fails its own run (or, for code
// faults under BlockWorkflow, blocks it, waiting for fixed code), and after
// each a canary run completes on the same worker, which never stops.
func TestPoison(t *testing.T) {
	t.Parallel()
	stores := []struct {
		name string
		open func(t *testing.T) store.Store
	}{
		{"sqlite", func(t *testing.T) store.Store {
			st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "keel.db"), nil)
			require.NoError(t, err)
			return st
		}},
		{"postgres", func(t *testing.T) store.Store {
			st, err := pgstore.New(t.Context(), testdb.Postgres(t), nil)
			require.NoError(t, err)
			return st
		}},
	}
	policies := []struct {
		name   string
		policy durable.PanicPolicy
	}{{"block", durable.BlockWorkflow}, {"fail", durable.FailWorkflow}}
	for _, s := range stores {
		for _, pol := range policies {
			t.Run(s.name+"/"+pol.name, func(t *testing.T) {
				t.Parallel()
				runPoison(t, s.open(t), pol.policy)
			})
		}
	}
}

func runPoison(t *testing.T, st store.Store, policy durable.PanicPolicy) {
	p := newPoison()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	// Two engines on the store: the main one, whose deadlock timeout is
	// long enough for the 100 MB result to be encoded within it even under
	// the race detector (encoding runs in the workflow's task), and one
	// with a short timeout for the workflow that blocks.
	newEngine := func(queue string, deadlock time.Duration) *durable.Engine {
		e, err := durable.New(st, &durable.Config{
			Logger:          quietLogger(),
			PanicPolicy:     policy,
			PollInterval:    50 * time.Millisecond,
			DeadlockTimeout: deadlock,
		})
		require.NoError(t, err)
		e.MustRegister(p.defs()...)
		e.NewWorker(&durable.WorkerOptions{TaskQueue: queue})
		require.NoError(t, e.Start(ctx))
		t.Cleanup(func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, e.Stop(stopCtx))
		})
		return e
	}
	e := newEngine("default", time.Minute)
	blocker := newEngine("blocking", 200*time.Millisecond)
	t.Cleanup(func() { p.released.Store(true) }) // before the engines stop

	canaries := 0
	canaryOn := func(e *durable.Engine, queue, after string) {
		t.Helper()
		canaries++
		out, err := p.canary.Run(ctx, e, canaries*10, &durable.StartOptions{ID: fmt.Sprintf("canary-%d", canaries), TaskQueue: queue})
		require.NoError(t, err, "the canary after %s", after)
		require.Equal(t, canaries*10+2, out, "the canary after %s", after)
		select {
		case <-e.Stopped():
			t.Fatalf("the engine stopped after %s", after)
		default:
		}
	}
	canary := func(after string) {
		t.Helper()
		canaryOn(e, "default", after)
	}
	// failed checks that the run of id failed with an error saying want.
	failed := func(id, want string) {
		t.Helper()
		info, err := e.Describe(ctx, id)
		require.NoError(t, err)
		_, err = e.Result(ctx, info.RunID)
		require.Error(t, err, "run %s", id)
		require.Contains(t, err.Error(), want, "run %s", id)
		info, err = e.Describe(ctx, id)
		require.NoError(t, err)
		require.Equal(t, durable.StatusFailed, info.Status, "run %s", id)
	}
	// codeFault checks a run whose workflow code panicked or blocked:
	// blocked with the fault as its last task failure, or failed, by the
	// panic policy.
	codeFault := func(id, want string) {
		t.Helper()
		if policy == durable.FailWorkflow {
			failed(id, want)
			return
		}
		var info durable.RunInfo
		require.Eventually(t, func() bool {
			var err error
			info, err = e.Describe(ctx, id)
			require.NoError(t, err)
			return info.LastTaskFailure != ""
		}, time.Minute, 10*time.Millisecond, "the fault of %s is reported", id)
		require.Contains(t, info.LastTaskFailure, want)
		require.Equal(t, durable.StatusRunning, info.Status, "run %s waits for fixed code", id)
		require.NoError(t, e.Terminate(ctx, id, "poison test"))
	}
	canary("the start")

	// A signal whose payload does not decode into the workflow's type.
	_, err := p.typedSignal.Start(ctx, e, "", &durable.StartOptions{ID: "typed-signal"})
	require.NoError(t, err)
	require.NoError(t, e.Signal(ctx, "typed-signal", "count", json.RawMessage(`"not a number"`), nil))
	failed("typed-signal", "decode")
	canary("an undecodable signal")

	// An activity input that does not decode into the activity's type.
	_, err = p.badInput.Start(ctx, e, "", &durable.StartOptions{ID: "bad-activity-input"})
	require.NoError(t, err)
	failed("bad-activity-input", "decode")
	canary("an undecodable activity input")

	// JSON nested 100,000 levels deep, as a workflow input and as a
	// signal: refused before anything is written.
	_, err = e.StartWorkflow(ctx, "depth", nestedJSON(100_000), &durable.StartOptions{ID: "deep-input"})
	require.Error(t, err, "a 100,000-level input")
	_, err = e.Describe(ctx, "deep-input")
	require.ErrorIs(t, err, durable.ErrRunNotFound, "no run was started")
	_, err = p.typedSignal.Start(ctx, e, "", &durable.StartOptions{ID: "deep-signal"})
	require.NoError(t, err)
	require.Error(t, e.Signal(ctx, "deep-signal", "count", nestedJSON(100_000), nil), "a 100,000-level signal")
	require.NoError(t, p.countSignal.Send(ctx, e, "deep-signal", 7))
	info, err := e.Describe(ctx, "deep-signal")
	require.NoError(t, err)
	got, err := e.Result(ctx, info.RunID)
	require.NoError(t, err)
	require.JSONEq(t, "7", string(got), "the run got the next signal, not the refused one")
	// Nested as deep as Go's JSON decoder goes, it is a payload like any.
	got, err = func() (json.RawMessage, error) {
		info, err := e.StartWorkflow(ctx, "depth", nestedJSON(9_000), &durable.StartOptions{ID: "deep-9000"})
		if err != nil {
			return nil, err
		}
		return e.Result(ctx, info.RunID)
	}()
	require.NoError(t, err)
	require.JSONEq(t, "9000", string(got))
	// An activity result nested 100,000 levels deep.
	_, err = p.nestedFlow.Start(ctx, e, "", &durable.StartOptions{ID: "deep-result"})
	require.NoError(t, err)
	failed("deep-result", "depth")
	canary("deeply nested JSON")

	// Panicking workflow code.
	_, err = p.panicFlow.Start(ctx, e, "", &durable.StartOptions{ID: "panicking"})
	require.NoError(t, err)
	codeFault("panicking", "poison: workflow panic")
	canary("a panicking workflow")

	// A panicking activity: its attempts fail, then the run.
	_, err = p.panicActFlow.Start(ctx, e, "", &durable.StartOptions{ID: "panicking-activity"})
	require.NoError(t, err)
	failed("panicking-activity", "poison: activity panic")
	canary("a panicking activity")

	// Workflow code blocked in time.Sleep: a DeadlockError.
	_, err = p.blockFlow.Start(ctx, blocker, "", &durable.StartOptions{ID: "blocking", TaskQueue: "blocking"})
	require.NoError(t, err)
	codeFault("blocking", "did not yield")
	canaryOn(blocker, "blocking", "a blocked workflow")

	// A 100 MB result.
	_, err = p.hugeFlow.Start(ctx, e, "", &durable.StartOptions{ID: "huge-result"})
	require.NoError(t, err)
	failed("huge-result", "payload too large")
	info, err = e.Describe(ctx, "huge-result")
	require.NoError(t, err)
	require.Less(t, info.HistoryBytes, int64(1<<20), "nothing large was written")
	canary("a 100 MB result")
}
