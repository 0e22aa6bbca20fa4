package bench

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/keelhq/keel/durable"
)

// SleepOptions size workload S.
type SleepOptions struct {
	// N sleeping workflows whose timers are measured. Optional; default
	// 100,000.
	N int
	// Spread is the window over which their timers fall due, evenly
	// spaced: N/Spread timers fire per second. Optional; default 60s.
	Spread time.Duration
	// Starters start the workflows concurrently. Optional; default 64.
	Starters int
	// CacheSize is the run cache size of the engine Run uses for S.
	// Optional; default 1,000 (the engine's default).
	CacheSize int
	// Progress, when set, receives a line per phase.
	Progress io.Writer
}

func (o *SleepOptions) withDefaults() SleepOptions {
	out := SleepOptions{}
	if o != nil {
		out = *o
	}
	if out.N <= 0 {
		out.N = 100_000
	}
	if out.Spread <= 0 {
		out.Spread = 60 * time.Second
	}
	if out.Starters <= 0 {
		out.Starters = 64
	}
	if out.Progress == nil {
		out.Progress = io.Discard
	}
	return out
}

// memSample is the process's memory at one moment.
type memSample struct {
	at   time.Time
	rss  int64
	heap uint64
}

func sampleMem() memSample {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memSample{at: time.Now(), rss: rssBytes(), heap: m.HeapAlloc}
}

// Sleepers is workload S: it fills the store with sleeping workflows and
// measures the process's memory while they sleep, then how late their
// timers fire when they fall due.
//
// A first tenth (at most 1,000) of extra workflows sleeps for an hour:
// they measure the start rate, from which the due time of the first
// measured timer is set (twice the predicted start time, and 10 s more)
// so that all N are asleep before it, and they stay asleep to the end. Samples are the fire lags: from a timer's due time to
// its workflow code running again. Extra reports the memory figures (RSS
// and Go heap, in MiB: at the start, once all sleep, and the lowest and
// highest while they sleep), the engine's cache size, the fire rate and
// whether the start phase overran the first due time.
func (env *Env) Sleepers(ctx context.Context, o *SleepOptions) (Result, error) {
	opts := o.withDefaults()
	extra := map[string]float64{}
	r, err := env.measure(ctx, "S", fmt.Sprintf("%d sleeping workflows, timers due over %v (sample: fire lag)", opts.N, opts.Spread), func() ([]time.Duration, int, error) {
		runtime.GC()
		base := sampleMem()

		// Probes: measure the start rate.
		probes := max(1, min(1000, opts.N/10))
		farDue := time.Now().Add(time.Hour).UnixNano()
		t0 := time.Now()
		probeHandles, err := env.startSleepers(ctx, probes, opts.Starters, "s-probe", func(int) int64 { return farDue })
		if err != nil {
			return nil, 0, err
		}
		// A probe sleeps once its first task has committed its timer:
		// started, the clock read, the timer started.
		for _, h := range probeHandles {
			if err := env.waitHistory(ctx, h.RunID(), 3); err != nil {
				return nil, 0, err
			}
		}
		rate := float64(probes) / time.Since(t0).Seconds()
		// Starting slows down as the tables grow: allow twice the time the
		// probes' rate predicts, and 10 s more.
		first := time.Now().Add(time.Duration(float64(opts.N)/rate*2*float64(time.Second)) + 10*time.Second)
		fmt.Fprintf(opts.Progress, "S: %d probes started at %.0f/s; first timer due at %s\n", probes, rate, first.Format(time.TimeOnly))

		// Sample memory until the last timer is due.
		var (
			mu      sync.Mutex
			samples []memSample
		)
		stopSampling := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stopSampling:
					return
				case <-tick.C:
					s := sampleMem()
					mu.Lock()
					samples = append(samples, s)
					mu.Unlock()
				}
			}
		}()

		step := opts.Spread / time.Duration(opts.N)
		handles, err := env.startSleepers(ctx, opts.N, opts.Starters, "s", func(i int) int64 {
			return first.Add(time.Duration(i) * step).UnixNano()
		})
		if err != nil {
			close(stopSampling)
			<-sampled
			return nil, 0, err
		}
		allAsleep := time.Now()
		runtime.GC()
		asleep := sampleMem()
		fmt.Fprintf(opts.Progress, "S: %d sleeping after %.1fs; RSS %.0f MiB\n", opts.N+probes, allAsleep.Sub(t0).Seconds(), mib(asleep.rss))

		// Wait for the runs, in due order.
		lags := make([]time.Duration, len(handles))
		var wg sync.WaitGroup
		errs := make(chan error, opts.Starters)
		for s := range opts.Starters {
			wg.Go(func() {
				for i := s; i < len(handles); i += opts.Starters {
					w, err := handles[i].Result(ctx)
					if err != nil {
						errs <- err
						return
					}
					lags[i] = w.Woke.Sub(w.Due)
				}
			})
		}
		wg.Wait()
		close(stopSampling)
		<-sampled
		close(errs)
		if err := <-errs; err != nil {
			return nil, 0, err
		}

		// Memory while all slept: from allAsleep to the first due time.
		var lo, hi memSample
		for _, s := range samples {
			if s.at.Before(allAsleep) || s.at.After(first) {
				continue
			}
			if lo.rss == 0 || s.rss < lo.rss {
				lo = s
			}
			if s.rss > hi.rss {
				hi = s
			}
		}
		extra["sleeping"] = float64(opts.N + probes)
		extra["rss_start_mib"] = mib(base.rss)
		extra["rss_all_asleep_mib"] = mib(asleep.rss)
		extra["rss_asleep_min_mib"] = mib(lo.rss)
		extra["rss_asleep_max_mib"] = mib(hi.rss)
		extra["heap_start_mib"] = mib(int64(base.heap))
		extra["heap_all_asleep_mib"] = mib(int64(asleep.heap))
		extra["start_rate_per_s"] = float64(opts.N) / allAsleep.Sub(t0).Seconds()
		extra["fire_rate_per_s"] = float64(opts.N) / opts.Spread.Seconds()
		if allAsleep.After(first) {
			extra["start_overran_s"] = allAsleep.Sub(first).Seconds()
		}
		return lags, opts.N + probes, nil
	})
	if err == nil {
		r.Extra = extra
	}
	return r, err
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// startSleepers starts n SleepUntil workflows from starters concurrent
// callers; due gives the i-th one's due time.
func (env *Env) startSleepers(ctx context.Context, n, starters int, prefix string, due func(i int) int64) ([]*durable.Handle[Wake], error) {
	handles := make([]*durable.Handle[Wake], n)
	var wg sync.WaitGroup
	errs := make(chan error, starters)
	for s := range starters {
		wg.Go(func() {
			for i := s; i < n; i += starters {
				h, err := SleepUntil.Start(ctx, env.Engine, due(i), &durable.StartOptions{ID: fmt.Sprintf("%s-%d", prefix, i)})
				if err != nil {
					errs <- err
					return
				}
				handles[i] = h
			}
		})
	}
	wg.Wait()
	close(errs)
	return handles, <-errs
}
