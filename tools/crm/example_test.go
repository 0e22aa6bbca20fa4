package crm_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/tools/crm"
)

// The built-in CRM in Keel's database: seed the demo customers and find
// one by email.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "crm-example-")
	defer os.RemoveAll(dir)

	db, err := appdb.Open(ctx, filepath.Join(dir, "keel.db")) // or a postgres:// URL
	if err != nil {
		panic(err)
	}
	defer db.Close()
	s, err := crm.New(ctx, db, nil)
	if err != nil {
		panic(err)
	}
	if err := crm.SeedDemo(ctx, s); err != nil {
		panic(err)
	}

	c, err := s.CustomerByEmail(ctx, "Ada@Example.com")
	fmt.Println(c.Key, c.Name, c.Plan, err)

	_, err = s.Customer(ctx, "cus_nobody")
	fmt.Println(errors.Is(err, crm.ErrNotFound))
	// Output:
	// cus_ada Ada Lovelace pro <nil>
	// true
}

// A CRM over HTTP: Client speaks the package's REST shape, here to
// Handler serving a Store.
func ExampleClient() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "crm-example-")
	defer os.RemoveAll(dir)
	db, _ := appdb.Open(ctx, filepath.Join(dir, "keel.db"))
	defer db.Close()
	s, _ := crm.New(ctx, db, nil)

	srv := httptest.NewServer(crm.Handler(s))
	defer srv.Close()
	client, err := crm.NewClient(&crm.ClientConfig{BaseURL: srv.URL})
	if err != nil {
		panic(err)
	}

	// Upserting twice leaves one customer.
	for range 2 {
		if _, err := client.UpsertCustomer(ctx, crm.Customer{Key: "cus_42", Name: "Grace Hopper", Email: "grace@example.com"}); err != nil {
			panic(err)
		}
	}
	n, _ := client.AddNote(ctx, crm.Note{CustomerKey: "cus_42", Body: "Prefers email.", IdempotencyKey: "note-1"})
	again, _ := client.AddNote(ctx, crm.Note{CustomerKey: "cus_42", Body: "Prefers email.", IdempotencyKey: "note-1"})
	notes, _ := client.Notes(ctx, "cus_42")
	fmt.Println(n.ID == again.ID, len(notes))

	c, err := client.Customer(ctx, "cus_42")
	fmt.Println(c.Name, err)
	// Output:
	// true 1
	// Grace Hopper <nil>
}
