package tools_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/tools"
)

type lookupInput struct {
	CustomerID string `json:"customer_id" jsonschema:"description=The CRM customer ID,minLength=3"`
	Limit      int    `json:"limit,omitempty" jsonschema:"minimum=1,maximum=10"`
	Address    *struct {
		City string `json:"city"`
	} `json:"address,omitempty"`
}

type customer struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// recorder keeps what handlers saw, across goroutines.
type recorder struct {
	mu    sync.Mutex
	calls []tools.Info
	args  []string
}

func (r *recorder) add(ctx context.Context, args string) tools.Info {
	info, _ := tools.CallInfo(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, info)
	r.args = append(r.args, args)
	return info
}

func (r *recorder) snapshot() ([]tools.Info, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]tools.Info(nil), r.calls...), append([]string(nil), r.args...)
}

func newLookup(t *testing.T, rec *recorder, opts *tools.Options) *tools.Tool {
	t.Helper()
	tool, err := tools.New("crm_lookup", "Look a customer up in the CRM",
		func(ctx context.Context, in lookupInput) (customer, error) {
			b, _ := json.Marshal(in)
			rec.add(ctx, string(b))
			return customer{ID: in.CustomerID, Name: "Ada"}, nil
		}, opts)
	require.NoError(t, err)
	return tool
}

func TestSchemaGeneratedFromInputType(t *testing.T) {
	t.Parallel()
	tool := newLookup(t, &recorder{}, nil)

	var schema map[string]any
	require.NoError(t, json.Unmarshal(tool.Schema(), &schema))
	require.Equal(t, "object", schema["type"])
	require.Equal(t, false, schema["additionalProperties"], "unknown fields are refused")
	require.Equal(t, []any{"customer_id"}, schema["required"], "fields without omitempty are required")
	props := schema["properties"].(map[string]any)
	id := props["customer_id"].(map[string]any)
	require.Equal(t, "string", id["type"])
	require.Equal(t, "The CRM customer ID", id["description"])
	require.EqualValues(t, 3, id["minLength"])
	require.EqualValues(t, 10, props["limit"].(map[string]any)["maximum"])
	require.NotContains(t, schema, "$schema", "the meta-schema URL is not sent to models")

	spec := tool.Spec()
	require.Equal(t, "crm_lookup", spec.Name)
	require.Equal(t, "Look a customer up in the CRM", spec.Description)
	require.JSONEq(t, string(tool.Schema()), string(spec.Parameters))
	require.Equal(t, "tool.crm_lookup", tool.ActivityName())

	empty, err := tools.New("ping", "No arguments", func(ctx context.Context, in struct{}) (string, error) { return "pong", nil }, nil)
	require.NoError(t, err)
	require.JSONEq(t, `{"type":"object","properties":{},"additionalProperties":false}`, string(empty.Schema()))
	require.NoError(t, empty.Validate(""), "no arguments read as {}")
	require.NoError(t, empty.Validate("null"))
}

func TestNewRejectsBadDefinitions(t *testing.T) {
	t.Parallel()
	fn := func(ctx context.Context, in lookupInput) (string, error) { return "", nil }

	_, err := tools.New("crm lookup!", "", fn, nil)
	require.ErrorIs(t, err, tools.ErrInvalidTool)

	_, err = tools.New("echo", "", func(ctx context.Context, in string) (string, error) { return in, nil }, nil)
	require.ErrorIs(t, err, tools.ErrInvalidTool, "a string input is not a JSON object")
	require.ErrorContains(t, err, "must be a JSON object")

	_, err = tools.New[lookupInput, string]("nil_handler", "", nil, nil)
	require.ErrorIs(t, err, tools.ErrInvalidTool)

	a, b := tools.MustNew("a", "", fn, nil), tools.MustNew("a", "", fn, nil)
	_, err = tools.NewSet(a, b)
	require.ErrorIs(t, err, tools.ErrDuplicateTool)
}

