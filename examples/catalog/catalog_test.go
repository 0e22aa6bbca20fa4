package catalog_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/billing"
	"github.com/keelhq/keel/billing/stripefake"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/durabletest"
	"github.com/keelhq/keel/examples/catalog"
	"github.com/keelhq/keel/examples/dealdesk"
	"github.com/keelhq/keel/examples/legalreview"
	"github.com/keelhq/keel/examples/salesfollowup"
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/examples/setup/setuptest"
	"github.com/keelhq/keel/examples/support"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/llm/offline"
	"github.com/keelhq/keel/tools/crm"
	"github.com/keelhq/keel/tools/email"
	"github.com/keelhq/keel/tools/email/sendgridfake"
)

// The catalog registers the four examples; each starts by its workflow
// name with its example input as raw JSON, as POST
// /v1/agents/{name}/runs does, and completes (legalreview once a lawyer
// approves; salesfollowup after its two weeks, skipped).
func TestRegisterAndStartByName(t *testing.T) {
	t.Parallel()
	b := setuptest.New(t, &setuptest.Options{TaskQueues: []string{dealdesk.DefaultLegalQueue, dealdesk.DefaultBillingQueue}})
	c, err := catalog.RegisterOn(b.Env)
	require.NoError(t, err)
	require.Empty(t, c.Skipped)
	var names []string
	for _, e := range c.Entries {
		names = append(names, e.Name)
		require.Equal(t, e.Name, e.Workflow)
		require.Equal(t, "default", e.TaskQueue)
		require.NotEmpty(t, e.Description)
		require.NotNil(t, e.Demo)
	}
	require.Equal(t, catalog.Names(), names)
	require.Equal(t, []string{"billing", "default", "legal"}, c.TaskQueues())
	require.Same(t, b.Env.Approvals, c.Approvals())

	ctx := context.Background()
	start := func(name string) string {
		e, ok := c.Lookup(name)
		require.True(t, ok)
		info, err := b.Engine().StartWorkflow(ctx, e.Workflow, e.Input, &durable.StartOptions{ID: "by-name-" + name, TaskQueue: e.TaskQueue})
		require.NoError(t, err)
		return info.WorkflowID
	}

	h1, err := c.Support.Workflow.Handle(ctx, b.Engine(), start(support.Name))
	require.NoError(t, err)
	o1, err := durabletest.Result(t, b.Test, h1)
	require.NoError(t, err)
	require.Equal(t, support.FeeCharged, o1.Fee.Status)

	h2, err := c.SalesFollowUp.Workflow.Handle(ctx, b.Engine(), start(salesfollowup.Name))
	require.NoError(t, err)
	o2, err := durabletest.Result(t, b.Test, h2)
	require.NoError(t, err)
	require.Equal(t, salesfollowup.StatusEscalated, o2.Status)

	id := start(legalreview.Name)
	b.Test.WaitIdle(t)
	list, _, err := c.Approvals().List(ctx, &hitl.ListParams{WorkflowID: id, Status: hitl.StatusPending})
	require.NoError(t, err)
	require.Len(t, list, 1)
	_, err = c.Approvals().Decide(ctx, list[0].ID, hitl.DecideInput{Reviewer: "local", Approve: true, ArgsHash: list[0].ArgsHash})
	require.NoError(t, err, "the local reviewer of `keel serve` is a lawyer in the default groups")
	h3, err := c.LegalReview.Workflow.Handle(ctx, b.Engine(), id)
	require.NoError(t, err)
	o3, err := durabletest.Result(t, b.Test, h3)
	require.NoError(t, err)
	require.Equal(t, legalreview.StatusSent, o3.Status)

	h4, err := c.DealDesk.Workflow.Handle(ctx, b.Engine(), start(dealdesk.Name))
	require.NoError(t, err)
	o4, err := durabletest.Result(t, b.Test, h4)
	require.NoError(t, err)
	require.Equal(t, crm.StageWon, o4.StageAfter)
}

// With an approval service that lacks the reviewer groups "legal" and
// "partners", legalreview is skipped, not an error.
func TestRegisterSkipsLegalReviewWithoutGroups(t *testing.T) {
	t.Parallel()
	b := setuptest.New(t, &setuptest.Options{NoBilling: true, Groups: hitl.Groups{"finance": {"fred"}}})
	c, err := catalog.RegisterOn(b.Env)
	require.NoError(t, err)
	require.Len(t, c.Entries, 3)
	require.Contains(t, c.Skipped, legalreview.Name)
	_, ok := c.Lookup(legalreview.Name)
	require.False(t, ok)
	err = c.Demo(context.Background(), legalreview.Name, &bytes.Buffer{})
	require.ErrorContains(t, err, "not registered")
	err = c.Demo(context.Background(), "nope", &bytes.Buffer{})
	require.ErrorIs(t, err, catalog.ErrUnknownExample)
}

// RunDemo plays each example's demo standalone, on a SQLite file with a
// real engine and clock, as `keel demo NAME` does.
func TestRunDemo(t *testing.T) {
	t.Parallel()
	cases := map[string][]string{
		support.Name: {
			`Ticket T-1, from the customer: "I was charged twice"`,
			"[local] to ada@example.com: Re: I was charged twice",
			"Ticket T-1: open → solved",
			"Resolution fee: charged",
			"charge succeeded cus_ada 99 usd — Resolution of support ticket T-1",
		},
		salesfollowup.Name: {
			"Grace: replied after 3 email(s).",
			"Alan: escalated after 5 email(s), to sales-manager@example.com.",
			"to sales-manager@example.com: Escalation: no reply from Alan Turing after 5 follow-ups",
			"cus_grace: Replied after 3 of 5 follow-up emails: Happy to talk.",
		},
		legalreview.Name: {
			`Pending approval`,
			`for group "legal"`,
			"Outcome: sent; approved by [lena]",
			"to ada@example.com: Legal memo: Master services agreement with Difference Cloud",
		},
		dealdesk.Name: {
			"Sub-agent legal_counsel (child workflow",
			"Sub-agent billing_specialist (child workflow",
			"Deal deal_ada_enterprise: proposal → won",
		},
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			stripe := stripefake.NewServer()
			defer stripe.Close()
			stripe.AddCustomer(crm.DemoAda, setuptest.DemoPaymentMethod)
			cfg := &setup.Config{
				Model:   offline.New(nil),
				Billing: &billing.Config{SecretKey: stripefake.SecretKey, APIBase: stripe.URL, HTTPClient: stripe.Client()},
				Email:   &email.Config{},
			}
			if os.Getenv(email.APIKeyEnv) != "" {
				sg := sendgridfake.NewServer()
				defer sg.Close()
				cfg.Email = &email.Config{APIKey: sendgridfake.APIKey, BaseURL: sg.URL}
			}
			var out bytes.Buffer
			err := catalog.RunDemo(context.Background(), name, &setup.RunOptions{
				DB: filepath.Join(t.TempDir(), "keel.db"), Out: &out, Logger: slog.New(slog.DiscardHandler), Config: cfg,
			})
			require.NoError(t, err, out.String())
			for _, w := range want {
				require.Contains(t, out.String(), w)
			}
		})
	}
}

// An unknown name is refused before anything is opened.
func TestRunDemoUnknown(t *testing.T) {
	t.Parallel()
	err := catalog.RunDemo(context.Background(), "nope", nil)
	require.True(t, errors.Is(err, catalog.ErrUnknownExample))
	require.ErrorContains(t, err, "support, salesfollowup, legalreview, dealdesk")
}
