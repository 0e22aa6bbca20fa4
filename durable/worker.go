package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/keelhq/keel/durable/store"
)

// WorkerOptions configure a worker on one task queue.
type WorkerOptions struct {
	// TaskQueue to poll. Optional; default "default".
	TaskQueue string
	// MaxConcurrentWorkflowTasks bounds workflow tasks run at once.
	// Optional; default 16.
	MaxConcurrentWorkflowTasks int
	// MaxConcurrentActivities bounds activity attempts run at once.
	// Optional; default 64.
	MaxConcurrentActivities int
}

// Worker executes the workflow and activity tasks of one task queue. Create
// workers with Engine.NewWorker before Engine.Start.
type Worker struct {
	e     *Engine
	opts  WorkerOptions
	wfWG  sync.WaitGroup
	acWG  sync.WaitGroup
	wfSem chan struct{} // one token per running workflow task
	acSem chan struct{} // one token per running activity attempt
	// runCtx is the engine's run context while started; nil before.
	runCtx context.Context
	// stopping is set, under mu, before Stop waits for in-flight tasks.
	stopping bool

	mu        sync.Mutex
	acCancels map[*activityCtx]context.CancelFunc
}

// NewWorker adds a worker for a task queue; it runs from Engine.Start to
// Engine.Stop. opts may be nil.
func (e *Engine) NewWorker(opts *WorkerOptions) *Worker {
	o := WorkerOptions{}
	if opts != nil {
		o = *opts
	}
	if o.TaskQueue == "" {
		o.TaskQueue = "default"
	}
	if o.MaxConcurrentWorkflowTasks <= 0 {
		o.MaxConcurrentWorkflowTasks = 16
	}
	if o.MaxConcurrentActivities <= 0 {
		o.MaxConcurrentActivities = 64
	}
	w := &Worker{
		e:         e,
		opts:      o,
		wfSem:     make(chan struct{}, o.MaxConcurrentWorkflowTasks),
		acSem:     make(chan struct{}, o.MaxConcurrentActivities),
		acCancels: map[*activityCtx]context.CancelFunc{},
	}
	e.mu.Lock()
	e.workers = append(e.workers, w)
	e.mu.Unlock()
	return w
}

// Start starts the engine's workers and its timer loop. Cancelling ctx stops
// them as Stop does, without a deadline.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return errors.New("durable: engine already started")
	}
	e.started = true
	workers := append([]*Worker(nil), e.workers...)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.stop = cancel
	e.stopped = make(chan struct{})
	stopped := e.stopped
	e.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.timerLoop(runCtx) }()
	for _, w := range workers {
		w.mu.Lock()
		w.runCtx = runCtx
		w.mu.Unlock()
		wg.Add(2)
		go func() { defer wg.Done(); w.pollWorkflowTasks(runCtx) }()
		go func() { defer wg.Done(); w.pollActivities(runCtx) }()
	}
	if n, ok := e.raw.(notifier); ok {
		ch := n.Notifications(runCtx)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range ch {
				if q, ok := strings.CutPrefix(name, "w/"); ok {
					e.notifyQueue(q)
				} else if q, ok := strings.CutPrefix(name, "a/"); ok {
					e.notifyActivityQueue(q)
				} else {
					e.notifyQueue(name)
					e.notifyActivityQueue(name)
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		for _, w := range workers {
			w.mu.Lock()
			w.stopping = true
			w.mu.Unlock()
		}
		for _, w := range workers {
			w.wfWG.Wait()
			w.acWG.Wait()
		}
		e.cache.purge()
		close(stopped)
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = e.Stop(context.Background())
		case <-stopped:
		}
	}()
	return nil
}

// Stop stops polling and waits for in-flight tasks to finish. If ctx ends
// first, running activities are canceled; their tasks are released for
// another worker to retry. Stop returns once every worker goroutine is gone.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	started, stop, stopped := e.started, e.stop, e.stopped
	e.mu.Unlock()
	if !started {
		return nil
	}
	stop()
	select {
	case <-stopped:
		return nil
	case <-ctx.Done():
	}
	e.mu.Lock()
	workers := append([]*Worker(nil), e.workers...)
	e.mu.Unlock()
	for _, w := range workers {
		w.cancelActivities()
	}
	<-stopped
	return ctx.Err()
}

// Stopped is closed once a started engine has stopped; it is nil before
// Start.
func (e *Engine) Stopped() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stopped
}

func (w *Worker) cancelActivities() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, cancel := range w.acCancels {
		cancel()
	}
}

// pollWorkflowTasks claims and runs workflow tasks until ctx ends.
func (w *Worker) pollWorkflowTasks(ctx context.Context) {
	e := w.e
	pollLoop(ctx, w, w.wfSem, "w/", "claim workflow tasks", func(limit int) ([]store.WorkflowTask, error) {
		now := e.clock.Now()
		return e.store.ClaimWorkflowTasks(ctx, store.ClaimParams{
			TaskQueue: w.opts.TaskQueue, Owner: e.cfg.Identity, Limit: limit, Now: now,
			LeaseUntil: now.Add(e.cfg.WorkflowTaskTimeout),
		})
	}, w.dispatchWorkflowTask)
}

// pollActivities claims and runs activity tasks until ctx ends.
func (w *Worker) pollActivities(ctx context.Context) {
	e := w.e
	pollLoop(ctx, w, w.acSem, "a/", "claim activity tasks", func(limit int) ([]store.ActivityTask, error) {
		return e.store.ClaimActivityTasks(ctx, store.ClaimParams{
			TaskQueue: w.opts.TaskQueue, Owner: e.cfg.Identity, Limit: limit, Now: e.clock.Now(),
		})
	}, w.dispatchActivity)
}

