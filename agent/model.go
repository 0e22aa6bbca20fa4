package agent

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/llm"
)

// modelInput is the input of a model call activity. It holds only the
// messages added since the previous call (tool results, a repair request,
// the user's message on the first turn), never the whole conversation: the
// activity rebuilds the conversation from the run's earlier model calls, so
// the run's history grows linearly with its turns.
type modelInput struct {
	// Agent is the agent whose instructions, model and tools the call
	// uses (it changes on a handoff).
	Agent string `json:"agent"`
	// Turn numbers the run's model calls from 1.
	Turn int           `json:"turn"`
	New  []llm.Message `json:"new"`
}

// modelOutput is the recorded outcome of a model call.
type modelOutput struct {
	Message llm.Message      `json:"message"`
	Finish  llm.FinishReason `json:"finish,omitempty"`
	Refusal string           `json:"refusal,omitempty"`
	Model   string           `json:"model,omitempty"`
	Usage   llm.Usage        `json:"usage"`
	Cost    llm.USD          `json:"cost,omitempty"`
}

// callModel is the model activity: it rebuilds the conversation, calls the
// agent's model and prices the answer.
func (rt *Runtime) callModel(ctx context.Context, in modelInput) (modelOutput, error) {
	info, ok := durable.GetActivityInfo(ctx)
	if !ok {
		return modelOutput{}, durable.NonRetryable(errors.New("agent: model call outside an activity"))
	}
	r, err := rt.lookup(in.Agent)
	if err != nil {
		return modelOutput{}, durable.NonRetryable(err)
	}
	m, err := rt.model(r.a.Model)
	if err != nil {
		return modelOutput{}, durable.NonRetryable(err)
	}
	conv, err := rt.conversationBefore(ctx, info.RunID, in.Turn)
	if err != nil {
		return modelOutput{}, err
	}
	conv = append(conv, in.New...)

	req := &llm.Request{Tools: r.specs, MaxOutputTokens: r.a.MaxOutputTokens, Temperature: r.a.Temperature}
	if r.a.Instructions != "" {
		req.Messages = append(make([]llm.Message, 0, len(conv)+1), llm.SystemMessage(r.a.Instructions))
	}
	req.Messages = append(req.Messages, conv...)
	if r.a.Output != nil {
		req.ResponseFormat = r.a.Output.responseFormat()
	}
	stop := heartbeatWhile(ctx)
	resp, err := m.Chat(ctx, req)
	stop()
	if err != nil {
		if !llm.IsRetryable(err) {
			return modelOutput{}, durable.NonRetryable(err)
		}
		return modelOutput{}, err
	}
	if resp == nil {
		return modelOutput{}, fmt.Errorf("agent: model %s returned no response", r.a.Model)
	}
	out := modelOutput{
		Message: resp.Message,
		Finish:  resp.FinishReason,
		Refusal: resp.Refusal,
		Model:   resp.Model,
		Usage:   resp.Usage,
	}
	out.Message.Role = llm.RoleAssistant
	// Some OpenAI-compatible servers leave out call IDs; the tool results
	// must name the calls they answer, and the next request must be valid.
	if len(out.Message.ToolCalls) > 0 {
		out.Message.ToolCalls = append([]llm.ToolCall(nil), out.Message.ToolCalls...)
		for i := range out.Message.ToolCalls {
			c := &out.Message.ToolCalls[i]
			if c.ID == "" {
				c.ID = fmt.Sprintf("call_%d_%d", in.Turn, i+1)
			}
			if c.Name == "" {
				c.Name = "unnamed"
			}
			if len(c.Arguments) == 0 {
				c.Arguments = json.RawMessage("{}")
			}
		}
	}
	if out.Model == "" {
		out.Model = m.Name()
	}
	out.Cost, err = rt.prices.Cost(out.Model, out.Usage)
	if err != nil {
		if cost, err2 := rt.prices.Cost(m.Name(), out.Usage); err2 == nil {
			out.Cost = cost
		} else {
			rt.logger.Warn("agent: model call not priced", "model", out.Model, "error", err)
		}
	}
	rt.convs.put(info.RunID, in.Turn, in.New, out.Message)
	return out, nil
}

