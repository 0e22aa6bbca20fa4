// Package store is the storage seam of Keel's durable engine: one narrow
// interface, Store, that every storage driver implements (sqlitestore, the
// embedded default; pgstore, PostgreSQL), and the row types that cross it.
//
// The API is not stable. Do not implement Store outside this repository: the
// engine relies on every behaviour documented here, and the conformance suite
// in package storetest is the only definition of it that is checked.
//
// The store does not interpret history events or inbox items: their Type and
// Data are opaque bytes chosen by the engine. What the store guarantees is
// atomicity, ordering and fencing:
//
//   - A run's history is append-only and only the holder of the run's workflow
//     task lease appends to it, guarded by the expected history length; or,
//     while the run has no workflow task at all, CompleteActivityWithWorkflowTask,
//     guarded likewise.
//   - Everything that happens to a run (an activity result, a fired timer, a
//     signal, a cancel request) is written to the run's inbox in the same
//     transaction that makes a workflow task for the run runnable, except an
//     activity result that CompleteActivityWithWorkflowTask appends to the
//     history directly.
//   - Every lease carries a token; a completion with a token that is no longer
//     the current one fails with ErrLeaseLost and changes nothing.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors returned by every Store. Drivers wrap them with context;
// callers match with errors.Is.
var (
	// ErrNotFound: no run (or task) with the given identifier exists.
	ErrNotFound = errors.New("not found")
	// ErrLeaseLost: the lease token or expected history length no longer
	// matches; another worker owns the task now, or it was already completed.
	ErrLeaseLost = errors.New("lease lost")
	// ErrRunClosed: the run is no longer running.
	ErrRunClosed = errors.New("run closed")
	// ErrWorkflowIDInUse: the ID-reuse policy refused a new run for a workflow
	// ID whose previous run is closed.
	ErrWorkflowIDInUse = errors.New("workflow ID already used")
	// ErrSchemaTooNew: the database was migrated by a newer version of Keel.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
	// ErrInboxPending: a workflow task's close was refused because items
	// of the types in CloseRun.RefuseIfInbox arrived after its claim;
	// nothing was written, and the task is still leased to its caller.
	ErrInboxPending = errors.New("inbox items arrived after the claim")
	// ErrRunBusy: CompleteActivityWithWorkflowTask found the run not idle
	// (it has a workflow task, leased or runnable, or its history moved);
	// nothing was written.
	ErrRunBusy = errors.New("run busy")
)

// RunStatus is the lifecycle state of a run.
type RunStatus string

// Run statuses. Every status but StatusRunning is final.
const (
	StatusRunning    RunStatus = "running"
	StatusCompleted  RunStatus = "completed"
	StatusFailed     RunStatus = "failed"
	StatusCanceled   RunStatus = "canceled"
	StatusTerminated RunStatus = "terminated"
	// StatusContinuedAsNew: the run closed and handed over to a new run of
	// the same workflow ID (see ContinueAsNew); its Result holds the new
	// run's ID.
	StatusContinuedAsNew RunStatus = "continued_as_new"
)

// ParentClosePolicy says what happens to a running child run when its
// parent run closes.
type ParentClosePolicy int

const (
	// ParentCloseTerminate terminates the child (and, by their own
	// policies, its children).
	ParentCloseTerminate ParentClosePolicy = iota
	// ParentCloseRequestCancel asks the child to cancel.
	ParentCloseRequestCancel
	// ParentCloseAbandon leaves the child running.
	ParentCloseAbandon
)

// ParentRef links a child run to the run that started it.
type ParentRef struct {
	RunID string
	// Seq is the parent's command sequence number that started the child.
	Seq         int64
	ClosePolicy ParentClosePolicy
}

// Closed reports whether s is a final status.
func (s RunStatus) Closed() bool { return s != StatusRunning && s != "" }

// IDReusePolicy decides whether a new run may start for a workflow ID whose
// previous run is closed. A workflow ID with a running run never gets a second
// running run, whatever the policy.
type IDReusePolicy int

const (
	// AllowDuplicate starts a new run whatever the previous run's outcome.
	AllowDuplicate IDReusePolicy = iota
	// AllowDuplicateFailedOnly starts a new run only if the latest run did not
	// complete successfully.
	AllowDuplicateFailedOnly
	// RejectDuplicate never reuses a workflow ID.
	RejectDuplicate
)

