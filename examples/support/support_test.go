package support_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/agent"
	"github.com/keelhq/keel/billing"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/durabletest"
	"github.com/keelhq/keel/examples/setup/setuptest"
	"github.com/keelhq/keel/examples/support"
	"github.com/keelhq/keel/tools/email"
	"github.com/keelhq/keel/tools/ticket"
)

type testBundle struct {
	*setuptest.Bundle
	x *support.Example
}

func newBundle(t *testing.T, opts *setuptest.Options) *testBundle {
	t.Helper()
	b := setuptest.New(t, opts)
	x, err := support.New(b.Env, nil)
	require.NoError(t, err)
	return &testBundle{Bundle: b, x: x}
}

func (b *testBundle) run(t *testing.T, req support.Request, id string) support.Outcome {
	t.Helper()
	h := durabletest.Start(t, b.Test, b.x.Workflow, req, &durable.StartOptions{ID: id})
	out, err := durabletest.Result(t, b.Test, h)
	require.NoError(t, err)
	return out
}

// The demo request, end to end on the offline model: the agent reads the
// ticket, looks Ada up in the CRM and searches the knowledge base in one
// turn, emails her a reply, solves the ticket, and the run charges the
// $0.99 fee once, in the ledger and at Stripe.
func TestSupportResolvesTicket(t *testing.T) {
	t.Parallel()
	testResolvesTicket(t, &setuptest.Options{})
}

// The same run on Postgres: every table (engine, CRM, KB, tickets,
// outbox, ledger) in one schema.
func TestSupportResolvesTicketPostgres(t *testing.T) {
	t.Parallel()
	testResolvesTicket(t, &setuptest.Options{Postgres: true})
}

func testResolvesTicket(t *testing.T, opts *setuptest.Options) {
	b := newBundle(t, opts)
	ctx := context.Background()

	out := b.run(t, support.DemoRequest(), "ticket-T-1")
	require.Equal(t, agent.StatusCompleted, out.AgentStatus)
	require.Equal(t, ticket.StatusOpen, out.StatusBefore)
	require.Equal(t, ticket.StatusSolved, out.StatusAfter)
	require.Equal(t, "ada@example.com", out.Requester)
	require.Contains(t, out.Answer, "[offline model]")

	// The flow the offline model takes: three lookups in one reply, then
	// the reply, then the resolution; each tool once.
	calls := map[string]int{}
	for _, tu := range out.Tools {
		calls[tu.Name] = tu.Calls
		require.Zero(t, tu.Errors, tu.Name)
	}
	require.Equal(t, map[string]int{"ticket_get": 1, "crm_lookup_customer": 1, "kb_search": 1,
		support.ReplyToolName: 1, support.ResolveToolName: 1}, calls)
	info, err := b.Engine().Describe(ctx, "ticket-T-1/agent")
	require.NoError(t, err)
	agentRun := b.Test.History(t, info.RunID)
	require.Len(t, agentRun.Activities("tool.kb_search"), 1)
	conv, err := b.Env.Runtime.Conversation(ctx, agentRun.Run.RunID)
	require.NoError(t, err)
	require.Len(t, conv[1].ToolCalls, 3, "the lookups run in parallel, in one reply")
	require.Equal(t, support.ReplyToolName, conv[5].ToolCalls[0].Name)
	require.Equal(t, support.ResolveToolName, conv[7].ToolCalls[0].Name)
	require.Contains(t, conv[4].Content, "double-charge", "the search found the article on double charges")

	// One email, to the ticket's requester, in the outbox.
	msgs, err := b.Env.Email.List(ctx, nil)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	m := msgs[0]
	require.Equal(t, []string{"ada@example.com"}, m.To)
	require.Equal(t, "Re: I was charged twice", m.Subject)
	require.Equal(t, setupFrom, m.From)
	if b.SendGrid == nil {
		require.Equal(t, email.StatusLocal, m.Status)
	} else {
		require.Equal(t, 1, b.SendGrid.Count(m.Key))
	}

	// The ticket is solved, with the reply as a public comment and an
	// internal note.
	tk, err := b.Env.Tickets.Get(ctx, "T-1")
	require.NoError(t, err)
	require.Equal(t, ticket.StatusSolved, tk.Status)
	comments, err := b.Env.Tickets.Comments(ctx, "T-1")
	require.NoError(t, err)
	require.Len(t, comments, 3)
	require.True(t, comments[1].Public)
	require.Equal(t, m.Text, comments[1].Body)
	require.False(t, comments[2].Public)

	// One charge of $0.99, to Ada, in the ledger and at Stripe.
	require.Equal(t, support.FeeCharged, out.Fee.Status, out.Fee.Reason)
	entries, err := b.Env.Billing.Entries(ctx, nil)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	e := entries[0]
	require.Equal(t, billing.KindCharge, e.Kind)
	require.Equal(t, billing.StatusSucceeded, e.Status)
	require.Equal(t, "cus_ada", e.Customer)
	require.EqualValues(t, 99, e.Amount)
	require.Equal(t, "usd", e.Currency)
	require.Equal(t, e.Key, out.Fee.Entry.Key)
	charges := b.Stripe.Charges()
	require.Len(t, charges, 1)
	require.EqualValues(t, 99, charges[0].Amount)
	require.Equal(t, "cus_ada", charges[0].Customer)
	require.Equal(t, e.StripeID, charges[0].ID)
}

