//go:build failpoints

package failpoint

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Enabled reports whether failpoints are compiled in (the failpoints build
// tag).
const Enabled = true

// rule is a Rule with its hit count.
type rule struct {
	Rule
	hits atomic.Int64
}

// The process's failpoint state: as global as the environment it is read
// from.
var (
	active  atomic.Pointer[[]*rule] //nolint:gochecknoglobals // process-wide, like the environment
	counts  sync.Map                //nolint:gochecknoglobals // name -> *atomic.Int64
	fired   sync.Map                //nolint:gochecknoglobals // name -> *atomic.Int64
	logMu   sync.Mutex              //nolint:gochecknoglobals
	logFile *os.File                //nolint:gochecknoglobals // set by init only
	rngMu   sync.Mutex              //nolint:gochecknoglobals
	rng     *rand.Rand              //nolint:gochecknoglobals
)

func init() {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(EnvSeed); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fatal(fmt.Errorf("%w: %s=%q is not an integer", ErrInvalidSpec, EnvSeed, s))
		}
		seed = uint64(n)
	}
	rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	if p := os.Getenv(EnvLog); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			fatal(fmt.Errorf("failpoint: open %s: %w", EnvLog, err))
		}
		logFile = f
	}
	if err := Configure(os.Getenv(EnvSpec)); err != nil {
		fatal(fmt.Errorf("%s: %w", EnvSpec, err))
	}
}

// fatal stops a process whose failpoint configuration is wrong: a run
// that silently ignored it would prove nothing.
func fatal(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}

// Configure replaces the process's rules with those of spec (see the
// package documentation; "" removes them all). Hit counts of the new rules
// start at zero; those of Hits are kept.
func Configure(spec string) error {
	parsed, err := Parse(spec)
	if err != nil {
		return err
	}
	if len(parsed) == 0 {
		active.Store(nil)
		return nil
	}
	rules := make([]*rule, len(parsed))
	for i, r := range parsed {
		rules[i] = &rule{Rule: r}
	}
	active.Store(&rules)
	return nil
}

// Hits returns how many times each failpoint was hit in this process.
func Hits() map[string]int64 { return snapshot(&counts) }

// Fired returns how many times each failpoint's rule acted (an error
// returned, or an ambiguous commit) in this process. A kill is not
// counted: nothing survives it to read the count.
func Fired() map[string]int64 { return snapshot(&fired) }

func snapshot(m *sync.Map) map[string]int64 {
	out := map[string]int64{}
	m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

func add(m *sync.Map, name string) {
	c, _ := m.LoadOrStore(name, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
}

// Inject counts a hit of the failpoint name and applies the first rule
// that matches it: it kills the process, returns an *Error, or returns
// nil.
func Inject(name string) error {
	count(name)
	rules := active.Load()
	if rules == nil {
		return nil
	}
	for _, r := range *rules {
		if !r.Matches(name) {
			continue
		}
		n := r.hits.Add(1)
		if !triggers(&r.Rule, n) {
			return nil
		}
		switch r.Kind {
		case Kill:
			kill(name, n)
		case Fail:
			add(&fired, name)
			return &Error{Name: name, Hit: n}
		case Ambiguous:
			add(&fired, name)
			return &Error{Name: name, Hit: n, Ambiguous: true}
		}
		return nil
	}
	return nil
}

func triggers(r *Rule, n int64) bool {
	switch {
	case r.Nth > 0:
		return n == r.Nth
	case r.Percent > 0:
		rngMu.Lock()
		x := rng.Float64() * 100
		rngMu.Unlock()
		return x < r.Percent
	}
	return true
}

// count adds a hit of name and logs the name at its first hit.
func count(name string) {
	if c, ok := counts.Load(name); ok {
		c.(*atomic.Int64).Add(1)
		return
	}
	c, loaded := counts.LoadOrStore(name, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
	if !loaded && logFile != nil {
		logMu.Lock()
		_, err := logFile.WriteString(name + "\n")
		logMu.Unlock()
		if err != nil {
			fatal(fmt.Errorf("failpoint: write %s: %w", EnvLog, err))
		}
	}
}

// kill SIGKILLs the process: no deferred function runs, no buffer is
// flushed, as when the machine loses power under it (except that the
// kernel still writes out what the process already wrote).
func kill(name string, hit int64) {
	fmt.Fprintf(os.Stderr, "failpoint: kill at %s (hit %d)\n", name, hit)
	p, err := os.FindProcess(os.Getpid())
	if err == nil {
		err = p.Kill()
	}
	if err != nil {
		fatal(fmt.Errorf("failpoint: kill at %s: %w", name, err))
	}
	for {
		time.Sleep(time.Hour) // the signal is on its way
	}
}
