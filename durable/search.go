package durable

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/keelhq/keel/durable/store"
)

// Search attributes are typed key-values that runs are listed and
// filtered by (ListOptions.SearchAttributes); a memo is JSON kept with a
// run and shown with it, never indexed.
//
// A search attribute value is one of:
//
//   - string: a keyword, matched exactly;
//   - []string: a keyword list, matched by any one of its keywords;
//   - int64 (or any Go integer type that fits): compared as int64;
//   - float64 (or float32): finite;
//   - bool;
//   - time.Time: kept with nanoseconds, in UTC, between the years 1678
//     and 2261.
//
// Keys are 1 to MaxSearchAttributeKeyBytes bytes, and a run has at most
// MaxSearchAttributes of them. A filter matches values of its own type
// only: an int filter does not match a float attribute, nor a keyword
// "42" an int 42.
const (
	MaxSearchAttributes        = 64
	MaxSearchAttributeKeyBytes = 128
)

// searchMarker is the name of the marker that records an upsert of search
// attributes in history; its Input is the upsert as the store reads it.
const searchMarker = "SearchAttributesUpserted"

var (
	// ErrInvalidSearchAttribute: a search attribute or a search filter was
	// refused: an empty or too long key, too many attributes, a value or
	// filter of an unsupported type. Nothing was written.
	ErrInvalidSearchAttribute = errors.New("durable: invalid search attribute")
	// ErrInvalidMemo: a memo value cannot be encoded as JSON. Nothing was
	// written.
	ErrInvalidMemo = errors.New("durable: invalid memo")
)

// UpsertSearchAttributes changes the run's search attributes from workflow
// code: each key is set to its value, or removed when the value is nil.
// The change is recorded in history (a MarkerRecorded event named
// SearchAttributesUpserted) and applied when the workflow task commits;
// replays do not apply it again.
//
// It fails with ErrInvalidSearchAttribute, changing nothing, for a value of
// an unsupported type, a bad key, or when the run would have more than
// MaxSearchAttributes attributes.
func UpsertSearchAttributes(ctx Context, attrs map[string]any) error {
	rs := stateOf(ctx)
	rs.mustWrite()
	upsert := make(map[string]*store.SearchValue, len(attrs))
	for k, v := range attrs {
		if err := checkSearchKey(k); err != nil {
			return err
		}
		if v == nil {
			upsert[k] = nil
			continue
		}
		sv, err := toSearchValue(k, v)
		if err != nil {
			return err
		}
		upsert[k] = &sv
	}
	if len(upsert) == 0 {
		return nil
	}
	delta, err := json.Marshal(upsert)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSearchAttribute, err)
	}
	if rs.replaying {
		// The history says whether the first execution of this call
		// accepted the upsert: it recorded this marker next. (The count
		// that execution checked is not known during a replay.)
		rec, ok := rs.recorded[rs.seq+1]
		if !ok || rec.typ != EventMarkerRecorded || rec.data.Name != searchMarker || !bytes.Equal(rec.data.Input, delta) {
			return fmt.Errorf("%w: more than %d attributes", ErrInvalidSearchAttribute, MaxSearchAttributes)
		}
	} else if n := len(store.ApplySearchUpsert(rs.search.attrs, upsert)); n > MaxSearchAttributes {
		return fmt.Errorf("%w: %d attributes, limit %d", ErrInvalidSearchAttribute, n, MaxSearchAttributes)
	}
	rs.mustCommand(EventMarkerRecorded, &eventData{Name: searchMarker, Input: delta})
	rs.search.attrs = store.ApplySearchUpsert(rs.search.attrs, upsert)
	if !rs.replaying {
		if rs.search.upsert == nil {
			rs.search.upsert = map[string]*store.SearchValue{}
		}
		maps.Copy(rs.search.upsert, upsert)
	}
	return nil
}

// searchState is a run's search attributes, for workflow code.
type searchState struct {
	// attrs are the run's attributes as of the workflow code's progress:
	// live, the run's current attributes.
	attrs map[string]store.SearchValue
	// memo is the run's memo, passed on to its successor.
	memo []byte
	// upsert is the current task's change, for its commit.
	upsert map[string]*store.SearchValue
}

// newSearchState starts from the run's stored attributes. A replay then
// applies the history's upserts on top of them, which ends with the same
// attributes: the stored ones are those upserts' outcome.
func newSearchState(run store.Run) searchState {
	attrs, _ := store.ParseSearchAttributes(run.SearchAttributes)
	return searchState{attrs: attrs, memo: run.Memo}
}

// upsertJSON is the current task's upsert for its commit; nil for none.
func (s *searchState) upsertJSON() []byte {
	if len(s.upsert) == 0 {
		return nil
	}
	return mustJSON(s.upsert)
}

// current is the run's attributes as the store reads them, for its
// successor.
func (s *searchState) current() []byte {
	b, _ := store.MarshalSearchAttributes(s.attrs)
	return b
}

func checkSearchKey(k string) error {
	if k == "" || len(k) > MaxSearchAttributeKeyBytes {
		return fmt.Errorf("%w: key %q must be 1 to %d bytes", ErrInvalidSearchAttribute, k, MaxSearchAttributeKeyBytes)
	}
	return nil
}

