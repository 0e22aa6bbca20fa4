package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/keelhq/keel/durable/store"
)

// Clock is the engine's source of time. Tests inject a fake one (see
// durabletest.Clock) to run days of durable timers in milliseconds.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// PanicPolicy says what happens to a run whose workflow task fails because
// its code panicked or turned out non-deterministic.
type PanicPolicy int

const (
	// BlockWorkflow (the default) keeps the run open and retries the task
	// with backoff, so that fixed code deployed later resumes it. The error,
	// with its stack, is visible in RunInfo.LastTaskFailure.
	BlockWorkflow PanicPolicy = iota
	// FailWorkflow fails the run at once with the panic as its error.
	FailWorkflow
)

// Config configures an Engine. The zero value is valid.
type Config struct {
	// Codec, when set, transforms every payload and failure message before
	// it reaches the store, and back: compression, encryption (package
	// durable/codec). Optional; default none (plain JSON).
	Codec Codec
	// CacheSize is how many runs are kept in memory between workflow tasks,
	// so that a task need not replay the history. Optional; default 1000;
	// negative disables the cache (every task replays).
	CacheSize int
	// Identity names this process in leases and attempt records. Optional;
	// default hostname:pid.
	Identity string
	// Limits on payload and history sizes. Optional; see Limits.
	Limits Limits
	// Logger. Optional; default slog.Default().
	Logger *slog.Logger
	// PanicPolicy for workflow code that panics or is non-deterministic.
	// Optional; default BlockWorkflow.
	PanicPolicy PanicPolicy
	// PollInterval is the slow poll that finds work made runnable by other
	// processes. Optional; default 1s.
	PollInterval time.Duration
	// WorkflowTaskTimeout is the lease of a workflow task: a worker that
	// dies holding one delays the run this long. Optional; default 10s.
	WorkflowTaskTimeout time.Duration
	// DeadlockTimeout fails a workflow task whose code runs this long
	// without yielding to the engine (a DeadlockError). Optional; default 1s.
	DeadlockTimeout time.Duration
	// Retention deletes closed runs (with their history and attempts) once
	// they have been closed this long, in batches, from the timer loop of
	// a started engine. Optional; default 0 keeps runs forever.
	Retention time.Duration

	// Test holds settings for tests.
	Test TestConfig
}

// TestConfig holds test-only settings.
type TestConfig struct {
	// Clock replaces the wall clock. Optional.
	Clock Clock
}

// WithDefaults returns a copy of c with defaults filled in.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.CacheSize == 0 {
		out.CacheSize = 1000
	}
	if out.Identity == "" {
		host, _ := os.Hostname()
		out.Identity = host + ":" + strconv.Itoa(os.Getpid())
	}
	out.Limits = out.Limits.WithDefaults()
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	if out.PollInterval <= 0 {
		out.PollInterval = time.Second
	}
	if out.DeadlockTimeout <= 0 {
		out.DeadlockTimeout = time.Second
	}
	if out.WorkflowTaskTimeout <= 0 {
		out.WorkflowTaskTimeout = 10 * time.Second
	}
	if out.Test.Clock == nil {
		out.Test.Clock = realClock{}
	}
	return &out
}

// Engine is Keel's durable execution engine: the registry of workflows and
// activities, the client that starts and inspects runs, and the workers that
// execute them, all over one Store.
type Engine struct {
	store  store.Store // with Config.Codec applied
	raw    store.Store // as given to New
	cfg    *Config
	clock  Clock
	logger *slog.Logger
	limits Limits
	cache  *runCache
	// localTimers indexes the soon-due timers of cached runs.
	localTimers localTimers

	mu         sync.Mutex
	workflows  map[string]*workflowDef
	activities map[string]*activityDef
	workers    []*Worker
	waiters    map[string][]chan *store.Run
	queues     map[string]chan struct{} // wake-ups of local pollers by task queue
	started    bool

	wake    chan struct{} // wakes the timer loop
	stop    context.CancelFunc
	stopped chan struct{}
}

