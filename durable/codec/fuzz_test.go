package codec_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/codec"
)

// FuzzDecode feeds arbitrary bytes to Decode of the compressor, the
// encryptor and the chain of both: Decode must never panic, and must return
// either an error or data (never both). The encryptor's keys are the fixed
// test keys k1 and k2, so the seed envelopes in testdata/fuzz/FuzzDecode
// decode and mutations of them reach the authentication check. Every input
// must also survive an Encode/Decode round trip.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"id":"c-42"}`))
	f.Add([]byte{codec.Magic, 'Z', 1})
	f.Add([]byte{codec.Magic, 'E', 1, 2, 'k', '1'})
	zc, err := codec.NewCompressor(&codec.CompressorConfig{Threshold: 64, MaxDecodedBytes: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	enc, err := codec.NewEncryptor(keyring(f, k2, k1), nil)
	if err != nil {
		f.Fatal(err)
	}
	all := codec.Chain(zc, enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range []codec.Codec{zc, enc, all} {
			out, err := c.Decode(data)
			if err != nil && out != nil {
				t.Fatalf("Decode returned data and error %v", err)
			}
			if err == nil && !codec.IsEnvelope(data) && !bytes.Equal(out, data) {
				t.Fatalf("plain data changed by Decode")
			}
			e, err := c.Encode(data)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			back, err := c.Decode(e)
			if err != nil {
				t.Fatalf("Decode(Encode(x)): %v", err)
			}
			if !bytes.Equal(back, data) {
				t.Fatalf("round trip changed %d bytes into %d", len(data), len(back))
			}
		}
	})
}

// readSeed returns the bytes of a seed file in Go's fuzz corpus format.
func readSeed(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzDecode", name))
	require.NoError(t, err)
	_, body, ok := strings.Cut(string(raw), "\n")
	require.True(t, ok)
	body = strings.TrimSpace(body)
	body = strings.TrimSuffix(strings.TrimPrefix(body, "[]byte("), ")")
	s, err := strconv.Unquote(body)
	require.NoError(t, err)
	return []byte(s)
}

// TestStoredEnvelopes decodes envelopes written by an earlier build (the
// fuzz seeds): format version 1 must stay readable.
func TestStoredEnvelopes(t *testing.T) {
	t.Parallel()
	zc, err := codec.NewCompressor(nil)
	require.NoError(t, err)
	enc, err := codec.NewEncryptor(keyring(t, k2, k1), nil)
	require.NoError(t, err)
	all := codec.Chain(zc, enc)
	want := []byte(strings.Repeat(`{"role":"user","content":"refund"},`, 8))

	out, err := all.Decode(readSeed(t, "encrypted-k1"))
	require.NoError(t, err)
	require.Equal(t, `{"id":"c-42"}`, string(out))
	out, err = all.Decode(readSeed(t, "compressed-encrypted-k2"))
	require.NoError(t, err)
	require.Equal(t, want, out)
	out, err = all.Decode(readSeed(t, "compressed"))
	require.NoError(t, err)
	require.Equal(t, want, out)

	_, err = all.Decode(readSeed(t, "truncated-encrypted"))
	require.ErrorIs(t, err, codec.ErrDecrypt)
	_, err = all.Decode(readSeed(t, "unknown-key"))
	require.ErrorIs(t, err, codec.ErrUnknownKey)
	_, err = all.Decode(readSeed(t, "future-version"))
	require.ErrorIs(t, err, codec.ErrVersion)
}
