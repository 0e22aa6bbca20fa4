package agenttest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/keelhq/keel/agent"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/llm"
	"github.com/keelhq/keel/tools"
)

// ErrNoRecording: a replayed run asked for a model answer or a tool result
// that the recording does not hold (the code makes more calls than the
// recorded run did).
var ErrNoRecording = errors.New("agenttest: no recorded result")

// Recording is an agent run's recorded history and those of its sub-agent
// runs, by workflow ID.
type Recording struct {
	// WorkflowID is the recorded run's workflow ID.
	WorkflowID string `json:"workflow_id"`
	// Runs holds the histories of the run and its sub-agent runs.
	Runs map[string]*durable.History `json:"runs"`
}

// Record reads the history of the latest run of workflowID, and those of
// the child workflows (sub-agents) it started, recursively.
func Record(ctx context.Context, e *durable.Engine, workflowID string) (*Recording, error) {
	rec := &Recording{WorkflowID: workflowID, Runs: map[string]*durable.History{}}
	if err := rec.add(ctx, e, workflowID); err != nil {
		return nil, err
	}
	return rec, nil
}

func (r *Recording) add(ctx context.Context, e *durable.Engine, workflowID string) error {
	info, err := e.Describe(ctx, workflowID)
	if err != nil {
		return fmt.Errorf("agenttest: record %s: %w", workflowID, err)
	}
	h, err := e.GetHistory(ctx, info.RunID)
	if err != nil {
		return fmt.Errorf("agenttest: record %s: %w", workflowID, err)
	}
	r.Runs[workflowID] = h
	for _, ev := range h.Events {
		if ev.Type != durable.EventChildWorkflowInitiated {
			continue
		}
		d, err := ev.Details()
		if err != nil {
			return fmt.Errorf("agenttest: record %s: event %d: %w", workflowID, ev.ID, err)
		}
		if _, done := r.Runs[d.WorkflowID]; !done {
			if err := r.add(ctx, e, d.WorkflowID); err != nil {
				return err
			}
		}
	}
	return nil
}

// Save writes the recording as indented JSON.
func (r *Recording) Save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("agenttest: save: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("agenttest: save: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("agenttest: save: %w", err)
	}
	return nil
}

// Load reads a recording written by Save.
func Load(path string) (*Recording, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("agenttest: load: %w", err)
	}
	r := &Recording{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("agenttest: load %s: %w", path, err)
	}
	if r.Runs[r.WorkflowID] == nil {
		return nil, fmt.Errorf("agenttest: load %s: no history for run %q", path, r.WorkflowID)
	}
	// Save indents the events' data; the engine compares recorded inputs
	// byte for byte, in the compact form it wrote them.
	for id, h := range r.Runs {
		for i := range h.Events {
			var buf bytes.Buffer
			if err := json.Compact(&buf, h.Events[i].Data); err != nil {
				return nil, fmt.Errorf("agenttest: load %s: run %s, event %d: %w", path, id, h.Events[i].ID, err)
			}
			h.Events[i].Data = buf.Bytes()
		}
	}
	return r, nil
}

// Options configure Replay. The zero value is valid.
type Options struct {
	// Prices price the replayed model calls. Optional; default
	// llm.DefaultPrices(), as agent.Runtime's.
	Prices llm.Prices
	// Timeout bounds the replay. Optional; default one minute.
	Timeout time.Duration
	// Logger receives the replay engine's log. Optional; default none.
	Logger *slog.Logger
}

// Report is the outcome of a replay.
type Report struct {
	// Result is what the current code produced; Recorded is the recorded
	// run's Result (zero for a run that failed or did not finish).
	Result   agent.Result
	Recorded agent.Result
	// Err is the replayed run's error, if it failed; RecordedErr the
	// recorded run's.
	Err         error
	RecordedErr error
	// Diffs describes each difference between the replay and the
	// recording, in the order found.
	Diffs []string
	// ReplayErr is the error of replaying the recorded histories against
	// the current workflow code with durable.Replayer: nil when the code
	// would still resume the recorded runs.
	ReplayErr error
}

