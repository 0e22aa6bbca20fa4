package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/codec"
)

func init() { commands = append(commands, historyCmd) }

func historyCmd() *cobra.Command {
	var (
		db     string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "history RUN_OR_WORKFLOW_ID",
		Short: "Show a run's history as a timeline, or export it as JSON for keel replay",
		Long: `Show the event history of a run: one line per event with its ID, time and
type, and what matters in it (activity names and attempts, errors, signal
names, timers), payloads abbreviated. Activity attempts that failed and were
retried are kept outside the history; they are listed after it.

The ID is a workflow ID (its running run, or else its latest run) or a run ID.

With --json the history is printed as Engine.ExportHistory writes it, in full:
the file keel replay checks against the workflow code of a new build.`,
		Example: `  keel history ticket-42
  keel history ticket-42 --json > ticket-42.json && keel replay ticket-42.json
  keel history 0b7c2f4e-5d1a-4f7e-9a43-2a1c3e0d9b11 --db postgres://keel@db/keel`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runHistory(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), db, args[0], asJSON)
		},
	}
	dbFlag(cmd, &db)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the full history as JSON (the format keel replay reads)")
	return asClientCmd(cmd)
}

func runHistory(ctx context.Context, stdout, stderr io.Writer, db, id string, asJSON bool) error {
	if id == "" {
		return usageErrorf("history: the run or workflow ID is empty")
	}
	e, closeStore, err := openEngine(ctx, db, false, &durable.Config{Logger: clientLogger(stderr)})
	if err != nil {
		return err
	}
	defer closeStore()
	info, err := findRun(ctx, e, "history", id)
	if err != nil {
		return err
	}
	if asJSON {
		data, err := e.ExportHistory(ctx, info.RunID)
		if err != nil {
			return fmt.Errorf("history: %w", err)
		}
		if len(data) > 0 && data[len(data)-1] != '\n' {
			data = append(data, '\n')
		}
		_, err = stdout.Write(data)
		return err
	}
	h, err := e.GetHistory(ctx, info.RunID)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	attempts, err := e.ActivityAttempts(ctx, info.RunID)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}

	fmt.Fprintf(stdout, "Run %s of workflow %s (%s): %s\n", info.RunID, info.WorkflowID, info.WorkflowType, info.Status)
	fmt.Fprintf(stdout, "Task queue %s, created %s, closed %s, %d events\n", info.TaskQueue, formatTime(info.CreatedAt), formatTime(info.ClosedAt), len(h.Events))
	if info.CancelRequested && !info.Status.Closed() {
		fmt.Fprintf(stdout, "Cancel requested\n")
	}
	if info.LastTaskFailure != "" && !info.Status.Closed() {
		fmt.Fprintf(stdout, "Blocked: its last workflow task failed: %s\n", abbrev(info.LastTaskFailure, 300))
	}
	fmt.Fprintln(stdout)
	f := newEventFormatter()
	day := info.CreatedAt.Local().Format(time.DateOnly)
	for _, ev := range h.Events {
		if d := ev.Time.Local().Format(time.DateOnly); d != day {
			fmt.Fprintf(stdout, "  ── %s\n", d)
			day = d
		}
		fmt.Fprintln(stdout, f.line(ev))
	}

	var failed []durable.Attempt
	for _, a := range attempts {
		if a.Outcome != "completed" {
			failed = append(failed, a)
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(stdout, "\nActivity attempts that did not complete (kept outside the history):\n")
		for _, a := range failed {
			msg := a.Outcome
			if a.Error != "" {
				msg += ": " + abbrev(a.Error, 200)
			}
			fmt.Fprintf(stdout, "  %s  %s attempt %d on %s: %s\n", a.StartedAt.Local().Format("15:04:05.000"), a.ActivityType, a.Attempt, a.Owner, msg)
		}
	}
	return nil
}

// payloadWidth is how much of a payload a timeline line shows.
const payloadWidth = 60

// eventFormatter turns history events into one-line summaries. It remembers
// what each command's sequence number names (an activity, a timer, a
// child), so that the event answering it says what it answers.
type eventFormatter struct {
	labels map[int64]string
}

func newEventFormatter() *eventFormatter {
	return &eventFormatter{labels: map[int64]string{}}
}

// line formats ev as one timeline line: ID, time, type, details.
func (f *eventFormatter) line(ev durable.HistoryEvent) string {
	return strings.TrimRight(fmt.Sprintf("%4d  %s  %-24s %s", ev.ID, ev.Time.Local().Format("15:04:05.000"), ev.Type, f.describe(ev)), " ")
}

// describe summarizes the important fields of ev.
func (f *eventFormatter) describe(ev durable.HistoryEvent) string {
	if codec.IsEnvelope(ev.Data) {
		return "(encoded: set " + codec.KeysEnv + " to the application's payload keys to read it)"
	}
	d, err := ev.Details()
	if err != nil {
		return "(undecodable: " + err.Error() + ")"
	}
	var parts []string
	add := func(s string) {
		if s != "" {
			parts = append(parts, s)
		}
	}
	switch ev.Type {
	case durable.EventActivityScheduled, durable.EventChildWorkflowInitiated:
		f.labels[d.Seq] = d.Name
	case durable.EventTimerStarted:
		f.labels[d.Seq] = "timer " + d.Duration.String()
	case durable.EventExternalSignalInitiated:
		f.labels[d.Seq] = "signal " + d.Name + " to " + d.WorkflowID
	case durable.EventExternalCancelInitiated:
		f.labels[d.Seq] = "cancel of " + d.WorkflowID
	}

	label := d.Name
	switch ev.Type {
	case durable.EventActivityCompleted, durable.EventActivityFailed, durable.EventTimerFired,
		durable.EventChildWorkflowStartFailed, durable.EventChildWorkflowCompleted, durable.EventChildWorkflowFailed,
		durable.EventExternalRequestDone, durable.EventExternalRequestFailed:
		if l := f.labels[d.Seq]; l != "" {
			label = l
		}
	case durable.EventActivityCancelRequested, durable.EventTimerCanceled:
		label = f.labels[d.Target]
	case durable.EventTimerStarted:
		label = f.labels[d.Seq]
		if !d.FireAt.IsZero() {
			label += ", fires " + d.FireAt.Local().Format("15:04:05.000")
		}
	case durable.EventExternalSignalInitiated, durable.EventExternalCancelInitiated:
		label = f.labels[d.Seq]
	}
	add(label)
	switch ev.Type {
	case durable.EventWorkflowStarted, durable.EventChildWorkflowInitiated:
		add("id " + d.WorkflowID)
		if d.ParentWorkflowID != "" {
			add("parent " + d.ParentWorkflowID)
		}
	}
	if d.Attempt > 0 {
		add("attempt " + strconv.Itoa(d.Attempt))
	}
	if d.Reason != "" {
		add("reason " + strconv.Quote(abbrev(d.Reason, payloadWidth)))
	}
	if d.RunID != "" {
		add("run " + d.RunID)
	}
	if len(d.Input) > 0 {
		name := "input"
		if ev.Type == durable.EventSignalReceived || ev.Type == durable.EventExternalSignalInitiated {
			name = "payload"
		}
		add(name + " " + abbrevJSON(d.Input, payloadWidth))
	}
	if len(d.Result) > 0 {
		add("result " + abbrevJSON(d.Result, payloadWidth))
	}
	if d.Error != nil {
		add("error: " + abbrev(d.Error.Error(), 2*payloadWidth))
	}
	return strings.Join(parts, "  ")
}