const setupFrom = "Keel demo <demo@keel.example>"

// A second run on a ticket that is solved already charges nothing more.
func TestSupportChargesOncePerResolution(t *testing.T) {
	t.Parallel()
	b := newBundle(t, nil)
	ctx := context.Background()

	first := b.run(t, support.DemoRequest(), "first")
	require.Equal(t, support.FeeCharged, first.Fee.Status)
	second := b.run(t, support.Request{TicketID: "T-1", Message: "Thanks, one more question: when will the refund arrive?"}, "second")
	require.Equal(t, ticket.StatusSolved, second.StatusBefore)
	require.Equal(t, support.FeeSkipped, second.Fee.Status)
	require.Contains(t, second.Fee.Reason, "already solved")

	entries, err := b.Env.Billing.Entries(ctx, nil)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Len(t, b.Stripe.Charges(), 1)
	msgs, err := b.Env.Email.List(ctx, nil)
	require.NoError(t, err)
	require.Len(t, msgs, 2, "each run replies once")
	// The new message was added to the ticket before the agent read it.
	comments, err := b.Env.Tickets.Comments(ctx, "T-1")
	require.NoError(t, err)
	var found bool
	for _, c := range comments {
		found = found || strings.Contains(c.Body, "when will the refund arrive")
	}
	require.True(t, found)
}

// A ticket that does not exist is opened from the message and the
// customer's email; a customer the CRM does not know is not charged.
func TestSupportOpensTicket(t *testing.T) {
	t.Parallel()
	b := newBundle(t, nil)
	ctx := context.Background()

	out := b.run(t, support.Request{TicketID: "T-42", Message: "How do I reset my password?", CustomerEmail: "new@example.org"}, "t42")
	require.Equal(t, ticket.StatusSolved, out.StatusAfter)
	tk, err := b.Env.Tickets.Get(ctx, "T-42")
	require.NoError(t, err)
	require.Equal(t, "new@example.org", tk.RequesterEmail)
	require.Equal(t, "How do I reset my password?", tk.Subject)
	require.Equal(t, support.FeeSkipped, out.Fee.Status)
	require.Contains(t, out.Fee.Reason, "not a known customer")
	require.Empty(t, b.Stripe.Charges())
	msgs, err := b.Env.Email.List(ctx, nil)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, []string{"new@example.org"}, msgs[0].To)
}

// Without billing (no Stripe key) the ticket is still solved and the
// outcome says why no fee was charged.
func TestSupportWithoutBilling(t *testing.T) {
	t.Parallel()
	b := newBundle(t, &setuptest.Options{NoBilling: true})
	out := b.run(t, support.DemoRequest(), "no-billing")
	require.Equal(t, ticket.StatusSolved, out.StatusAfter)
	require.Equal(t, support.FeeSkipped, out.Fee.Status)
	require.Contains(t, out.Fee.Reason, "billing is not configured")
}

// A declined card fails the fee, not the run: the ledger keeps the failed
// charge and the ticket stays solved.
func TestSupportDeclinedFee(t *testing.T) {
	t.Parallel()
	b := newBundle(t, nil)
	b.Stripe.AddCustomer("cus_ada", "pm_card_chargeDeclined")
	out := b.run(t, support.DemoRequest(), "declined")
	require.Equal(t, ticket.StatusSolved, out.StatusAfter)
	require.Equal(t, support.FeeFailed, out.Fee.Status)
	require.Contains(t, out.Fee.Reason, "declined")
	entries, err := b.Env.Billing.Entries(context.Background(), nil)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, billing.StatusFailed, entries[0].Status)
	require.Empty(t, b.Stripe.Charges())
}

// Bad requests fail the run with ErrInvalidRequest before anything runs.
func TestSupportInvalidRequest(t *testing.T) {
	t.Parallel()
	b := newBundle(t, &setuptest.Options{NoBilling: true})
	for _, req := range []support.Request{{Message: "hi"}, {TicketID: "T-1"}, {TicketID: "T-99", Message: "hello"}} {
		h := durabletest.Start(t, b.Test, b.x.Workflow, req, nil)
		_, err := durabletest.Result(t, b.Test, h)
		require.ErrorContains(t, err, "support: invalid request", "%+v", req)
	}
	// A closed ticket cannot be answered again.
	_, err := b.Env.Tickets.Update(context.Background(), "T-3", ticket.UpdateParams{Status: ticket.StatusSolved})
	require.NoError(t, err)
	_, err = b.Env.Tickets.Update(context.Background(), "T-3", ticket.UpdateParams{Status: ticket.StatusClosed})
	require.NoError(t, err)
	h := durabletest.Start(t, b.Test, b.x.Workflow, support.Request{TicketID: "T-3", Message: "Still locked out"}, nil)
	_, err = durabletest.Result(t, b.Test, h)
	require.ErrorContains(t, err, "ticket T-3 is closed")

	msgs, err := b.Env.Email.List(context.Background(), nil)
	require.NoError(t, err)
	require.Empty(t, msgs)
}
