package durable

import (
	"fmt"
	"runtime/debug"
	"time"
)

// errUnwind is panicked inside a workflow coroutine to unwind its stack when
// the run is evicted from the cache or discarded. Workflow code must not
// recover it.
type unwindSignal struct{}

var errUnwind = unwindSignal{} //nolint:gochecknoglobals // sentinel panic value

// DeadlockError reports workflow code that ran for longer than
// Config.DeadlockTimeout without yielding to the engine: it is blocked
// outside the engine, for example in time.Sleep, on a mutex, a channel or
// I/O. Such a task fails (and the run is blocked or failed by
// Config.PanicPolicy); the worker goes on.
type DeadlockError struct {
	Coroutine string
	Timeout   time.Duration
}

func (e *DeadlockError) Error() string {
	return fmt.Sprintf("durable: workflow coroutine %q did not yield within %s: it is blocked outside the engine "+
		"(time.Sleep, a mutex, a channel or I/O?); use durable.Sleep, Await, Signal and activities instead",
		e.Coroutine, e.Timeout)
}

// coroutine is one workflow goroutine. Only one coroutine of a run executes
// at a time: the dispatcher resumes it and waits until it yields.
type coroutine struct {
	name        string
	resume      chan bool // true: unwind
	keptBlocked bool
	done        bool
	stuck       bool // did not yield in time; abandoned
}

// dispatcher runs a run's coroutines one at a time, in creation order, so
// every execution and every replay sees the same interleaving.
type dispatcher struct {
	coros   []*coroutine
	current *coroutine
	yielded chan error // nil, or why the coroutine failed the task
	closed  bool

	deadlockTimeout time.Duration
	// abandoned is closed once a coroutine is found stuck: the run is
	// discarded, and coroutines that wake later exit instead of reporting.
	abandoned chan struct{}
}

func newDispatcher(deadlockTimeout time.Duration) *dispatcher {
	return &dispatcher{yielded: make(chan error), deadlockTimeout: deadlockTimeout, abandoned: make(chan struct{})}
}

// report hands control back to the dispatcher, unless the run was abandoned.
func (d *dispatcher) report(err error) bool {
	select {
	case d.yielded <- err:
		return true
	case <-d.abandoned:
		return false
	}
}

// spawn adds a coroutine; it first runs at the next pass of runUntilBlocked.
func (d *dispatcher) spawn(name string, fn func()) {
	c := &coroutine{name: name, resume: make(chan bool)}
	d.coros = append(d.coros, c)
	go func() {
		if unwind := <-c.resume; unwind {
			c.done = true
			d.report(nil)
			return
		}
		c.keptBlocked = false
		var panicked error
		func() {
			defer func() {
				if r := recover(); r != nil {
					switch r := r.(type) {
					case unwindSignal:
					case *NonDeterminismError:
						panicked = r
					default:
						panicked = &PanicError{Value: fmt.Sprint(r), Stack: string(debug.Stack())}
					}
				}
			}()
			fn()
		}()
		c.done = true
		d.report(panicked)
	}()
}

// yield is called by the current coroutine when it is blocked. It returns
// once the dispatcher resumes it, or panics with errUnwind on eviction or
// when the run was abandoned.
func (d *dispatcher) yield() {
	c := d.current
	if !d.report(nil) {
		panic(errUnwind)
	}
	if unwind := <-c.resume; unwind {
		panic(errUnwind)
	}
}

// waitUntil blocks the current coroutine until cond holds.
func (d *dispatcher) waitUntil(cond func() bool) {
	if d.current == nil {
		if cond() {
			return
		}
		panic("durable: blocking workflow call outside the workflow's coroutines")
	}
	for !cond() {
		d.yield()
	}
	d.current.keptBlocked = false
}

// runUntilBlocked resumes coroutines until every one is blocked without
// progress, or done. It returns a *PanicError if workflow code panicked, the
// *NonDeterminismError a coroutine raised, or a *DeadlockError.
func (d *dispatcher) runUntilBlocked() error {
	timer := time.NewTimer(d.deadlockTimeout)
	defer timer.Stop()
	for {
		progress := false
		for i := 0; i < len(d.coros); i++ {
			c := d.coros[i]
			if c.done {
				continue
			}
			c.keptBlocked = true
			d.current = c
			timer.Reset(d.deadlockTimeout)
			c.resume <- false
			var v error
			select {
			case v = <-d.yielded:
			case <-timer.C:
				// The coroutine still runs and may read d.current when it
				// unblocks: from here on only close() touches the run, and
				// it leaves d.current alone.
				c.stuck = true
				close(d.abandoned)
				return &DeadlockError{Coroutine: c.name, Timeout: d.deadlockTimeout}
			}
			d.current = nil
			if v != nil {
				return v
			}
			if c.done || !c.keptBlocked {
				progress = true
			}
		}
		live := d.coros[:0]
		for _, c := range d.coros {
			if !c.done {
				live = append(live, c)
			}
		}
		d.coros = live
		if !progress {
			return nil
		}
	}
}

// close unwinds every live coroutine so that no goroutine of the run is left
// (a stuck one exits when it unblocks).
func (d *dispatcher) close() {
	if d.closed {
		return
	}
	d.closed = true
	abandoned := false
	select {
	case <-d.abandoned:
		abandoned = true
	default:
	}
	if abandoned {
		// Parked coroutines unwind as soon as they are resumed and exit
		// without reporting; the stuck one exits when it unblocks.
		for _, c := range d.coros {
			if !c.stuck && !c.done {
				c.resume <- true
			}
		}
		return
	}
	for _, c := range d.coros {
		if c.done {
			continue
		}
		d.current = c
		c.resume <- true
		<-d.yielded
	}
	d.coros = nil
	d.current = nil
}
