package pgstore

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/keelhq/keel/durable/store"
)

// indexSearchSQL writes the index entries (unnested from $2…$6) of run
// $1's search attributes; nothing when no run $1 exists, as when CreateRun
// or a child start found the workflow ID taken.
const indexSearchSQL = `
INSERT INTO keel_search_attributes (run_seq, key, type, value_text, value_int, value_float)
SELECT r.seq, e.* FROM keel_runs r
CROSS JOIN unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::float8[]) AS e
WHERE r.run_id = $1`

// upsertSearchSQL applies an upsert to run $1's search attributes: the
// keys of object $2 are set, those in $3 removed (NULL once none is
// left), and the index entries of every key in $4 replaced by the entries
// unnested from $5…$9.
const upsertSearchSQL = `
WITH run AS (
	UPDATE keel_runs
	SET search_attributes = nullif((coalesce(search_attributes, '{}'::jsonb) || $2::jsonb) - $3::text[], '{}'::jsonb)
	WHERE run_id = $1
	RETURNING seq
), removed AS (
	DELETE FROM keel_search_attributes WHERE run_seq = (SELECT seq FROM run) AND key = ANY($4::text[])
)
INSERT INTO keel_search_attributes (run_seq, key, type, value_text, value_int, value_float)
SELECT run.seq, e.* FROM run
CROSS JOIN unnest($5::text[], $6::text[], $7::text[], $8::bigint[], $9::float8[]) AS e`

// searchAttrs is a run's search attributes, read and normalized.
type searchAttrs struct {
	attrs map[string]store.SearchValue
	json  []byte // attrs as stored; nil for none
}

// parseSearch reads the search attributes of a new run.
func parseSearch(b []byte) (searchAttrs, error) {
	attrs, err := store.ParseSearchAttributes(b)
	if err != nil {
		return searchAttrs{}, err
	}
	out, err := store.MarshalSearchAttributes(attrs)
	return searchAttrs{attrs: attrs, json: out}, err
}

// checkCommitSearch reads, before anything is queued, every search
// attribute a commit writes: those of its children and successor, and its
// upsert, which it returns.
func checkCommitSearch(p *store.CompleteWorkflowTaskParams) (map[string]*store.SearchValue, error) {
	for _, c := range p.StartChildren {
		if _, err := parseSearch(c.Run.SearchAttributes); err != nil {
			return nil, fmt.Errorf("child %s: %w", c.Run.RunID, err)
		}
	}
	if cl := p.Close; cl != nil && cl.Status == store.StatusContinuedAsNew && cl.ContinueAsNew != nil {
		if _, err := parseSearch(cl.ContinueAsNew.Run.SearchAttributes); err != nil {
			return nil, fmt.Errorf("successor %s: %w", cl.ContinueAsNew.Run.RunID, err)
		}
	}
	return store.ParseSearchUpsert(p.UpsertSearchAttributes)
}

// searchEntries returns the index entries of the given keys of attrs as
// the arrays indexSearchSQL and upsertSearchSQL unnest.
func searchEntries(attrs map[string]store.SearchValue, keys []string) []any {
	var (
		ks, types []string
		texts     []*string
		ints      []*int64
		floats    []*float64
	)
	for _, k := range keys {
		v, ok := attrs[k]
		if !ok {
			continue
		}
		for _, e := range v.IndexEntries() {
			ks, types = append(ks, k), append(types, string(e.Type))
			texts, ints, floats = append(texts, e.Text), append(ints, e.Int), append(floats, e.Float)
		}
	}
	return []any{ks, types, texts, ints, floats}
}

// queueIndexSearch queues the index entries of a run created in the same
// transaction.
func queueIndexSearch(b *pgx.Batch, runID string, attrs map[string]store.SearchValue) {
	if len(attrs) == 0 {
		return
	}
	b.Queue(indexSearchSQL, append([]any{runID}, searchEntries(attrs, slices.Sorted(maps.Keys(attrs)))...)...)
}

// queueUpsertSearch queues an upsert of run runID's search attributes.
func queueUpsertSearch(b *pgx.Batch, runID string, upsert map[string]*store.SearchValue) error {
	if len(upsert) == 0 {
		return nil
	}
	set := map[string]store.SearchValue{}
	removed := []string{}
	for k, v := range upsert {
		if v == nil {
			removed = append(removed, k)
		} else {
			set[k] = *v
		}
	}
	setJSON, err := store.MarshalSearchAttributes(set)
	if err != nil {
		return err
	}
	if setJSON == nil {
		setJSON = []byte("{}")
	}
	keys := slices.Sorted(maps.Keys(upsert))
	args := append([]any{runID, setJSON, removed, keys}, searchEntries(set, keys)...)
	b.Queue(upsertSearchSQL, args...)
	return nil
}

// listRunsQuery returns the statement of ListRuns and its arguments: up to
// limit+1 runs, newest first, that match p. There is one statement text
// per combination of filters, so that each gets a plan that uses its
// indexes.
//
// Each search attribute filter is a subquery on one of the index's typed
// value indexes (key, type, value, run_seq); an equality filter also
// bounds run_seq by the cursor, so that it reads its page from the index
// in order.
func listRunsQuery(p store.ListRunsParams, limit int) (string, []any, error) {
	var (
		where []string
		args  []any
		seq   int64
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if p.Cursor != "" {
		var err error
		seq, err = strconv.ParseInt(p.Cursor, 10, 64)
		if err != nil || seq <= 0 {
			return "", nil, fmt.Errorf("invalid cursor %q", p.Cursor)
		}
	}
	if p.WorkflowID != "" {
		where = append(where, "workflow_id = "+arg(p.WorkflowID))
	}
	if p.WorkflowType != "" {
		where = append(where, "workflow_type = "+arg(p.WorkflowType))
	}
	if p.Status != "" {
		where = append(where, "status = "+arg(string(p.Status)))
	}
	if !p.CreatedAfter.IsZero() {
		where = append(where, "created_at > "+arg(nanos(p.CreatedAfter)))
	}
	if !p.CreatedBefore.IsZero() {
		where = append(where, "created_at < "+arg(nanos(p.CreatedBefore)))
	}
	for _, f := range p.SearchAttributes {
		c, err := f.Condition()
		if err != nil {
			return "", nil, err
		}
		col := "value_" + string(c.Column)
		cond := "seq IN (SELECT run_seq FROM keel_search_attributes WHERE key = " + arg(c.Key) +
			" AND type = " + arg(string(c.Type)) + " AND " + col + " IS NOT NULL"
		if c.Equal != nil {
			cond += " AND " + col + " = " + arg(c.Equal)
			if seq > 0 {
				cond += " AND run_seq < " + arg(seq)
			}
		} else {
			if c.Min != nil {
				cond += " AND " + col + " >= " + arg(c.Min)
			}
			if c.Max != nil {
				cond += " AND " + col + " <= " + arg(c.Max)
			}
		}
		where = append(where, cond+")")
	}
	if seq > 0 {
		where = append(where, "seq < "+arg(seq))
	}
	query := "SELECT " + runColumns + " FROM keel_runs"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY seq DESC LIMIT " + arg(limit+1)
	return query, args, nil
}
