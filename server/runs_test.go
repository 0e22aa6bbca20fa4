package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/server"
)

// Trigger a run, poll it to completion, read its result, history and
// attempts, and find it in the listing, on both stores.
func TestTriggerPollHistory(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, be backend) {
		b := setup(t, setupOpts{backend: be})
		sch := newSchemas(t)

		r := b.do(t, "POST", "/v1/agents/echo/runs", map[string]any{"input": map[string]string{"text": "hello"}}, "")
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
		sch.check(t, "Run", r.Body)
		var run server.Run
		r.decode(t, &run)
		require.NotEmpty(t, run.RunID)
		require.Equal(t, "echo", run.Agent)
		require.Equal(t, "/v1/runs/"+run.RunID, r.Header.Get("Location"))
		require.NotEmpty(t, r.Header.Get("X-Request-Id"))

		done := b.waitRun(t, run.RunID, "", closed)
		require.Equal(t, "completed", done.Status)
		require.JSONEq(t, `"HELLO"`, string(done.Result))
		require.False(t, done.ClosedAt.IsZero())

		r = b.do(t, "GET", "/v1/runs/"+run.RunID, nil, "")
		sch.check(t, "Run", r.Body)
		// The execution ID finds the run too.
		r = b.do(t, "GET", "/v1/runs/"+run.ExecutionID, nil, "")
		require.Equal(t, http.StatusOK, r.Status)

		r = b.do(t, "GET", "/v1/runs/"+run.RunID+"/history", nil, "")
		require.Equal(t, http.StatusOK, r.Status)
		sch.check(t, "RunHistory", r.Body)
		var h server.RunHistory
		r.decode(t, &h)
		types := make([]string, len(h.Events))
		for i, ev := range h.Events {
			types[i] = ev.Type
		}
		require.Equal(t, []string{durable.EventWorkflowStarted, durable.EventActivityScheduled,
			durable.EventActivityCompleted, durable.EventWorkflowCompleted}, types)
		r = b.do(t, "GET", "/v1/runs/"+run.RunID+"/history?after=2", nil, "")
		r.decode(t, &h)
		require.Len(t, h.Events, 2)
		require.Equal(t, int64(3), h.Events[0].ID)

		r = b.do(t, "GET", "/v1/runs/"+run.RunID+"/attempts", nil, "")
		require.Equal(t, http.StatusOK, r.Status)
		sch.check(t, "AttemptList", r.Body)
		var atts struct{ Attempts []server.Attempt }
		r.decode(t, &atts)
		require.Len(t, atts.Attempts, 1)
		require.Equal(t, "shout", atts.Attempts[0].ActivityType)
		require.Equal(t, "completed", atts.Attempts[0].Outcome)

		r = b.do(t, "GET", "/v1/runs?agent=echo&status=completed", nil, "")
		require.Equal(t, http.StatusOK, r.Status)
		sch.check(t, "RunList", r.Body)
		var list server.RunList
		r.decode(t, &list)
		require.Len(t, list.Runs, 1)
		require.Equal(t, run.RunID, list.Runs[0].RunID)
		r = b.do(t, "GET", "/v1/runs?status=running", nil, "")
		r.decode(t, &list)
		require.Empty(t, list.Runs)

		r = b.do(t, "GET", "/v1/agents", nil, "")
		require.Equal(t, http.StatusOK, r.Status)
		sch.check(t, "AgentList", r.Body)
	})
}

// An agent's runs start on its task queue.
func TestAgentTaskQueue(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	r := b.do(t, "POST", "/v1/agents/side-echo/runs", map[string]any{"input": map[string]string{"text": "side"}}, "")
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	var run server.Run
	r.decode(t, &run)
	require.Equal(t, "side", run.TaskQueue)
	require.Equal(t, "side-echo", run.Agent)
	done := b.waitRun(t, run.RunID, "", closed)
	require.JSONEq(t, `"SIDE"`, string(done.Result))
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	for i := range 5 {
		r := b.do(t, "POST", "/v1/agents/echo/runs", map[string]any{"run_id": "page-" + string(rune('a'+i))}, "")
		require.Equal(t, http.StatusCreated, r.Status)
	}
	var seen []string
	cursor := ""
	for range 10 {
		path := "/v1/runs?limit=2&agent=echo"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := b.do(t, "GET", path, nil, "")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var list server.RunList
		r.decode(t, &list)
		require.LessOrEqual(t, len(list.Runs), 2)
		for _, run := range list.Runs {
			seen = append(seen, run.RunID)
		}
		if list.NextCursor == "" {
			break
		}
		cursor = list.NextCursor
	}
	require.Equal(t, []string{"page-e", "page-d", "page-c", "page-b", "page-a"}, seen)
}