// Run is one execution of a workflow.
type Run struct {
	RunID        string
	WorkflowID   string
	WorkflowType string
	TaskQueue    string
	Status       RunStatus
	Input        []byte
	Result       []byte // set when Status is StatusCompleted
	Failure      []byte // set when Status is StatusFailed, StatusCanceled or StatusTerminated
	HistoryLen   int64  // number of events in the history
	HistoryBytes int64  // sum of len(Event.Data) over the history
	// CancelRequested is set once RequestCancel succeeded.
	CancelRequested bool
	// Parent is set for a child run (and for the runs it continued as).
	Parent *ParentRef
	// LastTaskFailure is the error of the latest failed workflow task, if any
	// (for example a panic with its stack); cleared by a successful task.
	LastTaskFailure string
	// SearchAttributes are the run's current search attributes, a JSON
	// object of SearchValues (see there); nil when it has none.
	SearchAttributes []byte
	// Memo is the run's memo as given when it was created; nil when none.
	Memo      []byte
	CreatedAt time.Time
	UpdatedAt time.Time
	ClosedAt  time.Time // zero while running
}

// Event is one entry of a run's history. ID is its 1-based position.
type Event struct {
	ID   int64
	Type string
	Time time.Time
	Data []byte
}

// InboxItem is something that happened to a run and waits for the next
// workflow task to move it into the history. IDs increase in insertion order
// across the whole store.
type InboxItem struct {
	ID   int64
	Type string
	Time time.Time // set by the store when the item is written
	Data []byte
}

// NewInboxItem is an inbox item to write.
type NewInboxItem struct {
	Type string
	Data []byte
}

// EagerLease asks a write that makes a workflow task runnable to lease it,
// in the same transaction, to the caller: the eager-dispatch fast path. The
// lease is exactly what ClaimWorkflowTasks would have made (new token,
// attempt+1, LeaseUntil), so a crash after it is recovered the same way,
// and the token is fenced like a claimed one.
type EagerLease struct {
	Owner string // as ClaimParams.Owner
	// LeaseUntil must be after the call's Now, as for ClaimWorkflowTasks;
	// otherwise the call fails and writes nothing.
	LeaseUntil time.Time
}

// CreateRunParams starts a run. The store writes StartEvent as history event 1
// and makes a workflow task runnable for it.
type CreateRunParams struct {
	RunID        string
	WorkflowID   string
	WorkflowType string
	TaskQueue    string
	Input        []byte
	StartEvent   Event // ID is ignored (always 1); Time is Now when zero
	ReusePolicy  IDReusePolicy
	Now          time.Time
	// Eager, when set, leases the new run's first workflow task to the
	// caller (CreateRunResult.Task). Ignored when no run is created.
	Eager *EagerLease
	// Parent makes the run a child of another run (honoured for
	// ChildStart; CreateRun may refuse it): when it closes, the
	// CloseRun.ParentItem (or TerminateParams.ParentItem) of its closing
	// write goes to the parent's inbox, and when the parent closes, the
	// child's ClosePolicy is applied to it.
	Parent *ParentRef
	// Timers are started with the run (an execution timeout, say).
	Timers []Timer
	// History holds events 2, 3, … written after StartEvent (a reset run
	// copies a prefix of another run's history); their IDs are assigned
	// by position. Honoured by CreateRun.
	History []Event
	// Inbox items are written to the new run's inbox. Honoured by
	// CreateRun.
	Inbox []NewInboxItem
	// SearchAttributes are the run's initial search attributes, a JSON
	// object of SearchValues (see there), by which ListRuns filters; nil
	// for none. The store fails the call with ErrInvalidSearch, writing
	// nothing, when it cannot read them.
	SearchAttributes []byte
	// Memo is stored with the run and returned as Run.Memo, as is: it is
	// not indexed.
	Memo []byte
	// FirstTask, when set, is the run's first workflow task, which the
	// caller has already run on StartEvent alone. It is committed in the
	// same transaction as the run, as CompleteActivityWithWorkflowTask
	// commits its Workflow: there is no lease (Token and InboxUpTo are
	// ignored), ExpectedHistoryLen must be 1, and it must not start
	// children, make external requests or continue as new. Its eager
	// activities are leased as in CompleteWorkflowTask and returned in
	// CreateRunResult.Activities. The run is left with no workflow task
	// row (or closed, when FirstTask closes it). Eager, History, Inbox and
	// Parent must be unset with it; otherwise the call fails, with an
	// error other than ErrWorkflowIDInUse, and writes nothing. When no
	// run is created, nothing of FirstTask is written either.
	//
	// It saves the start a commit: the run is started and its first task
	// committed in one transaction. Nobody can have seen the run before,
	// so nobody else can have written to its inbox.
	FirstTask *CompleteWorkflowTaskParams
}

