package hitl_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/codec"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/internal/testdb"
)

// cardSecret is what must not reach the approval tables in plain text.
const cardSecret = "4111-1111-1111-1111-HITL-CODEC-SECRET"

// newCodec returns compression then AES-256-GCM under a random key named
// id, the chain a deployment gives the engine.
func newCodec(t *testing.T, id string) durable.Codec {
	t.Helper()
	key := make([]byte, codec.KeySize)
	_, err := rand.Read(key)
	require.NoError(t, err)
	kr, err := codec.NewKeyring(codec.Key{ID: id, Secret: key})
	require.NoError(t, err)
	enc, err := codec.NewEncryptor(kr, nil)
	require.NoError(t, err)
	zc, err := codec.NewCompressor(nil)
	require.NoError(t, err)
	return codec.Chain(zc, enc)
}

// secretRequest asks legal to approve a refund whose title, details and
// arguments name the secret.
func secretRequest(secret string) hitl.Request {
	return hitl.Request{
		Title:     "Refund to card " + secret,
		Details:   "The customer paid with card " + secret + ".",
		Action:    "refund",
		Args:      map[string]any{"card": secret, "amount": 750},
		Group:     "legal",
		Requester: "support-agent",
	}
}

// requireAbsent fails if dump holds secret, plain or in a common encoding.
func requireAbsent(t *testing.T, dump []byte, secret string) {
	t.Helper()
	lower := bytes.ToLower(dump)
	for _, form := range []string{
		secret,
		secret[len(secret)/2:],
		hex.EncodeToString([]byte(secret)),
		base64.StdEncoding.EncodeToString([]byte(secret)),
		base64.RawURLEncoding.EncodeToString([]byte(secret)),
	} {
		require.False(t, bytes.Contains(lower, []byte(strings.ToLower(form))), "the approval tables hold the secret as %q", form)
	}
}

// reader opens another Service on the bundle's database with codec c,
// over an engine that is not started: it reads and decides, and the
// bundle's engine runs the workflows.
func reader(t *testing.T, db opener, c durable.Codec) *hitl.Service {
	t.Helper()
	st, adb := db(t)
	t.Cleanup(func() {
		require.NoError(t, adb.Close())
		require.NoError(t, st.Close())
	})
	e, err := durable.New(st, nil)
	require.NoError(t, err)
	svc, err := hitl.New(context.Background(), adb, e, &hitl.Config{Codec: c, Groups: testGroups(), LinkSecret: []byte(testSecret)})
	require.NoError(t, err)
	return svc
}

// With Config.Codec, an approval's title, details and arguments and a
// vote's comment and edited arguments are stored encoded: no form of the
// secret is in the tables, while the Service returns them in plain text
// and the hash binding works on the plain arguments.
func TestPayloadCodec(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, db opener) {
		c := newCodec(t, "k1")
		b := setup(t, setupOpts{db: db, cfg: &hitl.Config{Codec: c}})
		ctx := testContext(t)
		h, err := askWorkflow.Start(ctx, b.e, secretRequest(cardSecret), nil)
		require.NoError(t, err)
		a := b.pending(t, h.RunID(), 1)

		args := `{"amount":750,"card":"` + cardSecret + `"}`
		require.Equal(t, "Refund to card "+cardSecret, a.Title)
		require.Equal(t, "The customer paid with card "+cardSecret+".", a.Details)
		require.Equal(t, args, string(a.Args), "canonical arguments")
		require.Equal(t, mustHash(t, "refund", args), a.ArgsHash, "the hash is of the plain arguments")

		// The hash binding: other arguments are refused, the shown ones
		// are accepted, with an edit.
		_, err = b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "lena", Approve: true,
			ArgsHash: mustHash(t, "refund", `{"amount":750,"card":"4000-0000-0000-0002"}`)})
		require.ErrorIs(t, err, hitl.ErrArgsMismatch)
		edited := `{"card":"` + cardSecret + `","amount":700}`
		editedCanon := `{"amount":700,"card":"` + cardSecret + `"}`
		got, err := b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "lena", Approve: true, ArgsHash: a.ArgsHash,
			Comment: "checked card " + cardSecret, EditedArgs: json.RawMessage(edited)})
		require.NoError(t, err)
		require.Equal(t, hitl.StatusApproved, got.Status)
		require.Len(t, got.Votes, 1)
		require.Equal(t, "checked card "+cardSecret, got.Votes[0].Comment)
		require.Equal(t, editedCanon, string(got.Votes[0].EditedArgs))
		require.Equal(t, mustHash(t, "refund", editedCanon), got.Votes[0].EditedArgsHash)

		d, err := h.Result(ctx)
		require.NoError(t, err)
		require.True(t, d.Approved())
		require.True(t, d.Edited)
		require.Equal(t, editedCanon, string(d.Args))
		require.Equal(t, mustHash(t, "refund", editedCanon), d.ArgsHash)
		require.Equal(t, []string{"lena: checked card " + cardSecret}, d.Comments())

		// Get and List (which loads votes for a page at once) decode.
		again, err := b.svc.Get(ctx, a.ID)
		require.NoError(t, err)
		require.Equal(t, got, again)
		list, _, err := b.svc.List(ctx, &hitl.ListParams{RunID: h.RunID()})
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, *got, list[0])

		dump := testdb.DumpTables(t, b.db, "hitl_approvals", "hitl_votes")
		require.Contains(t, string(dump), a.ID, "the dump reads the approval")
		require.Contains(t, string(dump), a.ArgsHash, "hashes stay readable")
		require.Contains(t, string(dump), "lena", "reviewers stay readable")
		require.Contains(t, string(dump), "keel-codec:", "payloads are stored encoded")
		requireAbsent(t, dump, cardSecret)

		// Without the key the rows do not read: an error, never the
		// ciphertext as arguments.
		_, err = reader(t, db, newCodec(t, "k2")).Get(ctx, a.ID)
		require.ErrorIs(t, err, codec.ErrUnknownKey)
		_, err = reader(t, db, nil).Get(ctx, a.ID)
		require.ErrorContains(t, err, "Config.Codec is not set")
		// With it, another process reads them.
		other, err := reader(t, db, c).Get(ctx, a.ID)
		require.NoError(t, err)
		require.Equal(t, got, other)
	})
}

