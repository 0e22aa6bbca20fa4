package durable

import (
	"bytes"
	"testing"
)

// An activity's result applied as the worker built it must be the bytes
// that decoding its event gives, or the first run and a replay of the
// same history could see different inputs.
func TestCanonicalRawIsWhatDecodingGives(t *testing.T) {
	for _, raw := range []string{
		``,
		`null`,
		`3`,
		`"plain"`,
		` { "a" : [ 1, 2 , 3 ] ,"b":"x" } `,
		"{\n\t\"html\": \"<b>&</b>\"\n}",
		`"line\u2028separator and \u00e9"`,
		"\"raw \u2028 separator\"",
		`{"nested":{"deep":[{"k":"v"},null,true,1.5e3]}}`,
	} {
		built := &eventData{Seq: 2, Result: canonicalRaw([]byte(raw)), Attempt: 1}
		decoded, err := unmarshalEvent(mustMarshal(built))
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		if !bytes.Equal(built.Result, decoded.Result) || (built.Result == nil) != (decoded.Result == nil) {
			t.Errorf("%q: applied %q, replay gives %q", raw, built.Result, decoded.Result)
		}
	}
}
