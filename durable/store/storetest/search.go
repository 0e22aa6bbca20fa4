package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
)

// exerciseSearch checks search attributes and memos: stored with a run,
// changed by a commit's upsert, passed on to a successor, and filtered on
// by ListRuns.
func exerciseSearch(t *testing.T, setup func(*testing.T) *bundle) {
	t.Run("CreateWithAttributes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		attrs := map[string]store.SearchValue{
			"customer": keyword("acme"),
			"tags":     {Type: store.SearchKeywordList, Keywords: []string{"vip", "eu", "vip"}},
			"none":     {Type: store.SearchKeywordList, Keywords: []string{}},
			"amount":   intValue(1 << 60),
			"score":    floatValue(-0.5),
			"urgent":   {Type: store.SearchBool, Bool: true},
			"due":      timeValue(at(time.Hour + time.Nanosecond)),
		}
		memo := []byte(`{"note":"call back","n":[1,2.5]}`)
		run := b.createRun(t, func(p *store.CreateRunParams) {
			p.SearchAttributes, p.Memo = searchJSON(t, attrs), memo
		})
		requireSearch(t, attrs, run.SearchAttributes)
		require.Equal(t, memo, run.Memo)

		got := b.getRun(t, run.RunID)
		requireSearch(t, attrs, got.SearchAttributes)
		require.Equal(t, memo, got.Memo)
		wt := b.claim(t, run.TaskQueue, base)
		requireSearch(t, attrs, wt.Run.SearchAttributes)
		require.Equal(t, memo, wt.Run.Memo)
		list, err := b.st.ListRuns(b.ctx, store.ListRunsParams{WorkflowID: run.WorkflowID})
		require.NoError(t, err)
		require.Len(t, list.Runs, 1)
		requireSearch(t, attrs, list.Runs[0].SearchAttributes)
		require.Equal(t, memo, list.Runs[0].Memo)

		// A run without either has neither.
		plain := b.createRun(t)
		require.Nil(t, plain.SearchAttributes)
		require.Nil(t, plain.Memo)
		got = b.getRun(t, plain.RunID)
		require.Nil(t, got.SearchAttributes)
		require.Nil(t, got.Memo)

		// A start that finds the workflow ID running returns that run as
		// it is.
		res, err := b.st.CreateRun(b.ctx, runParams(func(p *store.CreateRunParams) {
			p.WorkflowID = run.WorkflowID
			p.SearchAttributes = searchJSON(t, map[string]store.SearchValue{"customer": keyword("other")})
		}))
		require.NoError(t, err)
		require.False(t, res.Created)
		requireSearch(t, attrs, res.Run.SearchAttributes)
		b.requireMatches(t, store.ListRunsParams{SearchAttributes: []store.SearchFilter{eq("customer", keyword("other"))}})
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// r[i] is created at base + i seconds.
		mk := func(i int, typ string, attrs map[string]store.SearchValue) store.Run {
			return b.createRun(t, func(p *store.CreateRunParams) {
				p.WorkflowType, p.Now = typ, at(time.Duration(i)*time.Second)
				p.SearchAttributes = searchJSON(t, attrs)
			})
		}
		r := []store.Run{
			mk(0, "order", map[string]store.SearchValue{"customer": keyword("acme"), "amount": intValue(10),
				"score": floatValue(0.25), "vip": boolValue(true), "due": timeValue(at(time.Hour))}),
			mk(1, "order", map[string]store.SearchValue{"customer": keyword("globex"), "amount": intValue(100),
				"score": floatValue(0.75), "vip": boolValue(false), "due": timeValue(at(2 * time.Hour))}),
			mk(2, "refund", map[string]store.SearchValue{"customer": keyword("acme"), "amount": intValue(1000),
				"score": floatValue(1.5), "due": timeValue(at(3 * time.Hour)),
				"tags": {Type: store.SearchKeywordList, Keywords: []string{"eu", "priority"}}}),
			// The same keys with other types.
			mk(3, "order", map[string]store.SearchValue{"customer": intValue(10), "amount": keyword("10"),
				"score": intValue(1), "tags": keyword("priority")}),
			mk(4, "order", nil),
		}
		b.closeRun(t, r[1], store.StatusCompleted, at(time.Minute))
		match := func(want []int, p store.ListRunsParams) {
			t.Helper()
			ids := make([]store.Run, len(want))
			for i, w := range want {
				ids[i] = r[w]
			}
			b.requireMatches(t, p, ids...)
		}
		attr := func(fs ...store.SearchFilter) store.ListRunsParams {
			return store.ListRunsParams{SearchAttributes: fs}
		}

		// Equality, by type: a keyword also matches a keyword list.
		match([]int{2, 0}, attr(eq("customer", keyword("acme"))))
		match([]int{3}, attr(eq("customer", intValue(10))))
		match([]int{0}, attr(eq("amount", intValue(10))))
		match([]int{3}, attr(eq("amount", keyword("10"))))
		match([]int{1}, attr(eq("score", floatValue(0.75))))
		match(nil, attr(eq("score", intValue(0))))
		match([]int{0}, attr(eq("vip", boolValue(true))))
		match([]int{1}, attr(eq("vip", boolValue(false))))
		match([]int{1}, attr(eq("due", timeValue(at(2*time.Hour)))))
		match([]int{3, 2}, attr(eq("tags", keyword("priority"))))
		match([]int{2}, attr(eq("tags", keyword("eu"))))
		match(nil, attr(eq("tags", keyword("pri"))))
		match(nil, attr(eq("missing", keyword("acme"))))

		// Ranges, inclusive, of ints, floats and times.
		match([]int{2, 1}, attr(between("amount", intValue(100), nil)))
		match([]int{1, 0}, attr(between("amount", nil, intValue(100))))
		match([]int{1}, attr(between("amount", intValue(11), intValue(999))))
		match([]int{2, 1}, attr(between("score", floatValue(0.5), floatValue(2))))
		match([]int{3}, attr(between("score", intValue(0), intValue(5))))
		match([]int{1, 0}, attr(between("due", timeValue(at(time.Hour)), timeValue(at(2*time.Hour)))))
		match([]int{2}, attr(between("due", timeValue(at(2*time.Hour+1)), nil)))

		// Every filter must match, search attributes and the others.
		match([]int{0}, attr(eq("customer", keyword("acme")), between("amount", nil, intValue(999))))
		match([]int{2}, store.ListRunsParams{WorkflowType: "refund", SearchAttributes: []store.SearchFilter{eq("customer", keyword("acme"))}})
		match([]int{1}, store.ListRunsParams{Status: store.StatusCompleted, SearchAttributes: []store.SearchFilter{between("amount", intValue(0), nil)}})
		match([]int{4, 3, 2, 0}, store.ListRunsParams{Status: store.StatusRunning})
		match([]int{3, 1, 0}, store.ListRunsParams{WorkflowType: "order", CreatedBefore: at(4 * time.Second)})
		match([]int{3, 2}, store.ListRunsParams{CreatedAfter: at(time.Second), CreatedBefore: at(4 * time.Second)})
		match([]int{2}, store.ListRunsParams{CreatedAfter: at(time.Second), SearchAttributes: []store.SearchFilter{eq("customer", keyword("acme"))}})
		match(nil, store.ListRunsParams{CreatedAfter: at(4 * time.Second)})
	})

	t.Run("Pagination", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var acme []store.Run
		for i := range 7 {
			customer := "acme"
			if i%3 == 2 {
				customer = "globex"
			}
			run := b.createRun(t, func(p *store.CreateRunParams) {
				p.Now = at(time.Duration(i) * time.Second)
				p.SearchAttributes = searchJSON(t, map[string]store.SearchValue{
					"customer": keyword(customer), "amount": intValue(int64(i)),
				})
			})
			if customer == "acme" {
				acme = append([]store.Run{run}, acme...)
			}
		}
		for _, f := range []store.SearchFilter{eq("customer", keyword("acme")), between("amount", intValue(0), intValue(6))} {
			var got []string
			cursor := ""
			pages := 0
			for {
				p := store.ListRunsParams{SearchAttributes: []store.SearchFilter{f}, Limit: 2, Cursor: cursor}
				res, err := b.st.ListRuns(b.ctx, p)
				require.NoError(t, err)
				require.LessOrEqual(t, len(res.Runs), 2)
				got = append(got, runIDs(res.Runs)...)
				pages++
				if res.NextCursor == "" {
					break
				}
				cursor = res.NextCursor
			}
			if f.Equal != nil {
				require.Equal(t, runIDs(acme), got)
				require.Equal(t, 3, pages)
			} else {
				require.Len(t, got, 7)
				require.Equal(t, 4, pages)
			}
		}
	})

	t.Run("Upsert", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t, func(p *store.CreateRunParams) {
			p.SearchAttributes = searchJSON(t, map[string]store.SearchValue{
				"stage": keyword("new"), "amount": intValue(5), "tags": {Type: store.SearchKeywordList, Keywords: []string{"a", "b"}},
			})
			p.Memo = []byte(`{"m":1}`)
		})
		b.step(t, run, base, func(p *store.CompleteWorkflowTaskParams) {
			p.UpsertSearchAttributes = []byte(`{"stage": {"type": "keyword", "value": "paid"}, "amount": null,
				"tags": {"type": "keyword_list", "value": ["b", "c"]}, "paid_at": {"type": "time", "value": "2030-03-04T05:06:08Z"}}`)
		})
		want := map[string]store.SearchValue{
			"stage": keyword("paid"), "tags": {Type: store.SearchKeywordList, Keywords: []string{"b", "c"}},
			"paid_at": timeValue(at(time.Second)),
		}
		got := b.getRun(t, run.RunID)
		requireSearch(t, want, got.SearchAttributes)
		require.Equal(t, []byte(`{"m":1}`), got.Memo, "an upsert leaves the memo alone")
		b.requireMatches(t, store.ListRunsParams{SearchAttributes: []store.SearchFilter{eq("stage", keyword("paid"))}}, run)
		b.requireMatches(t, store.ListRunsParams{SearchAttributes: []store.SearchFilter{eq("stage", keyword("new"))}})
		b.requireMatches(t, store.ListRunsParams{SearchAttributes: []store.SearchFilter{between("amount", intValue(-1<<63), nil)}})
		b.requireMatches(t, store.ListRunsParams{SearchAttributes: []store.SearchFilter{eq("tags", keyword("a"))}})
		b.requireMatches(t, store.ListRunsParams{SearchAttributes: []store.SearchFilter{eq("tags", keyword("c"))}}, run)
		b.requireMatches(t, store.ListRunsParams{SearchAttributes: []store.SearchFilter{
			between("paid_at", timeValue(at(time.Second)), timeValue(at(time.Second)))}}, run)

		// Removing every key leaves none; removing a missing key is no
		// error.
		b.signal(t, run.RunID, "more", at(time.Second))
		b.step(t, run, at(time.Second), func(p *store.CompleteWorkflowTaskParams) {
			p.UpsertSearchAttributes = []byte(`{"stage": null, "tags": null, "paid_at": null, "never": null}`)
		})
		require.Nil(t, b.getRun(t, run.RunID).SearchAttributes)
		b.requireMatches(t, store.ListRunsParams{SearchAttributes: []store.SearchFilter{eq("tags", keyword("c"))}})

		// An upsert in a closing commit applies too, and a closed run
		// stays listed by its attributes.
		b.signal(t, run.RunID, "last", at(2*time.Second))
		b.step(t, run, at(2*time.Second), func(p *store.CompleteWorkflowTaskParams) {
			p.UpsertSearchAttributes = []byte(`{"outcome": {"type": "keyword", "value": "done"}}`)
			p.Close = &store.CloseRun{Status: store.StatusCompleted, Result: []byte(`"ok"`)}
		})
		got = b.getRun(t, run.RunID)
		require.Equal(t, store.StatusCompleted, got.Status)
		requireSearch(t, map[string]store.SearchValue{"outcome": keyword("done")}, got.SearchAttributes)
		b.requireMatches(t, store.ListRunsParams{Status: store.StatusCompleted,
			SearchAttributes: []store.SearchFilter{eq("outcome", keyword("done"))}}, run)
	})

	t.Run("UpsertWithActivity", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, acts := b.idleRun(t, 1)
		sp := speculative(acts[0], 2, at(3*time.Second))
		sp.Workflow.UpsertSearchAttributes = []byte(`{"step": {"type": "int", "value": 2}}`)
		_, err := b.st.CompleteActivityWithWorkflowTask(b.ctx, sp)
		require.NoError(t, err)
		requireSearch(t, map[string]store.SearchValue{"step": intValue(2)}, b.getRun(t, run.RunID).SearchAttributes)
		b.requireMatches(t, store.ListRunsParams{SearchAttributes: []store.SearchFilter{eq("step", intValue(2))}}, run)
	})

	t.Run("ChildrenAndSuccessors", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		parent := b.createRun(t)
		childAttrs := map[string]store.SearchValue{"kind": keyword("child")}
		c := childStart(parent, 2, store.ParentCloseAbandon, func(p *store.CreateRunParams) {
			p.SearchAttributes, p.Memo = searchJSON(t, childAttrs), []byte(`"child memo"`)
		})
		refused := childStart(parent, 3, store.ParentCloseAbandon, func(p *store.CreateRunParams) {
			p.WorkflowID = c.Run.WorkflowID
			p.SearchAttributes = searchJSON(t, map[string]store.SearchValue{"kind": keyword("refused")})
		})
		b.step(t, parent, base, func(p *store.CompleteWorkflowTaskParams) {
			p.StartChildren = []store.ChildStart{c, refused}
		})
		child := b.getRun(t, c.Run.RunID)
		requireSearch(t, childAttrs, child.SearchAttributes)
		require.Equal(t, []byte(`"child memo"`), child.Memo)
		b.requireMatches(t, store.ListRunsParams{SearchAttributes: []store.SearchFilter{eq("kind", keyword("child"))}}, child)
		b.requireMatches(t, store.ListRunsParams{SearchAttributes: []store.SearchFilter{eq("kind", keyword("refused"))}})

		// The successor has the attributes and memo it is created with;
		// the closed run keeps its own, with this commit's upsert.
		next := runParams(func(p *store.CreateRunParams) {
			p.WorkflowID, p.TaskQueue = child.WorkflowID, child.TaskQueue
			p.SearchAttributes = searchJSON(t, map[string]store.SearchValue{"kind": keyword("child"), "gen": intValue(2)})
			p.Memo = []byte(`"next memo"`)
		})
		b.step(t, child, base, func(p *store.CompleteWorkflowTaskParams) {
			p.UpsertSearchAttributes = []byte(`{"gen": {"type": "int", "value": 1}}`)
			p.Close = &store.CloseRun{Status: store.StatusContinuedAsNew, Result: []byte(`"` + next.RunID + `"`),
				ContinueAsNew: &store.ContinueAsNew{Run: next}}
		})
		succ := b.getRun(t, next.RunID)
		requireSearch(t, map[string]store.SearchValue{"kind": keyword("child"), "gen": intValue(2)}, succ.SearchAttributes)
		require.Equal(t, []byte(`"next memo"`), succ.Memo)
		requireSearch(t, map[string]store.SearchValue{"kind": keyword("child"), "gen": intValue(1)},
			b.getRun(t, child.RunID).SearchAttributes)
		b.requireMatches(t, store.ListRunsParams{SearchAttributes: []store.SearchFilter{eq("kind", keyword("child"))}}, succ, child)
		b.requireMatches(t, store.ListRunsParams{SearchAttributes: []store.SearchFilter{eq("gen", intValue(2))}}, succ)
		b.requireMatches(t, store.ListRunsParams{SearchAttributes: []store.SearchFilter{eq("gen", intValue(1))}}, child)
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, bad := range []string{
			`{"k": {"type": "money", "value": 1}}`,
			`{"k": {"type": "int", "value": 1.5}}`,
			`{"k": {"type": "int", "value": "1"}}`,
			`{"k": {"type": "time", "value": "yesterday"}}`,
			`{"k": {"type": "keyword"}}`,
			`{"k": null}`,
			`{"": {"type": "keyword", "value": "x"}}`,
			`["not", "an", "object"]`,
		} {
			p := runParams(func(p *store.CreateRunParams) { p.SearchAttributes = []byte(bad) })
			_, err := b.st.CreateRun(b.ctx, p)
			require.ErrorIs(t, err, store.ErrInvalidSearch, bad)
			_, err = b.st.GetRun(b.ctx, p.RunID)
			require.ErrorIs(t, err, store.ErrNotFound, "nothing is written")
		}

		// A commit whose upsert cannot be read writes nothing, and the
		// task is still leased to its caller.
		run := b.createRun(t)
		wt := b.claim(t, run.TaskQueue, base)
		p := params(wt, base)
		p.Events = events(1, 1)
		p.UpsertSearchAttributes = []byte(`{"k": {"type": "float", "value": "NaN"}}`)
		_, err := b.st.CompleteWorkflowTask(b.ctx, p)
		require.ErrorIs(t, err, store.ErrInvalidSearch)
		require.EqualValues(t, 1, b.getRun(t, run.RunID).HistoryLen)
		p.UpsertSearchAttributes = []byte(`{"k": {"type": "float", "value": 1e300}}`)
		b.commit(t, p)
		requireSearch(t, map[string]store.SearchValue{"k": floatValue(1e300)}, b.getRun(t, run.RunID).SearchAttributes)

		// A child whose attributes cannot be read fails its parent's
		// commit.
		b.signal(t, run.RunID, "start child", at(time.Second))
		wt = b.claim(t, run.TaskQueue, at(time.Second))
		p = params(wt, at(time.Second))
		p.Events = inboxEvents(wt)
		c := childStart(run, 3, store.ParentCloseAbandon, func(p *store.CreateRunParams) {
			p.SearchAttributes = []byte(`{"k": {"type": "money", "value": 1}}`)
		})
		p.StartChildren = []store.ChildStart{c}
		_, err = b.st.CompleteWorkflowTask(b.ctx, p)
		require.ErrorIs(t, err, store.ErrInvalidSearch)
		_, err = b.st.GetRun(b.ctx, c.Run.RunID)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.EqualValues(t, 2, b.getRun(t, run.RunID).HistoryLen)

		for _, f := range []store.SearchFilter{
			{Equal: ptr(keyword("x"))},
			{Key: "k"},
			{Key: "k", Equal: ptr(keyword("x")), Min: ptr(intValue(1))},
			{Key: "k", Equal: &store.SearchValue{Type: store.SearchKeywordList, Keywords: []string{"x"}}},
			{Key: "k", Equal: &store.SearchValue{Type: "money"}},
			{Key: "k", Min: ptr(boolValue(true))},
			{Key: "k", Min: ptr(keyword("a")), Max: ptr(keyword("b"))},
			{Key: "k", Min: ptr(intValue(1)), Max: ptr(floatValue(2))},
		} {
			_, err := b.st.ListRuns(b.ctx, store.ListRunsParams{SearchAttributes: []store.SearchFilter{f}})
			require.ErrorIs(t, err, store.ErrInvalidSearch, "%+v", f)
		}
	})
}

