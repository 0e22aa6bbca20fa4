package hitl

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// A review link token is base64url (unpadded) of
//
//	version (1 byte) | expiry (8 bytes, Unix milliseconds, big endian) |
//	nonce (16 bytes) | uvarint length + approval ID | uvarint length + reviewer |
//	HMAC-SHA256 (32 bytes) of everything before it, keyed by the link secret
//
// The nonce makes each token unique; Decide records it with the vote, so a
// token decides once.
const (
	linkVersion  = 1
	linkNonceLen = 16
	linkMACLen   = sha256.Size
	// linkMinLen is the shortest possible token: empty ID and reviewer.
	linkMinLen = 1 + 8 + linkNonceLen + 1 + 1 + linkMACLen
	// linkMaxField bounds the ID and reviewer lengths a token may claim.
	linkMaxField = 1024
)

// LinkClaims is what a verified review link says.
type LinkClaims struct {
	ApprovalID string
	Reviewer   string
	ExpiresAt  time.Time
	// Nonce (hex) identifies the token; Decide records it with the vote.
	Nonce string
}

// SignLink returns a signed, single-use token that lets reviewer decide
// approvalID until ttl from now: put it in the link of a review email. The
// token is URL-safe. Decide with DecideInput.LinkToken set to it accepts
// it once. An approval ID or reviewer longer than 1,024 bytes, which no
// token carries, fails with an error matching ErrInvalidInput.
func (s *Service) SignLink(approvalID, reviewer string, ttl time.Duration) (string, error) {
	if len(approvalID) > linkMaxField || len(reviewer) > linkMaxField {
		return "", fmt.Errorf("%w: a review link carries an approval ID and a reviewer of at most %d bytes each, not %d and %d",
			ErrInvalidInput, linkMaxField, len(approvalID), len(reviewer))
	}
	var nonce [linkNonceLen]byte
	_, _ = rand.Read(nonce[:]) // never fails
	b := make([]byte, 0, linkMinLen+len(approvalID)+len(reviewer)+4)
	b = append(b, linkVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(s.now().Add(ttl).UnixMilli()))
	b = append(b, nonce[:]...)
	b = binary.AppendUvarint(b, uint64(len(approvalID)))
	b = append(b, approvalID...)
	b = binary.AppendUvarint(b, uint64(len(reviewer)))
	b = append(b, reviewer...)
	b = append(b, s.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// VerifyLink checks a token's form, signature and expiry and returns its
// claims. It fails with ErrLinkMalformed (truncated or not a token),
// ErrLinkForged (signature does not verify) or ErrLinkExpired, all of
// which match ErrInvalidLink. It does not consult the database: whether
// the token was already used is checked by CheckLink and by Decide.
func (s *Service) VerifyLink(token string) (LinkClaims, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	// The decoder skips line breaks and ignores the unused low bits of the
	// last character: only the one string SignLink writes for these bytes
	// is a token.
	if err != nil || base64.RawURLEncoding.EncodeToString(b) != token || len(b) < linkMinLen || b[0] != linkVersion {
		return LinkClaims{}, ErrLinkMalformed
	}
	rest := b[1:]
	expiry := int64(binary.BigEndian.Uint64(rest))
	rest = rest[8:]
	nonce := rest[:linkNonceLen]
	rest = rest[linkNonceLen:]
	id, rest, ok := readField(rest)
	if !ok {
		return LinkClaims{}, ErrLinkMalformed
	}
	reviewer, rest, ok := readField(rest)
	if !ok || len(rest) != linkMACLen {
		return LinkClaims{}, ErrLinkMalformed
	}
	signed := b[:len(b)-linkMACLen]
	if !hmac.Equal(rest, s.mac(signed)) {
		return LinkClaims{}, ErrLinkForged
	}
	claims := LinkClaims{
		ApprovalID: string(id),
		Reviewer:   string(reviewer),
		ExpiresAt:  time.UnixMilli(expiry).UTC(),
		Nonce:      hex.EncodeToString(nonce),
	}
	if !s.now().Before(claims.ExpiresAt) {
		return LinkClaims{}, fmt.Errorf("%w at %s", ErrLinkExpired, claims.ExpiresAt.Format(time.RFC3339))
	}
	return claims, nil
}

// CheckLink is VerifyLink plus the single-use check: it also fails with
// ErrLinkUsed when a decision was already made with the token. Use it
// before showing a review page reached through a link.
func (s *Service) CheckLink(ctx context.Context, token string) (LinkClaims, error) {
	claims, err := s.VerifyLink(token)
	if err != nil {
		return LinkClaims{}, err
	}
	var n int
	err = s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT count(*) FROM hitl_votes WHERE link_nonce = ?`), claims.Nonce).Scan(&n)
	if err != nil {
		return LinkClaims{}, fmt.Errorf("hitl: check link: %w", err)
	}
	if n > 0 {
		return LinkClaims{}, ErrLinkUsed
	}
	return claims, nil
}

func (s *Service) mac(b []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("keel-hitl-link\x00"))
	m.Write(b)
	return m.Sum(nil)
}

// readField reads a uvarint-length-prefixed field.
func readField(b []byte) (field, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > linkMaxField || uint64(len(b)-k) < n {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}
