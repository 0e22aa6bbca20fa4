package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// ErrInvalidSearch: search attributes, an upsert of them or a search
// filter that a store cannot read (an unknown type, a value that does not
// match its type, a filter that is neither an equality nor a range).
// Nothing was written.
var ErrInvalidSearch = errors.New("invalid search attributes or filter")

// SearchType is the type of a search attribute's value. A key may hold
// values of different types in different runs; a filter matches values of
// its own type only (and a keyword filter also matches the elements of a
// keyword list).
type SearchType string

// Search attribute types.
const (
	SearchKeyword     SearchType = "keyword"      // a string, matched exactly
	SearchKeywordList SearchType = "keyword_list" // strings; a keyword filter matches any of them
	SearchInt         SearchType = "int"          // int64
	SearchFloat       SearchType = "float"        // float64, finite
	SearchBool        SearchType = "bool"
	SearchTime        SearchType = "time" // with nanoseconds, between the years 1678 and 2262
)

// SearchValue is one typed search attribute value: Type says which field
// holds it.
//
// Search attributes cross the Store interface as JSON: an object that maps
// each key to a SearchValue, written {"type": …, "value": …}:
//
//	{"customer": {"type": "keyword", "value": "acme"},
//	 "tags":     {"type": "keyword_list", "value": ["vip", "eu"]},
//	 "amount":   {"type": "int", "value": 42},
//	 "score":    {"type": "float", "value": 0.5},
//	 "urgent":   {"type": "bool", "value": true},
//	 "due":      {"type": "time", "value": "2030-01-02T03:04:05.000000006Z"}}
//
// An upsert (CompleteWorkflowTaskParams.UpsertSearchAttributes) is the same
// object where null removes a key.
type SearchValue struct {
	Type     SearchType
	Keyword  string
	Keywords []string
	Int      int64
	Float    float64
	Bool     bool
	Time     time.Time
}

// searchValueJSON is the JSON form of a SearchValue.
type searchValueJSON struct {
	Type  SearchType      `json:"type"`
	Value json.RawMessage `json:"value"`
}

// Validate reports whether v is a value of a known type that can be
// stored and indexed (ErrInvalidSearch otherwise).
func (v SearchValue) Validate() error {
	switch v.Type {
	case SearchKeyword, SearchKeywordList, SearchInt, SearchBool:
	case SearchFloat:
		if math.IsNaN(v.Float) || math.IsInf(v.Float, 0) {
			return fmt.Errorf("%w: float %v is not finite", ErrInvalidSearch, v.Float)
		}
	case SearchTime:
		if y := v.Time.UTC().Year(); y < 1678 || y > 2261 {
			return fmt.Errorf("%w: time %v is out of range", ErrInvalidSearch, v.Time)
		}
	default:
		return fmt.Errorf("%w: unknown type %q", ErrInvalidSearch, v.Type)
	}
	return nil
}

// MarshalJSON writes v as {"type": …, "value": …}; times in RFC 3339 with
// nanoseconds, in UTC.
func (v SearchValue) MarshalJSON() ([]byte, error) {
	if err := v.Validate(); err != nil {
		return nil, err
	}
	var val any
	switch v.Type {
	case SearchKeyword:
		val = v.Keyword
	case SearchKeywordList:
		val = v.Keywords
		if v.Keywords == nil {
			val = []string{}
		}
	case SearchInt:
		val = v.Int
	case SearchFloat:
		val = v.Float
	case SearchBool:
		val = v.Bool
	case SearchTime:
		val = v.Time.UTC().Format(time.RFC3339Nano)
	}
	raw, err := json.Marshal(val)
	if err != nil {
		return nil, err
	}
	return json.Marshal(searchValueJSON{Type: v.Type, Value: raw})
}

