package hitl_test

import (
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/hitl"
)

func refundRequest() hitl.Request {
	return hitl.Request{
		Title:     "Refund order A-17",
		Details:   "The parcel was lost in transit.",
		Action:    "refund",
		Args:      map[string]any{"order": "A-17", "amount": 750},
		Group:     "legal",
		Requester: "support-agent",
	}
}

// The whole flow on a real engine: the workflow asks, a reviewer decides
// through the Service, the workflow gets who decided and why, and the run's
// history shows the decision.
func TestApproveFlow(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, db opener) {
		b := setup(t, setupOpts{db: db})
		ctx := testContext(t)

		h, err := askWorkflow.Start(ctx, b.e, refundRequest(), nil)
		require.NoError(t, err)
		a := b.pending(t, h.RunID(), 1)

		require.Equal(t, "Refund order A-17", a.Title)
		require.Equal(t, "The parcel was lost in transit.", a.Details)
		require.Equal(t, "refund", a.Action)
		require.JSONEq(t, `{"amount":750,"order":"A-17"}`, string(a.Args))
		require.Equal(t, mustHash(t, "refund", `{"order":"A-17","amount":750}`), a.ArgsHash)
		require.Equal(t, "legal", a.Group)
		require.Equal(t, 1, a.Required)
		require.Equal(t, "support-agent", a.Requester)
		require.Equal(t, h.WorkflowID(), a.WorkflowID)
		require.Equal(t, h.RunID(), a.RunID)
		require.Equal(t, hitl.StatusPending, a.Status)
		require.Equal(t, a.CreatedAt.Add(hitl.DefaultTimeout), a.Deadline)
		require.Empty(t, a.Votes)

		got, err := b.svc.Get(ctx, a.ID)
		require.NoError(t, err)
		require.Equal(t, a.ID, got.ID)

		updated, err := b.svc.Decide(ctx, a.ID, hitl.DecideInput{
			Reviewer: "lena", Approve: true, Comment: "Carrier confirmed the loss.", ArgsHash: a.ArgsHash,
		})
		require.NoError(t, err)
		require.Equal(t, hitl.StatusApproved, updated.Status)
		require.False(t, updated.ClosedAt.IsZero())
		require.Len(t, updated.Votes, 1)
		require.True(t, updated.Votes[0].Delivered)

		d, err := h.Result(ctx)
		require.NoError(t, err)
		require.True(t, d.Approved())
		require.Equal(t, a.ID, d.ApprovalID)
		require.Equal(t, []string{"lena"}, d.DecidedBy)
		require.Equal(t, []string{"lena: Carrier confirmed the loss."}, d.Comments())
		require.Equal(t, updated.ClosedAt, d.DecidedAt.UTC())
		require.Equal(t, a.ArgsHash, d.ArgsHash)
		require.JSONEq(t, string(a.Args), string(d.Args))
		require.False(t, d.Edited)

		// The run's history shows who decided, when and why.
		sigs := b.signals(t, h.RunID())
		require.Len(t, sigs, 1)
		require.Equal(t, "lena", sigs[0].Vote.Reviewer)
		require.Equal(t, "Carrier confirmed the loss.", sigs[0].Vote.Comment)
		require.True(t, sigs[0].Vote.Approve)
		require.Equal(t, updated.Votes[0].At, sigs[0].Vote.At.UTC())
		require.Equal(t, hitl.StatusApproved, sigs[0].Status)

		// Final: nobody decides again.
		_, err = b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "lars", Approve: false, ArgsHash: a.ArgsHash})
		require.ErrorIs(t, err, hitl.ErrClosed)
		_, err = b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "lena", Approve: false, ArgsHash: a.ArgsHash})
		require.ErrorIs(t, err, hitl.ErrAlreadyVoted)
	})
}

// A rejection by one reviewer closes the approval as rejected.
func TestReject(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := testContext(t)
	req := refundRequest()
	req.Group, req.Required = "finance", 2
	h, err := askWorkflow.Start(ctx, b.e, req, nil)
	require.NoError(t, err)
	a := b.pending(t, h.RunID(), 1)

	_, err = b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "fred", Approve: true, ArgsHash: a.ArgsHash})
	require.NoError(t, err)
	updated, err := b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "fiona", Approve: false, Comment: "No receipt.", ArgsHash: a.ArgsHash})
	require.NoError(t, err)
	require.Equal(t, hitl.StatusRejected, updated.Status)

	d, err := h.Result(ctx)
	require.NoError(t, err)
	require.Equal(t, hitl.StatusRejected, d.Status)
	require.False(t, d.Approved())
	require.Equal(t, []string{"fiona"}, d.DecidedBy)
	require.Len(t, d.Votes, 2)
	require.Equal(t, []string{"fiona: No receipt."}, d.Comments())
}