func TestValidateExplainsWhatIsWrong(t *testing.T) {
	t.Parallel()
	tool := newLookup(t, &recorder{}, nil)
	for _, tc := range []struct {
		name, args string
		want       []string
	}{
		{"malformed JSON", `{"customer_id": "c-42"`, []string{"not valid JSON"}},
		{"missing required", `{}`, []string{"missing property 'customer_id'"}},
		{"wrong type", `{"customer_id": 42}`, []string{"/customer_id", "want string"}},
		{"constraint", `{"customer_id": "c-42", "limit": 20}`, []string{"/limit", "maximum"}},
		{"unknown field", `{"customer_id": "c-42", "email": "a@b.c"}`, []string{"'email' not allowed"}},
		{"nested unknown field", `{"customer_id": "c-42", "address": {"city": "Paris", "zip": 1}}`, []string{"/address", "'zip' not allowed"}},
		{"not an object", `["c-42"]`, []string{"want object"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tool.Validate(tc.args)
			require.ErrorIs(t, err, tools.ErrInvalidArguments)
			var ae *tools.ArgumentError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, "crm_lookup", ae.Tool)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
	require.NoError(t, tool.Validate(`{"customer_id": "c-42", "limit": 5}`))
}

func TestInvokeOutsideEngine(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	tool := newLookup(t, rec, nil)
	r := tool.Invoke(context.Background(), `{"customer_id":"c-42"}`)
	require.False(t, r.IsError, r.Error)
	require.JSONEq(t, `{"id":"c-42","name":"Ada"}`, string(r.Content))
	require.Equal(t, `{"id":"c-42","name":"Ada"}`, r.Text())
	infos, _ := rec.snapshot()
	require.Empty(t, infos[0].IdempotencyKey, "no call info outside the engine")

	r = tool.Invoke(context.Background(), `{"customer_id":1}`)
	require.True(t, r.IsError)
	require.Equal(t, tools.ErrorInvalidArguments, r.ErrorKind)
	require.Contains(t, r.Text(), "error: invalid arguments for tool crm_lookup")
}

// callsWorkflow runs a batch of calls in parallel through a Set and returns
// their results in the order of the calls.
func callsWorkflow(name string, set *tools.Set, approver tools.Approver) *durable.Workflow[[]tools.Call, []tools.Result] {
	return durable.NewWorkflow(name, func(ctx durable.Context, calls []tools.Call) ([]tools.Result, error) {
		futures := make([]*tools.Future, len(calls))
		for i, c := range calls {
			futures[i] = set.Start(ctx, c, &tools.CallOptions{Approver: approver})
		}
		out := make([]tools.Result, len(calls))
		for i, f := range futures {
			r, err := f.Get(ctx)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	})
}

func TestCallsOnEngine(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		rec := &recorder{}
		lookup := newLookup(t, rec, &tools.Options{Activity: fastRetry()})

		var flakyMu sync.Mutex
		var flakyAttempts []tools.Info
		flaky := tools.MustNew("flaky", "Fails on its first attempt",
			func(ctx context.Context, in struct{}) (string, error) {
				info, _ := tools.CallInfo(ctx)
				flakyMu.Lock()
				flakyAttempts = append(flakyAttempts, info)
				flakyMu.Unlock()
				if info.Attempt == 1 {
					return "", errors.New("connection reset")
				}
				return "ok on attempt " + fmt.Sprint(info.Attempt), nil
			}, &tools.Options{Activity: fastRetry()})

		broken := tools.MustNew("broken", "Always fails",
			func(ctx context.Context, in struct{}) (string, error) {
				return "", errors.New("upstream is down")
			}, &tools.Options{Activity: fastRetry()})

		panicky := tools.MustNew("panicky", "Panics",
			func(ctx context.Context, in struct{}) (string, error) {
				panic("nil map")
			}, &tools.Options{Activity: fastRetry()})

		set, err := tools.NewSet(lookup, flaky, broken, panicky)
		require.NoError(t, err)
		wf := callsWorkflow("calls", set, nil)
		e := startEngine(t, db, append(set.Definitions(), wf)...)
		ctx := testContext(t)

		calls := []tools.Call{
			{ID: "call_1", Name: "crm_lookup", Arguments: `{"customer_id":"c-42"}`},
			{ID: "call_2", Name: "crm_lookup", Arguments: `{"customer_id":"c-42","limit":99,"vip":true}`},
			{ID: "call_3", Name: "crm_lookup", Arguments: `{"customer_id":`},
			{ID: "call_4", Name: "flaky"},
			{ID: "call_5", Name: "broken", Arguments: `{}`},
			{ID: "call_6", Name: "no_such_tool", Arguments: `{}`},
			{ID: "call_7", Name: "panicky"},
		}
		h, err := wf.Start(ctx, e, calls, &durable.StartOptions{ID: "calls-1"})
		require.NoError(t, err)
		results, err := h.Result(ctx)
		require.NoError(t, err, "no tool failure fails the run")
		require.Len(t, results, len(calls))
		for i, r := range results {
			require.Equal(t, calls[i].ID, r.CallID, "results come back in the order of the calls")
			require.Equal(t, calls[i].Name, r.Tool)
		}

		// A valid call.
		require.False(t, results[0].IsError)
		require.JSONEq(t, `{"id":"c-42","name":"Ada"}`, string(results[0].Content))

		// Invalid arguments are fed back, naming each problem; the handler
		// never saw them.
		require.True(t, results[1].IsError)
		require.Equal(t, tools.ErrorInvalidArguments, results[1].ErrorKind)
		require.Contains(t, results[1].Error, "/limit")
		require.Contains(t, results[1].Error, "'vip' not allowed")
		require.True(t, results[2].IsError)
		require.Equal(t, tools.ErrorInvalidArguments, results[2].ErrorKind)
		require.Contains(t, results[2].Error, "not valid JSON")
		_, args := rec.snapshot()
		require.Equal(t, []string{`{"customer_id":"c-42"}`}, args, "the handler ran for the valid call only")

		// A handler that fails once is retried with the same key.
		require.False(t, results[3].IsError, results[3].Error)
		require.Equal(t, "ok on attempt 2", results[3].Text())
		flakyMu.Lock()
		require.Len(t, flakyAttempts, 2)
		require.Equal(t, 1, flakyAttempts[0].Attempt)
		require.Equal(t, 2, flakyAttempts[1].Attempt)
		require.NotEmpty(t, flakyAttempts[0].IdempotencyKey)
		require.Equal(t, flakyAttempts[0].IdempotencyKey, flakyAttempts[1].IdempotencyKey, "the key is stable across attempts")
		require.Equal(t, "call_4", flakyAttempts[0].CallID)
		require.Equal(t, h.RunID(), flakyAttempts[0].RunID)
		flakyMu.Unlock()
		infos, _ := rec.snapshot()
		require.NotEqual(t, infos[0].IdempotencyKey, flakyAttempts[0].IdempotencyKey, "each call has its own key")

		// A handler that keeps failing is reported after its retries.
		require.True(t, results[4].IsError)
		require.Equal(t, tools.ErrorFailed, results[4].ErrorKind)
		require.Contains(t, results[4].Error, "tool broken failed after 3 attempt(s)")
		require.Contains(t, results[4].Error, "upstream is down")

		// An unknown tool is named, with the tools there are.
		require.True(t, results[5].IsError)
		require.Equal(t, tools.ErrorUnknownTool, results[5].ErrorKind)
		require.Contains(t, results[5].Error, "no_such_tool")
		require.Contains(t, results[5].Error, "crm_lookup, flaky, broken, panicky")

		// A panicking handler is a failed call, not a dead worker.
		require.True(t, results[6].IsError)
		require.Contains(t, results[6].Error, "panic: nil map")

		// Every attempt is on the audit trail.
		attempts, err := e.ActivityAttempts(ctx, h.RunID())
		require.NoError(t, err)
		byType := map[string]int{}
		for _, a := range attempts {
			byType[a.ActivityType]++
		}
		require.Equal(t, 3, byType["tool.broken"])
		require.Equal(t, 2, byType["tool.flaky"])
		require.Equal(t, 3, byType["tool.panicky"])
		require.Equal(t, 3, byType["tool.crm_lookup"], "three calls, one attempt each: invalid arguments are not retried")
	})
}

// signalApprover asks for approval by waiting durably for a signal named
// "approval:" + the call ID, carrying the reviewer's decision; it gives up
// after timeout.
type signalApprover struct {
	timeout time.Duration
	mu      sync.Mutex
	asked   []tools.ApprovalRequest
}

var errNoDecision = errors.New("no decision before the timeout")

func (a *signalApprover) Approve(ctx durable.Context, req tools.ApprovalRequest) (tools.ApprovalDecision, error) {
	if !durable.IsReplaying(ctx) {
		a.mu.Lock()
		a.asked = append(a.asked, req)
		a.mu.Unlock()
	}
	d, ok, err := durable.NewSignal[tools.ApprovalDecision]("approval:"+req.CallID).ReceiveWithTimeout(ctx, a.timeout)
	if err != nil {
		return tools.ApprovalDecision{}, err
	}
	if !ok {
		return tools.ApprovalDecision{}, errNoDecision
	}
	return d, nil
}

func TestApprovalGate(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		var mu sync.Mutex
		var refunds []string
		refund := tools.MustNew("refund", "Refund a charge",
			func(ctx context.Context, in struct {
				ChargeID string `json:"charge_id"`
				Cents    int    `json:"cents"`
			}) (string, error) {
				mu.Lock()
				defer mu.Unlock()
				refunds = append(refunds, fmt.Sprintf("%s:%d", in.ChargeID, in.Cents))
				return fmt.Sprintf("refunded %d cents", in.Cents), nil
			}, &tools.Options{RequiresApproval: true, ApprovalReason: "money leaves the company", Activity: fastRetry()})
		rec := &recorder{}
		lookup := newLookup(t, rec, nil)
		set, err := tools.NewSet(refund, lookup)
		require.NoError(t, err)
		approver := &signalApprover{timeout: time.Hour}
		wf := callsWorkflow("approvals", set, approver)
		// Without a run cache every workflow task replays the run from its
		// history, approvals and all.
		e := startEngineWith(t, db, &durable.Config{CacheSize: -1}, append(set.Definitions(), wf)...)
		ctx := testContext(t)

		calls := []tools.Call{
			{ID: "r1", Name: "refund", Arguments: `{"charge_id":"ch_1","cents":5000}`},
			{ID: "r2", Name: "refund", Arguments: `{"charge_id":"ch_2","cents":9900}`},
			{ID: "r3", Name: "refund", Arguments: `{"charge_id":"ch_3","cents":100}`},
			{ID: "r4", Name: "refund", Arguments: `{"charge_id":"ch_4"`},
			{ID: "l1", Name: "crm_lookup", Arguments: `{"customer_id":"c-42"}`},
		}
		h, err := wf.Start(ctx, e, calls, &durable.StartOptions{ID: "approvals-1"})
		require.NoError(t, err)

		// The call that needs no approval runs while the others wait.
		require.Eventually(t, func() bool { _, a := rec.snapshot(); return len(a) == 1 }, 20*time.Second, 5*time.Millisecond)
		mu.Lock()
		require.Empty(t, refunds, "nothing is refunded before a decision")
		mu.Unlock()

		send := func(callID string, d tools.ApprovalDecision) {
			require.NoError(t, durable.NewSignal[tools.ApprovalDecision]("approval:"+callID).Send(ctx, e, "approvals-1", d))
		}
		send("r1", tools.ApprovalDecision{Approved: true, Reviewer: "maria"})
		send("r2", tools.ApprovalDecision{Approved: false, Reviewer: "maria", Comment: "over the refund limit; offer a credit"})
		send("r3", tools.ApprovalDecision{Approved: true, Reviewer: "li", Comment: "full amount", Arguments: json.RawMessage(`{"charge_id":"ch_3","cents":150}`)})

		results, err := h.Result(ctx)
		require.NoError(t, err)

		require.False(t, results[0].IsError, results[0].Error)
		require.Equal(t, "refunded 5000 cents", results[0].Text())
		require.Equal(t, "maria", results[0].Review.Reviewer)

		require.True(t, results[1].IsError)
		require.Equal(t, tools.ErrorRejected, results[1].ErrorKind)
		require.Contains(t, results[1].Error, "refused by reviewer maria")
		require.Contains(t, results[1].Error, "over the refund limit; offer a credit")

		require.False(t, results[2].IsError, results[2].Error)
		require.Equal(t, "refunded 150 cents", string(mustString(t, results[2].Content)), "the edited arguments were used")
		require.Contains(t, results[2].Text(), `a reviewer changed the arguments of this call to {"charge_id":"ch_3","cents":150}`)

		require.True(t, results[3].IsError)
		require.Equal(t, tools.ErrorInvalidArguments, results[3].ErrorKind, "invalid calls are not put to a reviewer")

		mu.Lock()
		require.ElementsMatch(t, []string{"ch_1:5000", "ch_3:150"}, refunds)
		mu.Unlock()

		approver.mu.Lock()
		require.Len(t, approver.asked, 3, "each call was put to a reviewer once, however often the run replayed")
		for _, req := range approver.asked {
			require.Equal(t, "refund", req.Action)
			require.Equal(t, "money leaves the company", req.Reason)
		}
		require.JSONEq(t, `{"charge_id":"ch_2","cents":9900}`, string(findRequest(approver.asked, "r2").Arguments), "the reviewer sees the exact arguments")
		approver.mu.Unlock()
	})
}

