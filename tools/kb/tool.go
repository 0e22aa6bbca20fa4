package kb

import (
	"context"
	"errors"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/tools"
)

// Tool names.
const (
	SearchToolName = "kb_search"
	GetToolName    = "kb_get_article"
)

// SearchInput is the input of the kb_search tool.
type SearchInput struct {
	Query string   `json:"query" jsonschema:"minLength=1,maxLength=1000" jsonschema_description:"What to look for, in plain words: for example the customer's question."`
	Tags  []string `json:"tags,omitempty" jsonschema_description:"Only return articles that have all of these tags, for example [\"billing\"]."`
	Limit int      `json:"limit,omitempty" jsonschema:"minimum=1,maximum=20" jsonschema_description:"How many articles to return; default 5."`
}

// SearchOutput is the output of the kb_search tool.
type SearchOutput struct {
	// Results are the matching articles, most relevant first, each with a
	// snippet of its text. Empty when nothing matches.
	Results []Result `json:"results"`
}

// SearchTool returns the kb_search tool: full-text search of the knowledge
// base, most relevant articles first, with snippets. opts may be nil.
func SearchTool(s *Store, opts *tools.Options) *tools.Tool {
	return tools.MustNew(SearchToolName,
		"Search the help-center knowledge base. Returns the most relevant articles first, each with its key, title and a snippet; read a whole article with "+GetToolName+".",
		func(ctx context.Context, in SearchInput) (SearchOutput, error) {
			res, err := s.Search(ctx, in.Query, &SearchOpts{Tags: in.Tags, Limit: in.Limit})
			if err != nil {
				return SearchOutput{}, permanent(err)
			}
			if res == nil {
				res = []Result{}
			}
			return SearchOutput{Results: res}, nil
		}, opts)
}

// GetInput is the input of the kb_get_article tool.
type GetInput struct {
	Key string `json:"key" jsonschema:"minLength=1" jsonschema_description:"The article's key, as returned by kb_search."`
}

// GetTool returns the kb_get_article tool: the whole text of one article by
// its key. opts may be nil.
func GetTool(s *Store, opts *tools.Options) *tools.Tool {
	return tools.MustNew(GetToolName,
		"Read one knowledge-base article in full, by the key that "+SearchToolName+" returned.",
		func(ctx context.Context, in GetInput) (Document, error) {
			doc, err := s.Get(ctx, in.Key)
			if err != nil {
				return Document{}, permanent(err)
			}
			return doc, nil
		}, opts)
}

// permanent marks errors that a retry cannot fix as non-retryable, so the
// model hears about them at once.
func permanent(err error) error {
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrEmptyQuery) || errors.Is(err, ErrInvalidDocument) {
		return durable.NonRetryable(err)
	}
	return err
}
