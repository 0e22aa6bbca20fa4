package httpreq_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/tools"
	"github.com/keelhq/keel/tools/httpreq"
)

func TestTool(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	c := newClient(t, &httpreq.Config{AllowHosts: []string{"127.0.0.1"}, AllowNetworks: loopback, IdempotencyHeader: "Idempotency-Key"})
	tool := httpreq.Tool(c, nil)
	require.Equal(t, httpreq.ToolName, tool.Name())
	ctx := t.Context()

	r := tool.Invoke(ctx, `{"method":"POST","url":"`+s.URL+`/echo","body":"hi"}`)
	require.False(t, r.IsError, r.Error)
	var resp httpreq.Response
	require.NoError(t, json.Unmarshal(r.Content, &resp))
	require.Equal(t, 418, resp.StatusCode)
	require.Equal(t, "hi", resp.Body)
	require.Empty(t, resp.Headers["X-Idempotency-Key"], "no key outside the engine")

	anyHost := httpreq.Tool(newClient(t, &httpreq.Config{AllowHosts: []string{"*"}}), nil)
	r = anyHost.Invoke(ctx, `{"url":"http://169.254.169.254/latest/meta-data/"}`)
	require.True(t, r.IsError)
	require.Contains(t, r.Error, "link-local")
	r = tool.Invoke(ctx, `{"url":"https://example.com/"}`)
	require.True(t, r.IsError)
	require.Contains(t, r.Error, "host not allowed")
	r = tool.Invoke(ctx, `{"method":"TRACE","url":"https://example.com/"}`)
	require.Equal(t, tools.ErrorInvalidArguments, r.ErrorKind)
}

// Run by the engine, the tool sends the call's idempotency key with
// requests that change something.
func TestToolIdempotencyHeader(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	c := newClient(t, &httpreq.Config{AllowHosts: []string{"127.0.0.1"}, AllowNetworks: loopback, IdempotencyHeader: "Idempotency-Key"})
	tool := httpreq.Tool(c, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	wf := durable.NewWorkflow("post", func(ctx durable.Context, url string) ([]tools.Result, error) {
		var out []tools.Result
		for _, m := range []string{"POST", "GET"} {
			args, _ := json.Marshal(httpreq.ToolInput{Method: m, URL: url})
			r, err := tool.Run(ctx, tools.Call{Name: httpreq.ToolName, Arguments: string(args)}, nil)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, nil
	})
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "engine.db"), nil)
	require.NoError(t, err)
	defer st.Close()
	e, err := durable.New(st, &durable.Config{PollInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	e.MustRegister(wf, tool.Definition())
	e.NewWorker(nil)
	require.NoError(t, e.Start(ctx))
	defer e.Stop(context.Background())

	rs, err := wf.Run(ctx, e, s.URL+"/echo", &durable.StartOptions{ID: "post-1"})
	require.NoError(t, err)
	require.Len(t, rs, 2)
	var post, get httpreq.Response
	require.NoError(t, json.Unmarshal(rs[0].Content, &post))
	require.NoError(t, json.Unmarshal(rs[1].Content, &get))
	require.NotEmpty(t, post.Headers["X-Idempotency-Key"])
	require.Empty(t, get.Headers["X-Idempotency-Key"])
}