// Two of three: the first approval leaves the run waiting, the second
// completes it, and the Decision names both approvers.
func TestTwoOfThree(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, db opener) {
		b := setup(t, setupOpts{db: db, noCache: true})
		ctx := testContext(t)
		req := refundRequest()
		req.Group, req.Required = "finance", 2
		h, err := askWorkflow.Start(ctx, b.e, req, nil)
		require.NoError(t, err)
		a := b.pending(t, h.RunID(), 1)
		require.Equal(t, 2, a.Required)

		first, err := b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "fred", Approve: true, Comment: "fine by me", ArgsHash: a.ArgsHash})
		require.NoError(t, err)
		require.Equal(t, hitl.StatusPending, first.Status)
		require.Equal(t, 1, first.Approvals())
		// The run received the first vote and is still waiting.
		waitFor(t, "the first vote in history", func() bool { return len(b.signals(t, h.RunID())) == 1 })
		info, err := b.e.DescribeRun(ctx, h.RunID())
		require.NoError(t, err)
		require.Equal(t, durable.StatusRunning, info.Status)

		second, err := b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "fiona", Approve: true, ArgsHash: a.ArgsHash})
		require.NoError(t, err)
		require.Equal(t, hitl.StatusApproved, second.Status)

		d, err := h.Result(ctx)
		require.NoError(t, err)
		require.True(t, d.Approved())
		require.Equal(t, []string{"fred", "fiona"}, d.DecidedBy)
		require.Equal(t, []string{"fred: fine by me"}, d.Comments())

		_, err = b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "farid", Approve: true, ArgsHash: a.ArgsHash})
		require.ErrorIs(t, err, hitl.ErrClosed)
		sigs := b.signals(t, h.RunID())
		require.Len(t, sigs, 2)
		require.Equal(t, []string{"fred", "fiona"}, []string{sigs[0].Vote.Reviewer, sigs[1].Vote.Reviewer})
	})
}

// The deadline passes on the fake clock: the first approval times out, the
// workflow escalates to the partners, and a partner approves.
func TestTimeoutEscalation(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, db opener) {
		// Without a cache, every step replays the history so far.
		b := setup(t, setupOpts{db: db, fakeClock: true, noCache: true})
		ctx := testContext(t)
		first := refundRequest()
		first.Timeout = time.Hour
		second := refundRequest()
		second.Group, second.Timeout = "partners", 4*time.Hour
		second.Title = "Escalated: refund order A-17"

		h, err := escalateWorkflow.Start(ctx, b.e, []hitl.Request{first, second}, nil)
		require.NoError(t, err)
		legal := b.pending(t, h.RunID(), 1)
		require.Equal(t, b.clock.Now().Add(time.Hour), legal.Deadline)

		b.clock.Advance(time.Hour)
		// No decision is taken at or after the deadline, whether or not
		// the workflow has marked the approval timed out yet.
		_, err = b.svc.Decide(ctx, legal.ID, hitl.DecideInput{Reviewer: "lena", Approve: true, ArgsHash: legal.ArgsHash})
		require.ErrorIs(t, err, hitl.ErrExpired)

		partners := b.pending(t, h.RunID(), 2)
		require.Equal(t, "partners", partners.Group)
		require.NotEqual(t, legal.ID, partners.ID)
		timedOut, err := b.svc.Get(ctx, legal.ID)
		require.NoError(t, err)
		require.Equal(t, hitl.StatusTimedOut, timedOut.Status)
		_, err = b.svc.Decide(ctx, legal.ID, hitl.DecideInput{Reviewer: "lars", Approve: true, ArgsHash: legal.ArgsHash})
		require.ErrorIs(t, err, hitl.ErrExpired)

		b.clock.Advance(time.Hour) // well before the partners' deadline
		_, err = b.svc.Decide(ctx, partners.ID, hitl.DecideInput{Reviewer: "paula", Approve: true, Comment: "Escalation approved.", ArgsHash: partners.ArgsHash})
		require.NoError(t, err)

		ds, err := h.Result(ctx)
		require.NoError(t, err)
		require.Len(t, ds, 2)
		require.True(t, ds[0].TimedOut())
		require.Equal(t, legal.ID, ds[0].ApprovalID)
		require.Empty(t, ds[0].DecidedBy)
		require.True(t, ds[1].Approved())
		require.Equal(t, "partners", ds[1].Group)
		require.Equal(t, []string{"paula"}, ds[1].DecidedBy)
		require.Equal(t, []string{"paula: Escalation approved."}, ds[1].Comments())
		require.Equal(t, b.clock.Now(), ds[1].DecidedAt.UTC())
	})
}

