package agent

import (
	"encoding/json"
	"time"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/tools"
)

// Defaults.
const (
	// DefaultMaxTurns is the number of model calls a run may make when
	// Agent.MaxTurns is zero.
	DefaultMaxTurns = 10
	// DefaultMaxRepairs is the number of repair turns a run may spend on
	// structured answers that do not follow the output schema when
	// Agent.MaxRepairs is zero.
	DefaultMaxRepairs = 2
)

// Agent is an agent's definition: what it is told, which model answers it,
// which tools and other agents it may call, and the limits of a run. It is
// plain configuration; register it with a Runtime, which runs each of its
// runs as a durable workflow named after it.
type Agent struct {
	// Name names the agent's workflow, and the tool through which other
	// agents call it. Required; letters, digits, '_' and '-' only.
	Name string
	// Description tells other agents' models what this agent does, when it
	// is their sub-agent or handoff target. Optional.
	Description string
	// Instructions are the system message of every model call.
	Instructions string
	// Model names a model registered on the Runtime (RegisterModel).
	// Required.
	Model string
	// Tools the model may call; each call runs as the tool's activity.
	Tools []*tools.Tool
	// SubAgents the model may call as tools: each call runs the sub-agent
	// as a child workflow, on its own task queue and with its own history,
	// and its final answer (or its failure) is the tool's result.
	SubAgents []*Agent
	// Handoffs are agents the model may hand the conversation over to:
	// the run goes on with the target's instructions, model and tools.
	Handoffs []*Agent
	// MaxTurns bounds the model calls of a run (handoffs included).
	// Optional; default DefaultMaxTurns.
	MaxTurns int
	// Budget bounds a run's spending. Optional; the zero value is
	// unlimited.
	Budget Budget
	// Output, when set, asks the model for a structured final answer that
	// follows the schema of a Go type (see OutputOf); an answer that does
	// not is sent back for repair, at most MaxRepairs times.
	Output *Output
	// MaxRepairs bounds repair turns for a structured answer. Optional;
	// default DefaultMaxRepairs; negative means none.
	MaxRepairs int
	// TaskQueue is where the agent's workflow and model calls run.
	// Optional; default "default". Tools run on the queue their options
	// name, else on this one.
	TaskQueue string
	// Approver decides the calls of tools that require approval, and
	// budget extensions when Budget.AskApproval is set. Optional.
	Approver tools.Approver
	// ModelActivity overrides the timeouts and retry policy of model calls.
	// Optional; default DefaultModelActivity.
	ModelActivity *durable.ActivityOptions
	// MaxOutputTokens bounds each reply's length. Optional; 0 leaves the
	// provider's limit.
	MaxOutputTokens int
	// Temperature is the sampling temperature. Optional.
	Temperature *float64
}

// DefaultModelActivity returns the activity options of model calls: an
// attempt may take two minutes, and heartbeats while it waits for the
// model, so that a worker that dies mid-call is noticed within ten seconds
// and the call retried elsewhere; rate limits, server errors, timeouts and
// connection failures are retried with exponential backoff from one second
// (and at least as long as the provider's Retry-After), up to ten attempts;
// errors that repeating cannot fix (a bad request, an exceeded context
// window) are not retried.
func DefaultModelActivity() *durable.ActivityOptions {
	return &durable.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    10 * time.Second,
		RetryPolicy: durable.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
			MaximumAttempts:    10,
		},
	}
}

// Budget bounds what a run may spend, sub-agents included. Spending is
// derived from the run's recorded history, so a crash does not reset it.
// The run checks it before each model call and after each answer that asks
// for tools; once spending reaches a limit the run stops with
// StatusBudgetExceeded, unless AskApproval is set and the Approver
// approves more.
type Budget struct {
	// MaxTokens bounds the total tokens. Optional; 0 is unlimited.
	MaxTokens int64 `json:"max_tokens,omitempty"`
	// MaxCost bounds the total cost. Optional; 0 is unlimited.
	MaxCost llm.USD `json:"max_cost,omitempty"`
	// AskApproval asks the agent's Approver (action "budget") whether
	// the run may go on when a limit is reached. An approval raises each
	// limit by its original amount, or to the limits given in the
	// decision's arguments ({"max_tokens":…, "max_cost":…}); a refusal,
	// or no decision, stops the run.
	AskApproval bool `json:"ask_approval,omitempty"`
}

