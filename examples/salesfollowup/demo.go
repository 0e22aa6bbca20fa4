package salesfollowup

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/tools/crm"
)

// DemoRequest is a request for a demo lead of the CRM, Grace Hopper, with
// the default two-week schedule.
func DemoRequest() Request {
	return Request{
		LeadEmail: "grace@example.com",
		Product:   "Keel Enterprise",
		Context:   "Asked about single sign-on and audit logs at the renewal call.",
	}
}

// demoWait stands for the days between emails in the demo, which cannot
// wait two weeks.
const demoWait = "1s"

// Demo follows up two leads at once, with seconds for days: Grace Hopper
// replies after the third email, which stops her sequence; Alan Turing
// never replies, so his run escalates to the sales manager. It writes the
// emails, the outcomes and the CRM notes.
func (x *Example) Demo(ctx context.Context, out io.Writer) error {
	since := time.Now().Add(-time.Second)
	id := "salesfollowup-demo-" + uuid.NewString()[:8]
	grace := DemoRequest()
	grace.Waits, grace.ReplyWindow = []string{demoWait, demoWait, demoWait, demoWait}, "2s"
	alan := Request{LeadEmail: "alan@example.com", Product: "Keel Pro", Context: "Started a trial last month.",
		Waits: grace.Waits, ReplyWindow: grace.ReplyWindow}
	fmt.Fprintf(out, "Two leads, five emails each, waits of %s standing for days (the default schedule is 3, 3, 4 and 4 days, then 24 hours for a reply).\n", demoWait)
	fmt.Fprintf(out, "Grace Hopper will reply after the third email; Alan Turing will not reply.\n\n")

	hg, err := x.Start(ctx, grace, &durable.StartOptions{ID: id + "-grace"})
	if err != nil {
		return err
	}
	ha, err := x.Start(ctx, alan, &durable.StartOptions{ID: id + "-alan"})
	if err != nil {
		return err
	}
	// Grace replies once her third email is in the outbox.
	err = setup.Poll(ctx, func(ctx context.Context) (bool, error) {
		msgs, err := x.env.Outbox(ctx, since)
		n := 0
		for _, m := range msgs {
			if len(m.To) == 1 && m.To[0] == grace.LeadEmail {
				n++
			}
		}
		return n >= 3, err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Grace replies (signal %q to run %s).\n\n", SignalName, hg.WorkflowID())
	if err := Replied.Send(ctx, x.env.Engine, hg.WorkflowID(), Reply{From: grace.LeadEmail, Message: "Happy to talk. Does Thursday at 10 work?"}); err != nil {
		return err
	}
	og, err := hg.Result(ctx)
	if err != nil {
		return err
	}
	oa, err := ha.Result(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Grace: %s after %d email(s).\nAlan: %s after %d email(s), to %s.\n\n", og.Status, len(og.Emails), oa.Status, len(oa.Emails), oa.Escalation.To)
	if err := x.env.PrintOutbox(ctx, out, since); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nCRM notes:")
	for _, key := range []string{crm.DemoGrace, crm.DemoAlan} {
		notes, err := x.env.CRM.Notes(ctx, key)
		if err != nil {
			return err
		}
		for _, n := range notes {
			if n.Author == AgentName && !n.CreatedAt.Before(since) {
				fmt.Fprintf(out, "  %s: %s\n", key, n.Body)
			}
		}
	}
	return nil
}
