package schedule_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/durabletest"
	"github.com/keelhq/keel/durable/schedule"
	"github.com/keelhq/keel/durable/store/sqlitestore"
)

// The crash test runs a schedule in a child process of the test binary that
// SIGKILLs itself inside the start activity of the 09:01 fire time (before
// or after it started the target), then resumes in a second child process
// on the real clock, long after: the start is retried and the fire time
// gets exactly one run.

const (
	crashHelperEnv = "KEEL_SCHEDULE_CRASH_HELPER"
	crashDBEnv     = "KEEL_SCHEDULE_CRASH_DB"
	crashModeEnv   = "KEEL_SCHEDULE_CRASH_MODE"
)

// crashT0 is the fake time at which the first child creates the schedule.
var crashT0 = time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)

var crashFire = schedule.ActionWorkflowID("crash", crashT0.Add(time.Minute))

// crashHelperMain is the child process. Modes "before-start" and
// "after-start" create the schedule on a fake clock, move the clock to the
// first fire time and kill the process at that point of the start
// activity; mode "resume" runs on the real clock until the first fire
// time's action is recorded and its run has completed.
func crashHelperMain() int {
	mode := os.Getenv(crashModeEnv)
	kill := func(ctx context.Context, workflowID string) error {
		if workflowID == crashFire {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		return nil
	}
	cfg := &durable.Config{PollInterval: 50 * time.Millisecond, WorkflowTaskTimeout: time.Second}
	scfg := &schedule.Config{}
	switch mode {
	case "before-start":
		scfg.Test.BeforeStart = kill
	case "after-start":
		scfg.Test.AfterStart = kill
	}
	var clock *durabletest.Clock
	if mode != "resume" {
		clock = durabletest.NewClock(crashT0)
		cfg.Test.Clock = clock
	}

	st, err := sqlitestore.Open(os.Getenv(crashDBEnv), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer st.Close()
	e, err := durable.New(st, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	sc, err := schedule.New(e, scfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	e.MustRegister(newJob())
	e.NewWorker(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer e.Stop(context.Background())

	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	until := func(cond func() bool) bool {
		for !cond() {
			select {
			case <-poll.C:
			case <-ctx.Done():
				return false
			}
		}
		return true
	}

	if mode != "resume" {
		if err := sc.Create(ctx, "crash", schedule.Spec{Cron: []string{"* * * * *"}}, schedule.Action{Workflow: "job"}); err != nil {
			fmt.Fprintln(os.Stderr, "create:", err)
			return 1
		}
		// Move the clock once the schedule's timer is recorded.
		if !until(func() bool {
			info, err := e.Describe(ctx, schedule.WorkflowID("crash"))
			if err != nil {
				return false
			}
			h, err := e.GetHistory(ctx, info.RunID)
			return err == nil && h.Events[len(h.Events)-1].Type == durable.EventTimerStarted
		}) {
			fmt.Fprintln(os.Stderr, "the schedule never slept")
			return 1
		}
		clock.Set(crashT0.Add(time.Minute))
		<-ctx.Done() // killed before this
		fmt.Fprintln(os.Stderr, "not killed")
		return 1
	}

	var info durable.RunInfo
	if !until(func() bool {
		d, err := sc.Describe(ctx, "crash")
		if err != nil || len(d.RecentActions) == 0 || d.RecentActions[0].WorkflowID != crashFire {
			return false
		}
		info, err = e.Describe(ctx, crashFire)
		return err == nil && info.Status == durable.StatusCompleted
	}) {
		fmt.Fprintln(os.Stderr, "the fire time's action was never recorded, or its run never completed")
		return 1
	}
	fmt.Println("completed:", info.RunID)
	return 0
}

func runCrashHelper(t *testing.T, db, mode string) (exitErr error, output string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashHelperEnv+"=1", crashDBEnv+"="+db, crashModeEnv+"="+mode)
	out, err := cmd.CombinedOutput()
	return err, string(out)
}

func TestCrashBetweenFireAndStart(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"before-start", "after-start"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			db := filepath.Join(t.TempDir(), "keel.db")

			err, out := runCrashHelper(t, db, mode)
			require.Error(t, err, out)
			require.Equal(t, "signal: killed", err.Error(), out)

			err, out = runCrashHelper(t, db, "resume")
			require.NoError(t, err, out)
			require.Contains(t, out, "completed:")

			// Inspect the database with an engine that runs nothing.
			st, err := sqlitestore.Open(db, nil)
			require.NoError(t, err)
			defer st.Close()
			e, err := durable.New(st, nil)
			require.NoError(t, err)
			sc, err := schedule.New(e, nil)
			require.NoError(t, err)
			e.MustRegister(newJob())
			ctx := testContext(t)

			runs, err := jobRuns(ctx, e)
			require.NoError(t, err)
			require.Equal(t, 1, runs[crashFire], "exactly one run for the fire time: %v", keys(runs))
			for id, n := range runs {
				require.Equal(t, 1, n, "one run for %s", id)
			}

			d, err := sc.Describe(ctx, "crash")
			require.NoError(t, err)
			require.Equal(t, crashFire, d.RecentActions[0].WorkflowID)
			require.Equal(t, schedule.OutcomeStarted, d.RecentActions[0].Outcome)
			require.Equal(t, runs[crashFire], 1)
			require.Positive(t, d.CatchupMissed, "the fire times missed while down were skipped")

			// The start activity of 09:01 ran twice: the killed attempt and
			// its retry in the second process.
			attempts, err := e.ActivityAttempts(ctx, d.RunID)
			require.NoError(t, err)
			firstSeq, startAttempts := int64(-1), 0
			for _, a := range attempts {
				if a.ActivityType != "keel.schedule.start" {
					continue
				}
				if firstSeq < 0 {
					firstSeq = a.Seq
				}
				if a.Seq == firstSeq {
					startAttempts++
				}
			}
			require.Equal(t, 2, startAttempts, "the killed attempt and its retry")
		})
	}
}
