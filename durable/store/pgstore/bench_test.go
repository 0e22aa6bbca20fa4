package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/internal/testdb"
)

// roundTrips counts the queries, batches and prepares a pool sends: one
// round trip each. stmts counts the statements they run.
type roundTrips struct{ n, stmts atomic.Int64 }

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.n.Add(1)
	r.stmts.Add(1)
	return ctx
}

func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.n.Add(1)
	return ctx
}

func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	r.stmts.Add(1)
}

func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (r *roundTrips) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	r.n.Add(1)
	return ctx
}

func (r *roundTrips) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// tracedStore returns a store on a pool of maxConns connections whose round
// trips rt counts.
func tracedStore(tb testing.TB, maxConns int32, rt *roundTrips) *pgstore.Store {
	tb.Helper()
	cfg := testdb.Postgres(tb).Config()
	cfg.MaxConns = maxConns
	cfg.ConnConfig.Tracer = rt
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(pool.Close)
	st, err := pgstore.New(context.Background(), pool, nil)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, st.Close()) })
	return st
}

// workflow runs one workflow with three activities through the store, as
// the engine does: start, a workflow task that schedules the activities,
// the activities, and a workflow task that completes the run. count is
// called after each store call with its name.
func workflow(ctx context.Context, st store.Store, id string, now time.Time, count func(method string)) error {
	queue, activityQueue := "q-"+id, "aq-"+id
	if _, err := st.CreateRun(ctx, store.CreateRunParams{
		RunID: id, WorkflowID: "wf-" + id, WorkflowType: "order", TaskQueue: queue,
		Input: []byte(`{"order":1}`), StartEvent: store.Event{Type: "started", Data: []byte(`{}`)}, Now: now,
	}); err != nil {
		return err
	}
	count("CreateRun")
	claim := store.ClaimParams{TaskQueue: queue, Owner: "bench", Limit: 1, Now: now, LeaseUntil: now.Add(time.Minute)}
	wts, err := st.ClaimWorkflowTasks(ctx, claim)
	if err != nil || len(wts) != 1 {
		return fmt.Errorf("claim: %d tasks, %w", len(wts), err)
	}
	count("ClaimWorkflowTasks")
	p := store.CompleteWorkflowTaskParams{RunID: id, Token: wts[0].Token, ExpectedHistoryLen: 1, Now: now}
	for seq := int64(2); seq <= 4; seq++ {
		p.Events = append(p.Events, store.Event{ID: seq, Type: "activity_scheduled", Data: []byte(`{}`)})
		p.ScheduleActivities = append(p.ScheduleActivities, store.ActivityTask{
			Seq: seq, ActivityType: "charge", TaskQueue: activityQueue, Input: []byte(`{}`),
			StartToClose: time.Minute, ScheduledAt: now, ReadyAt: now,
		})
	}
	if _, err := st.CompleteWorkflowTask(ctx, p); err != nil {
		return err
	}
	count("CompleteWorkflowTask")
	acts, err := st.ClaimActivityTasks(ctx, store.ClaimParams{TaskQueue: activityQueue, Owner: "bench", Limit: 3, Now: now})
	if err != nil || len(acts) != 3 {
		return fmt.Errorf("claim activities: %d tasks, %w", len(acts), err)
	}
	count("ClaimActivityTasks")
	for _, a := range acts {
		if _, err := st.CompleteActivityTask(ctx, store.CompleteActivityTaskParams{
			RunID: id, Seq: a.Seq, Token: a.Token,
			Attempt: store.ActivityAttempt{Attempt: 1, ActivityType: "charge", Owner: "bench", StartedAt: now, EndedAt: now, Outcome: "completed"},
			Item:    store.NewInboxItem{Type: "activity_completed", Data: []byte(`{"result":1}`)}, Now: now,
		}); err != nil {
			return err
		}
		count("CompleteActivityTask")
	}
	wts, err = st.ClaimWorkflowTasks(ctx, claim)
	if err != nil || len(wts) != 1 || len(wts[0].Inbox) != 3 {
		return fmt.Errorf("claim: %d tasks, %w", len(wts), err)
	}
	count("ClaimWorkflowTasks")
	wt := wts[0]
	p = store.CompleteWorkflowTaskParams{
		RunID: id, Token: wt.Token, ExpectedHistoryLen: 4, InboxUpTo: wt.Inbox[2].ID, Now: now,
		Close: &store.CloseRun{Status: store.StatusCompleted, Result: []byte(`"ok"`)},
	}
	for i, it := range wt.Inbox {
		p.Events = append(p.Events, store.Event{ID: int64(5 + i), Type: it.Type, Time: it.Time, Data: it.Data})
	}
	p.Events = append(p.Events, store.Event{ID: 8, Type: "completed", Data: []byte(`"ok"`)})
	if _, err := st.CompleteWorkflowTask(ctx, p); err != nil {
		return err
	}
	count("CompleteWorkflowTask")
	return nil
}

