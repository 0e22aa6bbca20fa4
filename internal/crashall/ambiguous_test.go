//go:build failpoints

package crashall_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/internal/failpoint"
	"github.com/keelhq/keel/internal/reliability"
)

// ambiguousSpec makes 1% of the hits of every ".after" failpoint an
// ambiguous commit: the write committed, its caller is told it failed.
const ambiguousSpec = "*.after=ambiguous%1"

// mixedIn is the input of the ambiguous-commit workflow.
type mixedIn struct {
	I   int `json:"i"`
	Gen int `json:"gen"`
}

func mixedID(i int) string { return "mixed-" + strconv.Itoa(i) }

// mixedFunc runs an activity, a timer, waits for a signal, runs a child
// (with a heartbeating activity), charges every tenth customer, retries a
// flaky activity for every fifth, and continues as new once.
func (w *workload) mixedFunc(ctx durable.Context, in mixedIn) (string, error) {
	id := mixedID(in.I)
	if in.Gen > 0 {
		r, err := w.effect.Run(ctx, effectIn{Name: "after-continue", Arg: id})
		if err != nil {
			return "", err
		}
		return id + ": " + r, nil
	}
	if _, err := w.effect.Run(ctx, effectIn{Name: "first", Arg: id}); err != nil {
		return "", err
	}
	if err := durable.Sleep(ctx, 10*time.Millisecond); err != nil {
		return "", err
	}
	if _, err := goSignal.Receive(ctx); err != nil {
		return "", err
	}
	if _, err := w.ship.RunChild(ctx, id, &durable.ChildOptions{ID: id + "-ship"}); err != nil {
		return "", err
	}
	if in.I%10 == 0 {
		if _, err := w.charge.Run(ctx, id); err != nil {
			return "", err
		}
	}
	if in.I%5 == 0 {
		if _, err := w.flaky.Run(ctx, effectIn{Name: "notify", Arg: id}); err != nil {
			return "", err
		}
	}
	return "", w.mixed.ContinueAsNew(ctx, mixedIn{I: in.I, Gen: 1})
}

// mixedResult is what mixed-i returns.
func mixedResult(i int) string {
	return mixedID(i) + ": after-continue " + mixedID(i) + " done"
}

// runAmbiguous starts the workflows, signals each, and waits until none
// is running. Every client call is retried until it succeeds, as a caller
// that got an ambiguous error must: a start of a running workflow ID
// returns its run, a signal repeated with its request ID is applied once.
func runAmbiguous(ctx context.Context) (string, error) {
	n, err := strconv.Atoi(os.Getenv(envN))
	if err != nil {
		return "", err
	}
	v, err := openEnv(ctx, durable.Config{WorkflowTaskTimeout: 2 * time.Second})
	if err != nil {
		return "", err
	}
	defer v.close()
	if _, err := v.db.ExecContext(ctx, effectsTable); err != nil {
		return "", err
	}
	bill, err := v.billing(ctx)
	if err != nil {
		return "", err
	}
	defer bill.Close()
	w := newWorkload(v.db, bill)
	v.e.MustRegister(w.defs()...)
	v.e.NewWorker(&durable.WorkerOptions{MaxConcurrentWorkflowTasks: 32, MaxConcurrentActivities: 64})
	if err := v.e.Start(ctx); err != nil {
		return "", err
	}
	defer v.e.Stop(context.Background())

	retried := 0
	retry := func(what string, op func() error) error {
		for {
			err := op()
			if err == nil || !errors.Is(err, failpoint.ErrInjected) {
				return err
			}
			retried++
			if ctx.Err() != nil {
				return fmt.Errorf("%s: %w", what, ctx.Err())
			}
		}
	}
	runIDs := make([]string, n)
	for i := range n {
		raw, _ := json.Marshal(mixedIn{I: i})
		err := retry("start", func() error {
			info, err := v.e.StartWorkflow(ctx, w.mixed.Name(), raw, &durable.StartOptions{ID: mixedID(i), IDReusePolicy: durable.RejectDuplicate})
			runIDs[i] = info.RunID
			return err
		})
		if err != nil {
			return "", fmt.Errorf("start %s: %w", mixedID(i), err)
		}
	}
	for i := range n {
		err := retry("signal", func() error {
			return v.e.Signal(ctx, mixedID(i), goSignal.Name(), json.RawMessage(`"go"`),
				&durable.SignalOptions{RunID: runIDs[i], RequestID: "go-" + strconv.Itoa(i)})
		})
		if err != nil {
			return "", fmt.Errorf("signal %s: %w", mixedID(i), err)
		}
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		running, _, err := v.e.ListRuns(ctx, &durable.ListOptions{Status: durable.StatusRunning, Limit: 5})
		if err != nil {
			return "", err
		}
		if len(running) == 0 {
			return fmt.Sprintf("client calls retried after an injected error: %d", retried), nil
		}
		select {
		case <-ctx.Done():
			ids := make([]string, len(running))
			for i, r := range running {
				ids[i] = r.WorkflowID + " " + r.LastTaskFailure
			}
			return "", fmt.Errorf("still running, among others: %s", strings.Join(ids, "; "))
		case <-tick.C:
		}
	}
}

