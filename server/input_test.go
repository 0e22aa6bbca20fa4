package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/server"
)

// Every endpoint refuses bad input with a problem that names the field or
// the offset, and stores nothing.
func TestBadInputIsRefusedAndStoresNothing(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, be backend) {
		b := setup(t, setupOpts{backend: be, maxBody: 1024, approvals: true})
		sch := newSchemas(t)
		// One run to signal and cancel.
		r := b.do(t, "POST", "/v1/agents/waiter/runs", map[string]any{"run_id": "target"}, "")
		require.Equal(t, http.StatusCreated, r.Status)
		// Wait until it waits for its signal: its history stops growing.
		require.Eventually(t, func() bool {
			return count(b.eventTypes(t, "target", ""), durable.EventActivityCompleted) == 1
		}, 10*time.Second, 20*time.Millisecond)
		before := b.runCount(t)
		historyBefore := len(b.eventTypes(t, "target", ""))
		big := `{"input":"` + strings.Repeat("x", 2000) + `"}`

		cases := []struct {
			name, method, path, body string
			ctype                    string
			status                   int
			code                     string
			field                    string
			offset                   int64 // -1: any
		}{
			{"trigger malformed", "POST", "/v1/agents/echo/runs", `{"input": {"text": }`, "", 400, server.CodeInvalidJSON, "", 19},
			{"trigger truncated", "POST", "/v1/agents/echo/runs", `{"input": 1,`, "", 400, server.CodeInvalidJSON, "", 12},
			{"trigger not an object", "POST", "/v1/agents/echo/runs", ` [1]`, "", 400, server.CodeInvalidJSON, "", 1},
			{"trigger trailing data", "POST", "/v1/agents/echo/runs", `{} {}`, "", 400, server.CodeInvalidJSON, "", 3},
			{"trigger unknown field", "POST", "/v1/agents/echo/runs", `{"input": {}, "runid": "x"}`, "", 400, server.CodeUnknownField, "runid", -1},
			{"trigger wrong type", "POST", "/v1/agents/echo/runs", `{"run_id": 7}`, "", 400, server.CodeInvalidField, "run_id", -1},
			{"trigger bad run_id", "POST", "/v1/agents/echo/runs", `{"run_id": "has space"}`, "", 400, server.CodeInvalidField, "run_id", -1},
			{"trigger oversize", "POST", "/v1/agents/echo/runs", big, "", 413, server.CodeBodyTooLarge, "", -1},
			{"trigger form post", "POST", "/v1/agents/echo/runs", `input=1`, "application/x-www-form-urlencoded", 415, server.CodeUnsupportedMediaType, "", -1},
			{"trigger unknown agent", "POST", "/v1/agents/nobody/runs", `{}`, "", 404, server.CodeAgentNotFound, "agent", -1},
			{"signal malformed", "POST", "/v1/runs/target/signals/go", `{"payload": "x"`, "", 400, server.CodeInvalidJSON, "", -1},
			{"signal unknown field", "POST", "/v1/runs/target/signals/go", `{"value": "x"}`, "", 400, server.CodeUnknownField, "value", -1},
			{"signal bad request_id", "POST", "/v1/runs/target/signals/go", `{"request_id": "a b"}`, "", 400, server.CodeInvalidField, "request_id", -1},
			{"signal bad name", "POST", "/v1/runs/target/signals/-go", `{}`, "", 400, server.CodeInvalidField, "name", -1},
			{"signal oversize", "POST", "/v1/runs/target/signals/go", big, "", 413, server.CodeBodyTooLarge, "", -1},
			{"signal unknown run", "POST", "/v1/runs/nope/signals/go", `{}`, "", 404, server.CodeRunNotFound, "", -1},
			{"cancel malformed", "POST", "/v1/runs/target/cancel", `{"reason": }`, "", 400, server.CodeInvalidJSON, "", -1},
			{"cancel unknown field", "POST", "/v1/runs/target/cancel", `{"why": "x"}`, "", 400, server.CodeUnknownField, "why", -1},
			{"cancel oversize", "POST", "/v1/runs/target/cancel", big, "", 413, server.CodeBodyTooLarge, "", -1},
			{"cancel long reason", "POST", "/v1/runs/target/cancel", `{"reason":"` + strings.Repeat("r", 1001) + `"}`, "", 400, server.CodeInvalidField, "reason", -1},
			{"cancel unknown run", "POST", "/v1/runs/nope/cancel", ``, "", 404, server.CodeRunNotFound, "", -1},
			{"get unknown run", "GET", "/v1/runs/nope", ``, "", 404, server.CodeRunNotFound, "", -1},
			{"history unknown run", "GET", "/v1/runs/nope/history", ``, "", 404, server.CodeRunNotFound, "", -1},
			{"history bad after", "GET", "/v1/runs/target/history?after=x", ``, "", 400, server.CodeInvalidField, "after", -1},
			{"attempts unknown run", "GET", "/v1/runs/nope/attempts", ``, "", 404, server.CodeRunNotFound, "", -1},
			{"events unknown run", "GET", "/v1/runs/nope/events", ``, "", 404, server.CodeRunNotFound, "", -1},
			{"events bad after", "GET", "/v1/runs/target/events?after=-1", ``, "", 400, server.CodeInvalidField, "after", -1},
			{"approvals of unknown run", "GET", "/v1/runs/nope/approvals", ``, "", 404, server.CodeRunNotFound, "", -1},
			{"list bad status", "GET", "/v1/runs?status=done", ``, "", 400, server.CodeInvalidField, "status", -1},
			{"list bad limit", "GET", "/v1/runs?limit=0", ``, "", 400, server.CodeInvalidField, "limit", -1},
			{"list bad cursor", "GET", "/v1/runs?cursor=abc", ``, "", 400, server.CodeInvalidField, "cursor", -1},
			{"list unknown agent", "GET", "/v1/runs?agent=nobody", ``, "", 400, server.CodeInvalidField, "agent", -1},
			{"list unknown parameter", "GET", "/v1/runs?colour=red", ``, "", 400, server.CodeInvalidField, "colour", -1},
			{"approvals bad status", "GET", "/v1/approvals?all=true&status=maybe", ``, "", 400, server.CodeInvalidField, "status", -1},
			{"approvals unknown parameter", "GET", "/v1/approvals?colour=red", ``, "", 400, server.CodeInvalidField, "colour", -1},
			{"approval unknown", "GET", "/v1/approvals/nope", ``, "", 404, server.CodeApprovalNotFound, "", -1},
			{"decide malformed", "POST", "/v1/approvals/nope/decision", `{"decision":`, "", 400, server.CodeInvalidJSON, "", -1},
			{"decide empty", "POST", "/v1/approvals/nope/decision", ``, "", 400, server.CodeInvalidJSON, "", -1},
			{"decide unknown field", "POST", "/v1/approvals/nope/decision", `{"decision":"approve","args_hash":"h","why":"x"}`, "", 400, server.CodeUnknownField, "why", -1},
			{"decide bad decision", "POST", "/v1/approvals/nope/decision", `{"decision":"maybe","args_hash":"h"}`, "", 400, server.CodeInvalidField, "decision", -1},
			{"decide no hash", "POST", "/v1/approvals/nope/decision", `{"decision":"approve"}`, "", 400, server.CodeInvalidField, "args_hash", -1},
			{"decide oversize", "POST", "/v1/approvals/nope/decision", big, "", 413, server.CodeBodyTooLarge, "", -1},
			{"decide unknown approval", "POST", "/v1/approvals/nope/decision", `{"decision":"approve","args_hash":"h"}`, "", 404, server.CodeApprovalNotFound, "", -1},
			{"no such route", "GET", "/v1/nothing", ``, "", 404, server.CodeNotFound, "", -1},
			{"wrong method", "DELETE", "/v1/runs/target", ``, "", 405, server.CodeMethodNotAllowed, "", -1},
		}
		for _, c := range cases {
			var r response
			if c.ctype != "" {
				r = b.do(t, c.method, c.path, c.body, "", "Content-Type", c.ctype)
			} else if c.body == "" {
				r = b.do(t, c.method, c.path, nil, "")
			} else {
				r = b.do(t, c.method, c.path, c.body, "")
			}
			require.Equal(t, c.status, r.Status, "%s: %s", c.name, r.Body)
			p := r.problem(t)
			require.Equal(t, c.code, p.Code, c.name)
			sch.check(t, "Problem", r.Body)
			if c.field != "" {
				require.NotEmpty(t, p.Errors, c.name)
				require.Equal(t, c.field, p.Errors[0].Field, c.name)
				require.Contains(t, p.Detail, c.field, c.name)
			}
			if c.offset >= 0 {
				require.NotNil(t, p.Offset, c.name)
				require.Equal(t, c.offset, *p.Offset, "%s: %s", c.name, p.Detail)
				require.Contains(t, p.Detail, "offset", c.name)
			}
		}
		// Nothing was stored: no new run, nothing new in the target's
		// history (no signal, no cancel request).
		require.Equal(t, before, b.runCount(t))
		require.Len(t, b.eventTypes(t, "target", ""), historyBefore)
	})
}
