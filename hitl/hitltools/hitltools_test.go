package hitltools_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/durabletest"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/hitl/hitltools"
	"github.com/keelhq/keel/internal/testdb"
	"github.com/keelhq/keel/tools"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type opener func(t *testing.T) (store.Store, *appdb.DB)

func forEachDB(t *testing.T, fn func(t *testing.T, db opener)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "keel.db")
		fn(t, func(t *testing.T) (store.Store, *appdb.DB) {
			st, err := sqlitestore.Open(path, nil)
			require.NoError(t, err)
			db, err := appdb.Open(context.Background(), path)
			require.NoError(t, err)
			return st, db
		})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		pool := testdb.Postgres(t)
		fn(t, func(t *testing.T) (store.Store, *appdb.DB) {
			st, err := pgstore.New(context.Background(), pool, nil)
			require.NoError(t, err)
			return st, appdb.FromPool(pool)
		})
	})
}

type refundInput struct {
	Order  string `json:"order"`
	Amount int    `json:"amount"`
}

type testBundle struct {
	e     *durable.Engine
	svc   *hitl.Service
	clock *durabletest.Clock
	call  *durable.Workflow[tools.Call, tools.Result]
}

func setup(t *testing.T, db opener) *testBundle {
	t.Helper()
	st, adb := db(t)
	clock := durabletest.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	logger := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	e, err := durable.New(st, &durable.Config{PollInterval: 50 * time.Millisecond, Logger: logger, Test: durable.TestConfig{Clock: clock}})
	require.NoError(t, err)

	refund := tools.MustNew("refund", "Refund an order",
		func(ctx context.Context, in refundInput) (string, error) {
			return fmt.Sprintf("refunded %d on %s", in.Amount, in.Order), nil
		}, &tools.Options{RequiresApproval: true, ApprovalReason: "refunds move money"})
	policy, err := hitl.NewPolicy([]hitl.Rule{
		{Name: "big-refund", When: `action == "refund" && args.amount > 500`, Group: "finance", Required: 2, Timeout: time.Hour},
		{Name: "mid-refund", When: `action == "refund" && args.amount > 100`, Group: "finance", Timeout: time.Hour},
	}, nil)
	require.NoError(t, err)
	approver, err := hitltools.New(policy, &hitltools.Config{
		Requester:  "support-agent",
		Escalation: &hitltools.Route{Group: "partners", Timeout: time.Hour},
	})
	require.NoError(t, err)
	call := durable.NewWorkflow("call", func(ctx durable.Context, c tools.Call) (tools.Result, error) {
		return refund.Run(ctx, c, &tools.CallOptions{Approver: approver})
	})
	e.MustRegister(refund.Definition(), call)
	e.NewWorker(nil)
	svc, err := hitl.New(context.Background(), adb, e, &hitl.Config{
		Groups:     hitl.Groups{"finance": {"fred", "fiona", "farid"}, "partners": {"paula"}},
		LinkSecret: []byte("hitltools-test-secret-0123456789abcdef"),
		Logger:     logger,
		Test:       hitl.TestConfig{Clock: clock},
	})
	require.NoError(t, err)
	require.NoError(t, e.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, e.Stop(ctx))
		require.NoError(t, st.Close())
		require.NoError(t, adb.Close())
	})
	return &testBundle{e: e, svc: svc, clock: clock, call: call}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func (b *testBundle) pending(t *testing.T, runID string, n int) hitl.Approval {
	t.Helper()
	var got hitl.Approval
	require.Eventually(t, func() bool {
		list, _, err := b.svc.List(context.Background(), &hitl.ListParams{RunID: runID})
		require.NoError(t, err)
		if len(list) < n || list[0].Status != hitl.StatusPending {
			return false
		}
		got = list[0]
		return true
	}, 30*time.Second, 5*time.Millisecond)
	return got
}

func (b *testBundle) waitTimers(t *testing.T, runID string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		h, err := b.e.GetHistory(context.Background(), runID)
		require.NoError(t, err)
		count := 0
		for _, ev := range h.Events {
			if ev.Type == durable.EventTimerStarted {
				count++
			}
		}
		return count >= n
	}, 30*time.Second, 5*time.Millisecond)
}

