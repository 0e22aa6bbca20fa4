package durable

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/keelhq/keel/durable/store"
)

// writeRetryLimit bounds how long a worker keeps retrying a store write that
// failed for a transient reason (a lost connection, a database restart).
const writeRetryLimit = 30 * time.Second

// retryWrite runs op until it succeeds, fails with an error that retrying
// cannot fix (a fence, a closed or missing run), or writeRetryLimit passes.
// A write whose commit succeeded but whose answer was lost fails its retry
// with store.ErrLeaseLost, which the caller treats like any lost lease.
func (e *Engine) retryWrite(ctx context.Context, what string, op func() error) error {
	b := backoff.WithContext(&backoff.ExponentialBackOff{
		InitialInterval:     50 * time.Millisecond,
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         2 * time.Second,
		MaxElapsedTime:      writeRetryLimit,
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}, ctx)
	return backoff.RetryNotify(func() error {
		err := op()
		if err != nil && isFinalStoreError(err) {
			return backoff.Permanent(err)
		}
		return err
	}, b, func(err error, next time.Duration) {
		e.logger.Warn("store write failed; retrying", "write", what, "error", err, "retry_in", next)
	})
}

func isFinalStoreError(err error) bool {
	return errors.Is(err, store.ErrLeaseLost) || errors.Is(err, store.ErrRunClosed) || errors.Is(err, store.ErrRunBusy) || errors.Is(err, store.ErrInboxPending) ||
		errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrWorkflowIDInUse) ||
		errors.Is(err, context.Canceled)
}
