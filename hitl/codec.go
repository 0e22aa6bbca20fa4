package hitl

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/keelhq/keel/durable"
)

// errNoCodec: a JSON column holds an encoded value and the Service has no
// codec to decode it.
var errNoCodec = errors.New("the value is encoded and Config.Codec is not set")

// seal encodes a payload column's value for the table, in the engine's
// text form (durable.EncodeText), which canonical JSON never takes. Without
// a codec it returns v as it is.
func (s *Service) seal(v string) (string, error) {
	if s.codec == nil {
		return v, nil
	}
	out, err := durable.EncodeText(s.codec, v)
	if err != nil {
		return "", fmt.Errorf("codec: %w", err)
	}
	return out, nil
}

// openText decodes a text column's value (title, details, comment).
// Values not in the encoded form are plain: rows written before the codec
// was configured. A Service without a codec returns every value as stored,
// so that a plain comment that happens to start like the encoded form
// never makes an approval unreadable; so does a value that only starts
// like it.
func (s *Service) openText(v string) (string, error) {
	if s.codec == nil {
		return v, nil
	}
	out, err := durable.DecodeText(s.codec, v)
	if errors.Is(err, durable.ErrMalformedText) {
		return v, nil // a plain value that starts like the encoded form
	}
	if err != nil {
		return "", fmt.Errorf("codec: %w", err)
	}
	return out, nil
}

// openJSON decodes a JSON column's value (arguments, edited arguments).
// Plain JSON is returned as it is; an encoded value needs the codec.
func (s *Service) openJSON(v string) (json.RawMessage, error) {
	if !durable.IsEncodedText(v) {
		return json.RawMessage(v), nil
	}
	if s.codec == nil {
		return nil, fmt.Errorf("codec: %w", errNoCodec)
	}
	out, err := durable.DecodeText(s.codec, v)
	if err != nil {
		return nil, fmt.Errorf("codec: %w", err)
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
