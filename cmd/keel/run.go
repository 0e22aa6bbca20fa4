package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keelhq/keel/durable"
)

func init() { commands = append(commands, runCmd) }

// runOptions are keel run's flags.
type runOptions struct {
	db       string
	input    string
	id       string
	queue    string
	wait     bool
	noWait   bool
	noWorker bool
	timeout  time.Duration
	asJSON   bool
}

// runOutcome is what keel run --json prints.
type runOutcome struct {
	RunID      string          `json:"run_id"`
	WorkflowID string          `json:"workflow_id"`
	Status     durable.Status  `json:"status"`
	Result     json.RawMessage `json:"result,omitempty"`
	Error      string          `json:"error,omitempty"`
}

const (
	// runPollInterval is how often keel run looks for new history events,
	// and its engine's slow poll.
	runPollInterval = 200 * time.Millisecond
	// runStopTimeout bounds how long keel run's in-process worker may
	// finish in-flight tasks (of other runs on its queue) before it exits;
	// activities still running then are canceled and retried elsewhere.
	runStopTimeout = 5 * time.Second
)

func runCmd() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run WORKFLOW [--input JSON]",
		Short: "Start a run of a workflow or agent and wait for its result",
		Long: `Start a run of a workflow built into keel (an agent is the workflow registered
under the agent's name) on the database, and wait for it to close.

While it waits, keel run works the run itself with an in-process worker on the
run's task queue, so the run executes even when no other worker is running;
that worker also takes other work of its queue meanwhile, as any worker would.
With --no-worker it only starts and watches the run, for when workers run
elsewhere (keel worker, keel serve). --no-wait starts the run and exits at
once; a worker elsewhere then executes it.

While waiting, each new history event is shown on stderr as one line (time,
event type, activity name…). The result is printed on stdout: a JSON string
as plain text, anything else as JSON; a failed, canceled or terminated run
prints its error instead and exits 1. --json prints one JSON object instead:
{"run_id", "workflow_id", "status", "result" or "error"}.

--input takes JSON inline, @FILE to read it from a file, or - for stdin.
Starting a workflow ID that is already running waits for that run instead
of starting a second one.

Workflows in this build: ` + strings.Join(knownWorkflows(), ", ") + `.`,
		Example: `  keel run support --input '{"customer_id": "cus_7", "question": "Where is my invoice?"}'
  keel run support --input @ticket.json --id ticket-7 --timeout 2m --json
  keel run support --input @ticket.json --no-wait --db postgres://keel@db/keel`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("wait") && cmd.Flags().Changed("no-wait") && o.wait == o.noWait {
				return usageErrorf("run: --wait and --no-wait contradict each other")
			}
			if o.noWait {
				o.wait = false
			}
			return runRun(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], o)
		},
	}
	dbFlag(cmd, &o.db)
	f := cmd.Flags()
	f.StringVar(&o.input, "input", "null", "the workflow's input: JSON, @FILE, or - for stdin")
	f.StringVar(&o.id, "id", "", "workflow ID (default: a new UUID)")
	f.StringVar(&o.queue, "queue", "default", "task queue of the run (and of the in-process worker)")
	f.BoolVar(&o.wait, "wait", true, "wait for the run to close and print its result")
	f.BoolVar(&o.noWait, "no-wait", false, "start the run and exit; a worker elsewhere executes it")
	f.BoolVar(&o.noWorker, "no-worker", false, "do not work the run in this process (workers run elsewhere)")
	f.DurationVar(&o.timeout, "timeout", 0, "stop waiting after this long, e.g. 30s, and exit 4 (default: wait until the run closes)")
	f.BoolVar(&o.asJSON, "json", false, `print {"run_id","workflow_id","status","result"|"error"} as JSON`)
	return asClientCmd(cmd)
}