// eagerWorkflow runs the same workflow as workflow through the eager
// fast paths, in 6 store calls instead of 9: the start leases the first
// workflow task, its commit leases the three activities, and the last
// activity's completion leases the workflow task with the three results.
func eagerWorkflow(ctx context.Context, st store.Store, id string, now time.Time, count func(method string)) error {
	queue, activityQueue := "q-"+id, "aq-"+id
	lease := &store.EagerLease{Owner: "bench", LeaseUntil: now.Add(time.Minute)}
	res, err := st.CreateRun(ctx, store.CreateRunParams{
		RunID: id, WorkflowID: "wf-" + id, WorkflowType: "order", TaskQueue: queue,
		Input: []byte(`{"order":1}`), StartEvent: store.Event{Type: "started", Data: []byte(`{}`)}, Now: now,
		Eager: lease,
	})
	if err != nil {
		return err
	}
	if res.Task == nil {
		return errors.New("create run: no eager task")
	}
	count("CreateRun")
	p := store.CompleteWorkflowTaskParams{
		RunID: id, Token: res.Task.Token, ExpectedHistoryLen: 1, Now: now, EagerOwner: "bench",
	}
	for seq := int64(2); seq <= 4; seq++ {
		p.Events = append(p.Events, store.Event{ID: seq, Type: "activity_scheduled", Data: []byte(`{}`)})
		p.ScheduleActivities = append(p.ScheduleActivities, store.ActivityTask{
			Seq: seq, ActivityType: "charge", TaskQueue: activityQueue, Input: []byte(`{}`),
			StartToClose: time.Minute, ScheduledAt: now, ReadyAt: now,
		})
		p.EagerActivities = append(p.EagerActivities, seq)
	}
	committed, err := st.CompleteWorkflowTask(ctx, p)
	if err != nil {
		return err
	}
	if len(committed.Activities) != 3 {
		return fmt.Errorf("complete workflow task: %d eager activities", len(committed.Activities))
	}
	count("CompleteWorkflowTask")
	var wt *store.WorkflowTask
	for i, a := range committed.Activities {
		cp := store.CompleteActivityTaskParams{
			RunID: id, Seq: a.Seq, Token: a.Token,
			Attempt: store.ActivityAttempt{Attempt: 1, ActivityType: "charge", Owner: "bench", StartedAt: now, EndedAt: now, Outcome: "completed"},
			Item:    store.NewInboxItem{Type: "activity_completed", Data: []byte(`{"result":1}`)}, Now: now,
		}
		if i == len(committed.Activities)-1 {
			cp.Eager = lease
		}
		res, err := st.CompleteActivityTask(ctx, cp)
		if err != nil {
			return err
		}
		wt = res.Task
		count("CompleteActivityTask")
	}
	if wt == nil || len(wt.Inbox) != 3 {
		return fmt.Errorf("complete activity task: eager task %+v", wt)
	}
	return closeRun(ctx, st, wt, now, count)
}

