// Package crashtest kills a test's child process around an HTTP call and
// runs the child again to resume what it was doing, as a machine that loses
// power mid-call and restarts would.
//
// The child is the test binary itself. TestMain hands the process to the
// helper when the child's environment says so:
//
//	func TestMain(m *testing.M) {
//		if os.Getenv(crashHelperEnv) != "" {
//			os.Exit(crashtest.HelperMain(time.Minute, crashHelper))
//		}
//		goleak.VerifyTestMain(m)
//	}
//
// The helper runs its workflow on StartEngine's engine, over a SQLite file
// both children open, and makes its calls through a KillingTransport, which
// SIGKILLs the process before a chosen request is sent or once its response
// has arrived. The test runs the helper with RequireKilled, checks what the
// remote side and the database hold, then runs it again without the kill
// with RequireSuccess:
//
//	out := crashtest.RequireKilled(t, crashHelperEnv+"=1", "KEEL_X_MODE=after-accept")
//	...
//	out = crashtest.RequireSuccess(t, crashHelperEnv+"=1")
//
// SIGKILL leaves no chance to clean up: no deferred call runs and no buffer
// is flushed. The package is built on Unix systems only.
package crashtest
