package ticket

import (
	"context"
	"errors"
	"fmt"
)

// demoTickets are the demo tickets. Their requesters are the demo
// customers of package crm (crm.SeedDemo).
func demoTickets() []CreateParams {
	return []CreateParams{
		{
			ID: "T-1", Subject: "I was charged twice", RequesterEmail: "ada@example.com", CustomerKey: "cus_ada",
			Comment: &NewComment{Author: "ada@example.com", Public: true, Body: "Hello, I was charged twice for my Pro " +
				"subscription this month: two payments of $49.00 on March 3, both on my card ending 4242. " +
				"Can you refund one of them? Thanks, Ada"},
		},
		{
			ID: "T-2", Subject: "Webhook deliveries fail signature verification", RequesterEmail: "grace@example.com",
			CustomerKey: "cus_grace", Status: StatusPending, Assignee: "sam@support.example.com",
			Comment: &NewComment{Author: "grace@example.com", Public: true, Body: "Since yesterday every webhook " +
				"delivery to our endpoint fails our signature check. We did not change the secret. What changed?"},
		},
		{
			ID: "T-3", Subject: "Lost my phone, can't log in", RequesterEmail: "alan@example.com", CustomerKey: "cus_alan",
			Comment: &NewComment{Author: "alan@example.com", Public: true, Body: "My phone was stolen and with it " +
				"my authenticator app. I can't sign in any more. How do I get back into my account?"},
		},
	}
}

// SeedDemo creates the demo tickets T-1, T-2 and T-3 in s, unless they
// exist: T-1 "I was charged twice" from Ada Lovelace (ada@example.com,
// customer cus_ada), T-2 about failing webhooks from Grace Hopper (pending)
// and T-3 about a lost 2FA phone from Alan Turing. Seeding again changes
// nothing.
func SeedDemo(ctx context.Context, s *Store) error {
	for _, p := range demoTickets() {
		p.IdempotencyKey = "demo-" + p.ID
		if _, err := s.Create(ctx, p); err != nil && !errors.Is(err, ErrExists) {
			return fmt.Errorf("ticket: seed demo: %w", err)
		}
	}
	return nil
}
