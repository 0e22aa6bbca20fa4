package durable

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keelhq/keel/durable/store"
)

// QueueStat describes one task queue's workflow or activity tasks: how
// many wait to be claimed, how many are being worked on, and since when
// the oldest waiting one has been ready (its age is the queue's latency).
type QueueStat = store.QueueStat

// ErrNoQueueStats: the store cannot report queue statistics.
var ErrNoQueueStats = errors.New("durable: the store has no queue statistics")

type queueStatser interface {
	QueueStats(ctx context.Context, now time.Time) ([]store.QueueStat, error)
}

// QueueStats returns the depth of every task queue now, per kind of task:
// for dashboards and alerts (a growing backlog, or an old ready task, means
// too few workers).
func (e *Engine) QueueStats(ctx context.Context) ([]QueueStat, error) {
	qs, ok := e.raw.(queueStatser)
	if !ok {
		return nil, ErrNoQueueStats
	}
	stats, err := qs.QueueStats(ctx, e.clock.Now())
	if err != nil {
		return nil, fmt.Errorf("queue stats: %w", err)
	}
	return stats, nil
}