func runRun(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, name string, o runOptions) error {
	known := knownWorkflows()
	if !slices.Contains(known, name) {
		return usageErrorf("run: unknown workflow %q (known: %s)", name, strings.Join(known, ", "))
	}
	input, err := readJSONArg("run", "input", o.input, stdin)
	if err != nil {
		return err
	}
	if o.timeout < 0 {
		return usageErrorf("run: --timeout must not be negative")
	}
	if strings.TrimSpace(o.queue) == "" {
		return usageErrorf("run: --queue is empty")
	}

	e, closeStore, err := openEngine(ctx, o.db, true, &durable.Config{Logger: clientLogger(stderr), PollInterval: runPollInterval})
	if err != nil {
		return err
	}
	defer closeStore()
	if err := e.Register(knownDefinitions()...); err != nil {
		return err
	}
	if o.wait && !o.noWorker {
		e.NewWorker(&durable.WorkerOptions{TaskQueue: o.queue})
		if err := e.Start(context.WithoutCancel(ctx)); err != nil {
			return err
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), runStopTimeout)
			defer cancel()
			_ = e.Stop(stopCtx)
		}()
	}

	info, err := e.StartWorkflow(ctx, name, input, &durable.StartOptions{ID: o.id, TaskQueue: o.queue})
	switch {
	case errors.Is(err, durable.ErrPayloadTooLarge):
		return usageErrorf("run: %v", err)
	case errors.Is(err, durable.ErrWorkflowIDInUse):
		return failedErrorf("run: %v", err)
	case err != nil:
		return fmt.Errorf("run: %w", err)
	}
	if info.Created {
		fmt.Fprintf(stderr, "started run %s of workflow %s (%s)\n", info.RunID, info.WorkflowID, name)
	} else {
		fmt.Fprintf(stderr, "workflow %s is already running as run %s (%s): watching that run\n", info.WorkflowID, info.RunID, info.WorkflowType)
	}
	if !o.wait {
		if o.asJSON {
			return writeJSONLine(stdout, runOutcome{RunID: info.RunID, WorkflowID: info.WorkflowID, Status: info.Status})
		}
		fmt.Fprintln(stdout, info.WorkflowID)
		return nil
	}
	return waitForRun(ctx, e, info, o, stdout, stderr)
}

// waitForRun shows the run's new history events on stderr until it closes,
// then prints its outcome.
func waitForRun(ctx context.Context, e *durable.Engine, info durable.RunInfo, o runOptions, stdout, stderr io.Writer) error {
	waitCtx, cancel := ctx, context.CancelFunc(func() {})
	if o.timeout > 0 {
		waitCtx, cancel = context.WithTimeout(ctx, o.timeout)
	}
	defer cancel()

	type result struct {
		value json.RawMessage
		err   error
	}
	done := make(chan result, 1)
	go func() {
		v, err := e.Result(waitCtx, info.RunID)
		done <- result{v, err}
	}()
	p := &progress{e: e, out: stderr, runID: info.RunID, f: newEventFormatter()}
	tick := time.NewTicker(runPollInterval)
	defer tick.Stop()
	var res result
wait:
	for {
		select {
		case res = <-done:
			break wait
		case <-tick.C:
			p.show(waitCtx) // a failed read is retried at the next tick
		}
	}

	var app *durable.ApplicationError
	if res.err != nil && waitCtx.Err() != nil && !errors.As(res.err, &app) {
		why := fmt.Sprintf("gave up waiting after %s", o.timeout)
		if ctx.Err() != nil {
			why = "interrupted"
		}
		if o.asJSON {
			_ = writeJSONLine(stdout, runOutcome{RunID: p.runID, WorkflowID: info.WorkflowID, Status: durable.StatusRunning})
		}
		return &exitError{code: exitTimeout, err: fmt.Errorf("run: %s: run %s of workflow %s has not closed; a worker carries on with it (see keel history %s)",
			why, p.runID, info.WorkflowID, info.WorkflowID)}
	}
	// The rest of the history, following continue-as-new to the run that
	// closed.
	showCtx, cancelShow := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancelShow()
	p.show(showCtx)

	out := runOutcome{RunID: p.runID, WorkflowID: info.WorkflowID, Result: res.value}
	switch {
	case res.err == nil:
		out.Status = durable.StatusCompleted
	case errors.Is(res.err, durable.ErrCanceled):
		out.Status, out.Error = durable.StatusCanceled, res.err.Error()
	case errors.Is(res.err, durable.ErrTerminated):
		out.Status, out.Error = durable.StatusTerminated, res.err.Error()
	case errors.As(res.err, &app):
		out.Status, out.Error = durable.StatusFailed, res.err.Error()
	default:
		return fmt.Errorf("run: waiting for run %s: %w", p.runID, res.err)
	}
	if o.asJSON {
		if err := writeJSONLine(stdout, out); err != nil {
			return err
		}
	} else if out.Status == durable.StatusCompleted {
		fmt.Fprintln(stdout, formatResult(out.Result))
	} else {
		fmt.Fprintf(stdout, "run %s: %s\n", out.Status, out.Error)
	}
	if out.Status != durable.StatusCompleted {
		return exitSilently(exitFailed)
	}
	return nil
}

