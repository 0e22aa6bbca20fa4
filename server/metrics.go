package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keelhq/keel/durable"
)

// metrics are the server's Prometheus metrics.
//
// The engine has no hooks for metrics, so what happens inside it is seen
// from its store: on every scrape an observer lists the runs created
// since the last one and the runs still open, and counts the runs that
// started and closed, with their activity attempts and, for runs whose
// activity results carry a usage object, model tokens and cost. These
// counters describe the whole database, not only this process: scrape one
// server per database. Each task queue's depth (ready and leased tasks)
// and latency (how long its oldest ready task has waited) come from
// Engine.QueueStats at each scrape.
type metrics struct {
	reg *prometheus.Registry

	requests           *prometheus.CounterVec
	durations          *prometheus.HistogramVec
	triggered          *prometheus.CounterVec
	signals            prometheus.Counter
	cancels            prometheus.Counter
	decisions          *prometheus.CounterVec
	streams            prometheus.Gauge
	crossOriginRefused prometheus.Counter

	obs *observer
}

func newMetrics(reg *prometheus.Registry, e *durable.Engine) (*metrics, error) {
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "keel_http_request_duration_seconds", Help: "HTTP request durations by route (event streams included).",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"}),
		triggered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_api_runs_triggered_total", Help: "Agent triggers over HTTP; created is false when the run_id already had a run.",
		}, []string{"agent", "created"}),
		signals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keel_api_signals_total", Help: "Signals sent to runs over HTTP.",
		}),
		cancels: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keel_api_cancels_total", Help: "Cancel requests accepted over HTTP.",
		}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_approval_decisions_total", Help: "Approval decisions taken through the server, by decision and channel (api, page, link).",
		}, []string{"decision", "via"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keel_event_streams", Help: "Open server-sent event streams.",
		}),
		crossOriginRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keel_cross_origin_refused_total", Help: "State-changing browser requests refused as cross-origin.",
		}),
		obs: newObserver(e),
	}
	for _, c := range []prometheus.Collector{m.requests, m.durations, m.triggered, m.signals, m.cancels,
		m.decisions, m.streams, m.crossOriginRefused, m.obs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			if _, dup := err.(prometheus.AlreadyRegisteredError); dup {
				continue // a shared registry that already has the runtime collectors
			}
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) observeRequest(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.durations.WithLabelValues(route, method).Observe(d.Seconds())
}

// observer counts runs, activity attempts and model usage by reading the
// store on each scrape.
type observer struct {
	e *durable.Engine

	mu        sync.Mutex
	watermark time.Time            // runs created before it were seen (or predate the server)
	recent    map[string]time.Time // runs seen, created within margin of the watermark
	open      map[string]string    // run ID → workflow type, runs seen running

	started   *prometheus.CounterVec
	closed    *prometheus.CounterVec
	running   *prometheus.GaugeVec
	attempts  *prometheus.CounterVec
	failures  *prometheus.CounterVec
	tokens    *prometheus.CounterVec
	cost      *prometheus.CounterVec
	truncated prometheus.Counter
	depth     *prometheus.GaugeVec
	latency   *prometheus.GaugeVec
}

const (
	// observeMargin rescans runs created this long before the watermark,
	// for runs committed late or by processes whose clocks differ.
	observeMargin = 10 * time.Second
	// observeLimit bounds the runs one scrape reads; the rest wait for the
	// next scrape.
	observeLimit = 5000
)