// closeRun commits wt, moving its inbox into the history, and completes
// the run.
func closeRun(ctx context.Context, st store.Store, wt *store.WorkflowTask, now time.Time, count func(string)) error {
	n := wt.Run.HistoryLen
	p := store.CompleteWorkflowTaskParams{
		RunID: wt.Run.RunID, Token: wt.Token, ExpectedHistoryLen: n, InboxUpTo: wt.Inbox[len(wt.Inbox)-1].ID, Now: now,
		Close: &store.CloseRun{Status: store.StatusCompleted, Result: []byte(`"ok"`)},
	}
	for _, it := range wt.Inbox {
		n++
		p.Events = append(p.Events, store.Event{ID: n, Type: it.Type, Time: it.Time, Data: it.Data})
	}
	p.Events = append(p.Events, store.Event{ID: n + 1, Type: "completed", Data: []byte(`"ok"`)})
	if _, err := st.CompleteWorkflowTask(ctx, p); err != nil {
		return err
	}
	count("CompleteWorkflowTask")
	return nil
}

// sequentialWorkflow runs a workflow whose three activities run one after
// another, each scheduled by the workflow task that got the previous one's
// result. Without eager it takes 15 store calls: start, then per activity
// a claim and commit of the workflow task and a claim and completion of the
// activity, then a claim and commit that completes the run. With eager it
// takes 8: each write leases the task it makes runnable to the caller.
func sequentialWorkflow(ctx context.Context, st store.Store, id string, now time.Time, eager bool, count func(method string)) error {
	queue, activityQueue := "q-"+id, "aq-"+id
	lease := store.EagerLease{Owner: "bench", LeaseUntil: now.Add(time.Minute)}
	claim := store.ClaimParams{TaskQueue: queue, Owner: "bench", Limit: 1, Now: now, LeaseUntil: lease.LeaseUntil}
	claimWorkflowTask := func() (*store.WorkflowTask, error) {
		wts, err := st.ClaimWorkflowTasks(ctx, claim)
		if err != nil || len(wts) != 1 {
			return nil, fmt.Errorf("claim: %d tasks, %w", len(wts), err)
		}
		count("ClaimWorkflowTasks")
		return &wts[0], nil
	}

	cp := store.CreateRunParams{
		RunID: id, WorkflowID: "wf-" + id, WorkflowType: "order", TaskQueue: queue,
		Input: []byte(`{"order":1}`), StartEvent: store.Event{Type: "started", Data: []byte(`{}`)}, Now: now,
	}
	if eager {
		cp.Eager = &lease
	}
	res, err := st.CreateRun(ctx, cp)
	if err != nil {
		return err
	}
	count("CreateRun")
	wt := res.Task
	for range 3 {
		if wt == nil {
			if wt, err = claimWorkflowTask(); err != nil {
				return err
			}
		}
		// Move the inbox into the history and schedule the next activity.
		seq := wt.Run.HistoryLen + int64(len(wt.Inbox)) + 1
		p := store.CompleteWorkflowTaskParams{RunID: id, Token: wt.Token, ExpectedHistoryLen: wt.Run.HistoryLen, Now: now}
		for i, it := range wt.Inbox {
			p.Events = append(p.Events, store.Event{ID: wt.Run.HistoryLen + int64(i) + 1, Type: it.Type, Time: it.Time, Data: it.Data})
			p.InboxUpTo = it.ID
		}
		p.Events = append(p.Events, store.Event{ID: seq, Type: "activity_scheduled", Data: []byte(`{}`)})
		p.ScheduleActivities = []store.ActivityTask{{
			Seq: seq, ActivityType: "charge", TaskQueue: activityQueue, Input: []byte(`{}`),
			StartToClose: time.Minute, ScheduledAt: now, ReadyAt: now,
		}}
		if eager {
			p.EagerActivities, p.EagerOwner = []int64{seq}, "bench"
		}
		committed, err := st.CompleteWorkflowTask(ctx, p)
		if err != nil {
			return err
		}
		count("CompleteWorkflowTask")
		act := committed.Activities
		if !eager {
			act, err = st.ClaimActivityTasks(ctx, store.ClaimParams{TaskQueue: activityQueue, Owner: "bench", Limit: 1, Now: now})
			if err != nil {
				return err
			}
			count("ClaimActivityTasks")
		}
		if len(act) != 1 {
			return fmt.Errorf("activity %d: %d tasks leased", seq, len(act))
		}
		ap := store.CompleteActivityTaskParams{
			RunID: id, Seq: seq, Token: act[0].Token,
			Attempt: store.ActivityAttempt{Attempt: 1, ActivityType: "charge", Owner: "bench", StartedAt: now, EndedAt: now, Outcome: "completed"},
			Item:    store.NewInboxItem{Type: "activity_completed", Data: []byte(`{"result":1}`)}, Now: now,
		}
		if eager {
			ap.Eager = &lease
		}
		completed, err := st.CompleteActivityTask(ctx, ap)
		if err != nil {
			return err
		}
		count("CompleteActivityTask")
		wt = completed.Task
		if eager && wt == nil {
			return fmt.Errorf("activity %d: no eager workflow task", seq)
		}
	}
	if wt == nil {
		if wt, err = claimWorkflowTask(); err != nil {
			return err
		}
	}
	return closeRun(ctx, st, wt, now, count)
}