// formatResult returns a result for people: a JSON string as its text,
// anything else as indented JSON.
func formatResult(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "null"
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}

// progress prints a run's history events once each, following the run
// through continue-as-new.
type progress struct {
	e       *durable.Engine
	out     io.Writer
	runID   string
	printed int64
	f       *eventFormatter
	// taskFailure is the run's last workflow task failure, as last shown.
	taskFailure string
}

// show prints the events recorded since the last call.
func (p *progress) show(ctx context.Context) {
	for {
		info, err := p.e.DescribeRun(ctx, p.runID)
		if err != nil {
			return
		}
		if info.LastTaskFailure != p.taskFailure {
			p.taskFailure = info.LastTaskFailure
			if p.taskFailure != "" {
				fmt.Fprintf(p.out, "the run's workflow task failed; the run waits for code that can run it: %s\n", abbrev(p.taskFailure, 300))
			}
		}
		if info.HistoryLength <= p.printed {
			return
		}
		h, err := p.e.GetHistory(ctx, p.runID)
		if err != nil {
			return
		}
		next := ""
		for _, ev := range h.Events {
			if ev.ID <= p.printed {
				continue
			}
			fmt.Fprintln(p.out, p.f.line(ev))
			p.printed = ev.ID
			if ev.Type == durable.EventWorkflowContinuedAsNew {
				if d, err := ev.Details(); err == nil {
					next = d.RunID
				}
			}
		}
		if next == "" {
			return
		}
		fmt.Fprintf(p.out, "continued as new run %s\n", next)
		p.runID, p.printed, p.f = next, 0, newEventFormatter()
	}
}

// knownWorkflows returns the names of the workflows among
// knownDefinitions, sorted. A definition is a workflow when a replayer
// accepts a history that starts it: the durable package's own test of
// whether a name is a registered workflow.
func knownWorkflows() []string {
	defs := knownDefinitions()
	r, err := durable.NewReplayer(defs...)
	if err != nil {
		return nil
	}
	var names []string
	for _, d := range defs {
		n, ok := d.(interface{ Name() string })
		if !ok {
			continue
		}
		data, _ := json.Marshal(map[string]string{"name": n.Name()})
		h := &durable.History{
			Run:    durable.RunInfo{WorkflowType: n.Name()},
			Events: []durable.HistoryEvent{{ID: 1, Type: durable.EventWorkflowStarted, Time: time.Now(), Data: data}},
		}
		if err := r.Replay(h); !errors.Is(err, durable.ErrUnknownWorkflow) {
			names = append(names, n.Name())
		}
	}
	slices.Sort(names)
	return names
}
