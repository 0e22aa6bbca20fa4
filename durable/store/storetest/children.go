package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
)

// exerciseChildren checks the writes that link runs together: child runs
// started by a commit (ChildStart) and what their closing does to their
// parent and the parent's closing to them (CloseRun.ParentItem and
// Children, TerminateParams likewise), requests to other workflow IDs
// (ExternalRequest), continue-as-new, and the timers a run starts with.
func exerciseChildren(t *testing.T, setup func(*testing.T) *bundle) {
	t.Run("StartChild", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		parent := b.createRun(t)
		now := at(time.Second)
		c := childStart(parent, 2, store.ParentCloseRequestCancel, func(p *store.CreateRunParams) {
			p.Now = now
		})
		timed := childStart(parent, 3, store.ParentCloseAbandon, func(p *store.CreateRunParams) {
			p.StartEvent.Time = at(-time.Hour)
			p.Now = now
		})
		res := b.step(t, parent, now, func(p *store.CompleteWorkflowTaskParams) {
			p.StartChildren = []store.ChildStart{c, timed}
		})
		require.False(t, res.Pending, "a started child writes nothing to its parent")

		child := b.getRun(t, c.Run.RunID)
		require.Equal(t, c.Run.WorkflowID, child.WorkflowID)
		require.Equal(t, "shipment", child.WorkflowType)
		require.Equal(t, c.Run.TaskQueue, child.TaskQueue)
		require.Equal(t, store.StatusRunning, child.Status)
		require.Equal(t, c.Run.Input, child.Input)
		require.EqualValues(t, 1, child.HistoryLen)
		require.EqualValues(t, len(c.Run.StartEvent.Data), child.HistoryBytes)
		require.False(t, child.CancelRequested)
		requireTime(t, now, child.CreatedAt)
		requireTime(t, time.Time{}, child.ClosedAt)
		require.Equal(t, &store.ParentRef{RunID: parent.RunID, Seq: 2, ClosePolicy: store.ParentCloseRequestCancel}, child.Parent)
		require.Nil(t, b.getRun(t, parent.RunID).Parent, "a top-level run has no parent")
		latest, err := b.st.GetLatestRun(b.ctx, c.Run.WorkflowID)
		require.NoError(t, err)
		requireSameRun(t, child, latest)
		require.Equal(t, child.Parent, latest.Parent)

		// Its start event is event 1, at the commit's Now unless it has a
		// time of its own.
		hist := b.history(t, child.RunID)
		require.Len(t, hist, 1)
		require.EqualValues(t, 1, hist[0].ID)
		require.Equal(t, "started", hist[0].Type)
		require.Equal(t, c.Run.StartEvent.Data, hist[0].Data)
		requireTime(t, now, hist[0].Time)
		hist = b.history(t, timed.Run.RunID)
		require.Len(t, hist, 1)
		requireTime(t, at(-time.Hour), hist[0].Time)

		// Its workflow task is ready at the commit, on its own queue, and
		// carries the parent link.
		b.claimNone(t, child.TaskQueue, base)
		wt := b.claim(t, child.TaskQueue, now)
		require.Empty(t, wt.Inbox)
		require.Equal(t, child.Parent, wt.Run.Parent)
		requireSameRun(t, child, wt.Run)
		b.claim(t, timed.Run.TaskQueue, now)
		b.claimNone(t, parent.TaskQueue, at(time.Hour))
	})

	t.Run("StartChildFailed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		parent := b.createRun(t)
		running := b.createRun(t)
		completed := b.closeRun(t, b.createRun(t), store.StatusCompleted, base)
		failed := b.closeRun(t, b.createRun(t), store.StatusFailed, base)
		rejected := b.closeRun(t, b.createRun(t), store.StatusFailed, base)

		withID := func(id string, policy store.IDReusePolicy) func(*store.CreateRunParams) {
			return func(p *store.CreateRunParams) { p.WorkflowID, p.ReusePolicy = id, policy }
		}
		now := at(time.Second)
		starts := []store.ChildStart{
			// Refused: another run is running with the ID, whatever the
			// policy, even the parent itself.
			childStart(parent, 2, store.ParentCloseTerminate, withID(running.WorkflowID, store.AllowDuplicate)),
			childStart(parent, 3, store.ParentCloseTerminate, withID(parent.WorkflowID, store.AllowDuplicate)),
			// Refused by the reuse policy.
			childStart(parent, 4, store.ParentCloseTerminate, withID(completed.WorkflowID, store.AllowDuplicateFailedOnly)),
			childStart(parent, 5, store.ParentCloseTerminate, withID(rejected.WorkflowID, store.RejectDuplicate)),
			// Allowed by the reuse policy.
			childStart(parent, 6, store.ParentCloseTerminate, withID(failed.WorkflowID, store.AllowDuplicateFailedOnly)),
		}
		before := b.getRun(t, running.RunID)
		res := b.step(t, parent, now, func(p *store.CompleteWorkflowTaskParams) { p.StartChildren = starts })
		require.True(t, res.Pending, "the failed starts wait in the parent's inbox")

		for _, c := range starts[:4] {
			_, err := b.st.GetRun(b.ctx, c.Run.RunID)
			require.ErrorIs(t, err, store.ErrNotFound, "child %d", c.Run.Parent.Seq)
		}
		requireSameRun(t, before, b.getRun(t, running.RunID))
		require.Nil(t, b.getRun(t, running.RunID).Parent)
		require.Len(t, b.history(t, running.RunID), 1)
		for _, r := range []store.Run{parent, completed, rejected} {
			latest, err := b.st.GetLatestRun(b.ctx, r.WorkflowID)
			require.NoError(t, err)
			require.Equal(t, r.RunID, latest.RunID)
		}
		child := b.getRun(t, starts[4].Run.RunID)
		require.Equal(t, store.StatusRunning, child.Status)
		require.Equal(t, failed.WorkflowID, child.WorkflowID)
		require.Equal(t, parent.RunID, child.Parent.RunID)

		// The parent's workflow task is runnable at once, with one failed
		// item per refused start, in order.
		wt := b.claim(t, parent.TaskQueue, now)
		require.Equal(t, []string{"child_start_failed", "child_start_failed", "child_start_failed", "child_start_failed"},
			itemTypes(wt.Inbox))
		require.Equal(t, []string{`{"seq":2}`, `{"seq":3}`, `{"seq":4}`, `{"seq":5}`}, itemData(wt.Inbox))
		for _, it := range wt.Inbox {
			requireTime(t, now, it.Time)
		}
		require.Equal(t, 1, wt.Attempt, "a requeued task is a fresh one")
	})

	t.Run("ChildClose", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		parent := b.createRun(t)
		kids := b.startChildren(t, parent, base,
			childStart(parent, 2, store.ParentCloseTerminate),
			childStart(parent, 3, store.ParentCloseTerminate))
		b.claimNone(t, parent.TaskQueue, at(time.Hour))

		// A child completing tells its parent, whose task becomes
		// runnable at that moment.
		b.step(t, kids[0], at(time.Second), func(p *store.CompleteWorkflowTaskParams) {
			p.Close = &store.CloseRun{Status: store.StatusCompleted, Result: []byte(`"shipped"`),
				ParentItem: &store.NewInboxItem{Type: "child_completed", Data: []byte(`{"seq":2}`)}}
		})
		require.Equal(t, store.StatusCompleted, b.getRun(t, kids[0].RunID).Status)
		b.claimNone(t, parent.TaskQueue, at(time.Second-time.Millisecond))
		wt := b.claim(t, parent.TaskQueue, at(time.Second))
		require.Equal(t, []string{"child_completed"}, itemTypes(wt.Inbox))
		require.Equal(t, []string{`{"seq":2}`}, itemData(wt.Inbox))
		requireTime(t, at(time.Second), wt.Inbox[0].Time)

		// A child terminated while the parent's task is leased: the item
		// waits, and the parent's commit finds it pending.
		require.NoError(t, b.st.Terminate(b.ctx, store.TerminateParams{
			RunID: kids[1].RunID, Event: store.Event{Type: "terminated"}, Failure: []byte(`"ops"`), Now: at(2 * time.Second),
			ParentItem: &store.NewInboxItem{Type: "child_terminated", Data: []byte(`{"seq":3}`)},
		}))
		require.Equal(t, store.StatusTerminated, b.getRun(t, kids[1].RunID).Status)
		p := params(wt, at(3*time.Second))
		p.Events = inboxEvents(wt)
		require.True(t, b.commit(t, p).Pending)
		wt = b.claim(t, parent.TaskQueue, at(3*time.Second))
		require.Equal(t, []string{"child_terminated"}, itemTypes(wt.Inbox))
		require.Equal(t, []string{`{"seq":3}`}, itemData(wt.Inbox))
		requireTime(t, at(2*time.Second), wt.Inbox[0].Time)
	})

	t.Run("ChildCloseParentClosed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		parent := b.createRun(t)
		kids := b.startChildren(t, parent, base,
			childStart(parent, 2, store.ParentCloseAbandon),
			childStart(parent, 3, store.ParentCloseAbandon))
		b.signal(t, parent.RunID, "wake", at(time.Second))
		b.step(t, parent, at(time.Second), func(p *store.CompleteWorkflowTaskParams) {
			p.Close = &store.CloseRun{Status: store.StatusCompleted, Result: []byte(`"done"`), Children: familyClose()}
		})
		closed := b.getRun(t, parent.RunID)
		require.Equal(t, store.StatusCompleted, closed.Status)

		// Abandoned children run on, and their closing writes nothing.
		b.step(t, kids[0], at(2*time.Second), func(p *store.CompleteWorkflowTaskParams) {
			p.Close = &store.CloseRun{Status: store.StatusFailed, Failure: []byte(`"boom"`),
				ParentItem: &store.NewInboxItem{Type: "child_failed"}}
		})
		require.NoError(t, b.st.Terminate(b.ctx, store.TerminateParams{
			RunID: kids[1].RunID, Event: store.Event{Type: "terminated"}, Now: at(3 * time.Second),
			ParentItem: &store.NewInboxItem{Type: "child_terminated"},
		}))
		require.Equal(t, store.StatusFailed, b.getRun(t, kids[0].RunID).Status)
		require.Equal(t, store.StatusTerminated, b.getRun(t, kids[1].RunID).Status)
		requireSameRun(t, closed, b.getRun(t, parent.RunID))
		require.Len(t, b.history(t, parent.RunID), int(closed.HistoryLen))
		b.claimNone(t, parent.TaskQueue, at(time.Hour))
	})

	t.Run("ParentClose", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		f := b.family(t)
		now := at(10 * time.Second)
		cc := familyClose()
		b.signal(t, f.parent.RunID, "wake", now)
		res := b.step(t, f.parent, now, func(p *store.CompleteWorkflowTaskParams) {
			p.Close = &store.CloseRun{Status: store.StatusCompleted, Result: []byte(`"done"`), Children: cc}
		})
		require.False(t, res.Pending)
		require.Equal(t, store.StatusCompleted, b.getRun(t, f.parent.RunID).Status)
		b.requireFamilyClosed(t, f, cc, now)
	})

	t.Run("ParentCloseWithoutChildren", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		parent := b.createRun(t)
		kids := b.startChildren(t, parent, base, childStart(parent, 2, store.ParentCloseTerminate))
		b.step(t, kids[0], base, nil)
		before := b.getRun(t, kids[0].RunID)

		// Without Children the close leaves the children alone.
		b.signal(t, parent.RunID, "wake", at(time.Second))
		b.step(t, parent, at(time.Second), func(p *store.CompleteWorkflowTaskParams) {
			p.Close = &store.CloseRun{Status: store.StatusFailed, Failure: []byte(`"boom"`)}
		})
		requireSameRun(t, before, b.getRun(t, kids[0].RunID))
		b.claimNone(t, kids[0].TaskQueue, at(time.Hour))
	})

	t.Run("TerminateFamily", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		grandparent := b.createRun(t)
		mid := b.startChildren(t, grandparent, base, childStart(grandparent, 7, store.ParentCloseTerminate))[0]
		f := b.familyOf(t, mid)
		before := b.getRun(t, mid.RunID)
		now := at(10 * time.Second)
		cc := familyClose()
		require.NoError(t, b.st.Terminate(b.ctx, store.TerminateParams{
			RunID: mid.RunID, Event: store.Event{Type: "terminated", Data: []byte(`"ops"`)}, Failure: []byte(`"stop"`), Now: now,
			ParentItem: &store.NewInboxItem{Type: "child_terminated", Data: []byte(`{"seq":7}`)},
			Children:   cc,
		}))

		got := b.getRun(t, mid.RunID)
		require.Equal(t, store.StatusTerminated, got.Status)
		require.Equal(t, []byte(`"stop"`), got.Failure)
		require.Equal(t, before.HistoryLen+1, got.HistoryLen)

		// The grandparent is told, at once.
		wt := b.claim(t, grandparent.TaskQueue, now)
		require.Equal(t, []string{"child_terminated"}, itemTypes(wt.Inbox))
		require.Equal(t, []string{`{"seq":7}`}, itemData(wt.Inbox))
		requireTime(t, now, wt.Inbox[0].Time)
		p := params(wt, now)
		p.Events = inboxEvents(wt)
		b.commit(t, p)

		// Mid's children get their policies, exactly as on a close.
		b.requireFamilyClosed(t, f, cc, now)
	})

	t.Run("External", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sender := b.createRun(t)
		signalled := b.createRun(t)
		b.step(t, signalled, base, nil)
		canceled, acts := b.idleRun(t, 1)
		already := b.createRun(t)
		require.NoError(t, b.st.RequestCancel(b.ctx, store.CancelParams{
			RunID: already.RunID, Item: store.NewInboxItem{Type: "cancel_requested"}, Now: base,
		}))
		b.step(t, already, base, nil)
		closed := b.closeRun(t, b.createRun(t), store.StatusCompleted, base)
		before := map[string]store.Run{}
		for _, r := range []store.Run{signalled, canceled, already, closed} {
			before[r.RunID] = b.getRun(t, r.RunID)
		}

		now := at(3 * time.Second)
		res := b.step(t, sender, now, func(p *store.CompleteWorkflowTaskParams) {
			p.External = []store.ExternalRequest{
				external(2, signalled.WorkflowID, false, store.NewInboxItem{Type: "signal", Data: []byte(`"hello"`)}),
				external(3, "no-such-workflow", false, store.NewInboxItem{Type: "signal"}),
				external(4, canceled.WorkflowID, true, store.NewInboxItem{Type: "cancel_requested", Data: []byte(`"by sender"`)}),
				external(5, already.WorkflowID, true, store.NewInboxItem{Type: "cancel_requested"}),
				external(6, closed.WorkflowID, false, store.NewInboxItem{Type: "signal"}),
				external(7, "no-such-workflow", true, store.NewInboxItem{Type: "cancel_requested"}),
			}
		})
		require.True(t, res.Pending, "the outcomes wait in the sender's inbox")

		// The sender learns each outcome, in order.
		wt := b.claim(t, sender.TaskQueue, now)
		require.Equal(t, []string{"external_done", "external_failed", "external_done", "external_done",
			"external_failed", "external_failed"}, itemTypes(wt.Inbox))
		require.Equal(t, []string{`{"seq":2}`, `{"seq":3}`, `{"seq":4}`, `{"seq":5}`, `{"seq":6}`, `{"seq":7}`},
			itemData(wt.Inbox))
		for _, it := range wt.Inbox {
			requireTime(t, now, it.Time)
		}

		// A signal is a plain inbox item.
		got := b.getRun(t, signalled.RunID)
		require.False(t, got.CancelRequested)
		wt = b.claim(t, signalled.TaskQueue, now)
		require.Equal(t, []string{"signal"}, itemTypes(wt.Inbox))
		require.Equal(t, []string{`"hello"`}, itemData(wt.Inbox))
		requireTime(t, now, wt.Inbox[0].Time)

		// A cancel request marks the run and its activities.
		got = b.getRun(t, canceled.RunID)
		require.True(t, got.CancelRequested)
		require.Equal(t, store.StatusRunning, got.Status)
		requireTime(t, now, got.UpdatedAt)
		hb, err := b.st.HeartbeatActivityTask(b.ctx, store.HeartbeatParams{
			RunID: canceled.RunID, Seq: acts[0].Seq, Token: acts[0].Token, Now: now,
		})
		require.NoError(t, err)
		require.True(t, hb.CancelRequested)
		wt = b.claim(t, canceled.TaskQueue, now)
		require.Equal(t, []string{"cancel_requested"}, itemTypes(wt.Inbox))
		require.Equal(t, []string{`"by sender"`}, itemData(wt.Inbox))

		// A run asked to cancel before gets no second request; a closed
		// run is not touched.
		b.claimNone(t, already.TaskQueue, at(time.Hour))
		requireSameRun(t, before[already.RunID], b.getRun(t, already.RunID))
		requireSameRun(t, before[closed.RunID], b.getRun(t, closed.RunID))
		b.claimNone(t, closed.TaskQueue, at(time.Hour))
	})

	t.Run("CloseStillStartsAndDelivers", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sender := b.createRun(t)
		target := b.createRun(t)
		b.step(t, target, base, nil)

		now := at(time.Second)
		abandoned := childStart(sender, 2, store.ParentCloseAbandon)
		doomed := childStart(sender, 3, store.ParentCloseTerminate)
		refused := childStart(sender, 4, store.ParentCloseAbandon, func(p *store.CreateRunParams) {
			p.WorkflowID = target.WorkflowID
		})
		cc := familyClose()
		res := b.step(t, sender, now, func(p *store.CompleteWorkflowTaskParams) {
			p.StartChildren = []store.ChildStart{abandoned, doomed, refused}
			p.External = []store.ExternalRequest{
				external(5, target.WorkflowID, false, store.NewInboxItem{Type: "signal", Data: []byte(`"bye"`)}),
				external(6, "no-such-workflow", false, store.NewInboxItem{Type: "signal"}),
			}
			p.Close = &store.CloseRun{Status: store.StatusCompleted, Result: []byte(`"done"`), Children: cc}
		})
		require.False(t, res.Pending)
		require.Equal(t, store.StatusCompleted, b.getRun(t, sender.RunID).Status)
		b.claimNone(t, sender.TaskQueue, at(time.Hour))

		// The children are started before the close applies their policy.
		got := b.getRun(t, abandoned.Run.RunID)
		require.Equal(t, store.StatusRunning, got.Status)
		require.Equal(t, sender.RunID, got.Parent.RunID)
		b.claim(t, abandoned.Run.TaskQueue, now)
		got = b.getRun(t, doomed.Run.RunID)
		require.Equal(t, store.StatusTerminated, got.Status)
		require.Equal(t, cc.TerminateFailure, got.Failure)
		hist := b.history(t, doomed.Run.RunID)
		require.Len(t, hist, 2)
		require.Equal(t, []string{"started", "terminated"}, []string{hist[0].Type, hist[1].Type})
		b.claimNone(t, doomed.Run.TaskQueue, at(time.Hour))
		_, err := b.st.GetRun(b.ctx, refused.Run.RunID)
		require.ErrorIs(t, err, store.ErrNotFound)

		// The signal is delivered.
		wt := b.claim(t, target.TaskQueue, now)
		require.Equal(t, []string{"signal"}, itemTypes(wt.Inbox))
		require.Equal(t, []string{`"bye"`}, itemData(wt.Inbox))
		require.Nil(t, wt.Run.Parent)
	})

	t.Run("ContinueAsNew", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		parent := b.createRun(t)
		run := b.startChildren(t, parent, base, childStart(parent, 2, store.ParentCloseRequestCancel))[0]
		kid := childStart(run, 2, store.ParentCloseTerminate)
		act := activity(run, 4, base)
		b.step(t, run, base, func(p *store.CompleteWorkflowTaskParams) {
			p.StartChildren = []store.ChildStart{kid}
			p.StartTimers = []store.Timer{{RunID: run.RunID, Seq: 3, FireAt: at(time.Hour), Item: store.NewInboxItem{Type: "timer_fired"}}}
			p.ScheduleActivities = []store.ActivityTask{act}
		})
		task := b.claimActivity(t, act.TaskQueue, base)
		b.step(t, b.getRun(t, kid.Run.RunID), base, nil)

		// One signal before the claim, which the task consumes; after it,
		// two signals and an item of another type.
		b.signal(t, run.RunID, "s1", at(time.Second))
		wt := b.claim(t, run.TaskQueue, at(time.Second))
		require.Len(t, wt.Inbox, 1)
		b.signal(t, run.RunID, "s2", at(2*time.Second))
		_, err := b.st.Signal(b.ctx, store.SignalParams{RunID: run.RunID, Item: store.NewInboxItem{Type: "update"}, Now: at(3 * time.Second)})
		require.NoError(t, err)
		b.signal(t, run.RunID, "s3", at(4*time.Second))

		now := at(5 * time.Second)
		late := childStart(run, 6, store.ParentCloseTerminate)
		next := runParams(func(p *store.CreateRunParams) {
			p.WorkflowID, p.TaskQueue = run.WorkflowID, run.TaskQueue
			p.Input = []byte(`{"order":2}`)
			p.StartEvent = store.Event{Type: "started", Data: []byte(`{"continued":true}`)}
			// Ignored: the successor replaces the run it continues.
			p.ReusePolicy = store.RejectDuplicate
			p.Timers = []store.Timer{{Seq: 0, FireAt: at(2 * time.Hour), Item: store.NewInboxItem{Type: "timed_out", Data: []byte(`"2h"`)}}}
			p.Now = now
		})
		p := params(wt, now)
		p.Events = append(inboxEvents(wt), events(wt.Run.HistoryLen+1, 1)...)
		p.StartChildren = []store.ChildStart{late}
		p.Close = &store.CloseRun{
			Status: store.StatusContinuedAsNew, Result: []byte(`"` + next.RunID + `"`),
			// Both ignored when continuing as new.
			ParentItem: &store.NewInboxItem{Type: "child_completed"},
			Children:   familyClose(),
			ContinueAsNew: &store.ContinueAsNew{
				Run:             next,
				CarryInboxTypes: []string{"signal"},
			},
		}
		require.False(t, b.commit(t, p).Pending)

		closed := b.getRun(t, run.RunID)
		require.Equal(t, store.StatusContinuedAsNew, closed.Status)
		require.Equal(t, []byte(`"`+next.RunID+`"`), closed.Result)
		require.Nil(t, closed.Failure)
		requireTime(t, now, closed.ClosedAt)
		require.EqualValues(t, 4, closed.HistoryLen)

		// The successor: same workflow ID, the closed run's parent link,
		// its own start event and a task ready now.
		succ := b.getRun(t, next.RunID)
		require.Equal(t, run.WorkflowID, succ.WorkflowID)
		require.Equal(t, store.StatusRunning, succ.Status)
		require.Equal(t, []byte(`{"order":2}`), succ.Input)
		require.EqualValues(t, 1, succ.HistoryLen)
		requireTime(t, now, succ.CreatedAt)
		require.Equal(t, &store.ParentRef{RunID: parent.RunID, Seq: 2, ClosePolicy: store.ParentCloseRequestCancel}, succ.Parent)
		hist := b.history(t, succ.RunID)
		require.Len(t, hist, 1)
		require.Equal(t, []byte(`{"continued":true}`), hist[0].Data)
		requireTime(t, now, hist[0].Time)
		latest, err := b.st.GetLatestRun(b.ctx, run.WorkflowID)
		require.NoError(t, err)
		require.Equal(t, succ.RunID, latest.RunID)

		// It takes over the signals that arrived after the claim, and
		// nothing else.
		wt = b.claim(t, succ.TaskQueue, now)
		require.Equal(t, succ.RunID, wt.Run.RunID)
		require.Equal(t, []string{"signal", "signal"}, itemTypes(wt.Inbox))
		require.Equal(t, []string{`"s2"`, `"s3"`}, itemData(wt.Inbox))
		requireTime(t, at(2*time.Second), wt.Inbox[0].Time)
		requireTime(t, at(4*time.Second), wt.Inbox[1].Time)
		p = params(wt, now)
		p.Events = inboxEvents(wt)
		require.False(t, b.commit(t, p).Pending)

		// The parent is not told; the children, the one started by the
		// last task too, now belong to the successor and run on.
		b.claimNone(t, parent.TaskQueue, at(time.Hour))
		for _, c := range []store.ChildStart{kid, late} {
			got := b.getRun(t, c.Run.RunID)
			require.Equal(t, store.StatusRunning, got.Status)
			require.Equal(t, &store.ParentRef{RunID: succ.RunID, Seq: c.Run.Parent.Seq, ClosePolicy: store.ParentCloseTerminate}, got.Parent)
		}

		// The closed run's activity and timer are gone; the successor's
		// timer fires.
		_, err = b.st.HeartbeatActivityTask(b.ctx, store.HeartbeatParams{RunID: run.RunID, Seq: 4, Token: task.Token, Now: now})
		require.ErrorIs(t, err, store.ErrLeaseLost)
		queues, err := b.st.FireTimers(b.ctx, at(time.Hour), 10)
		require.NoError(t, err)
		require.Empty(t, queues)
		queues, err = b.st.FireTimers(b.ctx, at(2*time.Hour), 10)
		require.NoError(t, err)
		require.Equal(t, []string{succ.TaskQueue}, queues)
		wt = b.claim(t, succ.TaskQueue, at(2*time.Hour))
		require.Equal(t, []string{"timed_out"}, itemTypes(wt.Inbox))
		p = params(wt, at(2*time.Hour))
		p.Events = inboxEvents(wt)
		b.commit(t, p)

		// A child's close reaches the successor, and the successor's close
		// applies the children's policy.
		b.signal(t, kid.Run.RunID, "finish", at(2*time.Hour))
		b.step(t, b.getRun(t, kid.Run.RunID), at(2*time.Hour), func(p *store.CompleteWorkflowTaskParams) {
			p.Close = &store.CloseRun{Status: store.StatusCompleted,
				ParentItem: &store.NewInboxItem{Type: "child_completed", Data: []byte(`{"seq":2}`)}}
		})
		cc := familyClose()
		now = at(2*time.Hour + time.Second)
		wt = b.claim(t, succ.TaskQueue, now)
		require.Equal(t, []string{"child_completed"}, itemTypes(wt.Inbox))
		p = params(wt, now)
		p.Events = append(inboxEvents(wt), events(wt.Run.HistoryLen+1, 1)...)
		p.Close = &store.CloseRun{Status: store.StatusCompleted, Children: cc}
		b.commit(t, p)
		require.Equal(t, store.StatusTerminated, b.getRun(t, late.Run.RunID).Status)
	})

	t.Run("ContinueAsNewTopLevel", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run := b.createRun(t)
		other := b.createRun(t)
		b.step(t, other, base, nil)
		wt := b.claim(t, run.TaskQueue, base)
		b.signal(t, run.RunID, "late", at(time.Second))

		// The new run may change type and queue. The closing task's
		// refused child start and failed external request go nowhere,
		// even with a type the successor takes over.
		now := at(2 * time.Second)
		next := runParams(func(p *store.CreateRunParams) {
			p.WorkflowID, p.WorkflowType = run.WorkflowID, "order-v2"
			p.ReusePolicy = store.AllowDuplicateFailedOnly
			p.Now = now
		})
		refused := childStart(run, 2, store.ParentCloseAbandon, func(p *store.CreateRunParams) {
			p.WorkflowID = other.WorkflowID
		})
		refused.FailedItem.Type = "signal"
		ext := external(3, "no-such-workflow", false, store.NewInboxItem{Type: "signal"})
		ext.FailedItem.Type = "signal"
		p := params(wt, now)
		p.Events = events(wt.Run.HistoryLen, 1)
		p.StartChildren = []store.ChildStart{refused}
		p.External = []store.ExternalRequest{ext}
		p.Close = &store.CloseRun{Status: store.StatusContinuedAsNew, Result: []byte(`"` + next.RunID + `"`),
			ContinueAsNew: &store.ContinueAsNew{Run: next, CarryInboxTypes: []string{"signal"}}}
		require.False(t, b.commit(t, p).Pending)

		succ := b.getRun(t, next.RunID)
		require.Nil(t, succ.Parent)
		require.Equal(t, "order-v2", succ.WorkflowType)
		require.Equal(t, next.TaskQueue, succ.TaskQueue)
		b.claimNone(t, run.TaskQueue, at(time.Hour))
		wt = b.claim(t, next.TaskQueue, now)
		require.Equal(t, []string{`"late"`}, itemData(wt.Inbox))
		b.claimNone(t, other.TaskQueue, at(time.Hour))
		_, err := b.st.GetRun(b.ctx, refused.Run.RunID)
		require.ErrorIs(t, err, store.ErrNotFound)

		// Whatever the reuse policy, again: the successor completes, and
		// its own successor still starts.
		p = params(wt, now)
		p.Events = inboxEvents(wt)
		third := runParams(func(r *store.CreateRunParams) {
			r.WorkflowID, r.ReusePolicy, r.Now = run.WorkflowID, store.RejectDuplicate, now
		})
		p.Close = &store.CloseRun{Status: store.StatusContinuedAsNew, Result: []byte(`"` + third.RunID + `"`),
			ContinueAsNew: &store.ContinueAsNew{Run: third}}
		b.commit(t, p)
		require.Equal(t, store.StatusRunning, b.getRun(t, third.RunID).Status)
		list, err := b.st.ListRuns(b.ctx, store.ListRunsParams{WorkflowID: run.WorkflowID})
		require.NoError(t, err)
		require.Equal(t, []string{third.RunID, next.RunID, run.RunID}, runIDs(list.Runs))
	})

	t.Run("ParentCloseRacesChildClose", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// A parent closes, terminating its children, while a child
		// closes on its own: terminated by an operator, or continuing as
		// new. Whichever commits first, the child is closed once, and a
		// successor that became the parent's child before the parent
		// closed is terminated with it.
		const rounds = 10
		for i := range rounds {
			for _, continues := range []bool{false, true} {
				parent := b.createRun(t)
				kid := b.startChildren(t, parent, base, childStart(parent, 2, store.ParentCloseTerminate))[0]
				b.step(t, kid, base, nil)
				now := at(time.Duration(i+1) * time.Second)
				b.signal(t, parent.RunID, "close", now)
				b.signal(t, kid.RunID, "continue", now)
				pt := b.claim(t, parent.TaskQueue, now)
				kt := b.claim(t, kid.TaskQueue, now)
				pp := params(pt, now)
				pp.Events = inboxEvents(pt)
				pp.Close = &store.CloseRun{Status: store.StatusCompleted, Children: familyClose()}
				next := runParams(func(p *store.CreateRunParams) { p.WorkflowID, p.Now = kid.WorkflowID, now })
				kp := params(kt, now)
				kp.Events = inboxEvents(kt)
				kp.Close = &store.CloseRun{Status: store.StatusContinuedAsNew, Result: []byte(`"next"`),
					ContinueAsNew: &store.ContinueAsNew{Run: next}}

				var (
					wg                sync.WaitGroup
					parentErr, kidErr error
				)
				wg.Go(func() { _, parentErr = b.st.CompleteWorkflowTask(b.ctx, pp) })
				wg.Go(func() {
					if continues {
						_, kidErr = b.st.CompleteWorkflowTask(b.ctx, kp)
						return
					}
					kidErr = b.st.Terminate(b.ctx, store.TerminateParams{
						RunID: kid.RunID, Event: store.Event{Type: "terminated", Data: []byte(`"ops"`)},
						Failure: []byte(`"ops"`), Now: now,
					})
				})
				wg.Wait()
				require.NoError(t, parentErr)

				got := b.getRun(t, kid.RunID)
				hist := b.history(t, kid.RunID)
				require.Len(t, hist, int(got.HistoryLen), "the history length matches the history")
				last := hist[len(hist)-1]
				switch {
				case kidErr != nil:
					// The parent's close came first.
					if continues {
						require.ErrorIs(t, kidErr, store.ErrLeaseLost)
					} else {
						require.ErrorIs(t, kidErr, store.ErrRunClosed)
					}
					require.Equal(t, store.StatusTerminated, got.Status)
					require.Equal(t, familyClose().TerminateFailure, got.Failure)
					require.Equal(t, []byte(`{"reason":"parent closed"}`), last.Data)
					_, err := b.st.GetRun(b.ctx, next.RunID)
					require.ErrorIs(t, err, store.ErrNotFound)
				case continues:
					require.Equal(t, store.StatusContinuedAsNew, got.Status, "closed once, by its own commit")
					require.Equal(t, kp.Events[len(kp.Events)-1].Data, last.Data)
					succ := b.getRun(t, next.RunID)
					require.Equal(t, store.StatusTerminated, succ.Status, "the successor was the parent's child")
				default:
					require.Equal(t, store.StatusTerminated, got.Status)
					require.Equal(t, []byte(`"ops"`), got.Failure, "closed once, by the operator")
					require.Equal(t, []byte(`"ops"`), last.Data)
				}
			}
		}
	})

	t.Run("ChildCloseRacesParentClose", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// A child tells its parent it closed while the parent closes
		// (without Children): whichever commits first, the closed parent
		// is left without a workflow task.
		const rounds = 10
		for i := range rounds {
			parent := b.createRun(t)
			kid := b.startChildren(t, parent, base, childStart(parent, 2, store.ParentCloseAbandon))[0]
			now := at(time.Duration(i+1) * time.Second)
			b.signal(t, parent.RunID, "close", now)
			pt := b.claim(t, parent.TaskQueue, now)
			kt := b.claim(t, kid.TaskQueue, now)
			pp := params(pt, now)
			pp.Events = inboxEvents(pt)
			pp.Close = &store.CloseRun{Status: store.StatusCompleted}
			kp := params(kt, now)
			kp.Events = events(kt.Run.HistoryLen, 1)
			kp.Close = &store.CloseRun{Status: store.StatusCompleted, ParentItem: &store.NewInboxItem{Type: "child_completed"}}

			var (
				wg                sync.WaitGroup
				parentErr, kidErr error
			)
			wg.Go(func() { _, parentErr = b.st.CompleteWorkflowTask(b.ctx, pp) })
			wg.Go(func() { _, kidErr = b.st.CompleteWorkflowTask(b.ctx, kp) })
			wg.Wait()
			require.NoError(t, parentErr)
			require.NoError(t, kidErr)
			require.Equal(t, store.StatusCompleted, b.getRun(t, parent.RunID).Status)
			require.Equal(t, store.StatusCompleted, b.getRun(t, kid.RunID).Status)
			b.claimNone(t, parent.TaskQueue, at(time.Hour))
		}
	})

	t.Run("ActivityWithWorkflowTaskRefusesChildren", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		run, acts := b.idleRun(t, 1)
		target := b.createRun(t)
		b.step(t, target, base, nil)
		now := at(3 * time.Second)
		child := childStart(run, 10, store.ParentCloseTerminate)
		next := runParams(func(p *store.CreateRunParams) { p.WorkflowID, p.Now = run.WorkflowID, now })
		for name, mod := range map[string]func(*store.CompleteWorkflowTaskParams){
			"StartChildren": func(p *store.CompleteWorkflowTaskParams) { p.StartChildren = []store.ChildStart{child} },
			"External": func(p *store.CompleteWorkflowTaskParams) {
				p.External = []store.ExternalRequest{external(10, target.WorkflowID, false, store.NewInboxItem{Type: "signal"})}
			},
			"ContinueAsNew": func(p *store.CompleteWorkflowTaskParams) {
				p.Close = &store.CloseRun{Status: store.StatusContinuedAsNew, Result: []byte(`"next"`),
					ContinueAsNew: &store.ContinueAsNew{Run: next}}
			},
		} {
			sp := speculative(acts[0], 2, now)
			mod(&sp.Workflow)
			before := b.snapshot(t, run.RunID)
			_, err := b.st.CompleteActivityWithWorkflowTask(b.ctx, sp)
			require.Error(t, err, name)
			require.NotErrorIs(t, err, store.ErrLeaseLost, name)
			require.NotErrorIs(t, err, store.ErrRunBusy, name)
			b.requireSnapshot(t, before)
			_, err = b.st.HeartbeatActivityTask(b.ctx, store.HeartbeatParams{
				RunID: run.RunID, Seq: acts[0].Seq, Token: acts[0].Token, Now: now,
			})
			require.NoError(t, err, "%s: the activity is still leased", name)
		}
		_, err := b.st.GetRun(b.ctx, child.Run.RunID)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = b.st.GetRun(b.ctx, next.RunID)
		require.ErrorIs(t, err, store.ErrNotFound)
		b.claimNone(t, target.TaskQueue, at(time.Hour))
		b.claimNone(t, run.TaskQueue, at(time.Hour))
	})

	t.Run("CreateRunTimers", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		timer := func(seq int64, fireAt time.Time) store.Timer {
			return store.Timer{Seq: seq, FireAt: fireAt, Item: store.NewInboxItem{Type: "timer_fired", Data: fmt.Appendf(nil, "%d", seq)}}
		}
		requireWakeup := func(want time.Time) {
			t.Helper()
			next, ok, err := b.st.NextWakeup(b.ctx)
			require.NoError(t, err)
			require.True(t, ok)
			requireTime(t, want, next, "NextWakeup")
		}
		run := b.createRun(t, func(p *store.CreateRunParams) {
			p.Timers = []store.Timer{timer(0, at(time.Minute)), timer(1, at(2*time.Minute))}
		})
		requireWakeup(at(time.Minute))

		// A start that creates no run starts no timer.
		res, err := b.st.CreateRun(b.ctx, runParams(func(p *store.CreateRunParams) {
			p.WorkflowID = run.WorkflowID
			p.Timers = []store.Timer{timer(0, at(10*time.Second))}
		}))
		require.NoError(t, err)
		require.False(t, res.Created)
		closed := b.closeRun(t, b.createRun(t), store.StatusCompleted, base)
		_, err = b.st.CreateRun(b.ctx, runParams(func(p *store.CreateRunParams) {
			p.WorkflowID, p.ReusePolicy = closed.WorkflowID, store.RejectDuplicate
			p.Timers = []store.Timer{timer(0, at(10*time.Second))}
		}))
		require.ErrorIs(t, err, store.ErrWorkflowIDInUse)
		requireWakeup(at(time.Minute))

		// Likewise for children.
		parent := b.createRun(t)
		started := childStart(parent, 2, store.ParentCloseTerminate, func(p *store.CreateRunParams) {
			p.Timers = []store.Timer{timer(0, at(40*time.Second))}
		})
		refused := childStart(parent, 3, store.ParentCloseTerminate, func(p *store.CreateRunParams) {
			p.WorkflowID = run.WorkflowID
			p.Timers = []store.Timer{timer(0, at(20*time.Second))}
		})
		require.True(t, b.step(t, parent, base, func(p *store.CompleteWorkflowTaskParams) {
			p.StartChildren = []store.ChildStart{started, refused}
		}).Pending)
		b.step(t, parent, base, nil)
		requireWakeup(at(40 * time.Second))

		queues, err := b.st.FireTimers(b.ctx, at(40*time.Second), 10)
		require.NoError(t, err)
		require.Equal(t, []string{started.Run.TaskQueue}, queues)
		wt := b.claim(t, started.Run.TaskQueue, at(40*time.Second))
		require.Equal(t, []string{"0"}, itemData(wt.Inbox))
		requireTime(t, at(40*time.Second), wt.Inbox[0].Time)
		p := params(wt, at(40*time.Second))
		p.Events = inboxEvents(wt)
		b.commit(t, p)

		b.step(t, run, base, nil)
		requireWakeup(at(time.Minute))
		queues, err = b.st.FireTimers(b.ctx, at(time.Minute), 10)
		require.NoError(t, err)
		require.Equal(t, []string{run.TaskQueue}, queues)
		wt = b.claim(t, run.TaskQueue, at(time.Minute))
		require.Equal(t, []string{"0"}, itemData(wt.Inbox))
		p = params(wt, at(time.Minute))
		p.Events = inboxEvents(wt)
		b.commit(t, p)
		requireWakeup(at(2 * time.Minute))
		queues, err = b.st.FireTimers(b.ctx, at(2*time.Minute), 10)
		require.NoError(t, err)
		require.Equal(t, []string{run.TaskQueue}, queues)
		require.Equal(t, []string{"1"}, itemData(b.claim(t, run.TaskQueue, at(2*time.Minute)).Inbox))
	})
}

