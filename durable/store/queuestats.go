package store

import "time"

// QueueStat describes the tasks of one task queue at a moment: how many
// wait to be claimed, how many are being worked on, and since when the
// oldest waiting one has been ready.
type QueueStat struct {
	TaskQueue string
	// Kind is "workflow" or "activity".
	Kind string
	// Ready counts the tasks claimable now; Leased the tasks held by a
	// worker.
	Ready, Leased int64
	// OldestReady is when the longest-waiting ready task became ready;
	// zero when none is ready.
	OldestReady time.Time
}
