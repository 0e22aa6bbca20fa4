package durable_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/durabletest"
)

func sleeperWorkflow(ctx durable.Context, d time.Duration) (time.Time, error) {
	if err := durable.Sleep(ctx, d); err != nil {
		return time.Time{}, err
	}
	return durable.Now(ctx), nil
}

func TestSleepThreeDaysUnderFakeClock(t *testing.T) {
	t.Parallel()
	forEachStoreSerial(t, func(t *testing.T, db opener) {
		start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
		clock := durabletest.NewClock(start)
		sleeper := durable.NewWorkflow("sleeper", sleeperWorkflow)
		b := setup(t, setupOpts{
			db:   db,
			cfg:  &durable.Config{CacheSize: -1, Test: durable.TestConfig{Clock: clock}},
			defs: []durable.Definition{sleeper},
		})
		ctx := testContext(t)

		h, err := sleeper.Start(ctx, b.e, 72*time.Hour, &durable.StartOptions{ID: "sleeper-1"})
		require.NoError(t, err)
		waitFor(t, "the timer to be recorded", func() bool {
			return countOf(eventTypes(t, b.e, h.RunID()), durable.EventTimerStarted) == 1
		})

		// The run is not cached: no goroutine of it is alive while it sleeps.
		// (Other tests run in parallel, so look for this workflow's function.)
		// The task that started the timer unwinds the run just after its
		// commit, so wait for that; the run then sleeps with no goroutine.
		buf := make([]byte, 4<<20)
		waitFor(t, "the sleeping run to hold no goroutine", func() bool {
			return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "durable_test.sleeperWorkflow")
		})

		info, err := b.e.Describe(ctx, "sleeper-1")
		require.NoError(t, err)
		require.Equal(t, durable.StatusRunning, info.Status)

		clock.Advance(72 * time.Hour)
		woke, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, start.Add(72*time.Hour), woke.UTC())
	})
}

var approval = durable.NewSignal[string]("approval")

func TestSignalAndAwaitWithTimeout(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		clock := durabletest.NewClock(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
		release := make(chan struct{})
		prepare := durable.NewActivity("prepare", func(ctx context.Context, wait bool) (string, error) {
			if wait {
				<-release
			}
			return "prepared", nil
		}, nil)
		review := durable.NewWorkflow("review", func(ctx durable.Context, wait bool) (string, error) {
			if _, err := prepare.Run(ctx, wait); err != nil {
				return "", err
			}
			by, ok, err := approval.ReceiveWithTimeout(ctx, 24*time.Hour)
			if err != nil {
				return "", err
			}
			if !ok {
				return "timed out", nil
			}
			return "approved by " + by, nil
		})
		b := setup(t, setupOpts{
			db:   db,
			cfg:  &durable.Config{Test: durable.TestConfig{Clock: clock}},
			defs: []durable.Definition{prepare, review},
		})
		ctx := testContext(t)

		// Approved in time.
		h1, err := review.Start(ctx, b.e, false, &durable.StartOptions{ID: "in-time"})
		require.NoError(t, err)
		waitFor(t, "the approval timer", func() bool {
			return countOf(eventTypes(t, b.e, h1.RunID()), durable.EventTimerStarted) == 1
		})
		require.NoError(t, approval.Send(ctx, b.e, "in-time", "ana"))
		out, err := h1.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, "approved by ana", out)
		require.Equal(t, 1, countOf(eventTypes(t, b.e, h1.RunID()), durable.EventTimerCanceled))

		// Timed out.
		h2, err := review.Start(ctx, b.e, false, &durable.StartOptions{ID: "too-late"})
		require.NoError(t, err)
		waitFor(t, "the approval timer", func() bool {
			return countOf(eventTypes(t, b.e, h2.RunID()), durable.EventTimerStarted) == 1
		})
		clock.Advance(25 * time.Hour)
		out, err = h2.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, "timed out", out)

		// A signal sent before the workflow reaches its wait is kept.
		h3, err := review.Start(ctx, b.e, true, &durable.StartOptions{ID: "early"})
		require.NoError(t, err)
		waitFor(t, "the activity to start", func() bool {
			return countOf(eventTypes(t, b.e, h3.RunID()), durable.EventActivityScheduled) == 1
		})
		require.NoError(t, approval.Send(ctx, b.e, "early", "bo"))
		close(release)
		out, err = h3.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, "approved by bo", out)
	})
}

