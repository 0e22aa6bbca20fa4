package httpreq

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/tools"
)

// ToolName is the name of the tool Tool returns.
const ToolName = "http_request"

// ToolInput is the input of the http_request tool.
type ToolInput struct {
	Method  string            `json:"method,omitempty" jsonschema:"enum=GET,enum=HEAD,enum=POST,enum=PUT,enum=PATCH,enum=DELETE" jsonschema_description:"The HTTP method; default GET."`
	URL     string            `json:"url" jsonschema:"minLength=1,maxLength=8192" jsonschema_description:"The absolute http or https URL."`
	Headers map[string]string `json:"headers,omitempty" jsonschema_description:"Request headers, for example {\"Accept\": \"application/json\"}."`
	Body    string            `json:"body,omitempty" jsonschema_description:"The request body, for example a JSON document."`
}

// Tool returns the http_request tool, which sends one HTTP request through
// c: only to the hosts c allows, never to internal addresses unless c
// allows them, with c's timeout and size limits. A 4xx or 5xx status is a
// normal result the model can read; refused requests are errors that are
// not retried. opts may be nil.
func Tool(c *Client, opts *tools.Options) *tools.Tool {
	return tools.MustNew(ToolName,
		"Send an HTTP request to an allowed host and return the status, headers and body (cut at a size limit, with truncated set).",
		func(ctx context.Context, in ToolInput) (Response, error) {
			r := Request(in)
			if h := c.cfg.IdempotencyHeader; h != "" {
				m := strings.ToUpper(r.Method)
				if key := tools.IdempotencyKey(ctx); key != "" && m != "" && m != http.MethodGet && m != http.MethodHead && !hasHeader(r.Headers, h) {
					headers := make(map[string]string, len(r.Headers)+1)
					for k, v := range r.Headers {
						headers[k] = v
					}
					headers[h] = key
					r.Headers = headers
				}
			}
			resp, err := c.Do(ctx, r)
			if err != nil {
				for _, target := range []error{ErrInvalidRequest, ErrHostNotAllowed, ErrBlockedAddress, ErrTooManyRedirects, ErrResponseTooLarge} {
					if errors.Is(err, target) {
						return Response{}, durable.NonRetryable(err)
					}
				}
				return Response{}, err
			}
			return resp, nil
		}, opts)
}

func hasHeader(h map[string]string, name string) bool {
	for k := range h {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}