// pollLoop claims as many tasks as sem has free slots and dispatches each
// with a slot taken, until ctx ends. Between claims that leave slots free it
// waits for a local wake-up (kind + task queue) or the slow poll.
func pollLoop[T any](ctx context.Context, w *Worker, sem chan struct{}, kind, what string,
	claim func(limit int) ([]T, error), dispatch func(T)) {
	e := w.e
	wake := e.queueChan(kind + w.opts.TaskQueue)
	for ctx.Err() == nil {
		free := cap(sem) - len(sem)
		if free == 0 {
			// Wait for a slot.
			select {
			case sem <- struct{}{}:
				<-sem
			case <-ctx.Done():
			}
			continue
		}
		tasks, err := claim(free)
		if err != nil && ctx.Err() == nil {
			e.logger.Error(what, "task_queue", w.opts.TaskQueue, "error", err)
		}
		for _, t := range tasks {
			sem <- struct{}{}
			dispatch(t)
		}
		if len(tasks) == free {
			continue
		}
		select {
		case <-wake:
		case <-time.After(e.cfg.PollInterval):
		case <-ctx.Done():
		}
	}
}

// notifier is implemented by stores that push wake-ups from other
// processes (pgstore's LISTEN/NOTIFY). Each value the channel receives
// names a task queue and, by its prefix, the kind of task that may have
// become runnable on it: "w/<queue>" wakes the queue's workflow task
// pollers, "a/<queue>" its activity pollers. Any other value is a bare
// queue name and wakes both.
type notifier interface {
	Notifications(ctx context.Context) <-chan string
}

// dispatchWorkflowTask runs a claimed task in a new goroutine; the caller
// holds a wfSem token, which is given back when the task is done. Once the
// worker is stopping the task is not run: its lease expires and another
// worker takes it.
func (w *Worker) dispatchWorkflowTask(t store.WorkflowTask) { w.dispatchTask(t, nil) }

// dispatchNewRunTask dispatches the first workflow task of a run this
// process has just created (eagerly leased to it), whose history is start
// alone, as written: the task starts from it instead of reading it back.
func (w *Worker) dispatchNewRunTask(t store.WorkflowTask, start store.Event) {
	var history []store.Event
	if t.Run.HistoryLen == 1 && start.ID == 1 {
		history = []store.Event{start}
	}
	w.dispatchTask(t, history)
}

// dispatchTask is dispatchWorkflowTask; history, when not nil, is the
// run's whole history, already known to the caller.
func (w *Worker) dispatchTask(t store.WorkflowTask, history []store.Event) {
	if !w.track(&w.wfWG) {
		<-w.wfSem
		now := w.e.clock.Now()
		_ = w.e.store.FailWorkflowTask(context.Background(), store.FailWorkflowTaskParams{
			RunID: t.Run.RunID, Token: t.Token, RetryAt: now, Now: now,
		})
		return
	}
	go func() {
		defer func() { <-w.wfSem; w.wfWG.Done() }()
		w.runWorkflowTask(context.Background(), t, history)
	}()
}

// dispatchActivity is dispatchWorkflowTask for an activity.
func (w *Worker) dispatchActivity(t store.ActivityTask) {
	if !w.track(&w.acWG) {
		<-w.acSem
		now := w.e.clock.Now()
		_ = w.e.store.RetryActivityTask(context.Background(), store.RetryActivityTaskParams{
			RunID: t.RunID, Seq: t.Seq, Token: t.Token, RetryAt: now, Now: now,
			Attempt: store.ActivityAttempt{RunID: t.RunID, Seq: t.Seq, Attempt: t.Attempt, ActivityType: t.ActivityType,
				Owner: w.e.cfg.Identity, StartedAt: t.StartedAt, EndedAt: now, Outcome: "canceled", Error: "worker shutting down"},
		})
		return
	}
	go func() {
		defer func() { <-w.acSem; w.acWG.Done() }()
		w.runActivity(t)
	}()
}

// track adds one to wg unless the worker is stopping.
func (w *Worker) track(wg *sync.WaitGroup) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopping {
		return false
	}
	wg.Add(1)
	return true
}

// tryAcquire takes a token of sem if the worker is running and one is free.
func (w *Worker) tryAcquire(sem chan struct{}) bool {
	w.mu.Lock()
	running := w.runCtx != nil && w.runCtx.Err() == nil
	w.mu.Unlock()
	if !running {
		return false
	}
	select {
	case sem <- struct{}{}:
		return true
	default:
		return false
	}
}

// localWorker returns this engine's worker for a task queue, or nil.
func (e *Engine) localWorker(queue string) *Worker {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, w := range e.workers {
		if w.opts.TaskQueue == queue {
			return w
		}
	}
	return nil
}

// eagerLease returns the lease to request for a task created by this
// process, or nil.
func (e *Engine) eagerLease() *store.EagerLease {
	return &store.EagerLease{Owner: e.cfg.Identity, LeaseUntil: e.clock.Now().Add(e.cfg.WorkflowTaskTimeout)}
}

