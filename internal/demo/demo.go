// Package demo is the program behind `keel demo`: the support agent of
// examples/support answers a customer on the offline model, and its worker
// process is killed with SIGKILL in the middle of the run; a new worker
// process resumes it, and the demo shows that no model answer was asked
// for twice, no email sent twice and no fee charged twice.
package demo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/examples/catalog"
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/examples/support"
	"github.com/keelhq/keel/llm"
)

// WorkflowID is the ID of the demo's run.
const WorkflowID = "support-T-1"

// Options configure the demo.
type Options struct {
	// DB is the SQLite file. Optional; default a file in a new temporary
	// directory.
	DB string
	// WorkerCommand returns the command of a worker process (one that calls
	// Worker) on the SQLite file db. Required.
	WorkerCommand func(db string) *exec.Cmd
	// Out receives the demo's narration. Optional; default os.Stdout.
	Out io.Writer
}

// modelMarker starts the line a worker prints when it asks the model; the
// parent kills the first worker when the second call starts.
const modelMarker = "KEEL-MODEL "

// Run plays the demo: it starts a worker process, kills it with SIGKILL
// while the agent waits for its second model answer, starts a second
// worker that resumes the run, and prints what happened.
func Run(ctx context.Context, o Options) error {
	out := o.Out
	if out == nil {
		out = os.Stdout
	}
	if o.DB == "" {
		dir, err := os.MkdirTemp("", "keel-demo-")
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		o.DB = filepath.Join(dir, "keel.db")
	}
	fmt.Fprintf(out, "Keel demo: a support agent answers ticket T-1 (\"I was charged twice\"), stored in %s.\n", o.DB)
	fmt.Fprintf(out, "It reads the ticket, the CRM and the knowledge base, asks the model, emails the customer,\n")
	fmt.Fprintf(out, "solves the ticket and bills $0.99. Its worker process will be killed with SIGKILL\n")
	fmt.Fprintf(out, "while the agent waits for the model's second answer.\n\n")

	first := o.WorkerCommand(o.DB)
	calls1, err := runWorker(out, first, "worker 1", func(line string) bool {
		return strings.HasPrefix(line, modelMarker+"2 ")
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nStarting a new worker process; it resumes the run where its history ends.\n")
	fmt.Fprintf(out, "(It first waits for the dead worker's leases to expire.)\n\n")
	second := o.WorkerCommand(o.DB)
	calls2, err := runWorker(out, second, "worker 2", nil)
	if err != nil {
		return err
	}
	return report(ctx, out, o.DB, calls1+calls2)
}

// runWorker runs a worker process, echoing its output; when kill returns true
// for a line, the process is killed with SIGKILL. It returns how many model
// calls the worker made.
func runWorker(out io.Writer, cmd *exec.Cmd, name string, kill func(line string) bool) (int, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, fmt.Errorf("demo: %w", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("demo: start %s: %w", name, err)
	}
	fmt.Fprintf(out, "[%s] started, pid %d\n", name, cmd.Process.Pid)
	killed, calls := false, 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, modelMarker); ok {
			calls++
			_, text, _ := strings.Cut(rest, " ")
			fmt.Fprintf(out, "[%s] %s\n", name, text)
		} else {
			fmt.Fprintf(out, "[%s] %s\n", name, line)
		}
		if kill != nil && !killed && kill(line) {
			killed = true
			// Process.Kill sends SIGKILL: no deferred code, no cleanup.
			if err := cmd.Process.Kill(); err != nil {
				return calls, fmt.Errorf("demo: kill %s: %w", name, err)
			}
			fmt.Fprintf(out, "[%s] ✗ killed with SIGKILL while the model was answering\n", name)
		}
	}
	err = cmd.Wait()
	if killed {
		return calls, nil
	}
	if err != nil {
		return calls, fmt.Errorf("demo: %s: %w", name, err)
	}
	return calls, nil
}

// report prints the run's outcome, its effects and its history.
func report(ctx context.Context, out io.Writer, db string, calls int) error {
	st, adb, closeDB, err := setup.Open(ctx, db)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer closeDB()
	e, err := durable.New(st, nil)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	env, err := setup.New(ctx, e, adb, &setup.Config{NoDemoData: true, Logger: quiet()})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer env.Close()
	info, err := e.Describe(ctx, WorkflowID)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(out, "\nRun %s is %s.\n\n", info.WorkflowID, info.Status)
	if err := env.PrintOutbox(ctx, out, time.Time{}); err != nil {
		return err
	}
	if err := env.PrintLedger(ctx, out, time.Time{}); err != nil {
		return err
	}
	recorded, err := modelAnswers(ctx, e)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nThe model was asked %d times by the two workers and %d answers are recorded:\n", calls, recorded)
	fmt.Fprintf(out, "the answer recorded before the kill was not asked for again; only the call that was\n")
	fmt.Fprintf(out, "in flight when the worker died was made again. One email, one charge.\n")
	fmt.Fprintf(out, "Inspect the run with: keel history %s --db %s\n", WorkflowID, db)
	return nil
}

