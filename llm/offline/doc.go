// Package offline is a deterministic chat model that runs in process: no
// network, no randomness, no weights. Keel's demo and tests use it to run
// real agents end to end. Every text it writes starts with "[offline
// model]", so its output is never mistaken for a language model's.
//
//	m := offline.New(nil)
//	resp, err := m.Chat(ctx, &llm.Request{Messages: msgs, Tools: tools})
//
// The same request always gets the same response, byte for byte.
//
// # Rules
//
// The model reads the conversation: the system messages (the agent's
// instructions), the last user message (the question) and what followed it
// (the current turn: its own tool calls and their results).
//
// Tools. Each offered tool is sorted into a class by the first word of its
// name that names one (then by its description):
//
//   - lookups: get, lookup, find, search, fetch, read, list, query, check…
//     (and names such as crm_lookup, kb_search or ticket_status);
//   - handoffs: transfer, handoff (transfer_to_billing);
//   - delegation: ask, consult, review, analyze, draft, compose… and any
//     tool without a known word, such as a sub-agent called legal_reviewer;
//   - money: charge, refund, bill, invoice, pay;
//   - messages: send, email, notify, reply, message;
//   - record changes: update, set, close, resolve, assign, create…
//
// Lookups and delegations are always relevant. A handoff is relevant only
// when the user's messages name where it leads ("billing"). A money tool is relevant
// only when the conversation holds an amount ("$25.00", "30 EUR") and the
// instructions or user speak of charging, refunds, bills or payment; a
// message tool when they speak of email, replies, sending or following up;
// a record tool when they speak of updating, closing or resolving, or name
// what the tool changes (the "ticket" of update_ticket). A tool whose name
// appears in the instructions or question is always relevant.
//
// The model calls each relevant tool once per turn, class by class in the
// order above: all lookups together in one reply (parallel tool calls),
// then the delegations together, then money, messages and record changes,
// so that an email can cite what a lookup found. Tools of one class keep
// the order in which they were offered. When every relevant tool has been
// called, it answers. ToolChoice "none" makes it answer at once; a named
// tool is called once; "required" calls the first offered tool when none is
// left; ParallelToolCalls=false makes it call one tool per reply.
//
// Arguments. Arguments follow the tool's JSON Schema ($ref to $defs,
// allOf, anyOf/oneOf, const, enum, type lists, formats, patterns, lengths,
// bounds and array sizes are honoured). Required properties are always
// filled; optional ones only when the conversation holds a value for them.
// Values come from facts found in the conversation, looked up in the
// question first, then the current turn's tool results (latest first),
// then earlier messages and the instructions:
//
//   - emails (to, email, recipient), ticket IDs like T-1 (ticket_id),
//     customer IDs like cus_42 or C-7 (customer_id), order IDs (ORD-12),
//     URLs, dates, amounts (amount in dollars, or cents when the name or
//     description says cents; currency);
//   - any JSON key of a tool result, such as customer_id or name from a
//     CRM record;
//   - the question as a search query (query, q, search), with greetings,
//     emails and IDs removed; a CRM search gets the customer's ID or email;
//   - the question as the task of a sub-agent (task, request, input);
//   - written text: an email body (greeting, what the lookups found,
//     sign-off), a subject ("Re: …"), a note naming the tools used, a
//     status ("resolved", or the enum value closest to it), a deterministic
//     idempotency key.
//
// Anything else gets its schema default, an example, a value matching its
// pattern found in the conversation, a value of its format, or else the
// question's first line.
//
// Answers. The final text depends on the kind of agent the instructions
// describe: a support agent gets a reply listing what it checked and did;
// a sales agent gets a follow-up email draft (To, Subject, greeting, a
// request for a meeting); a legal reviewer gets a memo listing the clauses
// that raise known risks (unlimited liability, indemnity, automatic
// renewal, termination, exclusivity, penalties…) with a risk level and a
// recommendation; a deal desk gets a summary of its specialists' answers
// and a recommendation (escalate when a result failed or the risk is high).
// With no tools at all it answers the question directly.
//
// Structured output. With a ResponseFormat, the answer is JSON that
// follows the schema, every property filled: enums are chosen by the same
// judgement (risk level, recommendation, status), lists of issues or risks
// hold one entry per risky clause, and free-text fields start with the
// label.
//
// # Usage
//
// Token counts are deterministic, at four characters a token
// (llm.EstimateTokens) over the messages, tool specs and schema, so budgets
// and cost accounting can be exercised. Once a prompt reaches 1024 tokens,
// the part the previous call of the same loop already sent (everything
// before the last assistant message, in steps of 128) counts as cached,
// like a provider's prompt cache. A MaxOutputTokens smaller than the
// answer truncates it with finish reason "length". The model is named
// "offline" and priced at zero in llm.DefaultPrices; Config.Name gives it
// another name, such as a priced model's, to exercise cost accounting.
package offline