// ChildStart starts a child run when a workflow task commits.
type ChildStart struct {
	// Run is created as by CreateRun (Eager is ignored; Parent must be
	// set). If the workflow ID has a running run, or the reuse policy
	// refuses, no run is created and FailedItem is written to the
	// committing run's own inbox instead.
	Run        CreateRunParams
	FailedItem NewInboxItem
}

// ExternalRequest delivers an item to another run when a workflow task
// commits: a signal, or a cancel request.
type ExternalRequest struct {
	// WorkflowID designates the target: the workflow ID's running run.
	WorkflowID string
	// Item is written to the target's inbox.
	Item NewInboxItem
	// Cancel marks the target and its activity tasks cancel-requested as
	// RequestCancel does (an already cancel-requested run gets no second
	// item).
	Cancel bool
	// DoneItem is written to the committing run's own inbox when the
	// target was found running, FailedItem when it was not.
	DoneItem, FailedItem NewInboxItem
}

// ChildrenClose is what a closing run does to its running children, by
// each child's ParentClosePolicy: terminate them (TerminateEvent appended
// to their history, TerminateFailure as their failure) or write
// CancelItem to their inbox as RequestCancel does.
type ChildrenClose struct {
	TerminateEvent   Event
	TerminateFailure []byte
	CancelItem       NewInboxItem
}

// ContinueAsNew closes a run and starts its successor in the same write.
type ContinueAsNew struct {
	// Run is the new run: same workflow ID, created whatever the reuse
	// policy (Eager is ignored). It inherits the closing run's Parent;
	// its search attributes and memo are Run's own (the engine passes on
	// the closing run's).
	Run CreateRunParams
	// Inbox is written to the new run's inbox first (signals the closing
	// run received but did not take).
	Inbox []NewInboxItem
	// CarryInboxTypes lists the inbox item types (signals) that the
	// closing task did not apply (ID > InboxUpTo) and that follow Inbox
	// into the new run's inbox, in order, instead of being dropped.
	CarryInboxTypes []string
}

// CreateRunResult says which run the workflow ID now designates.
type CreateRunResult struct {
	Run Run
	// Created is false when a run with the workflow ID was already running;
	// Run is then that run and nothing was written.
	Created bool
	// Task is the leased first workflow task when Eager was set and the run
	// created; its Inbox is empty.
	Task *WorkflowTask
	// Activities are FirstTask's eagerly leased activity tasks, as
	// CompleteWorkflowTaskResult.Activities.
	Activities []ActivityTask
}

// ClaimParams asks for up to Limit runnable tasks on one task queue.
type ClaimParams struct {
	TaskQueue  string
	Owner      string // worker identity, for diagnostics
	Limit      int    // at least 1
	Now        time.Time
	LeaseUntil time.Time // workflow tasks only; activity leases follow their timeouts
}

// WorkflowTask is a leased workflow task.
type WorkflowTask struct {
	Run     Run // as of the claim
	Token   string
	Attempt int // 1 for the first claim, +1 for every later claim
	// Inbox holds every inbox item of the run at claim time, in ID order.
	Inbox []InboxItem
}

// ActivityTask is an activity to execute. Durations of zero mean "no limit";
// deadlines that are zero likewise.
type ActivityTask struct {
	RunID        string
	Seq          int64 // the command sequence number that scheduled it
	WorkflowID   string
	ActivityType string
	TaskQueue    string
	Input        []byte
	// Options is opaque to the store (the engine keeps the retry policy there).
	Options []byte

	Attempt                 int // 1-based attempt this task (re)runs as
	ScheduledAt             time.Time
	ReadyAt                 time.Time // not claimable before
	ScheduleToStartDeadline time.Time
	ScheduleToCloseDeadline time.Time
	StartToClose            time.Duration
	HeartbeatTimeout        time.Duration

	HeartbeatDetails []byte // last details recorded by any attempt

	// Set while leased.
	Token          string
	Owner          string
	StartedAt      time.Time
	LeaseExpiresAt time.Time

	CancelRequested bool
}