// toSearchValue converts a Go value to a typed search attribute value.
func toSearchValue(key string, v any) (store.SearchValue, error) {
	var sv store.SearchValue
	switch x := v.(type) {
	case string:
		sv = store.SearchValue{Type: store.SearchKeyword, Keyword: x}
	case []string:
		sv = store.SearchValue{Type: store.SearchKeywordList, Keywords: slices.Clone(x)}
		if sv.Keywords == nil {
			sv.Keywords = []string{}
		}
	case int:
		sv = intSearch(int64(x))
	case int8:
		sv = intSearch(int64(x))
	case int16:
		sv = intSearch(int64(x))
	case int32:
		sv = intSearch(int64(x))
	case int64:
		sv = intSearch(x)
	case uint8:
		sv = intSearch(int64(x))
	case uint16:
		sv = intSearch(int64(x))
	case uint32:
		sv = intSearch(int64(x))
	case uint:
		if uint64(x) > math.MaxInt64 {
			return sv, fmt.Errorf("%w: key %q: %d does not fit in an int64", ErrInvalidSearchAttribute, key, x)
		}
		sv = intSearch(int64(x))
	case uint64:
		if x > math.MaxInt64 {
			return sv, fmt.Errorf("%w: key %q: %d does not fit in an int64", ErrInvalidSearchAttribute, key, x)
		}
		sv = intSearch(int64(x))
	case float32:
		sv = store.SearchValue{Type: store.SearchFloat, Float: float64(x)}
	case float64:
		sv = store.SearchValue{Type: store.SearchFloat, Float: x}
	case bool:
		sv = store.SearchValue{Type: store.SearchBool, Bool: x}
	case time.Time:
		sv = store.SearchValue{Type: store.SearchTime, Time: x.UTC()}
	default:
		return sv, fmt.Errorf("%w: key %q: unsupported type %T (want string, []string, an integer, a float, bool or time.Time)",
			ErrInvalidSearchAttribute, key, v)
	}
	if err := sv.Validate(); err != nil {
		return sv, fmt.Errorf("%w: key %q: %w", ErrInvalidSearchAttribute, key, err)
	}
	return sv, nil
}

func intSearch(n int64) store.SearchValue { return store.SearchValue{Type: store.SearchInt, Int: n} }

// fromSearchValue is the Go value of a search attribute, as RunInfo shows
// it: string, []string, int64, float64, bool or time.Time.
func fromSearchValue(v store.SearchValue) any {
	switch v.Type {
	case store.SearchKeyword:
		return v.Keyword
	case store.SearchKeywordList:
		return slices.Clone(v.Keywords)
	case store.SearchInt:
		return v.Int
	case store.SearchFloat:
		return v.Float
	case store.SearchBool:
		return v.Bool
	case store.SearchTime:
		return v.Time
	}
	return nil
}

// encodeSearchAttributes checks a new run's search attributes and returns
// them as the store reads them (nil for none). Nil values are left out.
func encodeSearchAttributes(attrs map[string]any) ([]byte, error) {
	out := make(map[string]store.SearchValue, len(attrs))
	for k, v := range attrs {
		if err := checkSearchKey(k); err != nil {
			return nil, err
		}
		if v == nil {
			continue
		}
		sv, err := toSearchValue(k, v)
		if err != nil {
			return nil, err
		}
		out[k] = sv
	}
	if len(out) > MaxSearchAttributes {
		return nil, fmt.Errorf("%w: %d attributes, limit %d", ErrInvalidSearchAttribute, len(out), MaxSearchAttributes)
	}
	b, err := store.MarshalSearchAttributes(out)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSearchAttribute, err)
	}
	return b, nil
}

// encodeMemo returns a memo as JSON (nil for none), within the payload
// limit.
func (e *Engine) encodeMemo(memo map[string]any) ([]byte, error) {
	if len(memo) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(memo)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMemo, err)
	}
	if len(b) > e.limits.MaxPayloadBytes {
		return nil, fmt.Errorf("memo: %w: %d bytes, limit %d", ErrPayloadTooLarge, len(b), e.limits.MaxPayloadBytes)
	}
	return b, nil
}

// decodeSearchAttributes returns a run's stored attributes as Go values;
// nil for none or for attributes it cannot read.
func decodeSearchAttributes(b []byte) map[string]any {
	attrs, err := store.ParseSearchAttributes(b)
	if err != nil || len(attrs) == 0 {
		return nil
	}
	out := make(map[string]any, len(attrs))
	for k, v := range attrs {
		out[k] = fromSearchValue(v)
	}
	return out
}

// decodeMemo returns a run's stored memo by key; nil for none or for a
// memo that is not a JSON object.
func decodeMemo(b []byte) map[string]json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || len(m) == 0 {
		return nil
	}
	return m
}

// SearchFilter keeps the runs whose search attribute Key matches: equals
// Equal, or lies between Min and Max (inclusive; a nil bound is open).
// Values take the types of search attribute values; Equal a single one (a
// string also matches an element of a keyword list), Min and Max an
// integer, float or time.Time, both of one type.
type SearchFilter struct {
	Key      string
	Equal    any
	Min, Max any
}

// storeFilters checks filters and converts them for the store.
func storeFilters(fs []SearchFilter) ([]store.SearchFilter, error) {
	if len(fs) == 0 {
		return nil, nil
	}
	out := make([]store.SearchFilter, len(fs))
	for i, f := range fs {
		if err := checkSearchKey(f.Key); err != nil {
			return nil, err
		}
		sf := store.SearchFilter{Key: f.Key}
		for _, b := range []struct {
			v   any
			dst **store.SearchValue
		}{{f.Equal, &sf.Equal}, {f.Min, &sf.Min}, {f.Max, &sf.Max}} {
			if b.v == nil {
				continue
			}
			sv, err := toSearchValue(f.Key, b.v)
			if err != nil {
				return nil, err
			}
			*b.dst = &sv
		}
		if _, err := sf.Condition(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidSearchAttribute, err)
		}
		out[i] = sf
	}
	return out, nil
}
