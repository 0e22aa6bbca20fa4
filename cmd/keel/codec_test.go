package main

import (
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/codec"
	"github.com/keelhq/keel/internal/testdb"
)

// codecEnv returns the environment of a payload codec under a new random
// key named id.
func codecEnv(t *testing.T, id string) []string {
	t.Helper()
	key := make([]byte, codec.KeySize)
	_, err := rand.Read(key)
	require.NoError(t, err)
	return []string{codec.KeysEnv + "=" + id + ":" + base64.StdEncoding.EncodeToString(key), codecADEnv + "=keel/payloads"}
}

// With KEEL_CODEC_KEYS, the commands write payloads encrypted and read
// them back; without the keys, or with others, they refuse to show them.
func TestCodecFromEnv(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	env := codecEnv(t, "k1")
	const secret = "cus_CODEC_SECRET_42"
	o := call(t, env, "run", "steps", "--id", "enc-1", "--input", `{"customer_id": "`+secret+`", "question": "Where is my invoice?"}`, "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	handle, err := sql.Open("sqlite", db)
	require.NoError(t, err)
	defer handle.Close()
	require.NotContains(t, string(testdb.DumpSQLite(t, handle)), secret, "the database holds the payloads encrypted")

	o = call(t, env, "history", "enc-1", "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	require.Contains(t, o.stdout, secret)

	// Without the keys, the timeline shows the events but not their
	// payloads, and says why; with other keys, reading fails.
	o = call(t, nil, "history", "enc-1", "--db", db)
	require.Equal(t, exitOK, o.code, o.String())
	require.NotContains(t, o.stdout+o.stderr, secret)
	require.Regexp(t, `(?m)^   1  .{12}  WorkflowStarted +\(encoded: set KEEL_CODEC_KEYS to the application's payload keys to read it\)$`, o.stdout)
	o = call(t, codecEnv(t, "k1"), "history", "enc-1", "--db", db)
	require.NotEqual(t, exitOK, o.code, o.String())
	require.NotContains(t, o.stdout+o.stderr, secret)
	require.Contains(t, o.stderr, "codec")

	o = call(t, []string{codec.KeysEnv + "=nonsense"}, "history", "enc-1", "--db", db)
	requireUsageError(t, o, codec.KeysEnv)
}
