package codec_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/keelhq/keel/durable/codec"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, codec.KeySize) }

func keyring(t testing.TB, keys ...codec.Key) *codec.Keyring {
	t.Helper()
	kr, err := codec.NewKeyring(keys...)
	require.NoError(t, err)
	return kr
}

var (
	k1 = codec.Key{ID: "k1", Secret: secret(1)}
	k2 = codec.Key{ID: "k2", Secret: secret(2)}
)

type testBundle struct {
	zc  *codec.Compressor
	enc *codec.Encryptor
	all codec.Codec
}

func setup(t testing.TB) *testBundle {
	t.Helper()
	zc, err := codec.NewCompressor(nil)
	require.NoError(t, err)
	enc, err := codec.NewEncryptor(keyring(t, k1), nil)
	require.NoError(t, err)
	return &testBundle{zc: zc, enc: enc, all: codec.Chain(zc, enc)}
}

// bigJSON is a compressible JSON document of about n bytes.
func bigJSON(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"messages":[`)
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"role":"user","content":"message number %d about the refund policy"}`, i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	inputs := map[string][]byte{
		"empty":        {},
		"small json":   []byte(`{"id":"c-42"}`),
		"large json":   bigJSON(64 << 10),
		"random":       randomBytes(t, 4096),
		"magic only":   {codec.Magic},
		"fake z":       {codec.Magic, 'Z', 1, 0, 1, 2},
		"fake e":       {codec.Magic, 'E', 1, 2, 'k', '1'},
		"json string":  []byte(`"hello"`),
		"leading ws":   []byte("  \n[1,2,3]"),
		"large random": randomBytes(t, 32<<10),
	}
	codecs := map[string]codec.Codec{
		"compressor": b.zc, "encryptor": b.enc, "chain": b.all,
		"reversed chain": codec.Chain(b.enc, b.zc), "empty chain": codec.Chain(), "nil in chain": codec.Chain(nil, b.zc, nil),
	}
	for cname, c := range codecs {
		for iname, in := range inputs {
			enc, err := c.Encode(in)
			require.NoError(t, err, "%s/%s", cname, iname)
			out, err := c.Decode(enc)
			require.NoError(t, err, "%s/%s", cname, iname)
			require.Equal(t, in, out, "%s/%s", cname, iname)
		}
	}
}

func TestPlainPassthrough(t *testing.T) {
	t.Parallel()
	b := setup(t)
	plain := [][]byte{
		[]byte(`{"id":"c-42"}`), []byte(`[1,2]`), []byte(`"s"`), []byte(`42`), []byte(`-1`),
		[]byte(`true`), []byte(`null`), []byte(" \t\r\n{}"), bigJSON(8 << 10), {}, nil,
	}
	for _, c := range []codec.Codec{b.zc, b.enc, b.all} {
		for _, p := range plain {
			out, err := c.Decode(p)
			require.NoError(t, err)
			require.Equal(t, p, out, "plain payloads pass through Decode unchanged")
		}
	}
}

func TestEnvelopesAreNotJSON(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, c := range []codec.Codec{b.zc, b.enc, b.all} {
		enc, err := c.Encode(bigJSON(4096))
		require.NoError(t, err)
		require.Equal(t, codec.Magic, enc[0])
		require.True(t, codec.IsEnvelope(enc))
		require.False(t, json.Valid(enc))
	}
	require.False(t, codec.IsEnvelope([]byte(`{}`)))
	require.False(t, codec.IsEnvelope(nil))
}

func TestCompressionThreshold(t *testing.T) {
	t.Parallel()
	zc, err := codec.NewCompressor(&codec.CompressorConfig{Threshold: 2048})
	require.NoError(t, err)

	below := bigJSON(1500)
	require.Less(t, len(below), 2048)
	out, err := zc.Encode(below)
	require.NoError(t, err)
	require.Equal(t, below, out, "below the threshold the payload is stored as it is")

	above := bigJSON(4096)
	out, err = zc.Encode(above)
	require.NoError(t, err)
	require.True(t, codec.IsEnvelope(out))
	require.Less(t, len(out), len(above)/2, "compressible JSON shrinks")
	back, err := zc.Decode(out)
	require.NoError(t, err)
	require.Equal(t, above, back)

	noise := randomBytes(t, 4096)
	out, err = zc.Encode(noise)
	require.NoError(t, err)
	require.Equal(t, noise, out, "incompressible data is stored as it is, not grown")

	all, err := codec.NewCompressor(&codec.CompressorConfig{Threshold: -1})
	require.NoError(t, err)
	out, err = all.Encode([]byte(`{"a":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}`))
	require.NoError(t, err)
	require.True(t, codec.IsEnvelope(out), "a negative threshold compresses small payloads")
}

func TestCompressionLimit(t *testing.T) {
	t.Parallel()
	big, err := codec.NewCompressor(nil)
	require.NoError(t, err)
	enc, err := big.Encode(bigJSON(256 << 10))
	require.NoError(t, err)

	small, err := codec.NewCompressor(&codec.CompressorConfig{MaxDecodedBytes: 64 << 10})
	require.NoError(t, err)
	_, err = small.Decode(enc)
	require.ErrorIs(t, err, codec.ErrTooLarge)
}

func TestCompressionMalformed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	enc, err := b.zc.Encode(bigJSON(8192))
	require.NoError(t, err)

	for n := 2; n < len(enc); n++ {
		_, err := b.zc.Decode(enc[:n])
		require.Error(t, err, "a %d-byte prefix must not decode", n)
		require.True(t, errors.Is(err, codec.ErrMalformed), "prefix %d: %v", n, err)
	}

	bad := bytes.Clone(enc)
	bad[2] = 9
	_, err = b.zc.Decode(bad)
	require.ErrorIs(t, err, codec.ErrVersion)

	_, err = b.zc.Decode([]byte{codec.Magic, 'Z', 1, 'n', 'o', 't', ' ', 'z', 's', 't', 'd'})
	require.ErrorIs(t, err, codec.ErrMalformed)
}

