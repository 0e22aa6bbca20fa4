package durable

import (
	"fmt"
	"runtime/debug"
)

// errUnwind is panicked inside a workflow coroutine to unwind its stack when
// the run is evicted from the cache or discarded. Workflow code must not
// recover it.
type unwindSignal struct{}

var errUnwind = unwindSignal{} //nolint:gochecknoglobals // sentinel panic value

// coroutine is one workflow goroutine. Only one coroutine of a run executes
// at a time: the dispatcher resumes it and waits until it yields.
type coroutine struct {
	name        string
	resume      chan bool // true: unwind
	keptBlocked bool
	done        bool
}

// dispatcher runs a run's coroutines one at a time, in creation order, so
// every execution and every replay sees the same interleaving.
type dispatcher struct {
	coros   []*coroutine
	current *coroutine
	yielded chan error // nil, or why the coroutine failed the task
	closed  bool
}

func newDispatcher() *dispatcher {
	return &dispatcher{yielded: make(chan error)}
}

// spawn adds a coroutine; it first runs at the next pass of runUntilBlocked.
func (d *dispatcher) spawn(name string, fn func()) {
	c := &coroutine{name: name, resume: make(chan bool)}
	d.coros = append(d.coros, c)
	go func() {
		if unwind := <-c.resume; unwind {
			c.done = true
			d.yielded <- nil
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
		d.yielded <- panicked
	}()
}

// yield is called by the current coroutine when it is blocked. It returns
// once the dispatcher resumes it, or panics with errUnwind on eviction.
func (d *dispatcher) yield() {
	c := d.current
	d.yielded <- nil
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
// progress, or done. It returns a *PanicError if workflow code panicked, or
// the *NonDeterminismError a coroutine raised.
func (d *dispatcher) runUntilBlocked() error {
	for {
		progress := false
		for i := 0; i < len(d.coros); i++ {
			c := d.coros[i]
			if c.done {
				continue
			}
			c.keptBlocked = true
			d.current = c
			c.resume <- false
			v := <-d.yielded
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

// close unwinds every live coroutine so that no goroutine of the run is left.
func (d *dispatcher) close() {
	if d.closed {
		return
	}
	d.closed = true
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
