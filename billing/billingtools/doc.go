// Package billingtools offers billing's charges and refunds to an agent's
// model as tools (package tools). Each call runs as a durable activity
// whose ledger key is the call's idempotency key, so a call is billed at
// most once however often it is retried or resumed:
//
//	charge := billingtools.ChargeTool(svc, &tools.Options{RequiresApproval: true})
//	a := &agent.Agent{Name: "support", Tools: []*tools.Tool{charge}, …}
//
// This package exists because billing imports only durable (and appdb):
// the adapter that needs both billing and tools lives beside it.
package billingtools
