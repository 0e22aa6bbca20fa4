package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
)

func TestSignal(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := engineOn(t, db, "default", waiter, collector)

	// The payload reaches the workflow.
	h, err := waiter.Start(ctx, e, struct{}{}, &durable.StartOptions{ID: "waiting"})
	require.NoError(t, err)
	o := call(t, nil, "signal", "waiting", "go-on", "--payload", `"hello"`, "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	require.Equal(t, "sent signal go-on to run "+h.RunID()+" of workflow waiting\n", o.stdout)
	got, err := h.Result(ctx)
	require.NoError(t, err)
	require.Equal(t, "hello", got)

	// The run has closed: refused.
	requireOneLineError(t, call(t, nil, "signal", "waiting", "go-on", "--db", db), exitFailed,
		"keel: signal: run "+h.RunID()+" of workflow waiting has closed (completed)")

	// A repeated request ID is applied once; a payload from a file.
	c, err := collector.Start(ctx, e, struct{}{}, &durable.StartOptions{ID: "collecting"})
	require.NoError(t, err)
	for range 2 {
		o = call(t, nil, "signal", "collecting", "note", "--payload", "1", "--request-id", "note-1", "--db", db)
		require.Equal(t, exitOK, o.code, o.String())
	}
	two := filepath.Join(t.TempDir(), "two.json")
	require.NoError(t, os.WriteFile(two, []byte("2\n"), 0o600))
	o = call(t, nil, "signal", "collecting", "note", "--payload", "@"+two, "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	waitForEvents(t, e, "collecting", 3) // started, and two notes
	info, err := e.Describe(ctx, "collecting")
	require.NoError(t, err)

	// Bad input writes nothing.
	missing := filepath.Join(t.TempDir(), "missing.db")
	requireUsageError(t, call(t, nil, "signal", "collecting", "note", "--payload", "{oops", "--db", db), "signal: --payload is not valid JSON: invalid character 'o'")
	requireUsageError(t, call(t, nil, "signal", "collecting", "--db", db), "signal: accepts 2 arg(s), received 1")
	requireUsageError(t, call(t, nil, "signal", "collecting", " ", "--db", db), "signal: the signal name is empty")
	requireUsageError(t, call(t, nil, "signal", "collecting", "note", "--payload", "3", "--db", missing), "does not exist")
	requireUsageError(t, call(t, nil, "signal", "collecting", "note", "--wait", "--db", db), "signal: unknown flag: --wait")
	requireOneLineError(t, call(t, nil, "signal", "no-such-workflow", "note", "--payload", "3", "--db", db), exitNotFound,
		`keel: signal: no run or workflow with ID "no-such-workflow"`)
	requireNoFile(t, missing)
	after, err := e.Describe(ctx, "collecting")
	require.NoError(t, err)
	require.Equal(t, info.HistoryLength, after.HistoryLength, "nothing was signalled")

	o = call(t, nil, "signal", "collecting", "note", "--payload", "0", "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	notes, err := c.Result(ctx)
	require.NoError(t, err)
	require.Equal(t, []int{1, 2}, notes)
}

func TestCancel(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := engineOn(t, db, "default", waiter)
	h, err := waiter.Start(ctx, e, struct{}{}, &durable.StartOptions{ID: "waiting"})
	require.NoError(t, err)

	missing := filepath.Join(t.TempDir(), "missing.db")
	requireUsageError(t, call(t, nil, "cancel", "--db", db), "cancel: accepts 1 arg(s), received 0")
	requireUsageError(t, call(t, nil, "cancel", "waiting", "--db", missing), "database "+missing+" does not exist")
	requireUsageError(t, call(t, nil, "cancel", "waiting", "--force", "--db", db), "cancel: unknown flag: --force")
	requireOneLineError(t, call(t, nil, "cancel", "no-such-workflow", "--db", db), exitNotFound, `keel: cancel: no run or workflow with ID "no-such-workflow"`)
	info, err := e.Describe(ctx, "waiting")
	require.NoError(t, err)
	require.False(t, info.CancelRequested)

	o := call(t, nil, "cancel", "waiting", "--reason", "no longer needed", "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	require.Equal(t, "cancel requested for run "+h.RunID()+" of workflow waiting\n", o.stdout)
	_, err = h.Result(ctx)
	require.ErrorIs(t, err, durable.ErrCanceled)

	o = call(t, nil, "history", "waiting", "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	require.Contains(t, o.stdout, `CancelRequested          reason "no longer needed"`)
	require.Contains(t, o.stdout, "(waiter): canceled\n")

	requireOneLineError(t, call(t, nil, "cancel", "waiting", "--db", db), exitFailed, "keel: cancel: run "+h.RunID()+" of workflow waiting has closed (canceled)")
}
