package durable_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
)

// childEnv is an engine with workers on the "default" and "children" task
// queues.
func childEnv(t *testing.T, db opener, defs ...durable.Definition) *testBundle {
	t.Helper()
	b := setup(t, setupOpts{db: db, defs: defs, noStart: true})
	b.e.NewWorker(&durable.WorkerOptions{TaskQueue: "children"})
	require.NoError(t, b.e.Start(context.Background()))
	return b
}

func TestChildWorkflows(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		release := durable.NewSignal[string]("release")
		double := durable.NewWorkflow("double", func(ctx durable.Context, n int) (int, error) {
			if n < 0 {
				return 0, durable.NewError("NegativeInput", fmt.Sprintf("%d is negative", n))
			}
			return 2 * n, nil
		})
		waiter := durable.NewWorkflow("waiter", func(ctx durable.Context, prefix string) (string, error) {
			v, err := release.Receive(ctx)
			return prefix + v, err
		})
		type parentIn struct {
			Case    string
			ChildID string
		}
		parent := durable.NewWorkflow("parent", func(ctx durable.Context, in parentIn) (string, error) {
			opts := &durable.ChildOptions{TaskQueue: "children", ID: in.ChildID}
			switch in.Case {
			case "result":
				n, err := double.RunChild(ctx, 21, opts)
				return fmt.Sprint(n), err
			case "fail":
				_, err := double.RunChild(ctx, -1, opts)
				return "", err
			case "signal":
				f := waiter.StartChild(ctx, "got ", opts)
				if _, err := f.Signal(ctx, "release", "hello").Get(ctx); err != nil {
					return "", err
				}
				return f.Get(ctx)
			case "wait":
				return waiter.RunChild(ctx, "", opts)
			case "timeout":
				opts.ExecutionTimeout = 300 * time.Millisecond
				return waiter.RunChild(ctx, "", opts)
			case "parallel":
				futures := []*durable.ChildFuture[int]{}
				for i := 1; i <= 3; i++ {
					futures = append(futures, double.StartChild(ctx, i, &durable.ChildOptions{TaskQueue: "children"}))
				}
				sum := 0
				sel := durable.NewSelector(ctx)
				for _, f := range futures {
					sel.AddFuture(f, func() {
						n, _ := f.Get(ctx)
						sum += n
					})
				}
				for range futures {
					if err := sel.Select(ctx); err != nil {
						return "", err
					}
				}
				return fmt.Sprint(sum), nil
			}
			return "", errors.New("unknown case")
		})
		b := childEnv(t, db, double, waiter, parent)
		ctx := testContext(t)
		run := func(c, childID string) (*durable.Handle[string], error) {
			h, err := parent.Start(ctx, b.e, parentIn{Case: c, ChildID: childID}, &durable.StartOptions{ID: "parent-" + c})
			require.NoError(t, err)
			_, err = h.Result(ctx)
			return h, err
		}

		// Result, with the child's own history.
		h, err := run("result", "")
		require.NoError(t, err)
		out, _ := h.Result(ctx)
		require.Equal(t, "42", out)
		child, err := b.e.Describe(ctx, "parent-result/1")
		require.NoError(t, err)
		require.Equal(t, "children", child.TaskQueue)
		require.Equal(t, []string{durable.EventWorkflowStarted, durable.EventWorkflowCompleted}, eventTypes(t, b.e, child.RunID))
		parentEvents := eventTypes(t, b.e, h.RunID())
		require.Equal(t, 1, countOf(parentEvents, durable.EventChildWorkflowInitiated))
		require.Equal(t, 1, countOf(parentEvents, durable.EventChildWorkflowCompleted))

		// A failing child: the parent sees a typed error wrapping its cause.
		_, err = run("fail", "")
		var cwe *durable.ChildWorkflowError
		require.ErrorAs(t, err, &cwe)
		require.Equal(t, "double", cwe.WorkflowType)
		var ae *durable.ApplicationError
		require.ErrorAs(t, err, &ae)
		require.Equal(t, "NegativeInput", ae.Type)

		// The parent signals its child.
		h, err = run("signal", "")
		require.NoError(t, err)
		out, _ = h.Result(ctx)
		require.Equal(t, "got hello", out)

		// Parallel children with a selector.
		h, err = run("parallel", "")
		require.NoError(t, err)
		out, _ = h.Result(ctx)
		require.Equal(t, "12", out)

		// A terminated child.
		h, err = parent.Start(ctx, b.e, parentIn{Case: "wait", ChildID: "terminated-child"}, nil)
		require.NoError(t, err)
		waitFor(t, "the child to start", func() bool { _, err := b.e.Describe(ctx, "terminated-child"); return err == nil })
		require.NoError(t, b.e.Terminate(ctx, "terminated-child", "operator"))
		_, err = h.Result(ctx)
		require.ErrorAs(t, err, &cwe)
		require.ErrorIs(t, err, durable.ErrTerminated)

		// A child past its execution timeout.
		_, err = run("timeout", "")
		var te *durable.TimeoutError
		require.ErrorAs(t, err, &te)
		require.Equal(t, "WorkflowExecution", te.Kind)

		// A child whose workflow ID is running already does not start.
		blocker, err := waiter.Start(ctx, b.e, "", &durable.StartOptions{ID: "taken", TaskQueue: "children"})
		require.NoError(t, err)
		_, err = run("wait", "taken")
		require.ErrorIs(t, err, durable.ErrWorkflowIDInUse)
		require.NoError(t, release.Send(ctx, b.e, "taken", "x"))
		_, err = blocker.Result(ctx)
		require.NoError(t, err)
	})
}