func TestEncryptionHidesPlaintextAndUsesFreshNonces(t *testing.T) {
	t.Parallel()
	b := setup(t)
	in := []byte(`{"card":"4242 4242 4242 4242"}`)
	e1, err := b.enc.Encode(in)
	require.NoError(t, err)
	e2, err := b.enc.Encode(in)
	require.NoError(t, err)
	require.NotContains(t, string(e1), "4242")
	require.NotEqual(t, e1, e2, "each Encode draws a new nonce")
	require.Len(t, e1, 3+1+len("k1")+12+len(in)+16)
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	old, err := codec.NewEncryptor(keyring(t, k1), nil)
	require.NoError(t, err)
	in := []byte(`{"written":"under k1"}`)
	underK1, err := old.Encode(in)
	require.NoError(t, err)

	// k2 becomes active; k1 stays for decryption.
	rotated, err := codec.NewEncryptor(keyring(t, k2, k1), nil)
	require.NoError(t, err)
	out, err := rotated.Decode(underK1)
	require.NoError(t, err)
	require.Equal(t, in, out, "data encrypted under k1 decodes after k2 became active")

	underK2, err := rotated.Encode(in)
	require.NoError(t, err)
	require.Equal(t, []byte("k2"), underK2[4:6], "new data names the active key")
	_, err = old.Decode(underK2)
	require.ErrorIs(t, err, codec.ErrUnknownKey, "a keyring without k2 cannot read it")

	// k1 retired: its data no longer decodes, with a typed error.
	retired, err := codec.NewEncryptor(keyring(t, k2), nil)
	require.NoError(t, err)
	_, err = retired.Decode(underK1)
	require.ErrorIs(t, err, codec.ErrUnknownKey)
	require.Contains(t, err.Error(), `"k1"`)
}

func TestWrongKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	enc, err := b.enc.Encode([]byte(`{"x":1}`))
	require.NoError(t, err)
	impostor, err := codec.NewEncryptor(keyring(t, codec.Key{ID: "k1", Secret: secret(9)}), nil)
	require.NoError(t, err)
	_, err = impostor.Decode(enc)
	require.ErrorIs(t, err, codec.ErrDecrypt)
}

func TestTamper(t *testing.T) {
	t.Parallel()
	b := setup(t)
	in := []byte(`{"amount":100}`)
	enc, err := b.enc.Encode(in)
	require.NoError(t, err)
	strict, err := codec.NewEncryptor(keyring(t, k1), &codec.EncryptorConfig{RequireEncrypted: true})
	require.NoError(t, err)

	for i := range enc {
		bad := bytes.Clone(enc)
		bad[i] ^= 0x01
		out, err := b.enc.Decode(bad)
		if i < 2 {
			// The marker itself changed: the data no longer claims to be an
			// envelope and passes through as it is, never as the plaintext.
			require.NoError(t, err)
			require.Equal(t, bad, out)
			_, err = strict.Decode(bad)
			require.ErrorIs(t, err, codec.ErrNotEncrypted)
			continue
		}
		require.Error(t, err, "flipping byte %d must be detected", i)
		require.True(t, errors.Is(err, codec.ErrDecrypt) || errors.Is(err, codec.ErrVersion) ||
			errors.Is(err, codec.ErrUnknownKey) || errors.Is(err, codec.ErrMalformed), "byte %d: %v", i, err)
		require.Nil(t, out)
	}
	// Flipping a ciphertext bit is an authentication failure.
	bad := bytes.Clone(enc)
	bad[len(bad)-20] ^= 0x80
	_, err = b.enc.Decode(bad)
	require.ErrorIs(t, err, codec.ErrDecrypt)
}

func TestTruncated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	enc, err := b.all.Encode(bigJSON(4096))
	require.NoError(t, err)
	for n := 2; n < len(enc); n++ {
		out, err := b.all.Decode(enc[:n])
		require.Error(t, err, "a %d-byte prefix must not decode", n)
		require.True(t, errors.Is(err, codec.ErrMalformed) || errors.Is(err, codec.ErrDecrypt), "prefix %d: %v", n, err)
		require.Nil(t, out)
	}
}

func TestAssociatedData(t *testing.T) {
	t.Parallel()
	kr := keyring(t, k1)
	a, err := codec.NewEncryptor(kr, &codec.EncryptorConfig{AssociatedData: []byte("tenant-a")})
	require.NoError(t, err)
	bEnc, err := codec.NewEncryptor(kr, &codec.EncryptorConfig{AssociatedData: []byte("tenant-b")})
	require.NoError(t, err)
	enc, err := a.Encode([]byte(`{"secret":true}`))
	require.NoError(t, err)
	_, err = bEnc.Decode(enc)
	require.ErrorIs(t, err, codec.ErrDecrypt, "an envelope is bound to its associated data")
	out, err := a.Decode(enc)
	require.NoError(t, err)
	require.Equal(t, `{"secret":true}`, string(out))
}

func TestRequireEncrypted(t *testing.T) {
	t.Parallel()
	strict, err := codec.NewEncryptor(keyring(t, k1), &codec.EncryptorConfig{RequireEncrypted: true})
	require.NoError(t, err)
	_, err = strict.Decode([]byte(`{"plain":true}`))
	require.ErrorIs(t, err, codec.ErrNotEncrypted)
}

func TestEncryptedVersion(t *testing.T) {
	t.Parallel()
	b := setup(t)
	enc, err := b.enc.Encode([]byte(`{}`))
	require.NoError(t, err)
	enc[2] = 2
	_, err = b.enc.Decode(enc)
	require.ErrorIs(t, err, codec.ErrVersion)
}

