package codec

import (
	"errors"
	"fmt"
)

// Codec transforms a payload on its way to the store (Encode) and back
// (Decode). Decode must accept what Encode produced and, so that stores
// holding older plain payloads stay readable, return data that is not one
// of its envelopes unchanged. Implementations must be safe for concurrent
// use.
type Codec interface {
	Encode(data []byte) ([]byte, error)
	Decode(data []byte) ([]byte, error)
}

// Sentinel errors. Match them with errors.Is.
var (
	// ErrMalformed: data carries this package's envelope marker but the
	// envelope is truncated or its header is invalid.
	ErrMalformed = errors.New("codec: malformed envelope")
	// ErrVersion: the envelope was written by a newer format version than
	// this code reads.
	ErrVersion = errors.New("codec: unsupported envelope version")
	// ErrUnknownKey: the envelope was encrypted with a key ID that the
	// keyring does not hold.
	ErrUnknownKey = errors.New("codec: unknown key ID")
	// ErrDecrypt: the ciphertext failed authentication: it was tampered
	// with, truncated, or encrypted under other associated data.
	ErrDecrypt = errors.New("codec: decryption failed")
	// ErrTooLarge: a compressed payload decodes to more than the
	// compressor's MaxDecodedBytes.
	ErrTooLarge = errors.New("codec: decoded payload too large")
	// ErrNotEncrypted: an Encryptor with RequireEncrypted set was given
	// data that is not an encrypted envelope.
	ErrNotEncrypted = errors.New("codec: payload is not encrypted")
	// ErrNoKeys: no keys were configured (for example, the environment
	// variable is unset or empty).
	ErrNoKeys = errors.New("codec: no keys")
	// ErrInvalidKey: a key or key ID is malformed (wrong length, bad base64,
	// bad characters, duplicate ID).
	ErrInvalidKey = errors.New("codec: invalid key")
)

// Envelope layout. Every envelope starts with Magic, a byte that never
// occurs in UTF-8 text and so never starts a JSON document, followed by
// a kind byte and a format version byte.
const (
	// Magic is the first byte of every envelope.
	Magic byte = 0xC1

	kindCompressed byte = 'Z'
	kindEncrypted  byte = 'E'

	headerLen = 3
)

// IsEnvelope reports whether data starts with the envelope marker, that is,
// whether some codec of this package produced it (plain JSON never does).
func IsEnvelope(data []byte) bool {
	return len(data) > 0 && data[0] == Magic
}

// envelopeKind returns the kind byte of data if it is an envelope with a
// complete header.
func envelopeKind(data []byte) (kind byte, ok bool) {
	if len(data) < 2 || data[0] != Magic {
		return 0, false
	}
	return data[1], true
}

// chain applies codecs in order on Encode and in reverse on Decode.
type chain []Codec

// Chain returns a Codec that encodes with each codec in order and decodes
// in reverse order. Put compression before encryption: Chain(compressor,
// encryptor) compresses the plain text, then encrypts it. Nil codecs are
// skipped; an empty chain returns data unchanged.
func Chain(codecs ...Codec) Codec {
	c := make(chain, 0, len(codecs))
	for _, x := range codecs {
		if x != nil {
			c = append(c, x)
		}
	}
	return c
}

// Encode runs every codec's Encode in order.
func (c chain) Encode(data []byte) ([]byte, error) {
	var err error
	for i, x := range c {
		if data, err = x.Encode(data); err != nil {
			return nil, fmt.Errorf("codec: chain step %d encode: %w", i, err)
		}
	}
	return data, nil
}

// Decode runs every codec's Decode in reverse order.
func (c chain) Decode(data []byte) ([]byte, error) {
	var err error
	for i := len(c) - 1; i >= 0; i-- {
		if data, err = c[i].Decode(data); err != nil {
			return nil, fmt.Errorf("codec: chain step %d decode: %w", i, err)
		}
	}
	return data, nil
}
