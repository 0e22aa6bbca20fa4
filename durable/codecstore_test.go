package durable_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/codec"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/internal/testdb"
)

// secret is what must never reach the database in plain text.
const secret = "4111-1111-1111-1111-TOP-SECRET"

func testCodec(t *testing.T) durable.Codec {
	t.Helper()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	kr, err := codec.NewKeyring(codec.Key{ID: "k1", Secret: key})
	require.NoError(t, err)
	enc, err := codec.NewEncryptor(kr, nil)
	require.NoError(t, err)
	zc, err := codec.NewCompressor(nil)
	require.NoError(t, err)
	return codec.Chain(zc, enc)
}

// rawDump returns every row of every table as text, as stored.
type rawDump func(t *testing.T) string

func TestCodecLeavesNoPlaintextInTheDatabase(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "keel.db")
		st, err := sqlitestore.Open(path, nil)
		require.NoError(t, err)
		exerciseCodec(t, st, func(t *testing.T) string {
			return string(testdb.DumpSQLite(t, st.DB()))
		})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		pool := testdb.Postgres(t)
		st, err := pgstore.New(context.Background(), pool, nil)
		require.NoError(t, err)
		exerciseCodec(t, st, func(t *testing.T) string { return string(testdb.DumpPostgres(t, pool)) })
	})
}

func exerciseCodec(t *testing.T, st store.Store, dump rawDump) {
	t.Helper()
	var attempts int
	charge := durable.NewActivity("charge", func(ctx context.Context, card string) (string, error) {
		attempts++
		if attempts == 1 {
			return "", errors.New("gateway refused card " + card)
		}
		_ = durable.Heartbeat(ctx, "progress for "+card)
		return "receipt for " + card, nil
	}, &durable.ActivityOptions{RetryPolicy: durable.RetryPolicy{InitialInterval: time.Millisecond}})
	confirm := durable.NewSignal[string]("confirm")
	pay := durable.NewWorkflow("pay", func(ctx durable.Context, card string) (string, error) {
		receipt, err := charge.Run(ctx, card)
		if err != nil {
			return "", err
		}
		note, err := confirm.Receive(ctx)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(note, "fail") {
			return "", errors.New("refused: " + note)
		}
		return receipt + " / " + note, nil
	})
	panicky := durable.NewWorkflow("panicky", func(ctx durable.Context, card string) (string, error) {
		panic("cannot handle " + card)
	})
	c := testCodec(t)
	e, err := durable.New(st, &durable.Config{Codec: c, PollInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	require.NoError(t, err)
	require.Equal(t, c, e.Codec())
	e.MustRegister(charge, pay, panicky)
	e.NewWorker(nil)
	ctx := testContext(t)
	require.NoError(t, e.Start(ctx))
	t.Cleanup(func() {
		require.NoError(t, e.Stop(context.Background()))
		require.NoError(t, st.Close())
	})

	h, err := pay.Start(ctx, e, secret, &durable.StartOptions{ID: "pay-ok"})
	require.NoError(t, err)
	require.NoError(t, confirm.Send(ctx, e, "pay-ok", "confirmed "+secret))
	out, err := h.Result(ctx)
	require.NoError(t, err)
	require.Equal(t, "receipt for "+secret+" / confirmed "+secret, out, "payloads decode on the way back")

	attempts = 0
	h2, err := pay.Start(ctx, e, secret, &durable.StartOptions{ID: "pay-fail"})
	require.NoError(t, err)
	require.NoError(t, confirm.Send(ctx, e, "pay-fail", "fail "+secret))
	_, err = h2.Result(ctx)
	require.ErrorContains(t, err, "refused: fail "+secret, "failures decode too")

	_, err = panicky.Start(ctx, e, secret, &durable.StartOptions{ID: "panicky"})
	require.NoError(t, err)
	waitFor(t, "the panic to be recorded", func() bool {
		info, err := e.Describe(ctx, "panicky")
		return err == nil && strings.Contains(info.LastTaskFailure, secret)
	})
	atts, err := e.ActivityAttempts(ctx, h.RunID())
	require.NoError(t, err)
	require.Contains(t, atts[0].Error, secret)
	hist, err := e.GetHistory(ctx, h.RunID())
	require.NoError(t, err)
	require.Contains(t, string(hist.Events[0].Data), secret)

	raw := dump(t)
	require.NotEmpty(t, raw)
	require.NotContains(t, raw, secret)
	require.NotContains(t, raw, fmt.Sprintf("%x", secret), "nor as hex")
	require.NotContains(t, raw, "TOP-SECRET", "nor any part of it")
	require.NotContains(t, raw, "1111-1111-1111", "nor any part of it")
	require.True(t, bytes.Contains([]byte(raw), []byte("charge")), "names stay readable")
	require.NoError(t, e.Terminate(ctx, "panicky", "test over"))
}