// cachedWorkflow runs the workflow of sequentialWorkflow as the engine
// does when the run stays cached in the process that runs its
// activities: in 5 store calls instead of eager dispatch's 8. The start
// leases the first workflow task and its commit the first activity; then
// each activity's completion commits, in the same call, the workflow task
// it wakes, which leases the next activity, or completes the run after
// the third.
func cachedWorkflow(ctx context.Context, st store.Store, id string, now time.Time, count func(method string)) error {
	queue, activityQueue := "q-"+id, "aq-"+id
	res, err := st.CreateRun(ctx, store.CreateRunParams{
		RunID: id, WorkflowID: "wf-" + id, WorkflowType: "order", TaskQueue: queue,
		Input: []byte(`{"order":1}`), StartEvent: store.Event{Type: "started", Data: []byte(`{}`)}, Now: now,
		Eager: &store.EagerLease{Owner: "bench", LeaseUntil: now.Add(time.Minute)},
	})
	if err != nil {
		return err
	}
	if res.Task == nil {
		return errors.New("create run: no eager task")
	}
	count("CreateRun")
	// schedule adds the event that schedules activity seq to p, leasing it.
	schedule := func(p *store.CompleteWorkflowTaskParams, seq int64) {
		p.Events = append(p.Events, store.Event{ID: seq, Type: "activity_scheduled", Data: []byte(`{}`)})
		p.ScheduleActivities = []store.ActivityTask{{
			Seq: seq, ActivityType: "charge", TaskQueue: activityQueue, Input: []byte(`{}`),
			StartToClose: time.Minute, ScheduledAt: now, ReadyAt: now,
		}}
		p.EagerActivities, p.EagerOwner = []int64{seq}, "bench"
	}
	p := store.CompleteWorkflowTaskParams{RunID: id, Token: res.Task.Token, ExpectedHistoryLen: 1, Now: now}
	schedule(&p, 2)
	committed, err := st.CompleteWorkflowTask(ctx, p)
	if err != nil {
		return err
	}
	count("CompleteWorkflowTask")
	for n := int64(2); ; n += 2 {
		if len(committed.Activities) != 1 {
			return fmt.Errorf("activity %d: %d tasks leased", n, len(committed.Activities))
		}
		a := committed.Activities[0]
		ap := store.CompleteActivityTaskParams{
			RunID: id, Seq: a.Seq, Token: a.Token,
			Attempt: store.ActivityAttempt{Attempt: 1, ActivityType: "charge", Owner: "bench", StartedAt: now, EndedAt: now, Outcome: "completed"},
			Item:    store.NewInboxItem{Type: "activity_completed", Data: []byte(`{"result":1}`)}, Now: now,
		}
		p := store.CompleteWorkflowTaskParams{
			RunID: id, ExpectedHistoryLen: n, Now: now,
			Events: []store.Event{{ID: n + 1, Type: ap.Item.Type, Time: now, Data: ap.Item.Data}},
		}
		last := n == 6
		if last {
			p.Events = append(p.Events, store.Event{ID: n + 2, Type: "completed", Data: []byte(`"ok"`)})
			p.Close = &store.CloseRun{Status: store.StatusCompleted, Result: []byte(`"ok"`)}
		} else {
			schedule(&p, n+2)
		}
		committed, err = st.CompleteActivityWithWorkflowTask(ctx, store.CompleteActivityWithWorkflowTaskParams{Activity: ap, Workflow: p})
		if err != nil {
			return err
		}
		count("CompleteActivityWithWorkflowTask")
		if last {
			return nil
		}
	}
}