// ActivityLease is the length of the lease a claim puts on an activity task
// with these timeouts: the shorter of the two, ignoring a zero one; zero
// (no expiry) when both are zero. A store that leases a task without its
// claim statement (an eager lease) computes the expiry with it, so that it
// is the one ClaimActivityTasks would set.
func ActivityLease(startToClose, heartbeat time.Duration) time.Duration {
	switch {
	case startToClose == 0:
		return heartbeat
	case heartbeat == 0:
		return startToClose
	}
	return min(startToClose, heartbeat)
}

// ActivityClaimable reports whether ClaimActivityTasks would claim at now
// an unleased activity task ready at ready with these schedule deadlines
// (zero for none): it is ready and past neither deadline. Times compare as
// stored, in whole nanoseconds.
func ActivityClaimable(ready, scheduleToStart, scheduleToClose, now time.Time) bool {
	n := now.UnixNano()
	return ready.UnixNano() <= n &&
		(scheduleToStart.IsZero() || scheduleToStart.UnixNano() > n) &&
		(scheduleToClose.IsZero() || scheduleToClose.UnixNano() > n)
}

// Timer fires at FireAt by writing Item to the run's inbox.
type Timer struct {
	RunID  string
	Seq    int64
	FireAt time.Time
	Item   NewInboxItem
}

// CloseRun closes a run when its workflow task commits.
type CloseRun struct {
	Status  RunStatus
	Result  []byte
	Failure []byte
	// ParentItem is written to the parent's inbox if the run has a running
	// parent. Ignored for StatusContinuedAsNew.
	ParentItem *NewInboxItem
	// Children, when set, is applied to the run's running children.
	// Ignored for StatusContinuedAsNew: the successor keeps them.
	Children *ChildrenClose
	// ContinueAsNew is required with StatusContinuedAsNew and ignored
	// otherwise.
	ContinueAsNew *ContinueAsNew
	// RefuseIfInbox lists inbox item types (signals, updates) whose
	// arrival after the task's claim (ID > InboxUpTo) makes the commit
	// fail with ErrInboxPending, so that the workflow sees them before it
	// closes.
	RefuseIfInbox []string
}

// CompleteWorkflowTaskParams commits a workflow task atomically.
type CompleteWorkflowTaskParams struct {
	RunID string
	Token string
	// ExpectedHistoryLen is the history length the task started from; the
	// commit fails with ErrLeaseLost if it changed.
	ExpectedHistoryLen int64
	// Events are appended; their IDs must be ExpectedHistoryLen+1, +2, ….
	Events []Event
	// InboxUpTo: inbox items with ID <= InboxUpTo are deleted (they are now in
	// Events). Items written after the claim stay, and the workflow task stays
	// runnable (unleased, ready now) so that they are processed.
	InboxUpTo          int64
	ScheduleActivities []ActivityTask // lease fields ignored
	StartTimers        []Timer
	CancelTimers       []int64 // timer seqs to delete
	// CancelActivities marks the activity tasks with these seqs as
	// cancel-requested (the running attempt sees it on its next heartbeat).
	CancelActivities []int64
	// Close closes the run: its workflow task, activity tasks, timers and
	// inbox are deleted.
	Close *CloseRun
	Now   time.Time
	// EagerActivities lists seqs of ScheduleActivities to lease, in the same
	// transaction, to EagerOwner, exactly as ClaimActivityTasks would at Now
	// (attempt 1, new token, StartedAt Now, lease expiry from the task's
	// timeouts). They are returned in CompleteWorkflowTaskResult.Activities.
	//
	// Each seq must be the Seq of one of ScheduleActivities and be listed
	// once; otherwise the commit fails (with an error other than
	// ErrLeaseLost) and nothing is written. A listed activity that
	// ClaimActivityTasks would not claim at Now (ReadyAt after Now, or a
	// schedule-to-start or schedule-to-close deadline at or before Now) is
	// scheduled unleased and left out of Activities. Nothing is leased when
	// Close is set.
	EagerActivities []int64
	EagerOwner      string // as ClaimParams.Owner
	// StartChildren are created (see ChildStart). When Close is set they
	// are created before the close applies the children's close policy,
	// and a failed start is not reported.
	StartChildren []ChildStart
	// External requests are delivered (see ExternalRequest); when Close is
	// set, without their done or failed items.
	External []ExternalRequest
	// UpsertSearchAttributes, when set, changes the run's search
	// attributes (Close or not): a JSON object of SearchValues whose keys
	// are set to their value, or removed when the value is null. The
	// commit fails with ErrInvalidSearch, writing nothing, when the store
	// cannot read it.
	UpsertSearchAttributes []byte
}