func TestActivityRetries(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		var calls atomic.Int32
		flaky := durable.NewActivity("flaky", func(ctx context.Context, _ string) (int, error) {
			n := calls.Add(1)
			if n <= 4 {
				return 0, fmt.Errorf("transient failure %d", n)
			}
			info, _ := durable.GetActivityInfo(ctx)
			return info.Attempt, nil
		}, &durable.ActivityOptions{RetryPolicy: durable.RetryPolicy{InitialInterval: 20 * time.Millisecond, BackoffCoefficient: 2}})
		var permanentCalls atomic.Int32
		permanent := durable.NewActivity("permanent", func(ctx context.Context, _ string) (int, error) {
			permanentCalls.Add(1)
			return 0, durable.NonRetryable(errors.New("card declined"))
		}, nil)
		var typedCalls atomic.Int32
		typed := durable.NewActivity("typed", func(ctx context.Context, _ string) (int, error) {
			typedCalls.Add(1)
			return 0, durable.NewError("InvalidAddress", "no such mailbox")
		}, &durable.ActivityOptions{RetryPolicy: durable.RetryPolicy{NonRetryableErrorTypes: []string{"InvalidAddress"}}})
		wf := durable.NewWorkflow("retries", func(ctx durable.Context, which string) (int, error) {
			switch which {
			case "flaky":
				return flaky.Run(ctx, "")
			case "permanent":
				return permanent.Run(ctx, "")
			default:
				return typed.Run(ctx, "")
			}
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{flaky, permanent, typed, wf}})
		ctx := testContext(t)

		h, err := wf.Start(ctx, b.e, "flaky", nil)
		require.NoError(t, err)
		attempt, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, 5, attempt)
		atts, err := b.e.ActivityAttempts(ctx, h.RunID())
		require.NoError(t, err)
		require.Len(t, atts, 5, "every attempt is reported")
		for i, a := range atts[:4] {
			require.Equal(t, i+1, a.Attempt)
			require.Equal(t, "failed", a.Outcome)
			require.Equal(t, fmt.Sprintf("transient failure %d", i+1), a.Error)
			wantDelay := 20 * time.Millisecond << i
			require.GreaterOrEqual(t, atts[i+1].StartedAt.Sub(a.EndedAt), wantDelay, "delay before attempt %d", i+2)
		}
		require.Equal(t, "completed", atts[4].Outcome)
		// Retries do not grow the replay history: one scheduled, one completed.
		types := eventTypes(t, b.e, h.RunID())
		require.Equal(t, 1, countOf(types, durable.EventActivityScheduled))
		require.Equal(t, 1, countOf(types, durable.EventActivityCompleted))

		h, err = wf.Start(ctx, b.e, "permanent", nil)
		require.NoError(t, err)
		_, err = h.Result(ctx)
		var ae *durable.ApplicationError
		require.ErrorAs(t, err, &ae)
		require.Contains(t, err.Error(), "card declined")
		require.Equal(t, int32(1), permanentCalls.Load())

		h, err = wf.Start(ctx, b.e, "typed", nil)
		require.NoError(t, err)
		_, err = h.Result(ctx)
		require.ErrorContains(t, err, "no such mailbox")
		require.Equal(t, int32(1), typedCalls.Load())
	})
}

