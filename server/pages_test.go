package server_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
)

// A run's page is its audit trail: every event, each activity attempt with
// its error, and model calls with tokens and cost.
func TestRunTimelinePage(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	r := b.do(t, "POST", "/v1/agents/audit/runs", map[string]any{"run_id": "audit-1"}, "")
	require.Equal(t, http.StatusCreated, r.Status)
	b.waitRun(t, "audit-1", "", closed)

	r = b.do(t, "GET", "/ui/runs/audit-1", nil, "")
	require.Equal(t, http.StatusOK, r.Status)
	require.Equal(t, "text/html; charset=utf-8", r.Header.Get("Content-Type"))
	require.Contains(t, r.Header.Get("Content-Security-Policy"), "default-src 'none'")
	page := string(r.Body)
	for _, want := range []string{
		`<span class="badge s-completed" id="run-status">completed</span>`,
		`id="event-1" data-type="WorkflowStarted"`,
		`data-type="ActivityScheduled"`,
		`<code>model-call</code>`,
		`<code>flaky</code>`,
		"attempt 1 on",
		"upstream said 503: try later", // the failed attempt's error
		"attempt 2 on",
		"120 prompt + 30 completion tokens · $0.0021",
	} {
		require.Contains(t, page, want)
	}
	require.Contains(t, page, `id="usage"`)
	require.Contains(t, page, `<div><b>120</b><span class="muted">prompt tokens</span></div>`)
	require.Contains(t, page, `id="run-result"`)
	require.NotContains(t, page, `id="live"`, "a closed run's page does not follow it")

	// The runs page lists it under its status.
	r = b.do(t, "GET", "/ui/runs?status=completed", nil, "")
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, string(r.Body), `data-run-id="audit-1"`)
	r = b.do(t, "GET", "/ui/runs?status=running", nil, "")
	require.NotContains(t, string(r.Body), `data-run-id="audit-1"`)
	require.Contains(t, string(r.Body), `id="no-runs"`)
	// HEAD renders nothing.
	r = b.do(t, "HEAD", "/ui/runs/audit-1", nil, "")
	require.Equal(t, http.StatusOK, r.Status)
	require.Empty(t, r.Body)
	r = b.do(t, "GET", "/ui/runs/nope", nil, "")
	require.Equal(t, http.StatusNotFound, r.Status)
}

// /metrics counts runs started and closed, activity attempts and
// failures, model tokens and cost, and HTTP requests.
func TestMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	metrics := func() string {
		r := b.do(t, "GET", "/metrics", nil, "")
		require.Equal(t, http.StatusOK, r.Status)
		return string(r.Body)
	}
	r := b.do(t, "POST", "/v1/agents/waiter/runs", map[string]any{"run_id": "m-1"}, "")
	require.Equal(t, http.StatusCreated, r.Status)
	m := metrics()
	require.Contains(t, m, `keel_runs_started_total{workflow_type="waiter"} 1`)
	require.Contains(t, m, `keel_runs_running{workflow_type="waiter"} 1`)
	require.NotContains(t, m, `keel_runs_closed_total{status="completed",workflow_type="waiter"}`)

	r = b.do(t, "POST", "/v1/runs/m-1/signals/go", map[string]any{"payload": "x"}, "")
	require.Equal(t, http.StatusAccepted, r.Status)
	b.waitRun(t, "m-1", "", closed)
	r = b.do(t, "POST", "/v1/agents/audit/runs", map[string]any{"run_id": "m-2"}, "")
	require.Equal(t, http.StatusCreated, r.Status)
	b.waitRun(t, "m-2", "", closed)

	m = metrics()
	for _, want := range []string{
		`keel_runs_started_total{workflow_type="waiter"} 1`,
		`keel_runs_started_total{workflow_type="audit"} 1`,
		`keel_runs_closed_total{status="completed",workflow_type="waiter"} 1`,
		`keel_runs_closed_total{status="completed",workflow_type="audit"} 1`,
		`keel_activity_attempts_total{activity_type="step",outcome="completed"} 2`,
		`keel_activity_attempts_total{activity_type="flaky",outcome="failed"} 1`,
		`keel_activity_attempts_total{activity_type="flaky",outcome="completed"} 1`,
		`keel_activity_failures_total{activity_type="flaky"} 1`,
		`keel_llm_tokens_total{kind="prompt",workflow_type="audit"} 120`,
		`keel_llm_tokens_total{kind="completion",workflow_type="audit"} 30`,
		`keel_llm_cost_usd_total{workflow_type="audit"} 0.0021`,
		`keel_api_runs_triggered_total{agent="waiter",created="true"} 1`,
		`keel_api_signals_total 1`,
		`keel_http_requests_total{code="201",method="POST",route="/v1/agents/{agent}/runs"} 2`,
		`go_goroutines`,
	} {
		require.Contains(t, m, want)
	}
	require.NotContains(t, m, `keel_runs_running{workflow_type="waiter"} 1`)
	// A run on a queue that no worker polls waits there: the queue's depth
	// and latency show it.
	_, err := b.e.StartWorkflow(t.Context(), "waiter", nil, &durable.StartOptions{ID: "stuck", TaskQueue: "unpolled"})
	require.NoError(t, err)
	m = metrics()
	require.Contains(t, m, `keel_task_queue_depth{kind="workflow",state="ready",task_queue="unpolled"} 1`)
	require.Contains(t, m, `keel_task_queue_latency_seconds{kind="workflow",task_queue="unpolled"}`)
	// A second scrape counts nothing twice.
	require.Contains(t, metrics(), `keel_runs_closed_total{status="completed",workflow_type="waiter"} 1`)
}
