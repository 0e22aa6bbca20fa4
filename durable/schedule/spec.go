package schedule

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// OverlapPolicy says what a schedule does when an action falls due while
// the run it started last is still running.
type OverlapPolicy string

// Overlap policies.
const (
	// OverlapSkip drops the new action (the default).
	OverlapSkip OverlapPolicy = "skip"
	// OverlapBufferOne starts the new action once the running run closes;
	// while one action is buffered, further ones are dropped.
	OverlapBufferOne OverlapPolicy = "buffer_one"
	// OverlapAllowAll starts the new action at once, next to the running
	// run.
	OverlapAllowAll OverlapPolicy = "allow_all"
	// OverlapCancelOther asks the running run to cancel and starts the new
	// action once it has closed (buffered as with OverlapBufferOne).
	OverlapCancelOther OverlapPolicy = "cancel_other"
	// OverlapTerminateOther terminates the running run and starts the new
	// action at once.
	OverlapTerminateOther OverlapPolicy = "terminate_other"
)

func (p OverlapPolicy) valid() bool {
	switch p {
	case OverlapSkip, OverlapBufferOne, OverlapAllowAll, OverlapCancelOther, OverlapTerminateOther:
		return true
	}
	return false
}

// buffers reports whether the policy waits for the running run to close.
func (p OverlapPolicy) buffers() bool {
	return p == OverlapBufferOne || p == OverlapCancelOther
}

// DefaultCatchupWindow is Spec.CatchupWindow's default.
const DefaultCatchupWindow = time.Minute

// Interval fires every Every, at the instants that are a whole number of
// Every after the Unix epoch plus Offset: Every: time.Hour, Offset:
// 15*time.Minute fires at a quarter past each hour (UTC).
type Interval struct {
	// Every is the period; at least one second.
	Every time.Duration `json:"every"`
	// Offset shifts the fire times; 0 <= Offset < Every. Optional.
	Offset time.Duration `json:"offset,omitempty"`
}

// Spec says when a schedule fires and how it behaves. Its fire times are the
// union of those of every cron expression and every interval, within
// [StartAt, EndAt].
type Spec struct {
	// Cron holds standard five-field cron expressions ("*/5 * * * *",
	// "0 9 * * MON-FRI") or descriptors ("@hourly", "@daily",
	// "@every 90m"). Optional.
	Cron []string `json:"cron,omitempty"`
	// Intervals holds fixed intervals. Optional.
	Intervals []Interval `json:"intervals,omitempty"`
	// TimeZone is the IANA zone the cron expressions are read in
	// ("Europe/Paris"). Optional; default UTC. Workers need the zone
	// database (the tzdata package, or a binary that imports time/tzdata).
	TimeZone string `json:"time_zone,omitempty"`
	// StartAt and EndAt bound the fire times. Optional.
	StartAt time.Time `json:"start_at,omitzero"`
	EndAt   time.Time `json:"end_at,omitzero"`
	// Jitter delays each scheduled action by a pseudo-random amount in
	// [0, Jitter), derived from the schedule ID and the fire time, so many
	// schedules firing at the same instant spread their starts. The
	// action's nominal time (and so its workflow ID) is not changed. Keep it
	// below the interval between fire times. Optional; default none.
	Jitter time.Duration `json:"jitter,omitempty"`
	// CatchupWindow is how late an action may start after its fire time,
	// for example because the workers were down: when the schedule wakes,
	// each missed fire time within the window is acted on (subject to the
	// overlap policy) and older ones are skipped. Optional; default
	// DefaultCatchupWindow (one minute).
	CatchupWindow time.Duration `json:"catchup_window,omitempty"`
	// Overlap applies when an action falls due while the previous one's run
	// is still running. Optional; default OverlapSkip.
	Overlap OverlapPolicy `json:"overlap,omitempty"`
}

// withDefaults returns s with defaults filled in.
func (s Spec) withDefaults() Spec {
	if s.CatchupWindow == 0 {
		s.CatchupWindow = DefaultCatchupWindow
	}
	if s.Overlap == "" {
		s.Overlap = OverlapSkip
	}
	s.Cron = append([]string(nil), s.Cron...)
	s.Intervals = append([]Interval(nil), s.Intervals...)
	return s
}

