package durable_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
)

// listIDs lists the runs that opts matches, every page of at most limit,
// and returns their run IDs in order.
func listIDs(t *testing.T, e *durable.Engine, opts durable.ListOptions, limit int) []string {
	t.Helper()
	opts.Limit = limit
	var ids []string
	for {
		runs, next, err := e.ListRuns(testContext(t), &opts)
		require.NoError(t, err)
		require.LessOrEqual(t, len(runs), limit)
		for _, r := range runs {
			ids = append(ids, r.RunID)
		}
		if next == "" {
			return ids
		}
		opts.Cursor = next
	}
}

func filter(fs ...durable.SearchFilter) durable.ListOptions {
	return durable.ListOptions{SearchAttributes: fs}
}

func TestSearchAttributesStartAndList(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		hold := durable.NewSignal[string]("hold")
		order := durable.NewWorkflow("search-order", func(ctx durable.Context, _ string) (string, error) {
			return hold.Receive(ctx)
		})
		refund := durable.NewWorkflow("search-refund", func(ctx durable.Context, _ string) (string, error) {
			return "refunded", nil
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{order, refund}})
		ctx := testContext(t)
		day := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)

		type spec struct {
			wf    *durable.Workflow[string, string]
			attrs map[string]any
		}
		specs := []spec{
			{order, map[string]any{"customer": "acme", "amount": 10, "score": 0.25, "vip": true, "due": day,
				"tags": []string{"eu", "priority"}}},
			{order, map[string]any{"customer": "globex", "amount": int64(100), "score": float32(0.75), "vip": false,
				"due": day.Add(time.Hour)}},
			{refund, map[string]any{"customer": "acme", "amount": uint16(1000), "score": 1.5, "due": day.Add(2 * time.Hour),
				"tags": []string{"eu"}}},
			{order, map[string]any{"customer": "initech", "amount": -5, "region": nil}},
			{order, nil},
		}
		runs := make([]durable.RunInfo, len(specs))
		handles := make([]*durable.Handle[string], len(specs))
		for i, s := range specs {
			h, err := s.wf.Start(ctx, b.e, "", &durable.StartOptions{
				ID: fmt.Sprintf("search-%d", i), SearchAttributes: s.attrs,
				Memo: map[string]any{"index": i, "note": "run " + fmt.Sprint(i)},
			})
			require.NoError(t, err)
			handles[i] = h
			runs[i], err = b.e.DescribeRun(ctx, h.RunID())
			require.NoError(t, err)
		}
		_, err := handles[2].Result(ctx) // the refund completes at once
		require.NoError(t, err)
		ids := func(is ...int) []string {
			out := make([]string, len(is))
			for j, i := range is {
				out[j] = runs[i].RunID
			}
			return out
		}

		// RunInfo shows the attributes with their Go types, and the memo.
		require.Equal(t, map[string]any{"customer": "acme", "amount": int64(10), "score": 0.25, "vip": true, "due": day,
			"tags": []string{"eu", "priority"}}, runs[0].SearchAttributes)
		require.Equal(t, map[string]any{"customer": "initech", "amount": int64(-5)}, runs[3].SearchAttributes,
			"a nil value is left out")
		require.Nil(t, runs[4].SearchAttributes)
		require.JSONEq(t, `1`, string(runs[1].Memo["index"]))
		require.JSONEq(t, `"run 1"`, string(runs[1].Memo["note"]))
		info, err := b.e.Describe(ctx, "search-1")
		require.NoError(t, err)
		require.Equal(t, runs[1].SearchAttributes, info.SearchAttributes)
		require.Equal(t, runs[1].Memo, info.Memo)
		all, _, err := b.e.ListRuns(ctx, &durable.ListOptions{WorkflowID: "search-0"})
		require.NoError(t, err)
		require.Len(t, all, 1)
		require.Equal(t, runs[0].SearchAttributes, all[0].SearchAttributes)
		require.Equal(t, runs[0].Memo, all[0].Memo)

		// Every kind of filter, newest first.
		for _, tc := range []struct {
			name string
			opts durable.ListOptions
			want []string
		}{
			{"keyword", filter(durable.SearchFilter{Key: "customer", Equal: "acme"}), ids(2, 0)},
			{"keyword in a list", filter(durable.SearchFilter{Key: "tags", Equal: "eu"}), ids(2, 0)},
			{"int", filter(durable.SearchFilter{Key: "amount", Equal: 100}), ids(1)},
			{"int as float", filter(durable.SearchFilter{Key: "amount", Equal: 100.0}), nil},
			{"float", filter(durable.SearchFilter{Key: "score", Equal: 0.25}), ids(0)},
			{"bool", filter(durable.SearchFilter{Key: "vip", Equal: false}), ids(1)},
			{"time", filter(durable.SearchFilter{Key: "due", Equal: day.Add(time.Hour)}), ids(1)},
			{"time in another zone", filter(durable.SearchFilter{Key: "due", Equal: day.In(time.FixedZone("X", 3600))}), ids(0)},
			{"int from", filter(durable.SearchFilter{Key: "amount", Min: 10}), ids(2, 1, 0)},
			{"int to", filter(durable.SearchFilter{Key: "amount", Max: int8(10)}), ids(3, 0)},
			{"int between", filter(durable.SearchFilter{Key: "amount", Min: 11, Max: 1000}), ids(2, 1)},
			{"float between", filter(durable.SearchFilter{Key: "score", Min: 0.5, Max: 1.5}), ids(2, 1)},
			{"time between", filter(durable.SearchFilter{Key: "due", Min: day.Add(time.Nanosecond), Max: day.Add(time.Hour)}), ids(1)},
			{"all of them", filter(durable.SearchFilter{Key: "customer", Equal: "acme"}, durable.SearchFilter{Key: "amount", Max: 100}), ids(0)},
			{"and the type", durable.ListOptions{WorkflowType: "search-refund",
				SearchAttributes: []durable.SearchFilter{{Key: "customer", Equal: "acme"}}}, ids(2)},
			{"and the status", durable.ListOptions{Status: durable.StatusCompleted,
				SearchAttributes: []durable.SearchFilter{{Key: "tags", Equal: "eu"}}}, ids(2)},
			{"created after", durable.ListOptions{CreatedAfter: runs[2].CreatedAt, WorkflowType: "search-order"}, ids(4, 3)},
			{"created before", durable.ListOptions{CreatedBefore: runs[2].CreatedAt, SearchAttributes: []durable.SearchFilter{
				{Key: "customer", Equal: "acme"}}}, ids(0)},
		} {
			for _, limit := range []int{1, 2, 100} {
				got := listIDs(t, b.e, tc.opts, limit)
				if len(tc.want) == 0 {
					require.Empty(t, got, "%s, pages of %d", tc.name, limit)
					continue
				}
				require.Equal(t, tc.want, got, "%s, pages of %d", tc.name, limit)
			}
		}
	})
}

