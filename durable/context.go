package durable

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"
)

// Context is what workflow code receives instead of a context.Context. Its
// functions (Now, Sleep, Go, Await, activity and signal calls) are the
// deterministic stand-ins for the language and library features that
// workflow code must not use directly; see the package documentation.
type Context interface {
	// Info describes the run.
	Info() WorkflowInfo
	// Logger returns a logger that is silent while the run replays.
	Logger() *slog.Logger
	// Err returns ErrCanceled once the run was asked to cancel, else nil.
	Err() error

	durableContext()
}

// WorkflowInfo describes a run, for workflow code.
type WorkflowInfo struct {
	WorkflowID   string
	RunID        string
	WorkflowType string
	TaskQueue    string
}

type wfContext struct {
	rs  *runState
	log *slog.Logger
	// detached contexts (WithoutCancel) ignore the run's cancellation.
	detached bool
}

func (c *wfContext) Info() WorkflowInfo   { return c.rs.info }
func (c *wfContext) Logger() *slog.Logger { return c.log }
func (c *wfContext) durableContext()      {}

func (c *wfContext) Err() error {
	if canceled(c) {
		return ErrCanceled
	}
	return nil
}

// canceled reports whether work started with ctx is to be refused because
// the run was asked to cancel: true unless ctx is detached.
func canceled(ctx Context) bool {
	c := ctx.(*wfContext)
	return !c.detached && c.rs.cancelRequested
}

// isDetached reports whether ctx ignores the run's cancellation.
func isDetached(ctx Context) bool { return ctx.(*wfContext).detached }

// WithoutCancel returns a context whose activities, timers, children and
// waits are not canceled when the run is: the way to clean up after a
// cancellation, for example to run a compensation activity before the
// workflow returns ErrCanceled.
func WithoutCancel(ctx Context) Context {
	c := ctx.(*wfContext)
	return &wfContext{rs: c.rs, log: c.log, detached: true}
}

// stateOf returns the run behind a workflow Context.
func stateOf(ctx Context) *runState {
	c, ok := ctx.(*wfContext)
	if !ok {
		panic("durable: Context was not created by the engine")
	}
	return c.rs
}

func isCanceled(err error) bool { return errors.Is(err, ErrCanceled) }

// replayHandler drops log records while the run replays, so each line is
// logged once however often the run is replayed.
type replayHandler struct {
	rs *runState
	h  slog.Handler
}

func (h *replayHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return !h.rs.replaying && h.h.Enabled(ctx, l)
}
func (h *replayHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.rs.replaying {
		return nil
	}
	return h.h.Handle(ctx, r)
}
func (h *replayHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return &replayHandler{rs: h.rs, h: h.h.WithAttrs(a)}
}
func (h *replayHandler) WithGroup(name string) slog.Handler {
	return &replayHandler{rs: h.rs, h: h.h.WithGroup(name)}
}

// Now returns the workflow's current time: the time at which the event being
// processed was recorded. It is the same on every replay.
func Now(ctx Context) time.Time { return stateOf(ctx).now }

// IsReplaying reports whether the workflow is re-executing recorded history.
// Use it only to skip output such as metrics; never to change decisions.
func IsReplaying(ctx Context) bool { return stateOf(ctx).replaying }

// Future is the eventual result of an activity, a timer or other
// asynchronous workflow operation.
type Future[T any] struct {
	rs    *runState
	ready bool
	val   T
	err   error
}

func (f *Future[T]) set(v T, err error) {
	f.val, f.err, f.ready = v, err, true
}

// IsReady reports whether Get would return without blocking.
func (f *Future[T]) IsReady() bool { return f.ready }

// Get blocks the calling workflow coroutine until the future is resolved.
func (f *Future[T]) Get(ctx Context) (T, error) {
	stateOf(ctx).d.waitUntil(func() bool { return f.ready })
	return f.val, f.err
}

// NewTimer returns a future that resolves after d of workflow time. The timer
// is a durable row: no goroutine waits for it. A timer of d <= 0 is ready at
// once.
func NewTimer(ctx Context, d time.Duration) *Future[struct{}] {
	rs := stateOf(ctx)
	f := &Future[struct{}]{rs: rs}
	if d <= 0 {
		f.set(struct{}{}, nil)
		return f
	}
	if canceled(ctx) {
		f.set(struct{}{}, ErrCanceled)
		return f
	}
	seq := rs.startTimer(d, func(err error) { f.set(struct{}{}, err) })
	if isDetached(ctx) {
		rs.detachedTimers[seq] = true
	}
	return f
}

// Sleep blocks the workflow for d; a run sleeping for days holds no
// goroutine once evicted from the cache. It returns ErrCanceled if the run
// is canceled meanwhile.
func Sleep(ctx Context, d time.Duration) error {
	_, err := NewTimer(ctx, d).Get(ctx)
	return err
}

// Go starts fn as a new workflow coroutine. Coroutines run one at a time, in
// a deterministic order; use them instead of the go statement.
func Go(ctx Context, fn func(ctx Context)) {
	rs := stateOf(ctx)
	rs.mustWrite()
	rs.d.spawn("go", func() { fn(ctx) })
}

