package reliability_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/internal/reliability"
)

// The SQLite kill test. A child process (this test binary, re-executed)
// runs "mill" workflows on a SQLite file: each runs three to six activities
// in sequence with durable timers between them, and every activity attempt
// appends a line to a file outside the engine. Each child resumes the
// unfinished runs and keeps millInFlight new workflows running until the
// parent SIGKILLs it, at a random moment; the parent then checks the file.
// A last child, not killed, runs every workflow to its end.

// Environment of the kill test's child.
const (
	killDBEnv  = "KEEL_KILL_DB"  // the SQLite file
	killLogEnv = "KEEL_KILL_LOG" // the activities' side-effect log
	killGenEnv = "KEEL_KILL_GEN" // the child's number; unset for the last child
)

const (
	millInFlight = 24 // new workflows a child keeps running
	millShapes   = 8  // distinct inputs, each with its reference history
)

func millID(gen, i int) string { return fmt.Sprintf("mill-%04d-%04d", gen, i) }

func millShape(gen, i int) int { return (gen*7 + i) % millShapes }

// millStep is a mill activity's input.
type millStep struct {
	Acc int `json:"acc"`
	I   int `json:"i"`
}

func millNext(s millStep) int { return (s.Acc*31 + s.I + 7) % 1_000_003 }

// millResult is the result a mill workflow of the shape must return.
func millResult(shape int) int {
	acc := shape + 1
	for i := range 3 + shape%4 {
		acc = millNext(millStep{Acc: acc, I: i})
	}
	return acc
}

type mill struct {
	step *durable.Activity[millStep, int]
	wf   *durable.Workflow[int, int]
}