func TestSearchAttributesUpsert(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		paidAt := time.Date(2030, 5, 6, 7, 8, 9, 10, time.UTC)
		next := durable.NewSignal[string]("next")
		tracker := durable.NewWorkflow("search-tracker", func(ctx durable.Context, _ string) (string, error) {
			if err := durable.UpsertSearchAttributes(ctx, map[string]any{"stage": "paid", "amount": nil, "paid_at": paidAt}); err != nil {
				return "", err
			}
			if _, err := next.Receive(ctx); err != nil {
				return "", err
			}
			// Two upserts in one workflow task: the later one wins.
			if err := durable.UpsertSearchAttributes(ctx, map[string]any{"stage": "packed", "tags": []string{"fragile"}}); err != nil {
				return "", err
			}
			if err := durable.UpsertSearchAttributes(ctx, map[string]any{"stage": "shipped"}); err != nil {
				return "", err
			}
			_, err := next.Receive(ctx)
			return "delivered", err
		})
		// Without the cache every workflow task replays the history, upserts
		// included: they must not be applied or recorded twice.
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{tracker}, cfg: &durable.Config{CacheSize: -1}})
		ctx := testContext(t)
		h, err := tracker.Start(ctx, b.e, "", &durable.StartOptions{ID: "order-9",
			SearchAttributes: map[string]any{"stage": "new", "amount": 5, "customer": "acme"},
			Memo:             map[string]any{"note": "fragile"}})
		require.NoError(t, err)

		stage := func(s string) []string {
			return listIDs(t, b.e, filter(durable.SearchFilter{Key: "stage", Equal: s}), 10)
		}
		waitFor(t, "stage paid", func() bool { return len(stage("paid")) == 1 })
		info, err := b.e.DescribeRun(ctx, h.RunID())
		require.NoError(t, err)
		require.Equal(t, map[string]any{"stage": "paid", "customer": "acme", "paid_at": paidAt}, info.SearchAttributes)
		require.JSONEq(t, `"fragile"`, string(info.Memo["note"]))
		require.Empty(t, stage("new"))
		require.Empty(t, listIDs(t, b.e, filter(durable.SearchFilter{Key: "amount", Min: math.MinInt64}), 10))
		require.Equal(t, []string{h.RunID()}, listIDs(t, b.e, filter(durable.SearchFilter{Key: "paid_at", Min: paidAt, Max: paidAt}), 10))

		require.NoError(t, next.Send(ctx, b.e, "order-9", "go"))
		waitFor(t, "stage shipped", func() bool { return len(stage("shipped")) == 1 })
		require.Empty(t, stage("packed"))
		require.Equal(t, []string{h.RunID()}, listIDs(t, b.e, filter(durable.SearchFilter{Key: "tags", Equal: "fragile"}), 10))

		require.NoError(t, next.Send(ctx, b.e, "order-9", "go"))
		out, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, "delivered", out)
		info, err = b.e.DescribeRun(ctx, h.RunID())
		require.NoError(t, err)
		require.Equal(t, map[string]any{"stage": "shipped", "customer": "acme", "paid_at": paidAt, "tags": []string{"fragile"}},
			info.SearchAttributes)
		require.Equal(t, []string{h.RunID()}, listIDs(t, b.e, durable.ListOptions{Status: durable.StatusCompleted,
			SearchAttributes: []durable.SearchFilter{{Key: "stage", Equal: "shipped"}}}, 10))

		// Each upsert is one marker in history, whatever the replays.
		hist, err := b.e.GetHistory(ctx, h.RunID())
		require.NoError(t, err)
		var upserts []string
		for _, ev := range hist.Events {
			var d struct {
				Name  string          `json:"name"`
				Input json.RawMessage `json:"input"`
			}
			require.NoError(t, json.Unmarshal(ev.Data, &d))
			if ev.Type == "MarkerRecorded" && d.Name == "SearchAttributesUpserted" {
				upserts = append(upserts, string(d.Input))
			}
		}
		require.Len(t, upserts, 3)
		require.Contains(t, upserts[0], `"amount":null`)
	})
}