// startWithFirstTask starts a run with its first workflow task, which it
// runs here, on the start event alone, before anything is written: nobody
// can know of the run yet, so nothing but the start can be in its inbox.
// The caller holds a wfSem slot, which startWithFirstTask takes over when
// done. Usually the start and the task's output are committed together
// (CreateRunParams.FirstTask). A task that needs a workflow task row of its
// own (it starts children, makes external requests or continues as new) is
// committed as a claimed task is, right after a start that leases the task
// to this process: its code still runs once. done is false when the code
// failed or the history is too large; nothing was written then, and the
// caller starts the run the ordinary way, whose task runs the code again
// and handles the outcome as always. start is the start event's data, as
// encoded in p.StartEvent.
func (w *Worker) startWithFirstTask(ctx context.Context, p store.CreateRunParams, start *eventData) (res store.CreateRunResult, done bool, err error) {
	e := w.e
	if !w.track(&w.wfWG) {
		return res, false, nil
	}
	defer w.wfWG.Done()
	def := e.workflowDef(p.WorkflowType)
	rs := newRunState(e, def, store.Run{
		RunID: p.RunID, WorkflowID: p.WorkflowID, WorkflowType: p.WorkflowType, TaskQueue: p.TaskQueue,
		Status: store.StatusRunning, Input: p.Input, HistoryLen: 1, HistoryBytes: int64(len(p.StartEvent.Data)),
		SearchAttributes: p.SearchAttributes, Memo: p.Memo, CreatedAt: p.Now, UpdatedAt: p.Now,
	})
	if err := rs.replayStart(p.StartEvent, start); err != nil || w.checkLimits(rs) != nil {
		rs.close()
		return res, false, nil
	}
	if needsWorkflowTask(rs) {
		res, err = w.startLeased(ctx, p, rs)
		return res, true, err
	}
	defer func() { <-w.wfSem }()
	err = e.commitOnce(ctx, rs, w.taskParams(rs, "", 1), func(ctx context.Context, first store.CompleteWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
		p.FirstTask = &first
		var err error
		if res, err = e.store.CreateRun(ctx, p); err == nil && !res.Created {
			err = errNotCreated
		}
		return store.CompleteWorkflowTaskResult{Activities: res.Activities}, err
	})
	if errors.Is(err, errNotCreated) {
		err = nil // the workflow ID's running run is in res
	}
	return res, true, err
}

// startLeased writes run p with its first workflow task leased to this
// process, and commits rs, that task already run, as a claimed task's
// output, on a goroutine that takes over the caller's wfSem slot.
func (w *Worker) startLeased(ctx context.Context, p store.CreateRunParams, rs *runState) (store.CreateRunResult, error) {
	e := w.e
	p.Eager = e.eagerLease()
	res, err := e.store.CreateRun(ctx, p)
	if err != nil || res.Task == nil {
		// Nothing was written, or the workflow ID's running run is in res.
		rs.close()
		<-w.wfSem
		return res, err
	}
	t := *res.Task
	if !w.track(&w.wfWG) {
		rs.close()
		<-w.wfSem
		now := e.clock.Now()
		_ = e.store.FailWorkflowTask(context.Background(), store.FailWorkflowTaskParams{
			RunID: t.Run.RunID, Token: t.Token, RetryAt: now, Now: now,
		})
		return res, nil
	}
	go func() {
		defer func() { <-w.wfSem; w.wfWG.Done() }()
		w.commitClaimed(context.Background(), t, rs)
	}()
	return res, nil
}

// errNotCreated stops commitOnce when CreateRun found the workflow ID
// running: nothing was written.
var errNotCreated = errors.New("run not created")

// signalCached is the fast path of a signal to a run cached in this
// process, idle between tasks, whose task queue has a local worker with
// room: the workflow task the signal wakes runs here at once, and the
// signal and the task's commands are committed in one transaction
// (store.SignalWithWorkflowTask). done is false when nothing was written
// and the caller signals the ordinary way: the run is not cached here, is
// not idle in the store, has taken the request ID before, or its task
// cannot be committed so.
func (e *Engine) signalCached(ctx context.Context, workflowID string, p store.SignalParams) (done bool, err error) {
	var rs *runState
	if p.RunID != "" {
		rs = e.cache.take(p.RunID)
	} else {
		rs = e.cache.takeWorkflow(workflowID)
	}
	if rs == nil {
		return false, nil
	}
	w := e.localWorker(rs.info.TaskQueue)
	if w == nil || !w.tryAcquire(w.wfSem) {
		e.cache.put(rs)
		return false, nil
	}
	defer func() { <-w.wfSem }()
	if !w.track(&w.wfWG) {
		rs.close()
		return false, nil
	}
	defer w.wfWG.Done()
	base := rs.historyLen
	if !w.idleCommittable(rs, rs.applyInbox([]store.InboxItem{{Type: p.Item.Type, Data: p.Item.Data, Time: p.Now}})) {
		return false, nil
	}
	p.RunID, p.WorkflowID = rs.info.RunID, ""
	// One attempt only: after an error the outcome is unknown, and signalling
	// again the ordinary way could deliver the signal twice.
	err = e.commitOnce(ctx, rs, w.taskParams(rs, "", base), func(ctx context.Context, tp store.CompleteWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
		return e.store.SignalWithWorkflowTask(ctx, store.SignalWithWorkflowTaskParams{Signal: p, Workflow: tp})
	})
	if errors.Is(err, store.ErrRunBusy) {
		return false, nil
	}
	return true, err
}

