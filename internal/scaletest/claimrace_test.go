package scaletest

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
)

// The claim race works at the store level, in virtual time: every claim
// passes an explicit Now. A fresh claim is made at t0 with a lease to
// t0+claimLease; a steal claim at t0+claimLease+1s, past every fresh lease,
// with a lease of its own that no later claim reaches. A fresh claimer
// abandons (stalls) the tasks of one run in ten without completing them, so
// that a steal claim takes them over; the stealer then tries the stalled
// token, which the store must refuse. Steal claims also take over fresh
// leases whose holders are about to complete, so some completions race a
// takeover for real.
const (
	claimQueue     = "claims"
	claimLease     = time.Hour
	claimProcs     = 2
	claimPollers   = 8
	claimStalledIn = 10 // one run in claimStalledIn is stalled by its fresh claimer
)

// claimT0 is the virtual time of every fresh claim.
func claimT0() time.Time { return time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC) }

// stalls reports whether a fresh claimer abandons the run's task.
func stalls(runID string) bool {
	h := fnv.New32a()
	_, _ = h.Write([]byte(runID))
	return h.Sum32()%claimStalledIn == 0
}

// claimRecord is one claim of one task, as a claimer saw it.
type claimRecord struct {
	RunID   string    `json:"run_id"`
	Token   string    `json:"token"`
	Owner   string    `json:"owner"`
	Proc    int       `json:"proc"`
	Attempt int       `json:"attempt"`
	From    time.Time `json:"from"`  // the claim's Now
	Until   time.Time `json:"until"` // its LeaseUntil
	// Outcome: "completed", "lost" (the completion was refused with
	// ErrLeaseLost) or "stalled" (never completed, on purpose).
	Outcome string `json:"outcome"`
	// Stale are the stalled tokens of the run that the claimer tried
	// before completing with its own.
	Stale []staleTry `json:"stale,omitempty"`
	// StaleMissing: the claim took over a stalled lease, but no stalled
	// token of the run was published.
	StaleMissing bool `json:"stale_missing,omitempty"`
}

// staleTry is what the store said to a stalled token.
type staleTry struct {
	Token       string `json:"token"`
	CompleteErr string `json:"complete_err"` // "" if the completion was accepted
	FailErr     string `json:"fail_err"`     // "" if FailWorkflowTask was accepted
	LeaseLost   bool   `json:"lease_lost"`   // both errors were store.ErrLeaseLost
}

// claimerArg configures a claimer child.
type claimerArg struct {
	Proc int    `json:"proc"`
	Out  string `json:"out"` // file to write the claim records to, as JSON lines
}

const staleTableSQL = `CREATE TABLE scaletest_stale (run_id text NOT NULL, token text NOT NULL, PRIMARY KEY (run_id, token))`

// Sixteen pollers, eight in each of two processes, race for the workflow
// tasks of claimTasks runs through pgstore (ClaimWorkflowTasks,
// CompleteWorkflowTask, FailWorkflowTask) and record every claim: task,
// token, lease window, outcome. Every task must be completed by exactly
// one claim, the last one; no two lease windows of one task may overlap;
// every token whose lease expired and was claimed again must be refused
// (store.ErrLeaseLost) while the run is still open, so that only the token
// fences it.
func TestClaimRace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.pool.Exec(b.ctx, staleTableSQL)
	require.NoError(t, err)

	// The tasks: one run each, created before the claimers start. That is
	// the setup, not the race: it need not wait for the WAL flush of every
	// run.
	fastPool := b.morePool(t, 8, map[string]string{"synchronous_commit": "off"})
	fast, err := pgstore.New(b.ctx, fastPool, nil)
	require.NoError(t, err)
	runID := func(n int) string { return fmt.Sprintf("claim-%05d", n) }
	begin := time.Now()
	createRuns(t, fast, claimTasks, runID)
	t.Logf("created %d workflow tasks in %v", claimTasks, time.Since(begin).Round(time.Millisecond))
	require.NoError(t, fast.Close())
	fastPool.Close() // its connections are better spent on the claimers'

	dir := t.TempDir()
	procs := make([]*child, claimProcs)
	outs := make([]string, claimProcs)
	for i := range procs {
		outs[i] = filepath.Join(dir, fmt.Sprintf("claims-%d.jsonl", i))
		arg, err := json.Marshal(claimerArg{Proc: i, Out: outs[i]})
		require.NoError(t, err)
		procs[i] = startChild(t, fmt.Sprintf("claimer-%d", i), childEnv{mode: "claimer", schema: b.schema, arg: string(arg)})
	}
	for _, c := range procs {
		c.expect(t, "ready", time.Minute)
	}
	begin = time.Now()
	for _, c := range procs {
		c.send(t, "go")
	}
	for _, c := range procs {
		c.expect(t, "done", 3*time.Minute)
		require.NoError(t, c.stop(t, 10*time.Second), c.name)
	}
	t.Logf("%d pollers in %d processes claimed and completed %d tasks in %v", claimProcs*claimPollers, claimProcs,
		claimTasks, time.Since(begin).Round(time.Millisecond))

	var records []claimRecord
	for _, out := range outs {
		records = append(records, readClaimRecords(t, out)...)
	}
	checkClaims(t, b.pool, records, runID)
}

