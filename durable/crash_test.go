package durable_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
)

// The crash tests run the seed scenario (fetch customer, search KB, generate
// reply, send email) in a child process of the test binary, which SIGKILLs
// itself at a chosen point, then resume it in a second child process. Every
// activity execution appends a line to a file outside the engine.

const (
	crashHelperEnv = "KEEL_CRASH_HELPER"
	crashDBEnv     = "KEEL_CRASH_DB"
	crashLogEnv    = "KEEL_CRASH_LOG"
	crashModeEnv   = "KEEL_CRASH_MODE"
)

// crashHelperMain is the child process: it runs (or resumes) the support
// workflow "ticket-1" until it completes, unless it kills itself first.
func crashHelperMain() int {
	mode := os.Getenv(crashModeEnv)
	logPath := os.Getenv(crashLogEnv)
	record := func(ctx context.Context, step string) {
		info, _ := durable.GetActivityInfo(ctx)
		f, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(f, "%s attempt=%d key=%s pid=%d\n", step, info.Attempt, info.IdempotencyKey, os.Getpid())
		if err := f.Sync(); err != nil {
			panic(err)
		}
		f.Close()
	}
	kill := func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	opts := &durable.ActivityOptions{
		StartToCloseTimeout: 2 * time.Second,
		RetryPolicy:         durable.RetryPolicy{InitialInterval: 50 * time.Millisecond},
	}
	fetch := durable.NewActivity("fetch-customer", func(ctx context.Context, id string) (string, error) {
		record(ctx, "fetch-customer")
		return "Ada (" + id + ")", nil
	}, opts)
	search := durable.NewActivity("search-kb", func(ctx context.Context, q string) (string, error) {
		record(ctx, "search-kb")
		return "KB-12: reset your password from the login page", nil
	}, opts)
	generate := durable.NewActivity("generate-reply", func(ctx context.Context, prompt string) (string, error) {
		info, _ := durable.GetActivityInfo(ctx)
		record(ctx, "generate-reply")
		if mode == "during-step-3" && info.Attempt == 1 {
			kill()
		}
		return "Hi " + prompt, nil
	}, opts)
	send := durable.NewActivity("send-email", func(ctx context.Context, body string) (string, error) {
		info, _ := durable.GetActivityInfo(ctx)
		if mode == "after-step-3" && info.Attempt == 1 {
			// Step 4 is scheduled only by the commit that records step 3's
			// result, so step 3 is recorded; step 4 has not acted yet.
			kill()
		}
		record(ctx, "send-email")
		return "sent", nil
	}, opts)
	support := durable.NewWorkflow("support", func(ctx durable.Context, customerID string) (string, error) {
		customer, err := fetch.Run(ctx, customerID)
		if err != nil {
			return "", err
		}
		article, err := search.Run(ctx, "password reset")
		if err != nil {
			return "", err
		}
		reply, err := generate.Run(ctx, customer+": "+article)
		if err != nil {
			return "", err
		}
		if _, err := send.Run(ctx, reply); err != nil {
			return "", err
		}
		return reply, nil
	})

	st, err := sqlitestore.Open(os.Getenv(crashDBEnv), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer st.Close()
	e, err := durable.New(st, &durable.Config{
		PollInterval:        50 * time.Millisecond,
		WorkflowTaskTimeout: time.Second,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	e.MustRegister(fetch, search, generate, send, support)
	e.NewWorker(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer e.Stop(context.Background())
	out, err := support.Run(ctx, e, "c-42", &durable.StartOptions{ID: "ticket-1"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	fmt.Println("result:", out)
	return 0
}

func runCrashHelper(t *testing.T, db, logPath, mode string) (exitErr error, output string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashHelperEnv+"=1", crashDBEnv+"="+db, crashLogEnv+"="+logPath, crashModeEnv+"="+mode)
	out, err := cmd.CombinedOutput()
	return err, string(out)
}

type stepLine struct {
	step, attempt, key, pid string
}

func readSteps(t *testing.T, path string) []stepLine {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var lines []stepLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l stepLine
		for i, field := range strings.Fields(sc.Text()) {
			if i == 0 {
				l.step = field
				continue
			}
			k, v, _ := strings.Cut(field, "=")
			switch k {
			case "attempt":
				l.attempt = v
			case "key":
				l.key = v
			case "pid":
				l.pid = v
			}
		}
		lines = append(lines, l)
	}
	require.NoError(t, sc.Err())
	return lines
}

func countStep(lines []stepLine, step string) int {
	n := 0
	for _, l := range lines {
		if l.step == step {
			n++
		}
	}
	return n
}

func TestCrashAfterStepThreeResumesInNewProcess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, logPath := filepath.Join(dir, "keel.db"), filepath.Join(dir, "steps.log")

	err, out := runCrashHelper(t, db, logPath, "after-step-3")
	require.Error(t, err, out)
	require.Equal(t, "signal: killed", err.Error(), out)
	before := readSteps(t, logPath)
	require.Len(t, before, 3, "steps 1-3 ran before the kill")
	require.Equal(t, 0, countStep(before, "send-email"))

	err, out = runCrashHelper(t, db, logPath, "")
	require.NoError(t, err, out)
	require.Contains(t, out, "result: Hi Ada (c-42): KB-12")

	steps := readSteps(t, logPath)
	require.Equal(t, 1, countStep(steps, "fetch-customer"))
	require.Equal(t, 1, countStep(steps, "search-kb"))
	require.Equal(t, 1, countStep(steps, "generate-reply"))
	require.Equal(t, 1, countStep(steps, "send-email"))
	require.NotEqual(t, steps[0].pid, steps[3].pid, "step 4 ran in the second process")
	assertSingleCompletions(t, db)
}

func TestCrashDuringStepThreeRetriesWithSameKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, logPath := filepath.Join(dir, "keel.db"), filepath.Join(dir, "steps.log")

	err, out := runCrashHelper(t, db, logPath, "during-step-3")
	require.Error(t, err, out)
	require.Equal(t, "signal: killed", err.Error(), out)

	err, out = runCrashHelper(t, db, logPath, "during-step-3")
	require.NoError(t, err, out)

	steps := readSteps(t, logPath)
	require.Equal(t, 1, countStep(steps, "fetch-customer"))
	require.Equal(t, 1, countStep(steps, "search-kb"))
	require.Equal(t, 2, countStep(steps, "generate-reply"))
	require.Equal(t, 1, countStep(steps, "send-email"))
	var gen []stepLine
	for _, l := range steps {
		if l.step == "generate-reply" {
			gen = append(gen, l)
		}
	}
	require.Equal(t, "1", gen[0].attempt)
	require.Equal(t, "2", gen[1].attempt)
	require.Equal(t, gen[0].key, gen[1].key, "the idempotency key is stable across attempts")
	require.NotEqual(t, gen[0].pid, gen[1].pid)
	assertSingleCompletions(t, db)
}

// assertSingleCompletions checks the run's history: each activity completed
// exactly once and the run completed.
func assertSingleCompletions(t *testing.T, db string) {
	t.Helper()
	st, err := sqlitestore.Open(db, nil)
	require.NoError(t, err)
	defer st.Close()
	e, err := durable.New(st, nil)
	require.NoError(t, err)
	ctx := context.Background()
	info, err := e.Describe(ctx, "ticket-1")
	require.NoError(t, err)
	require.Equal(t, durable.StatusCompleted, info.Status)
	types := eventTypes(t, e, info.RunID)
	require.Equal(t, 4, countOf(types, durable.EventActivityScheduled))
	require.Equal(t, 4, countOf(types, durable.EventActivityCompleted))
	require.Equal(t, 1, countOf(types, durable.EventWorkflowCompleted))
}