// BudgetAction is the ApprovalRequest.Action of a budget extension.
const BudgetAction = "budget"

// Status is how a run ended.
type Status string

// Run statuses.
const (
	// StatusCompleted: the model gave a final answer.
	StatusCompleted Status = "completed"
	// StatusMaxTurns: the run made Agent.MaxTurns model calls without a
	// final answer.
	StatusMaxTurns Status = "max_turns"
	// StatusBudgetExceeded: the run reached a limit of its Budget.
	StatusBudgetExceeded Status = "budget_exceeded"
	// StatusInvalidOutput: the structured answer still did not follow the
	// output schema after Agent.MaxRepairs repair turns.
	StatusInvalidOutput Status = "invalid_output"
	// StatusRefused: the model refused to answer.
	StatusRefused Status = "refused"
	// StatusFailed: the run failed with an error (a model or tool error
	// that retries did not cure, a cancellation). Its workflow failed;
	// Runtime.Run returns the error with a Result of what the run had
	// spent, and a parent agent records the sub-agent run so.
	StatusFailed Status = "failed"
)

// Input starts a run.
type Input struct {
	// Message is the user's message.
	Message string `json:"message"`
	// History is an earlier conversation the run continues. Optional.
	History []llm.Message `json:"history,omitempty"`
	// Limit caps the run's budget below its agent's. A parent agent sets
	// it to what is left of its own budget when it calls a sub-agent.
	// Optional.
	Limit *Budget `json:"limit,omitempty"`
}

// Result is a run's outcome and its accounting. Stopping for budget, turns
// or an invalid structured answer is a Status, not an error.
type Result struct {
	Status Status `json:"status"`
	// Output is the final answer: text, or JSON for an agent with an
	// Output type (decode it with DecodeOutput). When the run stopped
	// early, it is the last text the model wrote, if any.
	Output string `json:"output,omitempty"`
	// Error says why a run that did not complete stopped.
	Error string `json:"error,omitempty"`
	// Agent is the agent that gave the final answer (after handoffs).
	Agent string `json:"agent"`
	// Handoffs lists the agents the conversation was handed to, in order.
	Handoffs []string `json:"handoffs,omitempty"`
	// Turns is the number of model calls.
	Turns int `json:"turns"`
	// Usage and Cost are the run's totals: its own model calls plus its
	// sub-agents' totals.
	Usage llm.Usage `json:"usage"`
	Cost  llm.USD   `json:"cost"`
	// ModelCalls accounts for each model call of the run.
	ModelCalls []ModelCall `json:"model_calls,omitempty"`
	// Tools accounts for each tool (sub-agents included), by name, in the
	// order of first use.
	Tools []ToolUsage `json:"tools,omitempty"`
	// SubAgents lists the sub-agent runs, with their totals.
	SubAgents []SubAgentRun `json:"sub_agents,omitempty"`
}

// ModelCall is the accounting of one model call.
type ModelCall struct {
	Turn  int       `json:"turn"`
	Agent string    `json:"agent"`
	Model string    `json:"model"`
	Usage llm.Usage `json:"usage"`
	Cost  llm.USD   `json:"cost"`
	// ToolCalls is the number of tool calls the answer asked for.
	ToolCalls int `json:"tool_calls,omitempty"`
}

// ToolUsage is the accounting of one tool over a run. Usage and Cost are
// nonzero for sub-agents, whose model calls are the tool's cost.
type ToolUsage struct {
	Name   string    `json:"name"`
	Calls  int       `json:"calls"`
	Errors int       `json:"errors,omitempty"`
	Usage  llm.Usage `json:"usage,omitzero"`
	Cost   llm.USD   `json:"cost,omitempty"`
}

// SubAgentRun is one run of a sub-agent, as a child workflow.
type SubAgentRun struct {
	Agent      string `json:"agent"`
	WorkflowID string `json:"workflow_id"`
	// Status is empty when the child failed (Error says why).
	Status Status    `json:"status,omitempty"`
	Error  string    `json:"error,omitempty"`
	Turns  int       `json:"turns,omitempty"`
	Usage  llm.Usage `json:"usage,omitzero"`
	Cost   llm.USD   `json:"cost,omitempty"`
}

// DecodeOutput decodes a structured final answer into a T.
func DecodeOutput[T any](r Result) (T, error) {
	var v T
	if err := json.Unmarshal([]byte(r.Output), &v); err != nil {
		return v, &OutputError{Err: err}
	}
	return v, nil
}
