package schedule_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/schedule"
)

func TestCronEveryMinute(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		b := setup(t, setupOpts{db: db})
		ctx := testContext(t)
		require.NoError(t, b.sc.Create(ctx, "reports", everyMinute, job))

		d := b.describe(t, "reports")
		require.Equal(t, []time.Time{minute(1), minute(2), minute(3), minute(4), minute(5)}, d.NextActionTimes)

		var want []time.Time
		for m := 1; m <= 5; m++ {
			b.advanceTo(t, "reports", minute(m))
			want = append(want, minute(m))
			b.waitRuns(t, ids("reports", want...)...)
		}
		require.Equal(t, "reports/2026-01-05T09:03:00Z", schedule.ActionWorkflowID("reports", minute(3)))

		d = b.waitDescribe(t, "reports", "five actions", func(d schedule.Description) bool { return d.Actions == 5 })
		require.Len(t, d.RecentActions, 5)
		for i, a := range d.RecentActions {
			require.Equal(t, schedule.OutcomeStarted, a.Outcome)
			require.Equal(t, schedule.KindScheduled, a.Kind)
			require.Equal(t, minute(i+1), a.ScheduledAt)
			require.NotEmpty(t, a.RunID)
		}
		require.Zero(t, d.CatchupMissed)
		require.Equal(t, minute(6), d.NextActionTimes[0])
	})
}

func TestIntervalWithOffset(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		b := setup(t, setupOpts{db: db})
		ctx := testContext(t)
		spec := schedule.Spec{Intervals: []schedule.Interval{{Every: 10 * time.Minute, Offset: 2 * time.Minute}}, Overlap: schedule.OverlapAllowAll}
		require.NoError(t, b.sc.Create(ctx, "sync", spec, job))

		b.advanceTo(t, "sync", minute(2))
		b.waitRuns(t, ids("sync", minute(2))...)
		b.advanceTo(t, "sync", minute(11)) // nothing due yet
		b.advanceTo(t, "sync", minute(12))
		b.waitRuns(t, ids("sync", minute(2), minute(12))...)
		b.advanceTo(t, "sync", minute(22))
		b.waitRuns(t, ids("sync", minute(2), minute(12), minute(22))...)
	})
}

// A schedule that wakes late fires the missed times within the catch-up
// window (one minute) and skips older ones.
func TestCatchupWindow(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := testContext(t)
	require.NoError(t, b.sc.Create(ctx, "late", everyMinute, job))

	b.advanceTo(t, "late", minute(5))
	b.waitRuns(t, ids("late", minute(4), minute(5))...)
	d := b.waitDescribe(t, "late", "the missed count", func(d schedule.Description) bool { return d.Actions == 2 })
	require.EqualValues(t, 3, d.CatchupMissed, "09:01, 09:02 and 09:03 were more than a minute late")

	// A wider window catches up more.
	b2 := setup(t, setupOpts{})
	require.NoError(t, b2.sc.Create(ctx, "patient", schedule.Spec{Cron: []string{"* * * * *"}, CatchupWindow: time.Hour, Overlap: schedule.OverlapAllowAll}, job))
	b2.advanceTo(t, "patient", minute(3))
	b2.waitRuns(t, ids("patient", minute(1), minute(2), minute(3))...)
}

