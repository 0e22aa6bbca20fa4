package hitl

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/go-json-experiment/json/jsontext"
)

// Hash returns the hash that binds an approval, or a decision, to the exact
// action and arguments it authorizes: the hex SHA-256 of the canonical JSON
// (RFC 8785) of {"action": action, "args": args}. Canonical means that key
// order and white space do not change the hash; integers keep their exact
// digits, so two amounts that differ past 2⁵³ never share a hash.
//
// Empty args hash as JSON null. Args that are not valid JSON give an error
// matching ErrInvalidInput.
func Hash(action string, args json.RawMessage) (string, error) {
	canon, err := Canonical(args)
	if err != nil {
		return "", err
	}
	a, err := json.Marshal(action)
	if err != nil {
		return "", fmt.Errorf("hitl: hash: %w", err)
	}
	doc := make([]byte, 0, len(a)+len(canon)+20)
	doc = append(doc, `{"action":`...)
	doc = append(doc, a...)
	doc = append(doc, `,"args":`...)
	doc = append(doc, canon...)
	doc = append(doc, '}')
	v := jsontext.Value(doc)
	if err := v.Canonicalize(jsontext.CanonicalizeRawInts(false)); err != nil {
		return "", fmt.Errorf("%w: hash: %w", ErrInvalidInput, err)
	}
	sum := sha256.Sum256(v)
	return hex.EncodeToString(sum[:]), nil
}

// Canonical returns args in canonical JSON form (RFC 8785, with integers
// kept exact): the form approvals store and hash. Empty args become null.
func Canonical(args json.RawMessage) (json.RawMessage, error) {
	if len(args) == 0 {
		return json.RawMessage("null"), nil
	}
	v := jsontext.Value(append([]byte(nil), args...))
	if err := v.Canonicalize(jsontext.CanonicalizeRawInts(false)); err != nil {
		return nil, fmt.Errorf("%w: arguments are not valid JSON: %w", ErrInvalidInput, err)
	}
	return json.RawMessage(v), nil
}