func newObserver(e *durable.Engine) *observer {
	return &observer{
		e:         e,
		watermark: time.Now(),
		recent:    map[string]time.Time{},
		open:      map[string]string{},
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_runs_started_total", Help: "Runs started (seen since the server started), by workflow type.",
		}, []string{"workflow_type"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_runs_closed_total", Help: "Runs closed, by workflow type and status (completed, failed, canceled, terminated…).",
		}, []string{"workflow_type", "status"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keel_runs_running", Help: "Runs open now, by workflow type.",
		}, []string{"workflow_type"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_activity_attempts_total", Help: "Activity attempts of closed runs, by activity type and outcome.",
		}, []string{"activity_type", "outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_activity_failures_total", Help: "Activity attempts of closed runs that did not complete, by activity type.",
		}, []string{"activity_type"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_llm_tokens_total", Help: "Model tokens of closed runs, by workflow type and kind (prompt, completion).",
		}, []string{"workflow_type", "kind"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_llm_cost_usd_total", Help: "Model cost in US dollars of closed runs, where activity results report it.",
		}, []string{"workflow_type"}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keel_metrics_scan_truncated_total", Help: "Scrapes that stopped reading runs at the per-scrape limit.",
		}),
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keel_task_queue_depth", Help: "Tasks per task queue, by kind (workflow, activity) and state (ready: waiting for a worker; leased: being worked on).",
		}, []string{"task_queue", "kind", "state"}),
		latency: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keel_task_queue_latency_seconds", Help: "How long the oldest ready task of a task queue has waited for a worker, by kind; 0 when none waits.",
		}, []string{"task_queue", "kind"}),
	}
}

func (o *observer) collectors() []prometheus.Collector {
	return []prometheus.Collector{o.started, o.closed, o.running, o.attempts, o.failures, o.tokens, o.cost, o.truncated,
		o.depth, o.latency}
}

// Describe implements prometheus.Collector.
func (o *observer) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range o.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector: it observes the store, then
// reports.
func (o *observer) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o.observe(ctx)
	o.observeQueues(ctx)
	for _, c := range o.collectors() {
		c.Collect(ch)
	}
}

// observe reads the runs created since the last observation and the open
// runs, and counts what started and closed.
func (o *observer) observe(ctx context.Context) {
	o.mu.Lock()
	defer o.mu.Unlock()
	read := 0
	// New runs, newest first, back to the watermark less the margin.
	since := o.watermark.Add(-observeMargin)
	newest := o.watermark
	cursor := ""
scan:
	for {
		runs, next, err := o.e.ListRuns(ctx, &durable.ListOptions{Cursor: cursor, Limit: 500})
		if err != nil {
			return
		}
		for _, r := range runs {
			read++
			if r.CreatedAt.Before(since) {
				break scan
			}
			if _, seen := o.recent[r.RunID]; seen {
				continue
			}
			o.recent[r.RunID] = r.CreatedAt
			if r.CreatedAt.After(newest) {
				newest = r.CreatedAt
			}
			o.started.WithLabelValues(r.WorkflowType).Inc()
			if r.Status.Closed() {
				o.onClose(ctx, r)
			} else {
				o.open[r.RunID] = r.WorkflowType
			}
		}
		if next == "" || read >= observeLimit {
			if next != "" {
				o.truncated.Inc()
			}
			break
		}
		cursor = next
	}
	o.watermark = newest
	for id, t := range o.recent {
		if t.Before(o.watermark.Add(-observeMargin)) {
			delete(o.recent, id)
		}
	}
	// Open runs: those no longer running have closed.
	stillOpen := map[string]bool{}
	byType := map[string]int{}
	cursor = ""
	complete := false
	for read < 2*observeLimit {
		runs, next, err := o.e.ListRuns(ctx, &durable.ListOptions{Status: durable.StatusRunning, Cursor: cursor, Limit: 500})
		if err != nil {
			return
		}
		for _, r := range runs {
			read++
			stillOpen[r.RunID] = true
			byType[r.WorkflowType]++
			if _, ok := o.open[r.RunID]; !ok {
				o.open[r.RunID] = r.WorkflowType // running since before the server started
			}
		}
		if next == "" {
			complete = true
			break
		}
		cursor = next
	}
	if !complete {
		o.truncated.Inc()
		return // a partial list cannot tell which runs closed
	}
	o.running.Reset()
	for t, n := range byType {
		o.running.WithLabelValues(t).Set(float64(n))
	}
	for id := range o.open {
		if stillOpen[id] {
			continue
		}
		info, err := o.e.DescribeRun(ctx, id)
		if err != nil {
			delete(o.open, id) // deleted by retention
			continue
		}
		if info.Status.Closed() {
			o.onClose(ctx, info)
		}
	}
}