// Edited arguments: a single approver may approve changed arguments, which
// get their own hash; edits are refused where they would bypass others.
func TestEditedArgs(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := testContext(t)
	h, err := askWorkflow.Start(ctx, b.e, refundRequest(), nil)
	require.NoError(t, err)
	a := b.pending(t, h.RunID(), 1)

	_, err = b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "lena", Approve: false, ArgsHash: a.ArgsHash, EditedArgs: json.RawMessage(`{"amount":1}`)})
	require.ErrorIs(t, err, hitl.ErrEditNotAllowed)
	_, err = b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "lena", Approve: true, ArgsHash: a.ArgsHash, EditedArgs: json.RawMessage(`{"amount":`)})
	require.ErrorIs(t, err, hitl.ErrInvalidInput)

	updated, err := b.svc.Decide(ctx, a.ID, hitl.DecideInput{
		Reviewer: "lena", Approve: true, ArgsHash: a.ArgsHash,
		EditedArgs: json.RawMessage(`{ "order": "A-17", "amount": 400 }`),
	})
	require.NoError(t, err)
	want := mustHash(t, "refund", `{"amount":400,"order":"A-17"}`)
	require.Equal(t, want, updated.Votes[0].EditedArgsHash)
	require.Equal(t, a.ArgsHash, updated.Votes[0].ArgsHash)

	d, err := h.Result(ctx)
	require.NoError(t, err)
	require.True(t, d.Approved())
	require.True(t, d.Edited)
	require.Equal(t, want, d.ArgsHash)
	require.Equal(t, `{"amount":400,"order":"A-17"}`, string(d.Args))

	// Two approvers must approve the same arguments: no edits.
	req := refundRequest()
	req.Group, req.Required = "finance", 2
	h2, err := askWorkflow.Start(ctx, b.e, req, nil)
	require.NoError(t, err)
	a2 := b.pending(t, h2.RunID(), 1)
	_, err = b.svc.Decide(ctx, a2.ID, hitl.DecideInput{Reviewer: "fred", Approve: true, ArgsHash: a2.ArgsHash, EditedArgs: json.RawMessage(`{"amount":1}`)})
	require.ErrorIs(t, err, hitl.ErrEditNotAllowed)
	_, err = b.svc.Decide(ctx, a2.ID, hitl.DecideInput{Reviewer: "fred", Approve: false, ArgsHash: a2.ArgsHash})
	require.NoError(t, err)
	_, err = h2.Result(ctx)
	require.NoError(t, err)
}

// A retried record activity finds the row its first attempt wrote: one
// approval per Approve call.
func TestRecordActivityIdempotent(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, db opener) {
		var failed atomic.Int32
		b := setup(t, setupOpts{db: db, before: func(svc *hitl.Service) {
			hitl.SetAfterInsert(svc, func(attempt int) error {
				if attempt == 1 {
					failed.Add(1)
					return errors.New("connection reset after the insert")
				}
				return nil
			})
		}})
		ctx := testContext(t)
		h, err := askWorkflow.Start(ctx, b.e, refundRequest(), nil)
		require.NoError(t, err)
		a := b.pending(t, h.RunID(), 1)

		attempts, err := b.e.ActivityAttempts(ctx, h.RunID())
		require.NoError(t, err)
		require.Len(t, attempts, 2, "the record activity ran twice")
		require.Equal(t, "completed", attempts[1].Outcome)
		require.Equal(t, int32(1), failed.Load())
		require.Equal(t, 1, b.countRows(t, `SELECT count(*) FROM hitl_approvals WHERE run_id = ?`, h.RunID()))

		_, err = b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "lars", Approve: true, ArgsHash: a.ArgsHash})
		require.NoError(t, err)
		d, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, a.ID, d.ApprovalID)
	})
}