// CompleteWorkflowTaskResult reports what happened to the task.
type CompleteWorkflowTaskResult struct {
	// Pending is true when inbox items arrived after the claim, so the
	// workflow task is runnable again.
	Pending bool
	// Activities are the eagerly leased activity tasks, in the order of
	// EagerActivities (omitting those not leased; see there).
	Activities []ActivityTask
}

// FailWorkflowTaskParams releases a workflow task that could not complete
// (for example the workflow code panicked). Nothing is appended to history.
type FailWorkflowTaskParams struct {
	RunID   string
	Token   string
	RetryAt time.Time // when the task becomes claimable again
	Failure string    // stored in Run.LastTaskFailure
	Now     time.Time
}

// ActivityAttempt is the audit record of one activity attempt. Attempts are
// kept outside the replay history.
type ActivityAttempt struct {
	RunID        string
	Seq          int64
	Attempt      int
	ActivityType string
	Owner        string
	StartedAt    time.Time
	EndedAt      time.Time
	Outcome      string // "completed", "failed", "timed_out", "canceled"
	Error        string
}

// CompleteActivityTaskParams records an activity's final outcome: the task is
// deleted, Attempt is recorded, Item is written to the run's inbox and the
// run's workflow task becomes runnable.
type CompleteActivityTaskParams struct {
	RunID   string
	Seq     int64
	Token   string
	Attempt ActivityAttempt
	Item    NewInboxItem
	Now     time.Time
	// Eager, when set, leases the run's workflow task to the caller in the
	// same transaction if it is then claimable (unleased, or its lease
	// expired, and ready at Now), returning it with its full inbox in
	// CompleteActivityTaskResult.Task. A task leased elsewhere or backing
	// off is left alone.
	Eager *EagerLease
}

// CompleteActivityTaskResult carries the eagerly leased workflow task.
type CompleteActivityTaskResult struct {
	Task *WorkflowTask // nil unless Eager was set and the task was claimable
}

// CompleteActivityWithWorkflowTaskParams records an activity's final outcome
// and, in the same transaction, the workflow task that the engine already
// ran on it: the fast path for a run that is cached in the process where its
// activity completed, which saves the separate workflow-task claim and
// commit.
type CompleteActivityWithWorkflowTaskParams struct {
	// Activity is written as by CompleteActivityTask, except that its Item
	// is not written to the inbox: Workflow.Events already holds it. Its
	// Eager field is ignored.
	Activity CompleteActivityTaskParams
	// Workflow is committed as by CompleteWorkflowTask (it must not start
	// children, make external requests or continue as new), except that
	// there is no lease to check: its Token and InboxUpTo are ignored, and instead
	// the run must be idle — running, with no workflow task row (so its
	// inbox is empty and no one holds or awaits a workflow task) and with
	// exactly ExpectedHistoryLen events. Otherwise the call returns
	// ErrRunBusy and writes nothing. Its eager activities are leased as in
	// CompleteWorkflowTask. No workflow task row is left behind.
	//
	// Activity.RunID and Workflow.RunID must be the same run; otherwise the
	// call fails with an error other than ErrLeaseLost and ErrRunBusy and
	// writes nothing. The activity's fence is checked first: when both
	// fences fail, the error is ErrLeaseLost.
	Workflow CompleteWorkflowTaskParams
}