func TestBackfill(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		b := setup(t, setupOpts{db: db})
		ctx := testContext(t)
		require.NoError(t, b.sc.Create(ctx, "etl", schedule.Spec{Cron: []string{"*/30 * * * *"}, Overlap: schedule.OverlapAllowAll}, job))
		b.waitSleeping(t, "etl")

		from := time.Date(2026, 1, 4, 8, 0, 0, 0, time.UTC)
		to := time.Date(2026, 1, 4, 14, 0, 0, 0, time.UTC)
		require.NoError(t, b.sc.Backfill(ctx, "etl", from, to))

		var want []time.Time
		for t := from; t.Before(to); t = t.Add(30 * time.Minute) {
			want = append(want, t)
		}
		require.Len(t, want, 12, "[08:00, 14:00) every 30 minutes")
		b.waitRuns(t, ids("etl", want...)...)
		d := b.waitDescribe(t, "etl", "the backfill to finish", func(d schedule.Description) bool {
			return d.PendingBackfills == 0 && d.Actions == 12
		})
		require.Equal(t, schedule.KindBackfill, d.RecentActions[len(d.RecentActions)-1].Kind)
		require.Equal(t, want[11], d.RecentActions[len(d.RecentActions)-1].ScheduledAt)

		// Backfilling an overlapping window starts nothing twice.
		require.NoError(t, b.sc.Backfill(ctx, "etl", from.Add(5*time.Hour), to.Add(time.Hour)))
		b.waitRuns(t, ids("etl", append(want, to, to.Add(30*time.Minute))...)...)

		require.ErrorIs(t, b.sc.Backfill(ctx, "etl", to, from), schedule.ErrInvalidRequest)
	})
}

func TestPauseAndUnpause(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		b := setup(t, setupOpts{db: db})
		ctx := testContext(t)
		require.NoError(t, b.sc.Create(ctx, "digest", everyMinute, job))
		b.advanceTo(t, "digest", minute(1))
		b.waitRuns(t, ids("digest", minute(1))...)
		b.waitSleeping(t, "digest")

		require.NoError(t, b.sc.Pause(ctx, "digest"))
		b.waitDescribe(t, "digest", "paused", func(d schedule.Description) bool { return d.Paused })
		// Paused: the schedule holds no timer, and moving the clock past
		// three fire times starts nothing.
		b.clock.Set(minute(4).Add(30 * time.Second))

		require.NoError(t, b.sc.Unpause(ctx, "digest"))
		b.waitDescribe(t, "digest", "unpaused", func(d schedule.Description) bool { return !d.Paused })
		b.advanceTo(t, "digest", minute(5))
		b.waitRuns(t, ids("digest", minute(1), minute(5))...)
		d := b.waitDescribe(t, "digest", "two actions", func(d schedule.Description) bool { return d.Actions == 2 })
		require.Zero(t, d.CatchupMissed, "fire times skipped while paused are not misses")
	})
}

func TestTrigger(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		b := setup(t, setupOpts{db: db})
		ctx := testContext(t)
		require.NoError(t, b.sc.Create(ctx, "daily", schedule.Spec{Cron: []string{"@daily"}, Overlap: schedule.OverlapAllowAll}, job))
		b.waitSleeping(t, "daily")
		b.clock.Set(t0.Add(90 * time.Second))

		require.NoError(t, b.sc.Trigger(ctx, "daily"))
		b.waitRuns(t, ids("daily", t0.Add(90*time.Second))...)
		d := b.waitDescribe(t, "daily", "the trigger", func(d schedule.Description) bool { return d.Actions == 1 })
		require.Equal(t, schedule.KindTrigger, d.RecentActions[0].Kind)

		// A paused schedule still acts on a trigger.
		require.NoError(t, b.sc.Pause(ctx, "daily"))
		b.clock.Set(t0.Add(3 * time.Minute))
		require.NoError(t, b.sc.Trigger(ctx, "daily"))
		b.waitRuns(t, ids("daily", t0.Add(90*time.Second), t0.Add(3*time.Minute))...)
	})
}

