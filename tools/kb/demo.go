package kb

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
)

//go:embed demo/*.md
var demoFiles embed.FS

// DemoFS returns the demo knowledge base: twelve Markdown help-center
// articles of a SaaS product's support desk, on billing (double charges,
// refunds, invoices, changing plan, cancelling), accounts (password reset,
// two-factor authentication, changing email) and the product (exporting
// data, API rate limits, webhooks, integrations).
func DemoFS() fs.FS {
	sub, err := fs.Sub(demoFiles, "demo")
	if err != nil {
		panic(err) // the directory is embedded above
	}
	return sub
}

// LoadDemo imports the demo knowledge base (DemoFS) into s. Loading it
// again changes nothing.
func LoadDemo(ctx context.Context, s *Store) (ImportResult, error) {
	res, err := ImportFS(ctx, s, DemoFS())
	if err != nil {
		return res, fmt.Errorf("kb: load demo: %w", err)
	}
	return res, nil
}
