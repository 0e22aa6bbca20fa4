package pgstore_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
)

// The eager fast paths notify nobody of the tasks they lease to their
// caller, and still notify the queues of the tasks they leave to the
// pollers.
func TestEagerNotifications(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ch := newStore(t, b.morePool(t, 2)).Notifications(b.ctx) // another process
	lease := &store.EagerLease{Owner: "w", LeaseUntil: at(time.Minute)}

	res, err := b.st.CreateRun(b.ctx, store.CreateRunParams{
		RunID: "r1", WorkflowID: "wf-r1", WorkflowType: "order", TaskQueue: "workflow-q",
		StartEvent: store.Event{Type: "started"}, Now: base, Eager: lease,
	})
	require.NoError(t, err)
	require.NotNil(t, res.Task)

	// Activity 2 is leased to the committer, activity 3 left to the pollers.
	committed, err := b.st.CompleteWorkflowTask(b.ctx, store.CompleteWorkflowTaskParams{
		RunID: "r1", Token: res.Task.Token, ExpectedHistoryLen: 1,
		Events: []store.Event{{ID: 2, Type: "command"}, {ID: 3, Type: "command"}},
		ScheduleActivities: []store.ActivityTask{
			{Seq: 2, ActivityType: "charge", TaskQueue: "eager-activity-q"},
			{Seq: 3, ActivityType: "charge", TaskQueue: "polled-activity-q"},
		},
		EagerActivities: []int64{2}, EagerOwner: "w", Now: base,
	})
	require.NoError(t, err)
	require.Len(t, committed.Activities, 1)
	polled, err := b.st.ClaimActivityTasks(b.ctx, store.ClaimParams{TaskQueue: "polled-activity-q", Limit: 1, Now: base})
	require.NoError(t, err)
	require.Len(t, polled, 1)

	// The first completion leases the workflow task; the second finds it
	// leased.
	complete := func(a store.ActivityTask) *store.WorkflowTask {
		t.Helper()
		res, err := b.st.CompleteActivityTask(b.ctx, store.CompleteActivityTaskParams{
			RunID: "r1", Seq: a.Seq, Token: a.Token, Attempt: store.ActivityAttempt{Attempt: 1, Outcome: "completed"},
			Item: store.NewInboxItem{Type: "activity_completed"}, Now: base, Eager: lease,
		})
		require.NoError(t, err)
		return res.Task
	}
	require.NotNil(t, complete(committed.Activities[0]))
	require.Nil(t, complete(polled[0]))

	// Had any eager lease been notified, it would come before the marker's
	// notification.
	require.Equal(t, []string{"a/polled-activity-q"}, b.notified(t, ch, "marker"))
}

// Activities completed with Eager by two processes race with signals from
// a third and with a poller: whoever holds the workflow task commits its
// inbox, and every item reaches the history exactly once, signals in the
// order each sender sent them. An eager lease's inbox is read after the
// task row is locked, so it never misses an item that a commit then
// deletes.
//
// Whether a completion finds the workflow task free to lease depends on
// the timing (the poller claims it in a loop), so the race is run on new
// runs until a completion has leased it, a few times at the most; every
// round is checked the same way.
func TestEagerInboxRace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	stores := []*pgstore.Store{b.st, newStore(t, b.morePool(t, 8))}
	signaller := newStore(t, b.morePool(t, 8))
	var eager int64
	for round := 0; round < 10 && eager == 0; round++ {
		eager = eagerInboxRace(t, b, stores, signaller, fmt.Sprint("r", round))
	}
	require.Positive(t, eager, "some completion leased the workflow task")
}

