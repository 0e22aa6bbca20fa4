//go:build race

package scaletest

// Counts under the race detector, which slows every process several times
// over on a two-core machine; counts_norace_test.go has the counts.
const (
	scaleWorkflows   = 1000
	claimTasks       = 10000
	restartWorkflows = 500
	startRaceRounds  = 20
)
