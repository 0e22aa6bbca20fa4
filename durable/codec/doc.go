// Package codec transforms workflow payloads on their way to and from the
// store: compression with Zstandard and authenticated encryption with
// AES-256-GCM under rotating keys, combined with Chain.
//
// # Usage
//
// Build a chain once at startup, compression first so that it sees the
// plain text:
//
//	kr, err := codec.KeyringFromEnv("") // KEEL_CODEC_KEYS="k2:…,k1:…"
//	if err != nil {
//		return err
//	}
//	zc, err := codec.NewCompressor(nil) // payloads of 1 KiB and more
//	if err != nil {
//		return err
//	}
//	enc, err := codec.NewEncryptor(kr, &codec.EncryptorConfig{AssociatedData: []byte("keel/payloads")})
//	if err != nil {
//		return err
//	}
//	c := codec.Chain(zc, enc)
//	stored, err := c.Encode(payload)
//	…
//	payload, err = c.Decode(stored)
//
// The keel command builds this chain when KEEL_CODEC_KEYS is set, with
// KEEL_CODEC_AD as the associated data, so that it reads what such an
// application writes; hitl.Config.Codec defaults to the engine's codec.
//
// # Envelopes
//
// Every encoded payload is an envelope that starts with Magic (0xC1),
// a byte that never occurs in UTF-8 text and therefore never starts a JSON
// document, then a kind byte ('Z' compressed, 'E' encrypted) and a format
// version. Decode returns data that is not one of its envelopes unchanged,
// so a store holding a mix of older plain JSON payloads and newer encoded
// ones reads both. An envelope with a version this code does not know is
// refused with ErrVersion rather than misread.
//
// Compressed: Magic 'Z' 0x01, then one zstd frame. Payloads below
// CompressorConfig.Threshold, and those compression does not shrink, are
// stored as they are.
//
// Encrypted: Magic 'E' 0x01, the key ID's length and the key ID, a random
// 96-bit nonce, the ciphertext and the 16-byte GCM tag. The header is
// authenticated along with EncryptorConfig.AssociatedData.
//
// # Key rotation
//
// A Keyring maps key IDs to 32-byte keys. The first key is active: it
// encrypts every new payload. All keys decrypt, chosen by the key ID in the
// envelope. To rotate, add the new key in front ("k2:…,k1:…") and deploy;
// new payloads use k2 while those written under k1 still decode. Remove k1
// only once no stored payload needs it (closed runs age out with
// durable.Config.Retention). Decoding an envelope whose key is gone fails
// with ErrUnknownKey; a tampered or truncated one with ErrDecrypt or
// ErrMalformed. Nothing is ever returned half-decoded.
//
// # Errors
//
// Match errors with errors.Is against ErrMalformed, ErrVersion,
// ErrUnknownKey, ErrDecrypt, ErrTooLarge, ErrNotEncrypted, ErrNoKeys and
// ErrInvalidKey. Error messages never contain key material.
package codec
