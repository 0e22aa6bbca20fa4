package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// RetryPolicy says how a failed activity attempt is retried. Zero fields take
// the defaults given.
//
// The error itself can also decide: an error (or one it wraps) with a
// method NonRetryable() bool that returns true is not retried, and one with
// a method RetryAfter() time.Duration (a rate limit's Retry-After) waits at
// least that long before the next attempt.
type RetryPolicy struct {
	// InitialInterval is the delay before the second attempt. Optional;
	// default 1s.
	InitialInterval time.Duration `json:"initial_interval,omitempty"`
	// BackoffCoefficient multiplies the delay after each attempt. Optional;
	// default 2.
	BackoffCoefficient float64 `json:"backoff_coefficient,omitempty"`
	// MaximumInterval caps the delay. Optional; default 100 ×
	// InitialInterval.
	MaximumInterval time.Duration `json:"maximum_interval,omitempty"`
	// MaximumAttempts stops retrying after that many attempts. Optional;
	// default 0, unlimited (bounded by ScheduleToCloseTimeout).
	MaximumAttempts int `json:"maximum_attempts,omitempty"`
	// NonRetryableErrorTypes lists error type names (ApplicationError.Type,
	// or the Go type such as "*fs.PathError") that are never retried.
	NonRetryableErrorTypes []string `json:"non_retryable_error_types,omitempty"`
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.InitialInterval <= 0 {
		p.InitialInterval = time.Second
	}
	if p.BackoffCoefficient < 1 {
		p.BackoffCoefficient = 2
	}
	if p.MaximumInterval <= 0 {
		p.MaximumInterval = 100 * p.InitialInterval
	}
	return p
}

// delay returns the wait after the given failed attempt (1-based).
func (p RetryPolicy) delay(attempt int) time.Duration {
	p = p.withDefaults()
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.InitialInterval,
		Multiplier:          p.BackoffCoefficient,
		MaxInterval:         p.MaximumInterval,
		RandomizationFactor: 0,
		MaxElapsedTime:      0,
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.Reset()
	d := b.NextBackOff()
	for i := 1; i < attempt; i++ {
		d = b.NextBackOff()
	}
	return d
}

// retryable reports whether f may be retried after the given attempt.
func (p RetryPolicy) retryable(f *failure, attempt int) bool {
	if f.NonRetryable {
		return false
	}
	if p.MaximumAttempts > 0 && attempt >= p.MaximumAttempts {
		return false
	}
	for _, t := range p.NonRetryableErrorTypes {
		if t == f.Type {
			return false
		}
	}
	return true
}

// ActivityOptions configure how an activity is scheduled and retried.
type ActivityOptions struct {
	// TaskQueue is where the activity runs. Optional; default the run's task
	// queue.
	TaskQueue string
	// ScheduleToStartTimeout bounds the wait in the queue; it is not
	// retried. Optional; default none.
	ScheduleToStartTimeout time.Duration
	// StartToCloseTimeout bounds one attempt; an attempt that exceeds it
	// (for example because its worker died) is retried. Optional; default
	// 10 minutes.
	StartToCloseTimeout time.Duration
	// ScheduleToCloseTimeout bounds all attempts together. Optional; default
	// none.
	ScheduleToCloseTimeout time.Duration
	// HeartbeatTimeout fails an attempt that does not heartbeat for that
	// long. Optional; default none.
	HeartbeatTimeout time.Duration
	// RetryPolicy. Optional; see RetryPolicy for defaults.
	RetryPolicy RetryPolicy
	// CancellationType applies when the run is canceled while the activity
	// runs: TryCancel (the default) asks it to cancel, through its next
	// Heartbeat, and returns ErrCanceled at once; WaitCancellationCompleted
	// asks and waits for its outcome; Abandon does not ask.
	CancellationType CancellationType
}

func (o ActivityOptions) merge(over *ActivityOptions) ActivityOptions {
	if over == nil {
		return o
	}
	if over.TaskQueue != "" {
		o.TaskQueue = over.TaskQueue
	}
	if over.ScheduleToStartTimeout != 0 {
		o.ScheduleToStartTimeout = over.ScheduleToStartTimeout
	}
	if over.StartToCloseTimeout != 0 {
		o.StartToCloseTimeout = over.StartToCloseTimeout
	}
	if over.ScheduleToCloseTimeout != 0 {
		o.ScheduleToCloseTimeout = over.ScheduleToCloseTimeout
	}
	if over.HeartbeatTimeout != 0 {
		o.HeartbeatTimeout = over.HeartbeatTimeout
	}
	if !isZeroPolicy(over.RetryPolicy) {
		o.RetryPolicy = over.RetryPolicy
	}
	if over.CancellationType != 0 {
		o.CancellationType = over.CancellationType
	}
	return o
}

func isZeroPolicy(p RetryPolicy) bool {
	return p.InitialInterval == 0 && p.BackoffCoefficient == 0 && p.MaximumInterval == 0 &&
		p.MaximumAttempts == 0 && len(p.NonRetryableErrorTypes) == 0
}

// Activity is a registered activity: a step with side effects that runs
// outside the workflow, at least once, and whose result is recorded exactly
// once.
type Activity[In, Out any] struct {
	name string
	fn   func(context.Context, In) (Out, error)
	opts ActivityOptions
}