// runWorkflowTask executes one workflow task: it restores the run (from the
// cache or by replay of its history: history if not nil, else read from
// the store), applies the inbox, and commits the outcome.
func (w *Worker) runWorkflowTask(ctx context.Context, t store.WorkflowTask, history []store.Event) {
	e := w.e
	def := e.workflowDef(t.Run.WorkflowType)
	if def == nil {
		w.failWorkflowTask(ctx, t, fmt.Errorf("%w: %q is not registered on worker %s", ErrUnknownWorkflow, t.Run.WorkflowType, e.cfg.Identity), false)
		return
	}
	rs := e.cache.take(t.Run.RunID)
	if rs != nil && rs.historyLen != t.Run.HistoryLen {
		rs.close()
		rs = nil
	}
	if rs == nil {
		rs = newRunState(e, def, t.Run)
		events, err := history, error(nil)
		if events == nil {
			events, err = e.store.History(ctx, t.Run.RunID, 0)
		}
		if err != nil {
			rs.close()
			w.releaseWorkflowTask(ctx, t, fmt.Errorf("load history: %w", err))
			return
		}
		if err := rs.replay(events); err != nil {
			rs.close()
			w.failWorkflowTask(ctx, t, err, true)
			return
		}
		if replayed := rs.historyLen - int64(len(rs.newEvents)); replayed != t.Run.HistoryLen {
			rs.close()
			w.releaseWorkflowTask(ctx, t, fmt.Errorf("history has %d events, run row says %d", replayed, t.Run.HistoryLen))
			return
		}
	}
	if err := rs.applyInbox(t.Inbox); err != nil {
		rs.close()
		w.failWorkflowTask(ctx, t, err, true)
		return
	}
	if err := w.checkLimits(rs); err != nil {
		rs.close()
		w.closeWithFailure(ctx, t, err)
		return
	}
	w.commitClaimed(ctx, t, rs)
}

// commitClaimed commits rs, the output of claimed workflow task t, and
// handles a refused commit.
func (w *Worker) commitClaimed(ctx context.Context, t store.WorkflowTask, rs *runState) {
	e := w.e
	p := w.taskParams(rs, t.Token, t.Run.HistoryLen)
	if n := len(t.Inbox); n > 0 {
		p.InboxUpTo = t.Inbox[n-1].ID
		if rs.closeRun != nil && rs.closeRun.Status == store.StatusContinuedAsNew {
			// Signals the run closed before applying go to its successor.
			p.InboxUpTo = rs.lastApplied
		}
	}
	err := w.commitTask(ctx, rs, p, e.store.CompleteWorkflowTask)
	switch {
	case errors.Is(err, store.ErrInboxPending):
		// Signals arrived while the run was closing: run the task again at
		// once, from history, with them in its inbox.
		now := e.clock.Now()
		if err := e.store.FailWorkflowTask(ctx, store.FailWorkflowTaskParams{
			RunID: t.Run.RunID, Token: t.Token, RetryAt: now, Now: now,
		}); err != nil {
			e.logger.Error("release workflow task", "run_id", t.Run.RunID, "error", err)
		}
		e.notifyQueue(t.Run.TaskQueue)
	case errors.Is(err, store.ErrLeaseLost):
		e.logger.Warn("workflow task lease lost; another worker took over", "run_id", t.Run.RunID)
	case err != nil:
		e.logger.Error("commit workflow task", "run_id", t.Run.RunID, "error", err)
	}
}

// taskParams returns the commit of a workflow task's output.
func (w *Worker) taskParams(rs *runState, token string, expectedLen int64) store.CompleteWorkflowTaskParams {
	return store.CompleteWorkflowTaskParams{
		RunID:              rs.info.RunID,
		Token:              token,
		ExpectedHistoryLen: expectedLen,
		Events:             rs.newEvents,
		ScheduleActivities: rs.activities,
		StartTimers:        rs.timers,
		CancelTimers:       rs.cancelTimers,
		CancelActivities:   rs.cancelActivities,
		Close:              rs.closeRun,
		StartChildren:      rs.startChildren,
		External:           rs.externalReqs,
		Now:                w.e.clock.Now(),

		UpsertSearchAttributes: rs.search.upsertJSON(),
	}
}

// commitTask commits a workflow task's output with write, leasing its new
// activities to local workers that have room (eager dispatch), and then
// dispatches them, wakes whoever else must act, and caches or closes the
// run. On error the run is evicted.
func (w *Worker) commitTask(ctx context.Context, rs *runState, p store.CompleteWorkflowTaskParams,
	write func(context.Context, store.CompleteWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error)) error {
	e := w.e
	return e.commitOnce(ctx, rs, p, func(ctx context.Context, p store.CompleteWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
		var res store.CompleteWorkflowTaskResult
		err := e.retryWrite(ctx, "complete workflow task", func() error {
			var err error
			res, err = write(ctx, p)
			return err
		})
		return res, err
	})
}

// commitOnce is commitTask without retries: write is called once.
func (e *Engine) commitOnce(ctx context.Context, rs *runState, p store.CompleteWorkflowTaskParams,
	write func(context.Context, store.CompleteWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error)) error {
	eager := e.leaseEagerActivities(rs, &p)
	res, err := write(ctx, p)
	if err != nil {
		releaseEager(eager)
		rs.close()
		return err
	}
	e.afterCommit(rs, eager, res)
	return nil
}

// leaseEagerActivities takes a slot of a local worker for each activity
// that rs's task schedules on a queue this process serves and has room
// for, and asks p to lease those activities to this process (eager
// dispatch). The caller gives the slots back with releaseEager if the
// commit fails, or hands them to afterCommit.
func (e *Engine) leaseEagerActivities(rs *runState, p *store.CompleteWorkflowTaskParams) map[int64]*Worker {
	eager := map[int64]*Worker{}
	if rs.closeRun == nil {
		for _, a := range rs.activities {
			if aw := e.localWorker(a.TaskQueue); aw != nil && aw.tryAcquire(aw.acSem) {
				eager[a.Seq] = aw
				p.EagerActivities = append(p.EagerActivities, a.Seq)
			}
		}
		p.EagerOwner = e.cfg.Identity
	}
	return eager
}

// releaseEager gives back the slots of leaseEagerActivities.
func releaseEager(eager map[int64]*Worker) {
	for _, aw := range eager {
		<-aw.acSem
	}
}