func TestCreateDuplicateListAndDelete(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		b := setup(t, setupOpts{db: db})
		ctx := testContext(t)
		require.NoError(t, b.sc.Create(ctx, "a", everyMinute, job))
		require.NoError(t, b.sc.Create(ctx, "b", everyMinute, job))

		err := b.sc.Create(ctx, "a", schedule.Spec{Cron: []string{"@hourly"}}, job)
		require.ErrorIs(t, err, schedule.ErrScheduleExists)
		require.Equal(t, schedule.OverlapAllowAll, b.describe(t, "a").Spec.Overlap, "the existing schedule is untouched")

		list, err := b.sc.List(ctx)
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, "a", list[0].ID)
		require.Equal(t, schedule.WorkflowID("b"), list[1].WorkflowID)

		require.NoError(t, b.sc.Delete(ctx, "a"))
		require.ErrorIs(t, b.sc.Delete(ctx, "a"), schedule.ErrScheduleNotFound)
		_, err = b.sc.Describe(ctx, "a")
		require.ErrorIs(t, err, schedule.ErrScheduleNotFound)
		require.ErrorIs(t, b.sc.Pause(ctx, "a"), schedule.ErrScheduleNotFound)
		require.ErrorIs(t, b.sc.Trigger(ctx, "nope"), schedule.ErrScheduleNotFound)
		list, err = b.sc.List(ctx)
		require.NoError(t, err)
		require.Len(t, list, 1)

		// A deleted ID can be created again.
		require.NoError(t, b.sc.Create(ctx, "a", schedule.Spec{Cron: []string{"@hourly"}}, job))
		require.Equal(t, []string{"@hourly"}, b.describe(t, "a").Spec.Cron)

		// Bad arguments.
		require.ErrorIs(t, b.sc.Create(ctx, "", everyMinute, job), schedule.ErrInvalidRequest)
		require.ErrorIs(t, b.sc.Create(ctx, "c", schedule.Spec{Cron: []string{"every day"}}, job), schedule.ErrInvalidSpec)
		require.ErrorIs(t, b.sc.Create(ctx, "c", everyMinute, schedule.Action{}), schedule.ErrInvalidAction)
		require.ErrorIs(t, b.sc.Create(ctx, "c", everyMinute, schedule.Action{Workflow: "job", Input: json.RawMessage("{")}), schedule.ErrInvalidAction)
		require.ErrorIs(t, b.sc.Update(ctx, "b", schedule.Spec{}), schedule.ErrInvalidSpec)
	})
}

func TestCreateConcurrentlyStartsOne(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := testContext(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = b.sc.Create(ctx, "race", everyMinute, job) })
	}
	wg.Wait()
	created := 0
	for _, err := range errs {
		if err == nil {
			created++
			continue
		}
		require.ErrorIs(t, err, schedule.ErrScheduleExists)
	}
	require.Equal(t, 1, created)
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := testContext(t)
	require.NoError(t, b.sc.Create(ctx, "u", schedule.Spec{Cron: []string{"@hourly"}}, job))
	b.waitSleeping(t, "u")
	require.NoError(t, b.sc.Update(ctx, "u", schedule.Spec{Cron: []string{"*/5 * * * *"}, Overlap: schedule.OverlapAllowAll}))
	b.waitDescribe(t, "u", "the new spec", func(d schedule.Description) bool {
		return len(d.NextActionTimes) > 0 && d.NextActionTimes[0].Equal(minute(5))
	})
	b.advanceTo(t, "u", minute(5))
	b.waitRuns(t, ids("u", minute(5))...)
}

// holdJob is an action whose runs run until they receive finish.
var holdJob = schedule.Action{Workflow: "job", Input: json.RawMessage(`{"hold":true}`)}

func TestOverlapSkipVersusAllowAll(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		b := setup(t, setupOpts{db: db})
		ctx := testContext(t)
		skip := schedule.Spec{Cron: []string{"* * * * *"}, Overlap: schedule.OverlapSkip}
		all := schedule.Spec{Cron: []string{"* * * * *"}, Overlap: schedule.OverlapAllowAll}
		require.NoError(t, b.sc.Create(ctx, "skip", skip, holdJob))
		require.NoError(t, b.sc.Create(ctx, "all", all, holdJob))

		b.waitSleeping(t, "skip")
		b.advanceTo(t, "all", minute(1))
		b.waitRuns(t, append(ids("skip", minute(1)), ids("all", minute(1))...)...)
		b.waitSleeping(t, "skip")
		b.advanceTo(t, "all", minute(2))

		// skip: the 09:01 run still runs, so 09:02 is dropped.
		d := b.waitDescribe(t, "skip", "the skipped action", func(d schedule.Description) bool { return len(d.RecentActions) == 2 })
		require.Equal(t, schedule.OutcomeSkipped, d.RecentActions[1].Outcome)
		require.EqualValues(t, 1, d.OverlapSkipped)
		require.Equal(t, ids("skip", minute(1)), d.Running)
		// allow_all: both run side by side.
		b.waitRuns(t, append(ids("skip", minute(1)), ids("all", minute(1), minute(2))...)...)
		d = b.waitDescribe(t, "all", "two running", func(d schedule.Description) bool { return len(d.Running) == 2 })
		require.Zero(t, d.OverlapSkipped)

		// Once the run finishes, skip starts again at the next fire time.
		require.NoError(t, finish.Send(ctx, b.e, schedule.ActionWorkflowID("skip", minute(1)), struct{}{}))
		waitFor(t, "the 09:01 run to complete", func() bool {
			info, err := b.e.Describe(ctx, schedule.ActionWorkflowID("skip", minute(1)))
			return err == nil && info.Status == durable.StatusCompleted
		})
		b.waitSleeping(t, "skip")
		b.advanceTo(t, "all", minute(3))
		b.waitRuns(t, append(ids("skip", minute(1), minute(3)), ids("all", minute(1), minute(2), minute(3))...)...)
	})
}

