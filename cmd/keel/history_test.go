package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/internal/demo"
)

var (
	// flaky fails its first attempt.
	flaky = durable.NewActivity("flaky", func(ctx context.Context, in string) (string, error) {
		info, _ := durable.GetActivityInfo(ctx)
		if info.Attempt == 1 {
			return "", errors.New("boom on attempt 1")
		}
		return "ok on attempt " + strconv.Itoa(info.Attempt), nil
	}, &durable.ActivityOptions{RetryPolicy: durable.RetryPolicy{InitialInterval: 10 * time.Millisecond}})
	// doomed fails for good.
	doomed = durable.NewActivity("doomed", func(ctx context.Context, in string) (string, error) {
		return "", durable.NonRetryable(errors.New("no way"))
	}, nil)
	// eventful sleeps, waits for a signal, runs flaky and then doomed, and
	// fails.
	eventful = durable.NewWorkflow("eventful", func(ctx durable.Context, in string) (string, error) {
		if err := durable.Sleep(ctx, 10*time.Millisecond); err != nil {
			return "", err
		}
		v, err := durable.NewSignal[string]("go-on").Receive(ctx)
		if err != nil {
			return "", err
		}
		r, err := flaky.Run(ctx, v)
		if err != nil {
			return "", err
		}
		return doomed.Run(ctx, r)
	})
)

func TestHistoryTimeline(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := engineOn(t, db, "default", flaky, doomed, eventful)
	h, err := eventful.Start(ctx, e, "start", &durable.StartOptions{ID: "eventful-1"})
	require.NoError(t, err)
	waitForEvents(t, e, "eventful-1", 3) // the timer fired
	o := call(t, nil, "signal", "eventful-1", "go-on", "--payload", `"yes"`, "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	_, err = h.Result(ctx)
	require.Error(t, err)

	o = call(t, nil, "history", "eventful-1", "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	require.Empty(t, o.stderr)
	out := o.stdout
	require.Contains(t, out, "Run "+h.RunID()+" of workflow eventful-1 (eventful): failed\n")
	require.Regexp(t, `Task queue default, created \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, closed \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, 9 events\n`, out)
	for _, line := range []string{
		`(?m)^   1  \d\d:\d\d:\d\d\.\d{3}  WorkflowStarted          eventful  id eventful-1  input "start"$`,
		`(?m)^   2  .{12}  TimerStarted             timer 10ms, fires \d\d:\d\d:\d\d\.\d{3}$`,
		`(?m)^   3  .{12}  TimerFired               timer 10ms$`,
		`(?m)^   4  .{12}  SignalReceived           go-on  payload "yes"$`,
		`(?m)^   5  .{12}  ActivityScheduled        flaky  input "yes"$`,
		`(?m)^   6  .{12}  ActivityCompleted        flaky  attempt 2  result "ok on attempt 2"$`,
		`(?m)^   7  .{12}  ActivityScheduled        doomed  input "ok on attempt 2"$`,
		`(?m)^   8  .{12}  ActivityFailed           doomed  attempt 1  error: no way$`,
		`(?m)^   9  .{12}  WorkflowFailed           error: .*no way$`,
		`(?m)^Activity attempts that did not complete \(kept outside the history\):\n  \d\d:\d\d:\d\d\.\d{3}  flaky attempt 1 on \S+: failed: boom on attempt 1\n  .{12}  doomed attempt 1 on \S+: failed: no way\n\z`,
	} {
		require.Regexp(t, line, out)
	}

	// A run ID names the same run.
	o2 := call(t, nil, "history", h.RunID(), "--db", db)
	require.Equal(t, exitOK, o2.code, o2.String())
	require.Equal(t, out, o2.stdout)
}

// keel history --json exports the history as ExportHistory does, and keel
// replay accepts it.
func TestHistoryJSONReplays(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := newDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	support, defs := demo.Definitions(io.Discard)
	e := engineOn(t, db, "default", defs...)
	h, err := support.Start(ctx, e, demo.Ticket{CustomerID: "cus_4", Question: "Can I pay by invoice?"}, &durable.StartOptions{ID: "ticket-4"})
	require.NoError(t, err)
	_, err = h.Result(ctx)
	require.NoError(t, err)
	want, err := e.ExportHistory(ctx, h.RunID())
	require.NoError(t, err)

	o := call(t, nil, "history", "ticket-4", "--json", "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	require.JSONEq(t, string(want), o.stdout)
	file := filepath.Join(dir, "ticket-4.json")
	require.NoError(t, os.WriteFile(file, []byte(o.stdout), 0o600))
	o = call(t, nil, "replay", file)
	require.Equal(t, exitOK, o.code, o.String())
	require.Contains(t, o.stdout, "1 replayed: 1 ok, 0 failed, 0 unreadable")
}

func TestHistoryErrors(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	missing := filepath.Join(t.TempDir(), "missing.db")
	requireOneLineError(t, call(t, nil, "history", "no-such-run", "--db", db), exitNotFound, `keel: history: no run or workflow with ID "no-such-run"`)
	requireOneLineError(t, call(t, nil, "history", "no-such-run", "--json", "--db", db), exitNotFound, `no run or workflow with ID "no-such-run"`)
	requireUsageError(t, call(t, nil, "history", "--db", db), "history: accepts 1 arg(s), received 0")
	requireUsageError(t, call(t, nil, "history", "a", "b", "--db", db), "history: accepts 1 arg(s), received 2")
	requireUsageError(t, call(t, nil, "history", "", "--db", db), "history: the run or workflow ID is empty")
	requireUsageError(t, call(t, nil, "history", "x", "--jsn", "--db", db), "history: unknown flag: --jsn")
	requireUsageError(t, call(t, nil, "history", "x", "--db", missing), "does not exist")
	requireNoFile(t, missing)
}

func TestEventFormatterAbbreviates(t *testing.T) {
	t.Parallel()
	long := `{"text": "` + "a very long payload that goes on and on and on and on and on and on and on" + `"}`
	require.Equal(t, `{"text":"a very long payload that goes on and on and on and…`, abbrevJSON([]byte(long), payloadWidth))
	require.Equal(t, `{"n":12345678901234567890,"s":"<b>"}`, abbrevJSON([]byte(`{"n": 12345678901234567890, "s": "\u003cb\u003e"}`), payloadWidth))
}
