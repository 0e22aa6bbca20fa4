// Package kb is a knowledge base for support agents: help-center articles
// kept in Keel's application database, found by full-text search.
//
// # Documents
//
// A Document has a key, a title, a body (usually Markdown) and tags. The key
// is stable across imports (a slug such as "double-charge"): Store.Upsert
// creates the document or replaces the one with the same key, so importing
// the same articles again never duplicates them.
//
//	db, _ := appdb.Open(ctx, "keel.db") // or a postgres:// URL
//	s, _ := kb.New(ctx, db, nil)        // applies the kb_* migrations
//	_, _ = s.Upsert(ctx, kb.Document{Key: "refunds", Title: "Refund policy", Body: "…", Tags: []string{"billing"}})
//
// ImportDir loads a directory of Markdown files, one document per file: the
// key is the file name, the title the front matter's title or the first
// "# " heading, the tags the front matter's tags:
//
//	---
//	tags: [billing, refunds]
//	---
//	# Refund policy
//	…
//
// The command `keel kb import DIR` does the same from the shell. LoadDemo
// loads twelve articles of a SaaS support desk (DemoFS), which the demos
// and tests use.
//
// # Search
//
// Store.Search takes the text a person typed ("I was charged twice") and
// returns the most relevant documents with a snippet each. The text is
// never read as a query language: it is split into words, common words are
// dropped, and documents with any of the words are ranked, title words
// counting more than body words. On SQLite the index is an FTS5 table
// (porter stemming) ranked by bm25; on PostgreSQL it is a weighted tsvector
// column (title A, body B, english stemming) with a GIN index, ranked by
// ts_rank_cd. SearchOpts filters by tags and limits the results.
//
// # Tools
//
// SearchTool and GetTool wrap a Store as agent tools (kb_search and
// kb_get_article) for package tools.
package kb
