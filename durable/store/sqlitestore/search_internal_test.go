package sqlitestore

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
)

// TestSearchPlansUseIndexes checks that ListRuns answers every kind of
// search attribute filter, and the creation time filters, from an index:
// no plan reads the whole search_attributes or runs table.
func TestSearchPlansUseIndexes(t *testing.T) {
	t.Parallel()
	s, err := Open(filepath.Join(t.TempDir(), "keel.db"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	v := func(sv store.SearchValue) *store.SearchValue { return &sv }
	kw := store.SearchValue{Type: store.SearchKeyword, Keyword: "acme"}
	n := store.SearchValue{Type: store.SearchInt, Int: 5}
	f := store.SearchValue{Type: store.SearchFloat, Float: 0.5}
	tm := store.SearchValue{Type: store.SearchTime, Time: time.Unix(0, 0)}
	b := store.SearchValue{Type: store.SearchBool, Bool: true}
	for _, tc := range []struct {
		name  string
		p     store.ListRunsParams
		index string
	}{
		{"keyword", store.ListRunsParams{SearchAttributes: []store.SearchFilter{{Key: "k", Equal: v(kw)}}}, "search_attributes_text"},
		{"keyword page", store.ListRunsParams{Cursor: "9", SearchAttributes: []store.SearchFilter{{Key: "k", Equal: v(kw)}}}, "search_attributes_text"},
		{"int", store.ListRunsParams{SearchAttributes: []store.SearchFilter{{Key: "k", Equal: v(n)}}}, "search_attributes_int"},
		{"bool", store.ListRunsParams{SearchAttributes: []store.SearchFilter{{Key: "k", Equal: v(b)}}}, "search_attributes_int"},
		{"int range", store.ListRunsParams{SearchAttributes: []store.SearchFilter{{Key: "k", Min: v(n), Max: v(n)}}}, "search_attributes_int"},
		{"time from", store.ListRunsParams{SearchAttributes: []store.SearchFilter{{Key: "k", Min: v(tm)}}}, "search_attributes_int"},
		{"float to", store.ListRunsParams{SearchAttributes: []store.SearchFilter{{Key: "k", Max: v(f)}}}, "search_attributes_float"},
		{"float", store.ListRunsParams{SearchAttributes: []store.SearchFilter{{Key: "k", Equal: v(f)}}}, "search_attributes_float"},
		{"created", store.ListRunsParams{CreatedAfter: time.Unix(1, 0), CreatedBefore: time.Unix(2, 0)}, "runs_created_at"},
	} {
		query, args, err := listRunsQuery(tc.p, 10)
		require.NoError(t, err, tc.name)
		plan := explain(t, s, query, args)
		require.Contains(t, plan, tc.index, "%s: %s\n%s", tc.name, query, plan)
		require.NotRegexp(t, regexp.MustCompile(`(?m)^SCAN (search_attributes|runs)$`), plan, "%s scans a table:\n%s", tc.name, plan)
	}
}

func explain(t *testing.T, s *Store, query string, args []any) string {
	t.Helper()
	rows, err := s.db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	require.NoError(t, err)
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
		plan = append(plan, detail)
	}
	require.NoError(t, rows.Err())
	return strings.Join(plan, "\n")
}