// afterCommit runs once rs's task has committed with result res: it caches
// the run (or closes it), dispatches the activities leased to this process
// and wakes whoever else must act.
func (e *Engine) afterCommit(rs *runState, eager map[int64]*Worker, res store.CompleteWorkflowTaskResult) {
	// Cache the run before its activities start, so that one finishing at
	// once finds it (the fast path of completeActivity). rs belongs to the
	// cache from here on.
	runID, queue := rs.info.RunID, rs.info.TaskQueue
	scheduled, newTimers, closed := rs.activities, rs.timers, rs.closeRun != nil
	timers := len(newTimers)
	var closedRun *store.Run // what this commit closed the run as, for its waiters
	if cl := rs.closeRun; cl != nil && cl.Status != store.StatusContinuedAsNew {
		closedRun = &store.Run{RunID: runID, Status: cl.Status, Result: cl.Result, Failure: cl.Failure}
	}
	if closed {
		rs.close()
	} else {
		rs.resetOutput()
		e.cache.put(rs)
		if timers > 0 {
			e.localTimers.add(runID, newTimers, e.clock.Now())
		}
	}
	for _, a := range res.Activities {
		if aw := eager[a.Seq]; aw != nil {
			delete(eager, a.Seq)
			aw.dispatchActivity(a)
		}
	}
	for _, aw := range eager {
		<-aw.acSem // not leased: give the slot back
	}
	if len(res.Activities) < len(scheduled) {
		for _, a := range scheduled {
			e.notifyActivityQueue(a.TaskQueue)
		}
	}
	if timers > 0 {
		// Activity deadlines need no wake-up: the timer loop finds them
		// within Config.PollInterval.
		e.wakeTimers()
	}
	if closed {
		e.notifyClosed(runID, closedRun)
	}
	if res.Pending {
		e.notifyQueue(queue)
	}
}

// runOnCompletion is the fast path for an activity whose run is cached here:
// the workflow task that the activity's outcome wakes is run at once, and
// the outcome and the task's commands are committed in one transaction. It
// consumes rs; d is the data the outcome's item was encoded from, or nil.
// done is false when the run was not idle (or the task cannot be committed
// this way); nothing was written then, and the caller records the outcome
// the ordinary way.
func (w *Worker) runOnCompletion(ctx context.Context, rs *runState, ap store.CompleteActivityTaskParams, d *eventData) (done bool, err error) {
	e := w.e
	base := rs.historyLen
	if !w.idleCommittable(rs, rs.applyItem(store.InboxItem{Type: ap.Item.Type, Data: ap.Item.Data, Time: ap.Now}, d)) {
		return false, nil
	}
	p := w.taskParams(rs, "", base)
	err = w.commitTask(ctx, rs, p, func(ctx context.Context, p store.CompleteWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
		return e.store.CompleteActivityWithWorkflowTask(ctx, store.CompleteActivityWithWorkflowTaskParams{Activity: ap, Workflow: p})
	})
	if errors.Is(err, store.ErrRunBusy) {
		return false, nil
	}
	return true, err
}

// idleCommittable reports whether the task that rs has just run on an
// input (applyErr is the outcome of applying it) can be committed without
// a workflow task of its own, as the fast paths commit it. It cannot when
// the code failed (a panic or non-determinism, which an ordinary task
// records), the history is over its limits, or the task starts children,
// makes external requests or continues as new (their answers come back
// through the run's own inbox, which needs a workflow task). It closes rs
// when it answers false: an ordinary task runs the input again from
// history.
func (w *Worker) idleCommittable(rs *runState, applyErr error) bool {
	if applyErr != nil || w.checkLimits(rs) != nil || needsWorkflowTask(rs) {
		rs.close()
		return false
	}
	return true
}

// needsWorkflowTask reports whether rs's task output needs the run's
// workflow task row to commit (store.CompleteWorkflowTaskParams.
// NeedsWorkflowTask): it starts children, makes external requests or
// continues as new.
func needsWorkflowTask(rs *runState) bool {
	return len(rs.startChildren) > 0 || len(rs.externalReqs) > 0 ||
		(rs.closeRun != nil && rs.closeRun.Status == store.StatusContinuedAsNew)
}

// checkLimits warns about a large history, and returns ErrHistoryTooLarge
// when this task would take the history past the failure limits.
func (w *Worker) checkLimits(rs *runState) error {
	l := w.e.limits
	if rs.historyLen >= l.FailEvents || rs.historyBytes >= l.FailBytes {
		return fmt.Errorf("%w: %d events, %d bytes (limits %d events, %d bytes)", ErrHistoryTooLarge, rs.historyLen, rs.historyBytes, l.FailEvents, l.FailBytes)
	}
	if !rs.warned && (rs.historyLen >= l.WarnEvents || rs.historyBytes >= l.WarnBytes) {
		rs.warned = true
		w.e.logger.Warn("workflow history is large; consider continue-as-new", "run_id", rs.info.RunID,
			"events", rs.historyLen, "bytes", rs.historyBytes)
	}
	return nil
}

// closeWithFailure fails the run in place of committing its task: the
// task's own events are dropped and one WorkflowFailed event is appended.
func (w *Worker) closeWithFailure(ctx context.Context, t store.WorkflowTask, cause error) {
	e := w.e
	f := toFailure(cause)
	cl := &store.CloseRun{Status: store.StatusFailed, Failure: mustJSON(f), Children: childrenClose(e.clock.Now())}
	cl.ParentItem = parentItem(t.Run.Parent, cl)
	_, err := e.store.CompleteWorkflowTask(ctx, store.CompleteWorkflowTaskParams{
		RunID:              t.Run.RunID,
		Token:              t.Token,
		ExpectedHistoryLen: t.Run.HistoryLen,
		Events: []store.Event{{ID: t.Run.HistoryLen + 1, Type: EventWorkflowFailed, Time: e.clock.Now(),
			Data: mustMarshal(&eventData{Failure: f})}},
		Close: cl,
		Now:   e.clock.Now(),
	})
	if err != nil {
		e.logger.Error("fail run", "run_id", t.Run.RunID, "error", err)
		return
	}
	e.notifyClosed(t.Run.RunID, nil)
}

