//go:build failpoints

package crashall_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/sqlitestore"
)

// state is what a finished workload left behind, in the form compared
// between runs.
type state struct {
	// Runs holds, by workflow ID, the runs in creation order.
	Runs map[string][]runState
	// Effects lists the activities' side effects ("workflow name arg"),
	// one line per row of crash_effects, sorted.
	Effects []string
	// Ledger lists the billing ledger's entries ("kind status amount
	// currency"), sorted.
	Ledger []string
	// Charges lists the charges the fake Stripe executed ("customer amount
	// currency status"), sorted.
	Charges []string
	// Approvals and Votes list the approvals ("status") and the votes
	// ("reviewer approve status-after delivered").
	Approvals []string
	Votes     []string
}

// runState is one run, scrubbed of what differs between equivalent runs.
type runState struct {
	Type    string
	Status  string
	Outcome string // result or failure
	History []string
}

// facts are the parts of a finished workload that are not compared with
// the baseline but checked on their own.
type facts struct {
	// Reexecutions counts attempts beyond the first over all side effects
	// (activities run at least once; their effect is keyed).
	Reexecutions int
	// LedgerStripeIDs and ChargeIDs name the Stripe objects of the ledger
	// and of the fake: the same set when nothing was charged twice.
	LedgerStripeIDs, ChargeIDs []string
	// Histories holds every run's raw history, by run ID.
	Histories map[string][]durable.HistoryEvent
	// RunWorkflow maps run IDs to workflow IDs.
	RunWorkflow map[string]string
	// Final maps each workflow ID to its latest run's status and result.
	Final map[string]finalRun
}

type finalRun struct {
	Status durable.Status
	Result string
}

var (
	uuidPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	timePattern = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
)

// scrub replaces what differs between equivalent runs: IDs (run IDs,
// idempotency keys, approval and vote IDs are UUIDs or hold one) and
// times.
func scrub(s string) string {
	s = uuidPattern.ReplaceAllString(s, "<id>")
	return timePattern.ReplaceAllString(s, "<time>")
}

// scrubEvent renders an event for comparison: its position, type and data
// without what legitimately differs between a run and its crashed twin —
// the time, a timer's absolute fire time, the attempt that produced an
// activity's outcome, run IDs, and whether an input shared its workflow
// task with the next one. A timer of an hour or more (an approval's
// deadline, computed from the time of the task that starts it) is
// compared to the hour.
func scrubEvent(ev durable.HistoryEvent) (string, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(ev.Data))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return "", fmt.Errorf("event %d: %w", ev.ID, err)
	}
	for _, k := range []string{"attempt", "fire_at", "run_id", "parent_run_id", "more"} {
		delete(m, k)
	}
	if d, ok := m["duration"].(json.Number); ok {
		if n, err := d.Int64(); err == nil && time.Duration(n) >= time.Hour {
			m["duration"] = time.Duration(n).Round(time.Hour).String()
		}
	}
	b, err := json.Marshal(m) // keys sorted
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d %s %s", ev.ID, ev.Type, scrub(string(b))), nil
}