// onClose counts a closed run, its activity attempts and its model usage.
func (o *observer) onClose(ctx context.Context, r durable.RunInfo) {
	delete(o.open, r.RunID)
	o.closed.WithLabelValues(r.WorkflowType, string(r.Status)).Inc()
	atts, err := o.e.ActivityAttempts(ctx, r.RunID)
	if err == nil {
		for _, a := range atts {
			o.attempts.WithLabelValues(a.ActivityType, a.Outcome).Inc()
			if a.Outcome != "completed" {
				o.failures.WithLabelValues(a.ActivityType).Inc()
			}
		}
	}
	evs, err := o.e.Store().History(ctx, r.RunID, 0)
	if err != nil {
		return
	}
	for _, ev := range evs {
		if ev.Type != durable.EventActivityCompleted {
			continue
		}
		u, ok := usageOf(ev.Data)
		if !ok {
			continue
		}
		o.tokens.WithLabelValues(r.WorkflowType, "prompt").Add(float64(u.PromptTokens))
		o.tokens.WithLabelValues(r.WorkflowType, "completion").Add(float64(u.CompletionTokens))
		if u.CostUSD > 0 {
			o.cost.WithLabelValues(r.WorkflowType).Add(u.CostUSD)
		}
	}
}

// Usage is the model usage found in an activity's result.
type Usage struct {
	Model            string  `json:"model,omitempty"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	TotalTokens      int64   `json:"total_tokens"`
	CostUSD          float64 `json:"cost_usd,omitempty"`
}

// usageOf finds model usage in an ActivityCompleted event's data: a result
// object with a "usage" object of token counts (the shape of llm.Response
// and of package agent's model activity), and a cost: "cost" in
// microdollars (llm.USD, as package agent records it), or "cost_usd" in
// dollars, in the result or in its usage.
func usageOf(data json.RawMessage) (Usage, bool) {
	var ev struct {
		Result json.RawMessage `json:"result"`
	}
	if json.Unmarshal(data, &ev) != nil || len(ev.Result) == 0 || ev.Result[0] != '{' {
		return Usage{}, false
	}
	var res struct {
		Usage *struct {
			PromptTokens     int64    `json:"prompt_tokens"`
			CompletionTokens int64    `json:"completion_tokens"`
			InputTokens      int64    `json:"input_tokens"`
			OutputTokens     int64    `json:"output_tokens"`
			TotalTokens      int64    `json:"total_tokens"`
			CostUSD          *float64 `json:"cost_usd"`
		} `json:"usage"`
		CostUSD *float64 `json:"cost_usd"`
		Cost    *int64   `json:"cost"` // microdollars
		Model   string   `json:"model"`
	}
	if json.Unmarshal(ev.Result, &res) != nil || res.Usage == nil {
		return Usage{}, false
	}
	u := Usage{
		Model:            res.Model,
		PromptTokens:     res.Usage.PromptTokens + res.Usage.InputTokens,
		CompletionTokens: res.Usage.CompletionTokens + res.Usage.OutputTokens,
		TotalTokens:      res.Usage.TotalTokens,
	}
	if u.TotalTokens == 0 {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	switch {
	case res.Usage.CostUSD != nil:
		u.CostUSD = *res.Usage.CostUSD
	case res.CostUSD != nil:
		u.CostUSD = *res.CostUSD
	case res.Cost != nil:
		u.CostUSD = float64(*res.Cost) / 1e6
	}
	if u.TotalTokens == 0 && u.CostUSD == 0 {
		return Usage{}, false
	}
	return u, true
}

// observeQueues reads the task queues' depths and the age of their oldest
// ready task.
func (o *observer) observeQueues(ctx context.Context) {
	stats, err := o.e.QueueStats(ctx)
	if err != nil {
		return
	}
	o.depth.Reset()
	o.latency.Reset()
	now := time.Now()
	for _, s := range stats {
		o.depth.WithLabelValues(s.TaskQueue, s.Kind, "ready").Set(float64(s.Ready))
		o.depth.WithLabelValues(s.TaskQueue, s.Kind, "leased").Set(float64(s.Leased))
		age := 0.0
		if !s.OldestReady.IsZero() {
			age = max(0, now.Sub(s.OldestReady).Seconds())
		}
		o.latency.WithLabelValues(s.TaskQueue, s.Kind).Set(age)
	}
}
