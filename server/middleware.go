package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestID takes the request's X-Request-Id when it is well formed, or
// makes one, and sends it back.
func (s *Server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !requestIDRE.MatchString(id) {
			b := make([]byte, 8)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

// recoverer turns a panic in a handler into a 500.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.ErrorContext(r.Context(), "panic in handler", "panic", fmt.Sprint(v), "stack", string(debug.Stack()), "request_id", RequestID(r.Context()))
				s.problem(w, r, &Problem{Status: http.StatusInternalServerError, Code: CodeInternal})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// logRequests logs each request and counts it in the metrics.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		d := time.Since(start)
		s.metrics.observeRequest(route, r.Method, status, d)
		attrs := []any{"method", r.Method, "route", route, "path", r.URL.Path, "status", status,
			"duration_ms", d.Milliseconds(), "bytes", ww.BytesWritten(), "request_id", RequestID(r.Context()), "remote", remoteIP(r)}
		if p := PrincipalFrom(r.Context()); p != nil {
			attrs = append(attrs, "subject", p.Subject)
		}
		if id := chi.URLParam(r, "id"); id != "" && strings.HasPrefix(route, "/v1/runs") {
			attrs = append(attrs, "run_id", id)
		}
		level := slog.LevelInfo
		switch route {
		case "/healthz", "/readyz", "/metrics":
			level = slog.LevelDebug // probes and scrapes
		}
		s.log.Log(r.Context(), level, "http request", attrs...)
	})
}

// crossOrigin refuses state-changing browser requests from other origins
// (CSRF), by Sec-Fetch-Site or by comparing Origin with the server's
// own host and Config.BaseURL.
type crossOrigin struct {
	cop *http.CrossOriginProtection
}

func newCrossOrigin(baseURL string) (*crossOrigin, error) {
	cop := http.NewCrossOriginProtection()
	if baseURL != "" {
		u, err := url.Parse(baseURL)
		if err != nil {
			return nil, fmt.Errorf("server: Config.BaseURL: %w", err)
		}
		if err := cop.AddTrustedOrigin(u.Scheme + "://" + u.Host); err != nil {
			return nil, fmt.Errorf("server: Config.BaseURL: %w", err)
		}
	}
	return &crossOrigin{cop: cop}, nil
}

func (c *crossOrigin) middleware(s *Server) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := c.cop.Check(r); err != nil {
				s.metrics.crossOriginRefused.Inc()
				if strings.HasPrefix(r.URL.Path, "/v1/") {
					s.problem(w, r, &Problem{Status: http.StatusForbidden, Code: CodeCrossOrigin, Detail: "cross-origin requests that change state are refused"})
				} else {
					s.errorPage(w, r, http.StatusForbidden, "Request refused", "This form was posted from another site. Open the page on this server and try again.")
				}
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