// childStart returns the start of a child of parent by command seq with
// close policy policy: a run of type "shipment" with fresh IDs and a task
// queue of its own, whose failed item is "child_start_failed" naming seq.
// mods adjust the run's parameters.
func childStart(parent store.Run, seq int64, policy store.ParentClosePolicy, mods ...func(*store.CreateRunParams)) store.ChildStart {
	p := runParams(func(p *store.CreateRunParams) {
		p.WorkflowType = "shipment"
		p.Input = fmt.Appendf(nil, `{"seq":%d}`, seq)
		p.StartEvent.Data = fmt.Appendf(nil, `{"child":%d}`, seq)
		p.Parent = &store.ParentRef{RunID: parent.RunID, Seq: seq, ClosePolicy: policy}
	})
	for _, m := range mods {
		m(&p)
	}
	return store.ChildStart{
		Run:        p,
		FailedItem: store.NewInboxItem{Type: "child_start_failed", Data: fmt.Appendf(nil, `{"seq":%d}`, seq)},
	}
}

// external returns a request by command seq to the running run of
// workflowID, whose done and failed items name seq.
func external(seq int64, workflowID string, cancel bool, item store.NewInboxItem) store.ExternalRequest {
	data := fmt.Appendf(nil, `{"seq":%d}`, seq)
	return store.ExternalRequest{
		WorkflowID: workflowID, Item: item, Cancel: cancel,
		DoneItem:   store.NewInboxItem{Type: "external_done", Data: data},
		FailedItem: store.NewInboxItem{Type: "external_failed", Data: data},
	}
}

