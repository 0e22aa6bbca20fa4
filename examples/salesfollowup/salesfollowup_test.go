package salesfollowup_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/durabletest"
	"github.com/keelhq/keel/examples/salesfollowup"
	"github.com/keelhq/keel/examples/setup/setuptest"
	"github.com/keelhq/keel/tools/crm"
	"github.com/keelhq/keel/tools/email"
)

type testBundle struct {
	*setuptest.Bundle
	x *salesfollowup.Example
}

func newBundle(t *testing.T) *testBundle {
	t.Helper()
	b := setuptest.New(t, &setuptest.Options{NoBilling: true})
	x, err := salesfollowup.New(b.Env, nil)
	require.NoError(t, err)
	return &testBundle{Bundle: b, x: x}
}

// outbox returns the outbox oldest first.
func (b *testBundle) outbox(t *testing.T) []email.Message {
	t.Helper()
	msgs, err := b.Env.Outbox(context.Background(), time.Time{})
	require.NoError(t, err)
	return msgs
}

func (b *testBundle) notes(t *testing.T, customer string) []string {
	t.Helper()
	notes, err := b.Env.CRM.Notes(context.Background(), customer)
	require.NoError(t, err)
	var out []string
	for _, n := range notes {
		if n.Author == salesfollowup.AgentName {
			out = append(out, n.Body)
		}
	}
	return out
}

// No reply: five emails on days 0, 3, 6, 10 and 14 of workflow time (two
// weeks skipped in the test), then, 24 hours after the last, an
// escalation to the manager and a note in the CRM.
func TestFollowUpEscalates(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	start := b.Test.Clock.Now()

	out, err := durabletest.Run(t, b.Test, b.x.Workflow, salesfollowup.DemoRequest(), &durable.StartOptions{ID: "lead-grace"})
	require.NoError(t, err)
	require.Equal(t, salesfollowup.StatusEscalated, out.Status)
	require.Equal(t, crm.DemoGrace, out.CustomerKey)
	require.Len(t, out.Emails, 5)
	days := []int{0, 3, 6, 10, 14}
	for i, e := range out.Emails {
		require.Equal(t, i+1, e.N)
		require.Equal(t, time.Duration(days[i])*24*time.Hour, e.At.Sub(start).Truncate(time.Hour), "email %d", e.N)
		require.Equal(t, "grace@example.com", e.To)
	}
	require.Equal(t, "Keel Enterprise for Cobol Systems Inc", out.Emails[0].Subject)
	require.Equal(t, "Re: Keel Enterprise for Cobol Systems Inc", out.Emails[4].Subject)
	require.NotNil(t, out.Escalation)
	require.Equal(t, 15*24*time.Hour, out.Escalation.At.Sub(start).Truncate(time.Hour))
	require.Equal(t, salesfollowup.DefaultManagerEmail, out.Escalation.To)

	msgs := b.outbox(t)
	require.Len(t, msgs, 6)
	for i, m := range msgs[:5] {
		require.Equal(t, []string{"grace@example.com"}, m.To)
		require.Equal(t, email.StatusLocal, m.Status)
		require.Equal(t, out.Emails[i].Key, m.Key)
		require.Contains(t, m.Text, "Would you have 20 minutes", "the offline model drafts a sales email")
		require.NotContains(t, m.Text, "Subject:", "header lines of the draft are dropped")
	}
	esc := msgs[5]
	require.Equal(t, []string{salesfollowup.DefaultManagerEmail}, esc.To)
	require.Equal(t, "Escalation: no reply from Grace Hopper after 5 follow-ups", esc.Subject)
	require.Contains(t, esc.Text, "has not replied to 5 follow-up emails")
	require.Equal(t, []string{"No reply after 5 follow-up emails; escalated to sales-manager@example.com."}, b.notes(t, crm.DemoGrace))

	// Each email was written by its own run of the agent, a child
	// workflow; the run waited on durable timers, not goroutines.
	h := b.Test.History(t, mustRunID(t, b, "lead-grace"))
	require.Len(t, h.Find(durable.EventChildWorkflowInitiated, ""), 5)
	require.Len(t, h.Find(durable.EventTimerStarted, ""), 5)
	require.Len(t, h.Activities("salesfollowup.send_email"), 6)
}