// UnmarshalJSON reads the form MarshalJSON writes, and fails with
// ErrInvalidSearch on anything else.
func (v *SearchValue) UnmarshalJSON(b []byte) error {
	var j searchValueJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSearch, err)
	}
	out := SearchValue{Type: j.Type}
	var dst any
	switch j.Type {
	case SearchKeyword:
		dst = &out.Keyword
	case SearchKeywordList:
		dst = &out.Keywords
	case SearchInt:
		dst = &out.Int
	case SearchFloat:
		dst = &out.Float
	case SearchBool:
		dst = &out.Bool
	case SearchTime:
		var s string
		if err := strictUnmarshal(j.Value, &s); err != nil {
			return fmt.Errorf("%w: time: %w", ErrInvalidSearch, err)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("%w: time: %w", ErrInvalidSearch, err)
		}
		out.Time = t.UTC()
	default:
		return fmt.Errorf("%w: unknown type %q", ErrInvalidSearch, j.Type)
	}
	if dst != nil {
		if err := strictUnmarshal(j.Value, dst); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalidSearch, j.Type, err)
		}
	}
	if out.Type == SearchKeywordList && out.Keywords == nil {
		out.Keywords = []string{}
	}
	if err := out.Validate(); err != nil {
		return err
	}
	*v = out
	return nil
}

// strictUnmarshal decodes a JSON value that must be present and not null.
func strictUnmarshal(b json.RawMessage, dst any) error {
	if len(b) == 0 || bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return errors.New("missing value")
	}
	return json.Unmarshal(b, dst)
}

// ParseSearchAttributes reads a JSON object of search attributes; empty
// input is no attributes (a nil map).
func ParseSearchAttributes(b []byte) (map[string]SearchValue, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m map[string]SearchValue
	if err := json.Unmarshal(b, &m); err != nil {
		if errors.Is(err, ErrInvalidSearch) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidSearch, err)
	}
	for k := range m {
		if k == "" {
			return nil, fmt.Errorf("%w: empty key", ErrInvalidSearch)
		}
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// ParseSearchUpsert reads an upsert of search attributes: a JSON object
// whose null values remove their key (a nil *SearchValue).
func ParseSearchUpsert(b []byte) (map[string]*SearchValue, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m map[string]*SearchValue
	if err := json.Unmarshal(b, &m); err != nil {
		if errors.Is(err, ErrInvalidSearch) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidSearch, err)
	}
	for k := range m {
		if k == "" {
			return nil, fmt.Errorf("%w: empty key", ErrInvalidSearch)
		}
	}
	return m, nil
}

// MarshalSearchAttributes writes attributes as a JSON object, with keys
// in order; nil for none.
func MarshalSearchAttributes(m map[string]SearchValue) ([]byte, error) {
	if len(m) == 0 {
		return nil, nil
	}
	return json.Marshal(m)
}