// SignalWithWorkflowTaskParams records a signal and, in the same
// transaction, the workflow task that the engine already ran on it: the
// fast path for a signal sent in the process where its run is cached,
// which saves the signal's own commit, the workflow task's claim and its
// commit apart.
type SignalWithWorkflowTaskParams struct {
	// Signal is accepted as by Signal, addressed by its RunID (required;
	// WorkflowID is ignored), except that its Item is not written to the
	// inbox: Workflow.Events holds it. Its RequestID, when set, is
	// recorded for the run.
	Signal SignalParams
	// Workflow is committed as CompleteActivityWithWorkflowTask commits
	// its Workflow: no lease, the run running and idle with exactly
	// ExpectedHistoryLen events; no children, external requests or
	// continue-as-new. Its RunID must be Signal.RunID.
	Workflow CompleteWorkflowTaskParams
}

// FireTimerWithWorkflowTaskParams fires one timer and, in the same
// transaction, commits the workflow task that the engine already ran on
// it: the fast path for a timer of a run cached in the process whose timer
// loop finds it due, which saves the fire's own commit, the workflow task's
// claim and its commit apart.
type FireTimerWithWorkflowTaskParams struct {
	// Seq is the timer of Workflow.RunID to fire: it must exist and be due
	// at Workflow.Now. It is deleted; its item is not written to the inbox
	// (Workflow.Events holds it).
	Seq int64
	// Workflow is committed as CompleteActivityWithWorkflowTask commits
	// its Workflow: no lease, the run running and idle with exactly
	// ExpectedHistoryLen events; no children, external requests or
	// continue-as-new.
	Workflow CompleteWorkflowTaskParams
}

// RetryActivityTaskParams records a failed attempt and makes the task
// claimable again at RetryAt as attempt Attempt.Attempt+1.
type RetryActivityTaskParams struct {
	RunID   string
	Seq     int64
	Token   string
	Attempt ActivityAttempt
	RetryAt time.Time
	Now     time.Time
}

// HeartbeatParams extends an activity lease and records details.
type HeartbeatParams struct {
	RunID   string
	Seq     int64
	Token   string
	Details []byte // nil keeps the previous details
	Now     time.Time
}

// HeartbeatResult tells the activity whether its run asked to cancel it.
type HeartbeatResult struct {
	CancelRequested bool
}

// SignalParams writes an item to a running run's inbox.
type SignalParams struct {
	// RunID, or WorkflowID for the workflow ID's running run.
	RunID      string
	WorkflowID string
	Item       NewInboxItem
	// RequestID, when set, makes the signal idempotent per run: a second
	// signal with the same RequestID is accepted and not written again.
	RequestID string
	Now       time.Time
}

// CancelParams asks a running run to cancel: Item is written to its inbox and
// its activity tasks are marked cancel-requested.
type CancelParams struct {
	RunID string
	Item  NewInboxItem
	Now   time.Time
}

// TerminateParams closes a running run at once, without running workflow
// code: Event is appended to its history (so any in-flight workflow task
// fails its commit with ErrLeaseLost) and its tasks, timers and inbox are
// deleted.
type TerminateParams struct {
	RunID   string
	Event   Event // ID is assigned by the store
	Failure []byte
	Now     time.Time
	// ParentItem and Children as in CloseRun.
	ParentItem *NewInboxItem
	Children   *ChildrenClose
}

// ListRunsParams filters runs; the zero value lists the newest runs. Every
// filter set must match.
type ListRunsParams struct {
	WorkflowID   string
	WorkflowType string
	Status       RunStatus
	// CreatedAfter and CreatedBefore, when set, keep the runs created
	// strictly after and strictly before them.
	CreatedAfter, CreatedBefore time.Time
	// SearchAttributes keep the runs whose search attributes match every
	// filter. The store answers them from an index, and fails with
	// ErrInvalidSearch on a filter it cannot read (see
	// SearchFilter.Condition).
	SearchAttributes []SearchFilter
	// Cursor: runs created before this one (by creation order), from a
	// previous page's NextCursor.
	Cursor string
	Limit  int // default 100
}

// ListRunsResult is one page of runs, newest first.
type ListRunsResult struct {
	Runs       []Run
	NextCursor string // empty on the last page
}