// A trigger with a run_id is idempotent: the same run_id while the run is
// running, and after it closed, returns the same run and starts nothing.
func TestIdempotentTrigger(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, be backend) {
		b := setup(t, setupOpts{backend: be})
		body := map[string]any{"run_id": "order-42"}
		r := b.do(t, "POST", "/v1/agents/waiter/runs", body, "")
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
		var first server.Run
		r.decode(t, &first)
		require.Equal(t, "order-42", first.RunID)

		r = b.do(t, "POST", "/v1/agents/waiter/runs", body, "")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var again server.Run
		r.decode(t, &again)
		require.Equal(t, first.ExecutionID, again.ExecutionID)
		require.Equal(t, 1, b.runCount(t))

		// Another agent cannot take the run_id.
		r = b.do(t, "POST", "/v1/agents/echo/runs", body, "")
		require.Equal(t, http.StatusConflict, r.Status)
		p := r.problem(t)
		require.Equal(t, server.CodeRunIDConflict, p.Code)
		require.Equal(t, "run_id", p.Errors[0].Field)

		r = b.do(t, "POST", "/v1/runs/order-42/signals/go", map[string]any{"payload": "two"}, "")
		require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
		done := b.waitRun(t, "order-42", "", closed)
		require.JSONEq(t, `"did one, did two"`, string(done.Result))

		// After the run closed, the same run_id still returns it, with its
		// result, and starts nothing.
		r = b.do(t, "POST", "/v1/agents/waiter/runs", body, "")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		r.decode(t, &again)
		require.Equal(t, first.ExecutionID, again.ExecutionID)
		require.Equal(t, "completed", again.Status)
		require.JSONEq(t, `"did one, did two"`, string(again.Result))
		require.Equal(t, 1, b.runCount(t))
	})
}

// sseEvent is one server-sent event.
type sseEvent struct {
	ID, Event, Data string
}