func TestAmbiguousCommits(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{onSQLite, onPostgres} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ambiguousCommits(t, kind, reliability.Pick(500, 10000))
		})
	}
}

// ambiguousTimeout bounds the ambiguous-commit child process.
func ambiguousTimeout(n int) time.Duration {
	return childTimeout + time.Duration(n)*80*time.Millisecond
}

func ambiguousCommits(t *testing.T, kind string, n int) {
	began := time.Now()
	w := newWorkspace(t, kind)
	ctx, cancel := context.WithTimeout(context.Background(), ambiguousTimeout(n)+time.Minute)
	defer cancel()
	p := w.run(ctx, "ambiguous", 0, failpoint.EnvSpec+"="+ambiguousSpec, envN+"="+strconv.Itoa(n))
	require.NoError(t, p.err, p.output)

	s, f := collect(t, w)
	require.Empty(t, checkWellFormed(f), "malformed histories")

	// Every workflow completed once, with its result, in two runs (the
	// second continued from the first); every child once.
	for i := range n {
		id := mixedID(i)
		require.Equal(t, finalRun{Status: durable.StatusCompleted, Result: strconv.Quote(mixedResult(i))}, f.Final[id], id)
		require.Len(t, s.Runs[id], 2, id)
		require.Equal(t, string(durable.StatusContinuedAsNew), s.Runs[id][0].Status, id)
		require.Len(t, s.Runs[id+"-ship"], 1, id)
		require.Equal(t, string(durable.StatusCompleted), s.Runs[id+"-ship"][0].Status, id)
	}
	require.Len(t, s.Runs, 2*n, "no other workflow")

	// Each signal received once.
	for runID, evs := range f.Histories {
		signals := 0
		for _, ev := range evs {
			if ev.Type == durable.EventSignalReceived {
				signals++
			}
		}
		if strings.HasSuffix(f.RunWorkflow[runID], "-ship") || f.Histories[runID][len(evs)-1].Type == durable.EventWorkflowCompleted {
			require.Zero(t, signals, f.RunWorkflow[runID])
		} else {
			require.Equal(t, 1, signals, f.RunWorkflow[runID])
		}
	}

	// Every side effect once, and only those expected.
	var want []string
	charges := 0
	for i := range n {
		id := mixedID(i)
		want = append(want, id+" first "+id, id+"-ship pack "+id, id+"-ship label "+id, id+" after-continue "+id)
		if i%5 == 0 {
			want = append(want, id+" notify "+id)
		}
		if i%10 == 0 {
			charges++
		}
	}
	sort.Strings(want)
	require.Empty(t, duplicates(s.Effects), "side effects recorded twice")
	require.Equal(t, want, s.Effects)
	require.Len(t, s.Ledger, charges)
	require.Len(t, s.Charges, charges)
	require.Equal(t, f.ChargeIDs, f.LedgerStripeIDs, "the ledger and Stripe disagree")
	for _, l := range s.Ledger {
		require.Equal(t, "charge succeeded 4200 usd", l)
	}

	var injected int64
	var where []string
	for name, k := range p.report.Fired {
		injected += k
		where = append(where, name+"="+strconv.FormatInt(k, 10))
	}
	sort.Strings(where)
	require.Positive(t, injected, "no ambiguous commit was injected")
	t.Logf("ambiguous commits on %s: %d workflows (%d runs), %d ambiguous commits injected (%s); %s; "+
		"0 lost, 0 duplicate events, 0 duplicate side effects; %d activity re-executions; %s",
		kind, n, len(f.Histories), injected, strings.Join(where, " "), p.report.Note, f.Reexecutions, time.Since(began).Round(time.Second))
}