func TestHeartbeatTimeoutRetriesWithDetails(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		release := make(chan struct{})
		progress := durable.NewActivity("progress", func(ctx context.Context, _ string) (int, error) {
			last, ok, err := durable.HeartbeatDetails[int](ctx)
			if err != nil {
				return 0, err
			}
			if ok {
				return last, nil // a later attempt reads the stuck one's details
			}
			if err := durable.Heartbeat(ctx, 42); err != nil {
				return 0, err
			}
			// Stop heartbeating, as a stuck attempt would.
			select {
			case <-release:
			case <-ctx.Done():
			}
			return 0, errors.New("stuck attempt gave up")
		}, &durable.ActivityOptions{
			HeartbeatTimeout:    500 * time.Millisecond,
			StartToCloseTimeout: 20 * time.Second,
			RetryPolicy:         durable.RetryPolicy{InitialInterval: 10 * time.Millisecond},
		})
		wf := durable.NewWorkflow("heartbeats", func(ctx durable.Context, _ string) (int, error) {
			return progress.Run(ctx, "")
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{progress, wf}})
		ctx := testContext(t)
		h, err := wf.Start(ctx, b.e, "", nil)
		require.NoError(t, err)
		got, err := h.Result(ctx)
		close(release)
		require.NoError(t, err)
		require.Equal(t, 42, got)
		atts, err := b.e.ActivityAttempts(ctx, h.RunID())
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(atts), 2)
		for _, a := range atts[:len(atts)-1] {
			require.Equal(t, "timed_out", a.Outcome)
			require.Equal(t, "Heartbeat timeout", a.Error)
		}
		require.Equal(t, "completed", atts[len(atts)-1].Outcome)
	})
}

func TestNonDeterminismIsDetectedAndRunSurvives(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		var executed sync.Map
		act := func(name string) *durable.Activity[string, string] {
			return durable.NewActivity(name, func(ctx context.Context, in string) (string, error) {
				executed.Store(name, true)
				return name + ":" + in, nil
			}, nil)
		}
		fetch, search, reply := act("fetch"), act("search"), act("reply")
		next := durable.NewSignal[string]("next")
		v1 := durable.NewWorkflow("agent", func(ctx durable.Context, in string) (string, error) {
			a, err := fetch.Run(ctx, in)
			if err != nil {
				return "", err
			}
			if _, err := next.Receive(ctx); err != nil {
				return "", err
			}
			r, err := reply.Run(ctx, a)
			return r, err
		})
		// v2 changed the first step: a different activity at the same point.
		v2 := durable.NewWorkflow("agent", func(ctx durable.Context, in string) (string, error) {
			a, err := search.Run(ctx, in)
			if err != nil {
				return "", err
			}
			if _, err := next.Receive(ctx); err != nil {
				return "", err
			}
			return reply.Run(ctx, a)
		})
		ctx := testContext(t)
		cfg := func() *durable.Config { return &durable.Config{CacheSize: -1} }

		b1 := setup(t, setupOpts{db: db, cfg: cfg(), defs: []durable.Definition{fetch, search, reply, v1}})
		h, err := v1.Start(ctx, b1.e, "c1", &durable.StartOptions{ID: "nd"})
		require.NoError(t, err)
		waitFor(t, "the first step", func() bool {
			return countOf(eventTypes(t, b1.e, h.RunID()), durable.EventActivityCompleted) == 1
		})
		before := eventTypes(t, b1.e, h.RunID())
		b1.stop(t)

		// Deploy the incompatible code and wake the run with a signal.
		b2 := setup(t, setupOpts{db: db, cfg: cfg(), defs: []durable.Definition{fetch, search, reply, v2}})
		require.NoError(t, next.Send(ctx, b2.e, "nd", "go"))
		var info durable.RunInfo
		waitFor(t, "the non-determinism error", func() bool {
			info, err = b2.e.Describe(ctx, "nd")
			require.NoError(t, err)
			return info.LastTaskFailure != ""
		})
		require.Contains(t, info.LastTaskFailure, "non-deterministic")
		require.Contains(t, info.LastTaskFailure, "history has ActivityScheduled(fetch")
		require.Contains(t, info.LastTaskFailure, "code issued ActivityScheduled(search")
		require.Equal(t, durable.StatusRunning, info.Status)
		require.Equal(t, before, eventTypes(t, b2.e, h.RunID()), "history must not change")
		_, searched := executed.Load("search")
		require.False(t, searched)
		b2.stop(t)

		// Rolling back to the compatible code resumes the run.
		b3 := setup(t, setupOpts{db: db, cfg: cfg(), defs: []durable.Definition{fetch, search, reply, v1}})
		out, err := v1.Handle(ctx, b3.e, "nd")
		require.NoError(t, err)
		res, err := out.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, "reply:fetch:c1", res)
	})
}

