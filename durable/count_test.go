package durable_test

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/keelhq/keel/durable/store"
)

// countingStore counts the store calls that write (each one transaction),
// so benchmarks can report transactions per workflow as counted, not
// estimated.
type countingStore struct {
	store.Store
	writes atomic.Int64
}

func (c *countingStore) CreateRun(ctx context.Context, p store.CreateRunParams) (store.CreateRunResult, error) {
	c.writes.Add(1)
	return c.Store.CreateRun(ctx, p)
}

func (c *countingStore) ClaimWorkflowTasks(ctx context.Context, p store.ClaimParams) ([]store.WorkflowTask, error) {
	ts, err := c.Store.ClaimWorkflowTasks(ctx, p)
	if len(ts) > 0 {
		c.writes.Add(1)
	}
	return ts, err
}

func (c *countingStore) CompleteWorkflowTask(ctx context.Context, p store.CompleteWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	c.writes.Add(1)
	return c.Store.CompleteWorkflowTask(ctx, p)
}

func (c *countingStore) ClaimActivityTasks(ctx context.Context, p store.ClaimParams) ([]store.ActivityTask, error) {
	ts, err := c.Store.ClaimActivityTasks(ctx, p)
	if len(ts) > 0 {
		c.writes.Add(1)
	}
	return ts, err
}

func (c *countingStore) CompleteActivityTask(ctx context.Context, p store.CompleteActivityTaskParams) (store.CompleteActivityTaskResult, error) {
	c.writes.Add(1)
	return c.Store.CompleteActivityTask(ctx, p)
}

func (c *countingStore) CompleteActivityWithWorkflowTask(ctx context.Context, p store.CompleteActivityWithWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	c.writes.Add(1)
	return c.Store.CompleteActivityWithWorkflowTask(ctx, p)
}

func (c *countingStore) Signal(ctx context.Context, p store.SignalParams) (store.Run, error) {
	c.writes.Add(1)
	return c.Store.Signal(ctx, p)
}

func (c *countingStore) FireTimers(ctx context.Context, now time.Time, limit int) ([]string, error) {
	qs, err := c.Store.FireTimers(ctx, now, limit)
	if len(qs) > 0 {
		c.writes.Add(1)
	}
	return qs, err
}
