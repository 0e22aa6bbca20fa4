package legalreview_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/durabletest"
	"github.com/keelhq/keel/examples/legalreview"
	"github.com/keelhq/keel/examples/setup/setuptest"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/tools/email"
)

type testBundle struct {
	*setuptest.Bundle
	x *legalreview.Example
}

func newBundle(t *testing.T, opts *setuptest.Options) *testBundle {
	t.Helper()
	o := setuptest.Options{NoBilling: true}
	if opts != nil {
		o = *opts
		o.NoBilling = true
	}
	b := setuptest.New(t, &o)
	x, err := legalreview.New(b.Env, nil)
	require.NoError(t, err)
	return &testBundle{Bundle: b, x: x}
}

// pending returns the run's one pending approval, once the run waits.
func (b *testBundle) pending(t *testing.T, workflowID string) hitl.Approval {
	t.Helper()
	b.Test.WaitIdle(t)
	list, _, err := b.Env.Approvals.List(context.Background(), &hitl.ListParams{WorkflowID: workflowID, Status: hitl.StatusPending})
	require.NoError(t, err)
	require.Len(t, list, 1)
	return list[0]
}

func (b *testBundle) approvals(t *testing.T, workflowID string) []hitl.Approval {
	t.Helper()
	list, _, err := b.Env.Approvals.List(context.Background(), &hitl.ListParams{WorkflowID: workflowID})
	require.NoError(t, err)
	return list
}

func (b *testBundle) outbox(t *testing.T) []email.Message {
	t.Helper()
	msgs, err := b.Env.Email.List(context.Background(), nil)
	require.NoError(t, err)
	return msgs
}

// A lawyer approves the drafted memo through the approval service, as the
// reviewer page does; the memo is emailed to the client as drafted.
func TestLegalReviewApproved(t *testing.T) {
	t.Parallel()
	testApproved(t, nil)
}

// The same on Postgres: the approval tables, the outbox and the engine in
// one schema.
func TestLegalReviewApprovedPostgres(t *testing.T) {
	t.Parallel()
	testApproved(t, &setuptest.Options{Postgres: true})
}

func testApproved(t *testing.T, opts *setuptest.Options) {
	b := newBundle(t, opts)
	ctx := context.Background()
	h := durabletest.Start(t, b.Test, b.x.Workflow, legalreview.DemoRequest(), &durable.StartOptions{ID: "review-1"})

	a := b.pending(t, "review-1")
	require.Equal(t, legalreview.DefaultLawyers, a.Group)
	require.Equal(t, legalreview.Action, a.Action)
	require.Equal(t, 24*time.Hour, a.Deadline.Sub(a.CreatedAt))
	require.Contains(t, a.Details, "MEMORANDUM", "the reviewer sees the memo")
	var draft legalreview.Memo
	require.NoError(t, json.Unmarshal(a.Args, &draft))
	require.Equal(t, "ada@example.com", draft.To)
	require.Contains(t, draft.Body, "indemnification (high)", "the offline model flags the indemnity clause")
	require.Contains(t, draft.Body, "risk level high")
	require.Empty(t, b.outbox(t), "nothing is sent before the approval")

	// Only a member of the group decides: the client cannot approve.
	_, err := b.Env.Approvals.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "ada@example.com", Approve: true, ArgsHash: a.ArgsHash})
	require.ErrorIs(t, err, hitl.ErrNotInGroup)
	_, err = b.Env.Approvals.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "lena", Approve: true, Comment: "Good to go.", ArgsHash: a.ArgsHash})
	require.NoError(t, err)

	out, err := durabletest.Result(t, b.Test, h)
	require.NoError(t, err)
	require.Equal(t, legalreview.StatusSent, out.Status)
	require.False(t, out.Escalated)
	require.Len(t, out.Decisions, 1)
	require.Equal(t, []string{"lena"}, out.Decisions[0].DecidedBy)
	require.Equal(t, draft, *out.Sent)

	msgs := b.outbox(t)
	require.Len(t, msgs, 1)
	require.Equal(t, []string{"ada@example.com"}, msgs[0].To)
	require.Equal(t, "Legal memo: Master services agreement with Difference Cloud", msgs[0].Subject)
	require.Equal(t, draft.Body, msgs[0].Text)
	require.Equal(t, out.EmailKey, msgs[0].Key)
	require.Equal(t, hitl.StatusApproved, b.approvals(t, "review-1")[0].Status)
}