func TestThousandConcurrentWorkflows(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		var mu sync.Mutex
		executions := map[string]int{}
		double := durable.NewActivity("double", func(ctx context.Context, n int) (int, error) {
			info, _ := durable.GetActivityInfo(ctx)
			mu.Lock()
			executions[info.IdempotencyKey]++
			mu.Unlock()
			return 2 * n, nil
		}, nil)
		wf := durable.NewWorkflow("sum", func(ctx durable.Context, n int) (int, error) {
			a := double.Start(ctx, n)
			b := double.Start(ctx, n+1)
			x, err := a.Get(ctx)
			if err != nil {
				return 0, err
			}
			y, err := b.Get(ctx)
			return x + y, err
		})
		b := setup(t, setupOpts{
			db:   db,
			cfg:  &durable.Config{CacheSize: 200},
			defs: []durable.Definition{double, wf},
		})
		// A throughput test: under the race detector on a busy 2-core
		// machine it needs more than the usual 30 s.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		const n = 1000
		handles := make([]*durable.Handle[int], n)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h, err := wf.Start(ctx, b.e, i, &durable.StartOptions{ID: fmt.Sprintf("sum-%d", i)})
				if err != nil {
					errs <- err
					return
				}
				handles[i] = h
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		for i, h := range handles {
			got, err := h.Result(ctx)
			require.NoError(t, err)
			require.Equal(t, 4*i+2, got)
		}
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, executions, 2*n)
		for key, c := range executions {
			require.Equal(t, 1, c, "activity %s executed %d times", key, c)
		}
		for _, i := range []int{0, 499, 999} {
			types := eventTypes(t, b.e, handles[i].RunID())
			require.Equal(t, 2, countOf(types, durable.EventActivityCompleted))
			require.Equal(t, 1, countOf(types, durable.EventWorkflowCompleted))
		}
	})
}

func TestStartSameIDReturnsRunningRun(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		wait := durable.NewSignal[struct{}]("done")
		wf := durable.NewWorkflow("waiter", func(ctx durable.Context, _ struct{}) (string, error) {
			_, err := wait.Receive(ctx)
			return "ok", err
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{wf}})
		ctx := testContext(t)
		h1, err := wf.Start(ctx, b.e, struct{}{}, &durable.StartOptions{ID: "same", IDReusePolicy: durable.RejectDuplicate})
		require.NoError(t, err)
		require.True(t, h1.Created())
		h2, err := wf.Start(ctx, b.e, struct{}{}, &durable.StartOptions{ID: "same", IDReusePolicy: durable.RejectDuplicate})
		require.NoError(t, err)
		require.False(t, h2.Created())
		require.Equal(t, h1.RunID(), h2.RunID())
		require.NoError(t, wait.Send(ctx, b.e, "same", struct{}{}))
		_, err = h1.Result(ctx)
		require.NoError(t, err)
		_, err = wf.Start(ctx, b.e, struct{}{}, &durable.StartOptions{ID: "same", IDReusePolicy: durable.RejectDuplicate})
		require.ErrorIs(t, err, durable.ErrWorkflowIDInUse)
		h3, err := wf.Start(ctx, b.e, struct{}{}, &durable.StartOptions{ID: "same"})
		require.NoError(t, err)
		require.True(t, h3.Created())
		require.NotEqual(t, h1.RunID(), h3.RunID())
		require.NoError(t, b.e.Terminate(ctx, "same", "test over"))
	})
}

