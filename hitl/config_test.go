package hitl_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/internal/hitltest"
)

func newEngine(t *testing.T) (*durable.Engine, *appdb.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keel.db")
	st, err := sqlitestore.Open(path, nil)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	db, err := appdb.Open(context.Background(), path)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	e, err := durable.New(st, nil)
	require.NoError(t, err)
	return e, db
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	e, db := newEngine(t)
	ctx := context.Background()
	cases := map[string]struct {
		cfg  hitl.Config
		want error
	}{
		"short secret":  {hitl.Config{Groups: testGroups(), LinkSecret: []byte("too short")}, hitl.ErrLinkSecret},
		"no groups":     {hitl.Config{LinkSecret: []byte(testSecret)}, hitl.ErrInvalidConfig},
		"empty group":   {hitl.Config{Groups: hitl.Groups{"legal": {}}, LinkSecret: []byte(testSecret)}, hitl.ErrInvalidConfig},
		"blank member":  {hitl.Config{Groups: hitl.Groups{"legal": {""}}, LinkSecret: []byte(testSecret)}, hitl.ErrInvalidConfig},
		"double member": {hitl.Config{Groups: hitl.Groups{"legal": {"lena", "lena"}}, LinkSecret: []byte(testSecret)}, hitl.ErrInvalidConfig},
	}
	for name, c := range cases {
		_, err := hitl.New(ctx, db, e, &c.cfg)
		require.ErrorIs(t, err, c.want, name)
	}
	require.ErrorIs(t, hitl.ErrLinkSecret, hitl.ErrInvalidConfig)
	_, err := hitl.New(ctx, nil, e, &hitl.Config{Groups: testGroups(), LinkSecret: []byte(testSecret)})
	require.ErrorIs(t, err, hitl.ErrInvalidConfig)

	// Registering twice on one engine is refused.
	_, err = hitl.New(ctx, db, e, &hitl.Config{Groups: testGroups(), LinkSecret: []byte(testSecret)})
	require.NoError(t, err)
	_, err = hitl.New(ctx, db, e, &hitl.Config{Groups: testGroups(), LinkSecret: []byte(testSecret)})
	require.ErrorIs(t, err, durable.ErrAlreadyRegistered)
}

// The link secret comes from KEEL_LINK_SECRET when the Config has none.
// Not parallel: it sets an environment variable.
func TestLinkSecretFromEnv(t *testing.T) { //nolint:paralleltest // t.Setenv
	e, db := newEngine(t)
	t.Setenv(hitl.LinkSecretEnv, "")
	_, err := hitl.New(context.Background(), db, e, &hitl.Config{Groups: testGroups()})
	require.ErrorIs(t, err, hitl.ErrLinkSecret)

	t.Setenv(hitl.LinkSecretEnv, testSecret)
	svc, err := hitl.New(context.Background(), db, e, &hitl.Config{Groups: testGroups()})
	require.NoError(t, err)
	token := hitltest.SignLink(t, svc, "a-1", "lena", 60e9)

	e2, db2 := newEngine(t)
	svc2, err := hitl.New(context.Background(), db2, e2, &hitl.Config{Groups: testGroups(), LinkSecret: []byte(testSecret)})
	require.NoError(t, err)
	claims, err := svc2.VerifyLink(token)
	require.NoError(t, err, "the same key verifies")
	require.Equal(t, "lena", claims.Reviewer)
}
