// Package hitltools connects agent tools to human approvals: its Approver
// implements tools.Approver with a hitl.Policy that decides, per call,
// whether a reviewer must approve and which group, and hitl.Approve to ask
// and wait.
//
// Mark the tools that may need approval with tools.Options.RequiresApproval
// and pass an Approver in tools.CallOptions:
//
//	policy, err := hitl.NewPolicy([]hitl.Rule{
//		{Name: "big-refund", When: `action == "refund" && args.amount > 500`, Group: "finance", Required: 2},
//	}, nil)
//	approver, err := hitltools.New(policy, &hitltools.Config{
//		Requester:  "support-agent",
//		Escalation: &hitltools.Route{Group: "partners", Timeout: 4 * time.Hour},
//	})
//	r, err := refund.Run(ctx, call, &tools.CallOptions{Approver: approver})
//
// A call no rule matches runs without asking anyone (or asks
// Config.Fallback). A matching call waits for its group's decision: an
// approval runs the tool (with the reviewer's edited arguments, if any),
// a rejection comes back to the model as an error result with the
// reviewer's comment, and a timeout asks Config.Escalation once, then
// gives up with an error matching ErrTimedOut (the tool does not run).
//
// This package exists because hitl imports only durable: the adapter that
// needs both hitl and tools lives beside it.
package hitltools