func TestParentClosePolicies(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		block := durable.NewSignal[string]("never")
		sleeper := durable.NewWorkflow("sleeper", func(ctx durable.Context, _ string) (string, error) {
			return block.Receive(ctx)
		})
		policies := map[string]durable.ParentClosePolicy{
			"terminate": durable.ParentCloseTerminate,
			"cancel":    durable.ParentCloseRequestCancel,
			"abandon":   durable.ParentCloseAbandon,
		}
		parent := durable.NewWorkflow("leaver", func(ctx durable.Context, policy string) (string, error) {
			f := sleeper.StartChild(ctx, "", &durable.ChildOptions{ID: "child-" + policy, ParentClosePolicy: policies[policy]})
			// Wait until the child exists, then return and leave it running.
			_ = durable.Sleep(ctx, 50*time.Millisecond)
			_ = f
			return "left", nil
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{sleeper, parent}})
		ctx := testContext(t)
		want := map[string]durable.Status{
			"terminate": durable.StatusTerminated,
			"cancel":    durable.StatusCanceled,
			"abandon":   durable.StatusRunning,
		}
		for policy, status := range want {
			_, err := parent.Run(ctx, b.e, policy, nil)
			require.NoError(t, err)
			waitFor(t, "child-"+policy+" to be "+string(status), func() bool {
				info, err := b.e.Describe(ctx, "child-"+policy)
				return err == nil && info.Status == status
			})
		}
		require.NoError(t, b.e.Terminate(ctx, "child-abandon", "test over"))
	})
}