// modelAnswers counts the recorded model answers of the demo run and its
// child runs (the support agent runs as a child).
func modelAnswers(ctx context.Context, e *durable.Engine) (int, error) {
	runs, _, err := e.ListRuns(ctx, &durable.ListOptions{Limit: 100})
	if err != nil {
		return 0, fmt.Errorf("demo: %w", err)
	}
	n := 0
	for _, r := range runs {
		if !strings.HasPrefix(r.WorkflowID, WorkflowID) {
			continue
		}
		h, err := e.GetHistory(ctx, r.RunID)
		if err != nil {
			return 0, fmt.Errorf("demo: %w", err)
		}
		scheduled := map[int64]bool{}
		for _, ev := range h.Events {
			d, err := ev.Details()
			if err != nil {
				continue
			}
			switch ev.Type {
			case durable.EventActivityScheduled:
				if d.Name == modelActivity {
					scheduled[d.Seq] = true
				}
			case durable.EventActivityCompleted:
				if scheduled[d.Seq] {
					n++
				}
			}
		}
	}
	return n, nil
}

// modelActivity is the agent runtime's model-call activity.
const modelActivity = "agent.model"

// Worker runs one demo worker process: it starts the demo run, or finds it
// running, and works until the run completes.
func Worker(ctx context.Context, db string, out io.Writer) error {
	st, adb, closeDB, err := setup.Open(ctx, db)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	defer closeDB()
	e, err := durable.New(st, &durable.Config{PollInterval: 100 * time.Millisecond, WorkflowTaskTimeout: 2 * time.Second,
		Logger: quiet()})
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	base, err := setup.ModelFromEnv()
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	model := &narrated{Model: base, out: out, delay: 700 * time.Millisecond}
	cat, err := catalog.Register(ctx, e, adb, &catalog.Config{Model: model, Logger: quiet()})
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	defer cat.Env.Close()
	for _, q := range cat.TaskQueues() {
		e.NewWorker(&durable.WorkerOptions{TaskQueue: q})
	}
	if err := e.Start(ctx); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	defer func() { _ = e.Stop(context.Background()) }()
	h, err := cat.Support.Start(ctx, support.Request{TicketID: "T-1", Message: "I was charged twice"},
		&durable.StartOptions{ID: WorkflowID})
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if h.Created() {
		fmt.Fprintf(out, "started run %s of workflow %s\n", h.RunID(), WorkflowID)
	} else {
		fmt.Fprintf(out, "found run %s of workflow %s running; resuming it\n", h.RunID(), WorkflowID)
	}
	res, err := h.Result(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("worker: run did not finish in time: %w", err)
		}
		return fmt.Errorf("worker: %w", err)
	}
	fmt.Fprintf(out, "✓ run completed: ticket %s %s → %s; fee %s\n", res.TicketID, res.StatusBefore, res.StatusAfter, res.Fee.Status)
	fmt.Fprintf(out, "  agent's summary: %s\n", firstLine(res.Answer))
	return nil
}

// narrated is a model that says when it is asked, and takes its time, so
// that the demo can kill the worker while it answers.
type narrated struct {
	llm.Model
	out   io.Writer
	delay time.Duration
}

func (m *narrated) Chat(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	// The turn is read from the conversation, so it is the same whichever
	// worker makes the call.
	turn := 1
	for _, msg := range req.Messages {
		if msg.Role == llm.RoleAssistant {
			turn++
		}
	}
	fmt.Fprintf(m.out, "%s%d → model call for turn %d: %d messages, %d tools offered\n", modelMarker, turn, turn, len(req.Messages), len(req.Tools))
	select {
	case <-time.After(m.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	resp, err := m.Model.Chat(ctx, req)
	if err == nil && resp != nil {
		var calls []string
		for _, c := range resp.Message.ToolCalls {
			calls = append(calls, c.Name)
		}
		if len(calls) > 0 {
			fmt.Fprintf(m.out, "  ← the model asks for %s\n", strings.Join(calls, ", "))
		} else {
			fmt.Fprintf(m.out, "  ← the model answers: %s\n", firstLine(resp.Message.Content))
		}
	}
	return resp, err
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 110 {
		s = s[:110] + "…"
	}
	return s
}