func TestSearchAttributesChildAndContinueAsNew(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		worker := durable.NewWorkflow("search-worker", func(ctx durable.Context, n int) (int, error) {
			return n * 2, nil
		})
		var rolling *durable.Workflow[int, int]
		rolling = durable.NewWorkflow("search-rolling", func(ctx durable.Context, gen int) (int, error) {
			if gen == 1 {
				n, err := worker.RunChild(ctx, 21, &durable.ChildOptions{ID: "search-child",
					SearchAttributes: map[string]any{"role": "child", "gen": gen},
					Memo:             map[string]any{"parent": "search-rolling"}})
				if err != nil {
					return 0, err
				}
				if err := durable.UpsertSearchAttributes(ctx, map[string]any{"gen": gen, "child_result": n}); err != nil {
					return 0, err
				}
				return 0, rolling.ContinueAsNew(ctx, gen+1)
			}
			return gen, durable.UpsertSearchAttributes(ctx, map[string]any{"gen": gen})
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{worker, rolling}})
		ctx := testContext(t)
		h, err := rolling.Start(ctx, b.e, 1, &durable.StartOptions{ID: "search-rolling",
			SearchAttributes: map[string]any{"customer": "acme"}, Memo: map[string]any{"owner": "ops"}})
		require.NoError(t, err)
		out, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, out)

		child, err := b.e.Describe(ctx, "search-child")
		require.NoError(t, err)
		require.Equal(t, map[string]any{"role": "child", "gen": int64(1)}, child.SearchAttributes)
		require.JSONEq(t, `"search-rolling"`, string(child.Memo["parent"]))
		require.Equal(t, []string{child.RunID}, listIDs(t, b.e, filter(durable.SearchFilter{Key: "role", Equal: "child"}), 10))

		// The successor starts with its predecessor's attributes and memo.
		first, err := b.e.DescribeRun(ctx, h.RunID())
		require.NoError(t, err)
		require.Equal(t, durable.StatusContinuedAsNew, first.Status)
		require.Equal(t, map[string]any{"customer": "acme", "gen": int64(1), "child_result": int64(42)}, first.SearchAttributes)
		last, err := b.e.Describe(ctx, "search-rolling")
		require.NoError(t, err)
		require.NotEqual(t, first.RunID, last.RunID)
		require.Equal(t, map[string]any{"customer": "acme", "gen": int64(2), "child_result": int64(42)}, last.SearchAttributes)
		require.JSONEq(t, `"ops"`, string(last.Memo["owner"]))
		require.Equal(t, []string{last.RunID, first.RunID},
			listIDs(t, b.e, filter(durable.SearchFilter{Key: "customer", Equal: "acme"}), 1))
		require.Equal(t, []string{last.RunID}, listIDs(t, b.e, filter(durable.SearchFilter{Key: "gen", Min: 2}), 10))
	})
}