// New returns an Engine over st. cfg may be nil.
func New(st store.Store, cfg *Config) (*Engine, error) {
	if st == nil {
		return nil, errors.New("durable: New: nil store")
	}
	cfg = cfg.WithDefaults()
	if _, ok := st.(retainer); cfg.Retention > 0 && !ok {
		return nil, fmt.Errorf("durable: New: Config.Retention is set but %T cannot delete closed runs", st)
	}
	st = withFailpoints(st)
	raw := st
	if cfg.Codec != nil {
		st = &codecStore{Store: st, c: cfg.Codec}
	}
	e := &Engine{
		store:      st,
		raw:        raw,
		cfg:        cfg,
		clock:      cfg.Test.Clock,
		logger:     cfg.Logger,
		limits:     cfg.Limits,
		workflows:  map[string]*workflowDef{},
		activities: map[string]*activityDef{},
		waiters:    map[string][]chan *store.Run{},
		queues:     map[string]chan struct{}{},
		wake:       make(chan struct{}, 1),
	}
	e.cache = newRunCache(cfg.CacheSize)
	return e, nil
}

// Store returns the engine's store as the engine uses it: with
// Config.Codec, if set, applied, so that payloads read through it are
// decoded.
func (e *Engine) Store() store.Store { return e.store }

// Codec returns Config.Codec, the codec the engine's payloads are stored
// through, or nil when there is none; give it to what stores the same
// payloads elsewhere (hitl.Config.Codec defaults to it).
func (e *Engine) Codec() Codec { return e.cfg.Codec }

// Register adds workflows and activities. It fails on an empty or duplicate
// name.
func (e *Engine) Register(defs ...Definition) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range defs {
		r := d.registration()
		switch {
		case r.workflow != nil:
			if r.workflow.name == "" {
				return errors.New("durable: register: workflow with empty name")
			}
			if _, dup := e.workflows[r.workflow.name]; dup {
				return fmt.Errorf("%w: workflow %q", ErrAlreadyRegistered, r.workflow.name)
			}
			e.workflows[r.workflow.name] = r.workflow
		case r.activity != nil:
			if r.activity.name == "" {
				return errors.New("durable: register: activity with empty name")
			}
			if _, dup := e.activities[r.activity.name]; dup {
				return fmt.Errorf("%w: activity %q", ErrAlreadyRegistered, r.activity.name)
			}
			e.activities[r.activity.name] = r.activity
		}
	}
	return nil
}

// MustRegister is Register that panics on error, for use at startup.
func (e *Engine) MustRegister(defs ...Definition) {
	if err := e.Register(defs...); err != nil {
		panic(err)
	}
}

func (e *Engine) workflowDef(name string) *workflowDef {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.workflows[name]
}

func (e *Engine) activityDef(name string) *activityDef {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.activities[name]
}

// Status is a run's lifecycle state.
type Status = store.RunStatus

// Run statuses.
const (
	StatusRunning    = store.StatusRunning
	StatusCompleted  = store.StatusCompleted
	StatusFailed     = store.StatusFailed
	StatusCanceled   = store.StatusCanceled
	StatusTerminated = store.StatusTerminated
	// StatusContinuedAsNew: the run handed over to a new run of its
	// workflow ID; Result follows it.
	StatusContinuedAsNew = store.StatusContinuedAsNew
)

// RunInfo describes a run.
type RunInfo struct {
	WorkflowID    string    `json:"workflow_id"`
	RunID         string    `json:"run_id"`
	WorkflowType  string    `json:"workflow_type"`
	TaskQueue     string    `json:"task_queue"`
	Status        Status    `json:"status"`
	HistoryLength int64     `json:"history_length"`
	HistoryBytes  int64     `json:"history_bytes"`
	CreatedAt     time.Time `json:"created_at"`
	ClosedAt      time.Time `json:"closed_at,omitzero"`
	// CancelRequested is true once Cancel was accepted.
	CancelRequested bool `json:"cancel_requested,omitempty"`
	// LastTaskFailure is the error (with stack, for a panic) of the latest
	// failed workflow task of a blocked run.
	LastTaskFailure string `json:"last_task_failure,omitempty"`
	// SearchAttributes are the run's current search attributes: string,
	// []string, int64, float64, bool or time.Time values.
	SearchAttributes map[string]any `json:"search_attributes,omitempty"`
	// Memo is the run's memo, each value as JSON.
	Memo map[string]json.RawMessage `json:"memo,omitempty"`
	// Created is false when StartWorkflow returned a run that was already
	// running under the same workflow ID.
	Created bool `json:"-"`
}

