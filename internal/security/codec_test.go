package security_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/codec"
)

// card is the secret that must never reach the database in plain text.
const card = "4111-1111-1111-1111-KEEL-SECURITY-SECRET"

// TestSecurityPayloadCodec runs workflows whose input, activity results
// and failures, heartbeats, signal, child memo and input, own memo,
// result and failure message all hold a secret, through a server whose
// engine encrypts payloads (Config.Codec), then dumps every table of the
// database (and, on SQLite, the raw file and its write-ahead log): the
// secret's bytes are nowhere, while the API shows it decoded to a caller
// with a key.
func TestSecurityPayloadCodec(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, be backend) {
		b := setup(t, setupOpts{backend: be, codec: newCodec(t)})
		ctx := context.Background()

		// One run triggered over HTTP, one started with a memo.
		r := b.do(t, "POST", "/v1/agents/vault/runs", map[string]any{"run_id": "vault-ok", "input": vaultInput{Card: card}}, b.admin)
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
		input, err := json.Marshal(vaultInput{Card: card})
		require.NoError(t, err)
		_, err = b.e.StartWorkflow(ctx, "vault", input, &durable.StartOptions{ID: "vault-memo", Memo: map[string]any{"card": card}})
		require.NoError(t, err)
		for id, note := range map[string]string{"vault-ok": "confirmed " + card, "vault-memo": "fail " + card} {
			r := b.do(t, "POST", "/v1/runs/"+id+"/signals/confirm", map[string]any{"payload": note}, b.admin)
			require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
		}

		// Read back through the API and the engine: every payload decodes.
		ok := b.waitClosed(t, "vault-ok")
		require.Equal(t, "completed", ok.Status)
		var result string
		require.NoError(t, json.Unmarshal(ok.Result, &result))
		require.Equal(t, "receipt for "+card+"; ledger entry for "+card+"; confirmed "+card, result)
		failed := b.waitClosed(t, "vault-memo")
		require.Equal(t, "failed", failed.Status)
		require.NotNil(t, failed.Error)
		require.Contains(t, failed.Error.Message, "refused: fail "+card)
		r = b.do(t, "GET", "/v1/runs/vault-ok/attempts", nil, b.admin)
		require.Equal(t, http.StatusOK, r.Status)
		require.Contains(t, string(r.Body), "gateway refused card "+card, "the failed attempt's error")
		r = b.do(t, "GET", "/v1/runs/vault-ok/history", nil, b.admin)
		require.Equal(t, http.StatusOK, r.Status)
		require.Contains(t, string(r.Body), card)
		for _, id := range []string{"vault-memo", "vault-ok/ledger"} {
			info, err := b.e.Describe(ctx, id)
			require.NoError(t, err)
			require.JSONEq(t, `"`+card+`"`, string(info.Memo["card"]), "%s memo", id)
		}

		// The database holds none of it.
		dump := b.dbase.dump(t)
		require.Contains(t, string(dump), "vault-memo", "the dump reads the runs")
		require.Contains(t, string(dump), "charge", "names stay readable")
		for _, form := range []string{
			card,
			"KEEL-SECURITY-SECRET",
			"1111-1111-1111",
			hex.EncodeToString([]byte(card)),
			hex.EncodeToString([]byte("KEEL-SECURITY-SECRET")),
			base64.StdEncoding.EncodeToString([]byte(card)),
			base64.RawURLEncoding.EncodeToString([]byte(card)),
		} {
			require.False(t, bytes.Contains(dump, []byte(form)), "the database holds the secret as %q", form)
			require.False(t, bytes.Contains(bytes.ToLower(dump), []byte(strings.ToLower(form))), "the database holds the secret as %q", form)
		}
	})
}

// newCodec returns the chain a deployment would use: compression, then
// AES-256-GCM under a random key.
func newCodec(t *testing.T) durable.Codec {
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
