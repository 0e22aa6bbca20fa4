package codec

import (
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"
)

const compressVersion byte = 1

// CompressorConfig configures a Compressor. The zero value is valid.
type CompressorConfig struct {
	// Threshold is the smallest payload, in bytes, that is compressed;
	// shorter payloads are stored as they are. Optional; default 1024;
	// negative compresses every non-empty payload.
	Threshold int
	// MaxDecodedBytes bounds what Decode inflates a payload to, so that
	// a hostile or corrupt envelope cannot exhaust memory. Optional;
	// default 64 MiB.
	MaxDecodedBytes int
}

// WithDefaults returns a copy of c with defaults filled in.
func (c *CompressorConfig) WithDefaults() *CompressorConfig {
	out := CompressorConfig{}
	if c != nil {
		out = *c
	}
	if out.Threshold == 0 {
		out.Threshold = 1024
	}
	if out.MaxDecodedBytes <= 0 {
		out.MaxDecodedBytes = 64 << 20
	}
	return &out
}

// Compressor is a Codec that compresses payloads with Zstandard. A payload
// below the threshold, or one that compression would not shrink, is left as
// it is; a compressed one is wrapped in an envelope (Magic, 'Z', version 1,
// then one zstd frame), so Decode knows which is which and passes anything
// else through unchanged.
type Compressor struct {
	cfg *CompressorConfig
	enc *zstd.Encoder
	dec *zstd.Decoder
}

var _ Codec = (*Compressor)(nil)

// NewCompressor returns a Compressor. cfg may be nil.
func NewCompressor(cfg *CompressorConfig) (*Compressor, error) {
	cfg = cfg.WithDefaults()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithZeroFrames(true))
	if err != nil {
		return nil, fmt.Errorf("codec: new zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(uint64(cfg.MaxDecodedBytes)),
	)
	if err != nil {
		return nil, fmt.Errorf("codec: new zstd decoder: %w", err)
	}
	return &Compressor{cfg: cfg, enc: enc, dec: dec}, nil
}

// Encode compresses data when it is at least Threshold bytes long and
// compression makes it smaller. Data that already starts with Magic is
// always wrapped, so that Decode can never mistake it for an envelope.
func (c *Compressor) Encode(data []byte) ([]byte, error) {
	if len(data) == 0 {
		return data, nil
	}
	mustWrap := IsEnvelope(data)
	if !mustWrap && c.cfg.Threshold > 0 && len(data) < c.cfg.Threshold {
		return data, nil
	}
	out := make([]byte, headerLen, headerLen+len(data)/2+16)
	out[0], out[1], out[2] = Magic, kindCompressed, compressVersion
	out = c.enc.EncodeAll(data, out)
	if !mustWrap && len(out) >= len(data) {
		return data, nil
	}
	return out, nil
}

// Decode inflates a compression envelope and returns any other data
// unchanged.
func (c *Compressor) Decode(data []byte) ([]byte, error) {
	if kind, ok := envelopeKind(data); !ok || kind != kindCompressed {
		return data, nil
	}
	if len(data) < headerLen {
		return nil, fmt.Errorf("codec: decompress: %w: %d-byte header", ErrMalformed, len(data))
	}
	if v := data[2]; v != compressVersion {
		return nil, fmt.Errorf("codec: decompress: %w: %d", ErrVersion, v)
	}
	body := data[headerLen:]
	if len(body) == 0 {
		return nil, fmt.Errorf("codec: decompress: %w: empty body", ErrMalformed)
	}
	out, err := c.dec.DecodeAll(body, nil)
	switch {
	case errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return nil, fmt.Errorf("codec: decompress: %w: limit %d bytes", ErrTooLarge, c.cfg.MaxDecodedBytes)
	case err != nil:
		return nil, fmt.Errorf("codec: decompress: %w: %w", ErrMalformed, err)
	}
	if len(out) > c.cfg.MaxDecodedBytes {
		return nil, fmt.Errorf("codec: decompress: %w: limit %d bytes", ErrTooLarge, c.cfg.MaxDecodedBytes)
	}
	if out == nil {
		out = []byte{}
	}
	return out, nil
}