func TestOverlapBufferOne(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := testContext(t)
	spec := schedule.Spec{Cron: []string{"* * * * *"}, Overlap: schedule.OverlapBufferOne, CatchupWindow: time.Hour}
	require.NoError(t, b.sc.Create(ctx, "buf", spec, holdJob))
	b.advanceTo(t, "buf", minute(1))
	b.waitRuns(t, ids("buf", minute(1))...)
	b.advanceTo(t, "buf", minute(2)) // buffered
	b.waitDescribe(t, "buf", "a buffered action", func(d schedule.Description) bool { return d.Buffered })
	b.advanceTo(t, "buf", minute(3)) // dropped: the buffer holds one
	d := b.waitDescribe(t, "buf", "a dropped action", func(d schedule.Description) bool { return d.OverlapSkipped == 1 })
	require.Equal(t, []schedule.Outcome{schedule.OutcomeStarted, schedule.OutcomeBuffered, schedule.OutcomeSkipped},
		[]schedule.Outcome{d.RecentActions[0].Outcome, d.RecentActions[1].Outcome, d.RecentActions[2].Outcome})
	b.waitRuns(t, ids("buf", minute(1))...)

	// When 09:01's run closes, the buffered 09:02 action starts.
	require.NoError(t, finish.Send(ctx, b.e, schedule.ActionWorkflowID("buf", minute(1)), struct{}{}))
	b.waitRuns(t, ids("buf", minute(1), minute(2))...)
	d = b.waitDescribe(t, "buf", "the buffered start", func(d schedule.Description) bool { return !d.Buffered && d.Actions == 2 })
	last := d.RecentActions[len(d.RecentActions)-1]
	require.Equal(t, schedule.OutcomeStarted, last.Outcome)
	require.Equal(t, minute(2), last.ScheduledAt)
}

func TestOverlapCancelOther(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := testContext(t)
	spec := schedule.Spec{Cron: []string{"* * * * *"}, Overlap: schedule.OverlapCancelOther}
	require.NoError(t, b.sc.Create(ctx, "cancel", spec, holdJob))
	b.advanceTo(t, "cancel", minute(1))
	b.waitRuns(t, ids("cancel", minute(1))...)
	b.advanceTo(t, "cancel", minute(2))
	// 09:01 is asked to cancel, closes as canceled, then 09:02 starts.
	b.waitRuns(t, ids("cancel", minute(1), minute(2))...)
	info, err := b.e.Describe(ctx, schedule.ActionWorkflowID("cancel", minute(1)))
	require.NoError(t, err)
	require.Equal(t, durable.StatusCanceled, info.Status)
	d := b.waitDescribe(t, "cancel", "the second start", func(d schedule.Description) bool { return d.Actions == 2 })
	require.Equal(t, ids("cancel", minute(2)), d.Running)
}

