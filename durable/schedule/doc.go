// Package schedule starts workflows on a schedule: from cron expressions
// and fixed intervals, with pause, trigger-now, backfill and overlap
// policies. It is built on the durable engine's public API only: each
// schedule is itself a long-running durable workflow, so it survives
// restarts and crashes like any other run, on every store.
//
// # Usage
//
// Create the Client with New before the engine starts (it registers the
// schedule workflow and its activities), then create schedules:
//
//	schedules, err := schedule.New(e, nil)
//	…
//	e.MustRegister(report)
//	e.NewWorker(nil)
//	_ = e.Start(ctx)
//	err = schedules.Create(ctx, "emea-report",
//		schedule.Spec{Cron: []string{"0 6 * * MON-FRI"}, TimeZone: "Europe/Paris"},
//		schedule.Action{Workflow: "daily-report", Input: json.RawMessage(`"emea"`)})
//
// Pause, Unpause, Trigger, Backfill, Update, Describe, List and Delete
// control and inspect schedules by ID. Every process that runs schedule
// workers, or calls Describe, must call New on its engine, with the same
// Config, and register the target workflows.
//
// # How a schedule runs
//
// A schedule is the workflow WorkflowID(id) ("schedule/" + id). It computes
// its next fire time from the Spec, deterministically, from durable.Now;
// sleeps on a durable timer; and, when the time comes, starts the target
// workflow through an activity that calls Engine.StartWorkflow. The target's
// workflow ID is ActionWorkflowID(id, t): the schedule ID, "/", and the
// nominal fire time t in UTC as RFC 3339. The start uses the
// RejectDuplicate ID-reuse policy and treats an ID that already exists as
// already started, so a retried activity, a replayed workflow, a restart
// between the fire time and the start, or a backfill over a window that
// already ran never starts a second run for the same fire time.
//
// Control operations are signals to the schedule's workflow, applied in the
// order they were sent; Describe is a query on its state. A schedule's run
// continues as new after Config.MaxActionsPerRun actions and signals (or
// once durable.ContinueAsNewSuggested), carrying its state, so its history
// stays bounded however long it lives.
//
// # Fire times
//
// Spec.Cron takes standard five-field expressions and descriptors (@hourly,
// @daily, @every 90m), read in Spec.TimeZone; Spec.Intervals fire every
// Every since the Unix epoch, shifted by Offset. A spec's fire times are the
// union of all of them within [StartAt, EndAt]. Spec.Jitter delays each
// scheduled start by a fixed pseudo-random amount per fire time, without
// changing its nominal time or workflow ID.
//
// # Catch-up after downtime
//
// When a schedule wakes late (its workers were down, or the engine was
// stopped), it acts on each missed fire time that is at most
// Spec.CatchupWindow old (default one minute) and skips older ones, which
// Describe counts as CatchupMissed. A fire time whose start was already
// under way when the process stopped is always completed, whatever its age.
// Use Backfill to run a past window explicitly.
//
// # Overlap
//
// Before each scheduled or triggered start, the start activity looks at
// the previous action's workflow (Engine.Describe) and, if it is still
// running, applies Spec.Overlap: OverlapSkip (the default) drops the new
// action; OverlapBufferOne starts it once the running one closes, dropping
// further ones meanwhile; OverlapAllowAll starts it anyway;
// OverlapCancelOther asks the running one to cancel and starts the new one
// once it has closed; OverlapTerminateOther terminates it and starts the new
// one at once. Backfilled actions always start.
//
// # Pause, trigger, backfill
//
// A paused schedule takes no scheduled action; fire times that pass while
// it is paused are skipped, and Unpause resumes from the next one. Trigger
// acts at once, with the current workflow time as the nominal time, and
// Backfill acts on every fire time of a past window [start, end); both work
// while paused.
//
// # Limits
//
// The durable timer fires at the engine's time when it was set plus the
// delay, so a start can come a task's latency after its nominal time; the
// nominal time and workflow ID are exact. Two triggers in the same second
// share a workflow ID and start one run. A paused schedule still holds its
// workflow. The schedule workflow's own task queue is Config.TaskQueue.
package schedule