// Without a codec of its own, the Service stores through the engine's.
func TestPayloadCodecFromEngine(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, db opener) {
		c := newCodec(t, "k1")
		b := setup(t, setupOpts{db: db, codec: c})
		require.NotNil(t, b.e.Codec())
		ctx := testContext(t)
		h, err := askWorkflow.Start(ctx, b.e, secretRequest(cardSecret), nil)
		require.NoError(t, err)
		a := b.pending(t, h.RunID(), 1)
		require.Equal(t, "Refund to card "+cardSecret, a.Title)

		dump := testdb.DumpTables(t, b.db, "hitl_approvals", "hitl_votes")
		require.Contains(t, string(dump), "keel-codec:", "payloads are stored encoded")
		requireAbsent(t, dump, cardSecret)
		other, err := reader(t, db, c).Get(ctx, a.ID)
		require.NoError(t, err)
		require.Equal(t, a.Title, other.Title)
	})
}

// Rows written before the codec was configured still read, and a vote
// cast with the codec on an older approval is stored encoded beside them.
func TestPayloadCodecPlainRows(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, db opener) {
		b := setup(t, setupOpts{db: db})
		ctx := testContext(t)

		// Without a codec: one approval decided, one waiting for its
		// second approver.
		h1, err := askWorkflow.Start(ctx, b.e, secretRequest(cardSecret), nil)
		require.NoError(t, err)
		a1 := b.pending(t, h1.RunID(), 1)
		_, err = b.svc.Decide(ctx, a1.ID, hitl.DecideInput{Reviewer: "lars", Approve: true, ArgsHash: a1.ArgsHash,
			Comment: "plain " + cardSecret, EditedArgs: json.RawMessage(`{"amount":1,"card":"` + cardSecret + `"}`)})
		require.NoError(t, err)
		_, err = h1.Result(ctx)
		require.NoError(t, err)
		plain1, err := b.svc.Get(ctx, a1.ID)
		require.NoError(t, err)

		req := secretRequest(cardSecret)
		req.Group, req.Required = "finance", 2
		h2, err := askWorkflow.Start(ctx, b.e, req, nil)
		require.NoError(t, err)
		a2 := b.pending(t, h2.RunID(), 1)
		_, err = b.svc.Decide(ctx, a2.ID, hitl.DecideInput{Reviewer: "fred", Approve: true, ArgsHash: a2.ArgsHash,
			Comment: "first " + cardSecret})
		require.NoError(t, err)
		require.Contains(t, string(testdb.DumpTables(t, b.db, "hitl_approvals", "hitl_votes")), cardSecret,
			"without a codec the rows are plain")

		// The codec is configured: the plain rows read as they did.
		svc := reader(t, db, newCodec(t, "k1"))
		got1, err := svc.Get(ctx, a1.ID)
		require.NoError(t, err)
		require.Equal(t, plain1, got1)
		require.Equal(t, "plain "+cardSecret, got1.Votes[0].Comment)
		require.Equal(t, `{"amount":1,"card":"`+cardSecret+`"}`, string(got1.Votes[0].EditedArgs))

		// A second vote on the plain approval is encoded; the hash
		// binding still holds against the plain arguments.
		const second = "5555-5555-5555-4444-SECOND-SECRET"
		_, err = svc.Decide(ctx, a2.ID, hitl.DecideInput{Reviewer: "fiona", Approve: true,
			ArgsHash: mustHash(t, "refund", `{"amount":751,"card":"`+cardSecret+`"}`), Comment: "second " + second})
		require.ErrorIs(t, err, hitl.ErrArgsMismatch)
		got2, err := svc.Decide(ctx, a2.ID, hitl.DecideInput{Reviewer: "fiona", Approve: true, ArgsHash: a2.ArgsHash,
			Comment: "second " + second})
		require.NoError(t, err)
		require.Equal(t, hitl.StatusApproved, got2.Status)
		require.Equal(t, "Refund to card "+cardSecret, got2.Title)
		require.Equal(t, []string{"first " + cardSecret, "second " + second},
			[]string{got2.Votes[0].Comment, got2.Votes[1].Comment})
		d, err := h2.Result(ctx)
		require.NoError(t, err)
		require.True(t, d.Approved())
		require.Equal(t, []string{"fred: first " + cardSecret, "fiona: second " + second}, d.Comments())
		list, _, err := svc.List(ctx, &hitl.ListParams{RunID: h2.RunID()})
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, *got2, list[0])

		requireAbsent(t, testdb.DumpTables(t, b.db, "hitl_votes"), second)
	})
}