// requireMatches checks that ListRuns with p returns exactly want, in
// order (newest first).
func (b *bundle) requireMatches(t *testing.T, p store.ListRunsParams, want ...store.Run) {
	t.Helper()
	res, err := b.st.ListRuns(b.ctx, p)
	require.NoError(t, err)
	require.Equal(t, runIDs(want), runIDs(res.Runs), "%+v", p)
}

func searchJSON(t *testing.T, attrs map[string]store.SearchValue) []byte {
	t.Helper()
	b, err := store.MarshalSearchAttributes(attrs)
	require.NoError(t, err)
	return b
}

// requireSearch checks that got holds exactly the attributes want.
func requireSearch(t *testing.T, want map[string]store.SearchValue, got []byte) {
	t.Helper()
	attrs, err := store.ParseSearchAttributes(got)
	require.NoError(t, err)
	require.Len(t, attrs, len(want), "%s", got)
	for k, w := range want {
		g, ok := attrs[k]
		require.True(t, ok, "key %q in %s", k, got)
		require.Equal(t, w.Type, g.Type, k)
		if w.Type == store.SearchTime {
			requireTime(t, w.Time, g.Time, k)
			continue
		}
		g.Time = w.Time
		require.Equal(t, w, g, k)
	}
}

func eq(key string, v store.SearchValue) store.SearchFilter {
	return store.SearchFilter{Key: key, Equal: &v}
}

// between is a range filter; a nil bound is open.
func between(key string, lo, hi any) store.SearchFilter {
	f := store.SearchFilter{Key: key}
	if v, ok := lo.(store.SearchValue); ok {
		f.Min = &v
	}
	if v, ok := hi.(store.SearchValue); ok {
		f.Max = &v
	}
	return f
}

func ptr[T any](v T) *T { return &v }

func keyword(s string) store.SearchValue {
	return store.SearchValue{Type: store.SearchKeyword, Keyword: s}
}
func intValue(n int64) store.SearchValue { return store.SearchValue{Type: store.SearchInt, Int: n} }
func floatValue(f float64) store.SearchValue {
	return store.SearchValue{Type: store.SearchFloat, Float: f}
}
func boolValue(v bool) store.SearchValue { return store.SearchValue{Type: store.SearchBool, Bool: v} }
func timeValue(t time.Time) store.SearchValue {
	return store.SearchValue{Type: store.SearchTime, Time: t}
}