// readSSE parses a stream into a channel of events; comments are sent as
// events named ":".
func readSSE(t *testing.T, resp *http.Response) <-chan sseEvent {
	ch := make(chan sseEvent, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Event != "" || ev.Data != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ch <- sseEvent{Event: ":"}
			case strings.HasPrefix(line, "id: "):
				ev.ID = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.Event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.Data += strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return ch
}

func openStream(t *testing.T, b *testBundle, path string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", b.ts.URL+path, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.ts.Client().Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	return resp
}

// next returns the next event that is not a comment, counting comments.
func next(t *testing.T, ch <-chan sseEvent, comments *int) sseEvent {
	t.Helper()
	for {
		select {
		case ev, ok := <-ch:
			require.True(t, ok, "the stream ended early")
			if ev.Event == ":" {
				*comments++
				continue
			}
			return ev
		case <-time.After(20 * time.Second):
			t.Fatal("no event in 20s")
		}
	}
}

// The event stream sends the history so far, then the events appended
// while the client reads, then "end" when the run closes.
func TestEventStreamIsLive(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, be backend) {
		b := setup(t, setupOpts{backend: be})
		r := b.do(t, "POST", "/v1/agents/waiter/runs", map[string]any{"run_id": "live-1"}, "")
		require.Equal(t, http.StatusCreated, r.Status)

		ch := readSSE(t, openStream(t, b, "/v1/runs/live-1/events"))
		comments := 0
		var got []string
		for {
			ev := next(t, ch, &comments)
			got = append(got, ev.Event)
			var he durable.HistoryEvent
			require.NoError(t, json.Unmarshal([]byte(ev.Data), &he))
			require.Equal(t, ev.Event, he.Type)
			require.Equal(t, ev.ID, jsonInt(he.ID))
			if ev.Event == durable.EventActivityCompleted {
				break // the run now waits for the signal
			}
		}
		require.Equal(t, []string{durable.EventWorkflowStarted, durable.EventActivityScheduled, durable.EventActivityCompleted}, got)
		// While the run waits, the stream stays open with heartbeats.
		for comments == 0 {
			select {
			case ev := <-ch:
				require.Equal(t, ":", ev.Event, "no event should come before the signal")
				comments++
			case <-time.After(10 * time.Second):
				t.Fatal("no heartbeat")
			}
		}
		require.Equal(t, "running", b.waitRun(t, "live-1", "", func(server.Run) bool { return true }).Status)

		// Events appended from now on reach the open stream.
		r = b.do(t, "POST", "/v1/runs/live-1/signals/go", map[string]any{"payload": "two"}, "")
		require.Equal(t, http.StatusAccepted, r.Status)
		got = nil
		for {
			ev := next(t, ch, &comments)
			got = append(got, ev.Event)
			if ev.Event == "end" {
				var run server.Run
				require.NoError(t, json.Unmarshal([]byte(ev.Data), &run))
				require.Equal(t, "completed", run.Status)
				break
			}
		}
		require.Equal(t, []string{durable.EventSignalReceived, durable.EventActivityScheduled, durable.EventActivityCompleted,
			durable.EventWorkflowCompleted, "end"}, got)
		select {
		case _, ok := <-ch:
			require.False(t, ok, "the stream must end after the end event")
		case <-time.After(10 * time.Second):
			t.Fatal("the stream did not end")
		}

		// A reconnect with Last-Event-ID resumes after that event.
		ch = readSSE(t, openStream(t, b, "/v1/runs/live-1/events", "Last-Event-ID", "5"))
		ev := next(t, ch, &comments)
		require.Equal(t, "6", ev.ID)
	})
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// A signal repeated with the same request_id is applied once.
func TestSignalRequestIDAppliesOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	r := b.do(t, "POST", "/v1/agents/collector/runs", map[string]any{"run_id": "sum-1"}, "")
	require.Equal(t, http.StatusCreated, r.Status)
	for _, s := range []struct {
		payload int
		id      string
	}{{5, "a"}, {5, "a"}, {7, "b"}} {
		r = b.do(t, "POST", "/v1/runs/sum-1/signals/add", map[string]any{"payload": s.payload, "request_id": s.id}, "")
		require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	}
	r = b.do(t, "POST", "/v1/runs/sum-1/signals/stop", "", "")
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	done := b.waitRun(t, "sum-1", "", closed)
	require.JSONEq(t, "12", string(done.Result))
	require.Equal(t, 3, count(b.eventTypes(t, "sum-1", ""), durable.EventSignalReceived))

	// The run has closed: another signal is refused.
	r = b.do(t, "POST", "/v1/runs/sum-1/signals/add", map[string]any{"payload": 1}, "")
	require.Equal(t, http.StatusConflict, r.Status)
	require.Equal(t, server.CodeRunClosed, r.problem(t).Code)
}

func TestCancel(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, be backend) {
		b := setup(t, setupOpts{backend: be})
		r := b.do(t, "POST", "/v1/agents/waiter/runs", map[string]any{"run_id": "cancel-me"}, "")
		require.Equal(t, http.StatusCreated, r.Status)
		require.Eventually(t, func() bool {
			return count(b.eventTypes(t, "cancel-me", ""), durable.EventActivityCompleted) == 1
		}, 10*time.Second, 20*time.Millisecond)

		r = b.do(t, "POST", "/v1/runs/cancel-me/cancel", map[string]any{"reason": "customer withdrew"}, "")
		require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
		var run server.Run
		r.decode(t, &run)
		require.True(t, run.CancelRequested)

		done := b.waitRun(t, "cancel-me", "", closed)
		require.Equal(t, "canceled", done.Status)
		require.NotNil(t, done.Error)
		types := b.eventTypes(t, "cancel-me", "")
		require.Equal(t, 1, count(types, durable.EventCancelRequested))
		require.Equal(t, durable.EventWorkflowCanceled, types[len(types)-1])

		r = b.do(t, "POST", "/v1/runs/cancel-me/cancel", nil, "")
		require.Equal(t, http.StatusConflict, r.Status)
		require.Equal(t, server.CodeRunClosed, r.problem(t).Code)
	})
}

// Serve refuses a non-loopback listener without keys, and a server
// without keys refuses clients from other hosts.
func TestNoKeysMeansLoopbackOnly(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := b.srv.ListenAndServe(ctx, "0.0.0.0:0")
	require.ErrorIs(t, err, server.ErrNoKeys)

	// A request that arrived from another host.
	req := httptest.NewRequest("GET", "/v1/runs", nil)
	req.RemoteAddr = "192.0.2.7:40000"
	rec := httptest.NewRecorder()
	b.srv.ServeHTTP(rec, req)
	require.Equal(t, http.StatusForbidden, rec.Code)

	// Serve on loopback works, and returns nil when its context ends.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- b.srv.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	cancel()
	require.NoError(t, <-errc)
}