// failWorkflowTask handles workflow code that panicked, was
// non-deterministic or is unknown: by policy the run is blocked (the task is
// retried with backoff) or failed.
func (w *Worker) failWorkflowTask(ctx context.Context, t store.WorkflowTask, cause error, codeFault bool) {
	e := w.e
	msg := cause.Error()
	var pe *PanicError
	if errors.As(cause, &pe) {
		msg += "\n" + pe.Stack
	}
	e.logger.Error("workflow task failed", "run_id", t.Run.RunID, "workflow_type", t.Run.WorkflowType, "attempt", t.Attempt, "error", msg)
	if codeFault && e.cfg.PanicPolicy == FailWorkflow {
		w.closeWithFailure(ctx, t, cause)
		return
	}
	delay := time.Second << min(t.Attempt-1, 6)
	now := e.clock.Now()
	err := e.store.FailWorkflowTask(ctx, store.FailWorkflowTaskParams{
		RunID: t.Run.RunID, Token: t.Token, RetryAt: now.Add(delay), Failure: msg, Now: now,
	})
	if err != nil {
		e.logger.Error("release failed workflow task", "run_id", t.Run.RunID, "error", err)
	}
	e.wakeTimers()
}

// releaseWorkflowTask gives a task back after an infrastructure error.
func (w *Worker) releaseWorkflowTask(ctx context.Context, t store.WorkflowTask, cause error) {
	e := w.e
	e.logger.Error("workflow task released", "run_id", t.Run.RunID, "error", cause)
	now := e.clock.Now()
	if err := e.store.FailWorkflowTask(ctx, store.FailWorkflowTaskParams{
		RunID: t.Run.RunID, Token: t.Token, RetryAt: now.Add(time.Second), Failure: cause.Error(), Now: now,
	}); err != nil {
		e.logger.Error("release workflow task", "run_id", t.Run.RunID, "error", err)
	}
	e.wakeTimers()
}

// runActivity executes one activity attempt and records its outcome.
func (w *Worker) runActivity(t store.ActivityTask) {
	e := w.e
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	ac := &activityCtx{
		e:      e,
		token:  t.Token,
		cancel: cancel,
		info: ActivityInfo{
			WorkflowID:       t.WorkflowID,
			RunID:            t.RunID,
			ActivityType:     t.ActivityType,
			Seq:              t.Seq,
			Attempt:          t.Attempt,
			IdempotencyKey:   fmt.Sprintf("%s-%d", t.RunID, t.Seq),
			ScheduledAt:      t.ScheduledAt,
			StartedAt:        t.StartedAt,
			HeartbeatDetails: t.HeartbeatDetails,
			HeartbeatTimeout: t.HeartbeatTimeout,
		},
	}
	w.mu.Lock()
	w.acCancels[ac] = cancel
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.acCancels, ac)
		w.mu.Unlock()
	}()

	ctx := context.WithValue(base, activityKey{}, ac)
	timedOut := false
	if t.StartToClose > 0 {
		deadline := t.StartedAt.Add(t.StartToClose)
		if !t.ScheduleToCloseDeadline.IsZero() && t.ScheduleToCloseDeadline.Before(deadline) {
			deadline = t.ScheduleToCloseDeadline
		}
		var c context.CancelFunc
		ctx, c = context.WithTimeout(ctx, deadline.Sub(e.clock.Now()))
		defer c()
	}

	var result []byte
	var err error
	if def := e.activityDef(t.ActivityType); def == nil {
		err = fmt.Errorf("%w: %q is not registered on worker %s", ErrUnknownActivity, t.ActivityType, e.cfg.Identity)
	} else {
		result, err = callActivity(ctx, def, t.Input)
		if err == nil && len(result) > e.limits.MaxPayloadBytes {
			err = NonRetryable(fmt.Errorf("result of activity %s: %w: %d bytes", t.ActivityType, ErrPayloadTooLarge, len(result)))
		}
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			timedOut = true
		}
	}
	shutdown := err != nil && base.Err() != nil && !ac.canceledByRun()
	w.recordOutcome(t, ac, result, err, timedOut, shutdown)
}

func callActivity(ctx context.Context, def *activityDef, input []byte) (result []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: fmt.Sprint(r), Stack: string(debug.Stack())}
		}
	}()
	return def.run(ctx, input)
}

