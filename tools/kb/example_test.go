package kb_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/tools/kb"
)

// Load the demo knowledge base and answer a customer's question.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "kb-example-")
	defer os.RemoveAll(dir)

	db, err := appdb.Open(ctx, filepath.Join(dir, "keel.db"))
	if err != nil {
		panic(err)
	}
	defer db.Close()
	s, err := kb.New(ctx, db, nil)
	if err != nil {
		panic(err)
	}
	if _, err := kb.LoadDemo(ctx, s); err != nil {
		panic(err)
	}

	results, err := s.Search(ctx, "I was charged twice", &kb.SearchOpts{Limit: 1})
	if err != nil {
		panic(err)
	}
	fmt.Println(results[0].Key)
	fmt.Println(results[0].Title)
	// Output:
	// double-charge
	// I was charged twice: duplicate charges on my card
}

// Import a directory of Markdown articles; importing it again updates the
// articles instead of adding copies.
func ExampleImportDir() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "kb-example-")
	defer os.RemoveAll(dir)
	articles := filepath.Join(dir, "articles")
	_ = os.Mkdir(articles, 0o755)
	_ = os.WriteFile(filepath.Join(articles, "shipping.md"), []byte(`---
tags: [orders]
---
# Shipping times

Orders ship within two business days.
`), 0o644)

	db, _ := appdb.Open(ctx, filepath.Join(dir, "keel.db"))
	defer db.Close()
	s, _ := kb.New(ctx, db, nil)

	res, err := kb.ImportDir(ctx, s, articles)
	fmt.Println(res.Created, res.Keys, err)
	res, err = kb.ImportDir(ctx, s, articles)
	fmt.Println(res.Created, res.Unchanged, err)

	doc, _ := s.Get(ctx, "shipping")
	fmt.Printf("%s %v\n", doc.Title, doc.Tags)
	// Output:
	// 1 [shipping] <nil>
	// 0 1 <nil>
	// Shipping times [orders]
}

// The knowledge base as an agent's tool.
func ExampleSearchTool() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "kb-example-")
	defer os.RemoveAll(dir)
	db, _ := appdb.Open(ctx, filepath.Join(dir, "keel.db"))
	defer db.Close()
	s, _ := kb.New(ctx, db, nil)
	_, _ = kb.LoadDemo(ctx, s)

	search := kb.SearchTool(s, nil)
	// Tool.Invoke runs one call outside an engine, as a model's arguments.
	r := search.Invoke(ctx, `{"query": "how do I turn on 2FA?", "limit": 1}`)
	fmt.Println(search.Name(), r.IsError)
	fmt.Println(string(r.Content)[:60])
	// Output:
	// kb_search false
	// {"results":[{"id":11,"key":"two-factor-authentication","titl
}