func TestCancelAndTerminate(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		cleanup := durable.NewActivity("cleanup", func(ctx context.Context, _ string) (string, error) { return "cleaned", nil }, nil)
		wf := durable.NewWorkflow("long", func(ctx durable.Context, _ string) (string, error) {
			err := durable.Sleep(ctx, time.Hour)
			return "", err
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{cleanup, wf}})
		ctx := testContext(t)

		h, err := wf.Start(ctx, b.e, "", &durable.StartOptions{ID: "to-cancel"})
		require.NoError(t, err)
		waitFor(t, "the timer", func() bool { return countOf(eventTypes(t, b.e, h.RunID()), durable.EventTimerStarted) == 1 })
		require.NoError(t, b.e.Cancel(ctx, "to-cancel", "user asked"))
		_, err = h.Result(ctx)
		require.ErrorIs(t, err, durable.ErrCanceled)
		info, err := b.e.Describe(ctx, "to-cancel")
		require.NoError(t, err)
		require.Equal(t, durable.StatusCanceled, info.Status)
		types := eventTypes(t, b.e, h.RunID())
		require.Equal(t, []string{durable.EventWorkflowStarted, durable.EventTimerStarted, durable.EventCancelRequested,
			durable.EventTimerCanceled, durable.EventWorkflowCanceled}, types)

		h, err = wf.Start(ctx, b.e, "", &durable.StartOptions{ID: "to-terminate"})
		require.NoError(t, err)
		waitFor(t, "the timer", func() bool { return countOf(eventTypes(t, b.e, h.RunID()), durable.EventTimerStarted) == 1 })
		require.NoError(t, b.e.Terminate(ctx, "to-terminate", "operator"))
		_, err = h.Result(ctx)
		require.ErrorIs(t, err, durable.ErrTerminated)
		require.ErrorIs(t, b.e.Terminate(ctx, "to-terminate", "again"), durable.ErrRunClosed)
	})
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		type order struct {
			Item  string `json:"item"`
			Count int    `json:"count"`
		}
		unregistered := durable.NewActivity("unregistered", func(ctx context.Context, _ string) (string, error) { return "", nil },
			&durable.ActivityOptions{RetryPolicy: durable.RetryPolicy{MaximumAttempts: 2, InitialInterval: time.Millisecond}})
		var panics atomic.Int32
		panicky := durable.NewActivity("panicky", func(ctx context.Context, _ string) (string, error) {
			panics.Add(1)
			panic("activity blew up")
		}, &durable.ActivityOptions{RetryPolicy: durable.RetryPolicy{MaximumAttempts: 2, InitialInterval: time.Millisecond}})
		echo := durable.NewActivity("echo", func(ctx context.Context, s string) (string, error) { return s, nil }, nil)
		wf := durable.NewWorkflow("orders", func(ctx durable.Context, o order) (string, error) {
			switch o.Item {
			case "unregistered":
				return unregistered.Run(ctx, "")
			case "panicky":
				return panicky.Run(ctx, "")
			case "huge":
				return echo.Run(ctx, strings.Repeat("x", 3<<20))
			case "workflow-panic":
				panic("workflow blew up")
			}
			return fmt.Sprintf("%d × %s", o.Count, o.Item), nil
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{panicky, echo, wf}})
		ctx := testContext(t)
		start := func(in string) (durable.RunInfo, error) {
			return b.e.StartWorkflow(ctx, "orders", json.RawMessage(in), nil)
		}

		_, err := b.e.StartWorkflow(ctx, "no-such-workflow", nil, nil)
		require.ErrorIs(t, err, durable.ErrUnknownWorkflow)

		_, err = start(`{"item": `)
		require.ErrorIs(t, err, durable.ErrInvalidPayload)
		require.ErrorContains(t, err, "not valid JSON")
		_, err = start(strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000))
		require.ErrorIs(t, err, durable.ErrInvalidPayload, "nested too deeply")

		_, err = start(`"` + strings.Repeat("x", 3<<20) + `"`)
		require.ErrorIs(t, err, durable.ErrPayloadTooLarge)

		run, err := start(`{"item": 7}`)
		require.NoError(t, err)
		_, err = b.e.Result(ctx, run.RunID)
		require.ErrorContains(t, err, "decode payload")

		run, err = start(`{"item": "unregistered"}`)
		require.NoError(t, err)
		_, err = b.e.Result(ctx, run.RunID)
		require.ErrorIs(t, err, durable.ErrUnknownActivity)
		atts, err := b.e.ActivityAttempts(ctx, run.RunID)
		require.NoError(t, err)
		require.Len(t, atts, 2)

		run, err = start(`{"item": "panicky"}`)
		require.NoError(t, err)
		_, err = b.e.Result(ctx, run.RunID)
		require.ErrorContains(t, err, "activity blew up")
		require.Equal(t, int32(2), panics.Load())
		atts, err = b.e.ActivityAttempts(ctx, run.RunID)
		require.NoError(t, err)
		require.Len(t, atts, 2)
		require.Contains(t, atts[0].Error, "panic: activity blew up")

		run, err = start(`{"item": "huge"}`)
		require.NoError(t, err)
		_, err = b.e.Result(ctx, run.RunID)
		require.ErrorIs(t, err, durable.ErrPayloadTooLarge)

		// A panicking workflow blocks (by default) with the panic and its stack
		// visible, and the worker goes on serving other runs.
		run, err = start(`{"item": "workflow-panic"}`)
		require.NoError(t, err)
		waitFor(t, "the panic to be recorded", func() bool {
			info, err := b.e.DescribeRun(ctx, run.RunID)
			require.NoError(t, err)
			return info.LastTaskFailure != ""
		})
		info, err := b.e.DescribeRun(ctx, run.RunID)
		require.NoError(t, err)
		require.Equal(t, durable.StatusRunning, info.Status)
		require.Contains(t, info.LastTaskFailure, "panic: workflow blew up")
		require.Contains(t, info.LastTaskFailure, "engine_test.go")
		ok, err := start(`{"item": "tea", "count": 2}`)
		require.NoError(t, err)
		out, err := b.e.Result(ctx, ok.RunID)
		require.NoError(t, err)
		require.JSONEq(t, `"2 × tea"`, string(out))
		require.NoError(t, b.e.Terminate(ctx, run.WorkflowID, "cleanup"))

		err = b.e.Signal(ctx, "no-such-run", "approval", json.RawMessage(`"x"`), nil)
		require.ErrorIs(t, err, durable.ErrRunNotFound)
		err = b.e.Signal(ctx, ok.WorkflowID, "approval", json.RawMessage(`"x"`), nil)
		require.ErrorIs(t, err, durable.ErrRunClosed)
		require.ErrorIs(t, b.e.Cancel(ctx, ok.WorkflowID, "late"), durable.ErrRunClosed)
		require.ErrorIs(t, b.e.Cancel(ctx, "no-such-run", "late"), durable.ErrRunNotFound)
	})
}

