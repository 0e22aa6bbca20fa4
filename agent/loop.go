package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/tools"
)

// run is the state of one run of the loop, rebuilt identically on every
// replay from the recorded model answers and tool results.
type run struct {
	rt     *Runtime
	ctx    durable.Context
	start  *Agent
	cur    *registered
	limit  Budget
	res    Result
	turn   int
	toolIx map[string]int // Result.Tools index by name
}

// loop returns the workflow function of the agent named name: model call →
// tool calls in parallel → results in the model's order → model call …
// until a final answer, MaxTurns, or the budget.
func (rt *Runtime) loop(name string) func(ctx durable.Context, in Input) (Result, error) {
	return func(ctx durable.Context, in Input) (Result, error) {
		reg, err := rt.lookup(name)
		if err != nil {
			return Result{}, err
		}
		r := &run{rt: rt, ctx: ctx, start: reg.a, cur: reg, toolIx: map[string]int{}}
		r.limit = effectiveBudget(reg.a.Budget, in.Limit)
		r.res.Agent = reg.a.Name
		return r.loop(in)
	}
}

// effectiveBudget is the agent's budget capped by a parent's limit.
func effectiveBudget(b Budget, limit *Budget) Budget {
	if limit == nil {
		return b
	}
	if limit.MaxTokens > 0 && (b.MaxTokens == 0 || limit.MaxTokens < b.MaxTokens) {
		b.MaxTokens = limit.MaxTokens
	}
	if limit.MaxCost > 0 && (b.MaxCost == 0 || limit.MaxCost < b.MaxCost) {
		b.MaxCost = limit.MaxCost
	}
	return b
}

func (r *run) loop(in Input) (Result, error) {
	maxTurns := r.start.MaxTurns
	if maxTurns == 0 {
		maxTurns = DefaultMaxTurns
	}
	maxRepairs := r.start.MaxRepairs
	if maxRepairs == 0 {
		maxRepairs = DefaultMaxRepairs
	}
	added := append(append([]llm.Message(nil), in.History...), llm.UserMessage(in.Message))
	repairs := 0
	for {
		if r.turn >= maxTurns {
			return r.stop(StatusMaxTurns, fmt.Sprintf("the run reached its limit of %d model calls", maxTurns)), nil
		}
		if stop, err := r.checkBudget(); stop || err != nil {
			return r.res, r.failed(err)
		}
		r.turn++
		out, err := r.callModel(added)
		if err != nil {
			return r.res, r.failed(err)
		}
		msg := out.Message
		if msg.Content != "" {
			r.res.Output = msg.Content
		}

		if len(msg.ToolCalls) == 0 {
			if out.Refusal != "" && msg.Content == "" {
				r.res.Output = out.Refusal
				return r.stop(StatusRefused, "the model refused: "+out.Refusal), nil
			}
			o := r.cur.a.Output
			if o == nil {
				r.res.Status = StatusCompleted
				return r.res, nil
			}
			verr := o.Validate(msg.Content)
			if verr == nil {
				r.res.Output = Normalize(msg.Content)
				r.res.Status = StatusCompleted
				return r.res, nil
			}
			if repairs >= maxRepairs || maxRepairs < 0 {
				return r.stop(StatusInvalidOutput, verr.Error()), nil
			}
			repairs++
			added = []llm.Message{o.repairMessage(verr)}
			continue
		}

		if r.turn >= maxTurns {
			return r.stop(StatusMaxTurns, fmt.Sprintf(
				"the run reached its limit of %d model calls; the %d tool call(s) of the last answer did not run", maxTurns, len(msg.ToolCalls))), nil
		}
		if stop, err := r.checkBudget(); stop || err != nil {
			return r.res, r.failed(err)
		}
		added, err = r.runTools(msg.ToolCalls)
		if err != nil {
			return r.res, r.failed(err)
		}
	}
}

// spent is what a run had used when it failed: its error carries it
// (durable.WithDetails) so that a parent agent counts it in its own
// totals, and Runtime.Run returns it in the Result beside the error.
type spent struct {
	Turns int       `json:"turns"`
	Usage llm.Usage `json:"usage"`
	Cost  llm.USD   `json:"cost"`
}

// failed returns err carrying what the run had spent, or nil for nil.
func (r *run) failed(err error) error {
	if err == nil {
		return nil
	}
	d, merr := json.Marshal(spent{Turns: r.turn, Usage: r.res.Usage, Cost: r.res.Cost})
	if merr != nil {
		return err
	}
	return durable.WithDetails(err, d)
}