// newMill returns the mill workflow and activity. With a log path, every
// activity attempt appends "workflowID seq attempt result" to it.
func newMill(logPath string) *mill {
	m := &mill{}
	m.step = durable.NewActivity("mill-step", func(ctx context.Context, s millStep) (int, error) {
		out := millNext(s)
		if logPath != "" {
			info, _ := durable.GetActivityInfo(ctx)
			line := fmt.Sprintf("%s %d %d %d\n", info.WorkflowID, info.Seq, info.Attempt, out)
			f, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return 0, err
			}
			// One write: a SIGKILL lands before or after it.
			_, err = f.WriteString(line)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return 0, err
			}
		}
		return out, nil
	}, &durable.ActivityOptions{
		StartToCloseTimeout: time.Second,
		RetryPolicy:         durable.RetryPolicy{InitialInterval: 20 * time.Millisecond, MaximumInterval: 200 * time.Millisecond},
	})
	m.wf = durable.NewWorkflow("mill", func(ctx durable.Context, shape int) (int, error) {
		acc := shape + 1
		for i := range 3 + shape%4 {
			var err error
			if acc, err = m.step.Run(ctx, millStep{Acc: acc, I: i}); err != nil {
				return 0, err
			}
			if i%2 == 0 {
				if err := durable.Sleep(ctx, time.Duration(1+shape%3)*10*time.Millisecond); err != nil {
					return 0, err
				}
			}
		}
		return acc, nil
	})
	return m
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// killChildMain is the child. Numbered, it keeps millInFlight workflows of
// its own running until it is killed; unnumbered (the last child), it works
// until no run is running.
func killChildMain() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := sqlitestore.Open(os.Getenv(killDBEnv), nil)
	if err != nil {
		return err
	}
	defer st.Close()
	e, err := durable.New(st, &durable.Config{
		Logger:              quietLogger(),
		PollInterval:        20 * time.Millisecond,
		WorkflowTaskTimeout: time.Second,
	})
	if err != nil {
		return err
	}
	m := newMill(os.Getenv(killLogEnv))
	e.MustRegister(m.step, m.wf)
	e.NewWorker(&durable.WorkerOptions{MaxConcurrentWorkflowTasks: 16, MaxConcurrentActivities: 32})
	if err := e.Start(ctx); err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Stop(stopCtx)
	}()

	if g := os.Getenv(killGenEnv); g != "" {
		gen, err := strconv.Atoi(g)
		if err != nil {
			return fmt.Errorf("%s: %w", killGenEnv, err)
		}
		slots := make(chan struct{}, millInFlight)
		for i := 0; ; i++ {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			h, err := m.wf.Start(ctx, e, millShape(gen, i), &durable.StartOptions{
				ID: millID(gen, i), IDReusePolicy: durable.RejectDuplicate,
			})
			if err != nil {
				return err
			}
			go func() {
				_, _ = h.Result(ctx)
				<-slots
			}()
		}
	}
	for {
		runs, _, err := e.ListRuns(ctx, &durable.ListOptions{Status: durable.StatusRunning, Limit: 1})
		if err != nil {
			return err
		}
		if len(runs) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("runs still running: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// killFigures are what the kill test measured.
type killFigures struct {
	kills, finishedBeforeKill  int
	integrityChecks, histories int // histories compared with their reference
	runs, activities           int // at the end
	executions                 int // activity attempts that ran (log lines)
}

func TestSQLiteKillMidWrite(t *testing.T) {
	t.Parallel()
	kills := reliability.Pick(30, 1000)
	maxDelay := time.Second
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("KEEL_KILL_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
	}
	rng := rand.New(rand.NewPCG(seed, 1)) //nolint:gosec // kill timing, not security
	dir := t.TempDir()
	v := &killVerifier{path: filepath.Join(dir, "keel.db"), ref: referenceHistories(t), closed: map[string]bool{}, open: map[string]bool{}}
	logPath := filepath.Join(dir, "side-effects.log")
	fig := killFigures{}

	child := func(gen string) (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=kill-sqlite", killDBEnv+"="+v.path, killLogEnv+"="+logPath,
			killGenEnv+"="+gen)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		return cmd, &out
	}
	for k := range kills {
		cmd, out := child(strconv.Itoa(k))
		require.NoError(t, cmd.Start())
		delay := time.Duration(rng.Int64N(int64(maxDelay)))
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var err error
		select {
		case err = <-exited:
			require.NoError(t, err, "child %d exited on its own before its kill:\n%s", k, out)
			fig.finishedBeforeKill++
		case <-time.After(delay):
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			err = <-exited
			var exit *exec.ExitError
			if errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL {
				fig.kills++
			} else {
				require.NoError(t, err, "child %d failed before its kill:\n%s", k, out)
				fig.finishedBeforeKill++
			}
		}
		v.check(t, false, fmt.Sprintf("after kill %d (seed %d, child killed %v after its start)", k, seed, delay))
	}

	// Resume every run to its end.
	cmd, out := child("")
	require.NoError(t, cmd.Run(), "the last child, not killed:\n%s", out)
	v.check(t, true, "at the end")
	fig.integrityChecks, fig.histories = v.integrityChecks, v.histories

	fig.runs, fig.activities, fig.executions = v.checkSideEffects(t, logPath)
	require.Len(t, v.closed, fig.runs, "every run was checked complete")
	t.Logf("SQLite kill mid-write (seed %d): %d kills (%d children finished before their kill), %d integrity checks, "+
		"%d histories compared with the uncrashed one, %d runs exact, %d activity results recorded once each, "+
		"%d activity executions (%d repeated after kills)",
		seed, fig.kills, fig.finishedBeforeKill, fig.integrityChecks, fig.histories, fig.runs, fig.activities,
		fig.executions, fig.executions-fig.activities)
	require.Positive(t, fig.kills, "at least one child was killed mid-work")
}

// referenceHistories runs each mill shape to completion on an engine that
// is never killed and returns their scrubbed histories.
func referenceHistories(t *testing.T) map[int][]string {
	t.Helper()
	ctx := t.Context()
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "reference.db"), nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	e, err := durable.New(st, &durable.Config{Logger: quietLogger(), PollInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	m := newMill("")
	e.MustRegister(m.step, m.wf)
	e.NewWorker(nil)
	require.NoError(t, e.Start(ctx))
	defer func() { require.NoError(t, e.Stop(context.Background())) }()
	ref := map[int][]string{}
	for shape := range millShapes {
		h, err := m.wf.Start(ctx, e, shape, &durable.StartOptions{ID: fmt.Sprintf("reference-%d", shape)})
		require.NoError(t, err)
		got, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, millResult(shape), got)
		hist, err := e.GetHistory(ctx, h.RunID())
		require.NoError(t, err)
		ref[shape] = scrubHistory(t, hist)
	}
	return ref
}

// scrubHistory renders a history as "Type data" lines with the data's
// timestamps, IDs and attempt numbers removed: what must be the same in
// every run of the same workflow with the same input.
func scrubHistory(t *testing.T, h *durable.History) []string {
	t.Helper()
	out := make([]string, len(h.Events))
	for i, ev := range h.Events {
		var data map[string]any
		require.NoError(t, json.Unmarshal(ev.Data, &data), "event %d of run %s", ev.ID, h.Run.RunID)
		for _, k := range []string{"fire_at", "run_id", "workflow_id", "parent_run_id", "parent_workflow_id", "attempt"} {
			delete(data, k)
		}
		b, err := json.Marshal(data) // sorted keys
		require.NoError(t, err)
		out[i] = ev.Type + " " + string(b)
	}
	return out
}

// killVerifier checks the SQLite file between kills.
type killVerifier struct {
	path   string
	ref    map[int][]string
	closed map[string]bool // workflow IDs whose run was checked closed
	open   map[string]bool // run IDs still running at the last check
	newest string          // the newest run at the last check

	integrityChecks, histories int
}

// check opens the file after a kill: it must pass PRAGMA integrity_check
// and open as a store, and every run's history must be a prefix of its
// reference (all of it, with the exact result, once closed). Each check
// looks at the runs created since the last one and those that were still
// running then. With final, every run must have completed.
func (v *killVerifier) check(t *testing.T, final bool, when string) {
	t.Helper()
	ctx := t.Context()
	db, err := sql.Open("sqlite", sqlitestore.DSN(v.path))
	require.NoError(t, err)
	var integrity string
	require.NoError(t, db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&integrity), when)
	require.NoError(t, db.Close())
	require.Equal(t, "ok", integrity, "integrity check %s", when)
	v.integrityChecks++

	st, err := sqlitestore.Open(v.path, nil)
	require.NoError(t, err, "open the store %s", when)
	defer func() { require.NoError(t, st.Close()) }()
	e, err := durable.New(st, &durable.Config{Logger: quietLogger()})
	require.NoError(t, err)

	var runs []durable.RunInfo
	for runID := range v.open {
		run, err := e.DescribeRun(ctx, runID)
		require.NoError(t, err)
		runs = append(runs, run)
	}
	cursor, newest := "", ""
	for done := false; !done; {
		page, next, err := e.ListRuns(ctx, &durable.ListOptions{Cursor: cursor, Limit: 200})
		require.NoError(t, err)
		for _, run := range page {
			if newest == "" {
				newest = run.RunID
			}
			if run.RunID == v.newest {
				done = true
				break
			}
			runs = append(runs, run)
		}
		done = done || next == ""
		cursor = next
	}
	if newest != "" {
		v.newest = newest
	}
	v.open = map[string]bool{}
	for _, run := range runs {
		v.checkRun(t, e, run, final, when)
	}
}

