//go:build failpoints

package failpoint_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/internal/failpoint"
)

// The tests of this file change the process's configuration: they do not
// run in parallel, and each one leaves no rules behind.

const helperEnv = "KEEL_FAILPOINT_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		// A child process: hit the failpoints named on the command line.
		for _, name := range strings.Fields(os.Getenv(helperEnv)) {
			if err := failpoint.Inject(name); err != nil {
				os.Stdout.WriteString("error " + name + "\n")
				continue
			}
			os.Stdout.WriteString("passed " + name + "\n")
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func configure(t *testing.T, spec string) {
	t.Helper()
	require.NoError(t, failpoint.Configure(spec))
	t.Cleanup(func() { require.NoError(t, failpoint.Configure("")) })
}

func TestInjectErrorAtNthHit(t *testing.T) {
	configure(t, "test.nth.before=error@3;test.every.*=error")
	for i := 1; i <= 5; i++ {
		err := failpoint.Inject("test.nth.before")
		if i == 3 {
			require.ErrorIs(t, err, failpoint.ErrInjected)
			var fe *failpoint.Error
			require.ErrorAs(t, err, &fe)
			require.Equal(t, failpoint.Error{Name: "test.nth.before", Hit: 3}, *fe)
		} else {
			require.NoError(t, err, "hit %d", i)
		}
	}
	require.ErrorIs(t, failpoint.Inject("test.every.before"), failpoint.ErrInjected)
	require.ErrorIs(t, failpoint.Inject("test.every.after"), failpoint.ErrInjected)
	require.NoError(t, failpoint.Inject("test.other.before"))
	require.GreaterOrEqual(t, failpoint.Hits()["test.nth.before"], int64(5))
	require.Equal(t, int64(1), failpoint.Fired()["test.nth.before"])
}

func TestFirstMatchingRuleDecides(t *testing.T) {
	configure(t, "test.first.after=off;test.*.after=ambiguous")
	require.NoError(t, failpoint.Inject("test.first.after"))
	err := failpoint.Inject("test.second.after")
	require.ErrorIs(t, err, failpoint.ErrAmbiguous)
	require.ErrorIs(t, err, failpoint.ErrInjected)
}

func TestPercentTriggersAboutThatShare(t *testing.T) {
	configure(t, "test.pct.after=ambiguous%10")
	n := 0
	for range 20000 {
		if failpoint.Inject("test.pct.after") != nil {
			n++
		}
	}
	// 10% of 20,000 is 2,000 with a standard deviation of about 42.
	require.InDelta(t, 2000, n, 300)

	configure(t, "test.pct.after=ambiguous%100")
	require.ErrorIs(t, failpoint.Inject("test.pct.after"), failpoint.ErrAmbiguous)
}

func TestConfigureRefusesBadSpecAndKeepsRules(t *testing.T) {
	configure(t, "test.keep.before=error")
	require.ErrorIs(t, failpoint.Configure("test.keep.before=ambiguous"), failpoint.ErrInvalidSpec)
	require.ErrorIs(t, failpoint.Inject("test.keep.before"), failpoint.ErrInjected)
}

func runHelper(t *testing.T, env []string, names ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, helperEnv+"="+strings.Join(names, " "))...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func TestKillAtNthHitAndLogNames(t *testing.T) {
	t.Parallel()
	logPath := filepath.Join(t.TempDir(), "names.log")
	stdout, stderr, err := runHelper(t,
		[]string{failpoint.EnvSpec + "=test.kill.after=kill@2", failpoint.EnvLog + "=" + logPath},
		"test.a.before", "test.kill.after", "test.a.before", "test.kill.after", "test.never.before")
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, stdout+stderr)
	require.Equal(t, "signal: killed", ee.Error())
	require.Equal(t, "passed test.a.before\npassed test.kill.after\npassed test.a.before\n", stdout)
	require.Contains(t, stderr, "failpoint: kill at test.kill.after (hit 2)")

	// Each name once, in the order of first hits; the kill left what was
	// written.
	f, err := os.Open(logPath)
	require.NoError(t, err)
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		names = append(names, sc.Text())
	}
	require.Equal(t, []string{"test.a.before", "test.kill.after"}, names)
}

func TestBadEnvironmentStopsTheProcess(t *testing.T) {
	t.Parallel()
	_, stderr, err := runHelper(t, []string{failpoint.EnvSpec + "=test.x.before=ambiguous"}, "test.x.before")
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 2, ee.ExitCode())
	require.Contains(t, stderr, "ambiguous applies only to .after failpoints")
}
