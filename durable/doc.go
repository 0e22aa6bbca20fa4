// Package durable is Keel's durable execution engine. A workflow is an
// ordinary Go function whose every step is recorded in an event history; when
// its process dies, another worker replays the history and resumes the run at
// the last finished step. Activities (the steps with side effects: a model
// call, an email, a charge) run at least once, and their recorded result
// exists exactly once, so a finished step is never repeated.
//
// # Getting started
//
// Define activities and workflows with NewActivity and NewWorkflow, register
// them with an Engine over a store (sqlitestore for one file, pgstore for
// PostgreSQL), add a Worker for the task queue, Start the engine and start
// runs:
//
//	fetch := durable.NewActivity("fetch", func(ctx context.Context, id string) (Customer, error) { … }, nil)
//	greet := durable.NewWorkflow("greet", func(ctx durable.Context, id string) (string, error) {
//		c, err := fetch.Run(ctx, id)
//		if err != nil {
//			return "", err
//		}
//		return "Hello, " + c.Name, nil
//	})
//	e, _ := durable.New(st, nil)
//	e.MustRegister(fetch, greet)
//	e.NewWorker(nil)
//	_ = e.Start(ctx)
//	out, err := greet.Run(ctx, e, "c-42", &durable.StartOptions{ID: "greet-c-42"})
//
// # Determinism rules
//
// Workflow code is re-executed on replay and must take the same decisions
// from the same history. Inside a workflow function:
//
//   - Do I/O, call services and read files only in activities.
//   - Use durable.Now, not time.Now; durable.Sleep and NewTimer, not
//     time.Sleep or time.After; durable.Go, not the go statement;
//     Selector, Await and Signal, not channels, select or mutexes;
//     durable.UUID and SideEffect, not math/rand or uuid.
//   - Do not iterate over maps where the order changes a decision.
//   - Do not recover a panic you did not raise: the engine unwinds evicted
//     runs with a panic that must reach it.
//
// Each command the code issues (schedule an activity, start a timer, record a
// marker, complete) gets the next sequence number. On replay the command is
// matched with the one recorded under that number; a different kind, name or
// activity input is a *NonDeterminismError naming both, and the run's task is
// failed without touching its history. By Config.PanicPolicy the run then
// waits for fixed code (the default) or fails.
//
// # Changing workflow code
//
// Code that changes what a running workflow does goes through Patch: new
// runs (and running runs that reach the changed point for the first time)
// take the new branch, runs that already passed it replay the old one. When
// no run that started before the change is open, DeprecatePatch replaces
// Patch and the old branch is deleted; see Patch for the whole lifecycle.
//
// # Signals and queries
//
// A Signal is a typed message to a running workflow: the workflow receives
// it with Receive or a Selector; a client sends it with Send or
// Engine.Signal (a RequestID makes a retried send apply once), or with
// SignalWithStart, which starts the run first if none is running. A query
// reads live state without changing it: the workflow registers a handler
// with SetQueryHandler, and Engine.Query runs it on the run's cached state
// or on a replay of its history.
//
// # Deadlocks
//
// Workflow code that runs for Config.DeadlockTimeout (default 1s) without
// yielding to the engine, because it is blocked in time.Sleep, on a mutex,
// a channel or I/O, fails its task with a *DeadlockError; the worker goes
// on.
//
// # Execution model
//
// Only the worker holding a run's workflow-task lease appends to its
// history. Everything that happens to a run (an activity result, a timer, a
// signal, a cancel request) is first written to its inbox, in the same
// transaction that makes its workflow task runnable; the task moves inbox
// items into history one at a time, and after each runs the workflow's
// coroutines until all are blocked. The task's events, new activities and
// timers and the task's completion are committed in one transaction guarded
// by the expected history length, so a worker whose lease was taken over
// cannot write. Workflow time (Now) is the recorded time of the input being
// applied.
//
// Runs are cached between tasks (Config.CacheSize); a run evicted from the
// cache holds no goroutine, and its next task replays it from history. A run
// that sleeps for three days is a row in the timers table.
//
// # Activities
//
// An activity attempt gets a context.Context carrying its ActivityInfo: the
// attempt number, the heartbeat details of the latest heartbeat, and an
// IdempotencyKey that is the same on every attempt (pass it to APIs that take
// one). Failed attempts are retried by the activity's RetryPolicy; an error
// wrapped with NonRetryable, or whose type is listed in
// RetryPolicy.NonRetryableErrorTypes, is not. ScheduleToStart,
// StartToClose, ScheduleToClose and Heartbeat timeouts bound the attempts; a
// worker that dies mid-attempt is detected by the StartToClose or Heartbeat
// timeout and the activity retried elsewhere. Every attempt and its error is
// kept (Engine.ActivityAttempts) outside the replay history.
//
// # Limits
//
// Payloads over 2 MiB are refused with ErrPayloadTooLarge; a history past
// 10,240 events or 10 MiB logs a warning, and past 51,200 events or 50 MiB the
// run fails with ErrHistoryTooLarge. See Limits to change them.
//
// # Children, continue-as-new and updates
//
// A workflow starts another as its child with Workflow.StartChild or
// RunChild: the child runs on its own task queue with its own history, its
// failure reaches the parent as a *ChildWorkflowError, and its
// ParentClosePolicy decides what happens to it when the parent closes
// first. SignalExternal and RequestCancelExternal reach any running
// workflow by ID. A workflow that runs for months returns
// Workflow.ContinueAsNew to hand over to a fresh run with a short history
// (ContinueAsNewSuggested says when). SetUpdateHandler lets clients change a
// running workflow with Engine.Update: validated first, recorded once,
// answered durably.
//
// # Cancellation
//
// Engine.Cancel asks a run to cancel: blocking calls return ErrCanceled,
// and activities and children are treated by their CancellationType. Work
// started with WithoutCancel(ctx) runs regardless, for clean-up.
//
// # Testing
//
// Package durabletest runs workflows in tests: an Env is an engine on a
// temporary SQLite file with a fake clock that skips ahead to the next
// timer whenever every run waits for time, with activity stubs and
// assertions on history. A Replayer replays exported histories against the
// current code and reports non-determinism; `keel replay` does the same
// from the command line, for CI before a deploy.
package durable
