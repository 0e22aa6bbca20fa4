//go:build !race

package scaletest

// The counts. The race detector slows everything several times
// over, so counts_race_test.go scales them down; CI runs both.
const (
	scaleWorkflows   = 2000  // TestScaleOutWorkerKills
	claimTasks       = 20000 // TestClaimRace
	restartWorkflows = 500   // TestDatabaseRestart
	startRaceRounds  = 20    // TestSameIDStartRace: workflow IDs raced for
)
