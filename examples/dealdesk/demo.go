package dealdesk

import (
	"context"
	"fmt"
	"io"

	"github.com/google/uuid"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/examples/setup"
)

// DemoTerms are the terms of the demo deal: standard ones, which raise no
// legal risk.
const DemoTerms = `Subscription to the Enterprise plan for 12 months, for 12 seats, billed annually in advance.
Payment is due within 30 days of the invoice.
Single sign-on and audit logs are included from the first day.`

// DemoRequest is the demo's request: Ada Lovelace's upgrade to
// Enterprise, a deal of the demo CRM at stage proposal.
func DemoRequest() Request {
	return Request{DealKey: "deal_ada_enterprise", Terms: DemoTerms}
}

// Demo takes the demo deal to closing and writes what each agent did and
// where the deal ended up.
func (x *Example) Demo(ctx context.Context, out io.Writer) error {
	req := DemoRequest()
	h, err := x.Start(ctx, req, &durable.StartOptions{ID: "dealdesk-demo-" + uuid.NewString()[:8]})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Run %s: the deal desk works on %s.\n\n", h.WorkflowID(), req.DealKey)
	o, err := h.Result(ctx)
	if err != nil {
		return err
	}
	for _, s := range o.SubAgents {
		fmt.Fprintf(out, "Sub-agent %s (child workflow %s): %s in %d turn(s).\n", s.Agent, s.WorkflowID, s.Status, s.Turns)
		res, err := x.subAgentAnswer(ctx, s.WorkflowID)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, setup.Indent(res, "  │ "))
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "The deal desk (%s):\n%s\n\n", o.AgentStatus, setup.Indent(o.Summary, "  │ "))
	fmt.Fprintf(out, "Deal %s: %s → %s\n", o.DealKey, o.StageBefore, o.StageAfter)
	d, err := x.env.CRM.Deal(ctx, o.DealKey)
	if err != nil {
		return err
	}
	notes, err := x.env.CRM.Notes(ctx, d.CustomerKey)
	if err != nil {
		return err
	}
	if len(notes) > 0 {
		fmt.Fprintf(out, "Latest CRM note on %s: %s\n", d.CustomerKey, notes[len(notes)-1].Body)
	}
	return nil
}

// subAgentAnswer returns the final answer of a sub-agent's run. Every
// agent's workflow has the same input and result types, so one agent's
// workflow reads any agent run's result.
func (x *Example) subAgentAnswer(ctx context.Context, workflowID string) (string, error) {
	wf, err := x.env.Runtime.Workflow(x.Legal)
	if err != nil {
		return "", err
	}
	h, err := wf.Handle(ctx, x.env.Engine, workflowID)
	if err != nil {
		return "", err
	}
	res, err := h.Result(ctx)
	if err != nil {
		return "", err
	}
	return res.Output, nil
}
