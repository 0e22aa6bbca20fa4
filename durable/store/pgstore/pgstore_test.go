package pgstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/storetest"
	"github.com/keelhq/keel/internal/testdb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// base is the tests' reference time; every call passes an explicit Now.
var base = time.Date(2030, time.March, 4, 5, 6, 7, 0, time.UTC)

func at(d time.Duration) time.Time { return base.Add(d) }

// testBundle is one test's schema, pool and store.
type testBundle struct {
	ctx  context.Context
	pool *pgxpool.Pool
	st   *pgstore.Store
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := testdb.Postgres(t)
	return &testBundle{ctx: t.Context(), pool: pool, st: newStore(t, pool)}
}

// newStore returns a store on pool, closed when t ends.
func newStore(t *testing.T, pool *pgxpool.Pool) *pgstore.Store {
	t.Helper()
	st, err := pgstore.New(t.Context(), pool, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	return st
}

// morePool opens a second pool on b's schema with up to maxConns
// connections, as another process would; it is closed when t ends.
func (b *testBundle) morePool(t *testing.T, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg := b.pool.Config()
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(b.ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func (b *testBundle) createRun(t *testing.T, runID, queue string) store.Run {
	t.Helper()
	res, err := b.st.CreateRun(b.ctx, store.CreateRunParams{
		RunID: runID, WorkflowID: "wf-" + runID, WorkflowType: "order", TaskQueue: queue,
		StartEvent: store.Event{Type: "started"}, Now: base,
	})
	require.NoError(t, err)
	require.True(t, res.Created)
	return res.Run
}

func (b *testBundle) claim(t *testing.T, queue string, now time.Time) []store.WorkflowTask {
	t.Helper()
	tasks, err := b.st.ClaimWorkflowTasks(b.ctx, store.ClaimParams{
		TaskQueue: queue, Owner: "w", Limit: 10, Now: now, LeaseUntil: now.Add(time.Minute),
	})
	require.NoError(t, err)
	return tasks
}

func (b *testBundle) signal(t *testing.T, runID, data string, now time.Time) {
	t.Helper()
	_, err := b.st.Signal(b.ctx, store.SignalParams{
		RunID: runID, Item: store.NewInboxItem{Type: "signal", Data: []byte(data)}, Now: now,
	})
	require.NoError(t, err)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, func(t *testing.T) store.Store { return newStore(t, testdb.Postgres(t)) })
}

func TestNew(t *testing.T) {
	t.Parallel()

	t.Run("ConcurrentOnFreshSchema", func(t *testing.T) {
		t.Parallel()
		pool := testdb.Postgres(t)
		// Each New gets a pool of its own, as separate processes would.
		const n = 3
		errs := make(chan error, n)
		for range n {
			cfg := pool.Config()
			p, err := pgxpool.NewWithConfig(t.Context(), cfg)
			require.NoError(t, err)
			t.Cleanup(p.Close)
			go func() {
				st, err := pgstore.New(t.Context(), p, nil)
				if err == nil {
					err = st.Close()
				}
				errs <- err
			}()
		}
		for range n {
			require.NoError(t, <-errs)
		}
		var version int64
		require.NoError(t, pool.QueryRow(t.Context(), "SELECT max(version_id) FROM keel_schema_version").Scan(&version))
		files, err := filepath.Glob("migrations/*.sql")
		require.NoError(t, err)
		require.EqualValues(t, len(files), version, "the latest migration is the number of migration files")
	})

	t.Run("SchemaTooNew", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.pool.Exec(b.ctx, "INSERT INTO keel_schema_version (version_id, is_applied) VALUES (99, true)")
		require.NoError(t, err)
		_, err = pgstore.New(b.ctx, b.pool, nil)
		require.ErrorIs(t, err, store.ErrSchemaTooNew)
	})

	t.Run("Reopen", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.createRun(t, "r1", "q")
		st := newStore(t, b.pool)
		run, err := st.GetRun(b.ctx, "r1")
		require.NoError(t, err)
		require.Equal(t, "q", run.TaskQueue)
	})

	t.Run("NoSchema", func(t *testing.T) {
		t.Parallel()
		cfg, err := pgxpool.ParseConfig(testdb.PostgresURL(t))
		require.NoError(t, err)
		cfg.ConnConfig.RuntimeParams["search_path"] = "keeltest_does_not_exist"
		pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		_, err = pgstore.New(t.Context(), pool, nil)
		require.ErrorContains(t, err, "search_path")
	})
}

