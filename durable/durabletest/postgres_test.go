package durabletest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/durabletest"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/internal/testdb"
)

// The Env runs on any store with an Idle method; this is pgstore's.
func TestEnvOnPostgres(t *testing.T) {
	t.Parallel()
	st, err := pgstore.New(t.Context(), testdb.Postgres(t), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	env := durabletest.NewEnv(t, &durabletest.EnvOptions{Store: st})

	remind := durable.NewActivity("remind", func(ctx context.Context, to string) (string, error) {
		return "", nil // replaced by the stub
	}, nil)
	reminder := durable.NewWorkflow("reminder", func(ctx durable.Context, to string) (string, error) {
		if err := durable.Sleep(ctx, 3*24*time.Hour); err != nil {
			return "", err
		}
		return remind.Run(ctx, to)
	})
	stub := durabletest.StubActivity(t, env, remind, func(ctx context.Context, to string) (string, error) {
		return "reminded " + to, nil
	})
	env.Register(t, remind, reminder)

	h := durabletest.Start(t, env, reminder, "ada@example.com", nil)
	out, err := durabletest.Result(t, env, h)
	require.NoError(t, err)
	require.Equal(t, "reminded ada@example.com", out)
	require.Equal(t, 1, stub.Calls())
	require.Equal(t, durabletest.DefaultStart.Add(72*time.Hour), env.Clock.Now())
	hist := env.History(t, h.RunID())
	durabletest.AssertActivityCalled(t, hist, "remind", 1)
}