// eagerInboxRace runs one round of TestEagerInboxRace on a new run and
// returns how many completions leased its workflow task.
func eagerInboxRace(t *testing.T, b *testBundle, stores []*pgstore.Store, signaller *pgstore.Store, runID string) int64 {
	t.Helper()
	const (
		activities = 60
		senders    = 4
		each       = 30
	)
	now, leaseUntil := at(time.Second), at(time.Hour)
	queue, activityQueue := runID+"-q", runID+"-aq"

	b.createRun(t, runID, queue)
	wt := b.claim(t, queue, base)[0]
	p := store.CompleteWorkflowTaskParams{RunID: runID, Token: wt.Token, ExpectedHistoryLen: 1, Now: base}
	for seq := int64(2); seq < 2+activities; seq++ {
		p.Events = append(p.Events, store.Event{ID: seq, Type: "activity_scheduled"})
		p.ScheduleActivities = append(p.ScheduleActivities, store.ActivityTask{Seq: seq, ActivityType: "a", TaskQueue: activityQueue})
	}
	_, err := b.st.CompleteWorkflowTask(b.ctx, p)
	require.NoError(t, err)
	acts, err := b.st.ClaimActivityTasks(b.ctx, store.ClaimParams{TaskQueue: activityQueue, Limit: activities, Now: base})
	require.NoError(t, err)
	require.Len(t, acts, activities)

	// drain commits a leased workflow task, moving its inbox into the
	// history. Items that arrived since are left for the next holder.
	drain := func(st *pgstore.Store, wt store.WorkflowTask) error {
		p := store.CompleteWorkflowTaskParams{RunID: runID, Token: wt.Token, ExpectedHistoryLen: wt.Run.HistoryLen, Now: now}
		for i, it := range wt.Inbox {
			p.Events = append(p.Events, store.Event{ID: wt.Run.HistoryLen + int64(i) + 1, Type: it.Type, Data: it.Data})
			p.InboxUpTo = it.ID
		}
		_, err := st.CompleteWorkflowTask(b.ctx, p)
		return err
	}

	var (
		writers sync.WaitGroup
		poller  sync.WaitGroup
		done    atomic.Bool
		eager   atomic.Int64
		errs    = make(chan error, senders+len(stores)+1)
	)
	sendSignals(b, &writers, signaller, runID, senders, each, now, errs)
	for c, st := range stores {
		writers.Go(func() {
			for i := c; i < activities; i += len(stores) {
				a := acts[i]
				res, err := st.CompleteActivityTask(b.ctx, store.CompleteActivityTaskParams{
					RunID: runID, Seq: a.Seq, Token: a.Token, Attempt: store.ActivityAttempt{Attempt: 1, Outcome: "completed"},
					Item: store.NewInboxItem{Type: "activity_completed", Data: fmt.Appendf(nil, "a %d", a.Seq)}, Now: now,
					Eager: &store.EagerLease{Owner: fmt.Sprint("completer-", c), LeaseUntil: leaseUntil},
				})
				if err == nil && res.Task != nil {
					eager.Add(1)
					err = drain(st, *res.Task)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	pollWorkflowTasks(b, &poller, queue, now, leaseUntil, done.Load, func(wt store.WorkflowTask) error {
		return drain(b.st, wt)
	}, errs)
	writers.Wait()
	done.Store(true)
	poller.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	history, err := b.st.History(b.ctx, runID, 1+activities)
	require.NoError(t, err)
	require.Len(t, history, activities+senders*each)
	requireOnceInOrder(t, history, senders, each)
	b.requireEmpty(t, "keel_inbox", "keel_workflow_tasks", "keel_activity_tasks")
	return eager.Load()
}

// sendSignals starts senders goroutines on wg, each of which sends each
// signals "s <sender>/<i>" to run runID through st at now, one after
// another. A sender stops at its first error, which goes to errs.
func sendSignals(b *testBundle, wg *sync.WaitGroup, st *pgstore.Store, runID string, senders, each int, now time.Time, errs chan<- error) {
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				if _, err := st.Signal(b.ctx, store.SignalParams{
					RunID: runID, Item: store.NewInboxItem{Type: "signal", Data: fmt.Appendf(nil, "s %d/%d", g, i)}, Now: now,
				}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
}

// pollWorkflowTasks starts a poller on wg: it claims the workflow tasks of
// queue one at a time, at now and leased until leaseUntil, and hands each
// to drain, until a claim that began once stop reported true finds none.
// It stops at its first error, which goes to errs.
func pollWorkflowTasks(b *testBundle, wg *sync.WaitGroup, queue string, now, leaseUntil time.Time, stop func() bool,
	drain func(store.WorkflowTask) error, errs chan<- error) {
	wg.Go(func() {
		for {
			last := stop()
			tasks, err := b.st.ClaimWorkflowTasks(b.ctx, store.ClaimParams{
				TaskQueue: queue, Owner: "poller", Limit: 1, Now: now, LeaseUntil: leaseUntil,
			})
			if err != nil {
				errs <- err
				return
			}
			for _, wt := range tasks {
				if err := drain(wt); err != nil {
					errs <- err
					return
				}
			}
			if last && len(tasks) == 0 {
				return
			}
		}
	})
}

// requireOnceInOrder checks that no event of history has the same
// non-empty Data as another, and that it holds the signals of
// sendSignals: each of each sender's, in the order sent.
func requireOnceInOrder(t *testing.T, history []store.Event, senders, each int) {
	t.Helper()
	seen := map[string]bool{}
	next := make([]int, senders)
	for _, ev := range history {
		data := string(ev.Data)
		if data == "" {
			continue
		}
		require.False(t, seen[data], "%s twice in the history", data)
		seen[data] = true
		if strings.HasPrefix(data, "s ") {
			var g, i int
			_, err := fmt.Sscanf(data, "s %d/%d", &g, &i)
			require.NoError(t, err)
			require.Equal(t, next[g], i, "signals of sender %d in order", g)
			next[g]++
		}
	}
	for g, n := range next {
		require.Equal(t, each, n, "signals of sender %d", g)
	}
}

// requireEmpty checks that tables have no rows.
func (b *testBundle) requireEmpty(t *testing.T, tables ...string) {
	t.Helper()
	for _, table := range tables {
		var left int
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT count(*) FROM "+table).Scan(&left))
		require.Zero(t, left, table)
	}
}

// An activity scheduled, leased eagerly and marked cancel-requested by the
// same commit is returned cancel-requested, as ClaimActivityTasks would
// return it after the commit.
func TestEagerActivityCanceledInSameCommit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createRun(t, "r1", "q")
	wt := b.claim(t, "q", base)[0]
	res, err := b.st.CompleteWorkflowTask(b.ctx, store.CompleteWorkflowTaskParams{
		RunID: "r1", Token: wt.Token, ExpectedHistoryLen: 1,
		Events: []store.Event{{ID: 2, Type: "command"}, {ID: 3, Type: "command"}, {ID: 4, Type: "command"}},
		ScheduleActivities: []store.ActivityTask{
			{Seq: 2, ActivityType: "charge", TaskQueue: "aq"},
			{Seq: 3, ActivityType: "charge", TaskQueue: "aq"},
		},
		CancelActivities: []int64{3}, EagerActivities: []int64{3, 2}, EagerOwner: "w", Now: base,
	})
	require.NoError(t, err)
	require.Len(t, res.Activities, 2)
	require.EqualValues(t, 3, res.Activities[0].Seq)
	require.True(t, res.Activities[0].CancelRequested)
	require.EqualValues(t, 2, res.Activities[1].Seq)
	require.False(t, res.Activities[1].CancelRequested)
	hb, err := b.st.HeartbeatActivityTask(b.ctx, store.HeartbeatParams{
		RunID: "r1", Seq: 3, Token: res.Activities[0].Token, Now: base,
	})
	require.NoError(t, err)
	require.True(t, hb.CancelRequested)
}