// familyClose is what a closing parent does to its children.
func familyClose() *store.ChildrenClose {
	return &store.ChildrenClose{
		TerminateEvent:   store.Event{Type: "terminated", Data: []byte(`{"reason":"parent closed"}`)},
		TerminateFailure: []byte(`{"message":"parent closed"}`),
		CancelItem:       store.NewInboxItem{Type: "cancel_requested", Data: []byte(`"parent closed"`)},
	}
}

// step claims run's workflow task at now and commits it: its inbox moved
// to history and one command event, with what mod adds.
func (b *bundle) step(t *testing.T, run store.Run, now time.Time, mod func(*store.CompleteWorkflowTaskParams)) store.CompleteWorkflowTaskResult {
	t.Helper()
	wt := b.claim(t, run.TaskQueue, now)
	p := params(wt, now)
	p.Events = append(inboxEvents(wt), events(wt.Run.HistoryLen+int64(len(wt.Inbox)), 1)...)
	if mod != nil {
		mod(&p)
	}
	return b.commit(t, p)
}

// startChildren commits parent's workflow task at now, starting the
// children, and returns them as created.
func (b *bundle) startChildren(t *testing.T, parent store.Run, now time.Time, starts ...store.ChildStart) []store.Run {
	t.Helper()
	res := b.step(t, parent, now, func(p *store.CompleteWorkflowTaskParams) { p.StartChildren = starts })
	require.False(t, res.Pending, "every child started")
	runs := make([]store.Run, len(starts))
	for i, c := range starts {
		runs[i] = b.getRun(t, c.Run.RunID)
		require.Equal(t, store.StatusRunning, runs[i].Status)
	}
	return runs
}

