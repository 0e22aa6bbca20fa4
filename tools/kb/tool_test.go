package kb_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/tools"
	"github.com/keelhq/keel/tools/kb"
)

func TestTools(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *appdb.DB) {
		s := demoStore(t, db)
		ctx := t.Context()
		search, get := kb.SearchTool(s, nil), kb.GetTool(s, nil)

		r := search.Invoke(ctx, `{"query":"I was charged twice","tags":["billing"],"limit":2}`)
		require.False(t, r.IsError, r.Error)
		var out kb.SearchOutput
		require.NoError(t, json.Unmarshal(r.Content, &out))
		require.Len(t, out.Results, 2)
		require.Equal(t, "double-charge", out.Results[0].Key)

		r = get.Invoke(ctx, `{"key":"`+out.Results[0].Key+`"}`)
		require.False(t, r.IsError, r.Error)
		var doc kb.Document
		require.NoError(t, json.Unmarshal(r.Content, &doc))
		require.Contains(t, doc.Body, "Payment history")

		r = search.Invoke(ctx, `{"query":"xylophone"}`)
		require.False(t, r.IsError)
		require.JSONEq(t, `{"results":[]}`, string(r.Content), "no match is an empty list, not null")

		r = search.Invoke(ctx, `{"query":"?!"}`)
		require.True(t, r.IsError)
		require.Contains(t, r.Error, "empty search query")
		r = search.Invoke(ctx, `{"query":""}`)
		require.True(t, r.IsError)
		require.Equal(t, tools.ErrorInvalidArguments, r.ErrorKind)
		r = search.Invoke(ctx, `{"query":"refund","limit":500}`)
		require.Equal(t, tools.ErrorInvalidArguments, r.ErrorKind)
		r = get.Invoke(ctx, `{"key":"no-such-article"}`)
		require.True(t, r.IsError)
		require.Contains(t, r.Error, "not found")
	})
}
