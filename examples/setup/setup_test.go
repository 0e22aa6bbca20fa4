package setup_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/examples/setup"
	"github.com/keelhq/keel/examples/setup/setuptest"
	"github.com/keelhq/keel/internal/testdb"
	"github.com/keelhq/keel/llm/offline"
	"github.com/keelhq/keel/llm/openai"
	"github.com/keelhq/keel/tools/ticket"
)

// ModelFromEnv picks OpenAI only when OPENAI_API_KEY is set. (t.Setenv
// rules out t.Parallel.)
func TestModelFromEnv(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "")
	m, err := setup.ModelFromEnv()
	require.NoError(t, err)
	require.IsType(t, &offline.Model{}, m)

	t.Setenv("OPENAI_API_KEY", "sk-test")
	t.Setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
	m, err = setup.ModelFromEnv()
	require.NoError(t, err)
	require.IsType(t, &openai.Model{}, m)
}

// Without a Stripe key billing is off and the examples charge nothing;
// the Env reports which model answers.
func TestNewWithoutStripeKey(t *testing.T) {
	t.Setenv("STRIPE_SECRET_KEY", "")
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keel.db")
	st, db, closeDB, err := setup.Open(ctx, path)
	require.NoError(t, err)
	defer closeDB()
	e, err := durable.New(st, nil)
	require.NoError(t, err)
	env, err := setup.New(ctx, e, db, &setup.Config{Model: offline.New(nil)})
	require.NoError(t, err)
	defer env.Close()
	require.NotNil(t, env.Billing)
	require.True(t, env.Billing.Local(), "without a key, charges stay in the local ledger")
	require.Equal(t, "offline", env.ModelKind)
	require.NotNil(t, env.Approvals)
	require.Equal(t, setup.ReviewerGroups(), env.Approvals.Groups())

	// Loading the demo data again changes nothing.
	require.NoError(t, setup.LoadDemoData(ctx, env))
	n, err := env.KB.Count(ctx)
	require.NoError(t, err)
	require.Equal(t, 12, n)
}

// NoDemoData leaves the stores empty.
func TestNewNoDemoData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, db, closeDB, err := setup.Open(ctx, filepath.Join(t.TempDir(), "keel.db"))
	require.NoError(t, err)
	defer closeDB()
	e, err := durable.New(st, nil)
	require.NoError(t, err)
	env, err := setup.New(ctx, e, db, &setup.Config{Model: offline.New(nil), NoBilling: true, NoDemoData: true})
	require.NoError(t, err)
	defer env.Close()
	n, err := env.KB.Count(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = env.Tickets.Get(ctx, "T-1")
	require.ErrorIs(t, err, ticket.ErrNotFound)
}

// An engine and a database are required; task queues are listed once.
func TestNewOptions(t *testing.T) {
	t.Parallel()
	b := setuptest.New(t, &setuptest.Options{NoBilling: true})
	_, err := setup.New(context.Background(), nil, b.DB, nil)
	require.ErrorContains(t, err, "an engine and a database are required")
	_, err = setup.New(context.Background(), b.Engine(), nil, nil)
	require.Error(t, err)

	// Every agent on one engine shares the built-in tools' instances.
	require.NotNil(t, b.Env.Tools.CRMLookup)
	b.Env.AddTaskQueue("legal")
	b.Env.AddTaskQueue("legal")
	require.Equal(t, []string{"default", "legal"}, b.Env.TaskQueues())
}

// Open reaches Postgres by URL, one pool for the store and the
// application tables.
func TestOpenPostgres(t *testing.T) {
	t.Parallel()
	_, url := testdb.PostgresWithURL(t)
	ctx := context.Background()
	st, db, closeDB, err := setup.Open(ctx, url)
	require.NoError(t, err)
	defer closeDB()
	e, err := durable.New(st, nil)
	require.NoError(t, err)
	env, err := setup.New(ctx, e, db, &setup.Config{Model: offline.New(nil), NoBilling: true})
	require.NoError(t, err)
	defer env.Close()
	tk, err := env.Tickets.Get(ctx, "T-1")
	require.NoError(t, err)
	require.Equal(t, "ada@example.com", tk.RequesterEmail)
}