// spentOf returns what the failed run whose error err is had spent, when
// its error carries it.
func spentOf(err error) (spent, bool) {
	ae, ok := errors.AsType[*durable.ApplicationError](childCause(err))
	if !ok || len(ae.Details) == 0 {
		return spent{}, false
	}
	var sp spent
	if json.Unmarshal(ae.Details, &sp) != nil {
		return spent{}, false
	}
	return sp, true
}

// stop ends the run early with status and reason.
func (r *run) stop(status Status, reason string) Result {
	r.res.Status = status
	r.res.Error = reason
	return r.res
}

// callModel makes model call r.turn with the messages added since the
// previous one, and accounts for it.
func (r *run) callModel(added []llm.Message) (modelOutput, error) {
	a := r.cur.a
	opts := DefaultModelActivity()
	if a.ModelActivity != nil {
		opts = a.ModelActivity
	}
	o := *opts
	if o.TaskQueue == "" {
		o.TaskQueue = queueOf(a)
	}
	out, err := r.rt.modelAct.StartWithOptions(r.ctx, modelInput{Agent: a.Name, Turn: r.turn, New: added}, &o).Get(r.ctx)
	if err != nil {
		return out, fmt.Errorf("agent %s: model call %d: %w", a.Name, r.turn, err)
	}
	r.res.Turns = r.turn
	r.res.Usage = r.res.Usage.Add(out.Usage)
	r.res.Cost += out.Cost
	r.res.ModelCalls = append(r.res.ModelCalls, ModelCall{
		Turn: r.turn, Agent: a.Name, Model: out.Model, Usage: out.Usage, Cost: out.Cost, ToolCalls: len(out.Message.ToolCalls),
	})
	return out, nil
}

// exceeded says which limit the run's spending has reached, if any.
func (r *run) exceeded() string {
	switch {
	case r.limit.MaxTokens > 0 && r.res.Usage.TotalTokens >= r.limit.MaxTokens:
		return fmt.Sprintf("the run used %d tokens of its budget of %d", r.res.Usage.TotalTokens, r.limit.MaxTokens)
	case r.limit.MaxCost > 0 && r.res.Cost >= r.limit.MaxCost:
		return fmt.Sprintf("the run spent %s of its budget of %s", r.res.Cost, r.limit.MaxCost)
	}
	return ""
}

// budgetArgs are the arguments of a budget approval request, and of an
// approval that sets new limits.
type budgetArgs struct {
	Agent       string  `json:"agent,omitempty"`
	SpentTokens int64   `json:"spent_tokens,omitempty"`
	SpentCost   llm.USD `json:"spent_cost,omitempty"`
	MaxTokens   int64   `json:"max_tokens,omitempty"`
	MaxCost     llm.USD `json:"max_cost,omitempty"`
}

// checkBudget stops the run when its spending reached a limit, unless the
// budget asks for approval and gets it.
func (r *run) checkBudget() (stop bool, err error) {
	for {
		why := r.exceeded()
		if why == "" {
			return false, nil
		}
		a := r.start
		if !a.Budget.AskApproval || a.Approver == nil {
			r.stop(StatusBudgetExceeded, why)
			return true, nil
		}
		args, _ := json.Marshal(budgetArgs{
			Agent: a.Name, SpentTokens: r.res.Usage.TotalTokens, SpentCost: r.res.Cost,
			MaxTokens: r.limit.MaxTokens, MaxCost: r.limit.MaxCost,
		})
		d, err := a.Approver.Approve(r.ctx, tools.ApprovalRequest{
			Action: BudgetAction, Arguments: args, Reason: "agent " + a.Name + " reached its budget: " + why,
		})
		if err != nil {
			if errors.Is(err, durable.ErrCanceled) {
				return true, err
			}
			r.stop(StatusBudgetExceeded, why+"; asking to spend more failed: "+err.Error())
			return true, nil
		}
		if !d.Approved {
			msg := why + "; a reviewer refused to raise it"
			if d.Comment != "" {
				msg += ": " + d.Comment
			}
			r.stop(StatusBudgetExceeded, msg)
			return true, nil
		}
		var raised budgetArgs
		if len(d.Arguments) > 0 {
			_ = json.Unmarshal(d.Arguments, &raised) // a bad value raises by the default
		}
		r.raise(raised)
	}
}

