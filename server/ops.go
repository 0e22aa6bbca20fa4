package server

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keelhq/keel/durable"
)

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when the engine's store, and the key store, answer
// a query within 2 seconds.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	if _, _, err := s.engine.ListRuns(ctx, &durable.ListOptions{Limit: 1}); err != nil {
		checks["store"] = err.Error()
		ok = false
	} else {
		checks["store"] = "ok"
	}
	if s.cfg.Keys != nil {
		if err := s.cfg.Keys.Ping(ctx); err != nil {
			checks["keys"] = err.Error()
			ok = false
		} else {
			checks["keys"] = "ok"
		}
	}
	if !ok {
		s.log.WarnContext(ctx, "not ready", "checks", checks)
		p := &Problem{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Detail: "a dependency does not answer"}
		s.problem(w, r, p)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "checks": checks})
}

//go:embed openapi.yaml
var openAPIYAML []byte

// OpenAPI returns the server's OpenAPI 3.1 document as JSON.
func OpenAPI() ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(openAPIYAML, &doc); err != nil {
		return nil, fmt.Errorf("server: openapi.yaml: %w", err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("server: openapi.yaml: %w", err)
	}
	return b, nil
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.openAPIDoc)
}