// createRuns creates runs 0 to n-1, each with a workflow task on
// claimQueue ready before t0, from a few goroutines.
func createRuns(t *testing.T, st store.Store, n int, runID func(int) string) {
	t.Helper()
	const parallel = 8
	errs := make(chan error, parallel)
	var wg sync.WaitGroup
	for g := range parallel {
		wg.Go(func() {
			for i := g; i < n; i += parallel {
				_, err := st.CreateRun(context.Background(), store.CreateRunParams{
					RunID: runID(i), WorkflowID: runID(i), WorkflowType: "claim", TaskQueue: claimQueue,
					StartEvent: store.Event{Type: "started"}, Now: claimT0().Add(-time.Second),
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	require.NoError(t, <-errs)
}

func readClaimRecords(t *testing.T, path string) []claimRecord {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []claimRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r claimRecord
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r))
		out = append(out, r)
	}
	require.NoError(t, sc.Err())
	return out
}

// checkClaims checks the claim records of both processes against each
// other and against the runs.
func checkClaims(t *testing.T, pool *pgxpool.Pool, records []claimRecord, runID func(int) string) {
	t.Helper()
	byRun := map[string][]claimRecord{}
	tokens := map[string]bool{}
	completedBy := map[int]int{}
	for _, r := range records {
		require.False(t, tokens[r.Token], "token %s handed out twice", r.Token)
		tokens[r.Token] = true
		byRun[r.RunID] = append(byRun[r.RunID], r)
	}

	results := map[string]string{}
	rows, err := pool.Query(context.Background(), `SELECT run_id, status, result, history_len FROM keel_runs`)
	require.NoError(t, err)
	for rows.Next() {
		var (
			id, status string
			result     []byte
			historyLen int64
		)
		require.NoError(t, rows.Scan(&id, &status, &result, &historyLen))
		require.Equal(t, "completed", status, "run %s", id)
		require.EqualValues(t, 2, historyLen, "run %s: one commit, of one event", id)
		results[id] = string(result)
	}
	require.NoError(t, rows.Err())
	rows.Close()
	require.Len(t, results, claimTasks)

	stalled, lost, refused := 0, 0, 0
	for n := range claimTasks {
		id := runID(n)
		claims := byRun[id]
		require.NotEmpty(t, claims, "run %s was never claimed", id)
		// Claims in lease order; one live lease at a time: each claim
		// starts once the lease before it has expired, as the next
		// attempt.
		slices.SortFunc(claims, func(a, b claimRecord) int { return cmp.Or(a.From.Compare(b.From), a.Attempt-b.Attempt) })
		completed := 0
		for i, c := range claims {
			if i > 0 {
				prev := claims[i-1]
				require.False(t, c.From.Before(prev.Until),
					"run %s: lease %s of %s [%v, %v) overlaps lease %s of %s [%v, %v)", id,
					c.Token, c.Owner, c.From, c.Until, prev.Token, prev.Owner, prev.From, prev.Until)
				require.NotEqual(t, "completed", prev.Outcome, "run %s: claimed again after it completed", id)
			}
			require.Equal(t, i+1, c.Attempt, "run %s: claims %+v", id, claims)
			switch c.Outcome {
			case "completed":
				completed++
				completedBy[c.Proc]++
				require.Equal(t, len(claims)-1, i, "run %s: the completing claim is the last", id)
				require.JSONEq(t, completionResult(c.Token), results[id], "run %s: completed by %s", id, c.Owner)
			case "lost":
				lost++
			case "stalled":
				stalled++
			default:
				t.Fatalf("run %s: outcome %q", id, c.Outcome)
			}
			require.False(t, c.StaleMissing, "run %s: %s took over a stalled lease that was never published; claims %+v", id, c.Token, claims)
			for _, s := range c.Stale {
				require.True(t, s.LeaseLost, "run %s: stalled token %s after takeover by %s: complete: %q, fail: %q",
					id, s.Token, c.Token, s.CompleteErr, s.FailErr)
				refused++
			}
		}
		require.Equal(t, 1, completed, "run %s: claims %+v", id, claims)
		for i, c := range claims {
			if c.Outcome == "stalled" {
				// The next claim took over and tried the stalled token.
				require.Less(t, i+1, len(claims), "run %s: stalled and never taken over", id)
				require.True(t, slices.ContainsFunc(claims[i+1].Stale, func(s staleTry) bool { return s.Token == c.Token }),
					"run %s: the takeover of %s did not try it", id, c.Token)
			}
		}
	}
	t.Logf("%d claims; %d stalled leases taken over and their tokens refused (%d tries); %d completions refused after a takeover; completions by process: %v",
		len(records), stalled, refused, lost, completedBy)
	require.Positive(t, stalled, "some leases were taken over")
	require.Equal(t, stalled, refused)
	for p := range claimProcs {
		require.Positive(t, completedBy[p], "process %d completed tasks", p)
	}
}

// completionResult is the result a claimer completes a run with.
func completionResult(token string) string { return fmt.Sprintf(`{"token":%q}`, token) }

// claimerMain is a claimer process: claimPollers goroutines claim and
// complete workflow tasks through pgstore until none is left.
func claimerMain(ctx context.Context) error {
	var arg claimerArg
	if err := json.Unmarshal([]byte(os.Getenv(argEnv)), &arg); err != nil {
		return fmt.Errorf("decode %s: %w", argEnv, err)
	}
	parent := newParentIO()
	pool, st, closeAll, err := childStore(ctx, claimPollers+1, nil)
	if err != nil {
		return err
	}
	defer closeAll()
	// Every connection is open before the race starts.
	conns := make([]*pgxpool.Conn, claimPollers+1)
	for i := range conns {
		if conns[i], err = pool.Acquire(ctx); err != nil {
			return err
		}
	}
	for _, c := range conns {
		c.Release()
	}

	parent.send("ready")
	if err := parent.expect(ctx, "go"); err != nil {
		return err
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		records []claimRecord
		errs    = make(chan error, claimPollers)
	)
	for g := range claimPollers {
		wg.Go(func() {
			c := &claimer{st: st, pool: pool, proc: arg.Proc, owner: fmt.Sprintf("p%d-g%d", arg.Proc, g), limit: 1 + g%4}
			recs, err := c.run(ctx)
			mu.Lock()
			records = append(records, recs...)
			mu.Unlock()
			if err != nil {
				errs <- fmt.Errorf("%s: %w", c.owner, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	f, err := os.Create(arg.Out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, r := range records {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	parent.send("done")
	return parent.waitClosed(ctx)
}

// claimer is one polling goroutine of a claimer process.
type claimer struct {
	st    *pgstore.Store
	pool  *pgxpool.Pool
	proc  int
	owner string
	limit int
}

// run claims until no workflow task is left, and returns its records.
func (c *claimer) run(ctx context.Context) ([]claimRecord, error) {
	var records []claimRecord
	t0 := claimT0()
	for iter := 1; ; iter++ {
		now, until := t0, t0.Add(claimLease)
		steal := iter%4 == 0
		if steal {
			now = t0.Add(claimLease + time.Second)
			until = now.Add(claimLease)
		}
		tasks, err := c.st.ClaimWorkflowTasks(ctx, store.ClaimParams{
			TaskQueue: claimQueue, Owner: c.owner, Limit: c.limit, Now: now, LeaseUntil: until,
		})
		if err != nil {
			return records, err
		}
		for _, task := range tasks {
			r := claimRecord{RunID: task.Run.RunID, Token: task.Token, Owner: c.owner, Proc: c.proc,
				Attempt: task.Attempt, From: now, Until: until}
			if !steal && task.Attempt == 1 && stalls(r.RunID) {
				// Abandon the lease, leaving its token for the claimer
				// that takes the task over.
				if _, err := c.pool.Exec(ctx, `INSERT INTO scaletest_stale (run_id, token) VALUES ($1, $2)`, r.RunID, r.Token); err != nil {
					return records, err
				}
				r.Outcome = "stalled"
				records = append(records, r)
				continue
			}
			if steal && task.Attempt > 1 && stalls(r.RunID) {
				if r.Stale, err = c.tryStale(ctx, task, now); err != nil {
					return records, err
				}
				r.StaleMissing = len(r.Stale) == 0
			}
			_, err := c.st.CompleteWorkflowTask(ctx, completion(task, task.Token, now))
			switch {
			case err == nil:
				r.Outcome = "completed"
			case errors.Is(err, store.ErrLeaseLost):
				r.Outcome = "lost"
			default:
				return records, err
			}
			records = append(records, r)
		}
		if len(tasks) > 0 {
			continue
		}
		var left int
		if err := c.pool.QueryRow(ctx, `SELECT count(*) FROM keel_workflow_tasks`).Scan(&left); err != nil {
			return records, err
		}
		if left == 0 {
			return records, nil
		}
		// The tasks left are leased by other pollers; look again soon.
		select {
		case <-time.After(2 * time.Millisecond):
		case <-ctx.Done():
			return records, ctx.Err()
		}
	}
}

// completion is the commit of a claimed task with token: one event, and
// the run closed with the token as its result.
func completion(task store.WorkflowTask, token string, now time.Time) store.CompleteWorkflowTaskParams {
	return store.CompleteWorkflowTaskParams{
		RunID: task.Run.RunID, Token: token, ExpectedHistoryLen: task.Run.HistoryLen,
		Events: []store.Event{{ID: task.Run.HistoryLen + 1, Type: "claimed", Time: now, Data: []byte(completionResult(token))}},
		Close:  &store.CloseRun{Status: store.StatusCompleted, Result: []byte(completionResult(token))},
		Now:    now,
	}
}

// tryStale tries to complete, then to fail, the task with the token of the
// stalled claim that task took over (waiting for its claimer to publish
// it). Both must be refused: the run is still running at the same history
// length, so only the token fences them. It returns nothing if no token
// is published within a few seconds.
func (c *claimer) tryStale(ctx context.Context, task store.WorkflowTask, now time.Time) ([]staleTry, error) {
	deadline := time.Now().Add(5 * time.Second)
	var tokens []string
	for len(tokens) == 0 {
		rows, err := c.pool.Query(ctx, `SELECT token FROM scaletest_stale WHERE run_id = $1 AND token <> $2`, task.Run.RunID, task.Token)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var tok string
			if err := rows.Scan(&tok); err != nil {
				rows.Close()
				return nil, err
			}
			tokens = append(tokens, tok)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if len(tokens) > 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, nil
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var out []staleTry
	for _, tok := range tokens {
		s := staleTry{Token: tok}
		_, cerr := c.st.CompleteWorkflowTask(ctx, completion(task, tok, now))
		ferr := c.st.FailWorkflowTask(ctx, store.FailWorkflowTaskParams{
			RunID: task.Run.RunID, Token: tok, RetryAt: now, Failure: "stale", Now: now,
		})
		if cerr != nil {
			s.CompleteErr = cerr.Error()
		}
		if ferr != nil {
			s.FailErr = ferr.Error()
		}
		s.LeaseLost = errors.Is(cerr, store.ErrLeaseLost) && errors.Is(ferr, store.ErrLeaseLost)
		out = append(out, s)
	}
	return out, nil
}
