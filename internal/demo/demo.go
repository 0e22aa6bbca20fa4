// Package demo is the program behind `keel demo`: a support workflow of four
// durable steps whose worker process is killed with SIGKILL in the middle of
// a step, and resumed by a new worker process that repeats nothing already
// recorded.
package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
)

// WorkflowID is the ID of the demo's run.
const WorkflowID = "support-ticket-1042"

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

// stepMarker is printed by a worker when a step starts; the parent kills the
// first worker when it sees the generate-reply step begin.
const stepMarker = "KEEL-STEP "

// Run plays the demo: it starts a worker process, kills it with SIGKILL
// during step 3, starts a second worker that resumes the run, and prints the
// run's history.
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
	fmt.Fprintf(out, "Keel demo: a support workflow of 4 durable steps, stored in %s\n", o.DB)
	fmt.Fprintf(out, "The worker process will be killed with SIGKILL in the middle of step 3.\n\n")

	// First worker: killed as soon as step 3 starts.
	first := o.WorkerCommand(o.DB)
	if err := runWorker(out, first, "worker 1", func(line string) bool {
		return strings.HasPrefix(line, stepMarker+"3 ")
	}); err != nil {
		return err
	}

	fmt.Fprintf(out, "\nStarting a new worker process; it resumes the run where the history ends.\n")
	fmt.Fprintf(out, "(It first waits for the dead worker's lease on step 3 to expire.)\n\n")
	second := o.WorkerCommand(o.DB)
	if err := runWorker(out, second, "worker 2", nil); err != nil {
		return err
	}
	return printHistory(ctx, out, o.DB)
}

// runWorker runs a worker process, echoing its output; when kill returns true
// for a line, the process is killed with SIGKILL.
func runWorker(out io.Writer, cmd *exec.Cmd, name string, kill func(line string) bool) error {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("demo: start %s: %w", name, err)
	}
	fmt.Fprintf(out, "[%s] started, pid %d\n", name, cmd.Process.Pid)
	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, stepMarker) {
			fmt.Fprintf(out, "[%s] %s\n", name, strings.TrimPrefix(line, stepMarker)[2:])
		} else {
			fmt.Fprintf(out, "[%s] %s\n", name, line)
		}
		if kill != nil && !killed && kill(line) {
			killed = true
			// Process.Kill sends SIGKILL: no deferred code, no cleanup.
			if err := cmd.Process.Kill(); err != nil {
				return fmt.Errorf("demo: kill %s: %w", name, err)
			}
			fmt.Fprintf(out, "[%s] ✗ killed with SIGKILL in the middle of step 3\n", name)
		}
	}
	err = cmd.Wait()
	if killed {
		return nil
	}
	if err != nil {
		return fmt.Errorf("demo: %s: %w", name, err)
	}
	return nil
}

func printHistory(ctx context.Context, out io.Writer, db string) error {
	st, err := sqlitestore.Open(db, nil)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer st.Close()
	e, err := durable.New(st, nil)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	info, err := e.Describe(ctx, WorkflowID)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	h, err := e.GetHistory(ctx, info.RunID)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(out, "\nRun %s is %s. Its history:\n", info.RunID, info.Status)
	for _, ev := range h.Events {
		var d struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(ev.Data, &d) // the name is decoration only
		fmt.Fprintf(out, "  %2d  %-18s %s\n", ev.ID, ev.Type, d.Name)
	}
	atts, err := e.ActivityAttempts(ctx, info.RunID)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(out, "\nActivity attempts:\n")
	for _, a := range atts {
		msg := a.Outcome
		if a.Error != "" {
			msg += " (" + a.Error + ")"
		}
		fmt.Fprintf(out, "  step %d %-15s attempt %d on %-16s %s\n", a.Seq, a.ActivityType, a.Attempt, a.Owner, msg)
	}
	fmt.Fprintf(out, "\nSteps 1 and 2 ran once, step 3 ran again with the same idempotency key, and the email was sent once.\n")
	return nil
}