func TestCancelPropagatesToChildren(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		block := durable.NewSignal[string]("never")
		// Each child cleans up after a cancel with an activity that waits
		// for the test's go-ahead, so the test sees whether the parent
		// waited for it.
		gates := map[string]chan struct{}{"wait": make(chan struct{}), "try": make(chan struct{}), "abandon": make(chan struct{})}
		cleanup := durable.NewActivity("cleanup", func(ctx context.Context, mode string) (string, error) {
			<-gates[mode]
			return "cleaned", nil
		}, nil)
		child := durable.NewWorkflow("cancelable", func(ctx durable.Context, mode string) (string, error) {
			_, err := block.Receive(ctx)
			if errors.Is(err, durable.ErrCanceled) {
				if _, cerr := cleanup.Run(durable.WithoutCancel(ctx), mode); cerr != nil {
					return "", cerr
				}
			}
			return "", err
		})
		modes := map[string]durable.CancellationType{
			"wait":    durable.WaitCancellationCompleted,
			"try":     durable.TryCancel,
			"abandon": durable.Abandon,
		}
		parent := durable.NewWorkflow("canceler", func(ctx durable.Context, mode string) (string, error) {
			// The close policy lets the cancellation type alone decide the
			// child's fate.
			policy := durable.ParentCloseRequestCancel
			if mode == "abandon" {
				policy = durable.ParentCloseAbandon
			}
			_, err := child.RunChild(ctx, mode, &durable.ChildOptions{ID: "kid-" + mode, CancellationType: modes[mode],
				ParentClosePolicy: policy})
			return "", err
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{cleanup, child, parent}})
		ctx := testContext(t)
		status := func(id string) durable.Status {
			info, err := b.e.Describe(ctx, id)
			require.NoError(t, err)
			return info.Status
		}
		for _, mode := range []string{"wait", "try", "abandon"} {
			h, err := parent.Start(ctx, b.e, mode, &durable.StartOptions{ID: "canceler-" + mode})
			require.NoError(t, err)
			waitFor(t, "kid-"+mode+" to start", func() bool { _, err := b.e.Describe(ctx, "kid-"+mode); return err == nil })
			require.NoError(t, b.e.Cancel(ctx, "canceler-"+mode, "user asked"))
			switch mode {
			case "wait":
				// The parent waits while the child cleans up.
				time.Sleep(200 * time.Millisecond)
				require.Equal(t, durable.StatusRunning, status("canceler-wait"))
				close(gates[mode])
				_, err = h.Result(ctx)
				require.ErrorIs(t, err, durable.ErrCanceled)
				require.Equal(t, durable.StatusCanceled, status("kid-wait"), "the parent returned once the child had stopped")
			case "try":
				_, err = h.Result(ctx)
				require.ErrorIs(t, err, durable.ErrCanceled)
				require.Equal(t, durable.StatusRunning, status("kid-try"), "the parent did not wait for the cleanup")
				close(gates[mode])
				waitFor(t, "kid-try to be canceled", func() bool { return status("kid-try") == durable.StatusCanceled })
			case "abandon":
				_, err = h.Result(ctx)
				require.ErrorIs(t, err, durable.ErrCanceled)
				time.Sleep(200 * time.Millisecond)
				require.Equal(t, durable.StatusRunning, status("kid-abandon"), "an abandoned child is not asked to cancel")
				close(gates[mode])
				require.NoError(t, b.e.Terminate(ctx, "kid-abandon", "test over"))
			}
		}
	})
}

func TestCompensationAfterCancel(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		var refunds atomic.Int32
		book := durable.NewActivity("book", func(ctx context.Context, _ string) (string, error) { return "booked", nil }, nil)
		refund := durable.NewActivity("refund", func(ctx context.Context, _ string) (string, error) {
			refunds.Add(1)
			return "refunded", nil
		}, nil)
		confirm := durable.NewSignal[string]("confirm")
		trip := durable.NewWorkflow("trip", func(ctx durable.Context, _ string) (string, error) {
			if _, err := book.Run(ctx, ""); err != nil {
				return "", err
			}
			if _, err := confirm.Receive(ctx); err != nil {
				// Canceled: undo the booking before giving up.
				clean := durable.WithoutCancel(ctx)
				if _, err := refund.Run(clean, ""); err != nil {
					return "", err
				}
				if err := durable.Sleep(clean, 10*time.Millisecond); err != nil {
					return "", err
				}
				return "", err
			}
			return "confirmed", nil
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{book, refund, trip}})
		ctx := testContext(t)
		h, err := trip.Start(ctx, b.e, "", &durable.StartOptions{ID: "trip"})
		require.NoError(t, err)
		waitFor(t, "the booking", func() bool {
			return countOf(eventTypes(t, b.e, h.RunID()), durable.EventActivityCompleted) == 1
		})
		require.NoError(t, b.e.Cancel(ctx, "trip", "changed plans"))
		_, err = h.Result(ctx)
		require.ErrorIs(t, err, durable.ErrCanceled)
		require.Equal(t, int32(1), refunds.Load())
		info, err := b.e.Describe(ctx, "trip")
		require.NoError(t, err)
		require.Equal(t, durable.StatusCanceled, info.Status)
		types := eventTypes(t, b.e, h.RunID())
		require.Equal(t, 2, countOf(types, durable.EventActivityCompleted))
		require.Equal(t, 1, countOf(types, durable.EventTimerFired))
	})
}