// checkRun checks one run's history against its reference.
func (v *killVerifier) checkRun(t *testing.T, e *durable.Engine, run durable.RunInfo, final bool, when string) {
	t.Helper()
	ctx := t.Context()
	require.False(t, v.closed[run.WorkflowID], "workflow %s has a second run", run.WorkflowID)
	h, err := e.GetHistory(ctx, run.RunID)
	require.NoError(t, err)
	start, err := h.Events[0].Details()
	require.NoError(t, err)
	var shape int
	require.NoError(t, json.Unmarshal(start.Input, &shape))
	got, want := scrubHistory(t, h), v.ref[shape]
	v.histories++
	require.LessOrEqual(t, len(got), len(want), "run %s (%s) %s: history longer than the uncrashed one:\n%s",
		run.WorkflowID, run.Status, when, strings.Join(got, "\n"))
	require.Equal(t, want[:len(got)], got, "run %s (%s) %s: history is not a prefix of the uncrashed one",
		run.WorkflowID, run.Status, when)
	if final {
		require.Equal(t, durable.StatusCompleted, run.Status, "run %s %s", run.WorkflowID, when)
	}
	if run.Status == durable.StatusRunning {
		v.open[run.RunID] = true
		return
	}
	require.Equal(t, durable.StatusCompleted, run.Status, "run %s %s: %s", run.WorkflowID, when, run.LastTaskFailure)
	require.Len(t, got, len(want), "completed run %s has the whole history", run.WorkflowID)
	done, err := h.Events[len(h.Events)-1].Details()
	require.NoError(t, err)
	var result int
	require.NoError(t, json.Unmarshal(done.Result, &result))
	require.Equal(t, millResult(shape), result, "result of run %s", run.WorkflowID)
	v.closed[run.WorkflowID] = true
}

