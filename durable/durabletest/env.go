package durabletest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/sqlitestore"
)

// DefaultStart is the fake clock's initial time in an Env.
var DefaultStart = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC) //nolint:gochecknoglobals // a constant time

// EnvOptions configure an Env. A nil *EnvOptions takes every default.
type EnvOptions struct {
	// Config is the engine's configuration; Test.Clock is always replaced
	// by the Env's clock. Optional; default a Config with PanicPolicy
	// FailWorkflow (so that a panicking workflow fails at once and the test
	// sees the panic from Result) and the engine log sent to t.Log. A
	// zero PollInterval becomes 100ms.
	Config *durable.Config
	// Store is the engine's store. The Env does not close it. Optional;
	// default a new SQLite file in t.TempDir(), closed at the end of the
	// test. Time skipping needs a store with an Idle method (sqlitestore
	// and pgstore have one).
	Store store.Store
	// Start is the fake clock's initial time. Optional; default
	// DefaultStart.
	Start time.Time
	// TaskQueues lists task queues that get a worker besides "default".
	TaskQueues []string
	// DisableTimeSkipping keeps the clock still unless the test moves it
	// (Advance, Clock). By default the clock jumps to the next timer
	// whenever every run waits for time during Run, Result and Advance.
	DisableTimeSkipping bool
	// Timeout bounds each wait (Run, Result, WaitIdle, Advance); a wait
	// that takes longer fails the test. Optional; default 1 minute.
	Timeout time.Duration
}

// idleStore is a store that can tell when every run waits for time.
type idleStore interface {
	Idle(ctx context.Context, now time.Time) (idle bool, next time.Time, err error)
}

// Env is a started engine for a test: a real store (a SQLite file by
// default), a fake clock, and workers on the default task queue and on
// EnvOptions.TaskQueues. It is stopped, and its store closed, when the test
// ends.
//
// # Time skipping
//
// While the test waits for a run through Run or Result, the Env watches the
// store: when every run waits for time (no workflow or activity task is
// running or runnable, and nothing is due), it moves the clock to the next
// timer, retry backoff or deadline. A workflow that sleeps for three days,
// or waits 24 hours for an approval that never comes, completes in
// milliseconds. Outside those waits the clock moves only when the test
// moves it, so a test can signal a waiting run before its timeout fires:
// send the signal first, then wait for the result. Skipping is on by
// default; EnvOptions.DisableTimeSkipping turns it off.
type Env struct {
	// Engine is the engine under test. Use it directly for anything the
	// Env has no helper for.
	Engine *durable.Engine
	// Clock is the engine's fake clock.
	Clock *Clock
	// Store is the engine's store.
	Store store.Store

	idle        idleStore // nil when the store cannot tell
	skip        bool      // skip time while waiting for a result
	timeout     time.Duration
	defaultLogs *testLog

	// mu is held while the clock jumps and while the Env sends a signal,
	// so that a jump never follows an idleness read from before a signal.
	mu    sync.Mutex
	stubs map[string]bool // names of stubbed activities
}

// NewEnv starts an Env for the test; opts may be nil.
func NewEnv(t testing.TB, opts *EnvOptions) *Env {
	t.Helper()
	o := EnvOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Start.IsZero() {
		o.Start = DefaultStart
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	env := &Env{Clock: NewClock(o.Start), timeout: o.Timeout, skip: !o.DisableTimeSkipping, stubs: map[string]bool{}}

	st := o.Store
	if st == nil {
		s, err := sqlitestore.Open(filepath.Join(t.TempDir(), "durable.db"), nil)
		if err != nil {
			t.Fatalf("durabletest: open store: %v", err)
		}
		st = s
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("durabletest: close store: %v", err)
			}
		})
	}
	env.Store = st
	if is, ok := st.(idleStore); ok {
		env.idle = is
	} else if env.skip {
		t.Fatalf("durabletest: %T cannot tell when runs wait for time; set EnvOptions.DisableTimeSkipping", st)
	}

	cfg := durable.Config{PanicPolicy: durable.FailWorkflow}
	if o.Config != nil {
		cfg = *o.Config
	}
	cfg.Test.Clock = env.Clock
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		env.defaultLogs = &testLog{t: t}
		cfg.Logger = slog.New(slog.NewTextHandler(env.defaultLogs, nil))
	}
	e, err := durable.New(st, &cfg)
	if err != nil {
		t.Fatalf("durabletest: new engine: %v", err)
	}
	env.Engine = e
	e.NewWorker(nil)
	for _, q := range o.TaskQueues {
		if q != "default" && q != "" {
			e.NewWorker(&durable.WorkerOptions{TaskQueue: q})
		}
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatalf("durabletest: start engine: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			t.Errorf("durabletest: stop engine: %v", err)
		}
		env.defaultLogs.close()
	})
	return env
}

// Register registers workflows and activities on the engine, except
// activities replaced by StubActivity, which keep their stub. It fails the
// test on an empty or duplicate name.
func (env *Env) Register(t testing.TB, defs ...durable.Definition) {
	t.Helper()
	for _, d := range defs {
		err := env.Engine.Register(d)
		if err == nil {
			continue
		}
		if errors.Is(err, durable.ErrAlreadyRegistered) && env.stubbed(d) {
			continue
		}
		t.Fatalf("durabletest: register: %v", err)
	}
}

// stubbed reports whether d is an activity that a stub replaces.
func (env *Env) stubbed(d durable.Definition) bool {
	env.mu.Lock()
	defer env.mu.Unlock()
	named, ok := d.(interface{ Name() string })
	return ok && env.stubs[named.Name()]
}