func TestPanicPolicyFailWorkflow(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		wf := durable.NewWorkflow("boom", func(ctx durable.Context, _ string) (string, error) {
			panic("unrecoverable")
		})
		b := setup(t, setupOpts{db: db, cfg: &durable.Config{PanicPolicy: durable.FailWorkflow}, defs: []durable.Definition{wf}})
		ctx := testContext(t)
		h, err := wf.Start(ctx, b.e, "", nil)
		require.NoError(t, err)
		_, err = h.Result(ctx)
		var ae *durable.ApplicationError
		require.ErrorAs(t, err, &ae)
		require.Equal(t, "durable.Panic", ae.Type)
		require.Contains(t, ae.Stack, "engine_test.go")
	})
}

func TestHistoryLimitFailsRun(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		wf := durable.NewWorkflow("chatty", func(ctx durable.Context, n int) (int, error) {
			for i := range n {
				if _, err := durable.SideEffect(ctx, func() int { return i }); err != nil {
					return 0, err
				}
			}
			return n, nil
		})
		b := setup(t, setupOpts{db: db, cfg: &durable.Config{Limits: durable.Limits{FailEvents: 50}}, defs: []durable.Definition{wf}})
		ctx := testContext(t)
		h, err := wf.Start(ctx, b.e, 10, nil)
		require.NoError(t, err)
		got, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, 10, got)
		h, err = wf.Start(ctx, b.e, 100, nil)
		require.NoError(t, err)
		_, err = h.Result(ctx)
		require.ErrorIs(t, err, durable.ErrHistoryTooLarge)
	})
}