// Every Store method is one round trip once its statements are prepared on
// the connection.
func TestRoundTrips(t *testing.T) {
	t.Parallel()
	rt := &roundTrips{}
	st := tracedStore(t, 1, rt) // one connection: statements prepared once
	ctx := t.Context()
	nop := func(string) {}
	require.NoError(t, workflow(ctx, st, "warm-up", base, nop))

	last := rt.n.Load()
	oneEach := func(method string) {
		t.Helper()
		n := rt.n.Load()
		require.EqualValues(t, 1, n-last, "%s round trips", method)
		last = n
	}
	require.NoError(t, workflow(ctx, st, "measured", base, oneEach))

	// The eager fast paths too, with as many calls as they are meant to
	// save.
	calls := 0
	countCalls := func(method string) { calls++; oneEach(method) }
	require.NoError(t, eagerWorkflow(ctx, st, "eager-warm-up", base, nop))
	last = rt.n.Load()
	require.NoError(t, eagerWorkflow(ctx, st, "eager-measured", base, countCalls))
	require.Equal(t, 6, calls)
	for _, eager := range []bool{false, true} {
		name := fmt.Sprint("sequential-", eager)
		require.NoError(t, sequentialWorkflow(ctx, st, name+"-warm-up", base, eager, nop))
		last, calls = rt.n.Load(), 0
		require.NoError(t, sequentialWorkflow(ctx, st, name+"-measured", base, eager, countCalls))
		require.Equal(t, map[bool]int{false: 15, true: 8}[eager], calls)
	}
	require.NoError(t, cachedWorkflow(ctx, st, "cached-warm-up", base, nop))
	last, calls = rt.n.Load(), 0
	require.NoError(t, cachedWorkflow(ctx, st, "cached-measured", base, countCalls))
	require.Equal(t, 5, calls)

	// The other methods, warmed up once and then counted.
	for _, count := range []func(string){nop, oneEach} {
		id := fmt.Sprint("other-", rt.n.Load())
		_, err := st.CreateRun(ctx, store.CreateRunParams{RunID: id, WorkflowID: id, TaskQueue: id, Now: base})
		require.NoError(t, err)
		last = rt.n.Load()
		_, err = st.Signal(ctx, store.SignalParams{WorkflowID: id, Item: store.NewInboxItem{Type: "s"}, RequestID: "x", Now: base})
		require.NoError(t, err)
		count("Signal")
		wts, err := st.ClaimWorkflowTasks(ctx, store.ClaimParams{TaskQueue: id, Limit: 1, Now: base, LeaseUntil: at(time.Minute)})
		require.NoError(t, err)
		count("ClaimWorkflowTasks")
		require.NoError(t, st.FailWorkflowTask(ctx, store.FailWorkflowTaskParams{
			RunID: id, Token: wts[0].Token, RetryAt: at(time.Second), Failure: "boom", Now: base,
		}))
		count("FailWorkflowTask")
		require.NoError(t, st.RequestCancel(ctx, store.CancelParams{RunID: id, Item: store.NewInboxItem{Type: "c"}, Now: base}))
		count("RequestCancel")
		_, err = st.FireTimers(ctx, at(time.Hour), 10)
		require.NoError(t, err)
		count("FireTimers")
		_, _, err = st.NextWakeup(ctx)
		require.NoError(t, err)
		count("NextWakeup")
		_, err = st.ExpiredActivityTasks(ctx, at(time.Hour), 10)
		require.NoError(t, err)
		count("ExpiredActivityTasks")
		_, err = st.History(ctx, id, 0)
		require.NoError(t, err)
		count("History")
		_, err = st.GetRun(ctx, id)
		require.NoError(t, err)
		count("GetRun")
		_, err = st.GetLatestRun(ctx, id)
		require.NoError(t, err)
		count("GetLatestRun")
		_, err = st.ListRuns(ctx, store.ListRunsParams{WorkflowID: id})
		require.NoError(t, err)
		count("ListRuns")
		require.NoError(t, st.Terminate(ctx, store.TerminateParams{RunID: id, Now: base}))
		count("Terminate")
		_, err = st.DeleteClosedRuns(ctx, at(time.Hour), 100)
		require.NoError(t, err)
		count("DeleteClosedRuns")
	}
}