// compiledSpec is a Spec with its cron expressions parsed.
type compiledSpec struct {
	spec  Spec
	crons []cron.Schedule
	// salt makes the jitter of each schedule differ.
	salt string
}

// compile validates a Spec (with defaults applied) and parses it.
func compile(id string, s Spec) (*compiledSpec, error) {
	if len(s.Cron) == 0 && len(s.Intervals) == 0 {
		return nil, fmt.Errorf("%w: no cron expression and no interval", ErrInvalidSpec)
	}
	c := &compiledSpec{spec: s, salt: id}
	if s.TimeZone != "" {
		if _, err := time.LoadLocation(s.TimeZone); err != nil {
			return nil, fmt.Errorf("%w: time zone %q: %w", ErrInvalidSpec, s.TimeZone, err)
		}
	}
	for _, expr := range s.Cron {
		full := strings.TrimSpace(expr)
		if s.TimeZone != "" && !strings.HasPrefix(full, "TZ=") && !strings.HasPrefix(full, "CRON_TZ=") {
			full = "CRON_TZ=" + s.TimeZone + " " + full
		}
		sched, err := cron.ParseStandard(full)
		if err != nil {
			return nil, fmt.Errorf("%w: cron %q: %w", ErrInvalidSpec, expr, err)
		}
		c.crons = append(c.crons, sched)
	}
	for _, iv := range s.Intervals {
		if iv.Every < time.Second {
			return nil, fmt.Errorf("%w: interval %s is shorter than one second", ErrInvalidSpec, iv.Every)
		}
		if iv.Offset < 0 || iv.Offset >= iv.Every {
			return nil, fmt.Errorf("%w: interval offset %s is not in [0, %s)", ErrInvalidSpec, iv.Offset, iv.Every)
		}
	}
	if !s.StartAt.IsZero() && !s.EndAt.IsZero() && s.EndAt.Before(s.StartAt) {
		return nil, fmt.Errorf("%w: end %s is before start %s", ErrInvalidSpec, s.EndAt, s.StartAt)
	}
	if s.Jitter < 0 {
		return nil, fmt.Errorf("%w: negative jitter %s", ErrInvalidSpec, s.Jitter)
	}
	if s.CatchupWindow < 0 {
		return nil, fmt.Errorf("%w: negative catch-up window %s", ErrInvalidSpec, s.CatchupWindow)
	}
	if s.Overlap != "" && !s.Overlap.valid() {
		return nil, fmt.Errorf("%w: unknown overlap policy %q", ErrInvalidSpec, s.Overlap)
	}
	return c, nil
}

// next returns the first fire time strictly after t, or the zero time if
// there is none (past EndAt, or a cron expression that never matches).
func (c *compiledSpec) next(t time.Time) time.Time {
	if !c.spec.StartAt.IsZero() && t.Before(c.spec.StartAt) {
		t = c.spec.StartAt.Add(-time.Nanosecond)
	}
	var best time.Time
	for _, s := range c.crons {
		if n := s.Next(t); !n.IsZero() && (best.IsZero() || n.Before(best)) {
			best = n
		}
	}
	for _, iv := range c.spec.Intervals {
		if n := nextInterval(iv, t); best.IsZero() || n.Before(best) {
			best = n
		}
	}
	if best.IsZero() || (!c.spec.EndAt.IsZero() && best.After(c.spec.EndAt)) {
		return time.Time{}
	}
	return best.UTC()
}

// nextInterval returns the first instant after t that is Offset past
// a whole number of Every since the Unix epoch.
func nextInterval(iv Interval, t time.Time) time.Time {
	every, off := int64(iv.Every), int64(iv.Offset)
	x := t.UnixNano() - off
	k := x / every
	if x%every != 0 && x < 0 {
		k-- // floor division for instants before the epoch
	}
	return time.Unix(0, (k+1)*every+off).UTC()
}

// jitter returns the delay of the scheduled action at nominal time t.
func (c *compiledSpec) jitter(t time.Time) time.Duration {
	if c.spec.Jitter <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(c.salt))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.UnixNano()))
	h.Write(b[:])
	return time.Duration(h.Sum64() % uint64(c.spec.Jitter))
}
