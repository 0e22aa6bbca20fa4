package security_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/server"
)

// Each threat of the suite is an ordinary request to a real server on a
// real database; here, a request without an API key. Run the whole suite
// with
//
//	go test -run TestSecurity ./...
//
// and set TEST_DATABASE_URL to run it on Postgres too.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "keel-security")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "keel.db")
	st, err := sqlitestore.Open(file, nil)
	if err != nil {
		panic(err)
	}
	defer st.Close()
	db, err := appdb.Open(ctx, file)
	if err != nil {
		panic(err)
	}
	defer db.Close()
	e, err := durable.New(st, nil)
	if err != nil {
		panic(err)
	}
	keys, err := server.NewKeyStore(ctx, db)
	if err != nil {
		panic(err)
	}
	srv, err := server.New(&server.Config{Engine: e, Keys: keys, Agents: []server.Agent{{Name: "echo"}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		panic(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()

	resp, err := ts.Client().Post(ts.URL+"/v1/agents/echo/runs", "application/json", nil)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var p server.Problem
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		panic(err)
	}
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	fmt.Println(p.Code, p.Type)
	// Output:
	// 401 application/problem+json
	// unauthorized urn:keel:problem:unauthorized
}