func TestOverlapTerminateOther(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := testContext(t)
	spec := schedule.Spec{Cron: []string{"* * * * *"}, Overlap: schedule.OverlapTerminateOther}
	require.NoError(t, b.sc.Create(ctx, "term", spec, holdJob))
	b.advanceTo(t, "term", minute(1))
	b.waitRuns(t, ids("term", minute(1))...)
	b.advanceTo(t, "term", minute(2))
	b.waitRuns(t, ids("term", minute(1), minute(2))...)
	info, err := b.e.Describe(ctx, schedule.ActionWorkflowID("term", minute(1)))
	require.NoError(t, err)
	require.Equal(t, durable.StatusTerminated, info.Status)
}

// The process stops after the fire time, while the start activity is
// running: before it started the target, or after it started it but before
// its result was recorded. After a restart, each fire time has exactly one
// run.
func TestRestartBetweenFireAndStart(t *testing.T) {
	t.Parallel()
	for _, at := range []string{"before-start", "after-start"} {
		t.Run(at, func(t *testing.T) {
			t.Parallel()
			forEachStore(t, func(t *testing.T, db opener) {
				reached := make(chan struct{})
				var once sync.Once
				hook := func(ctx context.Context, workflowID string) error {
					if workflowID != schedule.ActionWorkflowID("nightly", minute(1)) {
						return nil
					}
					first := false
					once.Do(func() { first = true })
					if !first {
						return nil
					}
					close(reached)
					<-ctx.Done() // until the engine stops and cancels the attempt
					return ctx.Err()
				}
				cfg := &schedule.Config{}
				if at == "before-start" {
					cfg.Test.BeforeStart = hook
				} else {
					cfg.Test.AfterStart = hook
				}
				b := setup(t, setupOpts{db: db, cfg: cfg})
				ctx := testContext(t)
				require.NoError(t, b.sc.Create(ctx, "nightly", everyMinute, job))
				b.advanceTo(t, "nightly", minute(1))
				<-reached

				b.restart(t, 100*time.Millisecond)
				b.waitRuns(t, ids("nightly", minute(1))...)
				b.advanceTo(t, "nightly", minute(2))
				b.waitRuns(t, ids("nightly", minute(1), minute(2))...)

				d := b.waitDescribe(t, "nightly", "two actions", func(d schedule.Description) bool { return d.Actions == 2 })
				require.Zero(t, d.Failed)
				attempts, err := b.e.ActivityAttempts(ctx, d.RunID)
				require.NoError(t, err)
				require.GreaterOrEqual(t, len(attempts), 3, "the interrupted start was attempted again")
			})
		})
	}
}

// A schedule's run continues as new after MaxActionsPerRun actions and
// signals, carrying its state, so its history stays bounded.
func TestContinueAsNew(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		b := setup(t, setupOpts{db: db, cfg: &schedule.Config{MaxActionsPerRun: 4, RecentActions: 3}})
		ctx := testContext(t)
		require.NoError(t, b.sc.Create(ctx, "long", schedule.Spec{Cron: []string{"@hourly"}, Overlap: schedule.OverlapAllowAll}, job))
		b.waitSleeping(t, "long")
		first := b.describe(t, "long").RunID

		from := time.Date(2026, 1, 4, 0, 0, 0, 0, time.UTC)
		require.NoError(t, b.sc.Backfill(ctx, "long", from, from.Add(10*time.Hour)))
		var want []time.Time
		for i := range 10 {
			want = append(want, from.Add(time.Duration(i)*time.Hour))
		}
		b.waitRuns(t, ids("long", want...)...)
		d := b.waitDescribe(t, "long", "the backfill", func(d schedule.Description) bool { return d.Actions == 10 && d.PendingBackfills == 0 })
		require.GreaterOrEqual(t, d.Generation, 2)
		require.NotEqual(t, first, d.RunID)
		require.Len(t, d.RecentActions, 3)
		require.Equal(t, want[9], d.RecentActions[2].ScheduledAt, "state carried over")

		// The new run still fires on schedule.
		b.advanceTo(t, "long", t0.Add(time.Hour))
		b.waitRuns(t, ids("long", append(want, t0.Add(time.Hour))...)...)
		old, err := b.e.DescribeRun(ctx, first)
		require.NoError(t, err)
		require.NotEqual(t, durable.StatusRunning, old.Status)
		require.Less(t, old.HistoryLength, int64(60))
	})
}