// recordOutcome completes, retries or releases an activity task.
func (w *Worker) recordOutcome(t store.ActivityTask, ac *activityCtx, result []byte, runErr error, timedOut, shutdown bool) {
	e := w.e
	ctx := context.Background()
	now := e.clock.Now()
	att := store.ActivityAttempt{
		RunID: t.RunID, Seq: t.Seq, Attempt: t.Attempt, ActivityType: t.ActivityType,
		Owner: e.cfg.Identity, StartedAt: t.StartedAt, EndedAt: now, Outcome: "completed",
	}
	var err error
	switch {
	case runErr == nil:
		d := &eventData{Seq: t.Seq, Result: result, Attempt: t.Attempt}
		err = e.completeActivity(ctx, store.CompleteActivityTaskParams{
			RunID: t.RunID, Seq: t.Seq, Token: t.Token, Attempt: att, Now: now,
			Item: store.NewInboxItem{Type: EventActivityCompleted, Data: mustMarshal(d)},
		}, d)
	case shutdown:
		// The worker is stopping: give the task back at once.
		att.Outcome, att.Error = "canceled", "worker shutting down: "+runErr.Error()
		err = e.store.RetryActivityTask(ctx, store.RetryActivityTaskParams{
			RunID: t.RunID, Seq: t.Seq, Token: t.Token, Attempt: att, RetryAt: now, Now: now,
		})
	default:
		f := toFailure(runErr)
		att.Outcome, att.Error = "failed", runErr.Error()
		if timedOut {
			f = toFailure(&TimeoutError{Kind: "StartToClose"})
			att.Outcome = "timed_out"
		}
		if ac.canceledByRun() {
			f = toFailure(ErrCanceled)
			f.NonRetryable = true
			att.Outcome = "canceled"
		}
		err = e.failActivity(ctx, t, att, f, now)
	}
	if err != nil {
		if errors.Is(err, store.ErrLeaseLost) {
			e.logger.Warn("activity result dropped: lease lost", "run_id", t.RunID, "seq", t.Seq, "attempt", t.Attempt)
			return
		}
		e.logger.Error("record activity outcome", "run_id", t.RunID, "seq", t.Seq, "error", err)
	}
}

// failActivity retries a failed attempt by its policy, or records the
// activity as failed.
func (e *Engine) failActivity(ctx context.Context, t store.ActivityTask, att store.ActivityAttempt, f *failure, now time.Time) error {
	var policy RetryPolicy
	if len(t.Options) > 0 {
		if err := json.Unmarshal(t.Options, &policy); err != nil {
			f = toFailure(fmt.Errorf("decode retry policy: %w", err))
			f.NonRetryable = true
		}
	}
	if policy.retryable(f, t.Attempt) {
		// An error that says how long to wait (a rate limit's Retry-After)
		// is honoured when it asks for longer than the policy would wait.
		retryAt := now.Add(max(policy.delay(t.Attempt), f.RetryAfter))
		if t.ScheduleToCloseDeadline.IsZero() || retryAt.Before(t.ScheduleToCloseDeadline) {
			err := e.retryWrite(ctx, "retry activity", func() error {
				return e.store.RetryActivityTask(ctx, store.RetryActivityTaskParams{
					RunID: t.RunID, Seq: t.Seq, Token: t.Token, Attempt: att, RetryAt: retryAt, Now: now,
				})
			})
			if err == nil {
				e.wakeTimers()
			}
			return err
		}
	}
	return e.completeActivity(ctx, store.CompleteActivityTaskParams{
		RunID: t.RunID, Seq: t.Seq, Token: t.Token, Attempt: att, Now: now,
		Item: store.NewInboxItem{Type: EventActivityFailed, Data: mustMarshal(&eventData{Seq: t.Seq, Failure: f, Attempt: t.Attempt})},
	}, nil)
}

// completeActivity records an activity's outcome. When the run is cached in
// this process and its worker has room, the run's next workflow task is run
// here at once (committed with the outcome, or leased in the same
// transaction), with no poll in between; otherwise the local workflow
// pollers are woken to claim it. d is the data p.Item was encoded from, or
// nil: the cached run applies it without decoding the item again.
func (e *Engine) completeActivity(ctx context.Context, p store.CompleteActivityTaskParams, d *eventData) error {
	if rs := e.cache.take(p.RunID); rs != nil {
		if ww := e.localWorker(rs.info.TaskQueue); ww != nil && ww.tryAcquire(ww.wfSem) {
			done, err := ww.runOnCompletion(ctx, rs, p, d)
			<-ww.wfSem
			if done {
				return err
			}
		} else {
			e.cache.put(rs)
		}
	}
	var ww *Worker
	if queue, ok := e.cache.queueOf(p.RunID); ok {
		if ww = e.localWorker(queue); ww != nil && !ww.tryAcquire(ww.wfSem) {
			ww = nil
		}
	}
	if ww != nil {
		p.Eager = e.eagerLease()
	}
	var res store.CompleteActivityTaskResult
	err := e.retryWrite(ctx, "complete activity", func() error {
		var err error
		res, err = e.store.CompleteActivityTask(ctx, p)
		return err
	})
	switch {
	case err == nil && res.Task != nil && ww != nil:
		ww.dispatchWorkflowTask(*res.Task)
		return nil
	case ww != nil:
		<-ww.wfSem
	}
	if err == nil {
		e.notifyAllWorkflowQueues()
	}
	return err
}

// notifyAllWorkflowQueues wakes the local workflow pollers after an
// activity outcome, whose run's task queue the activity task does not name.
func (e *Engine) notifyAllWorkflowQueues() {
	e.mu.Lock()
	workers := append([]*Worker(nil), e.workers...)
	e.mu.Unlock()
	for _, w := range workers {
		e.notifyQueue(w.opts.TaskQueue)
	}
}

func (ac *activityCtx) canceledByRun() bool {
	ac.e.mu.Lock()
	defer ac.e.mu.Unlock()
	return ac.runCanceled
}

// heartbeat records a heartbeat of the running attempt.
func (e *Engine) heartbeat(ctx context.Context, ac *activityCtx, details any) error {
	var b []byte
	if details != nil {
		var err error
		if b, err = e.encode(details); err != nil {
			return fmt.Errorf("heartbeat: %w", err)
		}
	}
	res, err := e.store.HeartbeatActivityTask(ctx, store.HeartbeatParams{
		RunID: ac.info.RunID, Seq: ac.info.Seq, Token: ac.token, Details: b, Now: e.clock.Now(),
	})
	if err != nil {
		if errors.Is(err, store.ErrLeaseLost) {
			ac.cancel()
			return fmt.Errorf("heartbeat: %w", err)
		}
		return fmt.Errorf("heartbeat: %w", err)
	}
	if b != nil {
		ac.info.HeartbeatDetails = b
	}
	if res.CancelRequested {
		e.mu.Lock()
		ac.runCanceled = true
		e.mu.Unlock()
		ac.cancel()
		return ErrCanceled
	}
	return nil
}