// raise lifts the limits after an approval: to the approved values, or by
// the agent's original budget.
func (r *run) raise(to budgetArgs) {
	b := r.start.Budget
	if r.limit.MaxTokens > 0 {
		switch {
		case to.MaxTokens > r.res.Usage.TotalTokens:
			r.limit.MaxTokens = to.MaxTokens
		case b.MaxTokens > 0:
			r.limit.MaxTokens = r.res.Usage.TotalTokens + b.MaxTokens
		default:
			r.limit.MaxTokens = 2 * r.limit.MaxTokens
		}
	}
	if r.limit.MaxCost > 0 {
		switch {
		case to.MaxCost > r.res.Cost:
			r.limit.MaxCost = to.MaxCost
		case b.MaxCost > 0:
			r.limit.MaxCost = r.res.Cost + b.MaxCost
		default:
			r.limit.MaxCost = 2 * r.limit.MaxCost
		}
	}
	// A limit that no longer binds is lifted, so the loop ends.
	if r.limit.MaxTokens > 0 && r.res.Usage.TotalTokens >= r.limit.MaxTokens {
		r.limit.MaxTokens = r.res.Usage.TotalTokens + 1
	}
	if r.limit.MaxCost > 0 && r.res.Cost >= r.limit.MaxCost {
		r.limit.MaxCost = r.res.Cost + 1
	}
}

// remaining is what is left of the run's budget, to cap a sub-agent's.
func (r *run) remaining() *Budget {
	if r.limit.MaxTokens == 0 && r.limit.MaxCost == 0 {
		return nil
	}
	b := &Budget{}
	if r.limit.MaxTokens > 0 {
		b.MaxTokens = max(r.limit.MaxTokens-r.res.Usage.TotalTokens, 1)
	}
	if r.limit.MaxCost > 0 {
		b.MaxCost = max(r.limit.MaxCost-r.res.Cost, 1)
	}
	return b
}

// pending is one tool call of an answer on its way.
type pending struct {
	call tools.Call
	get  func() (tools.Result, error)
	// sub is set for a sub-agent call.
	sub *subAgentCall
}

// runTools runs an answer's tool calls in parallel and returns the tool
// messages in the order of the calls. A handoff call switches the agent
// once all calls are done.
func (r *run) runTools(calls []llm.ToolCall) ([]llm.Message, error) {
	var handoff *Agent
	ps := make([]*pending, len(calls))
	for i, c := range calls {
		call := tools.Call{ID: c.ID, Name: c.Name, Arguments: argumentsText(c.Arguments)}
		p := &pending{call: call}
		ps[i] = p
		switch {
		case r.cur.handoffs[c.Name] != nil:
			target := r.cur.handoffs[c.Name]
			text := "Transferred to " + target.Name + ", who now continues the conversation."
			if handoff != nil {
				text = "Not transferred: the conversation was already handed to " + handoff.Name + "."
			} else {
				handoff = target
			}
			p.get = func() (tools.Result, error) {
				content, _ := json.Marshal(text)
				return tools.Result{CallID: c.ID, Tool: c.Name, Content: content}, nil
			}
		case r.cur.subs[c.Name] != nil:
			p.sub = r.startSubAgent(r.cur.subs[c.Name], r.cur.subTools[c.Name], call, i)
			p.get = p.sub.get
		default:
			f := r.cur.tools.Start(r.ctx, call, &tools.CallOptions{Approver: r.cur.a.Approver})
			p.get = func() (tools.Result, error) { return f.Get(r.ctx) }
		}
	}
	msgs := make([]llm.Message, len(ps))
	for i, p := range ps {
		res, err := p.get()
		if err != nil {
			return nil, err
		}
		r.accountTool(p, res)
		msgs[i] = llm.ToolResultMessage(p.call.ID, res.Text())
	}
	if handoff != nil {
		reg, err := r.rt.lookup(handoff.Name)
		if err != nil {
			return nil, err
		}
		r.cur = reg
		r.res.Agent = handoff.Name
		r.res.Handoffs = append(r.res.Handoffs, handoff.Name)
	}
	return msgs, nil
}

// accountTool adds a finished call to the run's tool accounting, and a
// sub-agent's totals to the run's.
func (r *run) accountTool(p *pending, res tools.Result) {
	i, ok := r.toolIx[p.call.Name]
	if !ok {
		i = len(r.res.Tools)
		r.toolIx[p.call.Name] = i
		r.res.Tools = append(r.res.Tools, ToolUsage{Name: p.call.Name})
	}
	tu := &r.res.Tools[i]
	tu.Calls++
	if res.IsError {
		tu.Errors++
	}
	if s := p.sub; s != nil && s.run != nil {
		sr := *s.run
		tu.Usage = tu.Usage.Add(sr.Usage)
		tu.Cost += sr.Cost
		r.res.Usage = r.res.Usage.Add(sr.Usage)
		r.res.Cost += sr.Cost
	}
	if s := p.sub; s != nil && s.record != nil {
		r.res.SubAgents = append(r.res.SubAgents, *s.record)
	}
}

// argumentsText returns a tool call's arguments as the model wrote them:
// llm keeps text that is not JSON as a JSON string.
func argumentsText(raw json.RawMessage) string {
	t := strings.TrimSpace(string(raw))
	if strings.HasPrefix(t, `"`) {
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			return s
		}
	}
	return t
}