// collect reads the state a workload left in the SQLite file at path and
// in the fake Stripe.
func collect(t *testing.T, w *workspace) (state, facts) {
	t.Helper()
	ctx := context.Background()
	var st store.Store
	var db *appdb.DB
	var err error
	if w.kind == onPostgres {
		st, err = pgstore.New(ctx, w.pool, nil)
		require.NoError(t, err)
		db = appdb.FromPool(w.pool)
	} else {
		st, err = sqlitestore.Open(w.db, nil)
		require.NoError(t, err)
		db, err = appdb.Open(ctx, w.db)
		require.NoError(t, err)
	}
	defer st.Close()
	defer db.Close()
	e, err := durable.New(st, nil)
	require.NoError(t, err)

	s := state{Runs: map[string][]runState{}}
	f := facts{Histories: map[string][]durable.HistoryEvent{}, RunWorkflow: map[string]string{}, Final: map[string]finalRun{}}
	var infos []durable.RunInfo
	for cursor := ""; ; {
		page, next, err := e.ListRuns(ctx, &durable.ListOptions{Limit: 1000, Cursor: cursor})
		require.NoError(t, err)
		infos = append(infos, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	sort.SliceStable(infos, func(i, j int) bool { return infos[i].CreatedAt.Before(infos[j].CreatedAt) })
	for _, info := range infos {
		h, err := e.GetHistory(ctx, info.RunID)
		require.NoError(t, err)
		run, err := st.GetRun(ctx, info.RunID)
		require.NoError(t, err)
		rs := runState{Type: info.WorkflowType, Status: string(info.Status)}
		outcome := run.Result
		if len(run.Failure) > 0 {
			outcome = run.Failure
		}
		rs.Outcome = scrub(string(outcome))
		for _, ev := range h.Events {
			line, err := scrubEvent(ev)
			require.NoError(t, err)
			rs.History = append(rs.History, line)
		}
		s.Runs[info.WorkflowID] = append(s.Runs[info.WorkflowID], rs)
		f.Histories[info.RunID] = h.Events
		f.RunWorkflow[info.RunID] = info.WorkflowID
		f.Final[info.WorkflowID] = finalRun{Status: info.Status, Result: string(run.Result)}
	}

	rows := func(query string, scan func(scan func(...any) error) string) []string {
		var out []string
		r, err := db.QueryContext(ctx, query)
		if err != nil && (strings.Contains(err.Error(), "no such table") || strings.Contains(err.Error(), "does not exist")) {
			return nil
		}
		require.NoError(t, err)
		defer r.Close()
		for r.Next() {
			out = append(out, scan(r.Scan))
		}
		require.NoError(t, r.Err())
		sort.Strings(out)
		return out
	}
	s.Effects = rows(`SELECT workflow_id, name, arg, attempts FROM crash_effects`, func(scan func(...any) error) string {
		var wf, name, arg string
		var attempts int
		require.NoError(t, scan(&wf, &name, &arg, &attempts))
		f.Reexecutions += attempts - 1
		return wf + " " + name + " " + arg
	})
	s.Ledger = rows(`SELECT kind, status, amount, currency, stripe_id FROM billing_ledger`, func(scan func(...any) error) string {
		var kind, status, currency, id string
		var amount int64
		require.NoError(t, scan(&kind, &status, &amount, &currency, &id))
		f.LedgerStripeIDs = append(f.LedgerStripeIDs, id)
		return fmt.Sprintf("%s %s %d %s", kind, status, amount, currency)
	})
	s.Approvals = rows(`SELECT status FROM hitl_approvals`, func(scan func(...any) error) string {
		var status string
		require.NoError(t, scan(&status))
		return status
	})
	s.Votes = rows(`SELECT reviewer, approve, status_after, delivered_at IS NOT NULL FROM hitl_votes`, func(scan func(...any) error) string {
		var who, status string
		var approve, delivered bool
		require.NoError(t, scan(&who, &approve, &status, &delivered))
		return fmt.Sprintf("%s approve=%v %s delivered=%v", who, approve, status, delivered)
	})
	for _, pi := range w.fake.Charges() {
		s.Charges = append(s.Charges, fmt.Sprintf("%s %d %s %s", pi.Customer, pi.Amount, pi.Currency, pi.Status))
		f.ChargeIDs = append(f.ChargeIDs, pi.ID)
	}
	sort.Strings(s.Charges)
	sort.Strings(f.LedgerStripeIDs)
	sort.Strings(f.ChargeIDs)
	return s, f
}

// checkWellFormed checks every history: event IDs 1, 2, 3…; one start
// event first; at most one closing event, last; each command's sequence
// number once; each activity, timer and child outcome once, for a command
// of the history. It returns the problems found.
func checkWellFormed(f facts) []string {
	var problems []string
	bad := func(runID, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s run %s: ", f.RunWorkflow[runID], runID)+fmt.Sprintf(format, args...))
	}
	closing := map[string]bool{
		durable.EventWorkflowCompleted: true, durable.EventWorkflowFailed: true, durable.EventWorkflowCanceled: true,
		durable.EventWorkflowTerminated: true, durable.EventWorkflowContinuedAsNew: true,
	}
	commands := map[string]bool{
		durable.EventActivityScheduled: true, durable.EventTimerStarted: true, durable.EventMarkerRecorded: true,
		durable.EventChildWorkflowInitiated: true, durable.EventExternalSignalInitiated: true, durable.EventExternalCancelInitiated: true,
	}
	outcomes := map[string]string{ // outcome -> the command it answers
		durable.EventActivityCompleted: durable.EventActivityScheduled, durable.EventActivityFailed: durable.EventActivityScheduled,
		durable.EventTimerFired:               durable.EventTimerStarted,
		durable.EventChildWorkflowCompleted:   durable.EventChildWorkflowInitiated,
		durable.EventChildWorkflowFailed:      durable.EventChildWorkflowInitiated,
		durable.EventChildWorkflowStartFailed: durable.EventChildWorkflowInitiated,
	}
	for runID, evs := range f.Histories {
		seqs := map[int64]string{}
		answered := map[int64]string{}
		for i, ev := range evs {
			if ev.ID != int64(i+1) {
				bad(runID, "event %d has ID %d", i+1, ev.ID)
			}
			if (i == 0) != (ev.Type == durable.EventWorkflowStarted) {
				bad(runID, "event %d is %s", ev.ID, ev.Type)
			}
			if closing[ev.Type] && i != len(evs)-1 {
				bad(runID, "closing event %d (%s) is not the last", ev.ID, ev.Type)
			}
			d, err := ev.Details()
			if err != nil {
				bad(runID, "event %d: %v", ev.ID, err)
				continue
			}
			if commands[ev.Type] {
				if prev, dup := seqs[d.Seq]; dup {
					bad(runID, "command seq %d twice: %s and %s (event %d)", d.Seq, prev, ev.Type, ev.ID)
				}
				seqs[d.Seq] = ev.Type
			}
			if cmd, ok := outcomes[ev.Type]; ok {
				if seqs[d.Seq] != cmd {
					bad(runID, "event %d (%s) answers seq %d, which is %q", ev.ID, ev.Type, d.Seq, seqs[d.Seq])
				}
				if prev, dup := answered[d.Seq]; dup {
					bad(runID, "seq %d answered twice: %s and %s (event %d)", d.Seq, prev, ev.Type, ev.ID)
				}
				answered[d.Seq] = ev.Type
			}
		}
	}
	sort.Strings(problems)
	return problems
}

// duplicates returns the lines that occur more than once.
func duplicates(lines []string) []string {
	seen := map[string]int{}
	var out []string
	for _, l := range lines {
		seen[l]++
		if seen[l] == 2 {
			out = append(out, l)
		}
	}
	return out
}