func runInfo(r store.Run) RunInfo {
	return RunInfo{
		WorkflowID:      r.WorkflowID,
		RunID:           r.RunID,
		WorkflowType:    r.WorkflowType,
		TaskQueue:       r.TaskQueue,
		Status:          r.Status,
		HistoryLength:   r.HistoryLen,
		HistoryBytes:    r.HistoryBytes,
		CreatedAt:       r.CreatedAt,
		ClosedAt:        r.ClosedAt,
		CancelRequested: r.CancelRequested,
		LastTaskFailure: r.LastTaskFailure,

		SearchAttributes: decodeSearchAttributes(r.SearchAttributes),
		Memo:             decodeMemo(r.Memo),
	}
}

// StartWorkflow starts a run of a registered workflow by name with a JSON
// input. When opts.ID names a running run, that run is returned (Created is
// false) and nothing is started. opts may be nil.
func (e *Engine) StartWorkflow(ctx context.Context, name string, input json.RawMessage, opts *StartOptions) (RunInfo, error) {
	return e.startWorkflow(ctx, name, input, opts, nil)
}

// startWorkflow is StartWorkflow; inbox, when not empty, is written to the
// new run's inbox in the commit that creates it, so that its first
// workflow task sees it. A run that was already running gets nothing.
func (e *Engine) startWorkflow(ctx context.Context, name string, input json.RawMessage, opts *StartOptions, inbox []store.NewInboxItem) (RunInfo, error) {
	if e.workflowDef(name) == nil {
		return RunInfo{}, fmt.Errorf("%w: %q", ErrUnknownWorkflow, name)
	}
	if len(input) > e.limits.MaxPayloadBytes {
		return RunInfo{}, fmt.Errorf("start %s: %w: input is %d bytes, limit %d", name, ErrPayloadTooLarge, len(input), e.limits.MaxPayloadBytes)
	}
	if len(input) > 0 && !json.Valid(input) {
		return RunInfo{}, fmt.Errorf("start %s: %w: input is not valid JSON", name, ErrInvalidPayload)
	}
	o := StartOptions{}
	if opts != nil {
		o = *opts
	}
	if o.ID == "" {
		o.ID = newRunID()
	}
	if o.TaskQueue == "" {
		o.TaskQueue = "default"
	}
	search, err := encodeSearchAttributes(o.SearchAttributes)
	if err != nil {
		return RunInfo{}, fmt.Errorf("start %s: %w", name, err)
	}
	memo, err := e.encodeMemo(o.Memo)
	if err != nil {
		return RunInfo{}, fmt.Errorf("start %s: %w", name, err)
	}
	now := e.clock.Now()
	runID := newRunID()
	// Eager dispatch: lease the first workflow task to a local worker.
	// A start with inbox items leaves its first task to a claim, which
	// reads the inbox: it runs it neither here nor from an eager lease,
	// which start from the start event alone.
	var w *Worker
	if len(inbox) == 0 {
		w = e.localWorker(o.TaskQueue)
	}
	if w != nil && !w.tryAcquire(w.wfSem) {
		w = nil
	}
	// A start with inbox items is the first input of a batch that they
	// end: the workflow's code first runs once all are applied, in the
	// first task and in every replay.
	startData := &eventData{Name: name, WorkflowID: o.ID, TaskQueue: o.TaskQueue, Input: input, More: len(inbox) > 0}
	start := store.Event{ID: 1, Type: EventWorkflowStarted, Time: now, Data: mustMarshal(startData)}
	cp := store.CreateRunParams{
		RunID:            runID,
		WorkflowID:       o.ID,
		WorkflowType:     name,
		TaskQueue:        o.TaskQueue,
		Input:            input,
		StartEvent:       start,
		ReusePolicy:      o.IDReusePolicy,
		Now:              now,
		SearchAttributes: search,
		Memo:             memo,
		Inbox:            inbox,
	}
	var (
		res   store.CreateRunResult
		done  bool
		local bool // the first task ran here
	)
	if w != nil {
		if res, done, err = w.startWithFirstTask(ctx, cp, startData); done {
			local = true
		}
	}
	if !done {
		if w != nil {
			cp.Eager = e.eagerLease()
		}
		res, err = e.store.CreateRun(ctx, cp)
		if w != nil {
			if err == nil && res.Task != nil {
				w.dispatchNewRunTask(*res.Task, start)
			} else {
				<-w.wfSem
			}
		}
	}
	if err != nil {
		if errors.Is(err, store.ErrWorkflowIDInUse) {
			return RunInfo{}, fmt.Errorf("start %s: %w: %q", name, ErrWorkflowIDInUse, o.ID)
		}
		return RunInfo{}, fmt.Errorf("start %s: %w", name, err)
	}
	info := runInfo(res.Run)
	info.Created = res.Created
	if res.Created && res.Task == nil && !local {
		e.notifyQueue(o.TaskQueue)
	}
	return info, nil
}

