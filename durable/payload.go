package durable

import (
	"encoding/json"
	"fmt"
)

// Limits bound the size of payloads and histories. Zero fields take the
// defaults given, which are Temporal's.
type Limits struct {
	// MaxPayloadBytes is the largest encoded payload (workflow input and
	// result, activity input and result, signal). Optional; default 2 MiB.
	MaxPayloadBytes int
	// WarnEvents and WarnBytes log a warning once a run's history passes
	// them. Optional; defaults 10,240 events and 10 MiB.
	WarnEvents int64
	WarnBytes  int64
	// FailEvents and FailBytes fail the run with ErrHistoryTooLarge.
	// Optional; defaults 51,200 events and 50 MiB.
	FailEvents int64
	FailBytes  int64
}

// WithDefaults returns l with zero fields set to their defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxPayloadBytes == 0 {
		l.MaxPayloadBytes = 2 << 20
	}
	if l.WarnEvents == 0 {
		l.WarnEvents = 10240
	}
	if l.WarnBytes == 0 {
		l.WarnBytes = 10 << 20
	}
	if l.FailEvents == 0 {
		l.FailEvents = 51200
	}
	if l.FailBytes == 0 {
		l.FailBytes = 50 << 20
	}
	return l
}

// encode marshals v as JSON and enforces the payload limit.
func (e *Engine) encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("durable: encode payload: %w", err)
	}
	if len(b) > e.limits.MaxPayloadBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrPayloadTooLarge, len(b), e.limits.MaxPayloadBytes)
	}
	return b, nil
}

// decode unmarshals a JSON payload into a T.
func decode[T any](b []byte) (T, error) {
	var v T
	if len(b) == 0 {
		return v, nil
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("durable: decode payload into %T: %w", v, err)
	}
	return v, nil
}
