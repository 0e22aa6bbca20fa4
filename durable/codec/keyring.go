package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
)

// KeysEnv is the environment variable KeyringFromEnv reads by default:
// a comma-separated list of id:base64key entries, the first being the
// active key, for example
//
//	KEEL_CODEC_KEYS="k2:<base64 of 32 bytes>,k1:<base64 of 32 bytes>"
//
// A key can be made with `openssl rand -base64 32`.
const KeysEnv = "KEEL_CODEC_KEYS"

// KeySize is the length of an AES-256 key in bytes.
const KeySize = 32

// maxKeyIDLen bounds a key ID so that it fits the envelope's length byte.
const maxKeyIDLen = 64

// Key is one named AES-256 key.
type Key struct {
	// ID names the key in every envelope it encrypts: 1 to 64 characters
	// from A-Z, a-z, 0-9, '.', '_' and '-'.
	ID string
	// Secret is the 32-byte key.
	Secret []byte
}

// Keyring holds the keys an Encryptor uses: the active one encrypts, and
// every one decrypts, so that data written under a retired key stays
// readable after rotation. A Keyring is immutable and safe for concurrent
// use.
type Keyring struct {
	ids   []string // active first
	aeads map[string]cipher.AEAD
}

// NewKeyring returns a keyring of keys; the first is the active key.
// It fails with ErrNoKeys for no keys and ErrInvalidKey for a bad ID,
// a secret that is not KeySize bytes, or a duplicate ID.
//
// To rotate, put the new key first and keep the old ones after it until no
// stored payload uses them.
func NewKeyring(keys ...Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("codec: new keyring: %w", ErrNoKeys)
	}
	kr := &Keyring{aeads: make(map[string]cipher.AEAD, len(keys))}
	for _, k := range keys {
		if err := validKeyID(k.ID); err != nil {
			return nil, fmt.Errorf("codec: new keyring: %w", err)
		}
		if _, dup := kr.aeads[k.ID]; dup {
			return nil, fmt.Errorf("codec: new keyring: %w: duplicate key ID %q", ErrInvalidKey, k.ID)
		}
		if len(k.Secret) != KeySize {
			return nil, fmt.Errorf("codec: new keyring: %w: key %q is %d bytes, want %d", ErrInvalidKey, k.ID, len(k.Secret), KeySize)
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("codec: new keyring: key %q: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("codec: new keyring: key %q: %w", k.ID, err)
		}
		kr.ids = append(kr.ids, k.ID)
		kr.aeads[k.ID] = aead
	}
	return kr, nil
}

// ParseKeyring parses a keyring from its text form, "id:base64key" entries
// separated by commas, the first being active (see KeysEnv). Keys may use
// standard or URL-safe base64, padded or not. Errors never include key
// material.
func ParseKeyring(s string) (*Keyring, error) {
	var keys []Key
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		id, b64, ok := strings.Cut(entry, ":")
		id, b64 = strings.TrimSpace(id), strings.TrimSpace(b64)
		if !ok {
			return nil, fmt.Errorf("codec: parse keyring: %w: entry %d has no ':' between ID and key", ErrInvalidKey, i+1)
		}
		secret, err := decodeBase64(b64)
		if err != nil {
			return nil, fmt.Errorf("codec: parse keyring: %w: key %q is not base64", ErrInvalidKey, id)
		}
		keys = append(keys, Key{ID: id, Secret: secret})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("codec: parse keyring: %w", ErrNoKeys)
	}
	return NewKeyring(keys...)
}

// KeyringFromEnv parses the keyring held in the environment variable name
// (KeysEnv when name is empty). An unset or empty variable is ErrNoKeys.
func KeyringFromEnv(name string) (*Keyring, error) {
	if name == "" {
		name = KeysEnv
	}
	v := os.Getenv(name)
	if strings.TrimSpace(v) == "" {
		return nil, fmt.Errorf("codec: keyring from $%s: %w: the variable is unset or empty", name, ErrNoKeys)
	}
	kr, err := ParseKeyring(v)
	if err != nil {
		return nil, fmt.Errorf("codec: keyring from $%s: %w", name, err)
	}
	return kr, nil
}

// ActiveID returns the ID of the key that encrypts.
func (k *Keyring) ActiveID() string { return k.ids[0] }

// IDs returns every key ID, the active one first.
func (k *Keyring) IDs() []string { return append([]string(nil), k.ids...) }

// Has reports whether the keyring holds a key with that ID.
func (k *Keyring) Has(id string) bool {
	_, ok := k.aeads[id]
	return ok
}

func validKeyID(id string) error {
	if id == "" || len(id) > maxKeyIDLen {
		return fmt.Errorf("%w: key ID %q must be 1 to %d characters", ErrInvalidKey, id, maxKeyIDLen)
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return fmt.Errorf("%w: key ID %q may only hold A-Z, a-z, 0-9, '.', '_' and '-'", ErrInvalidKey, id)
		}
	}
	return nil
}

func decodeBase64(s string) ([]byte, error) {
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		var b []byte
		if b, err = enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, err
}
