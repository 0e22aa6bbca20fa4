package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// keel keys create prints a key once; keel serve runs the engine and the
// HTTP API in one process, authenticates the key, runs the demo agent and
// stops on SIGTERM.
func TestKeysAndServe(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "keel.db")
	var stdout, stderr bytes.Buffer
	create := keel("keys", "create", "--db", db, "--subject", "ci", "--scope", "trigger")
	create.Stdout, create.Stderr = &stdout, &stderr
	require.NoError(t, create.Run(), stderr.String())
	key := strings.TrimSpace(stdout.String())
	require.True(t, strings.HasPrefix(key, "keel_"), key)
	require.Contains(t, stderr.String(), "cannot be shown again")

	out, err := keel("keys", "list", "--db", db).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "ci")
	require.Contains(t, string(out), "trigger")
	require.NotContains(t, string(out), strings.SplitN(key, "_", 3)[2], "list never shows a secret")

	addr := freeAddr(t)
	var srvOut, srvErr lockedBuffer
	srv := keel("serve", "--db", db, "--addr", addr, "--poll-interval", "50ms")
	srv.Stdout, srv.Stderr = &srvOut, &srvErr
	require.NoError(t, srv.Start())
	defer func() { _ = srv.Process.Kill() }()
	base := "http://" + addr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "keel serve did not get ready")

	post := func(key string) *http.Response {
		req, _ := http.NewRequest("POST", base+"/v1/agents/steps/runs", strings.NewReader(
			`{"run_id": "ticket-9", "input": {"customer_id": "cus_9", "question": "Where is my invoice?"}}`))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	require.Equal(t, http.StatusUnauthorized, post("").StatusCode)
	require.Equal(t, http.StatusCreated, post(key).StatusCode)

	var run struct {
		Status string          `json:"status"`
		Result json.RawMessage `json:"result"`
	}
	require.Eventually(t, func() bool {
		req, _ := http.NewRequest("GET", base+"/v1/runs/ticket-9", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		require.NoError(t, json.Unmarshal(body, &run))
		return run.Status == "completed"
	}, 30*time.Second, 100*time.Millisecond)
	require.Contains(t, string(run.Result), "[offline model]")

	// The example agents are served too: the support agent solves T-1.
	req, _ := http.NewRequest("POST", base+"/v1/agents/support/runs", strings.NewReader(
		`{"run_id": "support-1", "input": {"ticket_id": "T-1", "message": "I was charged twice"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.Eventually(t, func() bool {
		req, _ := http.NewRequest("GET", base+"/v1/runs/support-1", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		require.NoError(t, json.Unmarshal(body, &run))
		return run.Status == "completed"
	}, 60*time.Second, 100*time.Millisecond)
	require.Contains(t, string(run.Result), `"status_after": "solved"`)

	require.NoError(t, srv.Process.Signal(syscall.SIGTERM))
	require.NoError(t, srv.Wait(), srvErr.String())
	require.Contains(t, srvOut.String(), "→ step 4 ")
	require.Contains(t, srvErr.String(), `"msg":"http server listening"`)
}

// Without any API key, keel serve refuses a non-loopback address.
func TestServeWithoutKeysRefusesPublicAddress(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "keel.db")
	out, err := keel("serve", "--db", db, "--addr", "0.0.0.0:0").CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "refusing to listen on a non-loopback address without API keys")
}

// lockedBuffer is a bytes.Buffer safe to read while a process writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}
