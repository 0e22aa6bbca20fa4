package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/server"
)

// Expose a workflow as an agent, trigger a run over HTTP and read its
// result.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keel-server")
	defer os.RemoveAll(dir)
	st, _ := sqlitestore.Open(filepath.Join(dir, "keel.db"), nil)
	defer st.Close()

	greet := durable.NewWorkflow("greet", func(ctx durable.Context, in struct{ Name string }) (string, error) {
		return "Hello, " + in.Name, nil
	})
	e, _ := durable.New(st, nil)
	e.MustRegister(greet)
	e.NewWorker(nil)
	_ = e.Start(ctx)
	defer e.Stop(ctx)

	srv, err := server.New(&server.Config{Engine: e, Agents: []server.Agent{{Name: "greeter", Workflow: "greet"}}})
	if err != nil {
		panic(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()

	resp, _ := http.Post(ts.URL+"/v1/agents/greeter/runs", "application/json",
		strings.NewReader(`{"run_id": "greet-ada", "input": {"Name": "Ada"}}`))
	resp.Body.Close()
	fmt.Println(resp.Status)

	var run server.Run
	for run.Status != "completed" {
		time.Sleep(10 * time.Millisecond)
		resp, _ := http.Get(ts.URL + "/v1/runs/greet-ada")
		_ = json.NewDecoder(resp.Body).Decode(&run)
		resp.Body.Close()
	}
	fmt.Println(run.RunID, run.Status, string(run.Result))

	// The same run_id again returns the same run.
	resp, _ = http.Post(ts.URL+"/v1/agents/greeter/runs", "application/json", strings.NewReader(`{"run_id": "greet-ada"}`))
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output:
	// 201 Created
	// greet-ada completed "Hello, Ada"
	// 200 OK
}

// API keys live in the application database; only their hash is stored.
func ExampleKeyStore() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keel-keys")
	defer os.RemoveAll(dir)
	db, _ := appdb.Open(ctx, filepath.Join(dir, "keel.db"))
	defer db.Close()

	keys, err := server.NewKeyStore(ctx, db)
	if err != nil {
		panic(err)
	}
	res, _ := keys.Create(ctx, server.CreateKeyParams{Subject: "ci", Scopes: []server.Scope{server.ScopeTrigger}})
	fmt.Println(strings.HasPrefix(res.Secret, "keel_"+res.Key.ID+"_")) // shown once

	k, _ := keys.Authenticate(ctx, res.Secret)
	fmt.Println(k.Subject, k.Has(server.ScopeTrigger), k.Has(server.ScopeRead), k.Has(server.ScopeReview))
	_, err = keys.Authenticate(ctx, res.Secret+"x")
	fmt.Println(err)
	// Output:
	// true
	// ci true true false
	// server: invalid API key
}
