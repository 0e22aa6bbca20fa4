package durable

import (
	"container/list"
	"sync"
)

// runCache keeps live runs between workflow tasks, least recently used
// first out. A run is taken out while a task works on it, so that at most one
// task uses it. An evicted run's coroutines are unwound: a waiting run that
// is not cached holds no goroutine, and replays from history when its next
// task comes.
type runCache struct {
	mu         sync.Mutex
	size       int
	ll         *list.List
	items      map[string]*list.Element
	byWorkflow map[string]string // workflow ID → run ID of the last run of it cached
}

func newRunCache(size int) *runCache {
	return &runCache{size: size, ll: list.New(), items: map[string]*list.Element{}, byWorkflow: map[string]string{}}
}

// take removes and returns the cached run, or nil.
func (c *runCache) take(runID string) *runState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remove(runID)
}

// takeWorkflow removes and returns the cached run of a workflow ID, or nil.
func (c *runCache) takeWorkflow(workflowID string) *runState {
	c.mu.Lock()
	defer c.mu.Unlock()
	runID, ok := c.byWorkflow[workflowID]
	if !ok {
		return nil
	}
	return c.remove(runID)
}

// remove removes and returns a cached run, or nil; c.mu is held.
func (c *runCache) remove(runID string) *runState {
	el, ok := c.items[runID]
	if !ok {
		return nil
	}
	c.ll.Remove(el)
	delete(c.items, runID)
	rs := el.Value.(*runState)
	if c.byWorkflow[rs.info.WorkflowID] == runID {
		delete(c.byWorkflow, rs.info.WorkflowID)
	}
	return rs
}

// put caches a run, evicting the least recently used beyond the size.
func (c *runCache) put(rs *runState) {
	if c.size <= 0 {
		rs.close()
		return
	}
	var evicted []*runState
	c.mu.Lock()
	if old := c.remove(rs.info.RunID); old != nil {
		evicted = append(evicted, old)
	}
	c.items[rs.info.RunID] = c.ll.PushFront(rs)
	c.byWorkflow[rs.info.WorkflowID] = rs.info.RunID
	for c.ll.Len() > c.size {
		evicted = append(evicted, c.remove(c.ll.Back().Value.(*runState).info.RunID))
	}
	c.mu.Unlock()
	for _, old := range evicted {
		old.close()
	}
}

// queueOf returns the task queue of a cached run.
func (c *runCache) queueOf(runID string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[runID]
	if !ok {
		return "", false
	}
	return el.Value.(*runState).info.TaskQueue, true
}

// len returns the number of cached runs.
func (c *runCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// purge evicts every run.
func (c *runCache) purge() {
	c.mu.Lock()
	var all []*runState
	for _, el := range c.items {
		all = append(all, el.Value.(*runState))
	}
	c.items = map[string]*list.Element{}
	c.byWorkflow = map[string]string{}
	c.ll.Init()
	c.mu.Unlock()
	for _, rs := range all {
		rs.close()
	}
}
