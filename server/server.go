package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keelhq/keel/durable"
)

// Config configures a Server.
type Config struct {
	// Agents are the agents that can be triggered over HTTP; no other
	// workflow can be.
	Agents []Agent
	// Approvals is the approval service behind /v1/approvals, the reviewer
	// inbox and review links. Optional; without it those routes answer 404
	// with code approvals_disabled.
	Approvals Approvals
	// BaseURL is the server's public origin, such as
	// https://keel.example.com. Review links are built on it and browser
	// form posts must come from it (or from the request's own host).
	// Optional.
	BaseURL string
	// Engine starts and inspects runs. Required.
	Engine *durable.Engine
	// EventPollInterval is how often an event stream looks for new events.
	// Optional; default 200ms.
	EventPollInterval time.Duration
	// HeartbeatInterval is how often an idle event stream sends a comment
	// line to keep proxies from closing it. Optional; default 15s.
	HeartbeatInterval time.Duration
	// Keys authenticates API keys. Optional: without it the server does no
	// authentication, every request acts as the local operator ("local")
	// with every scope, requests from other hosts are refused, so are
	// requests whose Host is not a loopback name or IP or BaseURL's host
	// (DNS rebinding), and Serve refuses to listen on anything but a
	// loopback address. Do not put
	// such a server behind a proxy on the same machine: every request
	// would look local.
	Keys *KeyStore
	// Logger. Optional; default slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes bounds request bodies; larger ones are refused with
	// 413. Optional; default 4 MiB.
	MaxBodyBytes int64
	// Registry receives the server's Prometheus metrics, served at
	// /metrics. Optional; default a new registry of the server's own.
	Registry *prometheus.Registry
	// SessionSecret signs browser sessions and CSRF tokens. Optional;
	// default 32 random bytes, so that sessions end when the process
	// does. Give every replica behind one load balancer the same secret.
	SessionSecret []byte
	// SessionTTL is how long a browser session lasts. Optional; default
	// 12h.
	SessionTTL time.Duration
	// ShutdownTimeout bounds how long Serve waits for requests in flight
	// once its context ends. Optional; default 10s.
	ShutdownTimeout time.Duration
}

// WithDefaults returns a copy of c with defaults filled in. It does not
// generate SessionSecret; New does.
func (c *Config) WithDefaults() *Config {
	d := Config{}
	if c != nil {
		d = *c
	}
	if d.EventPollInterval <= 0 {
		d.EventPollInterval = 200 * time.Millisecond
	}
	if d.HeartbeatInterval <= 0 {
		d.HeartbeatInterval = 15 * time.Second
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = 4 << 20
	}
	if d.SessionTTL <= 0 {
		d.SessionTTL = 12 * time.Hour
	}
	if d.ShutdownTimeout <= 0 {
		d.ShutdownTimeout = 10 * time.Second
	}
	return &d
}

var agentNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)

func (c *Config) validate() error {
	if c.Engine == nil {
		return errors.New("server: Config.Engine is required")
	}
	seen := map[string]bool{}
	for _, a := range c.Agents {
		if !agentNameRE.MatchString(a.Name) {
			return fmt.Errorf("server: agent name %q: use 1 to 100 characters from [A-Za-z0-9._-]", a.Name)
		}
		if seen[a.Name] {
			return fmt.Errorf("server: agent %q is listed twice", a.Name)
		}
		seen[a.Name] = true
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("server: Config.BaseURL %q is not an http(s) origin", c.BaseURL)
		}
	}
	if len(c.SessionSecret) > 0 && len(c.SessionSecret) < 32 {
		return errors.New("server: Config.SessionSecret must be at least 32 bytes")
	}
	return nil
}

// Agent is an agent the server exposes: a workflow that
// POST /v1/agents/{Name}/runs starts.
type Agent struct {
	// Name is the agent's public name: 1 to 100 characters from
	// [A-Za-z0-9._-]. Required.
	Name string `json:"name"`
	// Workflow is the registered name of the workflow that runs the
	// agent. Optional; default Name (package agent registers each agent's
	// workflow under the agent's name). Two agents may share a workflow
	// on different task queues; listing runs by agent then lists both
	// agents' runs.
	Workflow string `json:"workflow_type"`
	// TaskQueue is the task queue its runs start on; a worker must poll
	// it. Optional; default "default".
	TaskQueue string `json:"task_queue"`
}

// Server is Keel's HTTP server: the REST API under /v1, the reviewer and
// run pages, the event streams, /metrics, /healthz, /readyz and
// /openapi.json. It is an http.Handler.
type Server struct {
	cfg        *Config
	engine     *durable.Engine
	log        *slog.Logger
	router     chi.Router
	metrics    *metrics
	secret     []byte
	origin     *crossOrigin
	agents     map[string]Agent  // by name, defaults filled in
	byWF       map[string]string // workflow name, and workflow + queue → agent name
	names      []string          // sorted agent names
	stopping   chan struct{}     // closed when Serve begins to shut down
	openAPIDoc []byte
	stopOnce   sync.Once
}

