package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/internal/testdb"
)

// runsTable returns the workflow IDs of a keel runs table, top to bottom.
func runsTable(t *testing.T, stdout string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	require.Regexp(t, `^WORKFLOW ID +RUN ID +TYPE +STATUS +CREATED +CLOSED$`, lines[0])
	var ids []string
	for _, l := range lines[1:] {
		ids = append(ids, strings.Fields(l)[0])
	}
	return ids
}

func TestRuns(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	e := engineOn(t, db, "default", noop, waiter)
	for _, id := range []string{"noop-1", "noop-2", "noop-3"} {
		_, err := noop.Run(ctx, e, id, &durable.StartOptions{ID: id})
		require.NoError(t, err)
	}
	h, err := waiter.Start(ctx, e, struct{}{}, &durable.StartOptions{ID: "waiting"})
	require.NoError(t, err)

	o := call(t, nil, "runs", "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	require.Equal(t, []string{"waiting", "noop-3", "noop-2", "noop-1"}, runsTable(t, o.stdout))
	require.Regexp(t, `(?m)^waiting +`+h.RunID()+` +waiter +running +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +-$`, o.stdout)
	require.Regexp(t, `(?m)^noop-1 +\S+ +noop +completed +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`, o.stdout)
	require.Empty(t, o.stderr)

	o = call(t, nil, "runs", "--status", "running", "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	require.Equal(t, []string{"waiting"}, runsTable(t, o.stdout))

	// JSON lines.
	o = call(t, nil, "runs", "--type", "noop", "--json", "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	lines := strings.Split(strings.TrimSuffix(o.stdout, "\n"), "\n")
	require.Len(t, lines, 3)
	for i, l := range lines {
		var r durable.RunInfo
		require.NoError(t, json.Unmarshal([]byte(l), &r))
		require.Equal(t, "noop", r.WorkflowType)
		require.Equal(t, durable.StatusCompleted, r.Status)
		require.Equal(t, []string{"noop-3", "noop-2", "noop-1"}[i], r.WorkflowID)
	}

	// Pages: the next cursor on stderr.
	o = call(t, nil, "runs", "--limit", "3", "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	require.Equal(t, []string{"waiting", "noop-3", "noop-2"}, runsTable(t, o.stdout))
	require.Regexp(t, `^next cursor: \S+\n$`, o.stderr)
	cursor := strings.TrimSpace(strings.TrimPrefix(o.stderr, "next cursor: "))
	o = call(t, nil, "runs", "--limit", "3", "--cursor", cursor, "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	require.Equal(t, []string{"noop-1"}, runsTable(t, o.stdout))
	require.Empty(t, o.stderr)

	o = call(t, nil, "runs", "--type", "nothing-of-this-type", "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	require.Empty(t, o.stdout)
	require.Equal(t, "no runs\n", o.stderr)

	// Bad input.
	missing := filepath.Join(t.TempDir(), "missing.db")
	requireUsageError(t, call(t, nil, "runs", "--status", "done", "--db", db), `runs: unknown --status "done" (one of running, completed,`)
	requireUsageError(t, call(t, nil, "runs", "--limit", "0", "--db", db), "runs: --limit must be between 1 and 1000")
	requireUsageError(t, call(t, nil, "runs", "--limit", "many", "--db", db), `invalid argument "many" for "--limit"`)
	requireUsageError(t, call(t, nil, "runs", "--cursor", "not-a-cursor", "--db", db), `runs: bad --cursor "not-a-cursor"`)
	requireUsageError(t, call(t, nil, "runs", "extra", "--db", db), `runs: unknown command "extra" for "keel runs" (see keel runs --help)`)
	requireUsageError(t, call(t, nil, "runs", "--db", missing), "database "+missing+" does not exist")
	requireUsageError(t, call(t, []string{"KEEL_DB=" + missing}, "runs"), "database "+missing+" does not exist")
	requireNoFile(t, missing)

	// KEEL_DB names the database when --db is not given.
	o = call(t, []string{"KEEL_DB=" + db}, "runs", "--status", "running")
	require.Equal(t, exitOK, o.code, o.String())
	require.Equal(t, []string{"waiting"}, runsTable(t, o.stdout))
}

// The client commands work on Postgres through a postgres:// URL.
func TestClientCommandsOnPostgres(t *testing.T) {
	t.Parallel()
	_, dsn := testdb.PostgresWithURL(t)

	o := call(t, nil, "run", "steps", "--input", ticketJSON, "--id", "pg-ticket", "--json", "--db", dsn)
	require.Equal(t, exitOK, o.code, o.String())
	var out runOutcome
	require.NoError(t, json.Unmarshal([]byte(o.stdout), &out), o.stdout)
	require.Equal(t, durable.StatusCompleted, out.Status)
	require.JSONEq(t, `"`+demoReply+`"`, string(out.Result))

	o = call(t, nil, "runs", "--db", dsn)
	require.Equal(t, exitOK, o.code, o.String())
	require.Equal(t, []string{"pg-ticket"}, runsTable(t, o.stdout))
	require.Contains(t, o.stdout, out.RunID)

	o = call(t, []string{"KEEL_DB=" + dsn}, "runs", "--json", "--status", "completed")
	require.Equal(t, exitOK, o.code, o.String())
	var r durable.RunInfo
	require.NoError(t, json.Unmarshal([]byte(o.stdout), &r), o.stdout)
	require.Equal(t, out.RunID, r.RunID)

	o = call(t, nil, "history", "pg-ticket", "--db", dsn)
	require.Equal(t, exitOK, o.code, o.String())
	require.Contains(t, o.stdout, "ActivityCompleted        generate-reply  attempt 1")

	o = call(t, nil, "history", "pg-ticket", "--json", "--db", dsn)
	require.Equal(t, exitOK, o.code, o.String())
	file := filepath.Join(t.TempDir(), "pg-ticket.json")
	require.NoError(t, os.WriteFile(file, []byte(o.stdout), 0o600))
	o = call(t, nil, "replay", file)
	require.Equal(t, exitOK, o.code, o.String())

	requireOneLineError(t, call(t, nil, "history", "no-such-run", "--db", dsn), exitNotFound, `history: no run or workflow with ID "no-such-run"`)
	requireOneLineError(t, call(t, nil, "cancel", "pg-ticket", "--db", dsn), exitFailed, "has closed (completed)")
}