// Describe returns a workflow ID's running run, or else its latest run.
func (e *Engine) Describe(ctx context.Context, workflowID string) (RunInfo, error) {
	r, err := e.store.GetLatestRun(ctx, workflowID)
	if err != nil {
		return RunInfo{}, e.runErr(err, workflowID)
	}
	return runInfo(r), nil
}

// DescribeRun returns a run by run ID.
func (e *Engine) DescribeRun(ctx context.Context, runID string) (RunInfo, error) {
	r, err := e.store.GetRun(ctx, runID)
	if err != nil {
		return RunInfo{}, e.runErr(err, runID)
	}
	return runInfo(r), nil
}

func (e *Engine) runErr(err error, id string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %q", ErrRunNotFound, id)
	case errors.Is(err, store.ErrRunClosed):
		return fmt.Errorf("%w: %q", ErrRunClosed, id)
	}
	return fmt.Errorf("durable: %q: %w", id, err)
}

// Result waits until the run closes and returns its JSON result, or its error:
// an *ApplicationError for a failed run (errors.Is ErrCanceled or
// ErrTerminated for those outcomes).
//
// A run cached in this process between two of its tasks is not read from
// the store first: it is running, and its close will most likely be
// committed here, which hands the closed run to Result without a read (a
// run just started with Start, whose first task ran here, is such a run).
// If it closes elsewhere instead (its task taken over by another process,
// or it was terminated from one), Result reads it after
// Config.PollInterval, as it reads any run it waits for that long.
func (e *Engine) Result(ctx context.Context, runID string) (json.RawMessage, error) {
	tryCache := true
	for {
		ch := e.closeWaiter(runID)
		// The waiter is registered before the look-up, and a run closing
		// here (or terminated from here) leaves the cache before its
		// waiters are told: a close cannot slip between the two.
		if tryCache {
			tryCache = false
			if _, cached := e.cache.queueOf(runID); cached {
				if r, ok, err := e.awaitClose(ctx, runID, ch); ok || err != nil {
					return r, err
				}
				continue
			}
		}
		r, err := e.store.GetRun(ctx, runID)
		if err != nil {
			e.dropWaiter(runID, ch)
			return nil, e.runErr(err, runID)
		}
		if r.Status == store.StatusContinuedAsNew {
			// Follow the chain to the run that finally closes.
			e.dropWaiter(runID, ch)
			var next string
			if err := json.Unmarshal(r.Result, &next); err != nil || next == "" {
				return nil, fmt.Errorf("run %s continued as new to an unreadable run ID %q", runID, r.Result)
			}
			runID, tryCache = next, true
			continue
		}
		if r.Status.Closed() {
			e.dropWaiter(runID, ch)
			return runOutcome(r)
		}
		if r, ok, err := e.awaitClose(ctx, runID, ch); ok || err != nil {
			return r, err
		}
	}
}

