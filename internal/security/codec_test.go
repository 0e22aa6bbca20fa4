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
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/server"
)

// card is the secret that must never reach the database in plain text.
const card = "4111-1111-1111-1111-KEEL-SECURITY-SECRET"

// TestSecurityPayloadCodec runs workflows whose input, activity results
// and failures, heartbeats, signal, child memo and input, own memo,
// result and failure message all hold a secret, and an approval whose
// title and arguments, and whose reviewer's comment and edited arguments,
// hold it, through a server whose engine and approval service encrypt
// payloads (durable.Config.Codec, hitl.Config.Codec), then dumps every
// table of the database, the approval tables included (and, on SQLite,
// the raw file and its write-ahead log): the secret's bytes are nowhere,
// while the API shows it decoded to a caller with a key.
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

		// An approval: the card is in its title and arguments, and in the
		// reviewer's comment and edited arguments.
		a := b.requestRefund(t, "vault-approval", refund{Order: card, Amount: 500})
		edited := map[string]any{"order": card, "amount": 450}
		r = b.do(t, "POST", "/v1/approvals/"+a.ID+"/decision", map[string]any{
			"decision": "approve", "args_hash": a.ArgsHash, "comment": "approved for " + card, "edited_args": edited,
		}, b.newKey(t, "fred", server.ScopeReview))
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))

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
		approved := b.waitClosed(t, "vault-approval")
		require.Equal(t, "completed", approved.Status)
		var d hitl.Decision
		require.NoError(t, json.Unmarshal(approved.Result, &d))
		require.True(t, d.Approved() && d.Edited, "%+v", d)
		editedJSON, err := json.Marshal(edited)
		require.NoError(t, err)
		require.JSONEq(t, string(editedJSON), string(d.Args))
		editedHash, err := hitl.Hash("refund", editedJSON)
		require.NoError(t, err)
		require.Equal(t, editedHash, d.ArgsHash, "the edit's hash is of its plain arguments")
		require.Equal(t, []string{"fred: approved for " + card}, d.Comments())
		r = b.do(t, "GET", "/v1/approvals/"+a.ID, nil, b.admin)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var view server.ApprovalView
		r.decode(t, &view)
		require.Equal(t, "Refund order "+card, view.Title)
		require.JSONEq(t, `{"order":"`+card+`","amount":500}`, string(view.Args))
		require.Equal(t, a.ArgsHash, view.ArgsHash)
		require.Len(t, view.Votes, 1)
		require.Equal(t, "approved for "+card, view.Votes[0].Comment)
		require.JSONEq(t, string(editedJSON), string(view.Votes[0].EditedArgs))
		for _, id := range []string{"vault-memo", "vault-ok/ledger"} {
			info, err := b.e.Describe(ctx, id)
			require.NoError(t, err)
			require.JSONEq(t, `"`+card+`"`, string(info.Memo["card"]), "%s memo", id)
		}

		// The database holds none of it.
		dump := b.dbase.dump(t)
		require.Contains(t, string(dump), "vault-memo", "the dump reads the runs")
		require.Contains(t, string(dump), "charge", "names stay readable")
		require.Contains(t, string(dump), a.ID, "the dump reads the approval tables")
		require.Contains(t, string(dump), a.ArgsHash, "the approval's hash stays readable")
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