// New returns a Server. cfg is required for its Engine.
func New(cfg *Config) (*Server, error) {
	c := cfg.WithDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      c,
		engine:   c.Engine,
		log:      c.Logger,
		agents:   make(map[string]Agent, len(c.Agents)),
		byWF:     make(map[string]string, len(c.Agents)),
		stopping: make(chan struct{}),
	}
	for _, a := range c.Agents {
		if a.Workflow == "" {
			a.Workflow = a.Name
		}
		if a.TaskQueue == "" {
			a.TaskQueue = "default"
		}
		s.agents[a.Name] = a
		s.byWF[a.Workflow+"\x00"+a.TaskQueue] = a.Name
		if _, dup := s.byWF[a.Workflow]; !dup {
			s.byWF[a.Workflow] = a.Name // the first agent listed for a workflow
		}
		s.names = append(s.names, a.Name)
	}
	sort.Strings(s.names)
	s.secret = c.SessionSecret
	if len(s.secret) == 0 {
		s.secret = make([]byte, 32)
		_, _ = rand.Read(s.secret) // never fails
	}
	origin, err := newCrossOrigin(c.BaseURL)
	if err != nil {
		return nil, err
	}
	s.origin = origin
	reg := c.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg, c.Engine)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if s.openAPIDoc, err = OpenAPI(); err != nil {
		return nil, err
	}
	s.router = s.routes()
	return s, nil
}

// ServeHTTP serves a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.router.ServeHTTP(w, r)
}

// Routes returns the server's router, for walking its routes
// (chi.Walk) or mounting it under another.
func (s *Server) Routes() chi.Routes { return s.router }

func (s *Server) routes() chi.Router {
	r := chi.NewRouter()
	// HEAD is answered like GET, without a body and without side effects.
	r.Use(s.requestID, s.recoverer, s.logRequests, s.loopbackOnlyWithoutKeys, s.origin.middleware(s), middleware.GetHead)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.problem(w, r, &Problem{Status: http.StatusNotFound, Code: "not_found", Detail: "no route for " + r.URL.Path})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		s.problem(w, r, &Problem{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Detail: r.Method + " is not allowed on " + r.URL.Path})
	})

	// Operations: no authentication, except the metrics.
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Get("/openapi.json", s.openAPI)
	r.With(s.auth(ScopeRead)).Get("/metrics", s.metrics.handler().ServeHTTP)

	r.Route("/v1", func(r chi.Router) {
		r.With(s.auth(ScopeTrigger)).Post("/agents/{agent}/runs", s.triggerRun)
		r.With(s.auth(ScopeRead)).Get("/agents", s.listAgents)
		r.Route("/runs", func(r chi.Router) {
			r.With(s.auth(ScopeRead)).Get("/", s.listRuns)
			r.Route("/{id}", func(r chi.Router) {
				r.With(s.auth(ScopeRead)).Get("/", s.getRun)
				r.With(s.auth(ScopeRead)).Get("/history", s.getHistory)
				r.With(s.auth(ScopeRead)).Get("/attempts", s.getAttempts)
				r.With(s.auth(ScopeRead)).Get("/events", s.streamEvents)
				r.With(s.auth(ScopeRead)).Get("/approvals", s.runApprovals)
				r.With(s.auth(ScopeTrigger)).Post("/signals/{name}", s.signalRun)
				r.With(s.auth(ScopeTrigger)).Post("/cancel", s.cancelRun)
			})
		})
		r.Route("/approvals", func(r chi.Router) {
			r.With(s.auth(ScopeRead)).Get("/", s.listApprovals)
			r.With(s.auth(ScopeRead)).Get("/{id}", s.getApproval)
			r.With(s.auth(ScopeReview)).Post("/{id}/decision", s.decideApproval)
		})
	})

	// Pages for people.
	r.Group(func(r chi.Router) {
		r.Get("/", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/ui/runs", http.StatusSeeOther)
		})
		r.Get("/ui/login", s.loginPage)
		r.Post("/ui/login", s.login)
		r.Post("/ui/logout", s.logout)
		r.With(s.page(ScopeRead)).Get("/ui/runs", s.runsPage)
		r.With(s.page(ScopeRead)).Get("/ui/runs/{id}", s.runPage)
		r.With(s.page(ScopeTrigger)).Post("/ui/runs/{id}/cancel", s.cancelRunForm)
		r.With(s.page(ScopeRead)).Get("/ui/approvals", s.inboxPage)
		r.With(s.page(ScopeRead)).Get("/ui/approvals/{id}", s.approvalPage)
		r.With(s.page(ScopeReview)).Post("/ui/approvals/{id}/decision", s.decideForm)
		r.Get("/review/{token}", s.reviewPage)
		r.Post("/review/{token}", s.reviewDecide)
	})
	return r
}

// Serve serves HTTP on ln until ctx ends, then shuts down gracefully:
// it stops accepting connections, ends event streams and waits up to
// Config.ShutdownTimeout for requests in flight. Without Config.Keys it
// refuses a listener that is not on a loopback address.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.cfg.Keys == nil && !IsLoopback(ln.Addr()) {
		return fmt.Errorf("%w: %s", ErrNoKeys, ln.Addr())
	}
	if s.cfg.Keys == nil {
		s.log.Warn("no API keys: authentication is off and the server listens on loopback only; create a key with `keel keys create` to serve other hosts", "addr", ln.Addr().String())
	}
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("http server listening", "addr", ln.Addr().String(), "auth", s.cfg.Keys != nil)
	select {
	case err := <-errc:
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	s.stopOnce.Do(func() { close(s.stopping) }) // ends event streams
	cancelBase()
	shutCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(shutCtx); err != nil {
		_ = hs.Close()
		return fmt.Errorf("server: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// ListenAndServe listens on addr (host:port) and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	if s.cfg.Keys == nil && !isLoopbackHost(addr) {
		return fmt.Errorf("%w: %s", ErrNoKeys, addr)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// ErrNoKeys is returned by Serve and ListenAndServe for a non-loopback
// address when the server has no key store: without authentication it
// serves this machine only.
var ErrNoKeys = errors.New("server: refusing to listen on a non-loopback address without API keys")

// IsLoopback reports whether addr is a loopback IP address (127.0.0.0/8
// or ::1).
func IsLoopback(addr net.Addr) bool {
	switch a := addr.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return isLoopbackHost(addr.String())
}

func isLoopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