// Many goroutines of two "processes" claim the same tasks at once: each
// task is claimed exactly once.
func TestClaimRace(t *testing.T) {
	t.Parallel()
	const (
		goroutines = 16
		perWorker  = 2000
		tasks      = goroutines * perWorker
	)
	b := setup(t)
	stores := []*pgstore.Store{newStore(t, b.morePool(t, 8)), newStore(t, b.morePool(t, 8))}

	// Insert the runnable tasks in bulk; the claims are what is tested.
	_, err := b.pool.Exec(b.ctx, `
		WITH runs AS (
			INSERT INTO keel_runs (run_id, workflow_id, workflow_type, task_queue, status, history_len,
				history_bytes, created_at, updated_at)
			SELECT 'r' || i, 'w' || i, 'order', 'q', 'running', 1, 0, $1, $1 FROM generate_series(1, $2) i
			RETURNING run_id
		), workflow_tasks AS (
			INSERT INTO keel_workflow_tasks (run_id, task_queue, ready_at) SELECT run_id, 'q', $1 FROM runs
		)
		INSERT INTO keel_activity_tasks (run_id, seq, workflow_id, activity_type, task_queue, attempt,
			scheduled_at, ready_at, schedule_to_start, start_to_close, heartbeat_timeout)
		SELECT run_id, 2, 'w', 'charge', 'aq', 1, $1, $1, 0, 0, 0 FROM runs`, base.UnixNano(), tasks)
	require.NoError(t, err)

	var (
		mu       sync.Mutex
		workflow = map[string]int{}
		activity = map[string]int{}
		wg       sync.WaitGroup
		errs     = make(chan error, goroutines)
	)
	for g := range goroutines {
		st := stores[g%len(stores)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			now := at(time.Second)
			claimParams := store.ClaimParams{
				Owner: fmt.Sprint("worker-", g), Limit: 16, Now: now, LeaseUntil: now.Add(time.Hour),
			}
			for {
				claimParams.TaskQueue = "q"
				wts, err := st.ClaimWorkflowTasks(b.ctx, claimParams)
				if err != nil {
					errs <- err
					return
				}
				claimParams.TaskQueue = "aq"
				ats, err := st.ClaimActivityTasks(b.ctx, claimParams)
				if err != nil {
					errs <- err
					return
				}
				if len(wts) == 0 && len(ats) == 0 {
					return
				}
				mu.Lock()
				for _, wt := range wts {
					workflow[wt.Run.RunID]++
				}
				for _, a := range ats {
					activity[a.RunID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, workflow, tasks)
	require.Len(t, activity, tasks)
	for id, n := range workflow {
		require.Equal(t, 1, n, "workflow task of %s claimed %d times", id, n)
	}
	for id, n := range activity {
		require.Equal(t, 1, n, "activity task of %s claimed %d times", id, n)
	}
}

// Concurrent starts of one workflow ID from several processes create one
// run, and every caller gets that run. Half of them ask for an eager
// lease: only the one that created the run gets its task, if it asked.
func TestCreateRunRace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const goroutines = 16
	stores := []*pgstore.Store{b.st, newStore(t, b.morePool(t, 8)), newStore(t, b.morePool(t, 8))}
	for round := range 20 {
		workflowID := fmt.Sprint("wf-", round)
		results := make(chan store.CreateRunResult, goroutines)
		errs := make(chan error, goroutines)
		start := make(chan struct{})
		for g := range goroutines {
			go func() {
				<-start
				p := store.CreateRunParams{
					RunID: fmt.Sprintf("run-%d-%d", round, g), WorkflowID: workflowID, WorkflowType: "order",
					TaskQueue: "q", StartEvent: store.Event{Type: "started"}, Now: base,
				}
				if g%2 == 1 {
					p.Eager = &store.EagerLease{Owner: "w", LeaseUntil: at(time.Minute)}
				}
				res, err := stores[g%len(stores)].CreateRun(b.ctx, p)
				errs <- err
				results <- res
			}()
		}
		close(start)
		created, runIDs, eager := 0, map[string]bool{}, 0
		for range goroutines {
			require.NoError(t, <-errs)
			res := <-results
			if res.Created {
				created++
			}
			if res.Task != nil {
				require.True(t, res.Created, "round %d", round)
				require.Equal(t, res.Run.RunID, res.Task.Run.RunID)
				eager++
			}
			runIDs[res.Run.RunID] = true
		}
		require.Equal(t, 1, created, "round %d", round)
		require.Len(t, runIDs, 1, "round %d", round)
		var eagerRun int
		require.NoError(t, b.pool.QueryRow(b.ctx,
			"SELECT count(*) FROM keel_workflow_tasks w JOIN keel_runs r USING (run_id) WHERE r.workflow_id = $1 AND w.token IS NOT NULL",
			workflowID).Scan(&eagerRun))
		require.Equal(t, eagerRun, eager, "round %d: leased iff its creator asked", round)
	}
	res, err := b.st.ListRuns(b.ctx, store.ListRunsParams{Limit: 1000})
	require.NoError(t, err)
	require.Len(t, res.Runs, 20)
}

// Signals written while the run's workflow tasks are claimed and committed
// concurrently all reach the history, exactly once and in order per
// sender: a commit never deletes an inbox item its claim did not see.
func TestInboxRace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	run := b.createRun(t, "r1", "q")
	signaller := newStore(t, b.morePool(t, 8))
	const (
		senders = 8
		each    = 50
	)

	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				_, err := signaller.Signal(b.ctx, store.SignalParams{
					RunID: run.RunID, Item: store.NewInboxItem{Type: "signal", Data: fmt.Appendf(nil, "%d/%d", g, i)},
					Now: base,
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	// Act as the worker until every signal is in the history.
	var history []store.Event
	historyLen := int64(1)
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		tasks := b.claim(t, "q", at(time.Second))
		for _, wt := range tasks {
			require.Equal(t, historyLen, wt.Run.HistoryLen)
			p := store.CompleteWorkflowTaskParams{
				RunID: wt.Run.RunID, Token: wt.Token, ExpectedHistoryLen: wt.Run.HistoryLen, Now: at(time.Second),
			}
			for _, it := range wt.Inbox {
				historyLen++
				ev := store.Event{ID: historyLen, Type: it.Type, Time: it.Time, Data: it.Data}
				p.Events = append(p.Events, ev)
				history = append(history, ev)
				p.InboxUpTo = it.ID
			}
			_, err := b.st.CompleteWorkflowTask(b.ctx, p)
			require.NoError(t, err)
		}
		if finished && len(tasks) == 0 {
			break
		}
	}
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	require.Len(t, history, senders*each)
	next := make([]int, senders)
	for _, ev := range history {
		var g, i int
		_, err := fmt.Sscanf(string(ev.Data), "%d/%d", &g, &i)
		require.NoError(t, err)
		require.Equal(t, next[g], i, "signals of sender %d in order", g)
		next[g]++
	}
	stored, err := b.st.History(b.ctx, run.RunID, 1)
	require.NoError(t, err)
	require.Equal(t, history, stored)
}

// Signals racing with the commit that closes the run either land before
// it (and are dropped with the run's inbox) or fail with ErrRunClosed:
// none leaves an inbox row or a workflow task behind.
func TestSignalCloseRace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	signaller := newStore(t, b.morePool(t, 8))
	for round := range 10 {
		runID := fmt.Sprint("r", round)
		b.createRun(t, runID, "q")
		wt := b.claim(t, "q", base)[0]

		const senders = 8
		errs := make(chan error, senders)
		start := make(chan struct{})
		for range senders {
			go func() {
				<-start
				_, err := signaller.Signal(b.ctx, store.SignalParams{
					WorkflowID: "wf-" + runID, Item: store.NewInboxItem{Type: "signal"}, Now: base,
				})
				errs <- err
			}()
		}
		close(start)
		_, err := b.st.CompleteWorkflowTask(b.ctx, store.CompleteWorkflowTaskParams{
			RunID: runID, Token: wt.Token, ExpectedHistoryLen: 1,
			Events: []store.Event{{ID: 2, Type: "completed"}},
			Close:  &store.CloseRun{Status: store.StatusCompleted}, Now: base,
		})
		require.NoError(t, err)
		for range senders {
			if err := <-errs; err != nil {
				require.ErrorIs(t, err, store.ErrRunClosed)
			}
		}
		var left int
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT (SELECT count(*) FROM keel_inbox WHERE run_id = $1)
			+ (SELECT count(*) FROM keel_workflow_tasks WHERE run_id = $1)`, runID).Scan(&left))
		require.Zero(t, left, "round %d", round)
	}
}

// Everything at once on a few runs: workflow commits that schedule
// activities and timers, activity completions, timers firing, signals,
// cancel requests and terminations, from several goroutines and two
// stores. Every call either succeeds or fails with the sentinel its race
// explains (never a deadlock), and every run ends closed with nothing left
// behind.
func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	other := newStore(t, b.morePool(t, 8))
	const runs = 12
	for i := range runs {
		b.createRun(t, fmt.Sprint("r", i), "q")
	}
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	now := base
	lease := store.ClaimParams{Owner: "w", Limit: 4, Now: now, LeaseUntil: now.Add(time.Hour)}
	expected := func(err error, allowed ...error) error {
		for _, a := range allowed {
			if errors.Is(err, a) {
				return nil
			}
		}
		return err
	}

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	loop := func(st *pgstore.Store, step func(st *pgstore.Store) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := step(st); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
	// Workflow workers: move the inbox into the history, schedule two
	// activities and a due timer, and complete the run once its history
	// is long enough.
	workflowStep := func(st *pgstore.Store) error {
		p := lease
		p.TaskQueue = "q"
		tasks, err := st.ClaimWorkflowTasks(ctx, p)
		if err != nil {
			return expected(err, context.Canceled, context.DeadlineExceeded)
		}
		for _, wt := range tasks {
			n := wt.Run.HistoryLen
			c := store.CompleteWorkflowTaskParams{RunID: wt.Run.RunID, Token: wt.Token, ExpectedHistoryLen: n, Now: now}
			for _, it := range wt.Inbox {
				n++
				c.Events = append(c.Events, store.Event{ID: n, Type: it.Type})
				c.InboxUpTo = it.ID
			}
			if n > 30 {
				n++
				c.Events = append(c.Events, store.Event{ID: n, Type: "completed"})
				c.Close = &store.CloseRun{Status: store.StatusCompleted}
			} else {
				for range 2 {
					n++
					c.Events = append(c.Events, store.Event{ID: n, Type: "activity_scheduled"})
					c.ScheduleActivities = append(c.ScheduleActivities, store.ActivityTask{Seq: n, ActivityType: "a", TaskQueue: "aq"})
				}
				n++
				c.Events = append(c.Events, store.Event{ID: n, Type: "timer_started"})
				c.StartTimers = append(c.StartTimers, store.Timer{Seq: n, FireAt: now, Item: store.NewInboxItem{Type: "timer_fired"}})
				c.CancelActivities = []int64{n - 2}
			}
			if _, err := st.CompleteWorkflowTask(ctx, c); expected(err, store.ErrLeaseLost) != nil {
				return expected(err, context.Canceled, context.DeadlineExceeded)
			}
		}
		return nil
	}
	activityStep := func(st *pgstore.Store) error {
		p := lease
		p.TaskQueue = "aq"
		tasks, err := st.ClaimActivityTasks(ctx, p)
		if err != nil {
			return expected(err, context.Canceled, context.DeadlineExceeded)
		}
		for i, a := range tasks {
			att := store.ActivityAttempt{Attempt: a.Attempt, Outcome: "completed"}
			if i%3 == 0 && a.Attempt == 1 {
				err = st.RetryActivityTask(ctx, store.RetryActivityTaskParams{
					RunID: a.RunID, Seq: a.Seq, Token: a.Token, Attempt: att, RetryAt: now, Now: now,
				})
			} else {
				_, err = st.CompleteActivityTask(ctx, store.CompleteActivityTaskParams{
					RunID: a.RunID, Seq: a.Seq, Token: a.Token, Attempt: att,
					Item: store.NewInboxItem{Type: "activity_completed"}, Now: now,
				})
			}
			if err := expected(err, nil, store.ErrLeaseLost); err != nil {
				return expected(err, context.Canceled, context.DeadlineExceeded)
			}
		}
		return nil
	}
	var n atomic.Int64
	randomRun := func() string { return fmt.Sprint("r", n.Add(1)%runs) }
	loop(b.st, workflowStep)
	loop(other, workflowStep)
	loop(b.st, activityStep)
	loop(other, activityStep)
	loop(other, func(st *pgstore.Store) error {
		_, err := st.FireTimers(ctx, now, 8)
		return expected(err, nil, context.Canceled, context.DeadlineExceeded)
	})
	loop(b.st, func(st *pgstore.Store) error {
		_, err := st.Signal(ctx, store.SignalParams{RunID: randomRun(), Item: store.NewInboxItem{Type: "signal"}, Now: now})
		return expected(err, nil, store.ErrRunClosed, context.Canceled, context.DeadlineExceeded)
	})
	loop(other, func(st *pgstore.Store) error {
		id := randomRun()
		var err error
		switch n.Load() % 40 {
		case 0:
			err = st.Terminate(ctx, store.TerminateParams{RunID: id, Event: store.Event{Type: "terminated"}, Now: now})
		case 1, 2, 3:
			err = st.RequestCancel(ctx, store.CancelParams{RunID: id, Item: store.NewInboxItem{Type: "cancel"}, Now: now})
		default:
			_, err = st.HeartbeatActivityTask(ctx, store.HeartbeatParams{RunID: id, Seq: 2, Token: "x", Now: now})
		}
		return expected(err, nil, store.ErrRunClosed, store.ErrLeaseLost, context.Canceled, context.DeadlineExceeded)
	})

	// Wait until every run is closed.
	for ctx.Err() == nil {
		res, err := b.st.ListRuns(b.ctx, store.ListRunsParams{Status: store.StatusRunning})
		require.NoError(t, err)
		if len(res.Runs) == 0 {
			break
		}
	}
	require.NoError(t, ctx.Err(), "runs still running")
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, table := range []string{"keel_workflow_tasks", "keel_activity_tasks", "keel_timers", "keel_inbox"} {
		var left int
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT count(*) FROM "+table).Scan(&left))
		require.Zero(t, left, table)
	}
}

func TestCompleteWorkflowTaskFencing(t *testing.T) {
	t.Parallel()

	// commit tries to commit wt with one event and one activity.
	commit := func(b *testBundle, wt store.WorkflowTask, token string, expected int64) error {
		_, err := b.st.CompleteWorkflowTask(b.ctx, store.CompleteWorkflowTaskParams{
			RunID: wt.Run.RunID, Token: token, ExpectedHistoryLen: expected,
			Events:             []store.Event{{ID: expected + 1, Type: "command"}},
			ScheduleActivities: []store.ActivityTask{{Seq: expected + 1, ActivityType: "charge"}},
			InboxUpTo:          1 << 40,
			Now:                at(time.Second),
		})
		return err
	}
	// requireUnchanged checks that a fenced commit wrote nothing.
	requireUnchanged := func(t *testing.T, b *testBundle, runID string, historyLen int64, inbox int) {
		t.Helper()
		run, err := b.st.GetRun(b.ctx, runID)
		require.NoError(t, err)
		require.Equal(t, historyLen, run.HistoryLen)
		evs, err := b.st.History(b.ctx, runID, 0)
		require.NoError(t, err)
		require.Len(t, evs, int(historyLen))
		var n int
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT count(*) FROM keel_inbox WHERE run_id = $1", runID).Scan(&n))
		require.Equal(t, inbox, n)
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT count(*) FROM keel_activity_tasks WHERE run_id = $1", runID).Scan(&n))
		require.Zero(t, n)
	}

	t.Run("StaleToken", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.createRun(t, "r1", "q")
		stale := b.claim(t, "q", base)[0]
		b.signal(t, "r1", `"x"`, base)
		// The lease expires and another worker claims the task.
		fresh := b.claim(t, "q", at(2*time.Minute))[0]
		require.Equal(t, 2, fresh.Attempt)
		require.ErrorIs(t, commit(b, stale, stale.Token, 1), store.ErrLeaseLost)
		require.ErrorIs(t, commit(b, stale, "", 1), store.ErrLeaseLost)
		requireUnchanged(t, b, "r1", 1, 1)
		require.NoError(t, commit(b, fresh, fresh.Token, 1))
		require.ErrorIs(t, commit(b, fresh, fresh.Token, 2), store.ErrLeaseLost, "a task commits once")
	})

	t.Run("HistoryMovedOn", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.createRun(t, "r1", "q")
		wt := b.claim(t, "q", base)[0]
		require.ErrorIs(t, commit(b, wt, wt.Token, 0), store.ErrLeaseLost)
		require.ErrorIs(t, commit(b, wt, wt.Token, 2), store.ErrLeaseLost)
		requireUnchanged(t, b, "r1", 1, 0)
	})

	t.Run("Terminated", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.createRun(t, "r1", "q")
		wt := b.claim(t, "q", base)[0]
		require.NoError(t, b.st.Terminate(b.ctx, store.TerminateParams{
			RunID: "r1", Event: store.Event{Type: "terminated"}, Now: base,
		}))
		require.ErrorIs(t, commit(b, wt, wt.Token, 1), store.ErrLeaseLost)
		require.ErrorIs(t, commit(b, wt, wt.Token, 2), store.ErrLeaseLost)
		requireUnchanged(t, b, "r1", 2, 0)
	})

	t.Run("UnknownRun", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.ErrorIs(t, commit(b, store.WorkflowTask{Run: store.Run{RunID: "nope"}}, "t", 1), store.ErrLeaseLost)
	})
}

// A signal to a run whose task is leased leaves the lease alone; the commit
// reports Pending and the task comes back, ready now, as a new task.
func TestInboxWhileLeased(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createRun(t, "r1", "q")
	wt := b.claim(t, "q", base)[0]
	b.signal(t, "r1", `"late"`, at(time.Second))
	require.Empty(t, b.claim(t, "q", at(2*time.Second)), "still leased")

	res, err := b.st.CompleteWorkflowTask(b.ctx, store.CompleteWorkflowTaskParams{
		RunID: "r1", Token: wt.Token, ExpectedHistoryLen: 1,
		Events: []store.Event{{ID: 2, Type: "command"}}, Now: at(3 * time.Second),
	})
	require.NoError(t, err)
	require.True(t, res.Pending)
	tasks := b.claim(t, "q", at(3*time.Second))
	require.Len(t, tasks, 1)
	require.Equal(t, 1, tasks[0].Attempt)
	require.EqualValues(t, 2, tasks[0].Run.HistoryLen)
	require.Len(t, tasks[0].Inbox, 1)
	require.Equal(t, []byte(`"late"`), tasks[0].Inbox[0].Data)
}

func TestDeleteClosedRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 7 {
		b.createRun(t, fmt.Sprint("closed-", i), "q")
		b.signal(t, fmt.Sprint("closed-", i), `"x"`, base)
		require.NoError(t, b.st.Terminate(b.ctx, store.TerminateParams{
			RunID: fmt.Sprint("closed-", i), Event: store.Event{Type: "terminated"}, Now: at(time.Duration(i) * time.Hour),
		}))
	}
	b.createRun(t, "running", "q")

	n, err := b.st.DeleteClosedRuns(b.ctx, at(5*time.Hour), 2)
	require.NoError(t, err)
	require.Equal(t, 5, n, "closed at 0h to 4h")
	res, err := b.st.ListRuns(b.ctx, store.ListRunsParams{})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"closed-5", "closed-6", "running"}, []string{
		res.Runs[0].RunID, res.Runs[1].RunID, res.Runs[2].RunID,
	})
	_, err = b.st.History(b.ctx, "closed-0", 0)
	require.ErrorIs(t, err, store.ErrNotFound)
	for _, table := range []string{"keel_events", "keel_inbox", "keel_signal_requests", "keel_workflow_tasks"} {
		var left int
		require.NoError(t, b.pool.QueryRow(b.ctx,
			"SELECT count(*) FROM "+table+" WHERE run_id LIKE 'closed-%' AND run_id NOT IN ('closed-5', 'closed-6')").Scan(&left))
		require.Zero(t, left, table)
	}

	n, err = b.st.DeleteClosedRuns(b.ctx, at(24*time.Hour), 0)
	require.NoError(t, err)
	require.Equal(t, 2, n)
}

// receive waits for want on ch, skipping other payloads.
func receive(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got, ok := <-ch:
			require.True(t, ok, "notification channel closed while waiting for %q", want)
			if got == want {
				return
			}
		case <-timeout:
			require.FailNow(t, "no notification", "waiting for %q", want)
		}
	}
}

// notified starts a run on task queue marker (run ID marker too) and
// returns what ch receives before that run's notification: the
// notifications of the writes committed before it and after the previous
// call, since notifications of different transactions arrive in commit
// order.
func (b *testBundle) notified(t *testing.T, ch <-chan string, marker string) []string {
	t.Helper()
	b.createRun(t, marker, marker)
	var got []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case n, ok := <-ch:
			require.True(t, ok, "notification channel closed; got %q", got)
			if n == "w/"+marker {
				return got
			}
			got = append(got, n)
		case <-timeout:
			require.FailNow(t, "no notification", "waiting for %q, got %q so far", "w/"+marker, got)
		}
	}
}

func TestNotifications(t *testing.T) {
	t.Parallel()

	// Each write that makes a task runnable notifies its queue with the
	// kind of task: "w/" for a workflow task, "a/" for an activity task,
	// and nothing of the other kind.
	t.Run("RunnableTasks", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		other := newStore(t, b.morePool(t, 2)) // another process
		ch := other.Notifications(b.ctx)

		b.createRun(t, "r1", "start-q")
		require.Equal(t, []string{"w/start-q"}, b.notified(t, ch, "m1"), "a start")

		wt := b.claim(t, "start-q", base)[0]
		_, err := b.st.CompleteWorkflowTask(b.ctx, store.CompleteWorkflowTaskParams{
			RunID: "r1", Token: wt.Token, ExpectedHistoryLen: 1,
			Events:             []store.Event{{ID: 2, Type: "command"}, {ID: 3, Type: "command"}},
			ScheduleActivities: []store.ActivityTask{{Seq: 2, ActivityType: "charge", TaskQueue: "activity-q"}},
			StartTimers:        []store.Timer{{Seq: 3, FireAt: at(time.Hour), Item: store.NewInboxItem{Type: "timer"}}},
			Now:                base,
		})
		require.NoError(t, err)
		require.Equal(t, []string{"a/activity-q"}, b.notified(t, ch, "m2"), "a commit that schedules an activity")

		claimActivity := func(now time.Time) store.ActivityTask {
			t.Helper()
			act, err := b.st.ClaimActivityTasks(b.ctx, store.ClaimParams{TaskQueue: "activity-q", Limit: 1, Now: now})
			require.NoError(t, err)
			require.Len(t, act, 1)
			return act[0]
		}
		retry := func(act store.ActivityTask, retryAt time.Time) {
			t.Helper()
			require.NoError(t, b.st.RetryActivityTask(b.ctx, store.RetryActivityTaskParams{
				RunID: "r1", Seq: 2, Token: act.Token, Attempt: store.ActivityAttempt{Attempt: act.Attempt, Outcome: "failed"},
				RetryAt: retryAt, Now: base,
			}))
		}
		retry(claimActivity(base), base)
		require.Equal(t, []string{"a/activity-q"}, b.notified(t, ch, "m3"), "a retry without delay")

		// A retry after a backoff is notified when FireTimers acknowledges
		// the backoff's end.
		retry(claimActivity(base), at(time.Minute))
		require.Empty(t, b.notified(t, ch, "m4"), "a retry after a backoff")
		queues, err := b.st.FireTimers(b.ctx, at(time.Minute), 10)
		require.NoError(t, err)
		require.Empty(t, queues, "no workflow task became claimable")
		require.Equal(t, []string{"a/activity-q"}, b.notified(t, ch, "m5"), "the end of a backoff")

		act := claimActivity(at(time.Minute))
		_, err = b.st.CompleteActivityTask(b.ctx, store.CompleteActivityTaskParams{
			RunID: "r1", Seq: 2, Token: act.Token, Attempt: store.ActivityAttempt{Attempt: act.Attempt, Outcome: "completed"},
			Item: store.NewInboxItem{Type: "activity_completed"}, Now: at(time.Minute),
		})
		require.NoError(t, err)
		require.Equal(t, []string{"w/start-q"}, b.notified(t, ch, "m6"), "an activity's result")

		// A lease expiry acknowledged by FireTimers makes the task
		// claimable again.
		require.Len(t, b.claim(t, "start-q", at(time.Minute)), 1) // leased for a minute
		queues, err = b.st.FireTimers(b.ctx, at(3*time.Minute), 10)
		require.NoError(t, err)
		require.Equal(t, []string{"start-q"}, queues)
		require.Equal(t, []string{"w/start-q"}, b.notified(t, ch, "m7"), "a lease expiry")

		// So does a timer firing.
		wt = b.claim(t, "start-q", at(3*time.Minute))[0]
		_, err = b.st.CompleteWorkflowTask(b.ctx, store.CompleteWorkflowTaskParams{
			RunID: "r1", Token: wt.Token, ExpectedHistoryLen: wt.Run.HistoryLen,
			Events:    []store.Event{{ID: wt.Run.HistoryLen + 1, Type: "activity_completed"}},
			InboxUpTo: wt.Inbox[len(wt.Inbox)-1].ID, Now: at(3 * time.Minute),
		})
		require.NoError(t, err)
		require.Empty(t, b.notified(t, ch, "m8"), "a commit that leaves nothing runnable")
		queues, err = b.st.FireTimers(b.ctx, at(time.Hour), 10)
		require.NoError(t, err)
		require.Equal(t, []string{"start-q"}, queues)
		require.Equal(t, []string{"w/start-q"}, b.notified(t, ch, "m9"), "a timer")
	})

	t.Run("OnlyOwnSchema", func(t *testing.T) {
		t.Parallel()
		a, b := setup(t), setup(t)
		chA, chB := a.st.Notifications(a.ctx), b.st.Notifications(b.ctx)
		a.createRun(t, "r1", "queue-a")
		receive(t, chA, "w/queue-a")
		b.createRun(t, "r1", "queue-b")
		// Had b's listener heard a's notification, it would come first.
		select {
		case got := <-chB:
			require.Equal(t, "w/queue-b", got)
		case <-time.After(10 * time.Second):
			require.FailNow(t, "no notification")
		}
	})

	t.Run("Reconnects", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ch := b.st.Notifications(b.ctx)

		// An unleased activity task on activity-q, and a leased workflow
		// task on leased-q.
		b.createRun(t, "r0", "start-q")
		wt := b.claim(t, "start-q", base)[0]
		_, err := b.st.CompleteWorkflowTask(b.ctx, store.CompleteWorkflowTaskParams{
			RunID: "r0", Token: wt.Token, ExpectedHistoryLen: 1,
			Events:             []store.Event{{ID: 2, Type: "command"}},
			ScheduleActivities: []store.ActivityTask{{Seq: 2, ActivityType: "charge", TaskQueue: "activity-q"}},
			Now:                base,
		})
		require.NoError(t, err)
		b.createRun(t, "leased", "leased-q")
		require.Len(t, b.claim(t, "leased-q", base), 1)
		require.Equal(t, []string{"w/start-q", "a/activity-q", "w/leased-q"}, b.notified(t, ch, "m0"))

		var schema string
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT current_schema()").Scan(&schema))
		listen := "LISTEN " + pgx.Identifier{"keel_tasks_" + schema}.Sanitize()
		var terminated bool
		require.NoError(t, b.pool.QueryRow(b.ctx,
			"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1", listen).Scan(&terminated))
		require.True(t, terminated)

		// Written while the listener may still be down: the listener lists
		// the queues with unleased tasks, by kind, once it is back. Only
		// that list sends a/activity-q and w/m0 again.
		b.createRun(t, "r1", "after-reconnect")
		want := map[string]bool{"a/activity-q": true, "w/m0": true, "w/after-reconnect": true}
		timeout := time.After(10 * time.Second)
		for len(want) > 0 {
			select {
			case got, ok := <-ch:
				require.True(t, ok, "notification channel closed")
				require.NotEqual(t, "w/leased-q", got, "a leased task is not listed")
				require.NotEqual(t, "w/start-q", got, "a run without a workflow task is not listed")
				delete(want, got)
			case <-timeout:
				require.FailNow(t, "no notification", "still waiting for %v", want)
			}
		}
		b.createRun(t, "r2", "later")
		receive(t, ch, "w/later")
	})

	t.Run("ClosedWithStore", func(t *testing.T) {
		t.Parallel()
		pool := testdb.Postgres(t)
		st, err := pgstore.New(t.Context(), pool, nil)
		require.NoError(t, err)
		ch := st.Notifications(t.Context())
		ctx, cancel := context.WithCancel(t.Context())
		ch2 := st.Notifications(ctx)
		cancel()
		for range ch2 {
		}
		require.NoError(t, st.Close())
		for range ch {
		}
		_, ok := <-st.Notifications(t.Context())
		require.False(t, ok, "closed store")
	})
}

// TestNewWarnsWhenAutovacuumIsOff checks that New logs a warning exactly
// when the server's autovacuum is off (the setting is the server's, so the
// test checks whichever case the server is in).
func TestNewWarnsWhenAutovacuumIsOff(t *testing.T) {
	t.Parallel()
	pool := testdb.Postgres(t)
	var autovacuum string
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT current_setting('autovacuum')").Scan(&autovacuum))

	var log bytes.Buffer
	s, err := pgstore.New(t.Context(), pool, &pgstore.Config{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	if autovacuum == "off" {
		require.Contains(t, log.String(), "level=WARN msg=\"pgstore: autovacuum is off")
	} else {
		require.NotContains(t, log.String(), "autovacuum")
	}
}
