package pgstore

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/internal/testdb"
)

// TestSearchPlansUseIndexes checks that ListRuns can answer every kind of
// search attribute filter, and the creation time filters, from an index.
// The tables are empty, so sequential scans are disabled for the check:
// what matters is that the planner has an index to use.
func TestSearchPlansUseIndexes(t *testing.T) {
	t.Parallel()
	pool := testdb.Postgres(t)
	s, err := New(t.Context(), pool, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	v := func(sv store.SearchValue) *store.SearchValue { return &sv }
	kw := store.SearchValue{Type: store.SearchKeyword, Keyword: "acme"}
	n := store.SearchValue{Type: store.SearchInt, Int: 5}
	f := store.SearchValue{Type: store.SearchFloat, Float: 0.5}
	tm := store.SearchValue{Type: store.SearchTime, Time: time.Unix(0, 0)}
	for _, tc := range []struct {
		name  string
		p     store.ListRunsParams
		index string
	}{
		{"keyword", store.ListRunsParams{SearchAttributes: []store.SearchFilter{{Key: "k", Equal: v(kw)}}}, "keel_search_attributes_text"},
		{"keyword page", store.ListRunsParams{Cursor: "9", SearchAttributes: []store.SearchFilter{{Key: "k", Equal: v(kw)}}}, "keel_search_attributes_text"},
		{"int", store.ListRunsParams{SearchAttributes: []store.SearchFilter{{Key: "k", Equal: v(n)}}}, "keel_search_attributes_int"},
		{"int range", store.ListRunsParams{SearchAttributes: []store.SearchFilter{{Key: "k", Min: v(n), Max: v(n)}}}, "keel_search_attributes_int"},
		{"time from", store.ListRunsParams{SearchAttributes: []store.SearchFilter{{Key: "k", Min: v(tm)}}}, "keel_search_attributes_int"},
		{"float to", store.ListRunsParams{SearchAttributes: []store.SearchFilter{{Key: "k", Max: v(f)}}}, "keel_search_attributes_float"},
		{"created", store.ListRunsParams{CreatedAfter: time.Unix(1, 0), CreatedBefore: time.Unix(2, 0)}, "keel_runs_created_at"},
	} {
		query, args, err := listRunsQuery(tc.p, 10)
		require.NoError(t, err, tc.name)
		var plan []string
		err = pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(t.Context(), "SET LOCAL enable_seqscan = off"); err != nil {
				return err
			}
			rows, err := tx.Query(t.Context(), "EXPLAIN "+query, args...)
			if err != nil {
				return err
			}
			plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		require.NoError(t, err, tc.name)
		text := strings.Join(plan, "\n")
		require.Contains(t, text, tc.index, "%s: %s\n%s", tc.name, query, text)
		require.NotContains(t, text, "Seq Scan on keel_search_attributes", "%s:\n%s", tc.name, text)
	}
}
