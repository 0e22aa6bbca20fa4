package main

import (
	"os"
	"strings"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/codec"
	"github.com/keelhq/keel/durable/store"
)

// codecADEnv names the variable holding the associated data of the
// payload encryption (codec.EncryptorConfig.AssociatedData).
const codecADEnv = "KEEL_CODEC_AD"

// codecFromEnv returns the payload codec the commands read and write
// through: when KEEL_CODEC_KEYS is set, compression then AES-256-GCM under
// its keys, with KEEL_CODEC_AD as associated data — the chain an
// application gives its engine (durable.Config.Codec), which must match
// for the commands to read its runs and approvals. Without the keys, nil:
// payloads are read and written as stored.
func codecFromEnv() (durable.Codec, error) {
	if strings.TrimSpace(os.Getenv(codec.KeysEnv)) == "" {
		return nil, nil
	}
	kr, err := codec.KeyringFromEnv("")
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	zc, err := codec.NewCompressor(nil)
	if err != nil {
		return nil, err
	}
	enc, err := codec.NewEncryptor(kr, &codec.EncryptorConfig{AssociatedData: []byte(os.Getenv(codecADEnv))})
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return codec.Chain(zc, enc), nil
}

// newEngine is durable.New with the payload codec of the environment
// (codecFromEnv) unless cfg sets one.
func newEngine(st store.Store, cfg *durable.Config) (*durable.Engine, error) {
	c := durable.Config{}
	if cfg != nil {
		c = *cfg
	}
	if c.Codec == nil {
		var err error
		if c.Codec, err = codecFromEnv(); err != nil {
			return nil, err
		}
	}
	return durable.New(st, &c)
}
