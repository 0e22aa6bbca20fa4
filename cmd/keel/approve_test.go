package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/hitl"
)

// ask asks for the approval of its request and returns the decision.
var ask = durable.NewWorkflow("ask", func(ctx durable.Context, req hitl.Request) (hitl.Decision, error) {
	return hitl.Approve(ctx, req)
})

const groupsJSON = `{"legal": ["lena", "lars", "leo"], "finance": ["fred"]}`

// approvalBundle is a database whose runs ask for approvals, worked by this
// process, and the reviewer groups as keel gets them.
type approvalBundle struct {
	db         string
	e          *durable.Engine
	svc        *hitl.Service
	groupsFile string
}

func setupApprovals(t *testing.T) *approvalBundle {
	t.Helper()
	ctx := context.Background()
	b := &approvalBundle{db: newDB(t), groupsFile: filepath.Join(t.TempDir(), "groups.json")}
	require.NoError(t, os.WriteFile(b.groupsFile, []byte(groupsJSON), 0o600))
	st, err := sqlitestore.Open(b.db, nil)
	require.NoError(t, err)
	adb, err := appdb.Open(ctx, b.db)
	require.NoError(t, err)
	b.e, err = durable.New(st, &durable.Config{PollInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	var groups hitl.Groups
	require.NoError(t, json.Unmarshal([]byte(groupsJSON), &groups))
	b.svc, err = hitl.New(ctx, adb, b.e, &hitl.Config{Groups: groups, LinkSecret: []byte(strings.Repeat("k", hitl.MinLinkSecret))})
	require.NoError(t, err)
	b.e.MustRegister(ask)
	b.e.NewWorker(nil)
	require.NoError(t, b.e.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = b.e.Stop(stopCtx)
		require.NoError(t, adb.Close())
		require.NoError(t, st.Close())
	})
	return b
}

// ask starts a run of ask under workflowID and returns it with the ID of
// its pending approval.
func (b *approvalBundle) ask(t *testing.T, workflowID string, req hitl.Request) (*durable.Handle[hitl.Decision], string) {
	t.Helper()
	ctx := context.Background()
	h, err := ask.Start(ctx, b.e, req, &durable.StartOptions{ID: workflowID})
	require.NoError(t, err)
	var id string
	waitUntil(t, func() bool {
		list, _, err := b.svc.List(ctx, &hitl.ListParams{WorkflowID: workflowID, Status: hitl.StatusPending})
		require.NoError(t, err)
		if len(list) == 1 {
			id = list[0].ID
		}
		return id != ""
	}, "waiting for the approval of "+workflowID)
	return h, id
}

// requireUndecided asserts that the approval has no vote and is pending.
func (b *approvalBundle) requireUndecided(t *testing.T, id string) {
	t.Helper()
	a, err := b.svc.Get(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, hitl.StatusPending, a.Status)
	require.Empty(t, a.Votes)
}

var refundRequest = hitl.Request{
	Title:     "Refund order A-17",
	Details:   "The parcel never arrived.",
	Action:    "refund",
	Args:      map[string]any{"order": "A-17", "amount": 120},
	Group:     "legal",
	Requester: "lars",
	Timeout:   time.Hour,
}

func TestApprove(t *testing.T) {
	t.Parallel()
	b := setupApprovals(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, id := b.ask(t, "refund-1", refundRequest)
	db, groups := []string{"--db", b.db}, []string{"--groups", b.groupsFile}
	env := []string{"KEEL_GROUPS=" + groupsJSON}
	args := func(a ...string) []string { return append(a, db...) }

	// Refusals: exit 1 with the reason, and no vote.
	o := call(t, nil, append(args("approve", id, "--as", "fred"), groups...)...)
	requireOneLineError(t, o, exitFailed, "keel: approve: refused (not_in_group): ")
	o = call(t, env, args("approve", id, "--as", "lars")...)
	requireOneLineError(t, o, exitFailed, "keel: approve: refused (self_approval): ")
	b.requireUndecided(t, id)

	// Bad input: exit 2 or 3, and no vote.
	missing := filepath.Join(t.TempDir(), "missing.db")
	requireUsageError(t, call(t, env, args("approve", id)...), "approve: --as REVIEWER is required")
	requireUsageError(t, call(t, nil, args("approve", id, "--as", "lena")...), "approve: no reviewer groups: give --groups FILE or set KEEL_GROUPS")
	requireUsageError(t, call(t, []string{"KEEL_GROUPS={legal: lena}"}, args("approve", id, "--as", "lena")...), "approve: reviewer groups in KEEL_GROUPS are not JSON")
	requireUsageError(t, call(t, []string{`KEEL_GROUPS={"legal": []}`}, args("approve", id, "--as", "lena")...), `approve: reviewer groups: hitl: new: hitl: invalid config: reviewer group "legal" has no members`)
	requireUsageError(t, call(t, nil, args("approve", id, "--as", "lena", "--groups", missing)...), "approve: --groups: open "+missing)
	requireUsageError(t, call(t, env, "approve", id, "--as", "lena", "--db", b.db, "--comment"), "approve: flag needs an argument: --comment")
	requireUsageError(t, call(t, env, "approve", id, "--as", "lena", "--db", missing), "database "+missing+" does not exist")
	requireOneLineError(t, call(t, env, args("approve", "no-such-approval", "--as", "lena")...), exitNotFound, `keel: approve: no approval with ID "no-such-approval"`)
	requireNoFile(t, missing)
	b.requireUndecided(t, id)

	// The decision reaches the run.
	o = call(t, env, args("approve", id, "--as", "lena", "--comment", "within policy")...)
	require.Equal(t, exitOK, o.code, o.String())
	require.Equal(t, "approval "+id+" (Refund order A-17): approved, 1 of 1 approvals (lena approved)\n", o.stdout)
	require.Empty(t, o.stderr)
	d, err := h.Result(ctx)
	require.NoError(t, err)
	require.True(t, d.Approved())
	require.Equal(t, []string{"lena"}, d.DecidedBy)
	require.Equal(t, []string{"lena: within policy"}, d.Comments())

	// Decisions are final.
	requireOneLineError(t, call(t, env, args("approve", id, "--as", "lena")...), exitFailed, "keel: approve: refused (already_voted): ")
	requireOneLineError(t, call(t, env, args("approve", id, "--as", "leo", "--reject")...), exitFailed, "keel: approve: refused (closed): ")

	// The run's history shows the vote.
	o = call(t, nil, args("history", "refund-1")...)
	require.Equal(t, exitOK, o.code, o.String())
	require.Contains(t, o.stdout, "SignalReceived           "+hitl.SignalName(id)+"  payload {")

	// A rejection, printed as JSON.
	h2, id2 := b.ask(t, "refund-2", refundRequest)
	o = call(t, env, args("approve", id2, "--as", "leo", "--reject", "--comment", "too much", "--json")...)
	require.Equal(t, exitOK, o.code, o.String())
	var a hitl.Approval
	require.NoError(t, json.Unmarshal([]byte(o.stdout), &a), o.stdout)
	require.Equal(t, hitl.StatusRejected, a.Status)
	require.Len(t, a.Votes, 1)
	require.Equal(t, "too much", a.Votes[0].Comment)
	d, err = h2.Result(ctx)
	require.NoError(t, err)
	require.Equal(t, hitl.StatusRejected, d.Status)
	require.Equal(t, []string{"leo"}, d.DecidedBy)
}

func TestApprovals(t *testing.T) {
	t.Parallel()
	b := setupApprovals(t)
	_, id := b.ask(t, "refund-1", refundRequest)
	env := []string{"KEEL_GROUPS=" + groupsJSON}
	args := func(a ...string) []string { return append(a, "--db", b.db) }

	// Every pending approval, without reviewer groups.
	o := call(t, nil, args("approvals")...)
	require.Equal(t, exitOK, o.code, o.String())
	require.Regexp(t, `^ID +STATUS +GROUP +VOTES +TITLE +ACTION +WORKFLOW +DEADLINE\n`+
		id+` +pending +legal +0/1 +Refund order A-17 +refund +refund-1 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n$`, o.stdout)
	require.Empty(t, o.stderr)

	// A reviewer's queue.
	o = call(t, env, args("approvals", "--as", "lena")...)
	require.Equal(t, exitOK, o.code, o.String())
	require.Contains(t, o.stdout, id)
	for _, other := range []string{"fred", "lars"} { // not in the group; the requester
		o = call(t, nil, args("approvals", "--as", other, "--groups", b.groupsFile)...)
		require.Equal(t, exitOK, o.code, o.String())
		require.Empty(t, o.stdout)
		require.Equal(t, "no approvals\n", o.stderr)
	}

	// JSON lines, by status.
	o = call(t, nil, args("approvals", "--status", "all", "--json")...)
	require.Equal(t, exitOK, o.code, o.String())
	var a hitl.Approval
	require.NoError(t, json.Unmarshal([]byte(o.stdout), &a), o.stdout)
	require.Equal(t, id, a.ID)
	require.JSONEq(t, `{"amount": 120, "order": "A-17"}`, string(a.Args))
	o = call(t, nil, args("approvals", "--status", "approved")...)
	require.Equal(t, exitOK, o.code, o.String())
	require.Equal(t, "no approvals\n", o.stderr)

	requireUsageError(t, call(t, nil, args("approvals", "--status", "open")...), `approvals: unknown --status "open"`)
	requireUsageError(t, call(t, nil, args("approvals", "--as", "lena")...), "approvals: --as needs the reviewer groups")
	requireUsageError(t, call(t, env, args("approvals", "--as", "")...), "approvals: --as is empty")
	requireUsageError(t, call(t, nil, args("approvals", "--limit", "501")...), "approvals: --limit must be between 1 and 500")
	requireUsageError(t, call(t, nil, args("approvals", "--cursor", "zz")...), "approvals: hitl: list: hitl: invalid input: Cursor: not a cursor from a previous page")
	requireUsageError(t, call(t, nil, args("approvals", id)...), `approvals: unknown command "`+id+`" for "keel approvals"`)
}