// checkSideEffects checks, at the end, every activity against the
// side-effect log: each activity of each history completed exactly once,
// it ran at least once (a kill may have made it run again), every run of
// it produced the result recorded, and nothing ran that no history
// scheduled. It returns the runs, the activities and the executions.
func (v *killVerifier) checkSideEffects(t *testing.T, logPath string) (runs, activities, executions int) {
	t.Helper()
	type key struct {
		wf  string
		seq int64
	}
	ran := map[key][]int{} // results of every execution
	f, err := os.Open(logPath)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		require.Len(t, fields, 4, "side-effect log line %q", sc.Text())
		seq, err1 := strconv.ParseInt(fields[1], 10, 64)
		attempt, err2 := strconv.Atoi(fields[2])
		result, err3 := strconv.Atoi(fields[3])
		require.NoError(t, errors.Join(err1, err2, err3), "side-effect log line %q", sc.Text())
		require.Positive(t, attempt)
		k := key{fields[0], seq}
		ran[k] = append(ran[k], result)
		executions++
	}
	require.NoError(t, sc.Err())

	ctx := t.Context()
	st, err := sqlitestore.Open(v.path, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	e, err := durable.New(st, &durable.Config{Logger: quietLogger()})
	require.NoError(t, err)
	seen := map[key]bool{}
	cursor := ""
	for {
		list, next, err := e.ListRuns(ctx, &durable.ListOptions{Cursor: cursor, Limit: 500})
		require.NoError(t, err)
		for _, run := range list {
			runs++
			h, err := e.GetHistory(ctx, run.RunID)
			require.NoError(t, err)
			completed := map[int64]int{}
			scheduled := map[int64]bool{}
			for _, ev := range h.Events {
				d, err := ev.Details()
				require.NoError(t, err)
				switch ev.Type {
				case durable.EventActivityScheduled:
					scheduled[d.Seq] = true
				case durable.EventActivityCompleted:
					k := key{run.WorkflowID, d.Seq}
					var result int
					require.NoError(t, json.Unmarshal(d.Result, &result))
					completed[d.Seq]++
					require.NotEmpty(t, ran[k], "activity %d of %s is recorded but never ran", d.Seq, run.WorkflowID)
					for _, r := range ran[k] {
						require.Equal(t, result, r, "an execution of activity %d of %s produced another result", d.Seq, run.WorkflowID)
					}
					seen[k] = true
					activities++
				}
			}
			for seq := range scheduled {
				require.Equal(t, 1, completed[seq], "activity %d of %s: completions recorded", seq, run.WorkflowID)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	for k := range ran {
		require.True(t, seen[k], "activity %d of %s ran but no history scheduled it", k.seq, k.wf)
	}
	return runs, activities, executions
}