func TestContinueAsNew(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		var counter *durable.Workflow[int, int]
		counter = durable.NewWorkflow("counter", func(ctx durable.Context, n int) (int, error) {
			if n < 5 {
				return 0, counter.ContinueAsNew(ctx, n+1)
			}
			return n, nil
		})
		item := durable.NewSignal[string]("item")
		type state struct {
			Seen []string
			Want int
		}
		var collector *durable.Workflow[state, []string]
		collector = durable.NewWorkflow("collector", func(ctx durable.Context, s state) ([]string, error) {
			for len(s.Seen) < s.Want {
				v, err := item.Receive(ctx)
				if err != nil {
					return nil, err
				}
				s.Seen = append(s.Seen, v)
				if len(s.Seen)%2 == 0 && len(s.Seen) < s.Want {
					// Roll over every two items; later signals must follow.
					return nil, collector.ContinueAsNew(ctx, s)
				}
			}
			return s.Seen, nil
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{counter, collector}})
		ctx := testContext(t)

		h, err := counter.Start(ctx, b.e, 0, &durable.StartOptions{ID: "count"})
		require.NoError(t, err)
		n, err := h.Result(ctx)
		require.NoError(t, err, "Result follows the chain of runs")
		require.Equal(t, 5, n)
		runs, _, err := b.e.ListRuns(ctx, &durable.ListOptions{WorkflowID: "count"})
		require.NoError(t, err)
		require.Len(t, runs, 6)
		closed := 0
		for _, r := range runs {
			if r.Status == durable.StatusContinuedAsNew {
				closed++
				require.Equal(t, []string{durable.EventWorkflowStarted, durable.EventWorkflowContinuedAsNew}, eventTypes(t, b.e, r.RunID))
			}
		}
		require.Equal(t, 5, closed)

		// Signals sent in a burst, while the run continues as new, all
		// arrive, in order.
		h2, err := collector.Start(ctx, b.e, state{Want: 7}, &durable.StartOptions{ID: "collect"})
		require.NoError(t, err)
		for i := range 7 {
			require.NoError(t, item.Send(ctx, b.e, "collect", fmt.Sprint(i)))
		}
		got, err := h2.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"0", "1", "2", "3", "4", "5", "6"}, got)
	})
}

func TestSignalExternal(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		ping := durable.NewSignal[string]("ping")
		receiver := durable.NewWorkflow("receiver", func(ctx durable.Context, _ string) (string, error) {
			return ping.Receive(ctx)
		})
		sender := durable.NewWorkflow("sender", func(ctx durable.Context, target string) (string, error) {
			_, err := durable.SignalExternal(ctx, target, "ping", "from sender").Get(ctx)
			if err != nil {
				return "", err
			}
			return "sent", nil
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{receiver, sender}})
		ctx := testContext(t)
		hr, err := receiver.Start(ctx, b.e, "", &durable.StartOptions{ID: "receiver"})
		require.NoError(t, err)
		out, err := sender.Run(ctx, b.e, "receiver", nil)
		require.NoError(t, err)
		require.Equal(t, "sent", out)
		got, err := hr.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, "from sender", got)

		_, err = sender.Run(ctx, b.e, "nobody", nil)
		require.ErrorIs(t, err, durable.ErrRunNotFound)
	})
}