func TestExportHistoryAndDeterministicHelpers(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		wf := durable.NewWorkflow("helpers", func(ctx durable.Context, _ string) ([]string, error) {
			id := durable.UUID(ctx)
			var order []string
			done := 0
			for _, name := range []string{"a", "b", "c"} {
				durable.Go(ctx, func(ctx durable.Context) {
					order = append(order, name)
					done++
				})
			}
			if err := durable.Await(ctx, func() bool { return done == 3 }); err != nil {
				return nil, err
			}
			sel := durable.NewSelector(ctx)
			var first string
			sel.AddFuture(durable.NewTimer(ctx, time.Hour), func() { first = "hour" })
			sel.AddFuture(durable.NewTimer(ctx, time.Millisecond), func() { first = "ms" })
			if err := sel.Select(ctx); err != nil {
				return nil, err
			}
			return append(order, first, id), nil
		})
		b := setup(t, setupOpts{db: db, cfg: &durable.Config{CacheSize: -1}, defs: []durable.Definition{wf}})
		ctx := testContext(t)
		h, err := wf.Start(ctx, b.e, "", nil)
		require.NoError(t, err)
		out, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"a", "b", "c", "ms"}, out[:4])
		require.Len(t, out[4], 36)

		raw, err := b.e.ExportHistory(ctx, h.RunID())
		require.NoError(t, err)
		var hist durable.History
		require.NoError(t, json.Unmarshal(raw, &hist))
		require.Equal(t, h.RunID(), hist.Run.RunID)
		require.Equal(t, durable.EventWorkflowStarted, hist.Events[0].Type)
		require.Equal(t, durable.EventWorkflowCompleted, hist.Events[len(hist.Events)-1].Type)
		require.Contains(t, string(raw), out[4], "the UUID is recorded as a marker")
	})
}

func TestGracefulStopReleasesRunningActivity(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		started := make(chan struct{}, 1)
		slow := durable.NewActivity("slow", func(ctx context.Context, _ string) (string, error) {
			info, _ := durable.GetActivityInfo(ctx)
			if info.Attempt == 1 {
				started <- struct{}{}
				<-ctx.Done() // runs until the worker stops
				return "", ctx.Err()
			}
			return "finished by the next worker", nil
		}, &durable.ActivityOptions{StartToCloseTimeout: time.Hour})
		wf := durable.NewWorkflow("stoppable", func(ctx durable.Context, _ string) (string, error) {
			return slow.Run(ctx, "")
		})
		ctx := testContext(t)
		b1 := setup(t, setupOpts{db: db, defs: []durable.Definition{slow, wf}})
		h, err := wf.Start(ctx, b1.e, "", &durable.StartOptions{ID: "stoppable"})
		require.NoError(t, err)
		<-started
		stopCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, b1.e.Stop(stopCtx), context.DeadlineExceeded)

		// The attempt was given back at once (not after the hour-long
		// StartToClose timeout), so the next worker finishes the run.
		b2 := setup(t, setupOpts{db: db, defs: []durable.Definition{slow, wf}})
		out, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, "finished by the next worker", out)
		atts, err := b2.e.ActivityAttempts(ctx, h.RunID())
		require.NoError(t, err)
		require.Len(t, atts, 2)
		require.Equal(t, "canceled", atts[0].Outcome)
		require.Contains(t, atts[0].Error, "worker shutting down")
	})
}

func TestRetentionDeletesOldClosedRuns(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		clock := durabletest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
		done := durable.NewSignal[struct{}]("done")
		wf := durable.NewWorkflow("short", func(ctx durable.Context, wait bool) (string, error) {
			if wait {
				if _, err := done.Receive(ctx); err != nil {
					return "", err
				}
			}
			return "ok", nil
		})
		b := setup(t, setupOpts{
			db:   db,
			cfg:  &durable.Config{Retention: time.Hour, Test: durable.TestConfig{Clock: clock}},
			defs: []durable.Definition{wf},
		})
		ctx := testContext(t)
		old, err := wf.Run(ctx, b.e, false, &durable.StartOptions{ID: "old"})
		require.NoError(t, err)
		require.Equal(t, "ok", old)
		_, err = wf.Start(ctx, b.e, true, &durable.StartOptions{ID: "still-running"})
		require.NoError(t, err)

		clock.Advance(2 * time.Hour)
		waitFor(t, "retention to delete the old run", func() bool {
			_, err := b.e.Describe(ctx, "old")
			return errors.Is(err, durable.ErrRunNotFound)
		})
		info, err := b.e.Describe(ctx, "still-running")
		require.NoError(t, err, "a running run is never deleted")
		require.Equal(t, durable.StatusRunning, info.Status)
		require.NoError(t, done.Send(ctx, b.e, "still-running", struct{}{}))
	})
}
