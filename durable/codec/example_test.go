package codec_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/keelhq/keel/durable/codec"
)

// A chain compresses large payloads, then encrypts everything; Decode
// reverses it, and still reads plain JSON written before the chain existed.
func ExampleChain() {
	kr, _ := codec.ParseKeyring("k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	zc, _ := codec.NewCompressor(nil)
	enc, _ := codec.NewEncryptor(kr, &codec.EncryptorConfig{AssociatedData: []byte("keel/payloads")})
	c := codec.Chain(zc, enc)

	payload := []byte(`{"transcript":"` + strings.Repeat("hello ", 1000) + `"}`)
	stored, _ := c.Encode(payload)
	fmt.Println("envelope:", codec.IsEnvelope(stored), "smaller:", len(stored) < len(payload))

	back, _ := c.Decode(stored)
	fmt.Println("round trip:", bytes.Equal(back, payload))

	old, _ := c.Decode([]byte(`{"written":"before encryption"}`))
	fmt.Println(string(old))
	// Output:
	// envelope: true smaller: true
	// round trip: true
	// {"written":"before encryption"}
}

// Rotation: put the new key first. Data written under the old key still
// decodes while the old key stays in the keyring.
func ExampleParseKeyring() {
	key := func(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

	before, _ := codec.ParseKeyring("k1:" + key(1))
	encK1, _ := codec.NewEncryptor(before, nil)
	stored, _ := encK1.Encode([]byte(`{"order":42}`))

	after, _ := codec.ParseKeyring("k2:" + key(2) + ",k1:" + key(1))
	encK2, _ := codec.NewEncryptor(after, nil)
	out, err := encK2.Decode(stored)
	fmt.Println(after.ActiveID(), string(out), err)

	retired, _ := codec.ParseKeyring("k2:" + key(2))
	encOnlyK2, _ := codec.NewEncryptor(retired, nil)
	_, err = encOnlyK2.Decode(stored)
	fmt.Println(errors.Is(err, codec.ErrUnknownKey))
	// Output:
	// k2 {"order":42} <nil>
	// true
}

// Payloads below the threshold are stored as they are.
func ExampleCompressor() {
	zc, _ := codec.NewCompressor(&codec.CompressorConfig{Threshold: 256})
	small, _ := zc.Encode([]byte(`{"id":1}`))
	large, _ := zc.Encode([]byte(strings.Repeat(`{"id":1},`, 100)))
	fmt.Println(string(small), codec.IsEnvelope(large))
	// Output: {"id":1} true
}