// Ticket is the demo workflow's input.
type Ticket struct {
	CustomerID string `json:"customer_id"`
	Question   string `json:"question"`
}

// Support is the demo's workflow: fetch a customer, search the knowledge
// base, generate a reply with the offline model, send the email.
type Support = durable.Workflow[Ticket, string]

// Definitions returns the demo's workflow and its activities; the
// activities narrate each step to out as it happens.
func Definitions(out io.Writer) (*Support, []durable.Definition) {
	say := func(ctx context.Context, step int, format string, args ...any) {
		info, _ := durable.GetActivityInfo(ctx)
		fmt.Fprintf(out, "%s%d → step %d %s (attempt %d, key %s)\n", stepMarker, step, step, fmt.Sprintf(format, args...), info.Attempt, info.IdempotencyKey)
	}
	opts := &durable.ActivityOptions{StartToCloseTimeout: 3 * time.Second, RetryPolicy: durable.RetryPolicy{InitialInterval: 100 * time.Millisecond}}
	fetch := durable.NewActivity("fetch-customer", func(ctx context.Context, id string) (string, error) {
		say(ctx, 1, "fetch customer %s", id)
		return "Ada Lovelace <ada@example.com>", nil
	}, opts)
	search := durable.NewActivity("search-kb", func(ctx context.Context, q string) (string, error) {
		say(ctx, 2, "search the knowledge base for %q", q)
		return "KB-12: passwords are reset from Settings → Security", nil
	}, opts)
	generate := durable.NewActivity("generate-reply", func(ctx context.Context, prompt string) (string, error) {
		say(ctx, 3, "generate a reply with the offline model")
		select { // the model thinks for a while
		case <-time.After(1500 * time.Millisecond):
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return "Hi Ada, you can reset your password from Settings → Security. [offline model]", nil
	}, opts)
	send := durable.NewActivity("send-email", func(ctx context.Context, body string) (string, error) {
		say(ctx, 4, "send the email (shown, not sent): %q", body)
		return "queued", nil
	}, opts)
	support := durable.NewWorkflow("support", func(ctx durable.Context, t Ticket) (string, error) {
		customer, err := fetch.Run(ctx, t.CustomerID)
		if err != nil {
			return "", err
		}
		article, err := search.Run(ctx, t.Question)
		if err != nil {
			return "", err
		}
		reply, err := generate.Run(ctx, customer+"\n"+t.Question+"\n"+article)
		if err != nil {
			return "", err
		}
		if _, err := send.Run(ctx, reply); err != nil {
			return "", err
		}
		return reply, nil
	})
	return support, []durable.Definition{fetch, search, generate, send, support}
}

// Worker runs one demo worker process: it starts the demo run, or finds it
// running, and works until the run completes.
func Worker(ctx context.Context, db string, out io.Writer) error {
	st, err := sqlitestore.Open(db, nil)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	defer st.Close()
	e, err := durable.New(st, &durable.Config{PollInterval: 100 * time.Millisecond, WorkflowTaskTimeout: 2 * time.Second})
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	support, defs := Definitions(out)
	e.MustRegister(defs...)
	e.NewWorker(nil)
	if err := e.Start(ctx); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	defer func() { _ = e.Stop(context.Background()) }()
	h, err := support.Start(ctx, e, Ticket{CustomerID: "cus_1042", Question: "How do I reset my password?"}, &durable.StartOptions{ID: WorkflowID})
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if h.Created() {
		fmt.Fprintf(out, "started run %s of workflow %s\n", h.RunID(), WorkflowID)
	} else {
		fmt.Fprintf(out, "found run %s of workflow %s already running; resuming it\n", h.RunID(), WorkflowID)
	}
	reply, err := h.Result(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("worker: run did not finish in time: %w", err)
		}
		return fmt.Errorf("worker: %w", err)
	}
	fmt.Fprintf(out, "✓ run completed: %s\n", reply)
	return nil
}
