package reliability_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// childEnv names the child process a test re-executes its own binary as;
// it is unset in the parent.
const childEnv = "KEEL_RELIABILITY_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(childMain(mode))
	}
	goleak.VerifyTestMain(m)
}

// childMain runs the child process of a mode and returns its exit code.
func childMain(mode string) int {
	var err error
	switch mode {
	case "kill-sqlite":
		err = killChildMain()
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "reliability child %s (pid %d): %v\n", mode, os.Getpid(), err)
		return 1
	}
	return 0
}