// No lawyer decides within 24 hours: the run escalates to the partners;
// a partner approves an edited memo, and the edit is what is sent.
func TestLegalReviewEscalatesToPartner(t *testing.T) {
	t.Parallel()
	b := newBundle(t, nil)
	ctx := context.Background()
	h := durabletest.Start(t, b.Test, b.x.Workflow, legalreview.DemoRequest(), &durable.StartOptions{ID: "review-2"})

	first := b.pending(t, "review-2")
	require.Equal(t, legalreview.DefaultLawyers, first.Group)
	b.Test.Advance(t, 24*time.Hour)

	second := b.pending(t, "review-2")
	require.Equal(t, legalreview.DefaultPartners, second.Group)
	require.Contains(t, second.Title, "Escalated")
	var memo legalreview.Memo
	require.NoError(t, json.Unmarshal(second.Args, &memo))
	memo.Body = "Dear Ada,\n\nDo not sign clause 9 as drafted; we will send a mark-up.\n\nPaula"
	edited, err := json.Marshal(memo)
	require.NoError(t, err)
	_, err = b.Env.Approvals.Decide(ctx, second.ID, hitl.DecideInput{Reviewer: "paula", Approve: true, ArgsHash: second.ArgsHash, EditedArgs: edited})
	require.NoError(t, err)

	out, err := durabletest.Result(t, b.Test, h)
	require.NoError(t, err)
	require.Equal(t, legalreview.StatusSent, out.Status)
	require.True(t, out.Escalated)
	require.Len(t, out.Decisions, 2)
	require.True(t, out.Decisions[0].TimedOut())
	require.True(t, out.Decisions[1].Edited)
	require.Equal(t, memo.Body, out.Sent.Body)

	msgs := b.outbox(t)
	require.Len(t, msgs, 1)
	require.Equal(t, memo.Body, msgs[0].Text)
	statuses := map[string]hitl.Status{}
	for _, a := range b.approvals(t, "review-2") {
		statuses[a.Group] = a.Status
	}
	require.Equal(t, map[string]hitl.Status{"legal": hitl.StatusTimedOut, "partners": hitl.StatusApproved}, statuses)
}

// Nobody decides: after 24 hours for the lawyers and 24 more for the
// partners the run ends expired, and nothing is sent.
func TestLegalReviewExpires(t *testing.T) {
	t.Parallel()
	b := newBundle(t, nil)
	start := b.Test.Clock.Now()
	out, err := durabletest.Run(t, b.Test, b.x.Workflow, legalreview.DemoRequest(), &durable.StartOptions{ID: "review-3"})
	require.NoError(t, err)
	require.Equal(t, legalreview.StatusExpired, out.Status)
	require.True(t, out.Escalated)
	require.Len(t, out.Decisions, 2)
	require.Equal(t, 48*time.Hour, out.Decisions[1].DecidedAt.Sub(start).Truncate(time.Hour))
	require.Empty(t, b.outbox(t))
	for _, a := range b.approvals(t, "review-3") {
		require.Equal(t, hitl.StatusTimedOut, a.Status)
	}
}

// A lawyer rejects: nothing is sent and nobody else is asked.
func TestLegalReviewRejected(t *testing.T) {
	t.Parallel()
	b := newBundle(t, nil)
	h := durabletest.Start(t, b.Test, b.x.Workflow, legalreview.DemoRequest(), &durable.StartOptions{ID: "review-4"})
	a := b.pending(t, "review-4")
	_, err := b.Env.Approvals.Decide(context.Background(), a.ID, hitl.DecideInput{Reviewer: "lena", Approve: false, Comment: "Clause 7 needs a rewrite first.", ArgsHash: a.ArgsHash})
	require.NoError(t, err)
	out, err := durabletest.Result(t, b.Test, h)
	require.NoError(t, err)
	require.Equal(t, legalreview.StatusRejected, out.Status)
	require.Equal(t, []string{"lena: Clause 7 needs a rewrite first."}, out.Decisions[0].Comments())
	require.Nil(t, out.Sent)
	require.Empty(t, b.outbox(t))
	require.Len(t, b.approvals(t, "review-4"), 1)
}

// A Request without a contract or a recipient fails the run.
func TestLegalReviewInvalidRequest(t *testing.T) {
	t.Parallel()
	b := newBundle(t, nil)
	_, err := durabletest.Run(t, b.Test, b.x.Workflow, legalreview.Request{Contract: "x"}, nil)
	require.ErrorContains(t, err, "legalreview: invalid request")
}
