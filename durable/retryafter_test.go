package durable_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
)

// rateLimited is an error as an API client reports a 429: it says how long
// to wait.
type rateLimited struct{ wait time.Duration }

func (e *rateLimited) Error() string             { return "rate limited" }
func (e *rateLimited) RetryAfter() time.Duration { return e.wait }
func (e *rateLimited) NonRetryable() bool        { return false }

// badRequest is an error that knows retrying cannot help.
type badRequest struct{}

func (badRequest) Error() string      { return "bad request" }
func (badRequest) NonRetryable() bool { return true }
func (badRequest) ErrorType() string  { return "api.bad_request" }

func TestErrorsChooseRetryDelayAndRetryability(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, db opener) {
		var limited atomic.Int32
		call := durable.NewActivity("call", func(ctx context.Context, _ string) (string, error) {
			if limited.Add(1) <= 2 {
				return "", &rateLimited{wait: 400 * time.Millisecond}
			}
			return "ok", nil
		}, &durable.ActivityOptions{RetryPolicy: durable.RetryPolicy{InitialInterval: 5 * time.Millisecond}})
		var refused atomic.Int32
		refuse := durable.NewActivity("refuse", func(ctx context.Context, _ string) (string, error) {
			refused.Add(1)
			return "", badRequest{}
		}, &durable.ActivityOptions{RetryPolicy: durable.RetryPolicy{InitialInterval: 5 * time.Millisecond}})
		wf := durable.NewWorkflow("retry-after", func(ctx durable.Context, which string) (string, error) {
			if which == "refuse" {
				return refuse.Run(ctx, "")
			}
			return call.Run(ctx, "")
		})
		b := setup(t, setupOpts{db: db, defs: []durable.Definition{call, refuse, wf}})
		ctx := testContext(t)

		h, err := wf.Start(ctx, b.e, "call", nil)
		require.NoError(t, err)
		out, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, "ok", out)
		atts, err := b.e.ActivityAttempts(ctx, h.RunID())
		require.NoError(t, err)
		require.Len(t, atts, 3)
		for i := range 2 {
			require.Equal(t, "rate limited", atts[i].Error)
			require.GreaterOrEqual(t, atts[i+1].StartedAt.Sub(atts[i].EndedAt), 400*time.Millisecond,
				"the error's Retry-After, not the policy's 5ms, spaces attempt %d", i+2)
		}

		h, err = wf.Start(ctx, b.e, "refuse", nil)
		require.NoError(t, err)
		_, err = h.Result(ctx)
		require.ErrorContains(t, err, "bad request")
		require.Equal(t, int32(1), refused.Load())
		// The error named its own type for the stored failure.
		var ae *durable.ApplicationError
		require.ErrorAs(t, err, &ae)
		require.NotNil(t, ae.Cause)
		require.Equal(t, "api.bad_request", ae.Cause.Type)
	})
}