func TestParseKeyring(t *testing.T) {
	t.Parallel()
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	kr, err := codec.ParseKeyring(" k2:" + b64(secret(2)) + " , k1:" + base64.RawURLEncoding.EncodeToString(secret(1)) + ",")
	require.NoError(t, err)
	require.Equal(t, "k2", kr.ActiveID())
	require.Equal(t, []string{"k2", "k1"}, kr.IDs())
	require.True(t, kr.Has("k1"))
	require.False(t, kr.Has("k3"))

	// The parsed keys are the right ones: k1 data from a hand-built keyring
	// decodes.
	manual, err := codec.NewEncryptor(keyring(t, k1), nil)
	require.NoError(t, err)
	enc, err := manual.Encode([]byte(`1`))
	require.NoError(t, err)
	parsed, err := codec.NewEncryptor(kr, nil)
	require.NoError(t, err)
	out, err := parsed.Decode(enc)
	require.NoError(t, err)
	require.Equal(t, "1", string(out))

	short := b64(secret(3)[:16])
	cases := []struct {
		in   string
		want error
	}{
		{"", codec.ErrNoKeys},
		{" , ", codec.ErrNoKeys},
		{"k1" + b64(secret(1)), codec.ErrInvalidKey},
		{"k1:not*base64!", codec.ErrInvalidKey},
		{"k1:" + short, codec.ErrInvalidKey},
		{"k1:" + b64(secret(1)) + ",k1:" + b64(secret(2)), codec.ErrInvalidKey},
		{"bad id:" + b64(secret(1)), codec.ErrInvalidKey},
		{":" + b64(secret(1)), codec.ErrInvalidKey},
	}
	for _, c := range cases {
		_, err := codec.ParseKeyring(c.in)
		require.ErrorIs(t, err, c.want, "%q", c.in)
		require.NotContains(t, err.Error(), b64(secret(1)), "errors never show key material")
		require.NotContains(t, err.Error(), short)
	}
}

// TestKeyringFromEnv sets an environment variable, so it cannot run in
// parallel.
func TestKeyringFromEnv(t *testing.T) { //nolint:paralleltest // t.Setenv
	const name = "KEEL_CODEC_KEYS_TEST"
	_, err := codec.KeyringFromEnv(name)
	require.ErrorIs(t, err, codec.ErrNoKeys)
	require.Contains(t, err.Error(), name)

	t.Setenv(name, "k2:"+base64.StdEncoding.EncodeToString(secret(2))+",k1:"+base64.StdEncoding.EncodeToString(secret(1)))
	kr, err := codec.KeyringFromEnv(name)
	require.NoError(t, err)
	require.Equal(t, []string{"k2", "k1"}, kr.IDs())

	t.Setenv(codec.KeysEnv, "k9:"+base64.StdEncoding.EncodeToString(secret(9)))
	kr, err = codec.KeyringFromEnv("")
	require.NoError(t, err)
	require.Equal(t, "k9", kr.ActiveID())

	t.Setenv(name, "k1:short")
	_, err = codec.KeyringFromEnv(name)
	require.ErrorIs(t, err, codec.ErrInvalidKey)
}

func TestNewEncryptorNeedsKeys(t *testing.T) {
	t.Parallel()
	_, err := codec.NewEncryptor(nil, nil)
	require.ErrorIs(t, err, codec.ErrNoKeys)
	_, err = codec.NewKeyring()
	require.ErrorIs(t, err, codec.ErrNoKeys)
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				in := bigJSON(1000 + 97*g + i)
				enc, err := b.all.Encode(in)
				if err != nil {
					errs <- err
					return
				}
				out, err := b.all.Decode(enc)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(in, out) {
					errs <- fmt.Errorf("goroutine %d: round trip %d differs", g, i)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
