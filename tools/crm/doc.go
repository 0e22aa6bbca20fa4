// Package crm gives agents a customer database: customers, their
// contacts, notes about them and their deals.
//
// CRM is the interface. Store keeps the CRM in Keel's application database
// (package appdb, SQLite or PostgreSQL, tables crm_*); Client talks to a
// CRM over HTTP in the simple REST shape below, and Handler serves any CRM
// in that shape, so a Store can also be offered to other services.
//
//	db, _ := appdb.Open(ctx, "keel.db")
//	s, _ := crm.New(ctx, db, nil) // applies the crm_* migrations
//	_, _ = s.UpsertCustomer(ctx, crm.Customer{Key: "cus_ada", Name: "Ada Lovelace", Email: "ada@example.com"})
//	c, err := s.CustomerByEmail(ctx, "ADA@example.com")
//
// Customers and deals are identified by an external key (the ID in the
// system of record), contacts by their customer and email address. Upserts
// are idempotent: the same upsert twice, or several at once, leave one
// record. A missing record is an error matching ErrNotFound; malformed
// input, one matching ErrInvalid. AddNote takes an idempotency key so that
// a retried call adds its note once.
//
// SeedDemo writes the demo customers that the demo tickets of package
// ticket belong to (Ada Lovelace, ada@example.com, cus_ada, and two
// more).
//
// # The REST shape
//
// Client speaks, and Handler serves, this JSON API (paths relative to the
// base URL; path segments URL-escaped; field names as in the Go types'
// json tags; times in RFC 3339):
//
//	GET  /customers/{key}                   → 200 Customer
//	PUT  /customers/{key}                   Customer → 200 Customer (create or replace)
//	GET  /customers?email={email}           → 200 {"customers": [Customer]} (empty when none)
//	GET  /customers/{key}/contacts          → 200 {"contacts": [Contact]}
//	PUT  /customers/{key}/contacts/{email}  Contact → 200 Contact
//	GET  /customers/{key}/notes             → 200 {"notes": [Note]}
//	POST /customers/{key}/notes             Note → 201 Note; an Idempotency-Key header
//	                                        makes a repeated POST return the first note
//	GET  /customers/{key}/deals             → 200 {"deals": [Deal]}
//	GET  /deals/{key}                       → 200 Deal
//	PUT  /deals/{key}                       Deal → 200 Deal
//
// Errors have a 4xx or 5xx status and the body
// {"error": {"code": "not_found" | "invalid" | "internal", "message": "…"}}.
// Client maps 404 to ErrNotFound and 400 or 422 to ErrInvalid, and any
// other error status to an *APIError. It sends ClientConfig.Token as a
// bearer token.
//
// # Tools
//
// LookupTool, AddNoteTool and UpdateDealTool wrap any CRM as agent tools
// (crm_lookup_customer, crm_add_note, crm_update_deal) for package tools.
package crm