// OK reports whether the replay matched the recording.
func (r *Report) OK() bool { return len(r.Diffs) == 0 && r.ReplayErr == nil }

// RequireReplay replays rec (see Replay) and fails the test with every
// difference found.
func RequireReplay(t testing.TB, rec *Recording, agents []*agent.Agent, opts *Options) *Report {
	t.Helper()
	rep, err := Replay(context.Background(), rec, agents, opts)
	if err != nil {
		t.Fatalf("agenttest: replay: %v", err)
	}
	for _, d := range rep.Diffs {
		t.Errorf("replay differs from the recording: %s", d)
	}
	if rep.ReplayErr != nil {
		t.Errorf("recorded history no longer replays: %v", rep.ReplayErr)
	}
	return rep
}

// Replay runs the recorded run again against agents (the current code),
// offline, and reports how it differs from the recording. agents must
// include the recorded run's agent; its sub-agents and handoff targets are
// found through it. The error is for a replay that could not be set up.
func Replay(ctx context.Context, rec *Recording, agents []*agent.Agent, opts *Options) (*Report, error) {
	if opts == nil {
		opts = &Options{}
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	top := rec.Runs[rec.WorkflowID]
	if top == nil || len(top.Events) == 0 {
		return nil, fmt.Errorf("agenttest: replay: no history for run %q", rec.WorkflowID)
	}
	start, err := top.Events[0].Details()
	if err != nil {
		return nil, fmt.Errorf("agenttest: replay: %w", err)
	}
	var a *agent.Agent
	for _, x := range agents {
		if x != nil && x.Name == start.Name {
			a = x
		}
	}
	if a == nil {
		return nil, fmt.Errorf("agenttest: replay: the recorded run is of agent %q, which is not among the agents given", start.Name)
	}
	var in agent.Input
	if err := json.Unmarshal(start.Input, &in); err != nil {
		return nil, fmt.Errorf("agenttest: replay: recorded input: %w", err)
	}

	rp, err := newReplayer(rec)
	if err != nil {
		return nil, err
	}
	rep := &Report{}
	rep.Recorded, rep.RecordedErr = recordedResult(top)

	dir, err := os.MkdirTemp("", "keel-replay-")
	if err != nil {
		return nil, fmt.Errorf("agenttest: replay: %w", err)
	}
	defer os.RemoveAll(dir)
	st, err := sqlitestore.Open(filepath.Join(dir, "replay.db"), nil)
	if err != nil {
		return nil, fmt.Errorf("agenttest: replay: %w", err)
	}
	defer st.Close()
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e, err := durable.New(st, &durable.Config{PollInterval: 20 * time.Millisecond, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("agenttest: replay: %w", err)
	}
	models := map[string]llm.Model{}
	for _, x := range allAgents(agents) {
		models[x.Model] = rp
	}
	rt, err := agent.NewRuntime(e, &agent.Config{
		Models: models, Prices: opts.Prices, Logger: logger,
		Test: agent.TestConfig{ToolActivity: rp.toolActivity},
	})
	if err != nil {
		return nil, fmt.Errorf("agenttest: replay: %w", err)
	}
	if err := rt.Register(agents...); err != nil {
		return nil, fmt.Errorf("agenttest: replay: %w", err)
	}
	queues := rt.TaskQueues()
	if !slices.Contains(queues, "default") {
		queues = append(queues, "default")
	}
	for _, q := range queues {
		e.NewWorker(&durable.WorkerOptions{TaskQueue: q})
	}
	if err := e.Start(ctx); err != nil {
		return nil, fmt.Errorf("agenttest: replay: %w", err)
	}
	defer func() {
		stopCtx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = e.Stop(stopCtx)
	}()

	rep.Result, rep.Err = rt.Run(ctx, a, in, &durable.StartOptions{ID: rec.WorkflowID, TaskQueue: top.Run.TaskQueue})
	rep.Diffs = rp.diffs()
	rep.Diffs = append(rep.Diffs, compareResults(rep)...)
	rep.ReplayErr = replayHistories(rt, rec, allAgents(agents))
	return rep, nil
}

// allAgents returns agents and every agent they reach, once each.
func allAgents(agents []*agent.Agent) []*agent.Agent {
	var out []*agent.Agent
	seen := map[*agent.Agent]bool{}
	var walk func(a *agent.Agent)
	walk = func(a *agent.Agent) {
		if a == nil || seen[a] {
			return
		}
		seen[a] = true
		out = append(out, a)
		for _, s := range a.SubAgents {
			walk(s)
		}
		for _, h := range a.Handoffs {
			walk(h)
		}
	}
	for _, a := range agents {
		walk(a)
	}
	return out
}

// recordedResult reads a history's outcome.
func recordedResult(h *durable.History) (agent.Result, error) {
	last := h.Events[len(h.Events)-1]
	d, err := last.Details()
	if err != nil {
		return agent.Result{}, err
	}
	switch last.Type {
	case durable.EventWorkflowCompleted:
		var r agent.Result
		if err := json.Unmarshal(d.Result, &r); err != nil {
			return agent.Result{}, fmt.Errorf("agenttest: recorded result: %w", err)
		}
		return r, nil
	case durable.EventWorkflowFailed:
		return agent.Result{}, d.Error
	}
	return agent.Result{}, fmt.Errorf("agenttest: the recorded run did not finish (last event %s)", last.Type)
}

// compareResults lists the differences between the replayed and the
// recorded outcome.
func compareResults(rep *Report) []string {
	var diffs []string
	if (rep.Err == nil) != (rep.RecordedErr == nil) {
		diffs = append(diffs, fmt.Sprintf("run error: recorded %v, now %v", rep.RecordedErr, rep.Err))
		return diffs
	}
	if rep.Err != nil {
		if rep.Err.Error() != rep.RecordedErr.Error() {
			diffs = append(diffs, fmt.Sprintf("run error: recorded %q, now %q", rep.RecordedErr, rep.Err))
		}
		return diffs
	}
	field := func(name string, recorded, now any) {
		if !reflect.DeepEqual(recorded, now) {
			rb, _ := json.Marshal(recorded)
			nb, _ := json.Marshal(now)
			diffs = append(diffs, fmt.Sprintf("result %s: recorded %s, now %s", name, rb, nb))
		}
	}
	r, n := rep.Recorded, rep.Result
	field("status", r.Status, n.Status)
	field("output", r.Output, n.Output)
	field("error", r.Error, n.Error)
	field("agent", r.Agent, n.Agent)
	field("handoffs", r.Handoffs, n.Handoffs)
	field("turns", r.Turns, n.Turns)
	field("usage", r.Usage, n.Usage)
	field("cost", r.Cost, n.Cost)
	field("tools", r.Tools, n.Tools)
	return diffs
}

// replayHistories checks that the current workflow code replays each
// recorded history.
func replayHistories(rt *agent.Runtime, rec *Recording, agents []*agent.Agent) error {
	var defs []durable.Definition
	for _, a := range agents {
		wf, err := rt.Workflow(a)
		if err != nil {
			return err
		}
		defs = append(defs, wf)
	}
	r, err := durable.NewReplayer(defs...)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(rec.Runs))
	for id := range rec.Runs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var errs []error
	for _, id := range ids {
		if err := r.Replay(rec.Runs[id]); err != nil {
			errs = append(errs, fmt.Errorf("run %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// replayer answers model and tool calls from a recording, and notes where
// the replayed run departs from it.
type replayer struct {
	rec *Recording

	mu    sync.Mutex
	calls map[string][]agent.RecordedCall // by workflow ID
	next  map[string]int                  // next model call by workflow ID
	// matched maps an activity of the replay (workflow ID and sequence
	// number) to the recorded call it stands for, so retries find it.
	matched map[string]int
	used    map[string]bool // recorded tool calls matched, by workflow ID, activity and index
	found   []string
}

func newReplayer(rec *Recording) (*replayer, error) {
	rp := &replayer{rec: rec, calls: map[string][]agent.RecordedCall{}, next: map[string]int{},
		matched: map[string]int{}, used: map[string]bool{}}
	for id, h := range rec.Runs {
		calls, err := agent.RecordedCalls(h)
		if err != nil {
			return nil, fmt.Errorf("agenttest: run %s: %w", id, err)
		}
		rp.calls[id] = calls
	}
	return rp, nil
}

func (rp *replayer) diff(format string, args ...any) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.found = append(rp.found, fmt.Sprintf(format, args...))
}

func (rp *replayer) diffs() []string {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return append([]string(nil), rp.found...)
}

// Name implements llm.Model.
func (rp *replayer) Name() string { return "replay" }

// Chat answers a model call with the answer recorded for its run and turn,
// after comparing the conversation it was sent with the recorded one.
func (rp *replayer) Chat(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	info, _ := durable.GetActivityInfo(ctx)
	wf := info.WorkflowID
	rp.mu.Lock()
	calls, known := rp.calls[wf]
	act := fmt.Sprintf("%s\x00%d", wf, info.Seq)
	n, retry := rp.matched[act]
	if !retry {
		n = rp.next[wf]
		rp.next[wf] = n + 1
		rp.matched[act] = n
	}
	rp.mu.Unlock()
	if !known || n >= len(calls) {
		rp.diff("run %s: model call %d was not recorded", wf, n+1)
		return nil, durable.NonRetryable(fmt.Errorf("%w: run %s, model call %d", ErrNoRecording, wf, n+1))
	}
	rc := calls[n]
	var want []llm.Message
	for _, c := range calls[:n] {
		want = append(want, c.Sent...)
		if c.Answer != nil {
			want = append(want, c.Answer.Message)
		}
	}
	want = append(want, rc.Sent...)
	got := req.Messages
	if len(got) > 0 && got[0].Role == llm.RoleSystem {
		got = got[1:]
	}
	if i, ok := firstDifference(want, got); !ok {
		rp.diff("run %s: model call %d was sent other messages than recorded, from message %d: recorded %s, now %s",
			wf, n+1, i+1, messageAt(want, i), messageAt(got, i))
	}
	if rc.Answer == nil {
		if rc.Err != nil {
			return nil, durable.NonRetryable(errors.New(rc.Err.Error()))
		}
		return nil, durable.NonRetryable(fmt.Errorf("%w: run %s, model call %d has no recorded answer", ErrNoRecording, wf, n+1))
	}
	answer := *rc.Answer
	return &answer, nil
}

func firstDifference(a, b []llm.Message) (int, bool) {
	for i := range max(len(a), len(b)) {
		if i >= len(a) || i >= len(b) {
			return i, false
		}
		ab, _ := json.Marshal(a[i])
		bb, _ := json.Marshal(b[i])
		if !bytes.Equal(ab, bb) {
			return i, false
		}
	}
	return 0, true
}

func messageAt(msgs []llm.Message, i int) string {
	if i >= len(msgs) {
		return "(none)"
	}
	b, _ := json.Marshal(msgs[i])
	return string(b)
}

// recordedActivity is an activity call found in a history.
type recordedActivity struct {
	input   json.RawMessage
	result  json.RawMessage
	err     error
	attempt int
}

// toolActivity stands in for a tool's activity: it returns the recorded
// result of the same call of the same run.
func (rp *replayer) toolActivity(t *tools.Tool) durable.Definition {
	name := t.ActivityName()
	return durable.NewActivity(name, func(ctx context.Context, in json.RawMessage) (tools.Result, error) {
		info, _ := durable.GetActivityInfo(ctx)
		wf := info.WorkflowID
		recorded, err := rp.activities(wf, name)
		if err != nil {
			return tools.Result{}, durable.NonRetryable(err)
		}
		k, first := rp.matchTool(wf, name, info.Seq, in, recorded)
		if k < 0 {
			rp.diff("run %s: a call of %s was not recorded (input %s)", wf, name, in)
			return tools.Result{}, durable.NonRetryable(fmt.Errorf("%w: run %s, call of %s with input %s", ErrNoRecording, wf, name, in))
		}
		ra := recorded[k]
		if first && !jsonEqual(ra.input, in) {
			rp.diff("run %s: call %d of %s had other arguments than recorded: recorded %s, now %s", wf, k+1, name, ra.input, in)
		}
		if ra.err != nil {
			// Fail as often as the recorded call did, so that the
			// run sees the same error after the same attempts.
			if info.Attempt < ra.attempt {
				return tools.Result{}, errors.New(ra.err.Error())
			}
			return tools.Result{}, durable.NonRetryable(errors.New(ra.err.Error()))
		}
		var r tools.Result
		if err := json.Unmarshal(ra.result, &r); err != nil {
			return tools.Result{}, durable.NonRetryable(fmt.Errorf("agenttest: recorded result of %s: %w", name, err))
		}
		return r, nil
	}, nil)
}

// matchTool finds the recorded call that a tool activity of the replay
// stands for: the one it matched on an earlier attempt, else the first
// unmatched one with the same model call ID (calls run in parallel start
// in no fixed order), else the first unmatched one. first is false for a
// retry; k is -1 when no recorded call is left.
func (rp *replayer) matchTool(wf, name string, seq int64, in json.RawMessage, recorded []recordedActivity) (k int, first bool) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	act := fmt.Sprintf("%s\x00%d", wf, seq)
	if k, ok := rp.matched[act]; ok {
		return k, false
	}
	used := func(i int) bool { return rp.used[fmt.Sprintf("%s\x00%s\x00%d", wf, name, i)] }
	id := callID(in)
	k = -1
	for i, ra := range recorded {
		if !used(i) && id != "" && callID(ra.input) == id {
			k = i
			break
		}
	}
	if k < 0 {
		for i := range recorded {
			if !used(i) {
				k = i
				break
			}
		}
	}
	if k < 0 {
		return -1, true
	}
	rp.used[fmt.Sprintf("%s\x00%s\x00%d", wf, name, k)] = true
	rp.matched[act] = k
	return k, true
}

// callID returns the model's call ID in a tool activity's input.
func callID(in json.RawMessage) string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(in, &v)
	return v.ID
}

// activities returns the recorded calls of an activity in a run, in order.
func (rp *replayer) activities(workflowID, name string) ([]recordedActivity, error) {
	h := rp.rec.Runs[workflowID]
	if h == nil {
		return nil, fmt.Errorf("%w: run %s was not recorded", ErrNoRecording, workflowID)
	}
	bySeq := map[int64]int{}
	var out []recordedActivity
	for _, ev := range h.Events {
		switch ev.Type {
		case durable.EventActivityScheduled, durable.EventActivityCompleted, durable.EventActivityFailed:
		default:
			continue
		}
		d, err := ev.Details()
		if err != nil {
			return nil, err
		}
		if ev.Type == durable.EventActivityScheduled {
			if d.Name == name {
				bySeq[d.Seq] = len(out)
				out = append(out, recordedActivity{input: d.Input})
			}
			continue
		}
		i, ok := bySeq[d.Seq]
		if !ok {
			continue
		}
		out[i].result, out[i].err, out[i].attempt = d.Result, d.Error, d.Attempt
	}
	return out, nil
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}
