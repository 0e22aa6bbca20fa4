//go:build failpoints

package durable

import (
	"context"
	"database/sql"
	"time"

	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/internal/failpoint"
)

// withFailpoints wraps st so that every store write crosses two
// failpoints (see package internal/failpoint): "store.<Method>.before",
// before the write is sent, and "store.<Method>.after", once it has
// committed. An .after point is reached only when the write succeeded
// and wrote something: ClaimWorkflowTasks, ClaimActivityTasks and
// FireTimers when they claimed or fired something (an empty poll writes
// nothing), CreateRun when it created a run, DeleteClosedRuns when it
// deleted one. An error from
// a failpoint is returned in place of the write's result (before: nothing
// was written; after: the write committed, an ambiguous commit).
//
// A workflow-task commit also crosses the points of what it does:
// "store.CompleteWorkflowTask.children.*" when it starts children,
// ".external.*" when it signals or cancels another run, ".close.*" when it
// closes the run, ".continue_as_new.*" when it continues as new; the
// activity fast path likewise crosses "store.CompleteActivityWithWorkflowTask.close.*"
// when its workflow task closes the run.
//
// The wrapper passes on the optional methods the engine and tests look for
// on a store: those of sqlitestore (DeleteClosedRuns, a write with its own
// failpoints; Idle; DB; QueueStats) or of pgstore (Notifications,
// DeleteClosedRuns, Idle, QueueStats) when st has all of that store's, else
// Notifications alone when st has it, else none. It never claims a method
// that st lacks.
func withFailpoints(st store.Store) store.Store {
	f := &fpStore{Store: st}
	n, hasN := st.(fpNotifier)
	r, hasR := st.(fpRetainer)
	i, hasI := st.(fpIdler)
	d, hasD := st.(fpDBer)
	q, hasQ := st.(fpQueueStatser)
	switch {
	case hasR && hasI && hasD && hasQ:
		return &fpSQLite{f, fpRetain{r}, fpIdle{i}, fpDB{d}, fpQueueStats{q}}
	case hasN && hasR && hasI && hasQ:
		return &fpPostgres{f, fpNotify{n}, fpRetain{r}, fpIdle{i}, fpQueueStats{q}}
	case hasN:
		return &fpNotifying{f, fpNotify{n}}
	}
	return f
}

// The store wrappers, by the optional methods they pass on.
type (
	fpSQLite struct {
		*fpStore
		fpRetain
		fpIdle
		fpDB
		fpQueueStats
	}
	fpPostgres struct {
		*fpStore
		fpNotify
		fpRetain
		fpIdle
		fpQueueStats
	}
	fpNotifying struct {
		*fpStore
		fpNotify
	}
)

// The optional store methods the wrapper passes on.
type (
	fpNotifier interface {
		Notifications(ctx context.Context) <-chan string
	}
	fpRetainer interface {
		DeleteClosedRuns(ctx context.Context, closedBefore time.Time, batchSize int) (int, error)
	}
	fpIdler interface {
		Idle(ctx context.Context, now time.Time) (idle bool, next time.Time, err error)
	}
	fpDBer interface {
		DB() *sql.DB
	}
	fpQueueStatser interface {
		QueueStats(ctx context.Context, now time.Time) ([]store.QueueStat, error)
	}
)

type fpNotify struct{ n fpNotifier }

func (f fpNotify) Notifications(ctx context.Context) <-chan string { return f.n.Notifications(ctx) }

type fpRetain struct{ r fpRetainer }

func (f fpRetain) DeleteClosedRuns(ctx context.Context, closedBefore time.Time, batchSize int) (int, error) {
	return fpWrite1("store.DeleteClosedRuns", nil, func() (int, error) {
		return f.r.DeleteClosedRuns(ctx, closedBefore, batchSize)
	}, func(n int) bool { return n > 0 })
}

type fpIdle struct{ i fpIdler }

func (f fpIdle) Idle(ctx context.Context, now time.Time) (bool, time.Time, error) {
	return f.i.Idle(ctx, now)
}

type fpDB struct{ d fpDBer }

func (f fpDB) DB() *sql.DB { return f.d.DB() }

type fpQueueStats struct{ q fpQueueStatser }

func (f fpQueueStats) QueueStats(ctx context.Context, now time.Time) ([]store.QueueStat, error) {
	return f.q.QueueStats(ctx, now)
}

// fpStore adds failpoints to the write methods of a Store; reads pass
// through.
type fpStore struct {
	store.Store
}

// fpInject hits name+".before" or name+".after" and then each variant's.
func fpInject(base string, variants []string, when string) error {
	if err := failpoint.Inject(base + when); err != nil {
		return err
	}
	for _, v := range variants {
		if err := failpoint.Inject(base + "." + v + when); err != nil {
			return err
		}
	}
	return nil
}

// fpWrite1 runs a write that returns a value between its failpoints;
// wrote says whether a successful call wrote anything (nil: always).
func fpWrite1[T any](base string, variants []string, write func() (T, error), wrote func(T) bool) (T, error) {
	var zero T
	if err := fpInject(base, variants, ".before"); err != nil {
		return zero, err
	}
	v, err := write()
	if err != nil || (wrote != nil && !wrote(v)) {
		return v, err
	}
	if err := fpInject(base, variants, ".after"); err != nil {
		return zero, err
	}
	return v, nil
}

// fpWrite0 is fpWrite1 for a write that returns only an error.
func fpWrite0(base string, variants []string, write func() error) error {
	_, err := fpWrite1(base, variants, func() (struct{}, error) { return struct{}{}, write() }, nil)
	return err
}