// Store is the durable engine's storage. All methods are safe for concurrent
// use by many goroutines and, for drivers that support it, many processes.
type Store interface {
	// CreateRun starts a run, honouring the workflow ID's running run and
	// the reuse policy. Returns ErrWorkflowIDInUse when the policy refuses.
	CreateRun(ctx context.Context, p CreateRunParams) (CreateRunResult, error)
	// GetRun returns a run by run ID (ErrNotFound).
	GetRun(ctx context.Context, runID string) (Run, error)
	// GetLatestRun returns the running run of a workflow ID, or else its most
	// recently created run (ErrNotFound).
	GetLatestRun(ctx context.Context, workflowID string) (Run, error)
	// ListRuns lists runs newest first.
	ListRuns(ctx context.Context, p ListRunsParams) (ListRunsResult, error)
	// History returns a run's events with ID > afterID, in order.
	History(ctx context.Context, runID string, afterID int64) ([]Event, error)

	// ClaimWorkflowTasks leases up to p.Limit runnable workflow tasks of
	// running runs on p.TaskQueue: tasks whose ready time has come and that
	// are unleased or whose lease expired. Each claim gets a new token.
	ClaimWorkflowTasks(ctx context.Context, p ClaimParams) ([]WorkflowTask, error)
	// CompleteWorkflowTask commits a workflow task (ErrLeaseLost when fenced).
	CompleteWorkflowTask(ctx context.Context, p CompleteWorkflowTaskParams) (CompleteWorkflowTaskResult, error)
	// FailWorkflowTask releases a workflow task for a later retry
	// (ErrLeaseLost when fenced).
	FailWorkflowTask(ctx context.Context, p FailWorkflowTaskParams) error

	// ClaimActivityTasks leases up to p.Limit activity tasks on p.TaskQueue
	// whose ReadyAt has come and that are not leased. The lease expires at
	// the earliest of StartedAt+StartToClose and StartedAt+HeartbeatTimeout
	// (and never, if both are zero).
	ClaimActivityTasks(ctx context.Context, p ClaimParams) ([]ActivityTask, error)
	// CompleteActivityTask records a final outcome (ErrLeaseLost when fenced).
	CompleteActivityTask(ctx context.Context, p CompleteActivityTaskParams) (CompleteActivityTaskResult, error)
	// CompleteActivityWithWorkflowTask records an activity's final outcome
	// and the workflow task run on it, in one transaction (ErrLeaseLost when
	// the activity is fenced, ErrRunBusy when the run is not idle; either
	// way nothing is written).
	CompleteActivityWithWorkflowTask(ctx context.Context, p CompleteActivityWithWorkflowTaskParams) (CompleteWorkflowTaskResult, error)
	// SignalWithWorkflowTask accepts a signal and commits the workflow task
	// run on it in one transaction (see SignalWithWorkflowTaskParams). It
	// returns ErrRunBusy and writes nothing when the run is not running and
	// idle at Workflow.ExpectedHistoryLen, or when it has accepted
	// Signal.RequestID before: the caller then signals the ordinary way,
	// which reports or deduplicates as Signal does.
	SignalWithWorkflowTask(ctx context.Context, p SignalWithWorkflowTaskParams) (CompleteWorkflowTaskResult, error)
	// FireTimerWithWorkflowTask fires a timer and commits the workflow task
	// run on it in one transaction (see FireTimerWithWorkflowTaskParams).
	// It returns ErrRunBusy and writes nothing when the timer is gone or
	// not due, or the run is not running and idle at
	// Workflow.ExpectedHistoryLen: FireTimers fires the timer then, if it
	// is still there.
	FireTimerWithWorkflowTask(ctx context.Context, p FireTimerWithWorkflowTaskParams) (CompleteWorkflowTaskResult, error)
	// RetryActivityTask records a failed attempt and schedules the next
	// (ErrLeaseLost when fenced).
	RetryActivityTask(ctx context.Context, p RetryActivityTaskParams) error
	// HeartbeatActivityTask extends the lease to the earliest of
	// Now+HeartbeatTimeout and StartedAt+StartToClose (ErrLeaseLost when
	// fenced).
	HeartbeatActivityTask(ctx context.Context, p HeartbeatParams) (HeartbeatResult, error)
	// ExpiredActivityTasks returns up to limit activity tasks that are past a
	// timeout at now: leased with LeaseExpiresAt <= now, unleased with
	// ScheduleToStartDeadline <= now, or any with ScheduleToCloseDeadline <=
	// now. The engine then retries or completes them with the token returned
	// here ("" for an unleased task, which fences on the task still being
	// unleased at the same attempt).
	ExpiredActivityTasks(ctx context.Context, now time.Time, limit int) ([]ActivityTask, error)
	// ActivityAttempts lists a run's recorded attempts by seq, then attempt.
	ActivityAttempts(ctx context.Context, runID string) ([]ActivityAttempt, error)

	// FireTimers fires up to limit timers due at now: each one's item is
	// written to its run's inbox and the run's workflow task made runnable,
	// and the timer deleted. Returns the task queues of the runs it woke.
	FireTimers(ctx context.Context, now time.Time, limit int) ([]string, error)
	// NextWakeup returns the earliest future moment at which something
	// becomes due: a timer, a delayed task, a lease expiry or an activity
	// deadline. ok is false when nothing is scheduled.
	NextWakeup(ctx context.Context) (t time.Time, ok bool, err error)

	// Signal writes to a running run's inbox (ErrNotFound, ErrRunClosed) and
	// returns the run signalled.
	Signal(ctx context.Context, p SignalParams) (Run, error)
	// RequestCancel asks a running run to cancel (ErrNotFound, ErrRunClosed).
	// A second request while the first is pending is a no-op.
	RequestCancel(ctx context.Context, p CancelParams) error
	// Terminate closes a running run at once (ErrNotFound, ErrRunClosed).
	Terminate(ctx context.Context, p TerminateParams) error

	// Close releases the store's resources (not the caller's handle).
	Close() error
}

