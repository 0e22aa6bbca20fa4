package durabletest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/durabletest"
)

func ExampleClock() {
	clock := durabletest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	fired := clock.After(72 * time.Hour)
	clock.Advance(72 * time.Hour)
	fmt.Println((<-fired).Format(time.DateOnly))
	// Output: 2026-01-04
}

// A workflow that sleeps for three days completes as soon as it runs: while
// the test waits for the result, the Env moves the fake clock to the timer.
func ExampleNewEnv() {
	t := newExampleT() // in a test, the test's *testing.T
	defer t.finish()

	reminder := durable.NewWorkflow("reminder", func(ctx durable.Context, to string) (string, error) {
		sent := durable.Now(ctx)
		if err := durable.Sleep(ctx, 72*time.Hour); err != nil {
			return "", err
		}
		return fmt.Sprintf("reminded %s %s after the first email", to, durable.Now(ctx).Sub(sent)), nil
	})

	env := durabletest.NewEnv(t, nil)
	env.Register(t, reminder)
	out, err := durabletest.Run(t, env, reminder, "ada@example.com", nil)
	fmt.Println(out, err)
	fmt.Println("clock:", env.Clock.Now().Format(time.DateTime))
	// Output:
	// reminded ada@example.com 72h0m0s after the first email <nil>
	// clock: 2026-01-04 00:00:00
}

// An activity that would call a payment provider is replaced by a stub for
// the test; the workflow code is unchanged. The stub fails once, and the
// retry (one second of backoff, skipped) succeeds.
func ExampleStubActivity() {
	t := newExampleT() // in a test, the test's *testing.T
	defer t.finish()

	charge := durable.NewActivity("charge", func(ctx context.Context, cents int) (string, error) {
		return "", errors.New("would call the payment provider")
	}, nil)
	checkout := durable.NewWorkflow("checkout", func(ctx durable.Context, cents int) (string, error) {
		return charge.Run(ctx, cents)
	})

	env := durabletest.NewEnv(t, nil)
	stub := durabletest.StubActivity(t, env, charge, func(ctx context.Context, cents int) (string, error) {
		if info, _ := durable.GetActivityInfo(ctx); info.Attempt == 1 {
			return "", errors.New("card network busy")
		}
		return fmt.Sprintf("charged %d cents", cents), nil
	})
	env.Register(t, charge, checkout) // charge keeps its stub

	h := durabletest.Start(t, env, checkout, 1299, nil)
	out, err := durabletest.Result(t, env, h)
	fmt.Println(out, err)
	fmt.Println("attempts:", stub.Calls())
	durabletest.AssertActivityCalled(t, env.History(t, h.RunID()), "charge", 1) // scheduled once, retried inside
	// Output:
	// charged 1299 cents <nil>
	// attempts: 2
}

// exampleT stands in for the *testing.T of a test in these examples.
type exampleT struct {
	testing.TB
	cleanups []func()
}

func newExampleT() *exampleT { return &exampleT{} }

func (t *exampleT) Helper()                           {}
func (t *exampleT) Cleanup(f func())                  { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) Log(args ...any)                   {}
func (t *exampleT) Errorf(format string, args ...any) { fmt.Printf("error: "+format+"\n", args...) }
func (t *exampleT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

func (t *exampleT) TempDir() string {
	dir, err := os.MkdirTemp("", "durabletest-example-")
	if err != nil {
		panic(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// finish runs the cleanups, last registered first, as a test's end does.
func (t *exampleT) finish() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
