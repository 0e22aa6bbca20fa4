package durabletest_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/durabletest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSleepForDaysSkipsTime(t *testing.T) {
	t.Parallel()
	env := durabletest.NewEnv(t, nil)
	type result struct{ Started, Woke time.Time }
	nap := durable.NewWorkflow("nap", func(ctx durable.Context, d time.Duration) (result, error) {
		start := durable.Now(ctx)
		if err := durable.Sleep(ctx, d); err != nil {
			return result{}, err
		}
		return result{Started: start, Woke: durable.Now(ctx)}, nil
	})
	env.Register(t, nap)

	out, err := durabletest.Run(t, env, nap, 72*time.Hour, nil)
	require.NoError(t, err)
	require.Equal(t, durabletest.DefaultStart, out.Started.UTC())
	require.Equal(t, 72*time.Hour, out.Woke.Sub(out.Started), "workflow time moved by the sleep")
	require.Equal(t, durabletest.DefaultStart.Add(72*time.Hour), env.Clock.Now())
}

func TestTimersFireInOrderAtTheirOwnTime(t *testing.T) {
	t.Parallel()
	env := durabletest.NewEnv(t, nil)
	tick := durable.NewWorkflow("tick", func(ctx durable.Context, n int) ([]time.Duration, error) {
		start := durable.Now(ctx)
		var at []time.Duration
		for i := range n {
			if err := durable.Sleep(ctx, time.Duration(i+1)*time.Hour); err != nil {
				return nil, err
			}
			at = append(at, durable.Now(ctx).Sub(start))
		}
		return at, nil
	})
	env.Register(t, tick)
	out, err := durabletest.Run(t, env, tick, 4, nil)
	require.NoError(t, err)
	require.Equal(t, []time.Duration{time.Hour, 3 * time.Hour, 6 * time.Hour, 10 * time.Hour}, out)
}

func TestApprovalDeadline(t *testing.T) {
	t.Parallel()
	decision := durable.NewSignal[string]("decision")
	approval := durable.NewWorkflow("approval", func(ctx durable.Context, memo string) (string, error) {
		v, ok, err := decision.ReceiveWithTimeout(ctx, 24*time.Hour)
		if err != nil {
			return "", err
		}
		if !ok {
			return "escalated after " + durable.Now(ctx).Sub(durabletest.DefaultStart).String(), nil
		}
		return v, nil
	})

	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		env := durabletest.NewEnv(t, nil)
		env.Register(t, approval)
		out, err := durabletest.Run(t, env, approval, "memo", nil)
		require.NoError(t, err)
		require.Equal(t, "escalated after 24h0m0s", out)
	})

	t.Run("DecidedBeforeDeadline", func(t *testing.T) {
		t.Parallel()
		env := durabletest.NewEnv(t, nil)
		env.Register(t, approval)
		h := durabletest.Start(t, env, approval, "memo", &durable.StartOptions{ID: "memo-1"})
		env.WaitIdle(t)
		env.Advance(t, 2*time.Hour)
		durabletest.SendSignal(t, env, decision, "memo-1", "approved")
		out, err := durabletest.Result(t, env, h)
		require.NoError(t, err)
		require.Equal(t, "approved", out)
		require.Equal(t, durabletest.DefaultStart.Add(2*time.Hour), env.Clock.Now(), "the deadline did not pass")

		hist := env.History(t, h.RunID())
		durabletest.AssertEventTypes(t, hist,
			durable.EventWorkflowStarted, durable.EventTimerStarted,
			durable.EventSignalReceived, durable.EventTimerCanceled, durable.EventWorkflowCompleted)
		require.Len(t, hist.Signals("decision"), 1)
		require.JSONEq(t, `"approved"`, string(hist.Signals("decision")[0].Input))
	})
}

func TestAdvanceFiresEachTimerAtItsTime(t *testing.T) {
	t.Parallel()
	env := durabletest.NewEnv(t, &durabletest.EnvOptions{DisableTimeSkipping: true})
	hourly := durable.NewWorkflow("hourly", func(ctx durable.Context, n int) (int, error) {
		for i := range n {
			if err := durable.Sleep(ctx, time.Hour); err != nil {
				return i, err
			}
		}
		return n, nil
	})
	env.Register(t, hourly)
	h := durabletest.Start(t, env, hourly, 5, nil)
	env.WaitIdle(t)
	env.Advance(t, 3*time.Hour)
	hist := env.History(t, h.RunID())
	require.Len(t, hist.Find(durable.EventTimerFired, ""), 3, "three hourly timers fell in three hours: %s", hist)
	env.Advance(t, 2*time.Hour)
	out, err := durabletest.Result(t, env, h)
	require.NoError(t, err)
	require.Equal(t, 5, out)
}

func TestStubActivity(t *testing.T) {
	t.Parallel()
	env := durabletest.NewEnv(t, nil)
	charge := durable.NewActivity("charge", func(ctx context.Context, cents int) (string, error) {
		return "", errors.New("the real charge must not run in this test")
	}, &durable.ActivityOptions{RetryPolicy: durable.RetryPolicy{InitialInterval: time.Minute, MaximumAttempts: 5}})
	checkout := durable.NewWorkflow("checkout", func(ctx durable.Context, cents int) (string, error) {
		return charge.Run(ctx, cents)
	})
	// The stub fails twice, then succeeds: the retry backoff (1 and 2
	// minutes of engine time) is skipped.
	stub := durabletest.StubActivity(t, env, charge, func(ctx context.Context, cents int) (string, error) {
		info, _ := durable.GetActivityInfo(ctx)
		if info.Attempt < 3 {
			return "", errors.New("card network busy")
		}
		return "ch_test_" + info.IdempotencyKey[len(info.IdempotencyKey)-1:], nil
	})
	env.Register(t, charge, checkout)

	out, err := durabletest.Run(t, env, checkout, 1299, nil)
	require.NoError(t, err)
	require.Equal(t, "ch_test_1", out)
	require.Equal(t, 3, stub.Calls())
	require.Equal(t, durabletest.DefaultStart.Add(3*time.Minute), env.Clock.Now(), "two backoffs were skipped")
}