// ErrNeedsWorkflowTask refuses, on a write without a workflow task of its
// own (CreateRunParams.FirstTask and the *WithWorkflowTask fast paths), a
// commit that starts children, makes external requests or continues as
// new: their answers come back through the run's inbox, which needs a
// workflow task to take them.
var ErrNeedsWorkflowTask = errors.New("a commit that starts children, makes external requests or continues as new needs a workflow task")

// NeedsWorkflowTask reports whether the commit starts children, makes
// external requests or continues as new (see ErrNeedsWorkflowTask).
func (p *CompleteWorkflowTaskParams) NeedsWorkflowTask() bool {
	return len(p.StartChildren) > 0 || len(p.External) > 0 ||
		(p.Close != nil && p.Close.Status == StatusContinuedAsNew)
}

// Apply returns r, a run as it was before this commit, as the commit
// leaves it: its history length and size, its update time (Now, as stored:
// whole nanoseconds in UTC) and, when the commit closes it, its status,
// result, failure and close time. Search attributes the commit upserts are
// not merged; a store that returns a run so computed reads it back instead
// when UpsertSearchAttributes is set.
func (p *CompleteWorkflowTaskParams) Apply(r Run) Run {
	at := time.Unix(0, p.Now.UnixNano()).UTC()
	r.HistoryLen = p.ExpectedHistoryLen + int64(len(p.Events))
	for _, ev := range p.Events {
		r.HistoryBytes += int64(len(ev.Data))
	}
	r.UpdatedAt = at
	r.LastTaskFailure = ""
	if cl := p.Close; cl != nil {
		r.Status, r.Result, r.Failure, r.ClosedAt = cl.Status, nilIfEmpty(cl.Result), nilIfEmpty(cl.Failure), at
	}
	return r
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// CheckFirstTask reports whether p.FirstTask, if set, is one that CreateRun
// accepts (see CreateRunParams.FirstTask), for the stores to check before
// they write anything.
func (p *CreateRunParams) CheckFirstTask() error {
	f := p.FirstTask
	switch {
	case f == nil:
		return nil
	case p.Eager != nil || len(p.History) > 0 || len(p.Inbox) > 0 || p.Parent != nil:
		return errors.New("a first task cannot come with Eager, History, Inbox or Parent")
	case f.RunID != p.RunID:
		return fmt.Errorf("the first task is of run %q", f.RunID)
	case f.ExpectedHistoryLen != 1:
		return fmt.Errorf("the first task starts from %d events, want 1", f.ExpectedHistoryLen)
	case f.NeedsWorkflowTask():
		return fmt.Errorf("first task: %w", ErrNeedsWorkflowTask)
	}
	return nil
}
