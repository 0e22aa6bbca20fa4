package durable_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
)

var resultGo = durable.NewSignal[string]("go")

// waitsForGo returns the first "go" signal it receives.
var waitsForGo = durable.NewWorkflow("waits-for-go", func(ctx durable.Context, _ struct{}) (string, error) {
	return resultGo.Receive(ctx)
})

// TestResultAfterTerminateHereReturnsAtOnce checks that a run terminated
// from this process leaves the cache, so that Result reads it at once
// rather than waiting for a close that will not be committed here.
func TestResultAfterTerminateHereReturnsAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{
		cfg:  &durable.Config{PollInterval: time.Hour},
		defs: []durable.Definition{waitsForGo},
	})
	ctx, cancel := context.WithTimeout(testContext(t), 20*time.Second)
	defer cancel()

	h, err := waitsForGo.Start(ctx, b.e, struct{}{}, nil)
	require.NoError(t, err)
	require.NoError(t, b.e.Terminate(ctx, h.WorkflowID(), "test"))
	_, err = h.Result(ctx)
	require.ErrorIs(t, err, durable.ErrTerminated)
}

// TestResultOfARunClosedElsewhere checks the other side: a run cached
// here but terminated by another engine on the same store is still
// reported, once Result reads it after Config.PollInterval.
func TestResultOfARunClosedElsewhere(t *testing.T) {
	t.Parallel()
	db := sqliteDB(t)
	b := setup(t, setupOpts{
		db:   db,
		cfg:  &durable.Config{PollInterval: 100 * time.Millisecond},
		defs: []durable.Definition{waitsForGo},
	})
	other := setup(t, setupOpts{db: db, defs: []durable.Definition{waitsForGo}, noStart: true})
	ctx, cancel := context.WithTimeout(testContext(t), 20*time.Second)
	defer cancel()

	h, err := waitsForGo.Start(ctx, b.e, struct{}{}, nil)
	require.NoError(t, err)
	require.NoError(t, other.e.Terminate(ctx, h.WorkflowID(), "elsewhere"))
	_, err = h.Result(ctx)
	require.ErrorIs(t, err, durable.ErrTerminated)
}
