// Package dealdesk is Keel's multi-agent example: a sales agent calls a
// legal agent and a billing agent as sub-agents, in parallel, then closes
// the deal.
//
// # What it shows
//
// A run of the workflow "dealdesk" takes a Request such as
//
//	{"deal_key": "deal_ada_enterprise",
//	 "terms": "12 months, 12 seats, billed annually, payment within 30 days."}
//
// loads the deal and its customer from the CRM, and runs the agent
// "deal_desk" as a child workflow. The deal desk's model looks the customer
// up (crm_lookup_customer), then calls its two sub-agents in one turn:
// "legal_counsel" reviews the terms, "billing_specialist" checks the price
// and billing schedule with its own tool (get_deal_quote). Each sub-agent
// call is a child workflow of the deal desk, with its own history, on its
// own task queue ("legal" and "billing", which need workers of their own;
// in a larger deployment, other processes), and the two run at the same
// time. With both answers the deal desk closes the deal (close_deal: CRM
// stage "won" and a note on the customer) and summarises.
//
// The Outcome has the deal's stage before and after, the deal desk's
// summary, and each sub-agent run with its tokens and cost.
//
// # Running it
//
//	go run ./examples/dealdesk/cmd/dealdesk
//
// or `keel demo dealdesk`, on the demo deal of Ada Lovelace's upgrade.
// OPENAI_API_KEY makes a language model play the three agents; its
// instructions tell the deal desk not to close a deal that legal or
// billing does not clear. The offline model always closes it and says in
// its summary what the specialists found.
package dealdesk