// conversationBefore returns the run's conversation as it stood before
// model call turn (without the system message): the new messages and the
// answer of every earlier call. It comes from the cache when the previous
// call ran in this process, else from the run's history.
func (rt *Runtime) conversationBefore(ctx context.Context, runID string, turn int) ([]llm.Message, error) {
	if turn <= 1 {
		return nil, nil
	}
	if conv, ok := rt.convs.get(runID, turn-1); ok {
		return conv, nil
	}
	turns, err := rt.recordedTurns(ctx, runID)
	if err != nil {
		return nil, err
	}
	var conv []llm.Message
	ends := make([]int, 0, turn-1)
	for k := 1; k < turn; k++ {
		t, ok := turns[k]
		if !ok || t.out == nil {
			return nil, fmt.Errorf("%w: run %s has no recorded model call %d", ErrConversation, runID, k)
		}
		conv = append(conv, t.in.New...)
		conv = append(conv, t.out.Message)
		ends = append(ends, len(conv))
	}
	rt.convs.load(runID, conv, ends)
	return append([]llm.Message(nil), conv...), nil
}

// recordedTurn is a model call found in a run's history.
type recordedTurn struct {
	in  modelInput
	out *modelOutput // nil while the call has no recorded result
	err error        // the recorded failure of the call, if it failed
}

// recordedTurns reads a run's model calls from its history, by turn.
func (rt *Runtime) recordedTurns(ctx context.Context, runID string) (map[int]*recordedTurn, error) {
	h, err := rt.e.GetHistory(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("%w: read history of run %s: %w", ErrConversation, runID, err)
	}
	return turnsFromHistory(h)
}

// turnsFromHistory extracts the model calls of a history, by turn.
func turnsFromHistory(h *durable.History) (map[int]*recordedTurn, error) {
	bySeq := map[int64]*recordedTurn{}
	byTurn := map[int]*recordedTurn{}
	for _, ev := range h.Events {
		if ev.Type != durable.EventActivityScheduled && ev.Type != durable.EventActivityCompleted &&
			ev.Type != durable.EventActivityFailed {
			continue
		}
		d, err := ev.Details()
		if err != nil {
			return nil, fmt.Errorf("%w: event %d: %w", ErrConversation, ev.ID, err)
		}
		switch ev.Type {
		case durable.EventActivityScheduled:
			if d.Name != ModelActivityName {
				continue
			}
			t := &recordedTurn{}
			if err := json.Unmarshal(d.Input, &t.in); err != nil {
				return nil, fmt.Errorf("%w: event %d: %w", ErrConversation, ev.ID, err)
			}
			bySeq[d.Seq] = t
			byTurn[t.in.Turn] = t
		case durable.EventActivityCompleted:
			t, ok := bySeq[d.Seq]
			if !ok {
				continue
			}
			t.out = &modelOutput{}
			if err := json.Unmarshal(d.Result, t.out); err != nil {
				return nil, fmt.Errorf("%w: event %d: %w", ErrConversation, ev.ID, err)
			}
		case durable.EventActivityFailed:
			if t, ok := bySeq[d.Seq]; ok {
				t.err = d.Error
			}
		}
	}
	return byTurn, nil
}

// RecordedCall is a model call as a run's history recorded it.
type RecordedCall struct {
	// Turn numbers the run's model calls from 1.
	Turn int
	// Agent is the agent that made the call.
	Agent string
	// Sent are the messages added to the conversation since the previous
	// call; the call sent the conversation so far (the earlier calls'
	// Sent and Answer messages) followed by these, after the agent's
	// instructions.
	Sent []llm.Message
	// Answer is the recorded answer; nil when the call failed (Err) or
	// has no outcome yet.
	Answer *llm.Response
	// Cost is the answer's recorded cost.
	Cost llm.USD
	// Err is the recorded failure of a call that failed for good.
	Err error
}

// RecordedCalls returns the model calls of a run's history, in order.
func RecordedCalls(h *durable.History) ([]RecordedCall, error) {
	turns, err := turnsFromHistory(h)
	if err != nil {
		return nil, err
	}
	out := make([]RecordedCall, 0, len(turns))
	for k := 1; ; k++ {
		t, ok := turns[k]
		if !ok {
			return out, nil
		}
		rc := RecordedCall{Turn: k, Agent: t.in.Agent, Sent: t.in.New, Err: t.err}
		if t.out != nil {
			rc.Answer = &llm.Response{
				Model: t.out.Model, Message: t.out.Message, FinishReason: t.out.Finish,
				Refusal: t.out.Refusal, Usage: t.out.Usage,
			}
			rc.Cost = t.out.Cost
		}
		out = append(out, rc)
	}
}