func TestApprovalWithoutApproverOrDecision(t *testing.T) {
	t.Parallel()
	ran := 0
	var mu sync.Mutex
	gated := tools.MustNew("wire", "Wire money", func(ctx context.Context, in struct{}) (string, error) {
		mu.Lock()
		ran++
		mu.Unlock()
		return "sent", nil
	}, &tools.Options{RequiresApproval: true})
	set, err := tools.NewSet(gated)
	require.NoError(t, err)
	noApprover := callsWorkflow("no-approver", set, nil)
	timesOut := callsWorkflow("times-out", set, &signalApprover{timeout: 50 * time.Millisecond})
	e := startEngine(t, sqliteDB(t), append(set.Definitions(), noApprover, timesOut)...)
	ctx := testContext(t)

	calls := []tools.Call{{ID: "w1", Name: "wire"}}
	results, err := noApprover.Run(ctx, e, calls, nil)
	require.NoError(t, err)
	require.Equal(t, tools.ErrorApproval, results[0].ErrorKind)
	require.Contains(t, results[0].Error, "no approver is configured")

	results, err = timesOut.Run(ctx, e, calls, nil)
	require.NoError(t, err)
	require.Equal(t, tools.ErrorApproval, results[0].ErrorKind)
	require.Contains(t, results[0].Error, errNoDecision.Error())
	mu.Lock()
	require.Zero(t, ran, "the gated tool never ran")
	mu.Unlock()
}

func findRequest(reqs []tools.ApprovalRequest, callID string) tools.ApprovalRequest {
	for _, r := range reqs {
		if r.CallID == callID {
			return r
		}
	}
	return tools.ApprovalRequest{}
}

func mustString(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	require.NoError(t, json.Unmarshal(raw, &s))
	return s
}
