package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/internal/demo"
)

const (
	ticketJSON = `{"customer_id": "cus_7", "question": "Where is my invoice?"}`
	demoReply  = "Hi Ada, you can reset your password from Settings → Security. [offline model]"
)

// keel run works the run in its own process on a database it creates, shows
// each event on stderr and prints the result on stdout.
func TestRunCompletes(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "new.db") // created by keel run

	o := call(t, nil, "run", "steps", "--input", ticketJSON, "--id", "ticket-7", "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	require.Equal(t, demoReply+"\n", o.stdout)
	require.Contains(t, o.stderr, "started run ")
	require.Contains(t, o.stderr, " of workflow ticket-7 (steps)\n")
	require.Regexp(t, `(?m)^   1  \d\d:\d\d:\d\d\.\d{3}  WorkflowStarted +steps  id ticket-7  input {"customer_id":"cus_7",`, o.stderr)
	require.Regexp(t, `(?m)^   2  .*ActivityScheduled +fetch-customer  input "cus_7"$`, o.stderr)
	require.Regexp(t, `(?m)^   3  .*ActivityCompleted +fetch-customer  attempt 1  result "Ada Lovelace <ada@example.com>"$`, o.stderr)
	require.Regexp(t, `(?m)^  10  .*WorkflowCompleted +result "Hi Ada`, o.stderr)
	require.Equal(t, 10, strings.Count(o.stderr, "\n")-1, "one line per event:\n%s", o.stderr)

	e := clientOn(t, db)
	info, err := e.Describe(context.Background(), "ticket-7")
	require.NoError(t, err)
	require.Equal(t, durable.StatusCompleted, info.Status)

	// --json, with the input from a file.
	input := filepath.Join(t.TempDir(), "ticket.json")
	require.NoError(t, os.WriteFile(input, []byte(ticketJSON), 0o600))
	o = call(t, nil, "run", "steps", "--input", "@"+input, "--id", "ticket-8", "--json", "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	var out map[string]any
	require.NoError(t, json.Unmarshal([]byte(o.stdout), &out), o.stdout)
	info, err = e.Describe(context.Background(), "ticket-8")
	require.NoError(t, err)
	require.Equal(t, map[string]any{"run_id": info.RunID, "workflow_id": "ticket-8", "status": "completed", "result": demoReply}, out)
}

// Bad input is a one-line usage error that writes nothing.
func TestRunBadInput(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	missing := filepath.Join(t.TempDir(), "missing.db")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "no-such-workflow", "--input", "{}"}, `run: unknown workflow "no-such-workflow" (known: steps)`},
		{[]string{"run", "fetch-customer", "--input", `"cus_1"`}, `unknown workflow "fetch-customer"`}, // an activity
		{[]string{"run", "steps", "--input", `{"customer_id": `}, "run: --input is not valid JSON: unexpected end of JSON input"},
		{[]string{"run", "steps", "--input", `{} {}`}, "run: --input is not valid JSON"},
		{[]string{"run", "steps", "--input", ""}, "run: --input is empty"},
		{[]string{"run", "steps", "--input", "@" + missing}, "run: --input @" + missing},
		{[]string{"run", "steps", "--no-such-flag"}, "run: unknown flag: --no-such-flag (see keel run --help)"},
		{[]string{"run", "steps", "--timeout", "soon"}, `invalid argument "soon" for "--timeout"`},
		{[]string{"run", "steps", "--timeout", "-1s"}, "run: --timeout must not be negative"},
		{[]string{"run", "steps", "--wait", "--no-wait"}, "run: --wait and --no-wait contradict each other"},
		{[]string{"run", "steps", "--queue", " "}, "run: --queue is empty"},
		{[]string{"run"}, "run: accepts 1 arg(s), received 0 (see keel run --help)"},
		{[]string{"run", "steps", "extra"}, "run: accepts 1 arg(s), received 2"},
	} {
		requireUsageError(t, call(t, nil, append(tc.args, "--db", db)...), tc.want)
		requireUsageError(t, call(t, nil, append(tc.args, "--db", missing)...), tc.want)
	}
	requireNoRuns(t, clientOn(t, db))
	requireNoFile(t, missing)
}