// awaitClose waits on a close waiter of the run for Config.PollInterval at
// the most. ok is true when the waiter delivered the closed run, whose
// outcome is r and err; it is false when the time ran out or the close was
// seen without the run (the caller then reads it).
func (e *Engine) awaitClose(ctx context.Context, runID string, ch chan *store.Run) (r json.RawMessage, ok bool, err error) {
	select {
	case closed := <-ch:
		if closed != nil {
			r, err = runOutcome(*closed)
			return r, true, err
		}
	case <-time.After(e.cfg.PollInterval):
		e.dropWaiter(runID, ch)
	case <-ctx.Done():
		e.dropWaiter(runID, ch)
		return nil, false, ctx.Err()
	}
	return nil, false, nil
}

func runOutcome(r store.Run) (json.RawMessage, error) {
	switch r.Status {
	case store.StatusCompleted:
		return r.Result, nil
	case store.StatusTerminated:
		return nil, fmt.Errorf("run %s: %w", r.RunID, ErrTerminated)
	}
	var f failure
	if err := json.Unmarshal(r.Failure, &f); err != nil {
		return nil, fmt.Errorf("run %s %s: undecodable failure: %w", r.RunID, r.Status, err)
	}
	err := f.toError()
	if r.Status == store.StatusCanceled && !errors.Is(err, ErrCanceled) {
		return nil, fmt.Errorf("%w: %w", ErrCanceled, err)
	}
	return nil, err
}

// SignalOptions configure Signal. The zero value is valid.
type SignalOptions struct {
	// RunID targets one run instead of the workflow ID's running run.
	RunID string
	// RequestID makes the signal idempotent: a repeated request ID is
	// accepted and applied once.
	RequestID string
}

// Signal sends a named JSON signal to the workflow ID's running run. opts may
// be nil. It returns ErrRunNotFound or ErrRunClosed when there is no running
// run to receive it.
func (e *Engine) Signal(ctx context.Context, workflowID, name string, payload json.RawMessage, opts *SignalOptions) error {
	if err := e.checkSignalPayload(name, payload); err != nil {
		return err
	}
	o := SignalOptions{}
	if opts != nil {
		o = *opts
	}
	p := store.SignalParams{
		RunID:     o.RunID,
		Item:      signalItem(name, payload),
		RequestID: o.RequestID,
		Now:       e.clock.Now(),
	}
	if o.RunID == "" {
		p.WorkflowID = workflowID
	}
	if done, err := e.signalCached(ctx, workflowID, p); done {
		if err != nil {
			return fmt.Errorf("signal %s: %w", name, e.runErr(err, workflowID))
		}
		return nil
	}
	run, err := e.store.Signal(ctx, p)
	for range 3 {
		// A run that continued as new while the signal looked for it
		// hands over to its successor: address that one.
		if !errors.Is(err, store.ErrRunClosed) || o.RunID != "" {
			break
		}
		latest, lerr := e.store.GetLatestRun(ctx, workflowID)
		if lerr != nil || latest.Status != store.StatusRunning {
			break
		}
		run, err = e.store.Signal(ctx, p)
	}
	if err != nil {
		return fmt.Errorf("signal %s: %w", name, e.runErr(err, workflowID))
	}
	e.notifyQueue(run.TaskQueue)
	return nil
}

// checkSignalPayload refuses a signal payload that is too large or not
// JSON.
func (e *Engine) checkSignalPayload(name string, payload json.RawMessage) error {
	if len(payload) > e.limits.MaxPayloadBytes {
		return fmt.Errorf("signal %s: %w: %d bytes", name, ErrPayloadTooLarge, len(payload))
	}
	if len(payload) > 0 && !json.Valid(payload) {
		return fmt.Errorf("signal %s: %w: payload is not valid JSON", name, ErrInvalidPayload)
	}
	return nil
}

// signalItem is the inbox item of a signal.
func signalItem(name string, payload json.RawMessage) store.NewInboxItem {
	return store.NewInboxItem{Type: EventSignalReceived, Data: mustMarshal(&eventData{Name: name, Input: payload})}
}