// commitVariants names what a workflow-task commit does besides
// appending events.
func commitVariants(p *store.CompleteWorkflowTaskParams) []string {
	var v []string
	if len(p.StartChildren) > 0 {
		v = append(v, "children")
	}
	if len(p.External) > 0 {
		v = append(v, "external")
	}
	if p.Close != nil {
		if p.Close.Status == store.StatusContinuedAsNew {
			v = append(v, "continue_as_new")
		} else {
			v = append(v, "close")
		}
	}
	return v
}

func (s *fpStore) CreateRun(ctx context.Context, p store.CreateRunParams) (store.CreateRunResult, error) {
	var variants []string
	if p.FirstTask != nil {
		variants = append(variants, "first_task")
		if p.FirstTask.Close != nil {
			variants = append(variants, "first_task.close")
		}
	}
	return fpWrite1("store.CreateRun", variants, func() (store.CreateRunResult, error) {
		return s.Store.CreateRun(ctx, p)
	}, func(r store.CreateRunResult) bool { return r.Created })
}

func (s *fpStore) ClaimWorkflowTasks(ctx context.Context, p store.ClaimParams) ([]store.WorkflowTask, error) {
	return fpWrite1("store.ClaimWorkflowTasks", nil, func() ([]store.WorkflowTask, error) {
		return s.Store.ClaimWorkflowTasks(ctx, p)
	}, func(ts []store.WorkflowTask) bool { return len(ts) > 0 })
}

func (s *fpStore) CompleteWorkflowTask(ctx context.Context, p store.CompleteWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	return fpWrite1("store.CompleteWorkflowTask", commitVariants(&p), func() (store.CompleteWorkflowTaskResult, error) {
		return s.Store.CompleteWorkflowTask(ctx, p)
	}, nil)
}

func (s *fpStore) FailWorkflowTask(ctx context.Context, p store.FailWorkflowTaskParams) error {
	return fpWrite0("store.FailWorkflowTask", nil, func() error { return s.Store.FailWorkflowTask(ctx, p) })
}

func (s *fpStore) ClaimActivityTasks(ctx context.Context, p store.ClaimParams) ([]store.ActivityTask, error) {
	return fpWrite1("store.ClaimActivityTasks", nil, func() ([]store.ActivityTask, error) {
		return s.Store.ClaimActivityTasks(ctx, p)
	}, func(ts []store.ActivityTask) bool { return len(ts) > 0 })
}

func (s *fpStore) CompleteActivityTask(ctx context.Context, p store.CompleteActivityTaskParams) (store.CompleteActivityTaskResult, error) {
	return fpWrite1("store.CompleteActivityTask", nil, func() (store.CompleteActivityTaskResult, error) {
		return s.Store.CompleteActivityTask(ctx, p)
	}, nil)
}

func (s *fpStore) CompleteActivityWithWorkflowTask(ctx context.Context, p store.CompleteActivityWithWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	return fpWrite1("store.CompleteActivityWithWorkflowTask", commitVariants(&p.Workflow), func() (store.CompleteWorkflowTaskResult, error) {
		return s.Store.CompleteActivityWithWorkflowTask(ctx, p)
	}, nil)
}

func (s *fpStore) SignalWithWorkflowTask(ctx context.Context, p store.SignalWithWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	return fpWrite1("store.SignalWithWorkflowTask", commitVariants(&p.Workflow), func() (store.CompleteWorkflowTaskResult, error) {
		return s.Store.SignalWithWorkflowTask(ctx, p)
	}, nil)
}

func (s *fpStore) FireTimerWithWorkflowTask(ctx context.Context, p store.FireTimerWithWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	return fpWrite1("store.FireTimerWithWorkflowTask", commitVariants(&p.Workflow), func() (store.CompleteWorkflowTaskResult, error) {
		return s.Store.FireTimerWithWorkflowTask(ctx, p)
	}, nil)
}

func (s *fpStore) RetryActivityTask(ctx context.Context, p store.RetryActivityTaskParams) error {
	return fpWrite0("store.RetryActivityTask", nil, func() error { return s.Store.RetryActivityTask(ctx, p) })
}

func (s *fpStore) HeartbeatActivityTask(ctx context.Context, p store.HeartbeatParams) (store.HeartbeatResult, error) {
	return fpWrite1("store.HeartbeatActivityTask", nil, func() (store.HeartbeatResult, error) {
		return s.Store.HeartbeatActivityTask(ctx, p)
	}, nil)
}

func (s *fpStore) FireTimers(ctx context.Context, now time.Time, limit int) ([]string, error) {
	return fpWrite1("store.FireTimers", nil, func() ([]string, error) {
		return s.Store.FireTimers(ctx, now, limit)
	}, func(qs []string) bool { return len(qs) > 0 })
}

func (s *fpStore) Signal(ctx context.Context, p store.SignalParams) (store.Run, error) {
	return fpWrite1("store.Signal", nil, func() (store.Run, error) { return s.Store.Signal(ctx, p) }, nil)
}

func (s *fpStore) RequestCancel(ctx context.Context, p store.CancelParams) error {
	return fpWrite0("store.RequestCancel", nil, func() error { return s.Store.RequestCancel(ctx, p) })
}

func (s *fpStore) Terminate(ctx context.Context, p store.TerminateParams) error {
	return fpWrite0("store.Terminate", nil, func() error { return s.Store.Terminate(ctx, p) })
}