func TestStubAfterRegisterFails(t *testing.T) {
	t.Parallel()
	env := durabletest.NewEnv(t, nil)
	act := durable.NewActivity("a", func(ctx context.Context, in int) (int, error) { return in, nil }, nil)
	env.Register(t, act)
	ft := &fakeT{TB: t}
	func() {
		defer func() { _ = recover() }()
		durabletest.StubActivity(ft, env, act, func(ctx context.Context, in int) (int, error) { return 0, nil })
	}()
	require.Contains(t, ft.fatal, "stub it before Register")
}

// fakeT records a Fatalf instead of ending the test.
type fakeT struct {
	testing.TB
	fatal string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	panic("fatal")
}

func TestPanicFailsTheRunByDefault(t *testing.T) {
	t.Parallel()
	env := durabletest.NewEnv(t, nil)
	boom := durable.NewWorkflow("boom", func(ctx durable.Context, _ int) (int, error) {
		panic("bad input")
	})
	env.Register(t, boom)
	_, err := durabletest.Run(t, env, boom, 1, nil)
	var ae *durable.ApplicationError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "durable.Panic", ae.Type)
	require.Contains(t, ae.Message, "bad input")
}

func TestHistoryHelpers(t *testing.T) {
	t.Parallel()
	env := durabletest.NewEnv(t, nil)
	double := durable.NewActivity("double", func(ctx context.Context, n int) (int, error) { return 2 * n, nil }, nil)
	flow := durable.NewWorkflow("flow", func(ctx durable.Context, n int) (int, error) {
		if durable.Patch(ctx, "double-twice") {
			n, _ = double.Run(ctx, n)
		}
		_ = durable.UUID(ctx)
		return double.Run(ctx, n)
	})
	env.Register(t, double, flow)
	h := durabletest.Start(t, env, flow, 5, nil)
	out, err := durabletest.Result(t, env, h)
	require.NoError(t, err)
	require.Equal(t, 20, out)

	hist := env.History(t, h.RunID())
	durabletest.AssertEventTypes(t, hist,
		durable.EventWorkflowStarted, durable.EventMarkerRecorded, durable.EventActivityScheduled,
		durable.EventActivityCompleted, durable.EventMarkerRecorded, durable.EventActivityScheduled,
		durable.EventActivityCompleted, durable.EventWorkflowCompleted)
	durabletest.AssertActivityCalled(t, hist, "double", 2)
	require.Len(t, hist.Markers("Patch:double-twice"), 1)
	require.Len(t, hist.Markers("SideEffect"), 1)
	second := hist.Activities("double")[1]
	require.JSONEq(t, `10`, string(second.Input))
	res, ok := hist.Outcome(second.Seq)
	require.True(t, ok)
	require.Equal(t, durable.EventActivityCompleted, res.Type)
	require.JSONEq(t, `20`, string(res.Result))

	// The assertions report a mismatch.
	rec := &recordingT{TB: t}
	durabletest.AssertActivityCalled(rec, hist, "double", 3)
	durabletest.AssertEventTypes(rec, hist, durable.EventWorkflowStarted)
	require.Len(t, rec.errors, 2)
	require.Contains(t, rec.errors[0], `activity "double" scheduled 2 time(s), want 3`)
	require.Contains(t, rec.errors[1], "want WorkflowStarted")
}

// recordingT records Errorf calls instead of failing the test.
type recordingT struct {
	testing.TB
	errors []string
}

func (r *recordingT) Helper() {}
func (r *recordingT) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestExportAndReplayFile(t *testing.T) {
	t.Parallel()
	env := durabletest.NewEnv(t, nil)
	step := func(name string) *durable.Activity[int, int] {
		return durable.NewActivity(name, func(ctx context.Context, n int) (int, error) { return n + 1, nil }, nil)
	}
	a, b := step("a"), step("b")
	flow := durable.NewWorkflow("flow", func(ctx durable.Context, n int) (int, error) {
		n, err := a.Run(ctx, n)
		if err != nil {
			return 0, err
		}
		return b.Run(ctx, n)
	})
	env.Register(t, a, b, flow)
	h := durabletest.Start(t, env, flow, 1, nil)
	_, err := durabletest.Result(t, env, h)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "flow.json")
	env.ExportHistory(t, h.RunID(), path)

	durabletest.ReplayFile(t, path, a, b, flow)

	swapped := durable.NewWorkflow("flow", func(ctx durable.Context, n int) (int, error) {
		n, err := b.Run(ctx, n)
		if err != nil {
			return 0, err
		}
		return a.Run(ctx, n)
	})
	rec := &recordingT{TB: t}
	durabletest.ReplayFile(rec, path, a, b, swapped)
	require.Len(t, rec.errors, 1)
	require.Contains(t, rec.errors[0], "event 2 (ActivityScheduled)")
	require.Contains(t, rec.errors[0], "history has ActivityScheduled(a, input sha256:")
	require.Contains(t, rec.errors[0], "code issued ActivityScheduled(b, input sha256:")
}
