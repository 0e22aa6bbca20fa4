// Package server is Keel's HTTP server: a JSON API to trigger agents and
// follow their runs, pages for the people who review what agents want to
// do, server-sent event streams, Prometheus metrics and health checks, in
// one http.Handler over a durable.Engine.
//
// # Getting started
//
// Give New the engine and the agents to expose (each a workflow, by
// default the one registered under the agent's name), and serve it:
//
//	srv, err := server.New(&server.Config{
//		Engine: e,
//		Agents: []server.Agent{{Name: "support", TaskQueue: "support"}},
//		Keys:   keys,      // API keys; nil serves loopback clients only
//		Approvals: review, // a *hitl.Service; optional
//	})
//	err = srv.ListenAndServe(ctx, "127.0.0.1:8080")
//
// `keel serve` does this with the engine's workers in the same process.
//
// # The API
//
// Everything is under /v1 and described by the OpenAPI 3.1 document at
// /openapi.json:
//
//   - GET /v1/agents lists the agents; POST /v1/agents/{agent}/runs
//     starts a run. With a run_id it is
//     idempotent: the same run_id returns the same run (201 the first time,
//     200 after), whether it is still running or closed, and never starts
//     a second one.
//   - GET /v1/runs lists runs (status, agent, cursor, limit);
//     GET /v1/runs/{id} shows one with its result or error;
//     /history, /attempts and /approvals show its events, activity
//     attempts and approvals.
//   - GET /v1/runs/{id}/events streams the run's events as server-sent
//     events, from the first (or Last-Event-ID) until the run closes.
//   - POST /v1/runs/{id}/signals/{name} and POST /v1/runs/{id}/cancel.
//   - GET /v1/approvals (the caller's queue), GET /v1/approvals/{id} and
//     POST /v1/approvals/{id}/decision.
//
// Errors are problem details (RFC 9457) with a stable code (see the Code
// constants). Bodies are bounded (Config.MaxBodyBytes, 413 beyond), must be
// one JSON object sent as application/json, and may not hold unknown
// fields; errors name the field, or the byte offset of malformed JSON.
// A refused request stores nothing.
//
// # Authentication
//
// API keys (KeyStore) are bearer tokens, keel_<id>_<secret>, kept as a
// SHA-256 hash in the application database, with a subject (who uses the
// key) and scopes: read, trigger (start, signal, cancel; includes read),
// review (decide approvals; includes read) and admin (everything). Create
// them with `keel keys create`. A server without a key store does no
// authentication and serves loopback clients only; Serve refuses to listen
// on any other address.
//
// People sign in to the pages by pasting a key, which sets a signed
// session cookie; a reviewer may instead follow a signed, single-use
// review link (hitl.Service.SignLink) to /review/{token}. GET and HEAD of
// a page never change anything (mail scanners fetch links): only a POST
// decides. State-changing browser requests from other origins are refused
// (Sec-Fetch-Site and Origin, see http.CrossOriginProtection), and every
// form carries a CSRF token bound to its session or link.
//
// # Pages
//
// /ui/runs lists runs by status and agent; /ui/runs/{id} is a run's
// timeline, the audit trail to read after an incident: every event, each
// activity attempt with its error, model calls with their tokens and
// cost, the approvals and who decided them, with live updates while the
// run goes on. /ui/approvals is the reviewer's inbox and
// /ui/approvals/{id} an approval: the action and its arguments, why the
// agent asks, and the approve and reject buttons. The pages are plain
// server-rendered HTML that works without JavaScript.
//
// # Operations
//
// /healthz answers while the process is up; /readyz when the store
// answers. /metrics (read scope) serves Prometheus metrics from a registry
// of the server's own: HTTP requests, triggers, signals, cancels and
// decisions, and — observed from the store at each scrape, since the
// engine has no hooks — runs started and closed by workflow type and
// status, activity attempts and failures, and model tokens and cost from
// activity results that carry a usage object. Logs are structured
// (log/slog), with the request ID (X-Request-Id) and the run ID.
package server
