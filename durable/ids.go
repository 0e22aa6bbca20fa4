package durable

import "github.com/google/uuid"

// newRunID returns a new run ID, which also serves as the default
// workflow ID.
//
// It is a UUID of version 7: 48 bits of Unix milliseconds, then 74
// random bits (google/uuid keeps the IDs one process draws in a
// millisecond increasing). IDs drawn later sort later, so the store
// indexes keyed by run ID (the run's row, its history, its tasks and
// attempts) take new keys at their right edge, where the runs in flight
// share a few pages, instead of scattering each run's writes over the
// whole index as random IDs would. Nothing relies on the order: an ID is
// still opaque and unique.
func newRunID() string {
	// NewV7 fails only when the system's random source does, when
	// uuid.NewString panics as well.
	return uuid.Must(uuid.NewV7()).String()
}
