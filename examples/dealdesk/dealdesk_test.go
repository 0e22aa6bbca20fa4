package dealdesk_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/agent"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/durabletest"
	"github.com/keelhq/keel/examples/dealdesk"
	"github.com/keelhq/keel/examples/setup/setuptest"
	"github.com/keelhq/keel/tools/crm"
)

type testBundle struct {
	*setuptest.Bundle
	x *dealdesk.Example
}

func newBundle(t *testing.T) *testBundle {
	t.Helper()
	b := setuptest.New(t, &setuptest.Options{NoBilling: true,
		TaskQueues: []string{dealdesk.DefaultLegalQueue, dealdesk.DefaultBillingQueue}})
	x, err := dealdesk.New(b.Env, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"billing", "default", "legal"}, b.Env.TaskQueues())
	return &testBundle{Bundle: b, x: x}
}

// The demo deal: the deal desk looks the customer up, calls the legal and
// billing agents in one turn (two child workflows on their own task
// queues, both started before either finished), then closes the deal in
// the CRM and notes it on the customer.
func TestDealDeskClosesDeal(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	ctx := context.Background()

	out, err := durabletest.Run(t, b.Test, b.x.Workflow, dealdesk.DemoRequest(), &durable.StartOptions{ID: "deal-1"})
	require.NoError(t, err)
	require.Equal(t, agent.StatusCompleted, out.AgentStatus)
	require.Equal(t, crm.StageProposal, out.StageBefore)
	require.Equal(t, crm.StageWon, out.StageAfter)
	require.True(t, out.Closed)
	require.Contains(t, out.Summary, "Approve", "the offline deal desk recommends closing a low-risk deal")

	d, err := b.Env.CRM.Deal(ctx, "deal_ada_enterprise")
	require.NoError(t, err)
	require.Equal(t, crm.StageWon, d.Stage)
	notes, err := b.Env.CRM.Notes(ctx, crm.DemoAda)
	require.NoError(t, err)
	last := notes[len(notes)-1]
	require.Equal(t, dealdesk.AgentName, last.Author)
	require.Contains(t, last.Body, "Deal deal_ada_enterprise closed as won.")

	// Two sub-agent runs, each on its own task queue.
	require.Len(t, out.SubAgents, 2)
	queues := map[string]string{}
	for _, s := range out.SubAgents {
		require.Equal(t, agent.StatusCompleted, s.Status, s.Agent)
		info, err := b.Engine().Describe(ctx, s.WorkflowID)
		require.NoError(t, err)
		queues[s.Agent] = info.TaskQueue
	}
	require.Equal(t, map[string]string{dealdesk.LegalAgentName: "legal", dealdesk.BillingAgentName: "billing"}, queues)

	// In parallel: the desk asked for both in one answer, and started both
	// children before either completed.
	info, err := b.Engine().Describe(ctx, "deal-1/desk")
	require.NoError(t, err)
	conv, err := b.Env.Runtime.Conversation(ctx, info.RunID)
	require.NoError(t, err)
	var turns [][]string
	for _, m := range conv {
		if len(m.ToolCalls) > 0 {
			var names []string
			for _, c := range m.ToolCalls {
				names = append(names, c.Name)
			}
			turns = append(turns, names)
		}
	}
	require.Equal(t, [][]string{
		{crm.LookupToolName},
		{dealdesk.LegalAgentName, dealdesk.BillingAgentName},
		{dealdesk.CloseToolName},
	}, turns)
	h := b.Test.History(t, info.RunID)
	var order []string
	for _, e := range h.Events {
		switch e.Type {
		case durable.EventChildWorkflowInitiated, durable.EventChildWorkflowCompleted:
			order = append(order, e.Type)
		}
	}
	require.Equal(t, []string{durable.EventChildWorkflowInitiated, durable.EventChildWorkflowInitiated,
		durable.EventChildWorkflowCompleted, durable.EventChildWorkflowCompleted}, order)

	// The legal agent reviewed the terms; the billing agent read the quote.
	legal := b.answer(t, out.SubAgents, dealdesk.LegalAgentName)
	require.Contains(t, legal, "risk level low")
	billing := b.answer(t, out.SubAgents, dealdesk.BillingAgentName)
	require.Contains(t, billing, "get_deal_quote")
	require.Contains(t, billing, "first_invoice_cents=100000", "Ada is billed monthly: a twelfth of $12,000")
}

// answer returns a sub-agent run's final answer.
func (b *testBundle) answer(t *testing.T, runs []agent.SubAgentRun, name string) string {
	t.Helper()
	for _, s := range runs {
		if s.Agent == name {
			wf, err := b.Env.Runtime.Workflow(b.x.Legal)
			require.NoError(t, err)
			h, err := wf.Handle(context.Background(), b.Engine(), s.WorkflowID)
			require.NoError(t, err)
			res, err := durabletest.Result(t, b.Test, h)
			require.NoError(t, err)
			return res.Output
		}
	}
	t.Fatalf("no sub-agent run of %s", name)
	return ""
}

// A deal that is already won stays won, and the outcome says this run did
// not close it.
func TestDealDeskAlreadyWon(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	ctx := context.Background()
	d, err := b.Env.CRM.Deal(ctx, "deal_grace_renewal")
	require.NoError(t, err)
	d.Stage = crm.StageWon
	_, err = b.Env.CRM.UpsertDeal(ctx, d)
	require.NoError(t, err)

	out, err := durabletest.Run(t, b.Test, b.x.Workflow, dealdesk.Request{DealKey: "deal_grace_renewal"}, nil)
	require.NoError(t, err)
	require.Equal(t, crm.StageWon, out.StageBefore)
	require.Equal(t, crm.StageWon, out.StageAfter)
	require.False(t, out.Closed)
}

// A deal the CRM does not have fails the run before any agent runs.
func TestDealDeskUnknownDeal(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	_, err := durabletest.Run(t, b.Test, b.x.Workflow, dealdesk.Request{DealKey: "deal_nobody"}, &durable.StartOptions{ID: "deal-x"})
	require.ErrorContains(t, err, "dealdesk: invalid request")
	_, err = durabletest.Run(t, b.Test, b.x.Workflow, dealdesk.Request{}, nil)
	require.ErrorContains(t, err, "deal_key is required")
	h := b.Test.History(t, mustRunID(t, b, "deal-x"))
	require.Empty(t, h.Find(durable.EventChildWorkflowInitiated, ""))
}

func mustRunID(t *testing.T, b *testBundle, id string) string {
	t.Helper()
	info, err := b.Engine().Describe(context.Background(), id)
	require.NoError(t, err)
	return info.RunID
}