// ApplySearchUpsert returns attrs with upsert applied: each key set to its
// value, or removed for a nil value. attrs is not changed.
func ApplySearchUpsert(attrs map[string]SearchValue, upsert map[string]*SearchValue) map[string]SearchValue {
	out := make(map[string]SearchValue, len(attrs)+len(upsert))
	for k, v := range attrs {
		out[k] = v
	}
	for k, v := range upsert {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = *v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// SearchIndexEntry is one entry of a search attribute in a store's index:
// exactly one of Text, Int and Float is set, by Type. Keywords (also each
// element of a keyword list) index as keyword in Text; ints, bools (0 or
// 1) and times (Unix nanoseconds) in Int; floats in Float.
type SearchIndexEntry struct {
	Type  SearchType
	Text  *string
	Int   *int64
	Float *float64
}

// IndexEntries returns the index entries of v: one, or one per distinct
// element of a keyword list (none for an empty list).
func (v SearchValue) IndexEntries() []SearchIndexEntry {
	switch v.Type {
	case SearchKeyword:
		return []SearchIndexEntry{{Type: SearchKeyword, Text: &v.Keyword}}
	case SearchKeywordList:
		ks := slices.Clone(v.Keywords)
		slices.Sort(ks)
		ks = slices.Compact(ks)
		out := make([]SearchIndexEntry, len(ks))
		for i := range ks {
			out[i] = SearchIndexEntry{Type: SearchKeyword, Text: &ks[i]}
		}
		return out
	case SearchFloat:
		return []SearchIndexEntry{{Type: SearchFloat, Float: &v.Float}}
	}
	n, _ := v.indexInt()
	return []SearchIndexEntry{{Type: v.Type, Int: &n}}
}

// indexInt is the Int index column of an int, bool or time value.
func (v SearchValue) indexInt() (int64, bool) {
	switch v.Type {
	case SearchInt:
		return v.Int, true
	case SearchBool:
		if v.Bool {
			return 1, true
		}
		return 0, true
	case SearchTime:
		return v.Time.UnixNano(), true
	}
	return 0, false
}

// SearchFilter matches runs by one search attribute: either Equal, or a
// range of Min and Max (inclusive; either may be nil).
type SearchFilter struct {
	Key string
	// Equal matches the attribute's value exactly: a keyword (found also
	// among the elements of a keyword list), int, float, bool or time.
	Equal *SearchValue
	// Min and Max bound an int, float or time attribute, of their type.
	Min, Max *SearchValue
}

// SearchIndexColumn is the index column a filter reads: "text", "int" or
// "float".
type SearchIndexColumn string

// Index columns of SearchIndexEntry.
const (
	SearchColumnText  SearchIndexColumn = "text"
	SearchColumnInt   SearchIndexColumn = "int"
	SearchColumnFloat SearchIndexColumn = "float"
)

// SearchCondition is a SearchFilter as a condition on the index: entries
// of Key and Type whose Column equals Equal or, when Equal is nil, lies
// between Min and Max (nil for no bound). Values are string, int64 or
// float64, as the column.
type SearchCondition struct {
	Key      string
	Type     SearchType
	Column   SearchIndexColumn
	Equal    any
	Min, Max any
}

// Condition checks f and returns it as a condition on the index
// (ErrInvalidSearch when f is not a valid filter).
func (f SearchFilter) Condition() (SearchCondition, error) {
	c := SearchCondition{Key: f.Key}
	if f.Key == "" {
		return c, fmt.Errorf("%w: filter without a key", ErrInvalidSearch)
	}
	switch {
	case f.Equal != nil && (f.Min != nil || f.Max != nil):
		return c, fmt.Errorf("%w: filter on %q has both Equal and a range", ErrInvalidSearch, f.Key)
	case f.Equal != nil:
		v := *f.Equal
		if err := v.Validate(); err != nil {
			return c, fmt.Errorf("filter on %q: %w", f.Key, err)
		}
		if v.Type == SearchKeywordList {
			return c, fmt.Errorf("%w: filter on %q: match a keyword list by one keyword", ErrInvalidSearch, f.Key)
		}
		c.Type = v.Type
		c.Column, c.Equal = v.indexValue()
		return c, nil
	case f.Min == nil && f.Max == nil:
		return c, fmt.Errorf("%w: filter on %q has neither Equal nor a range", ErrInvalidSearch, f.Key)
	}
	for _, b := range []*SearchValue{f.Min, f.Max} {
		if b == nil {
			continue
		}
		if err := b.Validate(); err != nil {
			return c, fmt.Errorf("filter on %q: %w", f.Key, err)
		}
		switch b.Type {
		case SearchInt, SearchFloat, SearchTime:
		default:
			return c, fmt.Errorf("%w: filter on %q: a range of %s", ErrInvalidSearch, f.Key, b.Type)
		}
		if c.Type != "" && c.Type != b.Type {
			return c, fmt.Errorf("%w: filter on %q: range from %s to %s", ErrInvalidSearch, f.Key, c.Type, b.Type)
		}
		c.Type = b.Type
	}
	if f.Min != nil {
		c.Column, c.Min = f.Min.indexValue()
	}
	if f.Max != nil {
		c.Column, c.Max = f.Max.indexValue()
	}
	return c, nil
}

// indexValue is the index column and value that an equality or range on v
// compares with.
func (v SearchValue) indexValue() (SearchIndexColumn, any) {
	switch v.Type {
	case SearchKeyword:
		return SearchColumnText, v.Keyword
	case SearchFloat:
		return SearchColumnFloat, v.Float
	}
	n, _ := v.indexInt()
	return SearchColumnInt, n
}
