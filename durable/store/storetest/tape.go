package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keelhq/keel/durable/store"
)

// RunRows counts the rows a store holds for one run, read outside the
// Store interface (see TapeOptions.Rows).
type RunRows struct {
	WorkflowTask  bool // the run has a workflow task row
	Inbox         int
	Timers        int
	ActivityTasks int
}

// TapeOptions configure RunTape and FuzzTape. A nil *TapeOptions is valid.
type TapeOptions struct {
	// Rows reads a run's rows straight from the database, so that the tape
	// can check what the Store interface does not show: that a closed run
	// has no rows left, and that a fenced write added none. Optional;
	// without it those checks are made through the interface only (claims,
	// timers firing, expired activities).
	Rows func(ctx context.Context, runID string) (RunRows, error)
	// MaxOps bounds the operations read from one tape. Optional; default
	// 300.
	MaxOps int
}

// TapeStats counts what a tape did.
type TapeStats struct {
	Ops     int // operations played, the final drain excluded
	Runs    int // runs created (children and successors included)
	Fenced  int // writes refused by a fence, as the model expected
	Signals int // signals the store accepted and wrote
	// FastPaths counts the commits of a workflow task together with its
	// input that the store accepted: a start (FirstTask), an activity's
	// outcome, a signal, a timer.
	FastPaths int
}

// FuzzTape is the body of a fuzz test of st: it adds generated seed tapes
// to the ones under testdata/fuzz/<FuzzName> and plays every input with
// RunTape. All inputs share st; each tape uses IDs and task queues of its
// own and closes every run it started.
//
//	func FuzzTape(f *testing.F) {
//		st := openStore(f)
//		storetest.FuzzTape(f, st, nil)
//	}
func FuzzTape(f *testing.F, st store.Store, opts *TapeOptions) {
	f.Helper()
	for seed := range uint64(4) {
		f.Add(RandomTape(seed, 400))
	}
	f.Fuzz(func(t *testing.T, tape []byte) {
		RunTape(t, st, tape, opts)
	})
}

// RunRandomTapes plays n generated tapes of 600 operations (seeds
// 1,000,000 to 1,000,000+n-1) against st with RunTape, logs their totals
// under the name of the store, and returns them. Without coverage
// instrumentation tapes run much faster than under -fuzz.
func RunRandomTapes(t testing.TB, st store.Store, name string, n int, opts *TapeOptions) TapeStats {
	t.Helper()
	var total TapeStats
	for seed := range uint64(n) {
		s := RunTape(t, st, RandomTape(1_000_000+seed, 600), opts)
		total.Ops += s.Ops
		total.Runs += s.Runs
		total.Fenced += s.Fenced
		total.Signals += s.Signals
		total.FastPaths += s.FastPaths
	}
	t.Logf("%d random tapes on %s: %d operations, %d runs, %d fenced writes refused, %d fast-path commits",
		n, name, total.Ops, total.Runs, total.Fenced, total.FastPaths)
	return total
}

// RandomTape returns n pseudo-random bytes from seed: a tape, as every byte
// string is one.
func RandomTape(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x6b65656c)) //nolint:gosec // reproducible test input
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// RunTape plays a tape against st and fails t at the first difference
// between the store and a model of what it must hold.
//
// A tape is a sequence of bytes read as engine operations: create runs,
// claim, commit and fail workflow tasks, claim, complete, retry and
// heartbeat activities, fire timers, signal (with request IDs), cancel,
// terminate, start children, continue as new, and move a fake clock. Any
// byte string is a valid tape, so a fuzzer can mutate tapes freely. After
// every step the store is checked against the model:
//
//   - at most one lease holder per task: a claim (or an eager lease) never
//     returns a workflow or activity task whose lease is still held, and
//     returns every task the model says is claimable, up to the limit;
//   - fenced writes (a stale token, a wrong expected history length, a busy
//     run) fail with store.ErrLeaseLost or store.ErrRunBusy and write
//     nothing: every run's row, history, attempts and (with
//     TapeOptions.Rows) task, timer and inbox rows are unchanged;
//   - no inbox row is lost: a claim returns exactly the items written to the
//     run and not yet moved to its history, in the order of the calls that
//     wrote them, and at the end every item the store accepted is in
//     exactly one history, unless the run it was written to closed before
//     reading it;
//   - a run's history is its events 1, 2, 3… exactly as committed;
//   - a closed run has no workflow task, activity tasks, timers or inbox;
//   - a signal request ID is applied once per run.
//
// When the tape ends, every run still running is driven to its end (its
// inbox moved to its history, then closed) and the items are counted.
// st may hold other data: the tape touches only runs it created, on task
// queues of its own.
func RunTape(t testing.TB, st store.Store, tape []byte, opts *TapeOptions) TapeStats {
	t.Helper()
	if opts == nil {
		opts = &TapeOptions{}
	}
	maxOps := opts.MaxOps
	if maxOps <= 0 {
		maxOps = 300
	}
	prefix := "tape-" + uuid.NewString()[:8]
	m := &tapeModel{
		t:      t,
		ctx:    context.Background(),
		st:     st,
		rows:   opts.Rows,
		in:     &tapeReader{b: tape},
		now:    base,
		prefix: prefix,
		byID:   map[string]*tRun{},
		latest: map[string]*tRun{},
		expect: map[string]int{},
		drop:   map[string]int{},
		wfQ:    [2]string{prefix + "/wq0", prefix + "/wq1"},
		actQ:   [2]string{prefix + "/aq0", prefix + "/aq1"},
	}
	for m.stats.Ops < maxOps && !m.in.done() {
		op := tapeOps[m.in.intn(len(tapeOps))]
		m.stats.Ops++
		m.logf("%s", op.name)
		op.fn(m)
		m.check(m.stats.Ops%25 == 0)
	}
	m.drain()
	m.check(true)
	m.checkItems()
	return m.stats
}

// tapeReader reads a tape's bytes; past the end it reads zeros.
type tapeReader struct {
	b []byte
	i int
}

func (r *tapeReader) done() bool { return r.i >= len(r.b) }