// --no-wait starts the run and leaves it to a worker; --no-worker waits for
// a worker elsewhere; --timeout gives up with exit code 4.
func TestRunNoWaitNoWorkerTimeout(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	e := clientOn(t, db)
	ctx := context.Background()

	o := call(t, nil, "run", "steps", "--input", ticketJSON, "--id", "later", "--no-wait", "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	require.Equal(t, "later\n", o.stdout)
	info, err := e.Describe(ctx, "later")
	require.NoError(t, err)
	require.Equal(t, durable.StatusRunning, info.Status)
	require.EqualValues(t, 1, info.HistoryLength, "no worker took the run")

	// The same ID again attaches to the running run; nobody works it.
	o = call(t, nil, "run", "steps", "--input", ticketJSON, "--id", "later", "--no-worker", "--timeout", "300ms", "--json", "--db", db)
	require.Equal(t, exitTimeout, o.code, o.String())
	require.Equal(t, `{"run_id":"`+info.RunID+`","workflow_id":"later","status":"running"}`+"\n", o.stdout)
	require.Contains(t, o.stderr, "workflow later is already running as run "+info.RunID)
	require.Contains(t, o.stderr, "keel: run: gave up waiting after 300ms: run "+info.RunID+" of workflow later has not closed; a worker carries on with it")
	runs, _, err := e.ListRuns(ctx, &durable.ListOptions{WorkflowID: "later"})
	require.NoError(t, err)
	require.Len(t, runs, 1, "no second run of a running workflow ID")

	// Interrupted while waiting: exit code 4 too.
	var stdout, stderr bytes.Buffer
	run := keelCmd(nil, "run", "steps", "--input", ticketJSON, "--id", "interrupted", "--no-worker", "--db", db)
	run.Stdout, run.Stderr = &stdout, &stderr
	require.NoError(t, run.Start())
	waitForEvents(t, e, "interrupted", 1)
	require.NoError(t, run.Process.Signal(os.Interrupt))
	require.Error(t, run.Wait())
	require.Equal(t, exitTimeout, run.ProcessState.ExitCode(), "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	require.Empty(t, stdout.String())
	require.Contains(t, stderr.String(), "keel: run: interrupted: run ")

	// A worker in another process (this one) executes what keel run
	// --no-worker starts, and keel run prints the result.
	_, defs := demo.Definitions(io.Discard)
	engineOn(t, db, "default", defs...)
	o = call(t, nil, "run", "steps", "--input", ticketJSON, "--id", "elsewhere", "--no-worker", "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	require.Equal(t, demoReply+"\n", o.stdout)
	require.Contains(t, o.stderr, "WorkflowCompleted")
}

// A failed or canceled run prints its error and exits 1.
func TestRunFailsOrIsCanceled(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	e := clientOn(t, db)

	// An input of the wrong type fails the run.
	o := call(t, nil, "run", "steps", "--input", `"just a string"`, "--id", "wrong-type", "--db", db)
	require.Equal(t, exitFailed, o.code, o.String())
	require.Contains(t, o.stdout, "run failed: workflow steps: durable: decode payload into demo.Ticket")
	require.Contains(t, o.stderr, "WorkflowFailed           error: workflow steps")
	o = call(t, nil, "run", "steps", "--input", `"just a string"`, "--id", "wrong-type", "--json", "--db", db)
	require.Equal(t, exitFailed, o.code, o.String())
	var out runOutcome
	require.NoError(t, json.Unmarshal([]byte(o.stdout), &out), o.stdout)
	require.Equal(t, durable.StatusFailed, out.Status)
	require.Equal(t, "wrong-type", out.WorkflowID)
	require.Contains(t, out.Error, "decode payload into demo.Ticket")
	require.Nil(t, out.Result)

	// keel cancel, from another process, while keel run waits.
	var stdout, stderr bytes.Buffer
	run := keelCmd(nil, "run", "steps", "--input", ticketJSON, "--id", "to-cancel", "--db", db)
	run.Stdout, run.Stderr = &stdout, &stderr
	require.NoError(t, run.Start())
	waitForEvents(t, e, "to-cancel", 6) // generating the reply
	o = call(t, nil, "cancel", "to-cancel", "--reason", "customer withdrew", "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	err := run.Wait()
	require.Error(t, err)
	require.Equal(t, exitFailed, run.ProcessState.ExitCode(), "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	require.Equal(t, "run canceled: durable: canceled\n", stdout.String())
	require.Contains(t, stderr.String(), `CancelRequested          reason "customer withdrew"`)
	require.Contains(t, stderr.String(), "WorkflowCanceled")
	info, err := e.Describe(context.Background(), "to-cancel")
	require.NoError(t, err)
	require.Equal(t, durable.StatusCanceled, info.Status)
}

func TestFormatResult(t *testing.T) {
	t.Parallel()
	require.Equal(t, "plain text", formatResult(json.RawMessage(`"plain text"`)))
	require.Equal(t, "{\n  \"amount\": 12345678901234567890\n}", formatResult(json.RawMessage(`{"amount":12345678901234567890}`)))
	require.Equal(t, "null", formatResult(nil))
}

func TestKnownWorkflows(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"steps"}, knownWorkflows())
}

// waitUntil polls cond for up to 20s.
func waitUntil(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 20*time.Second, 20*time.Millisecond, msg)
}