// timerLoop fires due timers and times out expired activities, sleeping
// until the store's next wake-up.
func (e *Engine) timerLoop(ctx context.Context) {
	// due is true when the loop woke because something fell due (or on the
	// slow poll), rather than because a new timer was written: then delayed
	// tasks may have become claimable without a timer firing, and every
	// local poller is woken.
	due := true
	var lastRetention time.Time
	for ctx.Err() == nil {
		e.fireDue(ctx, due)
		if now := e.clock.Now(); e.cfg.Retention > 0 && now.Sub(lastRetention) >= min(e.cfg.Retention, time.Minute) {
			lastRetention = now
			e.applyRetention(ctx, now)
		}
		wait := e.cfg.PollInterval
		next, ok, err := e.store.NextWakeup(ctx)
		if err != nil && ctx.Err() == nil {
			e.logger.Error("next wakeup", "error", err)
		}
		var dueAt <-chan time.Time
		if ok {
			d := next.Sub(e.clock.Now())
			if d <= 0 {
				due = true
				continue // fell due while we looked
			}
			dueAt = e.clock.After(d)
		}
		select {
		case <-dueAt:
			due = true
		case <-e.wake:
			due = false
		case <-time.After(wait):
			due = true
		case <-ctx.Done():
		}
	}
}

// retainer is implemented by stores that can delete closed runs.
type retainer interface {
	DeleteClosedRuns(ctx context.Context, closedBefore time.Time, batchSize int) (int, error)
}

// applyRetention deletes the runs closed longer than Config.Retention ago.
func (e *Engine) applyRetention(ctx context.Context, now time.Time) {
	r, ok := e.raw.(retainer)
	if !ok {
		return
	}
	n, err := r.DeleteClosedRuns(ctx, now.Add(-e.cfg.Retention), 1000)
	if err != nil && ctx.Err() == nil {
		e.logger.Error("retention", "error", err)
	}
	if n > 0 {
		e.logger.Info("retention deleted closed runs", "runs", n, "closed_before", now.Add(-e.cfg.Retention))
	}
}

// fireDue fires timers and handles activity timeouts that are due now.
func (e *Engine) fireDue(ctx context.Context, due bool) {
	const batch = 256
	e.fireLocalTimers(ctx)
	woke := due
	for {
		queues, err := e.store.FireTimers(ctx, e.clock.Now(), batch)
		if err != nil {
			if ctx.Err() == nil {
				e.logger.Error("fire timers", "error", err)
			}
			break
		}
		for _, q := range queues {
			e.notifyQueue(q)
		}
		woke = woke || len(queues) > 0
		if len(queues) < batch {
			break
		}
	}
	for {
		expired, err := e.store.ExpiredActivityTasks(ctx, e.clock.Now(), batch)
		if err != nil {
			if ctx.Err() == nil {
				e.logger.Error("expired activities", "error", err)
			}
			break
		}
		for _, t := range expired {
			e.timeoutActivity(ctx, t)
		}
		woke = woke || len(expired) > 0
		if len(expired) < batch {
			break
		}
	}
	// Delayed tasks (retries, expired leases) may have become claimable.
	// A store that notifies has already sent a notification for each one
	// it made claimable, from the statement that did (FireTimers
	// acknowledges the wake-ups; a timed-out activity's retry or failure
	// is a write like any other), and the notifications wake exactly the
	// pollers concerned; waking every poller as well would only add claims
	// that find nothing (one per activity poller at every timer).
	if _, notifies := e.raw.(notifier); woke && !notifies {
		e.notifyAll()
	}
}

// timeoutActivity records a timed-out activity attempt and retries or fails
// the activity.
func (e *Engine) timeoutActivity(ctx context.Context, t store.ActivityTask) {
	now := e.clock.Now()
	kind := "StartToClose"
	final := false
	switch {
	case !t.ScheduleToCloseDeadline.IsZero() && !now.Before(t.ScheduleToCloseDeadline):
		kind, final = "ScheduleToClose", true
	case t.Token == "":
		kind, final = "ScheduleToStart", true
	case t.HeartbeatTimeout > 0 && (t.StartToClose == 0 || t.LeaseExpiresAt.Before(t.StartedAt.Add(t.StartToClose))):
		kind = "Heartbeat"
	}
	att := store.ActivityAttempt{
		RunID: t.RunID, Seq: t.Seq, Attempt: t.Attempt, ActivityType: t.ActivityType,
		Owner: t.Owner, StartedAt: t.StartedAt, EndedAt: now, Outcome: "timed_out", Error: kind + " timeout",
	}
	f := toFailure(&TimeoutError{Kind: kind})
	var err error
	if final {
		f.NonRetryable = true
		_, err = e.store.CompleteActivityTask(ctx, store.CompleteActivityTaskParams{
			RunID: t.RunID, Seq: t.Seq, Token: t.Token, Attempt: att, Now: now,
			Item: store.NewInboxItem{Type: EventActivityFailed, Data: mustMarshal(&eventData{Seq: t.Seq, Failure: f, Attempt: t.Attempt})},
		})
	} else {
		err = e.failActivity(ctx, t, att, f, now)
	}
	if err != nil && !errors.Is(err, store.ErrLeaseLost) {
		e.logger.Error("time out activity", "run_id", t.RunID, "seq", t.Seq, "error", err)
	}
}
