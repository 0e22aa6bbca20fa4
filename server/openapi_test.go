package server_test

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/server"
)

// Every route the router serves is in the OpenAPI document, and every
// path and method of the document is routed.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})

	routed := map[string]bool{}
	err := chi.Walk(b.srv.Routes(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if route != "/" {
			route = strings.TrimSuffix(route, "/")
		}
		routed[strings.ToLower(method)+" "+route] = true
		return nil
	})
	require.NoError(t, err)

	r := b.do(t, "GET", "/openapi.json", nil, "")
	require.Equal(t, http.StatusOK, r.Status)
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	doc, err := server.OpenAPI()
	require.NoError(t, err)
	require.JSONEq(t, string(doc), string(r.Body))

	var spec struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &spec))
	require.Equal(t, "3.1.0", spec.OpenAPI)
	documented := map[string]bool{}
	for path, ops := range spec.Paths {
		for method, op := range ops {
			if method == "parameters" {
				continue
			}
			documented[method+" "+path] = true
			// Every operation documents its responses.
			var o struct {
				Responses map[string]json.RawMessage `json:"responses"`
			}
			require.NoError(t, json.Unmarshal(op, &o))
			require.NotEmpty(t, o.Responses, "%s %s", method, path)
		}
	}
	require.Equal(t, sorted(routed), sorted(documented))
	require.Greater(t, len(routed), 20)
}

func sorted(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The schema checks used by the other tests catch a response that does
// not match the document.
func TestSchemasCatchDrift(t *testing.T) {
	t.Parallel()
	sch := newSchemas(t)
	sch.check(t, "Run", []byte(`{"run_id":"a","workflow_type":"w","execution_id":"e","status":"running","task_queue":"q","created_at":"2026-01-01T00:00:00Z","history_length":1}`))
	require.Error(t, sch.validate("Run", []byte(`{"run_id":"a","workflow_type":"w","execution_id":"e","status":"running","task_queue":"q","created_at":"2026-01-01T00:00:00Z","history_length":1,"extra":true}`)))
	require.Error(t, sch.validate("Run", []byte(`{"run_id":"a","workflow_type":"w","execution_id":"e","status":"sleeping","task_queue":"q","created_at":"2026-01-01T00:00:00Z","history_length":1}`)))
	require.Error(t, sch.validate("Problem", []byte(`{"type":"t","title":"t","status":400}`)), "a problem without code must not validate")
}
