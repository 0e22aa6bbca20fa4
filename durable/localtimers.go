package durable

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/keelhq/keel/durable/store"
)

// localTimers indexes the durable timers, falling due soon, of runs that
// this process has cached, so that the timer loop can fire each one
// together with the workflow task it wakes, in one commit
// (store.FireTimerWithWorkflowTask), instead of through FireTimers, a claim
// and a commit. An entry is only a hint: the timer stays in the store,
// which fires it the ordinary way whenever the fast path does not.
type localTimers struct {
	mu sync.Mutex
	h  timerHeap
}

// localTimer is a timer of a cached run.
type localTimer struct {
	runID  string
	seq    int64
	fireAt time.Time
	item   store.NewInboxItem
}

const (
	// localTimerHorizon: timers due later than this are left to the store
	// (their run is unlikely to stay cached so long).
	localTimerHorizon = time.Minute
	// localTimerLimit bounds the index; beyond it, timers are left to the
	// store.
	localTimerLimit = 10_000
)

// add indexes the timers a run's task started, if they fall due within
// localTimerHorizon of now.
func (lt *localTimers) add(runID string, timers []store.Timer, now time.Time) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	for _, t := range timers {
		if t.Item.Type != EventTimerFired || t.FireAt.Sub(now) > localTimerHorizon || len(lt.h) >= localTimerLimit {
			continue
		}
		heap.Push(&lt.h, localTimer{runID: runID, seq: t.Seq, fireAt: t.FireAt, item: t.Item})
	}
}

// due removes and returns the timers due at now.
func (lt *localTimers) due(now time.Time) []localTimer {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	var out []localTimer
	for len(lt.h) > 0 && !lt.h[0].fireAt.After(now) {
		out = append(out, heap.Pop(&lt.h).(localTimer))
	}
	return out
}

// timerHeap orders timers by fire time (container/heap).
type timerHeap []localTimer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].fireAt.Before(h[j].fireAt) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(localTimer)) }
func (h *timerHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// fireLocalTimers fires the due timers of cached runs, each with the
// workflow task it wakes, in parallel on the runs' local workers, and
// returns once all are done; FireTimers then fires whatever is left.
func (e *Engine) fireLocalTimers(ctx context.Context) {
	now := e.clock.Now()
	due := e.localTimers.due(now)
	if len(due) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, lt := range due {
		rs := e.cache.take(lt.runID)
		if rs == nil {
			continue // evicted: the store fires it
		}
		if _, pending := rs.pendingTimers[lt.seq]; !pending {
			e.cache.put(rs) // fired or canceled already
			continue
		}
		w := e.localWorker(rs.info.TaskQueue)
		if w == nil || !w.tryAcquire(w.wfSem) {
			e.cache.put(rs)
			continue
		}
		if !w.track(&w.wfWG) {
			<-w.wfSem
			rs.close()
			continue
		}
		wg.Go(func() {
			defer func() { <-w.wfSem; w.wfWG.Done() }()
			w.fireOnCached(ctx, rs, lt, now)
		})
	}
	wg.Wait()
}

// fireOnCached runs the workflow task that timer lt wakes on the cached run
// rs, and commits the fire and the task in one transaction. It consumes
// rs. When the task cannot be committed so, or the store refuses (the run
// is not idle, the timer is gone), rs is dropped and the timer is left to
// FireTimers: nothing was written.
func (w *Worker) fireOnCached(ctx context.Context, rs *runState, lt localTimer, now time.Time) {
	e := w.e
	base := rs.historyLen
	if !w.idleCommittable(rs, rs.applyInbox([]store.InboxItem{{Type: lt.item.Type, Data: lt.item.Data, Time: now}})) {
		return
	}
	err := e.commitOnce(ctx, rs, w.taskParams(rs, "", base), func(ctx context.Context, tp store.CompleteWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
		tp.Now = now
		return e.store.FireTimerWithWorkflowTask(ctx, store.FireTimerWithWorkflowTaskParams{Seq: lt.seq, Workflow: tp})
	})
	if err != nil && !errors.Is(err, store.ErrRunBusy) && ctx.Err() == nil {
		// Whether it committed or not, the store has the truth: the timer
		// fires the ordinary way if it is still there.
		e.logger.Warn("fire timer with workflow task", "run_id", lt.runID, "seq", lt.seq, "error", err)
	}
}