func mustRunID(t *testing.T, b *testBundle, workflowID string) string {
	t.Helper()
	info, err := b.Engine().Describe(context.Background(), workflowID)
	require.NoError(t, err)
	return info.RunID
}

// The lead replies three days after the second email: the sequence stops,
// no third email goes out, nobody is escalated to, and the reply is noted
// in the CRM.
func TestFollowUpStopsOnReply(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	h := durabletest.Start(t, b.Test, b.x.Workflow, salesfollowup.DemoRequest(), &durable.StartOptions{ID: "lead-grace"})
	b.Test.WaitIdle(t)
	require.Len(t, b.outbox(t), 1)
	b.Test.Advance(t, 72*time.Hour)
	require.Len(t, b.outbox(t), 2)
	b.Test.Advance(t, 48*time.Hour)
	require.Len(t, b.outbox(t), 2, "the third email is due a day later")

	durabletest.SendSignal(t, b.Test, salesfollowup.Replied, "lead-grace",
		salesfollowup.Reply{From: "grace@example.com", Message: "Let's talk on Thursday."})
	out, err := durabletest.Result(t, b.Test, h)
	require.NoError(t, err)
	require.Equal(t, salesfollowup.StatusReplied, out.Status)
	require.Len(t, out.Emails, 2)
	require.Nil(t, out.Escalation)
	require.Equal(t, "Let's talk on Thursday.", out.Reply.Message)

	msgs := b.outbox(t)
	require.Len(t, msgs, 2)
	for _, m := range msgs {
		require.Equal(t, []string{"grace@example.com"}, m.To)
	}
	require.Equal(t, []string{"Replied after 2 of 5 follow-up emails: Let's talk on Thursday."}, b.notes(t, crm.DemoGrace))
}

// A lead the CRM does not know gets the emails, with no CRM note; a
// shorter schedule from the request is followed.
func TestFollowUpUnknownLead(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	start := b.Test.Clock.Now()
	out, err := durabletest.Run(t, b.Test, b.x.Workflow, salesfollowup.Request{
		LeadEmail: "someone@newco.example", Waits: []string{"24h", "48h"}, ReplyWindow: "12h", ManagerEmail: "boss@example.com",
	}, nil)
	require.NoError(t, err)
	require.Equal(t, salesfollowup.StatusEscalated, out.Status)
	require.Empty(t, out.CustomerKey)
	require.Len(t, out.Emails, 3)
	require.Equal(t, "Keel for newco.example", out.Emails[0].Subject)
	require.Equal(t, 72*time.Hour+12*time.Hour, out.Escalation.At.Sub(start).Truncate(time.Hour))
	msgs := b.outbox(t)
	require.Len(t, msgs, 4)
	require.Equal(t, []string{"boss@example.com"}, msgs[3].To)
}

// Bad requests fail the run before any email.
func TestFollowUpInvalidRequest(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	for _, req := range []salesfollowup.Request{
		{LeadEmail: "not-an-address"},
		{LeadEmail: "a@example.com", Waits: []string{"3 days"}},
		{LeadEmail: "a@example.com", ReplyWindow: "-1h"},
	} {
		_, err := durabletest.Run(t, b.Test, b.x.Workflow, req, nil)
		require.ErrorContains(t, err, "salesfollowup: invalid request")
		require.True(t, strings.Contains(err.Error(), "lead_email") || strings.Contains(err.Error(), "wait") || strings.Contains(err.Error(), "reply_window"))
	}
	require.Empty(t, b.outbox(t))
}