// Await blocks until cond returns true. cond must only read workflow state.
// It returns ErrCanceled if the run is canceled first.
func Await(ctx Context, cond func() bool) error {
	rs := stateOf(ctx)
	rs.d.waitUntil(func() bool { return cond() || canceled(ctx) })
	if cond() {
		return nil
	}
	return ErrCanceled
}

// AwaitWithTimeout blocks until cond returns true or d elapses, and reports
// whether cond became true. The timeout is a durable timer.
func AwaitWithTimeout(ctx Context, d time.Duration, cond func() bool) (bool, error) {
	rs := stateOf(ctx)
	if cond() {
		return true, nil
	}
	if canceled(ctx) {
		return false, ErrCanceled
	}
	fired := false
	seq := rs.startTimer(d, func(error) { fired = true })
	if isDetached(ctx) {
		rs.detachedTimers[seq] = true
	}
	rs.d.waitUntil(func() bool { return cond() || fired || canceled(ctx) })
	if cond() {
		rs.cancelTimer(seq)
		return true, nil
	}
	if canceled(ctx) {
		return false, ErrCanceled
	}
	return false, nil
}

// SideEffect runs fn once and records its result in history; replays return
// the recorded value without running fn. Use it for small nondeterministic
// values (random numbers, generated IDs).
func SideEffect[T any](ctx Context, fn func() T) (T, error) {
	rs := stateOf(ctx)
	if rs.replaying {
		d := rs.mustCommand(EventMarkerRecorded, &eventData{Name: "SideEffect"})
		return decode[T](d.Result)
	}
	v := fn()
	b, err := rs.e.encode(v)
	if err != nil {
		var zero T
		return zero, err
	}
	rs.mustCommand(EventMarkerRecorded, &eventData{Name: "SideEffect", Result: b})
	return v, nil
}

// UUID returns a random UUID that is recorded, so every replay sees the same.
func UUID(ctx Context) string {
	s, _ := SideEffect(ctx, uuid.NewString) // a string always encodes
	return s
}

// Signal is a typed signal: a named message sent to a running workflow.
// Declare it once, next to the workflow, and use it on both sides.
type Signal[T any] struct{ name string }

// NewSignal declares a signal.
func NewSignal[T any](name string) Signal[T] { return Signal[T]{name: name} }

// Name returns the signal's name.
func (s Signal[T]) Name() string { return s.name }

// HasPending reports whether a signal is waiting to be received.
func (s Signal[T]) HasPending(ctx Context) bool {
	return len(stateOf(ctx).signals[s.name]) > 0
}

// TryReceive returns the oldest pending signal without blocking; ok is false
// when none is pending. err reports a payload that does not decode into T.
func (s Signal[T]) TryReceive(ctx Context) (v T, ok bool, err error) {
	rs := stateOf(ctx)
	rs.mustWrite()
	q := rs.signals[s.name]
	if len(q) == 0 {
		return v, false, nil
	}
	rs.signals[s.name] = q[1:]
	v, err = decode[T](q[0].payload)
	return v, true, err
}

// Receive blocks until a signal arrives and returns it. Signals sent before
// the workflow reaches Receive are kept, in order, and never lost.
func (s Signal[T]) Receive(ctx Context) (T, error) {
	if err := Await(ctx, func() bool { return s.HasPending(ctx) }); err != nil {
		var zero T
		return zero, err
	}
	v, _, err := s.TryReceive(ctx)
	return v, err
}

// ReceiveWithTimeout is Receive with a durable timeout; ok is false when d
// elapsed first.
func (s Signal[T]) ReceiveWithTimeout(ctx Context, d time.Duration) (v T, ok bool, err error) {
	got, err := AwaitWithTimeout(ctx, d, func() bool { return s.HasPending(ctx) })
	if err != nil || !got {
		return v, false, err
	}
	return s.TryReceive(ctx)
}

// Selector waits for the first of several futures or signals.
type Selector struct {
	ctx   Context
	cases []*selectCase
}

type selectCase struct {
	ready    func() bool
	fn       func()
	once     bool
	consumed bool
}

// NewSelector returns an empty selector.
func NewSelector(ctx Context) *Selector { return &Selector{ctx: ctx} }

// AddFuture adds a case that fires once, when f is ready. f is any
// *Future[T].
func (s *Selector) AddFuture(f interface{ IsReady() bool }, fn func()) *Selector {
	s.cases = append(s.cases, &selectCase{ready: f.IsReady, fn: fn, once: true})
	return s
}

// AddSignal adds a case that fires whenever sig has a pending signal; fn
// should receive it.
func (s *Selector) AddSignal(sig interface{ HasPending(Context) bool }, fn func()) *Selector {
	s.cases = append(s.cases, &selectCase{ready: func() bool { return sig.HasPending(s.ctx) }, fn: fn})
	return s
}

// Select blocks until a case is ready and runs its function. Cases are
// checked in the order they were added. It returns ErrCanceled if the run is
// canceled while no case is ready.
func (s *Selector) Select(ctx Context) error {
	var chosen *selectCase
	err := Await(ctx, func() bool {
		for _, c := range s.cases {
			if !c.consumed && c.ready() {
				chosen = c
				return true
			}
		}
		return false
	})
	if err != nil {
		return err
	}
	if chosen.once {
		chosen.consumed = true
	}
	if chosen.fn != nil {
		chosen.fn()
	}
	return nil
}
