// Package ticket gives agents a help desk's tickets: read a ticket and its
// comments, change its status or assignee, reply or leave an internal
// note.
//
// Desk is the interface. Store keeps tickets in Keel's application
// database (package appdb, SQLite or PostgreSQL), with IDs such as "T-1";
// Zendesk talks to Zendesk's Support API v2.
//
//	db, _ := appdb.Open(ctx, "keel.db")
//	s, _ := ticket.New(ctx, db, nil) // applies the ticket migrations
//	t, _ := s.Create(ctx, ticket.CreateParams{Subject: "I was charged twice", RequesterEmail: "ada@example.com"})
//	_, err := s.Update(ctx, t.ID, ticket.UpdateParams{
//		Status:         ticket.StatusSolved,
//		Comment:        &ticket.NewComment{Body: "Refunded the duplicate payment.", Public: true},
//		IdempotencyKey: "call-42",
//	})
//
// # Statuses
//
// A ticket is open, pending, solved or closed, and moves only along
// Status.CanBecome: open ↔ pending, open or pending → solved, solved →
// open (reopened) or closed; a closed ticket cannot change. An update that
// breaks the rule fails with a *TransitionError (matching
// ErrInvalidTransition) and changes nothing.
//
// # Idempotent updates
//
// An update's status change, assignee and comment are applied together,
// once per IdempotencyKey: Store records each applied key in a unique
// column in the update's own transaction, so a retried update (the same
// tool call run again after a crash or a lost response) returns the
// ticket without adding its comment a second time. The ticket_update tool
// passes the tool call's key (tools.IdempotencyKey). Zendesk does the same
// with a tag; see Zendesk.
//
// SeedDemo creates the demo tickets T-1 to T-3, whose requesters are the
// demo customers of package crm (T-1 "I was charged twice", from
// ada@example.com).
//
// # Tools
//
// GetTool and UpdateTool wrap any Desk as agent tools (ticket_get and
// ticket_update) for package tools.
package ticket
