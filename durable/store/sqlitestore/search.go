package sqlitestore

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/keelhq/keel/durable/store"
)

// Statements of search attributes. Runs without search attributes never
// run them, so they are prepared per transaction.
const (
	insertSearchEntrySQL = `INSERT INTO search_attributes (run_seq, key, type, value_text, value_int, value_float)
		SELECT seq, ?2, ?3, ?4, ?5, ?6 FROM runs WHERE run_id = ?1`
	runSearchSQL           = `SELECT search_attributes FROM runs WHERE run_id = ?`
	setRunSearchSQL        = `UPDATE runs SET search_attributes = ?2 WHERE run_id = ?1`
	deleteSearchEntriesSQL = `DELETE FROM search_attributes
		WHERE run_seq = (SELECT seq FROM runs WHERE run_id = ?1) AND key IN (SELECT value FROM json_each(?2))`
)

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

// column is the runs.search_attributes value: NULL for none.
func (a searchAttrs) column() any {
	if a.json == nil {
		return nil
	}
	return string(a.json)
}

// indexSearch writes the index entries of a run's attributes, of every
// key or only of keys.
func (s *Store) indexSearch(t *tx, runID string, attrs map[string]store.SearchValue, keys []string) error {
	if keys == nil {
		keys = slices.Sorted(maps.Keys(attrs))
	}
	for _, k := range keys {
		v, ok := attrs[k]
		if !ok {
			continue
		}
		for _, e := range v.IndexEntries() {
			if _, err := t.execSQL(insertSearchEntrySQL, runID, k, string(e.Type), e.Text, e.Int, e.Float); err != nil {
				return err
			}
		}
	}
	return nil
}

// upsertSearch applies an upsert to a run's search attributes and their
// index entries.
func (s *Store) upsertSearch(t *tx, runID string, upsert map[string]*store.SearchValue) error {
	if len(upsert) == 0 {
		return nil
	}
	var cur sql.NullString
	if err := t.queryRowSQL(runSearchSQL, runID).Scan(&cur); err != nil {
		return err
	}
	attrs, err := store.ParseSearchAttributes([]byte(cur.String))
	if err != nil {
		return err
	}
	merged := searchAttrs{attrs: store.ApplySearchUpsert(attrs, upsert)}
	if merged.json, err = store.MarshalSearchAttributes(merged.attrs); err != nil {
		return err
	}
	if _, err := t.execSQL(setRunSearchSQL, runID, merged.column()); err != nil {
		return err
	}
	keys := slices.Sorted(maps.Keys(upsert))
	keysJSON, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	if _, err := t.execSQL(deleteSearchEntriesSQL, runID, string(keysJSON)); err != nil {
		return err
	}
	return s.indexSearch(t, runID, merged.attrs, keys)
}

// listRunsQuery returns the statement of ListRuns and its arguments: up to
// limit+1 runs, newest first, that match p.
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
	if p.Cursor != "" {
		var err error
		seq, err = strconv.ParseInt(p.Cursor, 10, 64)
		if err != nil || seq <= 0 {
			return "", nil, fmt.Errorf("invalid cursor %q", p.Cursor)
		}
	}
	if p.WorkflowID != "" {
		where, args = append(where, "workflow_id = ?"), append(args, p.WorkflowID)
	}
	if p.WorkflowType != "" {
		where, args = append(where, "workflow_type = ?"), append(args, p.WorkflowType)
	}
	if p.Status != "" {
		where, args = append(where, "status = ?"), append(args, string(p.Status))
	}
	if !p.CreatedAfter.IsZero() {
		where, args = append(where, "created_at > ?"), append(args, nanos(p.CreatedAfter))
	}
	if !p.CreatedBefore.IsZero() {
		where, args = append(where, "created_at < ?"), append(args, nanos(p.CreatedBefore))
	}
	for _, f := range p.SearchAttributes {
		c, err := f.Condition()
		if err != nil {
			return "", nil, err
		}
		col := "value_" + string(c.Column)
		cond := "seq IN (SELECT run_seq FROM search_attributes WHERE key = ? AND type = ? AND " + col + " IS NOT NULL"
		args = append(args, c.Key, string(c.Type))
		if c.Equal != nil {
			cond += " AND " + col + " = ?"
			args = append(args, c.Equal)
			if seq > 0 {
				cond += " AND run_seq < ?"
				args = append(args, seq)
			}
		} else {
			if c.Min != nil {
				cond += " AND " + col + " >= ?"
				args = append(args, c.Min)
			}
			if c.Max != nil {
				cond += " AND " + col + " <= ?"
				args = append(args, c.Max)
			}
		}
		where = append(where, cond+")")
	}
	if seq > 0 {
		where, args = append(where, "seq < ?"), append(args, seq)
	}
	query := "SELECT seq, " + runColumns + " FROM runs"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY seq DESC LIMIT ?"
	return query, append(args, limit+1), nil
}
