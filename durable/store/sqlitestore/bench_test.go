package sqlitestore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/sqlitestore"
)

func openBench(b *testing.B) *sqlitestore.Store {
	b.Helper()
	s, err := sqlitestore.Open(filepath.Join(b.TempDir(), "bench.db"), nil)
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close() })
	return s
}

var benchInput = []byte(`{"customer":"c-123","amount":4200,"currency":"EUR"}`)

// BenchmarkCreateRun measures one CreateRun: one committed, fsynced
// transaction.
func BenchmarkCreateRun(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	now := time.Now()
	i := 0
	for b.Loop() {
		i++
		id := fmt.Sprintf("run-%d", i)
		_, err := s.CreateRun(ctx, store.CreateRunParams{
			RunID: id, WorkflowID: "wf-" + id, WorkflowType: "order", TaskQueue: "q",
			Input: benchInput, StartEvent: store.Event{Type: "started", Data: benchInput}, Now: now,
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWorkflow measures the store calls of a whole workflow with
// three sequential activities, as the engine makes them without fast
// paths: CreateRun, then per activity a workflow task claim and a commit
// scheduling it, an activity claim and its completion, then the final claim
// and closing commit. That is 15 calls, each a committed, fsynced
// transaction; it also reports the time per call.
func BenchmarkWorkflow(b *testing.B) {
	benchWorkflow(b, viaClaims)
}

// BenchmarkWorkflowEager measures the workflow of BenchmarkWorkflow through
// the eager-dispatch fast paths: CreateRun leases the first workflow task,
// each commit leases the activity it schedules, and each activity
// completion leases the next workflow task. That is 8 calls: CreateRun,
// then per activity a commit and a completion, then the closing commit.
func BenchmarkWorkflowEager(b *testing.B) {
	benchWorkflow(b, viaEager)
}

// BenchmarkWorkflowCombined measures the workflow of BenchmarkWorkflow
// with the eager fast paths and CompleteActivityWithWorkflowTask, which
// commits each activity's completion with the workflow task run on its
// result. That is 5 calls: CreateRun, the commit scheduling the first
// activity, then per activity one combined call, the last one closing the
// run.
func BenchmarkWorkflowCombined(b *testing.B) {
	benchWorkflow(b, viaCombined)
}

// dispatch is how runWorkflowOn moves a workflow forward.
type dispatch int

const (
	viaClaims   dispatch = iota // every task is claimed
	viaEager                    // eager leases instead of claims
	viaCombined                 // viaEager, and activity completions committed with the next workflow task
)

func benchWorkflow(b *testing.B, via dispatch) {
	s := openBench(b)
	ctx := context.Background()
	calls := 0
	i := 0
	for b.Loop() {
		i++
		calls += runWorkflowOn(b, ctx, s, fmt.Sprintf("run-%d", i), "q", via)
	}
	b.ReportMetric(float64(calls)/float64(i), "calls/op")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(calls), "µs/call")
}

// BenchmarkWorkflowParallel runs the workflow of BenchmarkWorkflow from 8
// goroutines per CPU at once; their commits share transactions and fsyncs.
func BenchmarkWorkflowParallel(b *testing.B) {
	benchWorkflowParallel(b, viaClaims)
}

// BenchmarkWorkflowEagerParallel runs the workflow of
// BenchmarkWorkflowEager from 8 goroutines per CPU at once.
func BenchmarkWorkflowEagerParallel(b *testing.B) {
	benchWorkflowParallel(b, viaEager)
}

// BenchmarkWorkflowCombinedParallel runs the workflow of
// BenchmarkWorkflowCombined from 8 goroutines per CPU at once.
func BenchmarkWorkflowCombinedParallel(b *testing.B) {
	benchWorkflowParallel(b, viaCombined)
}

func benchWorkflowParallel(b *testing.B, via dispatch) {
	s := openBench(b)
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(8) // × GOMAXPROCS goroutines
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("run-%d", next.Add(1))
			runWorkflowOn(b, ctx, s, id, "q-"+id, via)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "workflows/s")
}

// BenchmarkClaimCompleteRound measures one workflow task round trip: claim,
// then commit with two events and an activity.
func BenchmarkClaimCompleteRound(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	now := time.Now()
	const pre = 256
	next := 0
	create := func() {
		for range pre {
			next++
			id := fmt.Sprintf("run-%d", next)
			_, err := s.CreateRun(ctx, store.CreateRunParams{
				RunID: id, WorkflowID: "wf-" + id, WorkflowType: "order", TaskQueue: "q",
				Input: benchInput, StartEvent: store.Event{Type: "started", Data: benchInput}, Now: now,
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	left := 0
	for b.Loop() {
		if left == 0 {
			b.StopTimer()
			create()
			left = pre
			b.StartTimer()
		}
		left--
		tasks, err := s.ClaimWorkflowTasks(ctx, store.ClaimParams{TaskQueue: "q", Owner: "w", Limit: 1, Now: now, LeaseUntil: now.Add(time.Minute)})
		if err != nil || len(tasks) != 1 {
			b.Fatal(err, len(tasks))
		}
		wt := tasks[0]
		_, err = s.CompleteWorkflowTask(ctx, store.CompleteWorkflowTaskParams{
			RunID: wt.Run.RunID, Token: wt.Token, ExpectedHistoryLen: 1, Now: now,
			Events: []store.Event{{ID: 2, Type: "scheduled", Time: now, Data: benchInput}},
			ScheduleActivities: []store.ActivityTask{{
				Seq: 2, ActivityType: "charge", TaskQueue: "acts", Input: benchInput, StartToClose: time.Minute,
			}},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// runWorkflowOn drives one three-activity workflow through the store, with
// the run's workflow and activity tasks on task queues named after queue,
// and returns the number of store calls it made.
func runWorkflowOn(b *testing.B, ctx context.Context, s *sqlitestore.Store, id, queue string, via dispatch) int {
	now := time.Now()
	eager := via != viaClaims
	lease := &store.EagerLease{Owner: "w", LeaseUntil: now.Add(time.Minute)}
	create := store.CreateRunParams{
		RunID: id, WorkflowID: "wf-" + id, WorkflowType: "order", TaskQueue: queue,
		Input: benchInput, StartEvent: store.Event{Type: "started", Data: benchInput}, Now: now,
	}
	if eager {
		create.Eager = lease
	}
	created, err := s.CreateRun(ctx, create)
	calls := 1
	if err != nil {
		b.Fatal(err)
	}
	wt := created.Task // nil unless eager
	// done is the completion of the previous activity, when it is to be
	// committed with the workflow task (viaCombined), which then runs at
	// history length histLen.
	var done *store.CompleteActivityTaskParams
	histLen := int64(1)
	claimParams := store.ClaimParams{TaskQueue: queue, Owner: "w", Limit: 1, Now: now, LeaseUntil: now.Add(time.Minute)}
	for seq := int64(2); ; seq++ {
		var p store.CompleteWorkflowTaskParams
		if done != nil {
			p = store.CompleteWorkflowTaskParams{RunID: id, ExpectedHistoryLen: histLen, Now: now,
				Events: []store.Event{{ID: histLen + 1, Type: done.Item.Type, Time: now, Data: done.Item.Data}}}
		} else {
			if wt == nil {
				tasks, err := s.ClaimWorkflowTasks(ctx, claimParams)
				calls++
				if err != nil || len(tasks) != 1 {
					b.Fatal(err, len(tasks))
				}
				wt = &tasks[0]
			}
			p = store.CompleteWorkflowTaskParams{RunID: id, Token: wt.Token, ExpectedHistoryLen: wt.Run.HistoryLen, Now: now}
			for i, it := range wt.Inbox {
				p.Events = append(p.Events, store.Event{ID: wt.Run.HistoryLen + int64(i) + 1, Type: it.Type, Time: it.Time, Data: it.Data})
				p.InboxUpTo = it.ID
			}
		}
		n := p.ExpectedHistoryLen + int64(len(p.Events)) + 1
		if seq == 5 {
			p.Events = append(p.Events, store.Event{ID: n, Type: "completed", Time: now, Data: benchInput})
			p.Close = &store.CloseRun{Status: store.StatusCompleted, Result: benchInput}
		} else {
			p.Events = append(p.Events, store.Event{ID: n, Type: "scheduled", Time: now, Data: benchInput})
			p.ScheduleActivities = []store.ActivityTask{{
				Seq: seq, ActivityType: "charge", TaskQueue: "acts-" + queue, Input: benchInput,
				StartToClose: time.Minute, ScheduledAt: now, ReadyAt: now,
			}}
			if eager {
				p.EagerActivities, p.EagerOwner = []int64{seq}, "w"
			}
		}
		var res store.CompleteWorkflowTaskResult
		if done != nil {
			res, err = s.CompleteActivityWithWorkflowTask(ctx, store.CompleteActivityWithWorkflowTaskParams{Activity: *done, Workflow: p})
		} else {
			res, err = s.CompleteWorkflowTask(ctx, p)
		}
		calls++
		if err != nil {
			b.Fatal(err)
		}
		if p.Close != nil {
			return calls
		}
		histLen = n
		var a store.ActivityTask
		if eager {
			if len(res.Activities) != 1 {
				b.Fatalf("%d eager activities, want 1", len(res.Activities))
			}
			a = res.Activities[0]
		} else {
			acts, err := s.ClaimActivityTasks(ctx, store.ClaimParams{TaskQueue: "acts-" + queue, Owner: "w", Limit: 1, Now: now})
			calls++
			if err != nil || len(acts) != 1 {
				b.Fatal(err, len(acts))
			}
			a = acts[0]
		}
		cp := store.CompleteActivityTaskParams{
			RunID: id, Seq: a.Seq, Token: a.Token, Now: now,
			Attempt: store.ActivityAttempt{Attempt: a.Attempt, ActivityType: a.ActivityType, Owner: "w",
				StartedAt: a.StartedAt, EndedAt: now, Outcome: "completed"},
			Item: store.NewInboxItem{Type: "activity_completed", Data: benchInput},
		}
		if via == viaCombined {
			done, wt = &cp, nil
			continue
		}
		if eager {
			cp.Eager = lease
		}
		completed, err := s.CompleteActivityTask(ctx, cp)
		calls++
		if err != nil {
			b.Fatal(err)
		}
		if wt = completed.Task; eager && wt == nil {
			b.Fatal("no eager workflow task")
		}
	}
}
