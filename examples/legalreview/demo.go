package legalreview

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/hitl"
)

// DemoContract is the contract the demo reviews: three risky clauses.
const DemoContract = `MASTER SERVICES AGREEMENT between Analytical Engines Ltd ("Customer") and Difference Cloud plc ("Supplier").

Clause 3 (Term): This Agreement renews automatically for successive three-year terms unless either party gives notice of termination at least 180 days before the end of the current term.

Clause 7 (Liability): The Customer's liability under this Agreement is unlimited.

Clause 9 (Indemnity): The Customer shall indemnify the Supplier against all claims, losses and costs arising from the Customer's use of the services.

Clause 12 (Governing law): This Agreement is governed by the laws of England and Wales.`

// DemoRequest is the demo's request: a services agreement for Ada
// Lovelace's company, the demo CRM's first customer.
func DemoRequest() Request {
	return Request{
		Title:       "Master services agreement with Difference Cloud",
		Contract:    DemoContract,
		ClientEmail: "ada@example.com",
		Requester:   "ada@example.com",
	}
}

// Demo reviews the demo contract: the agent drafts the memo, a lawyer
// (the first member of the Lawyers group) approves it as a reviewer would
// on the reviewer page, and the memo is emailed. It writes the approval,
// the decision and the email.
func (x *Example) Demo(ctx context.Context, out io.Writer) error {
	since := time.Now().Add(-time.Second)
	h, err := x.Start(ctx, DemoRequest(), &durable.StartOptions{ID: "legalreview-demo-" + uuid.NewString()[:8]})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Run %s: drafting a memo on %q.\n\n", h.WorkflowID(), DemoRequest().Title)
	var a hitl.Approval
	err = setup.Poll(ctx, func(ctx context.Context) (bool, error) {
		list, _, err := x.env.Approvals.List(ctx, &hitl.ListParams{WorkflowID: h.WorkflowID(), Status: hitl.StatusPending})
		if len(list) > 0 {
			a = list[0]
		}
		return len(list) > 0, err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Pending approval %s for group %q (members %v), deadline in %s:\n  %s\n\n%s\n\n",
		a.ID, a.Group, x.env.Approvals.Groups().Members(a.Group), a.Deadline.Sub(a.CreatedAt), a.Title, setup.Indent(a.Details, "  │ "))

	reviewer := x.env.Approvals.Groups().Members(a.Group)[0]
	fmt.Fprintf(out, "%s approves it (on the reviewer page of `keel serve` this is the Approve button).\n\n", reviewer)
	if _, err := x.env.Approvals.Decide(ctx, a.ID, hitl.DecideInput{
		Reviewer: reviewer, Approve: true, Comment: "Checked against the clause library. Send it.", ArgsHash: a.ArgsHash,
	}); err != nil {
		return err
	}
	o, err := h.Result(ctx)
	if err != nil {
		return err
	}
	d := o.Decisions[len(o.Decisions)-1]
	fmt.Fprintf(out, "Outcome: %s; approved by %v: %v\n\n", o.Status, d.DecidedBy, d.Comments())
	return x.env.PrintOutbox(ctx, out, since)
}