func TestApproverOnEngine(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, db opener) {
		b := setup(t, db)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()

		// No rule matches: the call runs without asking anyone.
		r, err := b.call.Run(ctx, b.e, tools.Call{ID: "c1", Arguments: `{"order":"A-1","amount":40}`}, nil)
		require.NoError(t, err)
		require.False(t, r.IsError, r.Error)
		require.Equal(t, "refunded 40 on A-1", r.Text())
		list, _, err := b.svc.List(ctx, nil)
		require.NoError(t, err)
		require.Empty(t, list)

		// A big refund needs two of finance, for these exact arguments.
		h, err := b.call.Start(ctx, b.e, tools.Call{ID: "c2", Arguments: `{"order":"A-2","amount":900}`}, nil)
		require.NoError(t, err)
		a := b.pending(t, h.RunID(), 1)
		require.Equal(t, "finance", a.Group)
		require.Equal(t, 2, a.Required)
		require.Equal(t, "support-agent", a.Requester)
		require.Contains(t, a.Details, "refunds move money")
		require.Contains(t, a.Details, "big-refund")
		want, err := hitl.Hash("refund", json.RawMessage(`{"amount":900,"order":"A-2"}`))
		require.NoError(t, err)
		require.Equal(t, want, a.ArgsHash)
		for _, who := range []string{"fred", "fiona"} {
			_, err = b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: who, Approve: true, Comment: "ok " + who, ArgsHash: a.ArgsHash})
			require.NoError(t, err)
		}
		r, err = h.Result(ctx)
		require.NoError(t, err)
		require.False(t, r.IsError, r.Error)
		require.Equal(t, "refunded 900 on A-2", r.Text())
		require.Equal(t, "fred, fiona", r.Review.Reviewer)
		require.Equal(t, "fred: ok fred; fiona: ok fiona", r.Review.Comment)

		// A rejection reaches the model with the reviewer's comment.
		h, err = b.call.Start(ctx, b.e, tools.Call{ID: "c3", Arguments: `{"order":"A-3","amount":200}`}, nil)
		require.NoError(t, err)
		a = b.pending(t, h.RunID(), 1)
		require.Equal(t, 1, a.Required)
		_, err = b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "farid", Approve: false, Comment: "duplicate claim", ArgsHash: a.ArgsHash})
		require.NoError(t, err)
		r, err = h.Result(ctx)
		require.NoError(t, err)
		require.True(t, r.IsError)
		require.Equal(t, tools.ErrorRejected, r.ErrorKind)
		require.Contains(t, r.Error, "farid")
		require.Contains(t, r.Error, "duplicate claim")

		// Edited arguments are what runs.
		h, err = b.call.Start(ctx, b.e, tools.Call{ID: "c4", Arguments: `{"order":"A-4","amount":300}`}, nil)
		require.NoError(t, err)
		a = b.pending(t, h.RunID(), 1)
		_, err = b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "fiona", Approve: true, ArgsHash: a.ArgsHash,
			EditedArgs: json.RawMessage(`{"order":"A-4","amount":250}`)})
		require.NoError(t, err)
		r, err = h.Result(ctx)
		require.NoError(t, err)
		require.Contains(t, r.Text(), "refunded 250 on A-4")

		// Finance lets the deadline pass: the partners are asked.
		h, err = b.call.Start(ctx, b.e, tools.Call{ID: "c5", Arguments: `{"order":"A-5","amount":150}`}, nil)
		require.NoError(t, err)
		b.pending(t, h.RunID(), 1)
		b.waitTimers(t, h.RunID(), 1)
		b.clock.Advance(time.Hour)
		a = b.pending(t, h.RunID(), 2)
		require.Equal(t, "partners", a.Group)
		require.True(t, strings.HasPrefix(a.Title, "Escalated"))
		_, err = b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "paula", Approve: true, ArgsHash: a.ArgsHash})
		require.NoError(t, err)
		r, err = h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, "refunded 150 on A-5", r.Text())
		require.Equal(t, "paula", r.Review.Reviewer)

		// Both let it pass: the call does not run.
		h, err = b.call.Start(ctx, b.e, tools.Call{ID: "c6", Arguments: `{"order":"A-6","amount":150}`}, nil)
		require.NoError(t, err)
		b.pending(t, h.RunID(), 1)
		b.waitTimers(t, h.RunID(), 1)
		b.clock.Advance(time.Hour)
		b.pending(t, h.RunID(), 2)
		b.waitTimers(t, h.RunID(), 2)
		b.clock.Advance(time.Hour)
		r, err = h.Result(ctx)
		require.NoError(t, err)
		require.True(t, r.IsError)
		require.Equal(t, tools.ErrorApproval, r.ErrorKind)
		require.Contains(t, r.Error, hitltools.ErrTimedOut.Error())
	})
}

func TestPolicyErrorRefusesTheCall(t *testing.T) {
	t.Parallel()
	policy, err := hitl.NewPolicy([]hitl.Rule{{Name: "needs-amount", When: `args.amount > 1`, Group: "finance"}}, nil)
	require.NoError(t, err)
	_, err = hitltools.New(policy, &hitltools.Config{Fallback: &hitltools.Route{}})
	require.Error(t, err)
	_, err = hitltools.New(nil, nil)
	require.Error(t, err)

	approver, err := hitltools.New(policy, nil)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "keel.db")
	st, err := sqlitestore.Open(path, nil)
	require.NoError(t, err)
	defer st.Close()
	e, err := durable.New(st, nil)
	require.NoError(t, err)
	wf := durable.NewWorkflow("probe", func(ctx durable.Context, args string) (string, error) {
		_, err := approver.Approve(ctx, tools.ApprovalRequest{Action: "refund", Arguments: json.RawMessage(args)})
		return fmt.Sprint(err), nil
	})
	e.MustRegister(wf)
	e.NewWorker(nil)
	require.NoError(t, e.Start(context.Background()))
	defer e.Stop(context.Background())
	out, err := wf.Run(context.Background(), e, `{"order":"A-1"}`, nil)
	require.NoError(t, err)
	require.Contains(t, out, hitl.ErrPolicyEval.Error())
	require.Contains(t, out, "needs-amount")
}