// Send sends the signal to the workflow ID's running run.
func (s Signal[T]) Send(ctx context.Context, e *Engine, workflowID string, v T) error {
	b, err := e.encode(v)
	if err != nil {
		return fmt.Errorf("signal %s: %w", s.name, err)
	}
	return e.Signal(ctx, workflowID, s.name, b, nil)
}

// Cancel asks the workflow ID's running run to cancel: blocking calls in the
// workflow return ErrCanceled, its activities see a canceled context at
// their next heartbeat, and a workflow that returns ErrCanceled closes as
// canceled.
func (e *Engine) Cancel(ctx context.Context, workflowID, reason string) error {
	r, err := e.store.GetLatestRun(ctx, workflowID)
	if err != nil {
		return fmt.Errorf("cancel: %w", e.runErr(err, workflowID))
	}
	if r.Status.Closed() {
		return fmt.Errorf("cancel: %w: %q is %s", ErrRunClosed, workflowID, r.Status)
	}
	err = e.store.RequestCancel(ctx, store.CancelParams{
		RunID: r.RunID,
		Item:  store.NewInboxItem{Type: EventCancelRequested, Data: mustMarshal(&eventData{Reason: reason})},
		Now:   e.clock.Now(),
	})
	if err != nil {
		return fmt.Errorf("cancel: %w", e.runErr(err, workflowID))
	}
	e.notifyQueue(r.TaskQueue)
	return nil
}

// Terminate closes the workflow ID's running run at once, without running
// workflow code. Its pending activities are abandoned.
func (e *Engine) Terminate(ctx context.Context, workflowID, reason string) error {
	r, err := e.store.GetLatestRun(ctx, workflowID)
	if err != nil {
		return fmt.Errorf("terminate: %w", e.runErr(err, workflowID))
	}
	if r.Status.Closed() {
		return fmt.Errorf("terminate: %w: %q is %s", ErrRunClosed, workflowID, r.Status)
	}
	f := toFailure(fmt.Errorf("%w: %s", ErrTerminated, reason))
	now := e.clock.Now()
	err = e.store.Terminate(ctx, store.TerminateParams{
		RunID:      r.RunID,
		Event:      store.Event{Type: EventWorkflowTerminated, Time: now, Data: mustMarshal(&eventData{Reason: reason})},
		Failure:    mustJSON(f),
		Now:        now,
		ParentItem: parentItem(r.Parent, &store.CloseRun{Status: store.StatusTerminated, Failure: mustJSON(f)}),
		Children:   childrenClose(now),
	})
	if err != nil {
		return fmt.Errorf("terminate: %w", e.runErr(err, workflowID))
	}
	// The run's cached state is dead: drop it, so that nothing here (Result
	// among others) takes the run for running.
	if rs := e.cache.take(r.RunID); rs != nil {
		rs.close()
	}
	e.notifyClosed(r.RunID, nil)
	return nil
}

// ListOptions filter ListRuns. The zero value lists the newest runs; every
// filter set must match.
type ListOptions struct {
	WorkflowID   string
	WorkflowType string
	Status       Status
	// CreatedAfter and CreatedBefore, when set, keep the runs created
	// strictly after and strictly before them.
	CreatedAfter, CreatedBefore time.Time
	// SearchAttributes keep the runs whose search attributes match every
	// filter.
	SearchAttributes []SearchFilter
	// Cursor continues from a previous page's next cursor.
	Cursor string
	// Limit. Optional; default 100.
	Limit int
}

// ListRuns lists runs newest first; next is the cursor of the following
// page, empty on the last. A search filter that cannot be used fails with
// ErrInvalidSearchAttribute.
func (e *Engine) ListRuns(ctx context.Context, opts *ListOptions) (runs []RunInfo, next string, err error) {
	o := ListOptions{}
	if opts != nil {
		o = *opts
	}
	filters, err := storeFilters(o.SearchAttributes)
	if err != nil {
		return nil, "", fmt.Errorf("list runs: %w", err)
	}
	res, err := e.store.ListRuns(ctx, store.ListRunsParams{
		WorkflowID: o.WorkflowID, WorkflowType: o.WorkflowType, Status: o.Status, Cursor: o.Cursor, Limit: o.Limit,
		CreatedAfter: o.CreatedAfter, CreatedBefore: o.CreatedBefore, SearchAttributes: filters,
	})
	if err != nil {
		return nil, "", fmt.Errorf("list runs: %w", err)
	}
	runs = make([]RunInfo, len(res.Runs))
	for i, r := range res.Runs {
		runs[i] = runInfo(r)
	}
	return runs, res.NextCursor, nil
}