// The first task of a run started here runs its code once, also when it
// starts a child (which the start's own commit cannot hold): the start is
// committed with the task leased here, then the task's output, without
// running the code again.
func TestFirstTaskWithChildRunsOnce(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		var live atomic.Int32 // first-task executions that were not replays
		double := durable.NewWorkflow("double", func(ctx durable.Context, n int) (int, error) {
			return 2 * n, nil
		})
		parent := durable.NewWorkflow("parent", func(ctx durable.Context, n int) (int, error) {
			if !durable.IsReplaying(ctx) {
				live.Add(1)
			}
			return double.RunChild(ctx, n, nil)
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{parent, double}})
		ctx := testContext(t)
		for i := range 5 {
			h, err := parent.Start(ctx, b.e, i, nil)
			require.NoError(t, err)
			got, err := h.Result(ctx)
			require.NoError(t, err)
			require.Equal(t, 2*i, got)
		}
		require.EqualValues(t, 5, live.Load(), "the code before the child ran once per run")
	})
}

// Details given with WithDetails cross the store with a failure: a
// child's reach its parent, an activity's reach its workflow, a run's reach
// the caller of Result; the error keeps its type and message.
func TestFailureDetails(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		spend := durable.NewActivity("spend", func(ctx context.Context, n int) (int, error) {
			return 0, durable.NonRetryable(durable.WithDetails(errors.New("card declined"), json.RawMessage(`{"spent":`+fmt.Sprint(n)+`}`)))
		}, nil)
		child := durable.NewWorkflow("spender", func(ctx durable.Context, n int) (int, error) {
			_, err := spend.Run(ctx, n)
			var ae *durable.ApplicationError
			if !errors.As(err, &ae) || string(ae.Details) != fmt.Sprintf(`{"spent":%d}`, n) || ae.Type != "*errors.errorString" {
				return 0, fmt.Errorf("the activity's details did not arrive with its type: %#v", err)
			}
			return 0, durable.WithDetails(fmt.Errorf("gave up: %w", durable.ErrCanceled), json.RawMessage(`{"spent":`+fmt.Sprint(n+1)+`}`))
		})
		parent := durable.NewWorkflow("accountant", func(ctx durable.Context, n int) (string, error) {
			_, err := child.RunChild(ctx, n, nil)
			var cwe *durable.ChildWorkflowError
			if !errors.As(err, &cwe) {
				return "", fmt.Errorf("not a child error: %v", err)
			}
			ae, ok := cwe.Err.(*durable.ApplicationError)
			if !ok {
				return "", fmt.Errorf("the child's error is a %T", cwe.Err)
			}
			return string(ae.Details) + " " + ae.Message, nil
		})
		dropper := durable.NewWorkflow("dropper", func(ctx durable.Context, _ int) (int, error) {
			return 0, durable.WithDetails(errors.New("over budget"), []byte(`not json`))
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{spend, child, parent, dropper}})
		ctx := testContext(t)
		got, err := parent.Run(ctx, b.e, 4, nil)
		require.NoError(t, err)
		require.Equal(t, `{"spent":5} gave up: durable: canceled`, got, "the child's details reach the parent")

		dh, err := dropper.Start(ctx, b.e, 0, nil)
		require.NoError(t, err)
		_, err = dh.Result(ctx)
		ae, ok := errors.AsType[*durable.ApplicationError](err)
		require.True(t, ok, "%v", err)
		require.Equal(t, "over budget", ae.Message)
		require.Nil(t, ae.Details, "details that are not JSON are dropped")

		ch, err := child.Start(ctx, b.e, 6, nil)
		require.NoError(t, err)
		_, err = ch.Result(ctx)
		ae, ok = errors.AsType[*durable.ApplicationError](err)
		require.True(t, ok, "%v", err)
		require.JSONEq(t, `{"spent":7}`, string(ae.Details))
		require.ErrorIs(t, err, durable.ErrCanceled, "the sentinel survives the wrapper")
		require.Equal(t, "gave up: durable: canceled", ae.Message)
	})
}
