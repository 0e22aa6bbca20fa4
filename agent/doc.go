// Package agent runs AI agents as durable workflows: a model, its tools and
// sub-agents, in a loop that survives crashes, never calls the model twice
// for the same turn and never repeats a tool call once it is recorded.
//
// # Defining and running an agent
//
// An Agent is plain configuration: a name, instructions, the name of a
// model, tools (package tools), sub-agents, handoffs and limits. A Runtime
// holds the models (they are not serializable, so agents name them) and
// registers each agent's workflow with a durable engine:
//
//	lookup := tools.MustNew("crm_lookup", "Find a customer by email",
//		func(ctx context.Context, in struct {
//			Email string `json:"email"`
//		}) (Customer, error) {
//			return crm.FindByEmail(ctx, in.Email)
//		}, nil)
//	support := &agent.Agent{
//		Name:         "support",
//		Instructions: "You are a support agent. Look the customer up before you answer.",
//		Model:        "gpt",
//		Tools:        []*tools.Tool{lookup},
//		MaxTurns:     8,
//		Budget:       agent.Budget{MaxTokens: 50_000, MaxCost: 20 * llm.Cent},
//	}
//
//	st, _ := sqlitestore.Open("keel.db", nil)
//	e, _ := durable.New(st, nil)
//	model, _ := openai.New(&openai.Config{Model: "gpt-4o-mini"}) // reads OPENAI_API_KEY
//	rt, _ := agent.NewRuntime(e, &agent.Config{Models: map[string]llm.Model{"gpt": model}})
//	rt.MustRegister(support)
//	e.NewWorker(nil) // one worker per task queue in rt.TaskQueues()
//	_ = e.Start(ctx)
//
//	res, err := rt.Run(ctx, support, agent.Input{Message: "Where is my refund? I'm ada@example.com"},
//		&durable.StartOptions{ID: "ticket-1"})
//	// res.Status, res.Output, res.Usage, res.Cost, res.ModelCalls, res.Tools
//
// Every process that runs workers registers the same agents and models.
// A process that dies mid-run loses nothing: another worker (or the same
// program restarted) resumes the run where its history ends. Starting the
// same workflow ID again returns the running run.
//
// # The loop
//
// Each agent is a workflow registered under its name. A run calls the model
// (the activity ModelActivityName, with the agent's ModelActivity options:
// rate limits, server errors and timeouts are retried, at least as late as
// the provider's Retry-After; errors that repeating cannot fix are not).
// When the answer asks for tools, the calls run in parallel, each as its
// tool's activity, and their results go back to the model in the order the
// model asked for them. The loop ends with a final answer (StatusCompleted),
// after MaxTurns model calls (StatusMaxTurns), or when the budget is spent
// (StatusBudgetExceeded). These are outcomes in the Result, not errors;
// a run fails only when a model call fails for good.
//
// What the model gets wrong is fed back to it, never crashes a worker:
// arguments that are not JSON or do not fit a tool's schema, an unknown tool
// name, a tool that failed after its retries, a structured answer that does
// not follow the output schema (at most MaxRepairs times; then
// StatusInvalidOutput). MaxTurns bounds it all.
//
// # History stays linear
//
// A model call's activity input holds only the messages added since the
// previous call (the tool results, or the user's message on the first
// turn) and the turn number, never the whole conversation. The activity
// rebuilds the conversation from a process-local cache of the run's
// earlier calls, or, when the cache is cold (the previous call ran in
// another process, or this one restarted), from the run's recorded history.
// A run's history therefore grows with the size of its messages, not with
// the square of its turns. Runtime.Conversation reads a run's conversation.
//
// # Sub-agents and handoffs
//
// A sub-agent (Agent.SubAgents) is offered to the model as a tool named
// after it, taking {"input": "…"}. A call runs the sub-agent as a child
// workflow on its own task queue, with its own history and at most what is
// left of the parent's budget; its final answer is the tool's result, and
// its failure (or a stop before a final answer) is a tool error the parent's
// model can act on. A handoff target (Agent.Handoffs) is offered as the tool
// "transfer_to_" + its name: calling it hands the conversation over, and
// the run goes on with the target's instructions, model and tools.
//
// # Accounting and budgets
//
// Each model call's token usage and cost (from Config.Prices, exact to the
// micro-dollar) is recorded with its answer. The Result has them per model
// call (ModelCalls), per tool (Tools, where a sub-agent's tokens and cost
// are its tool's), per sub-agent run (SubAgents) and in total (Usage,
// Cost), sub-agents included — also those that failed: a run that fails
// carries what it had spent in its error (durable.WithDetails), its parent
// counts it, and Runtime.Run returns it beside the error in a Result of
// status StatusFailed. Budgets are enforced from these recorded figures, so
// a crash cannot reset the spend. With Budget.AskApproval the
// agent's Approver (the tools.Approver interface, implemented by package
// hitl) is asked whether the run may spend more, instead of stopping.
//
// # Structured output
//
// With Agent.Output set (OutputOf[T] generates the JSON Schema of a Go
// type), the model is asked for JSON following the schema; the final
// answer is validated, sent back with the problems found when it does not
// conform, and decoded with DecodeOutput.
//
// # Testing
//
// Package agenttest records a run (and its sub-agent runs) and replays it
// offline against changed code: each model call gets its recorded answer
// and each tool call its recorded result, and the replay reports every
// difference in what the code sends the model, the arguments of its tool
// calls and the run's Result. Package llm/llmtest is a local server that
// speaks OpenAI's wire format with scripted replies, and llm/offline a
// deterministic local model.
package agent
