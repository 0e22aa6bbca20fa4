package kb

import (
	"context"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/keelhq/keel/appdb"
)

// Search limits.
const (
	// DefaultLimit is the number of results Search returns when
	// SearchOpts.Limit is zero.
	DefaultLimit = 5
	// MaxLimit caps SearchOpts.Limit.
	MaxLimit = 50
	// MaxQueryTerms caps the number of words of a query that are searched
	// for; later words are ignored.
	MaxQueryTerms = 32
	// maxTermLen drops words longer than this many bytes, which no
	// article contains (Postgres does not index words over 2047 bytes).
	maxTermLen = 100
)

// SearchOpts narrows a search. A nil *SearchOpts means all defaults.
type SearchOpts struct {
	// Tags keeps only documents that carry every one of these tags.
	// Optional.
	Tags []string
	// Limit is the most results to return. Optional; default DefaultLimit,
	// at most MaxLimit.
	Limit int
}

// Result is one document found by Search.
type Result struct {
	ID    int64    `json:"id"`
	Key   string   `json:"key"`
	Title string   `json:"title"`
	Tags  []string `json:"tags,omitempty"`
	// Snippet is a short passage of the body around the words that
	// matched, with those words marked **like this**.
	Snippet string `json:"snippet"`
	// Score is the relevance: higher is better. Scores compare results of
	// one search on one database; they are not comparable across dialects.
	Score float64 `json:"score"`
}

// Search returns the documents that match query, most relevant first.
//
// The query is plain text as a person types it ("I was charged twice"),
// not a search expression: it is split into words, common English words
// are dropped, and documents containing any of the remaining words are
// ranked by relevance, with words in the title counting more than words in
// the body (SQLite: FTS5 bm25; Postgres: ts_rank_cd over a weighted
// tsvector). Quotes, operators and other punctuation are never interpreted.
//
// A query with no letters or digits returns an error matching
// ErrEmptyQuery; a query of only common words ("how do I") returns no
// results.
func (s *Store) Search(ctx context.Context, query string, opts *SearchOpts) ([]Result, error) {
	terms := queryTerms(query)
	if len(terms) == 0 {
		if strings.TrimFunc(query, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) == "" {
			return nil, fmt.Errorf("%w: %q has no words", ErrEmptyQuery, query)
		}
		return nil, nil // only stop words
	}
	var o SearchOpts
	if opts != nil {
		o = *opts
	}
	limit := o.Limit
	switch {
	case limit <= 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	tags, err := normalizeTags(o.Tags)
	if err != nil {
		return nil, fmt.Errorf("kb: search: %w", err)
	}

	var (
		q    string
		args []any
	)
	if s.db.Dialect == appdb.Postgres {
		q, args = postgresSearch(terms, tags, limit)
	} else {
		q, args = sqliteSearch(terms, tags, limit)
	}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("kb: search %q: %w", query, err)
	}
	defer rows.Close()
	var results []Result
	for rows.Next() {
		var (
			r       Result
			tagJSON string
		)
		if err := rows.Scan(&r.ID, &r.Key, &r.Title, &tagJSON, &r.Snippet, &r.Score); err != nil {
			return nil, fmt.Errorf("kb: search %q: %w", query, err)
		}
		if r.Tags, err = decodeTags(tagJSON); err != nil {
			return nil, fmt.Errorf("kb: search %q: %w", query, err)
		}
		r.Snippet = strings.Join(strings.Fields(r.Snippet), " ")
		results = append(results, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("kb: search %q: %w", query, err)
	}
	return results, nil
}

// Title words weigh this many times more than body words in SQLite's bm25.
const sqliteTitleWeight = 4.0

func sqliteSearch(terms, tags []string, limit int) (string, []any) {
	// Each term is letters and digits only, quoted as an FTS5 string, so
	// the expression holds no operator the user typed.
	quoted := make([]string, len(terms))
	for i, t := range terms {
		quoted[i] = `"` + t + `"`
	}
	args := []any{strings.Join(quoted, " OR ")}
	var b strings.Builder
	fmt.Fprintf(&b, `
		SELECT d.id, d.key, d.title, d.tags,
			snippet(kb_documents_fts, 1, '**', '**', '…', 40),
			-bm25(kb_documents_fts, %g, 1.0) AS score
		FROM kb_documents_fts
		JOIN kb_documents d ON d.id = kb_documents_fts.rowid
		WHERE kb_documents_fts MATCH ?`, sqliteTitleWeight)
	for _, tag := range tags {
		b.WriteString(` AND EXISTS (SELECT 1 FROM kb_document_tags t WHERE t.document_id = d.id AND t.tag = ?)`)
		args = append(args, tag)
	}
	b.WriteString(` ORDER BY score DESC, d.id LIMIT ?`)
	args = append(args, limit)
	return b.String(), args
}

func postgresSearch(terms, tags []string, limit int) (string, []any) {
	// Each term is letters and digits only, so the tsquery text holds no
	// operator the user typed; to_tsquery stems the terms and drops stop
	// words as to_tsvector did for the documents.
	args := []any{strings.Join(terms, " | ")}
	var b strings.Builder
	b.WriteString(`
		WITH q AS (SELECT to_tsquery('english', ?) AS query),
		hits AS (
			SELECT d.id, d.key, d.title, d.tags, d.body,
				ts_rank_cd(d.search, q.query, 1) AS score, q.query
			FROM kb_documents d, q
			WHERE d.search @@ q.query`)
	for _, tag := range tags {
		b.WriteString(` AND EXISTS (SELECT 1 FROM kb_document_tags t WHERE t.document_id = d.id AND t.tag = ?)`)
		args = append(args, tag)
	}
	b.WriteString(`
			ORDER BY score DESC, d.id LIMIT ?
		)
		SELECT id, key, title, tags,
			ts_headline('english', body, query,
				'StartSel=**, StopSel=**, MaxWords=40, MinWords=15, MaxFragments=2, FragmentDelimiter=" … "'),
			score::float8
		FROM hits ORDER BY score DESC, id`)
	args = append(args, limit)
	return b.String(), args
}

// queryTerms splits a plain-text query into lowercase words of letters and
// digits, without stop words or duplicates, at most MaxQueryTerms of them.
func queryTerms(query string) []string {
	words := strings.FieldsFunc(strings.ToLower(query), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	seen := make(map[string]bool, len(words))
	var terms []string
	for _, w := range words {
		if isStopWord(w) || seen[w] || len(w) > maxTermLen {
			continue
		}
		seen[w] = true
		terms = append(terms, w)
		if len(terms) == MaxQueryTerms {
			break
		}
	}
	return terms
}

// isStopWord reports whether w is a common English word that says nothing
// about what a question is about.
func isStopWord(w string) bool {
	switch w {
	case "a", "about", "after", "again", "all", "am", "an", "and", "any", "are", "as", "at",
		"be", "been", "before", "being", "but", "by", "can", "could", "did", "do", "does",
		"doing", "done", "for", "from", "get", "got", "had", "has", "have", "having", "he",
		"her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its",
		"just", "me", "might", "more", "most", "my", "myself", "no", "nor", "not", "now", "of",
		"off", "on", "once", "only", "or", "other", "our", "ours", "out", "over", "own",
		"please", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their",
		"them", "then", "there", "these", "they", "this", "those", "through", "to", "too",
		"under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which",
		"while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours":
		return true
	}
	// A lone letter is left over from a contraction ("can't", "I'm").
	return utf8.RuneCountInString(w) == 1 && unicode.IsLetter([]rune(w)[0])
}