// HistoryEvent is one exported history event.
type HistoryEvent struct {
	ID   int64           `json:"id"`
	Type string          `json:"type"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data"`
}

// History is a run's exported history.
type History struct {
	Run    RunInfo        `json:"run"`
	Events []HistoryEvent `json:"events"`
}

// GetHistory returns a run's history.
func (e *Engine) GetHistory(ctx context.Context, runID string) (*History, error) {
	r, err := e.store.GetRun(ctx, runID)
	if err != nil {
		return nil, e.runErr(err, runID)
	}
	evs, err := e.store.History(ctx, runID, 0)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", runID, err)
	}
	h := &History{Run: runInfo(r), Events: make([]HistoryEvent, len(evs))}
	for i, ev := range evs {
		h.Events[i] = HistoryEvent{ID: ev.ID, Type: ev.Type, Time: ev.Time, Data: ev.Data}
	}
	return h, nil
}

// ExportHistory returns a run's history as indented JSON.
func (e *Engine) ExportHistory(ctx context.Context, runID string) ([]byte, error) {
	h, err := e.GetHistory(ctx, runID)
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(h, "", "  ")
}

// Attempt is the record of one activity attempt.
type Attempt = store.ActivityAttempt

// ActivityAttempts returns every recorded activity attempt of a run, with
// its error, by activity sequence number then attempt.
func (e *Engine) ActivityAttempts(ctx context.Context, runID string) ([]Attempt, error) {
	a, err := e.store.ActivityAttempts(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("attempts of %s: %w", runID, err)
	}
	return a, nil
}

// closeWaiter returns a channel closed when this process sees the run
// close; it first receives the closed run, when notifyClosed had it.
func (e *Engine) closeWaiter(runID string) chan *store.Run {
	ch := make(chan *store.Run, 1)
	e.mu.Lock()
	e.waiters[runID] = append(e.waiters[runID], ch)
	e.mu.Unlock()
	return ch
}

func (e *Engine) dropWaiter(runID string, ch chan *store.Run) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ws := e.waiters[runID]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(e.waiters, runID)
	} else {
		e.waiters[runID] = ws
	}
}

// notifyClosed wakes the run's waiters in this process. closed, when not
// nil, is the run as its closing commit wrote it (status, result,
// failure), which spares each waiter a read of the run.
func (e *Engine) notifyClosed(runID string, closed *store.Run) {
	e.mu.Lock()
	ws := e.waiters[runID]
	delete(e.waiters, runID)
	e.mu.Unlock()
	for _, ch := range ws {
		if closed != nil {
			ch <- closed // buffered: each waiter has its own channel
		}
		close(ch)
	}
}

// queueChan returns the wake-up channel of a task queue's local pollers.
func (e *Engine) queueChan(queue string) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.queues[queue]
	if !ok {
		ch = make(chan struct{}, 1)
		e.queues[queue] = ch
	}
	return ch
}

// notifyQueue wakes this process's workflow task pollers of a task queue.
func (e *Engine) notifyQueue(queue string) {
	select {
	case e.queueChan("w/" + queue) <- struct{}{}:
	default:
	}
}

// notifyActivityQueue wakes this process's activity pollers of a task queue.
func (e *Engine) notifyActivityQueue(queue string) {
	select {
	case e.queueChan("a/" + queue) <- struct{}{}:
	default:
	}
}

// notifyAll wakes every local poller.
func (e *Engine) notifyAll() {
	e.mu.Lock()
	chs := make([]chan struct{}, 0, len(e.queues))
	for _, ch := range e.queues {
		chs = append(chs, ch)
	}
	e.mu.Unlock()
	for _, ch := range chs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// wakeTimers makes the timer loop recompute its next wake-up.
func (e *Engine) wakeTimers() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}
