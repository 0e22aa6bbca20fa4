package durable_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
)

func TestDeadlockFailsTheTaskNotTheWorker(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	stuck := durable.NewWorkflow("stuck", func(ctx durable.Context, _ string) (string, error) {
		<-release // a real channel: never do this in workflow code
		return "unreachable", nil
	})
	fine := durable.NewWorkflow("fine", func(ctx durable.Context, _ string) (string, error) {
		return "ok", nil
	})
	b := setup(t, setupOpts{
		cfg:  &durable.Config{DeadlockTimeout: 100 * time.Millisecond},
		defs: []durable.Definition{stuck, fine},
	})
	t.Cleanup(func() { close(release) }) // let the abandoned goroutine exit (goleak)
	ctx := testContext(t)

	h, err := stuck.Start(ctx, b.e, "", &durable.StartOptions{ID: "stuck"})
	require.NoError(t, err)
	waitFor(t, "the deadlock to be reported", func() bool {
		info, err := b.e.DescribeRun(ctx, h.RunID())
		require.NoError(t, err)
		return info.LastTaskFailure != ""
	})
	info, err := b.e.DescribeRun(ctx, h.RunID())
	require.NoError(t, err)
	require.Contains(t, info.LastTaskFailure, `workflow coroutine "main" did not yield within 100ms`)
	require.Contains(t, info.LastTaskFailure, "time.Sleep, a mutex, a channel or I/O")
	require.Equal(t, durable.StatusRunning, info.Status, "blocked by default, waiting for fixed code")

	// The worker is unharmed.
	out, err := fine.Run(ctx, b.e, "", nil)
	require.NoError(t, err)
	require.Equal(t, "ok", out)
	require.NoError(t, b.e.Terminate(ctx, "stuck", "test over"))
}