// Conversation returns the messages a run has exchanged with its models so
// far, without system messages, rebuilt from its history: the messages
// sent and every recorded answer.
func (rt *Runtime) Conversation(ctx context.Context, runID string) ([]llm.Message, error) {
	turns, err := rt.recordedTurns(ctx, runID)
	if err != nil {
		return nil, err
	}
	return conversationOf(turns), nil
}

// ConversationOf rebuilds the conversation of an exported history (see
// Runtime.Conversation).
func ConversationOf(h *durable.History) ([]llm.Message, error) {
	turns, err := turnsFromHistory(h)
	if err != nil {
		return nil, err
	}
	return conversationOf(turns), nil
}

func conversationOf(turns map[int]*recordedTurn) []llm.Message {
	var conv []llm.Message
	for k := 1; ; k++ {
		t, ok := turns[k]
		if !ok {
			return conv
		}
		conv = append(conv, t.in.New...)
		if t.out == nil {
			return conv
		}
		conv = append(conv, t.out.Message)
	}
}

// convCache keeps recent runs' conversations in memory, least recently used
// first out. For each run it holds the conversation through the answer of
// its latest call in this process, and where each turn's answer ends, so a
// retried call finds the conversation before it too.
type convCache struct {
	mu    sync.Mutex
	size  int
	order *list.List // of *convEntry, most recent at the front
	runs  map[string]*list.Element
}

type convEntry struct {
	runID string
	msgs  []llm.Message
	ends  []int // ends[k-1] = len(msgs) after turn k's answer
}

func newConvCache(size int) *convCache {
	return &convCache{size: size, order: list.New(), runs: map[string]*list.Element{}}
}

// get returns a copy of the conversation through turn's answer.
func (c *convCache) get(runID string, turn int) ([]llm.Message, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.runs[runID]
	if !ok {
		return nil, false
	}
	e := el.Value.(*convEntry)
	if turn < 1 || len(e.ends) < turn {
		return nil, false
	}
	c.order.MoveToFront(el)
	return append([]llm.Message(nil), e.msgs[:e.ends[turn-1]]...), true
}

// load stores a conversation rebuilt from history.
func (c *convCache) load(runID string, msgs []llm.Message, ends []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set(&convEntry{runID: runID, msgs: append([]llm.Message(nil), msgs...), ends: append([]int(nil), ends...)})
}

// put records turn's new messages and answer after the conversation
// before the turn.
func (c *convCache) put(runID string, turn int, added []llm.Message, answer llm.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.runs[runID]; ok {
		e := el.Value.(*convEntry)
		if len(e.ends) >= turn-1 {
			// Keep the turns before this one (a retried call may have
			// recorded this turn already) and append.
			base := 0
			if turn > 1 {
				base = e.ends[turn-2]
			}
			e.ends = e.ends[:turn-1]
			e.msgs = append(e.msgs[:base], added...)
			e.msgs = append(e.msgs, answer)
			e.ends = append(e.ends, len(e.msgs))
			c.order.MoveToFront(el)
			return
		}
	}
	if turn != 1 {
		// Without the earlier turns the entry could not serve the next
		// call; that call reads the history instead.
		return
	}
	msgs := append(append([]llm.Message(nil), added...), answer)
	c.set(&convEntry{runID: runID, msgs: msgs, ends: []int{len(msgs)}})
}

func (c *convCache) set(e *convEntry) {
	if el, ok := c.runs[e.runID]; ok {
		el.Value = e
		c.order.MoveToFront(el)
		return
	}
	c.runs[e.runID] = c.order.PushFront(e)
	for c.order.Len() > c.size {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.runs, old.Value.(*convEntry).runID)
	}
}

// heartbeatWhile heartbeats the model-call activity until stop is called,
// at a third of its heartbeat timeout, so that a slow model is not taken
// for a dead worker, and a dead worker is.
func heartbeatWhile(ctx context.Context) (stop func()) {
	info, ok := durable.GetActivityInfo(ctx)
	if !ok || info.HeartbeatTimeout <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(info.HeartbeatTimeout / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				_ = durable.Heartbeat(ctx, nil)
			}
		}
	}()
	return func() { close(done); <-finished }
}
