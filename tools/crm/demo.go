package crm

import (
	"context"
	"fmt"
)

// The demo customers' keys. The demo tickets of package ticket belong to
// them: T-1 to DemoAda, T-2 to DemoGrace, T-3 to DemoAlan.
const (
	DemoAda   = "cus_ada"
	DemoGrace = "cus_grace"
	DemoAlan  = "cus_alan"
)

// demoData returns the demo records.
func demoData() ([]Customer, []Contact, []Note, []Deal) {
	customers := []Customer{
		{Key: DemoAda, Name: "Ada Lovelace", Email: "ada@example.com", Company: "Analytical Engines Ltd", Plan: "pro",
			Metadata: map[string]string{"seats": "12", "billing_cycle": "monthly", "customer_since": "2023-04-11"}},
		{Key: DemoGrace, Name: "Grace Hopper", Email: "grace@example.com", Company: "Cobol Systems Inc", Plan: "enterprise",
			Metadata: map[string]string{"seats": "240", "billing_cycle": "annual", "customer_since": "2021-09-02"}},
		{Key: DemoAlan, Name: "Alan Turing", Email: "alan@example.com", Company: "Bletchley Labs", Plan: "starter",
			Metadata: map[string]string{"seats": "3", "billing_cycle": "monthly", "customer_since": "2025-11-20"}},
	}
	contacts := []Contact{
		{CustomerKey: DemoAda, Email: "charles@example.com", Name: "Charles Babbage", Role: "billing"},
		{CustomerKey: DemoGrace, Email: "ops@cobol.example.com", Name: "Operations team", Role: "technical"},
	}
	notes := []Note{
		{CustomerKey: DemoAda, Author: "support", IdempotencyKey: "demo-note-ada-1",
			Body: "Upgraded from Starter to Pro on 2026-02-01. Pays by card ending 4242."},
		{CustomerKey: DemoGrace, Author: "account-manager", IdempotencyKey: "demo-note-grace-1",
			Body: "Renewal due in September; interested in SSO and audit logs."},
	}
	deals := []Deal{
		{Key: "deal_ada_enterprise", CustomerKey: DemoAda, Title: "Upgrade to Enterprise", Stage: StageProposal, Amount: 1_200_000, Currency: "USD"},
		{Key: "deal_grace_renewal", CustomerKey: DemoGrace, Title: "Annual renewal 2026", Stage: StageNegotiation, Amount: 4_800_000, Currency: "USD"},
	}
	return customers, contacts, notes, deals
}

// SeedDemo writes the demo customers, with their contacts, notes and deals,
// to c: Ada Lovelace (ada@example.com, key cus_ada, Pro plan), Grace Hopper
// (grace@example.com, cus_grace, Enterprise) and Alan Turing
// (alan@example.com, cus_alan, Starter). Seeding again changes nothing but
// the update times.
func SeedDemo(ctx context.Context, c CRM) error {
	customers, contacts, notes, deals := demoData()
	for _, cu := range customers {
		if _, err := c.UpsertCustomer(ctx, cu); err != nil {
			return fmt.Errorf("crm: seed demo: %w", err)
		}
	}
	for _, co := range contacts {
		if _, err := c.UpsertContact(ctx, co); err != nil {
			return fmt.Errorf("crm: seed demo: %w", err)
		}
	}
	for _, n := range notes {
		if _, err := c.AddNote(ctx, n); err != nil {
			return fmt.Errorf("crm: seed demo: %w", err)
		}
	}
	for _, d := range deals {
		if _, err := c.UpsertDeal(ctx, d); err != nil {
			return fmt.Errorf("crm: seed demo: %w", err)
		}
	}
	return nil
}