// Requests the Service cannot record fail Approve with typed errors.
func TestBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := testContext(t)
	cases := map[string]struct {
		edit func(r *hitl.Request)
		want error
	}{
		"no title":          {func(r *hitl.Request) { r.Title = "" }, hitl.ErrInvalidRequest},
		"no group":          {func(r *hitl.Request) { r.Group = "" }, hitl.ErrInvalidRequest},
		"unknown group":     {func(r *hitl.Request) { r.Group = "nobody" }, hitl.ErrUnknownGroup},
		"too many required": {func(r *hitl.Request) { r.Required = 3 }, hitl.ErrInvalidRequest},
		// The requester is one of the two lawyers: only one can approve.
		"requester in group": {func(r *hitl.Request) { r.Required, r.Requester = 2, "lena" }, hitl.ErrInvalidRequest},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			req := refundRequest()
			c.edit(&req)
			out, err := probeWorkflow.Run(ctx, b.e, req, nil)
			require.NoError(t, err)
			require.Equal(t, c.want.Error(), out)
		})
	}
}

// A run that closes while it waits leaves its approval canceled once a
// decision finds nobody to deliver it to.
func TestCanceledRun(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := testContext(t)
	h, err := askWorkflow.Start(ctx, b.e, refundRequest(), nil)
	require.NoError(t, err)
	a := b.pending(t, h.RunID(), 1)
	require.NoError(t, b.e.Cancel(ctx, h.WorkflowID(), "order withdrawn"))
	_, err = h.Result(ctx)
	require.ErrorIs(t, err, durable.ErrCanceled)

	updated, err := b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "lena", Approve: false, ArgsHash: a.ArgsHash})
	require.NoError(t, err)
	require.Equal(t, hitl.StatusRejected, updated.Status, "the vote itself stands")
	require.True(t, updated.Votes[0].Delivered)

	// With Required 2, the first vote leaves it pending: then it is
	// canceled.
	req := refundRequest()
	req.Group, req.Required = "finance", 2
	h2, err := askWorkflow.Start(ctx, b.e, req, nil)
	require.NoError(t, err)
	a2 := b.pending(t, h2.RunID(), 1)
	require.NoError(t, b.e.Terminate(ctx, h2.WorkflowID(), "test"))
	updated, err = b.svc.Decide(ctx, a2.ID, hitl.DecideInput{Reviewer: "fred", Approve: true, ArgsHash: a2.ArgsHash})
	require.NoError(t, err)
	require.Equal(t, hitl.StatusCanceled, updated.Status)
	_, err = b.svc.Decide(ctx, a2.ID, hitl.DecideInput{Reviewer: "fiona", Approve: true, ArgsHash: a2.ArgsHash})
	require.ErrorIs(t, err, hitl.ErrClosed)
}

// A decision made between the record activity's insert and its completion
// (a slow or retried attempt) is not lost: the activity's result already
// carries it.
func TestDecidedBeforeRecorded(t *testing.T) {
	t.Parallel()
	decided := make(chan struct{})
	inserted := make(chan struct{})
	b := setup(t, setupOpts{before: func(svc *hitl.Service) {
		hitl.SetAfterInsert(svc, func(int) error {
			close(inserted)
			<-decided
			return nil
		})
	}})
	ctx := testContext(t)
	h, err := askWorkflow.Start(ctx, b.e, refundRequest(), nil)
	require.NoError(t, err)
	<-inserted
	list, _, err := b.svc.List(ctx, &hitl.ListParams{RunID: h.RunID()})
	require.NoError(t, err)
	require.Len(t, list, 1)
	_, err = b.svc.Decide(ctx, list[0].ID, hitl.DecideInput{Reviewer: "lars", Approve: true, Comment: "quick", ArgsHash: list[0].ArgsHash})
	require.NoError(t, err)
	close(decided)

	d, err := h.Result(ctx)
	require.NoError(t, err)
	require.True(t, d.Approved())
	require.Equal(t, []string{"lars"}, d.DecidedBy)
	require.Equal(t, []string{"lars: quick"}, d.Comments())
	require.JSONEq(t, `{"amount":750,"order":"A-17"}`, string(d.Args))
}
