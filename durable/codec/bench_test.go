package codec_test

import (
	"testing"

	"github.com/keelhq/keel/durable/codec"
)

func benchCodecs(b *testing.B) map[string]codec.Codec {
	t := setup(b)
	return map[string]codec.Codec{"compress": t.zc, "encrypt": t.enc, "chain": t.all}
}

func BenchmarkEncode(b *testing.B) {
	payload := bigJSON(16 << 10)
	for name, c := range benchCodecs(b) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Encode(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	payload := bigJSON(16 << 10)
	for name, c := range benchCodecs(b) {
		enc, err := c.Encode(payload)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Decode(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
