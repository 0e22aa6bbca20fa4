package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/tools"
)

// emptyObject is the parameter schema of a tool without arguments.
var emptyObject = json.RawMessage(`{"type":"object","properties":{},"additionalProperties":false}`) //nolint:gochecknoglobals // constant JSON

// subAgentInput is what a model passes to a sub-agent it calls as a tool.
type subAgentInput struct {
	Input string `json:"input" jsonschema:"description=The task or question for the agent, with all the context it needs: it does not see this conversation,minLength=1"`
}

// subAgentTool describes a sub-agent as a tool: its name, description and
// argument schema. The tool's handler never runs; a call starts the
// sub-agent's workflow as a child instead.
func subAgentTool(sub *Agent) (*tools.Tool, error) {
	desc := sub.Description
	if desc == "" {
		desc = "Ask the " + sub.Name + " agent."
	}
	return tools.New(sub.Name, desc, func(context.Context, subAgentInput) (string, error) {
		return "", errors.New("agent: a sub-agent runs as a child workflow")
	}, nil)
}

func handoffDescription(h *Agent) string {
	d := "Hand the conversation over to the " + h.Name + " agent, who then answers the user."
	if h.Description != "" {
		d += " " + h.Description
	}
	return d
}

// subAgentCall is a sub-agent run started by a tool call.
type subAgentCall struct {
	get func() (tools.Result, error)
	// run is the child's result, once it completed, or what it had spent
	// when it failed.
	run *Result
	// record describes the child run for Result.SubAgents, once known.
	record *SubAgentRun
}

// startSubAgent starts sub as a child workflow for a tool call: its own
// workflow ID, task queue and history, and at most what is left of this
// run's budget. Its final answer is the call's result; its failure, or a
// stop before a final answer, is an error result.
func (r *run) startSubAgent(sub *Agent, schema *tools.Tool, call tools.Call, index int) *subAgentCall {
	s := &subAgentCall{}
	fail := func(kind tools.ErrorKind, msg string) {
		s.get = func() (tools.Result, error) {
			return tools.Result{CallID: call.ID, Tool: call.Name, IsError: true, ErrorKind: kind, Error: msg}, nil
		}
	}
	if err := schema.Validate(call.Arguments); err != nil {
		fail(tools.ErrorInvalidArguments, err.Error())
		return s
	}
	var in subAgentInput
	if err := json.Unmarshal([]byte(call.Arguments), &in); err != nil {
		fail(tools.ErrorInvalidArguments, err.Error())
		return s
	}
	reg, err := r.rt.lookup(sub.Name)
	if err != nil {
		fail(tools.ErrorFailed, err.Error())
		return s
	}
	id := fmt.Sprintf("%s/%s-%d-%d", r.ctx.Info().WorkflowID, sub.Name, r.turn, index+1)
	f := reg.wf.StartChild(r.ctx, Input{Message: in.Input, Limit: r.remaining()}, &durable.ChildOptions{
		ID:        id,
		TaskQueue: queueOf(sub),
	})
	s.get = func() (tools.Result, error) {
		out := tools.Result{CallID: call.ID, Tool: call.Name}
		res, err := f.Get(r.ctx)
		if err != nil {
			if errors.Is(err, durable.ErrCanceled) && r.ctx.Err() != nil {
				return out, err
			}
			msg := fmt.Sprintf("agent %s failed: %v", sub.Name, childCause(err))
			s.record = &SubAgentRun{Agent: sub.Name, WorkflowID: id, Status: StatusFailed, Error: msg}
			if sp, ok := spentOf(err); ok {
				// What it spent before failing counts in this run's totals.
				s.record.Turns, s.record.Usage, s.record.Cost = sp.Turns, sp.Usage, sp.Cost
				s.run = &Result{Turns: sp.Turns, Usage: sp.Usage, Cost: sp.Cost}
			}
			out.IsError, out.ErrorKind, out.Error = true, tools.ErrorFailed, msg
			return out, nil
		}
		s.run = &res
		s.record = &SubAgentRun{
			Agent: sub.Name, WorkflowID: id, Status: res.Status, Error: res.Error,
			Turns: res.Turns, Usage: res.Usage, Cost: res.Cost,
		}
		if res.Status != StatusCompleted {
			msg := fmt.Sprintf("agent %s stopped before finishing (%s): %s", sub.Name, res.Status, res.Error)
			if res.Output != "" {
				msg += "; its last answer: " + res.Output
			}
			out.IsError, out.ErrorKind, out.Error = true, tools.ErrorFailed, msg
			return out, nil
		}
		out.Content, _ = json.Marshal(res.Output)
		return out, nil
	}
	return s
}

// childCause returns the child's own error, without the wrapping that
// names the child workflow.
func childCause(err error) error {
	var cwe *durable.ChildWorkflowError
	if errors.As(err, &cwe) && cwe.Err != nil {
		return cwe.Err
	}
	return err
}