// BenchmarkWorkflow runs whole three-activity workflows (9 store calls,
// one round trip each), one after another and in parallel, and the same
// workflows through the eager fast paths (6 store calls).
func BenchmarkWorkflow(b *testing.B) {
	benchmarkWorkflows(b, map[string]workflowFunc{"": workflow, "Eager": eagerWorkflow})
}

// BenchmarkSequentialWorkflow runs workflows whose three activities run
// one after another: 15 store calls, 8 through the eager fast paths, or 5
// when each activity's completion also commits the workflow task it wakes
// (Cached).
func BenchmarkSequentialWorkflow(b *testing.B) {
	benchmarkWorkflows(b, map[string]workflowFunc{
		"": func(ctx context.Context, st store.Store, id string, now time.Time, count func(string)) error {
			return sequentialWorkflow(ctx, st, id, now, false, count)
		},
		"Eager": func(ctx context.Context, st store.Store, id string, now time.Time, count func(string)) error {
			return sequentialWorkflow(ctx, st, id, now, true, count)
		},
		"Cached": cachedWorkflow,
	})
}

type workflowFunc func(ctx context.Context, st store.Store, id string, now time.Time, count func(string)) error

// benchmarkWorkflows runs each workflow, by name prefix, one after another
// (Serial) and in parallel.
func benchmarkWorkflows(b *testing.B, workflows map[string]workflowFunc) {
	for _, prefix := range slices.Sorted(maps.Keys(workflows)) {
		for _, parallel := range []bool{false, true} {
			name := prefix + map[bool]string{false: "Serial", true: "Parallel"}[parallel]
			b.Run(name, func(b *testing.B) {
				rt := &roundTrips{}
				st := tracedStore(b, 16, rt)
				ctx := context.Background()
				var n atomic.Int64
				nop := func(string) {}
				run := func() {
					if err := workflows[prefix](ctx, st, fmt.Sprint("run-", n.Add(1)), base, nop); err != nil {
						b.Fatal(err)
					}
				}
				run() // prepare the statements
				rt.n.Store(0)
				rt.stmts.Store(0)
				b.ResetTimer()
				if parallel {
					b.SetParallelism(4)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							run()
						}
					})
				} else {
					for b.Loop() {
						run()
					}
				}
				b.ReportMetric(float64(rt.n.Load())/float64(b.N), "roundtrips/op")
				b.ReportMetric(float64(rt.stmts.Load())/float64(b.N), "statements/op")
			})
		}
	}
}
