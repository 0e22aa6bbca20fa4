package billing_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/billing"
)

// Without a Stripe key, local mode records each charge in the ledger once
// per key and sends nothing anywhere.
func TestLocalModeRecordsOncePerKey(t *testing.T) {
	t.Setenv(billing.SecretKeyEnv, "")
	ctx := context.Background()
	db, err := appdb.Open(ctx, filepath.Join(t.TempDir(), "keel.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })

	_, err = billing.New(ctx, db, &billing.Config{APIBase: "http://127.0.0.1:1"})
	require.ErrorIs(t, err, billing.ErrNoSecretKey, "no key and no local mode is refused")

	svc, err := billing.New(ctx, db, &billing.Config{Local: true})
	require.NoError(t, err)
	t.Cleanup(func() { svc.Close() })
	require.True(t, svc.Local())

	p := billing.ChargeParams{Key: "run-1/charge", Customer: "cus_ada", Amount: 99, Description: "resolved ticket T-1"}
	first, err := svc.Charge(ctx, p)
	require.NoError(t, err)
	require.Equal(t, billing.StatusLocal, first.Status)
	require.NotEmpty(t, first.StripeID)
	again, err := svc.Charge(ctx, p)
	require.NoError(t, err)
	require.True(t, again.Replayed)
	require.Equal(t, first.StripeID, again.StripeID)

	entries, err := svc.Entries(ctx, nil)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, int64(99), entries[0].Amount)
}