func TestSearchAttributesBadInput(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		type point struct{ X int }
		full := map[string]any{}
		for i := range durable.MaxSearchAttributes {
			full[fmt.Sprintf("a%d", i)] = i
		}
		next := durable.NewSignal[string]("next")
		upserter := durable.NewWorkflow("search-upserter", func(ctx durable.Context, _ string) ([]string, error) {
			var outcomes []string
			for _, attrs := range []map[string]any{
				{"p": point{1}},
				{"": "empty key"},
				{"one_more": 1}, // the 65th
				{"a0": nil, "one_more": 1},
			} {
				err := durable.UpsertSearchAttributes(ctx, attrs)
				outcomes = append(outcomes, fmt.Sprint(errors.Is(err, durable.ErrInvalidSearchAttribute)))
				// A workflow task per call, each replaying the ones before.
				if _, err := next.Receive(ctx); err != nil {
					return nil, err
				}
			}
			return outcomes, nil
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{upserter}, cfg: &durable.Config{CacheSize: -1}})
		ctx := testContext(t)

		for name, attrs := range map[string]map[string]any{
			"struct":    {"p": point{1}},
			"map":       {"m": map[string]any{"a": 1}},
			"pointer":   {"s": new(string)},
			"complex":   {"c": complex(1, 2)},
			"NaN":       {"f": math.NaN()},
			"infinity":  {"f": math.Inf(1)},
			"uint64":    {"n": uint64(math.MaxUint64)},
			"any list":  {"l": []any{"a"}},
			"year 3000": {"t": time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
			"empty key": {"": "x"},
			"long key":  {strings.Repeat("k", durable.MaxSearchAttributeKeyBytes+1): "x"},
			"65 attributes": func() map[string]any {
				m := map[string]any{"one_more": 1}
				for k, v := range full {
					m[k] = v
				}
				return m
			}(),
		} {
			_, err := upserter.Start(ctx, b.e, "", &durable.StartOptions{ID: "bad-" + name, SearchAttributes: attrs})
			require.ErrorIs(t, err, durable.ErrInvalidSearchAttribute, name)
			_, err = b.e.Describe(ctx, "bad-"+name)
			require.ErrorIs(t, err, durable.ErrRunNotFound, "%s: nothing is started", name)
		}
		_, err := upserter.Start(ctx, b.e, "", &durable.StartOptions{ID: "bad-memo", Memo: map[string]any{"ch": make(chan int)}})
		require.ErrorIs(t, err, durable.ErrInvalidMemo)
		_, err = b.e.Describe(ctx, "bad-memo")
		require.ErrorIs(t, err, durable.ErrRunNotFound)
		_, err = upserter.Start(ctx, b.e, "", &durable.StartOptions{ID: "long-key-ok",
			SearchAttributes: map[string]any{strings.Repeat("k", durable.MaxSearchAttributeKeyBytes): "x"}})
		require.NoError(t, err, "a key of the longest length")

		for name, f := range map[string]durable.SearchFilter{
			"struct":        {Key: "k", Equal: point{1}},
			"keyword list":  {Key: "k", Equal: []string{"a"}},
			"no key":        {Equal: "a"},
			"no condition":  {Key: "k"},
			"both":          {Key: "k", Equal: 1, Min: 0},
			"bool range":    {Key: "k", Min: true},
			"keyword range": {Key: "k", Min: "a", Max: "b"},
			"mixed range":   {Key: "k", Min: 1, Max: 2.5},
		} {
			_, _, err := b.e.ListRuns(ctx, &durable.ListOptions{SearchAttributes: []durable.SearchFilter{f}})
			require.ErrorIs(t, err, durable.ErrInvalidSearchAttribute, name)
		}

		// From workflow code: refused upserts return the error and record
		// nothing, the same on every replay; 64 attributes is the limit.
		h, err := upserter.Start(ctx, b.e, "", &durable.StartOptions{ID: "upserter", SearchAttributes: full})
		require.NoError(t, err)
		for i := range 4 {
			// One signal per workflow task, so that each task replays the
			// calls before it.
			waitFor(t, "the upserter to wait", func() bool {
				return countOf(eventTypes(t, b.e, h.RunID()), durable.EventSignalReceived) == i
			})
			require.NoError(t, next.Send(ctx, b.e, "upserter", "go"))
		}
		out, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"true", "true", "true", "false"}, out)
		info, err := b.e.DescribeRun(ctx, h.RunID())
		require.NoError(t, err)
		require.Len(t, info.SearchAttributes, durable.MaxSearchAttributes)
		require.Equal(t, int64(1), info.SearchAttributes["one_more"])
		require.NotContains(t, info.SearchAttributes, "a0")
		require.NotContains(t, info.SearchAttributes, "p")
	})
}