// family is a run with children of every close policy, and grandchildren
// under the child it terminates:
//
//	parent
//	├── kids[0] terminate: an activity (leased), a timer, a signal waiting
//	│   ├── grandkids[0] terminate
//	│   ├── grandkids[1] request cancel
//	│   └── grandkids[2] abandon
//	├── kids[1] request cancel: an activity (leased)
//	├── kids[2] abandon
//	└── kids[3] request cancel, already cancel-requested
//
// Nothing else is scheduled, and no workflow task is leased.
type family struct {
	parent    store.Run
	kids      []store.Run // as before the parent closes
	grandkids []store.Run
	acts      []store.ActivityTask // of kids[0], kids[1]
}

// family builds a family under a new top-level run.
func (b *bundle) family(t *testing.T) *family {
	t.Helper()
	return b.familyOf(t, b.createRun(t))
}

// familyOf builds a family under parent, whose workflow task must be
// runnable at base; it is committed, and the parent left with none.
func (b *bundle) familyOf(t *testing.T, parent store.Run) *family {
	t.Helper()
	f := &family{parent: parent}
	f.kids = b.startChildren(t, parent, base,
		childStart(parent, 2, store.ParentCloseTerminate),
		childStart(parent, 3, store.ParentCloseRequestCancel),
		childStart(parent, 4, store.ParentCloseAbandon),
		childStart(parent, 5, store.ParentCloseRequestCancel))
	doomed := f.kids[0]
	act := activity(doomed, 2, base)
	gks := []store.ChildStart{
		childStart(doomed, 4, store.ParentCloseTerminate),
		childStart(doomed, 5, store.ParentCloseRequestCancel),
		childStart(doomed, 6, store.ParentCloseAbandon),
	}
	b.step(t, doomed, base, func(p *store.CompleteWorkflowTaskParams) {
		p.ScheduleActivities = []store.ActivityTask{act}
		p.StartTimers = []store.Timer{{RunID: doomed.RunID, Seq: 3, FireAt: at(time.Hour), Item: store.NewInboxItem{Type: "timer_fired"}}}
		p.StartChildren = gks
	})
	f.acts = append(f.acts, b.claimActivity(t, act.TaskQueue, base))
	for _, c := range gks {
		gk := b.getRun(t, c.Run.RunID)
		b.step(t, gk, base, nil)
		f.grandkids = append(f.grandkids, gk)
	}
	act = activity(f.kids[1], 2, base)
	b.schedule(t, f.kids[1], base, act)
	f.acts = append(f.acts, b.claimActivity(t, act.TaskQueue, base))
	b.step(t, f.kids[2], base, nil)
	require.NoError(t, b.st.RequestCancel(b.ctx, store.CancelParams{
		RunID: f.kids[3].RunID, Item: store.NewInboxItem{Type: "cancel_requested"}, Now: base,
	}))
	b.step(t, f.kids[3], base, nil)
	b.signal(t, doomed.RunID, "waiting", at(time.Second))
	for i, k := range f.kids {
		f.kids[i] = b.getRun(t, k.RunID)
	}
	for i, k := range f.grandkids {
		f.grandkids[i] = b.getRun(t, k.RunID)
	}
	return f
}