// Start starts a run of wf (see Workflow.Start), failing the test if it
// cannot.
func Start[In, Out any](t testing.TB, env *Env, wf *durable.Workflow[In, Out], in In, opts *durable.StartOptions) *durable.Handle[Out] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), env.timeout)
	defer cancel()
	env.mu.Lock()
	h, err := wf.Start(ctx, env.Engine, in, opts)
	env.mu.Unlock()
	if err != nil {
		t.Fatalf("durabletest: start %s: %v", wf.Name(), err)
	}
	return h
}

// Result waits for the run to close, skipping time while every run waits
// for a timer, and returns its result or error. It fails the test if the
// run is still open after EnvOptions.Timeout.
func Result[Out any](t testing.TB, env *Env, h *durable.Handle[Out]) (Out, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), env.timeout)
	defer cancel()
	stop := env.skipWhileWaiting(ctx, h.RunID())
	out, err := h.Result(ctx)
	stop()
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		t.Fatalf("durabletest: run %s of %s still open after %s: %s", h.RunID(), h.WorkflowID(), env.timeout, env.state())
	}
	return out, err
}

// Run starts a run of wf and returns its result, as Start and Result.
func Run[In, Out any](t testing.TB, env *Env, wf *durable.Workflow[In, Out], in In, opts *durable.StartOptions) (Out, error) {
	t.Helper()
	return Result(t, env, Start(t, env, wf, in, opts))
}

// SendSignal sends a signal to the workflow ID's running run, failing the
// test if it cannot.
func SendSignal[T any](t testing.TB, env *Env, sig durable.Signal[T], workflowID string, v T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), env.timeout)
	defer cancel()
	env.mu.Lock()
	err := sig.Send(ctx, env.Engine, workflowID, v)
	env.mu.Unlock()
	if err != nil {
		t.Fatalf("durabletest: signal %s to %s: %v", sig.Name(), workflowID, err)
	}
}

// WaitIdle waits, without moving the clock, until every run waits for time,
// a signal or nothing: no workflow or activity task is running or runnable
// and nothing is due. Use it before moving the clock by hand. It fails the
// test after EnvOptions.Timeout.
func (env *Env) WaitIdle(t testing.TB) {
	t.Helper()
	if _, err := env.waitIdle(); err != nil {
		t.Fatalf("durabletest: wait idle: %v", err)
	}
}

// waitIdle polls until the store is idle and returns the next wake-up.
func (env *Env) waitIdle() (time.Time, error) {
	if env.idle == nil {
		return time.Time{}, fmt.Errorf("%T cannot tell when runs are idle", env.Store)
	}
	ctx, cancel := context.WithTimeout(context.Background(), env.timeout)
	defer cancel()
	for {
		idle, next, err := env.idle.Idle(ctx, env.Clock.Now())
		if err != nil {
			return time.Time{}, err
		}
		if idle {
			return next, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("still busy after %s: %s", env.timeout, env.state())
		case <-time.After(time.Millisecond):
		}
	}
}

// Advance moves the clock forward by d, one due moment at a time: it waits
// until the runs are idle, fires what falls due next (a timer started by a
// timer that fired earlier in the span fires too, at its own time), and
// ends idle at the clock's old time plus d. It works with time skipping
// disabled too.
func (env *Env) Advance(t testing.TB, d time.Duration) {
	t.Helper()
	target := env.Clock.Now().Add(d)
	for {
		next, err := env.waitIdle()
		if err != nil {
			t.Fatalf("durabletest: advance: %v", err)
		}
		env.mu.Lock()
		if next.IsZero() || next.After(target) {
			env.Clock.Set(target)
			env.mu.Unlock()
			if _, err := env.waitIdle(); err != nil {
				t.Fatalf("durabletest: advance: %v", err)
			}
			return
		}
		env.Clock.Set(next)
		env.mu.Unlock()
	}
}

// skipWhileWaiting moves the clock to the next wake-up whenever the store
// is idle and run runID is still open, until ctx ends or the returned stop
// is called.
func (env *Env) skipWhileWaiting(ctx context.Context, runID string) (stop func()) {
	if !env.skip {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			env.skipOnce(ctx, runID)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return func() { cancel(); <-done }
}

// skipOnce jumps the clock to the next wake-up if every run waits for time
// and the run the test waits for has not closed: once it has, the other
// runs' timers (a sleeper's three days) are not the test's to fire.
func (env *Env) skipOnce(ctx context.Context, runID string) {
	env.mu.Lock()
	defer env.mu.Unlock()
	now := env.Clock.Now()
	idle, next, err := env.idle.Idle(ctx, now)
	if err != nil || !idle || !next.After(now) {
		return
	}
	// Read after Idle: a run seen open here was open, and idle, then.
	if info, err := env.Engine.DescribeRun(ctx, runID); err != nil || info.Status != durable.StatusRunning {
		return
	}
	env.Clock.Set(next)
}

// state describes what keeps the runs busy, for a timeout message.
func (env *Env) state() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	runs, _, err := env.Engine.ListRuns(ctx, &durable.ListOptions{Status: durable.StatusRunning, Limit: 10})
	if err != nil {
		return "cannot list runs: " + err.Error()
	}
	if len(runs) == 0 {
		return "no run is running"
	}
	parts := make([]string, 0, len(runs))
	for _, r := range runs {
		s := fmt.Sprintf("%s (%s) on task queue %q, %d events", r.WorkflowID, r.WorkflowType, r.TaskQueue, r.HistoryLength)
		if r.LastTaskFailure != "" {
			s += ", last task failure: " + firstLine(r.LastTaskFailure)
		}
		parts = append(parts, s)
	}
	return "running: " + strings.Join(parts, "; ") + " (is a worker polling every task queue used?)"
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// testLog writes the engine's log to the test's log until the Env stops.
type testLog struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (l *testLog) close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}