func (r *tapeReader) byte() byte {
	if r.i >= len(r.b) {
		r.i++
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

// intn returns a number in [0, n) read from the tape (one byte, two for
// n > 256).
func (r *tapeReader) intn(n int) int {
	if n <= 1 {
		return 0
	}
	v := int(r.byte())
	if n > 256 {
		v = v<<8 | int(r.byte())
	}
	return v % n
}

// chance reads whether an event of probability k/16 happens.
func (r *tapeReader) chance(k int) bool { return int(r.byte()&15) < k }

// tapeOps are the operations, weighted by repetition.
var tapeOps = []struct { //nolint:gochecknoglobals // a constant table
	name string
	fn   func(m *tapeModel)
}{
	{"create", (*tapeModel).opCreate},
	{"create", (*tapeModel).opCreate},
	{"claim-workflow", (*tapeModel).opClaimWorkflow},
	{"claim-workflow", (*tapeModel).opClaimWorkflow},
	{"claim-workflow", (*tapeModel).opClaimWorkflow},
	{"commit", (*tapeModel).opCommit},
	{"commit", (*tapeModel).opCommit},
	{"commit", (*tapeModel).opCommit},
	{"commit", (*tapeModel).opCommit},
	{"fail-workflow", (*tapeModel).opFailWorkflow},
	{"claim-activity", (*tapeModel).opClaimActivity},
	{"claim-activity", (*tapeModel).opClaimActivity},
	{"complete-activity", (*tapeModel).opCompleteActivity},
	{"complete-activity", (*tapeModel).opCompleteActivity},
	{"complete-with-workflow", (*tapeModel).opCompleteWithWorkflow},
	{"create-with-first-task", (*tapeModel).opCreateWithFirstTask},
	{"signal-with-workflow", (*tapeModel).opSignalWithWorkflow},
	{"fire-timer-with-workflow", (*tapeModel).opFireTimerWithWorkflow},
	{"retry-activity", (*tapeModel).opRetryActivity},
	{"heartbeat", (*tapeModel).opHeartbeat},
	{"expired-activities", (*tapeModel).opExpired},
	{"fire-timers", (*tapeModel).opFireTimers},
	{"fire-timers", (*tapeModel).opFireTimers},
	{"signal", (*tapeModel).opSignal},
	{"signal", (*tapeModel).opSignal},
	{"signal", (*tapeModel).opSignal},
	{"cancel", (*tapeModel).opCancel},
	{"terminate", (*tapeModel).opTerminate},
	{"advance", (*tapeModel).opAdvance},
	{"advance", (*tapeModel).opAdvance},
	{"advance", (*tapeModel).opAdvance},
}

// maxTapeRuns bounds the runs one tape creates.
const maxTapeRuns = 10

// tapeModel is what the store must hold after the operations so far.
type tapeModel struct {
	t      testing.TB
	ctx    context.Context
	st     store.Store
	rows   func(ctx context.Context, runID string) (RunRows, error)
	in     *tapeReader
	now    time.Time
	prefix string
	n      int // counter for tags and IDs
	calls  int // store calls made
	stats  TapeStats
	log    []string // the last operations, for failure messages

	runs   []*tRun          // in creation order
	byID   map[string]*tRun // by run ID
	latest map[string]*tRun // newest run of each workflow ID
	wfIDs  []string         // workflow IDs in first-use order
	wfQ    [2]string        // workflow task queues
	actQ   [2]string        // activity task queues

	// expect counts, per item tag, the deliveries the store accepted; drop
	// those deleted unread by a run's close. At the end every tag must be
	// in the histories expect-drop times.
	expect, drop map[string]int
	deadTokens   []deadToken // activity leases whose task is gone
}

// newAct is an activity a commit schedules, and whether it asked to lease
// it eagerly.
type newAct struct {
	a     *tAct
	eager bool
}

// tItem is an inbox item the model expects. call numbers the store call
// that wrote it: items written by different calls must be read in call
// order; one call may write several items to a run in any order.
type tItem struct {
	typ, tag string
	call     int
}

// deadToken is the lease of an activity task that no longer exists.
type deadToken struct {
	runID   string
	seq     int64
	token   string
	attempt int
}

type tRun struct {
	id, wfID, queue string
	status          store.RunStatus
	parent          *tRun
	parentSeq       int64
	policy          store.ParentClosePolicy
	history         []store.Event
	result, failure []byte
	cancelReq       bool
	lastFailure     string
	nextSeq         int64

	// The workflow task row.
	task        bool
	token       string // "" while unleased
	availableAt time.Time
	attempt     int
	claimed     []store.InboxItem // the inbox the current lease was given
	stale       []string          // earlier tokens

	inbox    []tItem
	timers   map[int64]tTimer
	acts     map[int64]*tAct
	requests []string          // signal request IDs accepted
	attempts map[[2]int64]bool // activity attempts recorded: seq, attempt
	checked  bool              // checked since it closed
}

type tTimer struct {
	fireAt time.Time
	item   tItem
}

type tAct struct {
	seq                  int64
	queue                string
	attempt              int
	token                string // "" while unleased
	readyAt, startedAt   time.Time
	leaseExp             time.Time // zero: none
	stsTimeout           time.Duration
	stsDeadline          time.Time
	stcDeadline          time.Time
	startToClose, hbTime time.Duration
	cancel               bool
	stale                []string
}

func (m *tapeModel) logf(format string, args ...any) {
	m.log = append(m.log, fmt.Sprintf("%d: ", m.stats.Ops)+fmt.Sprintf(format, args...))
	if len(m.log) > 100 {
		m.log = m.log[len(m.log)-100:]
	}
}

// fatalf fails the test with the recent operations.
func (m *tapeModel) fatalf(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("tape %s, op %d at %v: %s\nrecent operations:\n  %s", m.prefix, m.stats.Ops,
		m.now.Sub(base), fmt.Sprintf(format, args...), strings.Join(m.log, "\n  "))
}

func (m *tapeModel) noErr(err error, what string) {
	m.t.Helper()
	if err != nil {
		m.fatalf("%s: unexpected error: %v", what, err)
	}
}

// wantErr checks that err matches target; a nil target wants no error.
func (m *tapeModel) wantErr(err, target error, what string) {
	m.t.Helper()
	if target == nil {
		m.noErr(err, what)
		return
	}
	if !errors.Is(err, target) {
		m.fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func (m *tapeModel) tag(kind string) string {
	m.n++
	return fmt.Sprintf("%s/%s%d", m.prefix, kind, m.n)
}

func tagData(tag string) []byte { return []byte(`{"tag":"` + tag + `"}`) }

func (m *tapeModel) newItem(typ, kind string) (tItem, store.NewInboxItem) {
	tag := m.tag(kind)
	return tItem{typ: typ, tag: tag}, store.NewInboxItem{Type: typ, Data: tagData(tag)}
}

func (m *tapeModel) event(r *tRun, i int, typ, kind string) store.Event {
	return store.Event{ID: int64(len(r.history) + i + 1), Type: typ, Time: m.now, Data: tagData(m.tag(kind))}
}

// duration reads one of 0 or 1..max whole seconds (zero with probability
// zeroIn16/16).
func (m *tapeModel) duration(zeroIn16 int, maxSeconds int) time.Duration {
	if m.in.chance(zeroIn16) {
		return 0
	}
	return time.Duration(1+m.in.intn(maxSeconds)) * time.Second
}

// ---- model transitions ----

func (m *tapeModel) running() []*tRun {
	var out []*tRun
	for _, r := range m.runs {
		if r.status == store.StatusRunning {
			out = append(out, r)
		}
	}
	return out
}

func (m *tapeModel) runningOf(wfID string) *tRun {
	if r := m.latest[wfID]; r != nil && r.status == store.StatusRunning {
		return r
	}
	return nil
}

// deliver writes an item to r's inbox, as the store does for a running
// run: the item is queued and the run's workflow task made runnable if it
// had none. It reports whether the item was written.
func (m *tapeModel) deliver(r *tRun, it tItem) bool {
	if r == nil || r.status != store.StatusRunning {
		return false
	}
	it.call = m.calls
	r.inbox = append(r.inbox, it)
	m.expect[it.tag]++
	if !r.task {
		r.task, r.token, r.availableAt, r.attempt, r.claimed = true, "", m.now, 0, nil
	}
	return true
}

// newRun adds a created run to the model, with a runnable workflow task.
func (m *tapeModel) newRun(p *store.CreateRunParams, parent *tRun) *tRun {
	r := m.initRun(p, parent)
	m.addRun(r)
	return r
}

// initRun returns the model of a run that p creates, not yet added.
func (m *tapeModel) initRun(p *store.CreateRunParams, parent *tRun) *tRun {
	r := &tRun{
		id: p.RunID, wfID: p.WorkflowID, queue: p.TaskQueue, status: store.StatusRunning,
		parent: parent, timers: map[int64]tTimer{}, acts: map[int64]*tAct{}, attempts: map[[2]int64]bool{},
		task: true, availableAt: m.now, nextSeq: 1,
	}
	if p.Parent != nil {
		r.parentSeq, r.policy = p.Parent.Seq, p.Parent.ClosePolicy
	}
	ev := p.StartEvent
	ev.ID = 1
	if ev.Time.IsZero() {
		ev.Time = m.now
	}
	r.history = []store.Event{ev}
	for _, tm := range p.Timers {
		r.timers[tm.Seq] = tTimer{fireAt: tm.FireAt, item: tItem{typ: tm.Item.Type, tag: tagOf(tm.Item.Data)}}
		r.nextSeq = max(r.nextSeq, tm.Seq+1)
	}
	return r
}

// addRun adds a run of initRun to the model.
func (m *tapeModel) addRun(r *tRun) {
	m.runs = append(m.runs, r)
	m.byID[r.id] = r
	if m.latest[r.wfID] == nil {
		m.wfIDs = append(m.wfIDs, r.wfID)
	}
	m.latest[r.wfID] = r
	m.stats.Runs++
}

func tagOf(data []byte) string {
	s := string(data)
	s = strings.TrimPrefix(s, `{"tag":"`)
	return strings.TrimSuffix(s, `"}`)
}

// consume removes the items a commit moved to r's history from its inbox.
func (m *tapeModel) consume(r *tRun, items []store.InboxItem) {
	for _, it := range items {
		i := slices.IndexFunc(r.inbox, func(x tItem) bool { return x.typ == it.Type && x.tag == tagOf(it.Data) })
		if i < 0 {
			m.fatalf("run %s: consumed item %s %s is not in the model's inbox", r.id, it.Type, it.Data)
		}
		r.inbox = slices.Delete(r.inbox, i, i+1)
	}
}

// closeRun closes r in the model: its task, activities, timers and inbox
// go; unread items are dropped.
func (m *tapeModel) closeRun(r *tRun, status store.RunStatus) {
	r.status = status
	for _, it := range r.inbox {
		m.drop[it.tag]++
	}
	r.inbox = nil
	if r.token != "" {
		r.stale = append(r.stale, r.token)
	}
	r.task, r.token, r.claimed = false, "", nil
	for _, a := range r.acts {
		if a.token != "" {
			m.deadTokens = append(m.deadTokens, deadToken{r.id, a.seq, a.token, a.attempt})
		}
	}
	r.acts = map[int64]*tAct{}
	r.timers = map[int64]tTimer{}
}

// requestCancel marks a running run cancel-requested, as the store does.
func (m *tapeModel) requestCancel(r *tRun, it tItem) {
	if r.status != store.StatusRunning || r.cancelReq {
		return
	}
	r.cancelReq = true
	for _, a := range r.acts {
		a.cancel = true
	}
	m.deliver(r, it)
}

// terminate closes a running run as terminated with ev appended.
func (m *tapeModel) terminate(r *tRun, ev store.Event, failure []byte) {
	ev.ID = int64(len(r.history) + 1)
	if ev.Time.IsZero() {
		ev.Time = m.now
	}
	r.history = append(r.history, ev)
	r.failure = failure
	m.closeRun(r, store.StatusTerminated)
}

// closeFamily delivers a closed run's parent item and applies its
// children's close policies.
func (m *tapeModel) closeFamily(r *tRun, parentItem *tItem, cc *store.ChildrenClose, cancelItem tItem) {
	if r.parent != nil && parentItem != nil {
		m.deliver(r.parent, *parentItem)
	}
	if cc != nil {
		m.closeChildren(r, cc, cancelItem)
	}
}

func (m *tapeModel) closeChildren(r *tRun, cc *store.ChildrenClose, cancelItem tItem) {
	for _, c := range m.runs {
		if c.parent != r || c.status != store.StatusRunning {
			continue
		}
		switch c.policy {
		case store.ParentCloseTerminate:
			m.terminate(c, cc.TerminateEvent, cc.TerminateFailure)
			m.closeChildren(c, cc, cancelItem)
		case store.ParentCloseRequestCancel:
			m.requestCancel(c, cancelItem)
		}
	}
}

// claimableWorkflow reports whether r's workflow task can be claimed now.
func (m *tapeModel) claimableWorkflow(r *tRun) bool {
	return r.status == store.StatusRunning && r.task && !r.availableAt.After(m.now)
}

func claimableActivity(a *tAct, now time.Time) bool {
	if a.token != "" || a.readyAt.After(now) {
		return false
	}
	d := earliest(a.stsDeadline, a.stcDeadline)
	return d.IsZero() || d.After(now)
}

// earliest returns the earlier non-zero time (zero if both are).
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	case b.Before(a):
		return b
	}
	return a
}

func leaseExpiry(now time.Time, startToClose, heartbeat time.Duration) time.Time {
	var a, b time.Time
	if startToClose > 0 {
		a = now.Add(startToClose)
	}
	if heartbeat > 0 {
		b = now.Add(heartbeat)
	}
	return earliest(a, b)
}

// ---- operations ----

func (m *tapeModel) opAdvance() {
	switch m.in.intn(4) {
	case 0:
		m.now = m.now.Add(time.Duration(m.in.intn(1000)) * time.Millisecond)
	case 1, 2:
		m.now = m.now.Add(time.Duration(m.in.intn(60)) * time.Second)
	default:
		m.now = m.now.Add(time.Duration(m.in.intn(600)) * time.Second)
	}
}

// pickWorkflowID returns an existing workflow ID or, with fresh or when
// none exists, a new one.
func (m *tapeModel) pickWorkflowID(fresh bool) string {
	if fresh || len(m.wfIDs) == 0 {
		return m.tag("wf")
	}
	return m.wfIDs[m.in.intn(len(m.wfIDs))]
}

func (m *tapeModel) runParams(wfID string) store.CreateRunParams {
	p := store.CreateRunParams{
		RunID:        m.tag("run"),
		WorkflowID:   wfID,
		WorkflowType: "tape",
		TaskQueue:    m.wfQ[m.in.intn(2)],
		Input:        tagData(m.tag("input")),
		StartEvent:   store.Event{Type: "started", Data: tagData(m.tag("start"))},
		ReusePolicy:  store.IDReusePolicy(m.in.intn(3)),
		Now:          m.now,
	}
	if m.in.chance(3) {
		_, it := m.newItem("timeout", "exec-timer")
		p.Timers = []store.Timer{{RunID: p.RunID, Seq: 1000, FireAt: m.now.Add(m.duration(0, 600)), Item: it}}
	}
	return p
}

// reuseRefused reports whether the reuse policy refuses a new run for a
// workflow ID whose latest run is latest (nil: none).
func reuseRefused(policy store.IDReusePolicy, latest *tRun) bool {
	if latest == nil {
		return false
	}
	return policy == store.RejectDuplicate ||
		(policy == store.AllowDuplicateFailedOnly && latest.status == store.StatusCompleted)
}

func (m *tapeModel) opCreate() {
	if len(m.runs) >= maxTapeRuns {
		return
	}
	wfID := m.pickWorkflowID(m.in.chance(10))
	p := m.runParams(wfID)
	eager := m.in.chance(6)
	if eager {
		p.Eager = &store.EagerLease{Owner: "tape", LeaseUntil: m.now.Add(m.duration(0, 60))}
	}
	m.logf("create %s wf=%s policy=%d eager=%v", p.RunID, wfID, p.ReusePolicy, eager)
	m.calls++
	res, err := m.st.CreateRun(m.ctx, p)
	if running := m.runningOf(wfID); running != nil {
		m.noErr(err, "create run over a running one")
		if res.Created || res.Run.RunID != running.id || res.Task != nil {
			m.fatalf("create run of running workflow %s: created=%v run=%s task=%v, want the running run %s",
				wfID, res.Created, res.Run.RunID, res.Task != nil, running.id)
		}
		return
	}
	if reuseRefused(p.ReusePolicy, m.latest[wfID]) {
		m.wantErr(err, store.ErrWorkflowIDInUse, "create run refused by reuse policy")
		m.stats.Fenced++
		return
	}
	m.noErr(err, "create run")
	if !res.Created || res.Run.RunID != p.RunID || res.Run.HistoryLen != 1 || res.Run.Status != store.StatusRunning {
		m.fatalf("create run: got created=%v %+v", res.Created, res.Run)
	}
	r := m.newRun(&p, nil)
	if eager {
		if res.Task == nil || res.Task.Token == "" || res.Task.Attempt != 1 || len(res.Task.Inbox) != 0 {
			m.fatalf("create run with eager lease: task %+v", res.Task)
		}
		r.token, r.availableAt, r.attempt, r.claimed = res.Task.Token, p.Eager.LeaseUntil, 1, nil
	} else if res.Task != nil {
		m.fatalf("create run without Eager returned a task")
	}
}

func (m *tapeModel) opClaimWorkflow() {
	q := m.wfQ[m.in.intn(2)]
	limit := 1 + m.in.intn(3)
	lease := m.now.Add(m.duration(0, 60))
	var claimable []*tRun
	for _, r := range m.runs {
		if r.queue == q && m.claimableWorkflow(r) {
			claimable = append(claimable, r)
		}
	}
	m.logf("claim-workflow %s limit=%d claimable=%d", q, limit, len(claimable))
	m.calls++
	tasks, err := m.st.ClaimWorkflowTasks(m.ctx, store.ClaimParams{
		TaskQueue: q, Owner: "tape", Limit: limit, Now: m.now, LeaseUntil: lease,
	})
	m.noErr(err, "claim workflow tasks")
	if want := min(limit, len(claimable)); len(tasks) != want {
		m.fatalf("claim workflow tasks on %s: got %d tasks, want %d (claimable: %v)", q, len(tasks), want, runIDsOf(claimable))
	}
	seen := map[string]bool{}
	for _, wt := range tasks {
		r := m.byID[wt.Run.RunID]
		if r == nil || !slices.Contains(claimable, r) {
			held := ""
			if r != nil && r.token != "" {
				held = fmt.Sprintf(" (leased until %v)", r.availableAt.Sub(base))
			}
			m.fatalf("claim returned run %s whose task is not claimable%s: a second lease holder", wt.Run.RunID, held)
		}
		if seen[r.id] {
			m.fatalf("claim returned run %s twice", r.id)
		}
		seen[r.id] = true
		m.leased(r, wt, lease, "claim")
	}
}

// leased checks a workflow task just leased to the tape, by a claim or an
// eager lease, and records the lease.
func (m *tapeModel) leased(r *tRun, wt store.WorkflowTask, until time.Time, how string) {
	m.t.Helper()
	if wt.Token == "" || wt.Token == r.token || slices.Contains(r.stale, wt.Token) {
		m.fatalf("%s of run %s: token %q is not new", how, r.id, wt.Token)
	}
	if wt.Attempt != r.attempt+1 {
		m.fatalf("%s of run %s: attempt %d, want %d", how, r.id, wt.Attempt, r.attempt+1)
	}
	if wt.Run.HistoryLen != int64(len(r.history)) || wt.Run.Status != store.StatusRunning {
		m.fatalf("%s of run %s: run has history length %d, status %s; want %d, running", how, r.id,
			wt.Run.HistoryLen, wt.Run.Status, len(r.history))
	}
	m.checkInbox(r, wt.Inbox, how)
	if r.token != "" {
		r.stale = append(r.stale, r.token)
	}
	r.token, r.availableAt, r.attempt = wt.Token, until, wt.Attempt
	r.claimed = slices.Clone(wt.Inbox)
}

// checkInbox compares a claimed inbox with the model's: the same items,
// with increasing IDs, in the order of the calls that wrote them.
func (m *tapeModel) checkInbox(r *tRun, got []store.InboxItem, how string) {
	m.t.Helper()
	calls := map[string]int{}
	want := make([]string, len(r.inbox))
	for i, it := range r.inbox {
		want[i] = it.typ + ":" + it.tag
		calls[want[i]] = it.call
	}
	tags := make([]string, len(got))
	for i, it := range got {
		tags[i] = it.Type + ":" + tagOf(it.Data)
		if i > 0 && it.ID <= got[i-1].ID {
			m.fatalf("%s of run %s: inbox IDs not increasing: %d after %d", how, r.id, it.ID, got[i-1].ID)
		}
	}
	sortedGot, sortedWant := slices.Sorted(slices.Values(tags)), slices.Sorted(slices.Values(want))
	if !slices.Equal(sortedGot, sortedWant) {
		m.fatalf("%s of run %s: inbox\n  got  %v\n  want %v", how, r.id, tags, want)
	}
	for i := 1; i < len(tags); i++ {
		if calls[tags[i]] < calls[tags[i-1]] {
			m.fatalf("%s of run %s: inbox out of order: %s, written by an earlier call, after %s\n  got  %v\n  want %v",
				how, r.id, tags[i], tags[i-1], tags, want)
		}
	}
}

// pickLeased returns a run whose workflow task the tape holds (or held),
// or nil.
func (m *tapeModel) pickLeased() *tRun {
	var c []*tRun
	for _, r := range m.runs {
		if r.token != "" || len(r.stale) > 0 {
			c = append(c, r)
		}
	}
	if len(c) == 0 {
		return nil
	}
	return c[m.in.intn(len(c))]
}

// fence is how a write is fenced: with the current token, a stale one, or
// (for commits) a wrong expected history length.
type fence int

const (
	fenceValid fence = iota
	fenceStaleToken
	fenceWrongLength
)

// pickToken returns the token to write with and whether it is current.
func (m *tapeModel) pickToken(current string, stale []string, wantStale bool) (string, bool) {
	if current != "" && (!wantStale || len(stale) == 0) {
		return current, true
	}
	if len(stale) > 0 {
		return stale[m.in.intn(len(stale))], false
	}
	return "no-such-token", false
}

func (m *tapeModel) opCommit() {
	r := m.pickLeased()
	if r == nil {
		return
	}
	f := fence(m.in.intn(8))
	if f > fenceWrongLength {
		f = fenceValid
	}
	token, current := m.pickToken(r.token, r.stale, f == fenceStaleToken)
	switch {
	case !current:
		f = fenceStaleToken
	case f == fenceStaleToken:
		f = fenceValid // no stale token to try
	}
	expectedLen := int64(len(r.history))
	if f == fenceWrongLength {
		if expectedLen > 1 && m.in.chance(8) {
			expectedLen--
		} else {
			expectedLen++
		}
	}
	// Consume a prefix of the inbox the lease was given.
	claimed := r.claimed
	if !current {
		claimed = nil
	}
	k := 0
	if len(claimed) > 0 {
		k = len(claimed) - m.in.intn(len(claimed)+1)
		if m.in.chance(10) {
			k = len(claimed)
		}
	}
	p := store.CompleteWorkflowTaskParams{RunID: r.id, Token: token, ExpectedHistoryLen: expectedLen, Now: m.now}
	for i := range k {
		it := claimed[i]
		p.Events = append(p.Events, store.Event{ID: expectedLen + int64(i) + 1, Type: it.Type, Time: m.now, Data: it.Data})
		p.InboxUpTo = it.ID
	}
	var close *store.CloseRun
	if m.in.chance(3) {
		close = m.closeParams(r)
	}
	apply := m.commands(r, &p, close, true)
	m.logf("commit %s fence=%d consume=%d/%d events=%d close=%v", r.id, f, k, len(claimed), len(p.Events), close != nil)
	m.calls++
	res, err := m.st.CompleteWorkflowTask(m.ctx, p)
	if f != fenceValid {
		m.wantErr(err, store.ErrLeaseLost, "fenced commit")
		m.stats.Fenced++
		return
	}
	m.noErr(err, "commit")
	pending := apply(res.Activities, claimed[:k])
	if close == nil && res.Pending != pending {
		m.fatalf("commit of run %s: Pending %v, want %v", r.id, res.Pending, pending)
	}
}

// closeParams returns a close of r with a random final status.
func (m *tapeModel) closeParams(r *tRun) *store.CloseRun {
	statuses := []store.RunStatus{store.StatusCompleted, store.StatusFailed, store.StatusCanceled, store.StatusContinuedAsNew}
	cl := &store.CloseRun{Status: statuses[m.in.intn(len(statuses))]}
	switch cl.Status {
	case store.StatusCompleted:
		cl.Result = tagData(m.tag("result"))
	case store.StatusContinuedAsNew:
		next := m.runParams(r.wfID)
		cl.Result = []byte(`"` + next.RunID + `"`)
		can := &store.ContinueAsNew{Run: next}
		if m.in.chance(10) {
			can.CarryInboxTypes = []string{"signal"}
		}
		cl.ContinueAsNew = can
		return cl
	default:
		cl.Failure = tagData(m.tag("failure"))
	}
	if m.in.chance(10) {
		_, it := m.newItem("child-closed", "parent-item")
		cl.ParentItem = &it
	}
	if m.in.chance(10) {
		cl.Children = m.childrenClose()
	}
	return cl
}

func (m *tapeModel) childrenClose() *store.ChildrenClose {
	_, it := m.newItem("cancel", "child-cancel")
	return &store.ChildrenClose{
		TerminateEvent:   store.Event{Type: "terminated", Time: m.now, Data: tagData(m.tag("child-terminated"))},
		TerminateFailure: tagData(m.tag("child-failure")),
		CancelItem:       it,
	}
}

// commands adds random commands (activities, timers, cancels, children,
// external requests) and close to p, and returns the function that applies
// p to the model once the store accepted it: given the eagerly leased
// activities and the inbox items consumed, it returns whether
// the task is pending. With full false, p gets no children, external
// requests or continue-as-new (CompleteActivityWithWorkflowTask).
func (m *tapeModel) commands(r *tRun, p *store.CompleteWorkflowTaskParams, close *store.CloseRun, full bool) func([]store.ActivityTask, []store.InboxItem) bool {
	seq := r.nextSeq
	addEvent := func(kind string) {
		p.Events = append(p.Events, store.Event{
			ID: p.ExpectedHistoryLen + int64(len(p.Events)) + 1, Type: "command", Time: m.now, Data: tagData(m.tag(kind)),
		})
	}
	var acts []newAct
	for range m.in.intn(3) {
		a := &tAct{seq: seq, queue: m.actQ[m.in.intn(2)], attempt: 1, readyAt: m.now,
			startToClose: m.duration(6, 30), hbTime: m.duration(10, 10)}
		seq++
		if m.in.chance(3) {
			a.readyAt = m.now.Add(m.duration(0, 20))
		}
		task := store.ActivityTask{RunID: r.id, Seq: a.seq, ActivityType: "act", TaskQueue: a.queue,
			Input: tagData(m.tag("act-input")), Attempt: 1, ScheduledAt: m.now, ReadyAt: a.readyAt,
			StartToClose: a.startToClose, HeartbeatTimeout: a.hbTime}
		if m.in.chance(4) {
			a.stsDeadline = m.now.Add(m.duration(0, 30))
			a.stsTimeout = a.stsDeadline.Sub(m.now)
			task.ScheduleToStartDeadline = a.stsDeadline
		}
		if m.in.chance(4) {
			a.stcDeadline = m.now.Add(m.duration(0, 90))
			task.ScheduleToCloseDeadline = a.stcDeadline
		}
		eager := m.in.chance(6)
		if eager {
			p.EagerActivities = append(p.EagerActivities, a.seq)
			p.EagerOwner = "tape"
		}
		p.ScheduleActivities = append(p.ScheduleActivities, task)
		acts = append(acts, newAct{a, eager})
		addEvent("schedule")
	}
	type newTimer struct {
		seq int64
		tm  tTimer
	}
	var timers []newTimer
	for range m.in.intn(3) {
		it, nit := m.newItem("timer", "timer")
		tm := tTimer{fireAt: m.now.Add(m.duration(3, 60)), item: it}
		p.StartTimers = append(p.StartTimers, store.Timer{RunID: r.id, Seq: seq, FireAt: tm.fireAt, Item: nit})
		timers = append(timers, newTimer{seq, tm})
		seq++
		addEvent("timer")
	}
	if len(r.timers) > 0 && m.in.chance(4) {
		keys := sortedKeys(r.timers)
		p.CancelTimers = append(p.CancelTimers, keys[m.in.intn(len(keys))])
		addEvent("cancel-timer")
	}
	if len(r.acts) > 0 && m.in.chance(4) {
		keys := sortedKeys(r.acts)
		p.CancelActivities = append(p.CancelActivities, keys[m.in.intn(len(keys))])
		addEvent("cancel-activity")
	}
	type newChild struct {
		params store.CreateRunParams
		failed tItem
	}
	var children []newChild
	if full && m.in.chance(3) {
		// A child on a workflow ID other than the run's own: a fresh one,
		// or one that may be running or closed.
		wfID := m.pickWorkflowID(m.in.chance(8))
		if wfID == r.wfID {
			wfID = m.tag("wf")
		}
		cp := m.runParams(wfID)
		cp.Timers = nil
		cp.Parent = &store.ParentRef{RunID: r.id, Seq: seq, ClosePolicy: store.ParentClosePolicy(m.in.intn(3))}
		seq++
		failed, fit := m.newItem("child-start-failed", "child-failed")
		p.StartChildren = append(p.StartChildren, store.ChildStart{Run: cp, FailedItem: fit})
		children = append(children, newChild{cp, failed})
		addEvent("child")
	}
	type newExternal struct {
		wfID               string
		item, done, failed tItem
		cancel             bool
	}
	var external []newExternal
	if full && m.in.chance(3) && len(m.wfIDs) > 0 {
		x := newExternal{wfID: m.pickWorkflowID(false), cancel: m.in.chance(5)}
		var item, done, failed store.NewInboxItem
		if x.cancel {
			x.item, item = m.newItem("cancel", "ext-cancel")
		} else {
			x.item, item = m.newItem("signal", "ext-signal")
		}
		x.done, done = m.newItem("external-done", "ext-done")
		x.failed, failed = m.newItem("external-failed", "ext-failed")
		p.External = append(p.External, store.ExternalRequest{WorkflowID: x.wfID, Item: item, Cancel: x.cancel,
			DoneItem: done, FailedItem: failed})
		external = append(external, x)
		seq++
		addEvent("external")
	}
	if close != nil && (full || close.Status != store.StatusContinuedAsNew) {
		p.Close = close
		addEvent("close")
	}
	r.nextSeq = seq // seqs are never reused, even by a refused commit

	return func(leased []store.ActivityTask, consumed []store.InboxItem) bool {
		r.history = append(r.history, p.Events...)
		m.consume(r, consumed)
		if p.Close == nil {
			r.lastFailure = ""
			for _, na := range acts {
				r.acts[na.a.seq] = na.a
			}
			for _, nt := range timers {
				r.timers[nt.seq] = nt.tm
			}
			for _, s := range p.CancelTimers {
				delete(r.timers, s)
			}
			for _, s := range p.CancelActivities {
				if a := r.acts[s]; a != nil {
					a.cancel = true
				}
			}
			m.checkEagerActivities(r, acts, leased)
		} else if len(leased) > 0 {
			m.fatalf("commit with close of run %s leased %d activities", r.id, len(leased))
		}
		var carried []tItem
		if p.Close != nil {
			r.lastFailure = ""
			r.result, r.failure = p.Close.Result, p.Close.Failure
			rest := r.inbox
			if can := p.Close.ContinueAsNew; p.Close.Status == store.StatusContinuedAsNew && can != nil {
				var left []tItem
				for _, it := range rest {
					if slices.Contains(can.CarryInboxTypes, it.typ) {
						carried = append(carried, it)
					} else {
						left = append(left, it)
					}
				}
				rest = left
			}
			r.inbox = rest
			m.closeRun(r, p.Close.Status)
		}
		for _, c := range children {
			latest := m.latest[c.params.WorkflowID]
			if m.runningOf(c.params.WorkflowID) != nil || reuseRefused(c.params.ReusePolicy, latest) {
				m.deliver(r, c.failed) // not written once r closed
				continue
			}
			m.newRun(&c.params, r)
			m.logf("child %s of %s", c.params.RunID, r.id)
		}
		for _, x := range external {
			target := m.runningOf(x.wfID)
			m.logf("external from %s to %s (running: %v, cancel: %v)", r.id, x.wfID, target != nil, x.cancel)
			if target == nil {
				m.deliver(r, x.failed)
				continue
			}
			if x.cancel {
				m.requestCancel(target, x.item)
			} else {
				m.deliver(target, x.item)
			}
			m.deliver(r, x.done)
		}
		if cl := p.Close; cl != nil {
			if cl.Status == store.StatusContinuedAsNew {
				next := cl.ContinueAsNew.Run
				if r.parent != nil {
					next.Parent = &store.ParentRef{RunID: r.parent.id, Seq: r.parentSeq, ClosePolicy: r.policy}
				}
				s := m.newRun(&next, r.parent)
				// Carried items keep their place: they were written before
				// anything the successor gets later.
				for _, it := range carried {
					s.inbox = append(s.inbox, it)
				}
				for _, c := range m.runs {
					if c.parent == r && c.status == store.StatusRunning {
						c.parent = s
					}
				}
			} else {
				var pit *tItem
				if cl.ParentItem != nil {
					it := tItem{typ: cl.ParentItem.Type, tag: tagOf(cl.ParentItem.Data)}
					pit = &it
				}
				var cancelItem tItem
				if cl.Children != nil {
					cancelItem = tItem{typ: cl.Children.CancelItem.Type, tag: tagOf(cl.Children.CancelItem.Data)}
				}
				m.closeFamily(r, pit, cl.Children, cancelItem)
			}
			return false
		}
		if p.Token == "" {
			return false // CompleteActivityWithWorkflowTask leaves no task
		}
		// The task is done unless the inbox is not empty.
		if len(r.inbox) == 0 {
			r.task, r.token, r.claimed = false, "", nil
			r.stale = append(r.stale, p.Token)
			return false
		}
		r.stale = append(r.stale, p.Token)
		r.token, r.availableAt, r.attempt, r.claimed = "", m.now, 0, nil
		return true
	}
}

func sortedKeys[V any](mp map[int64]V) []int64 {
	keys := make([]int64, 0, len(mp))
	for k := range mp {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checkEagerActivities checks the activities a commit leased eagerly:
// those asked for that ClaimActivityTasks would claim now, in order.
func (m *tapeModel) checkEagerActivities(r *tRun, acts []newAct, leased []store.ActivityTask) {
	var want []*tAct
	for _, na := range acts {
		if na.eager && claimableActivity(na.a, m.now) {
			want = append(want, na.a)
		}
	}
	if len(leased) != len(want) {
		m.fatalf("commit of run %s leased %d activities eagerly, want %d", r.id, len(leased), len(want))
	}
	for i, task := range leased {
		a := want[i]
		if task.Seq != a.seq || task.Token == "" || task.Attempt != 1 {
			m.fatalf("eager activity %d of run %s: got seq %d token %q attempt %d", a.seq, r.id, task.Seq, task.Token, task.Attempt)
		}
		a.token, a.startedAt, a.leaseExp = task.Token, m.now, leaseExpiry(m.now, a.startToClose, a.hbTime)
		m.checkLeaseExpiry(r, a, task)
	}
}

func (m *tapeModel) checkLeaseExpiry(r *tRun, a *tAct, task store.ActivityTask) {
	m.t.Helper()
	if !task.LeaseExpiresAt.Equal(a.leaseExp) {
		m.fatalf("activity %s/%d: lease expires at %v, want %v", r.id, a.seq, task.LeaseExpiresAt, a.leaseExp)
	}
}

func (m *tapeModel) opFailWorkflow() {
	r := m.pickLeased()
	if r == nil {
		return
	}
	token, current := m.pickToken(r.token, r.stale, m.in.chance(5))
	retryAt := m.now.Add(m.duration(6, 30))
	failure := m.tag("task-failure")
	m.logf("fail-workflow %s current=%v retry=%v", r.id, current, retryAt.Sub(base))
	m.calls++
	err := m.st.FailWorkflowTask(m.ctx, store.FailWorkflowTaskParams{
		RunID: r.id, Token: token, RetryAt: retryAt, Failure: failure, Now: m.now,
	})
	if !current {
		m.wantErr(err, store.ErrLeaseLost, "fenced fail of workflow task")
		m.stats.Fenced++
		return
	}
	m.noErr(err, "fail workflow task")
	r.stale = append(r.stale, r.token)
	r.token, r.availableAt, r.claimed, r.lastFailure = "", retryAt, nil, failure
}

// runAct is an activity task of a run.
type runAct struct {
	r *tRun
	a *tAct
}

// allActs returns the activity tasks for which filter is true.
func (m *tapeModel) allActs(filter func(r *tRun, a *tAct) bool) []runAct {
	var out []runAct
	for _, r := range m.runs {
		for _, seq := range sortedKeys(r.acts) {
			if a := r.acts[seq]; filter(r, a) {
				out = append(out, runAct{r, a})
			}
		}
	}
	return out
}

func (m *tapeModel) opClaimActivity() {
	q := m.actQ[m.in.intn(2)]
	limit := 1 + m.in.intn(3)
	claimable := map[*tAct]*tRun{}
	for _, ra := range m.allActs(func(r *tRun, a *tAct) bool { return a.queue == q && claimableActivity(a, m.now) }) {
		claimable[ra.a] = ra.r
	}
	m.logf("claim-activity %s limit=%d claimable=%d", q, limit, len(claimable))
	m.calls++
	tasks, err := m.st.ClaimActivityTasks(m.ctx, store.ClaimParams{
		TaskQueue: q, Owner: "tape", Limit: limit, Now: m.now, LeaseUntil: m.now.Add(time.Minute),
	})
	m.noErr(err, "claim activity tasks")
	if want := min(limit, len(claimable)); len(tasks) != want {
		m.fatalf("claim activity tasks on %s: got %d, want %d", q, len(tasks), want)
	}
	for _, task := range tasks {
		r := m.byID[task.RunID]
		var a *tAct
		if r != nil {
			a = r.acts[task.Seq]
		}
		if a == nil || claimable[a] == nil {
			m.fatalf("activity claim returned %s/%d, which is not claimable: a second lease holder", task.RunID, task.Seq)
		}
		delete(claimable, a)
		if task.Token == "" || task.Attempt != a.attempt || slices.Contains(a.stale, task.Token) {
			m.fatalf("activity claim of %s/%d: token %q attempt %d, want a new token and attempt %d",
				r.id, a.seq, task.Token, task.Attempt, a.attempt)
		}
		if task.CancelRequested != a.cancel {
			m.fatalf("activity claim of %s/%d: cancel requested %v, want %v", r.id, a.seq, task.CancelRequested, a.cancel)
		}
		a.token, a.startedAt, a.leaseExp = task.Token, m.now, leaseExpiry(m.now, a.startToClose, a.hbTime)
		m.checkLeaseExpiry(r, a, task)
	}
}

// pickActivity picks an activity task to complete, retry or heartbeat,
// and the token and attempt to fence the write with: the current lease,
// the empty token of an unleased task (valid at its attempt), a stale
// token, or the lease of a task that is gone. valid says whether the fence
// holds.
func (m *tapeModel) pickActivity(allowEmpty bool) (r *tRun, a *tAct, runID string, seq int64, token string, attempt int, valid bool) {
	all := m.allActs(func(*tRun, *tAct) bool { return true })
	if len(all) == 0 || m.in.chance(2) {
		if len(m.deadTokens) == 0 {
			return nil, nil, "", 0, "", 0, false
		}
		d := m.deadTokens[m.in.intn(len(m.deadTokens))]
		return m.byID[d.runID], nil, d.runID, d.seq, d.token, d.attempt, false
	}
	ra := all[m.in.intn(len(all))]
	r, a = ra.r, ra.a
	switch {
	case a.token != "" && !m.in.chance(3):
		return r, a, r.id, a.seq, a.token, a.attempt, true
	case a.token == "" && allowEmpty && !m.in.chance(3):
		if m.in.chance(3) {
			return r, a, r.id, a.seq, "", a.attempt + 1, false
		}
		return r, a, r.id, a.seq, "", a.attempt, true
	case len(a.stale) > 0:
		return r, a, r.id, a.seq, a.stale[m.in.intn(len(a.stale))], a.attempt, false
	}
	return r, a, r.id, a.seq, "no-such-token", a.attempt, false
}

func (m *tapeModel) attemptRecord(runID string, seq int64, attempt int, outcome string) store.ActivityAttempt {
	return store.ActivityAttempt{RunID: runID, Seq: seq, Attempt: attempt, ActivityType: "act", Owner: "tape",
		StartedAt: m.now, EndedAt: m.now, Outcome: outcome}
}

// finishActivity removes a completed activity from the model.
func (m *tapeModel) finishActivity(r *tRun, a *tAct, attempt int) {
	delete(r.acts, a.seq)
	r.attempts[[2]int64{a.seq, int64(attempt)}] = true
	if a.token != "" {
		m.deadTokens = append(m.deadTokens, deadToken{r.id, a.seq, a.token, a.attempt})
	}
}

func (m *tapeModel) opCompleteActivity() {
	r, a, runID, seq, token, attempt, valid := m.pickActivity(true)
	if runID == "" {
		return
	}
	it, nit := m.newItem("activity-done", "act-done")
	p := store.CompleteActivityTaskParams{RunID: runID, Seq: seq, Token: token,
		Attempt: m.attemptRecord(runID, seq, attempt, "completed"), Item: nit, Now: m.now}
	eager := m.in.chance(6)
	var until time.Time
	if eager {
		until = m.now.Add(m.duration(0, 60))
		p.Eager = &store.EagerLease{Owner: "tape", LeaseUntil: until}
	}
	m.logf("complete-activity %s/%d valid=%v eager=%v", runID, seq, valid, eager)
	m.calls++
	res, err := m.st.CompleteActivityTask(m.ctx, p)
	if !valid {
		m.wantErr(err, store.ErrLeaseLost, "fenced activity completion")
		m.stats.Fenced++
		return
	}
	m.noErr(err, "complete activity")
	m.finishActivity(r, a, attempt)
	m.deliver(r, it)
	claimable := m.claimableWorkflow(r)
	switch {
	case !eager && res.Task != nil:
		m.fatalf("activity completion without Eager leased a workflow task")
	case eager && claimable && res.Task == nil:
		m.fatalf("activity completion with Eager did not lease the claimable workflow task of run %s", r.id)
	case eager && !claimable && res.Task != nil:
		m.fatalf("activity completion with Eager leased the workflow task of run %s, held until %v: a second lease holder",
			r.id, r.availableAt.Sub(base))
	case res.Task != nil:
		if res.Task.Run.RunID != r.id {
			m.fatalf("eager lease of run %s returned run %s", r.id, res.Task.Run.RunID)
		}
		m.leased(r, *res.Task, until, "eager lease")
	}
}

func (m *tapeModel) opRetryActivity() {
	r, a, runID, seq, token, attempt, valid := m.pickActivity(true)
	if runID == "" {
		return
	}
	retryAt := m.now.Add(m.duration(6, 20))
	m.logf("retry-activity %s/%d valid=%v", runID, seq, valid)
	m.calls++
	err := m.st.RetryActivityTask(m.ctx, store.RetryActivityTaskParams{RunID: runID, Seq: seq, Token: token,
		Attempt: m.attemptRecord(runID, seq, attempt, "failed"), RetryAt: retryAt, Now: m.now})
	if !valid {
		m.wantErr(err, store.ErrLeaseLost, "fenced activity retry")
		m.stats.Fenced++
		return
	}
	m.noErr(err, "retry activity")
	r.attempts[[2]int64{a.seq, int64(attempt)}] = true
	if a.token != "" {
		a.stale = append(a.stale, a.token)
	}
	a.attempt++
	a.token, a.startedAt, a.leaseExp, a.readyAt = "", time.Time{}, time.Time{}, retryAt
	if a.stsTimeout > 0 {
		a.stsDeadline = retryAt.Add(a.stsTimeout)
	}
}

func (m *tapeModel) opHeartbeat() {
	r, a, runID, seq, token, _, valid := m.pickActivity(false)
	if runID == "" {
		return
	}
	_ = r
	m.logf("heartbeat %s/%d valid=%v", runID, seq, valid)
	m.calls++
	res, err := m.st.HeartbeatActivityTask(m.ctx, store.HeartbeatParams{RunID: runID, Seq: seq, Token: token,
		Details: tagData(m.tag("details")), Now: m.now})
	if !valid {
		m.wantErr(err, store.ErrLeaseLost, "fenced heartbeat")
		m.stats.Fenced++
		return
	}
	m.noErr(err, "heartbeat")
	if res.CancelRequested != a.cancel {
		m.fatalf("heartbeat of %s/%d: cancel requested %v, want %v", runID, seq, res.CancelRequested, a.cancel)
	}
	var hb, stc time.Time
	if a.hbTime > 0 {
		hb = m.now.Add(a.hbTime)
	}
	if a.startToClose > 0 {
		stc = a.startedAt.Add(a.startToClose)
	}
	a.leaseExp = earliest(hb, stc)
}

// expiredAt returns when an activity task times out (zero: never).
func expiredAt(a *tAct) time.Time {
	if a.token != "" {
		return earliest(a.leaseExp, a.stcDeadline)
	}
	return earliest(a.stsDeadline, a.stcDeadline)
}

func (m *tapeModel) opExpired() {
	want := map[string]bool{}
	for _, ra := range m.allActs(func(r *tRun, a *tAct) bool {
		d := expiredAt(a)
		return !d.IsZero() && !d.After(m.now)
	}) {
		r, a := ra.r, ra.a
		want[fmt.Sprintf("%s/%d@%d:%s", r.id, a.seq, a.attempt, a.token)] = true
	}
	m.logf("expired-activities want=%d", len(want))
	tasks, err := m.st.ExpiredActivityTasks(m.ctx, m.now, 1000)
	m.noErr(err, "expired activity tasks")
	got := map[string]bool{}
	for _, task := range tasks {
		if m.byID[task.RunID] != nil {
			got[fmt.Sprintf("%s/%d@%d:%s", task.RunID, task.Seq, task.Attempt, task.Token)] = true
		}
	}
	if !maps.Equal(got, want) {
		m.fatalf("expired activity tasks:\n  got  %v\n  want %v", sortedSet(got), sortedSet(want))
	}
}

func sortedSet(s map[string]bool) []string {
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (m *tapeModel) opFireTimers() {
	m.logf("fire-timers")
	m.fireTimers()
}

// fireTimers fires the due timers and checks that every run whose timer
// fired is reported.
func (m *tapeModel) fireTimers() {
	m.t.Helper()
	type due struct {
		r   *tRun
		seq int64
		tm  tTimer
	}
	var fire []due
	for _, r := range m.running() {
		for _, seq := range sortedKeys(r.timers) {
			if tm := r.timers[seq]; !tm.fireAt.After(m.now) {
				fire = append(fire, due{r, seq, tm})
			}
		}
	}
	m.calls++
	queues, err := m.st.FireTimers(m.ctx, m.now, 1000)
	m.noErr(err, "fire timers")
	// Items are written by firing time, then run, then seq.
	slices.SortStableFunc(fire, func(a, b due) int {
		if c := a.tm.fireAt.Compare(b.tm.fireAt); c != 0 {
			return c
		}
		return strings.Compare(a.r.id, b.r.id)
	})
	for _, d := range fire {
		delete(d.r.timers, d.seq)
		m.deliver(d.r, d.tm.item)
		if !slices.Contains(queues, d.r.queue) {
			m.fatalf("fire timers: queue %s of run %s, whose timer %d fired, not reported (got %v)", d.r.queue, d.r.id, d.seq, queues)
		}
	}
}

func (m *tapeModel) opSignal() {
	if len(m.runs) == 0 {
		return
	}
	r := m.runs[m.in.intn(len(m.runs))]
	byWorkflow := m.in.chance(6)
	var requestID string
	switch m.in.intn(4) {
	case 0:
		requestID = m.tag("req")
	case 1:
		// A request ID that this run, or another, accepted before.
		o := r
		if m.in.chance(4) {
			o = m.runs[m.in.intn(len(m.runs))]
		}
		if len(o.requests) > 0 {
			requestID = o.requests[m.in.intn(len(o.requests))]
		}
	}
	unknown := m.in.chance(1)
	it, nit := m.newItem("signal", "signal")
	p := store.SignalParams{Item: nit, RequestID: requestID, Now: m.now}
	target := r
	switch {
	case unknown:
		p.RunID = m.tag("no-such-run")
	case byWorkflow:
		p.WorkflowID = r.wfID
		target = m.latest[r.wfID]
	default:
		p.RunID = r.id
	}
	m.logf("signal %s%s request=%q target=%s", p.RunID, p.WorkflowID, requestID, target.id)
	m.calls++
	got, err := m.st.Signal(m.ctx, p)
	if unknown {
		m.wantErr(err, store.ErrNotFound, "signal to an unknown run")
		return
	}
	known := requestID != "" && slices.Contains(target.requests, requestID)
	switch {
	case target.status != store.StatusRunning && !known:
		m.wantErr(err, store.ErrRunClosed, "signal to a closed run")
		return
	case known:
		m.noErr(err, "repeated signal request")
	default:
		m.noErr(err, "signal")
		if requestID != "" {
			target.requests = append(target.requests, requestID)
		}
		m.deliver(target, it)
		m.stats.Signals++
	}
	if got.RunID != target.id {
		m.fatalf("signal returned run %s, want %s", got.RunID, target.id)
	}
}

func (m *tapeModel) opCancel() {
	if len(m.runs) == 0 {
		return
	}
	r := m.runs[m.in.intn(len(m.runs))]
	it, nit := m.newItem("cancel", "cancel")
	m.logf("cancel %s", r.id)
	m.calls++
	err := m.st.RequestCancel(m.ctx, store.CancelParams{RunID: r.id, Item: nit, Now: m.now})
	if r.status != store.StatusRunning {
		m.wantErr(err, store.ErrRunClosed, "cancel of a closed run")
		return
	}
	m.noErr(err, "cancel")
	m.requestCancel(r, it)
}

func (m *tapeModel) opTerminate() {
	if len(m.runs) == 0 || !m.in.chance(8) {
		return
	}
	r := m.runs[m.in.intn(len(m.runs))]
	p := store.TerminateParams{RunID: r.id, Event: store.Event{Type: "terminated", Data: tagData(m.tag("terminated"))},
		Failure: tagData(m.tag("terminate-failure")), Now: m.now}
	var pit *tItem
	if m.in.chance(8) {
		it, nit := m.newItem("child-closed", "parent-item")
		p.ParentItem, pit = &nit, &it
	}
	var cancelItem tItem
	if m.in.chance(8) {
		p.Children = m.childrenClose()
		cancelItem = tItem{typ: p.Children.CancelItem.Type, tag: tagOf(p.Children.CancelItem.Data)}
	}
	m.logf("terminate %s", r.id)
	m.calls++
	err := m.st.Terminate(m.ctx, p)
	if r.status != store.StatusRunning {
		m.wantErr(err, store.ErrRunClosed, "terminate of a closed run")
		return
	}
	m.noErr(err, "terminate")
	m.terminate(r, p.Event, p.Failure)
	m.closeFamily(r, pit, p.Children, cancelItem)
}

func (m *tapeModel) opCompleteWithWorkflow() {
	leasedActs := m.allActs(func(r *tRun, a *tAct) bool { return a.token != "" })
	if len(leasedActs) == 0 {
		return
	}
	ra := leasedActs[m.in.intn(len(leasedActs))]
	r, a := ra.r, ra.a
	token, valid := a.token, true
	if m.in.chance(3) {
		token, valid = "no-such-token", false
		if len(a.stale) > 0 {
			token = a.stale[0]
		}
	}
	expectedLen := int64(len(r.history))
	wrongLen := m.in.chance(2)
	if wrongLen {
		expectedLen++
	}
	done := m.event(r, 0, "activity-done", "act-done")
	done.ID = expectedLen + 1
	w := store.CompleteWorkflowTaskParams{RunID: r.id, ExpectedHistoryLen: expectedLen, Events: []store.Event{done}, Now: m.now}
	var close *store.CloseRun
	if m.in.chance(3) {
		close = m.closeParams(r)
		if close.Status == store.StatusContinuedAsNew {
			close = nil
		}
	}
	apply := m.commands(r, &w, close, false)
	p := store.CompleteActivityWithWorkflowTaskParams{
		Activity: store.CompleteActivityTaskParams{RunID: r.id, Seq: a.seq, Token: token,
			Attempt: m.attemptRecord(r.id, a.seq, a.attempt, "completed"), Now: m.now},
		Workflow: w,
	}
	idle := !r.task && !wrongLen
	m.logf("complete-with-workflow %s/%d valid=%v idle=%v close=%v", r.id, a.seq, valid, idle, close != nil)
	m.calls++
	res, err := m.st.CompleteActivityWithWorkflowTask(m.ctx, p)
	switch {
	case !valid:
		m.wantErr(err, store.ErrLeaseLost, "fenced activity completion with workflow task")
		m.stats.Fenced++
		return
	case !idle:
		m.wantErr(err, store.ErrRunBusy, "activity completion with the workflow task of a busy run")
		m.stats.Fenced++
		return
	}
	m.noErr(err, "complete activity with workflow task")
	if res.Pending {
		m.fatalf("activity completion with workflow task reported Pending")
	}
	m.finishActivity(r, a, a.attempt)
	m.stats.FastPaths++
	apply(res.Activities, nil)
}

// idleClose returns, one time in five, how a commit without a workflow
// task (the fast paths) closes r: not by continuing as new.
func (m *tapeModel) idleClose(r *tRun) *store.CloseRun {
	if !m.in.chance(3) {
		return nil
	}
	if cl := m.closeParams(r); cl.Status != store.StatusContinuedAsNew {
		return cl
	}
	return nil
}

// opCreateWithFirstTask creates a run together with its first workflow
// task's commit (CreateRunParams.FirstTask): no workflow task is left.
func (m *tapeModel) opCreateWithFirstTask() {
	if len(m.runs) >= maxTapeRuns {
		return
	}
	wfID := m.pickWorkflowID(m.in.chance(10))
	p := m.runParams(wfID)
	r := m.initRun(&p, nil)
	w := store.CompleteWorkflowTaskParams{RunID: p.RunID, ExpectedHistoryLen: 1, Now: m.now}
	apply := m.commands(r, &w, m.idleClose(r), false)
	p.FirstTask = &w
	m.logf("create-with-first-task %s wf=%s policy=%d close=%v", p.RunID, wfID, p.ReusePolicy, w.Close != nil)
	m.calls++
	res, err := m.st.CreateRun(m.ctx, p)
	if running := m.runningOf(wfID); running != nil {
		m.noErr(err, "create run with first task over a running one")
		if res.Created || res.Run.RunID != running.id || len(res.Activities) != 0 {
			m.fatalf("create run with first task of running workflow %s: created=%v run=%s activities=%d, want the running run %s",
				wfID, res.Created, res.Run.RunID, len(res.Activities), running.id)
		}
		return
	}
	if reuseRefused(p.ReusePolicy, m.latest[wfID]) {
		m.wantErr(err, store.ErrWorkflowIDInUse, "create run with first task refused by reuse policy")
		m.stats.Fenced++
		return
	}
	m.noErr(err, "create run with first task")
	if !res.Created || res.Run.RunID != p.RunID || res.Run.HistoryLen != 1+int64(len(w.Events)) || res.Task != nil {
		m.fatalf("create run with first task: got created=%v task=%v %+v", res.Created, res.Task != nil, res.Run)
	}
	m.addRun(r)
	r.task = false
	m.stats.FastPaths++
	apply(res.Activities, nil)
}

// opSignalWithWorkflow signals a run together with the workflow task run
// on the signal (SignalWithWorkflowTask), which the store refuses unless
// the run is running and idle at the expected length and the request ID
// is new to it.
func (m *tapeModel) opSignalWithWorkflow() {
	if len(m.runs) == 0 {
		return
	}
	r := m.runs[m.in.intn(len(m.runs))]
	var requestID string
	switch m.in.intn(3) {
	case 0:
		requestID = m.tag("req")
	case 1:
		if len(r.requests) > 0 {
			requestID = r.requests[m.in.intn(len(r.requests))]
		}
	}
	expectedLen := int64(len(r.history))
	wrongLen := m.in.chance(2)
	if wrongLen {
		expectedLen++
	}
	sig := m.event(r, 0, "signal", "fast-signal")
	sig.ID = expectedLen + 1
	w := store.CompleteWorkflowTaskParams{RunID: r.id, ExpectedHistoryLen: expectedLen, Events: []store.Event{sig}, Now: m.now}
	apply := func([]store.ActivityTask, []store.InboxItem) bool { return false }
	if r.status == store.StatusRunning {
		apply = m.commands(r, &w, m.idleClose(r), false)
	}
	p := store.SignalWithWorkflowTaskParams{
		Signal:   store.SignalParams{RunID: r.id, Item: store.NewInboxItem{Type: sig.Type, Data: sig.Data}, RequestID: requestID, Now: m.now},
		Workflow: w,
	}
	known := requestID != "" && slices.Contains(r.requests, requestID)
	idle := r.status == store.StatusRunning && !r.task && !wrongLen && !known
	m.logf("signal-with-workflow %s request=%q idle=%v close=%v", r.id, requestID, idle, w.Close != nil)
	m.calls++
	res, err := m.st.SignalWithWorkflowTask(m.ctx, p)
	if !idle {
		m.wantErr(err, store.ErrRunBusy, "signal with the workflow task of a busy run")
		m.stats.Fenced++
		return
	}
	m.noErr(err, "signal with workflow task")
	if res.Pending {
		m.fatalf("signal with workflow task reported Pending")
	}
	if requestID != "" {
		r.requests = append(r.requests, requestID)
	}
	m.stats.Signals++
	m.stats.FastPaths++
	apply(res.Activities, nil)
}

// opFireTimerWithWorkflow fires a timer together with the workflow task
// run on it (FireTimerWithWorkflowTask), which the store refuses unless the
// timer exists and is due and the run is idle at the expected length.
func (m *tapeModel) opFireTimerWithWorkflow() {
	type candidate struct {
		r   *tRun
		seq int64
	}
	var cands []candidate
	for _, r := range m.running() {
		for _, seq := range sortedKeys(r.timers) {
			cands = append(cands, candidate{r, seq})
		}
	}
	if len(cands) == 0 {
		return
	}
	c := cands[m.in.intn(len(cands))]
	r, seq := c.r, c.seq
	if m.in.chance(2) {
		seq += 5000 // no such timer
	}
	tm, exists := r.timers[seq]
	due := exists && !tm.fireAt.After(m.now)
	expectedLen := int64(len(r.history))
	wrongLen := m.in.chance(2)
	if wrongLen {
		expectedLen++
	}
	tag := tm.item.tag
	if !exists {
		tag = m.tag("no-timer")
	}
	ev := store.Event{ID: expectedLen + 1, Type: "timer-fired", Time: m.now, Data: tagData(tag)}
	w := store.CompleteWorkflowTaskParams{RunID: r.id, ExpectedHistoryLen: expectedLen, Events: []store.Event{ev}, Now: m.now}
	apply := m.commands(r, &w, m.idleClose(r), false)
	idle := due && !r.task && !wrongLen
	m.logf("fire-timer-with-workflow %s/%d due=%v idle=%v close=%v", r.id, seq, due, idle, w.Close != nil)
	m.calls++
	res, err := m.st.FireTimerWithWorkflowTask(m.ctx, store.FireTimerWithWorkflowTaskParams{Seq: seq, Workflow: w})
	if !idle {
		m.wantErr(err, store.ErrRunBusy, "timer fired with the workflow task of a busy run, or not due")
		m.stats.Fenced++
		return
	}
	m.noErr(err, "fire timer with workflow task")
	delete(r.timers, seq)
	m.expect[tag]++ // the timer's item, in the history once
	m.stats.FastPaths++
	apply(res.Activities, nil)
}

// ---- checks ----

// check compares the store with the model: every run when all is set,
// else the running ones and those that closed recently.
func (m *tapeModel) check(all bool) {
	m.t.Helper()
	for _, r := range m.runs {
		if !all && r.status.Closed() && r.checked {
			continue
		}
		m.checkRun(r)
		r.checked = r.status.Closed()
	}
}

func (m *tapeModel) checkRun(r *tRun) {
	m.t.Helper()
	got, err := m.st.GetRun(m.ctx, r.id)
	m.noErr(err, "get run "+r.id)
	var size int64
	for _, ev := range r.history {
		size += int64(len(ev.Data))
	}
	if got.Status != r.status || got.HistoryLen != int64(len(r.history)) || got.HistoryBytes != size ||
		got.CancelRequested != r.cancelReq || got.LastTaskFailure != r.lastFailure {
		m.fatalf("run %s: got status %s, history %d events/%d bytes, cancel %v, task failure %q; want %s, %d/%d, %v, %q",
			r.id, got.Status, got.HistoryLen, got.HistoryBytes, got.CancelRequested, got.LastTaskFailure,
			r.status, len(r.history), size, r.cancelReq, r.lastFailure)
	}
	if r.status.Closed() && (!bytes.Equal(got.Result, r.result) || !bytes.Equal(got.Failure, r.failure)) {
		m.fatalf("run %s: result %s failure %s, want %s and %s", r.id, got.Result, got.Failure, r.result, r.failure)
	}
	if r.status.Closed() != !got.ClosedAt.IsZero() {
		m.fatalf("run %s (%s): closed at %v", r.id, r.status, got.ClosedAt)
	}
	switch {
	case r.parent == nil && got.Parent != nil:
		m.fatalf("run %s: parent %+v, want none", r.id, *got.Parent)
	case r.parent != nil && (got.Parent == nil || got.Parent.RunID != r.parent.id || got.Parent.Seq != r.parentSeq ||
		got.Parent.ClosePolicy != r.policy):
		m.fatalf("run %s: parent %+v, want %s seq %d policy %d", r.id, got.Parent, r.parent.id, r.parentSeq, r.policy)
	}
	evs, err := m.st.History(m.ctx, r.id, 0)
	m.noErr(err, "history of "+r.id)
	if len(evs) != len(r.history) {
		m.fatalf("run %s: history has %d events, want %d", r.id, len(evs), len(r.history))
	}
	for i, ev := range evs {
		want := r.history[i]
		if ev.ID != int64(i+1) {
			m.fatalf("run %s: event %d has ID %d: history IDs are not 1, 2, 3…", r.id, i+1, ev.ID)
		}
		if ev.Type != want.Type || !bytes.Equal(ev.Data, want.Data) || !ev.Time.Equal(want.Time) {
			m.fatalf("run %s: event %d is %s %s at %v, want %s %s at %v", r.id, ev.ID, ev.Type, ev.Data,
				ev.Time.Sub(base), want.Type, want.Data, want.Time.Sub(base))
		}
	}
	attempts, err := m.st.ActivityAttempts(m.ctx, r.id)
	m.noErr(err, "activity attempts of "+r.id)
	if len(attempts) != len(r.attempts) {
		m.fatalf("run %s: %d activity attempts recorded, want %d", r.id, len(attempts), len(r.attempts))
	}
	if m.rows == nil {
		return
	}
	rows, err := m.rows(m.ctx, r.id)
	m.noErr(err, "rows of "+r.id)
	want := RunRows{WorkflowTask: r.task, Inbox: len(r.inbox), Timers: len(r.timers), ActivityTasks: len(r.acts)}
	if rows != want {
		what := "run"
		if r.status.Closed() {
			what = "closed run"
		}
		m.fatalf("%s %s holds %+v, want %+v", what, r.id, rows, want)
	}
}

// drain drives every running run to its end: its timers fire, its
// activities complete, its inbox moves to its history, and it closes.
func (m *tapeModel) drain() {
	m.t.Helper()
	m.logf("drain")
	m.now = m.now.Add(24 * time.Hour)
	m.fireTimers()
	for round := 0; len(m.running()) > 0; round++ {
		if round > 3*maxTapeRuns {
			m.fatalf("drain: runs still running after %d rounds", round)
		}
		for _, r := range m.running() {
			if r.status.Closed() {
				continue // closed earlier in this round
			}
			if !r.task {
				// Idle: nothing in its inbox.
				ev := store.Event{Type: "terminated", Time: m.now, Data: tagData(m.tag("drained"))}
				m.calls++
				m.noErr(m.st.Terminate(m.ctx, store.TerminateParams{RunID: r.id, Event: ev, Now: m.now}), "terminate idle run")
				m.terminate(r, ev, nil)
				continue
			}
			m.calls++
			tasks, err := m.st.ClaimWorkflowTasks(m.ctx, store.ClaimParams{
				TaskQueue: r.queue, Owner: "drain", Limit: maxTapeRuns * 2, Now: m.now, LeaseUntil: m.now.Add(time.Minute),
			})
			m.noErr(err, "drain claim")
			for _, wt := range tasks {
				c := m.byID[wt.Run.RunID]
				if c == nil || !m.claimableWorkflow(c) {
					m.fatalf("drain claim returned run %s, which is not claimable", wt.Run.RunID)
				}
				m.leased(c, wt, m.now.Add(time.Minute), "drain claim")
			}
			for _, wt := range tasks {
				c := m.byID[wt.Run.RunID]
				p := store.CompleteWorkflowTaskParams{RunID: c.id, Token: c.token, ExpectedHistoryLen: int64(len(c.history)), Now: m.now}
				for i, it := range wt.Inbox {
					p.Events = append(p.Events, store.Event{ID: int64(len(c.history) + i + 1), Type: it.Type, Time: m.now, Data: it.Data})
					p.InboxUpTo = it.ID
				}
				_, pit := m.newItem("child-closed", "parent-item")
				cl := &store.CloseRun{Status: store.StatusCompleted, Result: tagData(m.tag("drained")), ParentItem: &pit}
				p.Events = append(p.Events, store.Event{ID: p.ExpectedHistoryLen + int64(len(p.Events)) + 1, Type: "command",
					Time: m.now, Data: tagData(m.tag("close"))})
				p.Close = cl
				m.calls++
				_, err := m.st.CompleteWorkflowTask(m.ctx, p)
				m.noErr(err, "drain commit")
				c.history = append(c.history, p.Events...)
				m.consume(c, wt.Inbox)
				c.result, c.lastFailure = cl.Result, ""
				m.closeRun(c, store.StatusCompleted)
				if c.parent != nil {
					m.deliver(c.parent, tItem{typ: pit.Type, tag: tagOf(pit.Data)})
				}
			}
			if len(tasks) == 0 && r.status == store.StatusRunning {
				m.fatalf("drain: run %s has a workflow task available at %v but none was claimed", r.id, r.availableAt.Sub(base))
			}
		}
	}
	// Nothing of the tape's runs is left to fire or expire.
	m.calls++
	queues, err := m.st.FireTimers(m.ctx, m.now.Add(1000*time.Hour), 1000)
	m.noErr(err, "fire timers after drain")
	for _, q := range queues {
		if strings.HasPrefix(q, m.prefix) {
			m.fatalf("a timer fired on %s after every run closed", q)
		}
	}
	expired, err := m.st.ExpiredActivityTasks(m.ctx, m.now.Add(1000*time.Hour), 1000)
	m.noErr(err, "expired activity tasks after drain")
	for _, task := range expired {
		if m.byID[task.RunID] != nil {
			m.fatalf("activity %s/%d expired after its run closed", task.RunID, task.Seq)
		}
	}
}

// checkItems checks that every item the store accepted is in exactly one
// history, or was dropped by the close of its run.
func (m *tapeModel) checkItems() {
	m.t.Helper()
	inHistory := map[string]int{}
	for _, r := range m.runs {
		for _, ev := range r.history {
			inHistory[tagOf(ev.Data)]++
		}
	}
	for tag, n := range m.expect {
		if got, want := inHistory[tag], n-m.drop[tag]; got != want {
			m.fatalf("item %s: in histories %d times, want %d (written %d, dropped unread %d)", tag, got, want, n, m.drop[tag])
		}
	}
}

func runIDsOf(rs []*tRun) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.id
	}
	return out
}