// requireFamilyClosed checks that f's parent closing at now applied cc to
// its children by their policies.
func (b *bundle) requireFamilyClosed(t *testing.T, f *family, cc *store.ChildrenClose, now time.Time) {
	t.Helper()
	// Terminated, recursively: the event appended, and every task, timer
	// and inbox item gone.
	for _, r := range []store.Run{f.kids[0], f.grandkids[0]} {
		got := b.getRun(t, r.RunID)
		require.Equal(t, store.StatusTerminated, got.Status, "run %s", r.RunID)
		require.Equal(t, cc.TerminateFailure, got.Failure)
		require.Nil(t, got.Result)
		require.Equal(t, r.HistoryLen+1, got.HistoryLen)
		require.Equal(t, r.HistoryBytes+int64(len(cc.TerminateEvent.Data)), got.HistoryBytes)
		requireTime(t, now, got.ClosedAt)
		requireTime(t, now, got.UpdatedAt)
		require.Equal(t, r.Parent, got.Parent)
		hist := b.history(t, r.RunID)
		require.Len(t, hist, int(got.HistoryLen))
		last := hist[len(hist)-1]
		require.Equal(t, got.HistoryLen, last.ID)
		require.Equal(t, cc.TerminateEvent.Type, last.Type)
		require.Equal(t, cc.TerminateEvent.Data, last.Data)
		requireTime(t, now, last.Time)
	}
	_, err := b.st.HeartbeatActivityTask(b.ctx, store.HeartbeatParams{
		RunID: f.kids[0].RunID, Seq: f.acts[0].Seq, Token: f.acts[0].Token, Now: now,
	})
	require.ErrorIs(t, err, store.ErrLeaseLost)

	// Untouched: the abandoned ones, and the one asked to cancel before.
	for _, r := range []store.Run{f.kids[2], f.kids[3], f.grandkids[2]} {
		got := b.getRun(t, r.RunID)
		requireSameRun(t, r, got)
		require.Equal(t, r.Parent, got.Parent)
	}
	b.requireNothingScheduled(t) // the terminated run's timer is gone

	// Asked to cancel, under the parent and under the terminated child.
	for _, r := range []store.Run{f.kids[1], f.grandkids[1]} {
		got := b.getRun(t, r.RunID)
		require.Equal(t, store.StatusRunning, got.Status)
		require.True(t, got.CancelRequested)
		requireTime(t, now, got.UpdatedAt)
		wt := b.claim(t, r.TaskQueue, now)
		require.Equal(t, []string{cc.CancelItem.Type}, itemTypes(wt.Inbox))
		require.Equal(t, []string{string(cc.CancelItem.Data)}, itemData(wt.Inbox))
		requireTime(t, now, wt.Inbox[0].Time)
	}
	hb, err := b.st.HeartbeatActivityTask(b.ctx, store.HeartbeatParams{
		RunID: f.kids[1].RunID, Seq: f.acts[1].Seq, Token: f.acts[1].Token, Now: now,
	})
	require.NoError(t, err)
	require.True(t, hb.CancelRequested)

	for _, r := range []store.Run{f.kids[0], f.grandkids[0], f.kids[2], f.kids[3], f.grandkids[2]} {
		b.claimNone(t, r.TaskQueue, now.Add(time.Hour))
	}
}

func itemTypes(items []store.InboxItem) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Type
	}
	return out
}

func itemData(items []store.InboxItem) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = string(it.Data)
	}
	return out
}
