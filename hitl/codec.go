package hitl

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// codecPrefix marks a column value stored encoded: the codec's output,
// base64-encoded, follows it. The engine marks the failure messages it
// stores encoded the same way. Canonical JSON never starts with it, so a
// JSON column tells encoded from plain values without doubt.
const codecPrefix = "keel-codec:"

// errNoCodec: a JSON column holds an encoded value and the Service has no
// codec to decode it.
var errNoCodec = errors.New("the value is encoded and Config.Codec is not set")

// seal encodes a payload column's value for the table. Without a codec, or
// for an empty value, it returns v as it is.
func (s *Service) seal(v string) (string, error) {
	if s.codec == nil || v == "" {
		return v, nil
	}
	b, err := s.codec.Encode([]byte(v))
	if err != nil {
		return "", fmt.Errorf("codec: encode: %w", err)
	}
	return codecPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// openText decodes a text column's value (title, details, comment).
// Values without the prefix are plain: rows written before the codec was
// configured. A Service without a codec returns every value as stored, so
// that a plain comment that happens to start with the prefix never makes
// an approval unreadable; so does a prefixed value that is not base64.
func (s *Service) openText(v string) (string, error) {
	rest, ok := strings.CutPrefix(v, codecPrefix)
	if !ok || s.codec == nil {
		return v, nil
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return v, nil // a plain value that starts with the prefix
	}
	out, err := s.codec.Decode(b)
	if err != nil {
		return "", fmt.Errorf("codec: decode: %w", err)
	}
	return string(out), nil
}

// openJSON decodes a JSON column's value (arguments, edited arguments).
// Plain JSON is returned as it is; an encoded value needs the codec.
func (s *Service) openJSON(v string) (json.RawMessage, error) {
	rest, ok := strings.CutPrefix(v, codecPrefix)
	if !ok {
		return json.RawMessage(v), nil
	}
	if s.codec == nil {
		return nil, fmt.Errorf("codec: %w", errNoCodec)
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("codec: decode: %w", err)
	}
	out, err := s.codec.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("codec: decode: %w", err)
	}
	return json.RawMessage(out), nil
}

// openApproval decodes a scanned approval's payload columns in place.
func (s *Service) openApproval(a *Approval) error {
	var err error
	if a.Title, err = s.openText(a.Title); err != nil {
		return fmt.Errorf("approval %s: title: %w", a.ID, err)
	}
	if a.Details, err = s.openText(a.Details); err != nil {
		return fmt.Errorf("approval %s: details: %w", a.ID, err)
	}
	if a.Args, err = s.openJSON(string(a.Args)); err != nil {
		return fmt.Errorf("approval %s: args: %w", a.ID, err)
	}
	return nil
}

// openVote decodes a scanned vote's payload columns in place.
func (s *Service) openVote(v *voteRow) error {
	var err error
	if v.Comment, err = s.openText(v.Comment); err != nil {
		return fmt.Errorf("vote %s: comment: %w", v.ID, err)
	}
	if len(v.EditedArgs) > 0 {
		if v.EditedArgs, err = s.openJSON(string(v.EditedArgs)); err != nil {
			return fmt.Errorf("vote %s: edited args: %w", v.ID, err)
		}
	}
	return nil
}
