// Package durabletest helps test code that runs on the durable engine.
//
// # Env
//
// NewEnv starts a real engine for one test: a SQLite file in t.TempDir()
// (or any store passed in EnvOptions), a fake Clock, and workers on the
// "default" task queue and any others listed. It is stopped when the test
// ends. Run, Start, Result and SendSignal drive workflows and return typed
// results:
//
//	env := durabletest.NewEnv(t, nil)
//	env.Register(t, reminder, sendEmail)
//	out, err := durabletest.Run(t, env, reminder, "ada@example.com", nil)
//
// # Time skipping
//
// While a test waits in Run or Result, the Env moves the clock to the next
// timer as soon as every run waits for time: no workflow or activity task
// is running or runnable and nothing is due. A three-day Sleep or a 24-hour
// approval deadline passes in milliseconds, and each timer fires at its own
// time, so durable.Now in the workflow reads what it would in production.
// Outside those waits the clock moves only when the test calls Advance (or
// moves Clock itself), so a test can deliver a signal to a waiting run
// before its deadline: signal first, then wait for the result. Skipping is
// on by default; EnvOptions.DisableTimeSkipping turns it off. It is
// implemented with the store's Idle method (sqlitestore and pgstore).
//
// # Activity stubs
//
// StubActivity replaces an activity's implementation in the Env with a
// function of the same signature; the workflow code is unchanged and still
// schedules the real activity, by name, with its options and retry policy.
// Stub before Register: Register then leaves the stubbed activity out.
//
// # History assertions
//
// Env.History returns a run's decoded history; AssertEventTypes,
// AssertActivityCalled and History's Find, Activities, Signals, Markers and
// Outcome check what the run recorded. Env.ExportHistory writes it in the
// JSON form that durable.Replayer and `keel replay` read, and ReplayFile
// replays such a golden history against the current code.
package durabletest
