package codec

import (
	"crypto/rand"
	"fmt"
)

const (
	encryptVersion byte = 1
	nonceSize           = 12 // 96-bit GCM nonce
	tagSize             = 16
)

// EncryptorConfig configures an Encryptor. The zero value is valid.
type EncryptorConfig struct {
	// AssociatedData binds every envelope to a context, such as
	// "keel/payloads" or a tenant name: it is authenticated but not stored,
	// and Decode under other associated data fails with ErrDecrypt.
	// Optional; default none.
	AssociatedData []byte
	// RequireEncrypted makes Decode refuse data that is not an encrypted
	// envelope with ErrNotEncrypted, instead of returning it unchanged.
	// Leave it off while a store still holds plain payloads. Optional;
	// default false.
	RequireEncrypted bool
}

// Encryptor is a Codec that encrypts payloads with AES-256-GCM under the
// keyring's active key. Its envelope is:
//
//	Magic 'E' version(1) idLen(1) keyID nonce(12) ciphertext tag(16)
//
// The header (everything before the nonce) and EncryptorConfig.AssociatedData
// are authenticated, so a changed key ID or version fails to decrypt. Each
// Encode draws a fresh random nonce. Decode picks the key by the envelope's
// key ID, so data encrypted under a retired key decodes as long as the
// keyring still holds it.
type Encryptor struct {
	kr  *Keyring
	cfg EncryptorConfig
}

var _ Codec = (*Encryptor)(nil)

// NewEncryptor returns an Encryptor over kr. cfg may be nil.
func NewEncryptor(kr *Keyring, cfg *EncryptorConfig) (*Encryptor, error) {
	if kr == nil || len(kr.ids) == 0 {
		return nil, fmt.Errorf("codec: new encryptor: %w", ErrNoKeys)
	}
	e := &Encryptor{kr: kr}
	if cfg != nil {
		e.cfg = *cfg
		e.cfg.AssociatedData = append([]byte(nil), cfg.AssociatedData...)
	}
	return e, nil
}

// Encode encrypts data under the active key.
func (e *Encryptor) Encode(data []byte) ([]byte, error) {
	id := e.kr.ActiveID()
	aead := e.kr.aeads[id]
	hlen := headerLen + 1 + len(id)
	out := make([]byte, hlen+nonceSize, hlen+nonceSize+len(data)+tagSize)
	out[0], out[1], out[2], out[3] = Magic, kindEncrypted, encryptVersion, byte(len(id))
	copy(out[headerLen+1:], id)
	nonce := out[hlen : hlen+nonceSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("codec: encrypt: read nonce: %w", err)
	}
	return aead.Seal(out, nonce, data, e.additionalData(out[:hlen])), nil
}

// Decode decrypts an encryption envelope. Other data is returned unchanged,
// or refused with ErrNotEncrypted when RequireEncrypted is set.
func (e *Encryptor) Decode(data []byte) ([]byte, error) {
	if kind, ok := envelopeKind(data); !ok || kind != kindEncrypted {
		if e.cfg.RequireEncrypted {
			return nil, fmt.Errorf("codec: decrypt: %w", ErrNotEncrypted)
		}
		return data, nil
	}
	if len(data) < headerLen+1 {
		return nil, fmt.Errorf("codec: decrypt: %w: %d-byte header", ErrMalformed, len(data))
	}
	if v := data[2]; v != encryptVersion {
		return nil, fmt.Errorf("codec: decrypt: %w: %d", ErrVersion, v)
	}
	idLen := int(data[3])
	hlen := headerLen + 1 + idLen
	if idLen == 0 || len(data) < hlen+nonceSize+tagSize {
		return nil, fmt.Errorf("codec: decrypt: %w: %d bytes is too short", ErrMalformed, len(data))
	}
	id := string(data[headerLen+1 : hlen])
	aead, ok := e.kr.aeads[id]
	if !ok {
		return nil, fmt.Errorf("codec: decrypt: %w: %q", ErrUnknownKey, id)
	}
	nonce := data[hlen : hlen+nonceSize]
	out, err := aead.Open(nil, nonce, data[hlen+nonceSize:], e.additionalData(data[:hlen]))
	if err != nil {
		return nil, fmt.Errorf("codec: decrypt with key %q: %w", id, ErrDecrypt)
	}
	if out == nil {
		out = []byte{}
	}
	return out, nil
}

// additionalData returns a copy of the header followed by the configured
// associated data; a copy, because AEAD forbids additional data that
// overlaps the output.
func (e *Encryptor) additionalData(header []byte) []byte {
	ad := make([]byte, 0, len(header)+len(e.cfg.AssociatedData))
	return append(append(ad, header...), e.cfg.AssociatedData...)
}