// NewActivity defines an activity. opts (may be nil) are its defaults; a call
// can override them with StartWithOptions.
func NewActivity[In, Out any](name string, fn func(ctx context.Context, in In) (Out, error), opts *ActivityOptions) *Activity[In, Out] {
	a := &Activity[In, Out]{name: name, fn: fn}
	if opts != nil {
		a.opts = *opts
	}
	return a
}

// Name returns the activity's registered name.
func (a *Activity[In, Out]) Name() string { return a.name }

// Run schedules the activity and waits for its result.
func (a *Activity[In, Out]) Run(ctx Context, in In) (Out, error) {
	return a.Start(ctx, in).Get(ctx)
}

// Start schedules the activity and returns its future.
func (a *Activity[In, Out]) Start(ctx Context, in In) *Future[Out] {
	return a.StartWithOptions(ctx, in, nil)
}

// StartWithOptions schedules the activity with opts overriding its defaults.
func (a *Activity[In, Out]) StartWithOptions(ctx Context, in In, opts *ActivityOptions) *Future[Out] {
	rs := stateOf(ctx)
	f := &Future[Out]{rs: rs}
	var zero Out
	input, err := rs.e.encode(in)
	if err != nil {
		f.set(zero, fmt.Errorf("activity %s: %w", a.name, err))
		return f
	}
	if canceled(ctx) {
		f.set(zero, ErrCanceled)
		return f
	}
	o := a.opts.merge(opts)
	if o.TaskQueue == "" {
		o.TaskQueue = rs.info.TaskQueue
	}
	if o.StartToCloseTimeout == 0 {
		o.StartToCloseTimeout = 10 * time.Minute
	}
	seq := rs.scheduleActivity(a.name, input, o)
	switch {
	case isDetached(ctx):
		rs.activityCancel[seq] = detachedOp
	case o.CancellationType != 0 && o.CancellationType != TryCancel:
		rs.activityCancel[seq] = o.CancellationType
	}
	rs.pendingActivities[seq] = func(result []byte, fl *failure, attempt int) {
		if fl != nil {
			cause := fl.toError()
			if errors.Is(cause, ErrCanceled) {
				f.set(zero, ErrCanceled)
				return
			}
			f.set(zero, &ActivityError{ActivityType: a.name, Seq: seq, Attempt: attempt, Cause: cause})
			return
		}
		v, err := decode[Out](result)
		f.set(v, err)
	}
	return f
}

func (a *Activity[In, Out]) registration() registration {
	return registration{activity: &activityDef{
		name: a.name,
		run: func(ctx context.Context, input []byte) ([]byte, error) {
			in, err := decode[In](input)
			if err != nil {
				return nil, NonRetryable(err)
			}
			out, err := a.fn(ctx, in)
			if err != nil {
				return nil, err
			}
			b, err := json.Marshal(out)
			if err != nil {
				return nil, NonRetryable(fmt.Errorf("durable: encode result of activity %s: %w", a.name, err))
			}
			return b, nil
		},
	}}
}

type activityDef struct {
	name string
	run  func(ctx context.Context, input []byte) ([]byte, error)
}

// ActivityInfo describes the running activity attempt.
type ActivityInfo struct {
	WorkflowID   string
	RunID        string
	ActivityType string
	Seq          int64
	Attempt      int
	// IdempotencyKey is the same on every attempt of this activity in this
	// run: pass it to external APIs that accept one (Stripe's
	// Idempotency-Key) so that a retried attempt does not act twice.
	IdempotencyKey string
	ScheduledAt    time.Time
	StartedAt      time.Time
	// HeartbeatDetails are the last details recorded by Heartbeat, by this
	// or an earlier attempt.
	HeartbeatDetails []byte
	// HeartbeatTimeout is the activity's: an attempt that does not call
	// Heartbeat that often is taken for dead. Zero when it has none.
	HeartbeatTimeout time.Duration
}

type activityKey struct{}

type activityCtx struct {
	info   ActivityInfo
	e      *Engine
	token  string
	cancel context.CancelFunc
	// runCanceled is set (under Engine.mu) when a heartbeat learns that the
	// run asked to cancel the activity.
	runCanceled bool
}

// GetActivityInfo returns the info of the activity running with ctx; ok is
// false outside an activity.
func GetActivityInfo(ctx context.Context) (ActivityInfo, bool) {
	ac, ok := ctx.Value(activityKey{}).(*activityCtx)
	if !ok {
		return ActivityInfo{}, false
	}
	return ac.info, true
}

// HeartbeatDetails decodes the details of the latest heartbeat, from this or
// an earlier attempt; ok is false when there are none.
func HeartbeatDetails[T any](ctx context.Context) (v T, ok bool, err error) {
	ac, isAct := ctx.Value(activityKey{}).(*activityCtx)
	if !isAct || len(ac.info.HeartbeatDetails) == 0 {
		return v, false, nil
	}
	v, err = decode[T](ac.info.HeartbeatDetails)
	return v, err == nil, err
}

// Heartbeat records that the activity is alive, with details (may be nil)
// that a later attempt can read. It extends the attempt's heartbeat timeout.
// When the run asked to cancel the activity, ctx is canceled and Heartbeat
// returns ErrCanceled.
func Heartbeat(ctx context.Context, details any) error {
	ac, ok := ctx.Value(activityKey{}).(*activityCtx)
	if !ok {
		return errors.New("durable: Heartbeat called outside an activity")
	}
	return ac.e.heartbeat(ctx, ac, details)
}
