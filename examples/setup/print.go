package setup

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/keelhq/keel/billing"
	"github.com/keelhq/keel/tools/email"
)

// durableStopTimeout bounds how long Run waits for in-flight tasks when it
// stops the engine.
const durableStopTimeout = 10 * time.Second

// pollEvery is how often Poll checks its condition.
const pollEvery = 50 * time.Millisecond

// Poll calls cond until it reports true, fails, or ctx ends. Demos use it
// to wait for what a run does before they play their part (a reviewer
// deciding once the approval is pending).
func Poll(ctx context.Context, cond func(ctx context.Context) (bool, error)) error {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Outbox returns the outbox messages created at or after since, oldest
// first.
func (env *Env) Outbox(ctx context.Context, since time.Time) ([]email.Message, error) {
	msgs, err := env.Email.List(ctx, &email.ListOpts{Limit: 500})
	if err != nil {
		return nil, fmt.Errorf("setup: outbox: %w", err)
	}
	var out []email.Message
	for _, m := range msgs {
		if !m.CreatedAt.Before(since) {
			out = append(out, m)
		}
	}
	slices.Reverse(out)
	return out, nil
}

// PrintOutbox writes the outbox messages created at or after since.
func (env *Env) PrintOutbox(ctx context.Context, out io.Writer, since time.Time) error {
	msgs, err := env.Outbox(ctx, since)
	if err != nil {
		return err
	}
	where := "sent through SendGrid"
	if env.Email.Local() {
		where = "kept in the local outbox, not sent (no SENDGRID_API_KEY)"
	}
	fmt.Fprintf(out, "Emails (%d, %s):\n", len(msgs), where)
	for _, m := range msgs {
		PrintMessage(out, m)
	}
	return nil
}

// PrintMessage writes one outbox message.
func PrintMessage(out io.Writer, m email.Message) {
	fmt.Fprintf(out, "  ── [%s] to %s: %s\n", m.Status, strings.Join(m.To, ", "), m.Subject)
	fmt.Fprintln(out, Indent(m.Text, "     "))
}

// PrintLedger writes the billing ledger entries created at or after since,
// or says why there are none.
func (env *Env) PrintLedger(ctx context.Context, out io.Writer, since time.Time) error {
	if env.Billing == nil {
		fmt.Fprintln(out, "Ledger: billing is turned off; no charge was made.")
		return nil
	}
	entries, err := env.Billing.Entries(ctx, &billing.ListOpts{Limit: 500})
	if err != nil {
		return fmt.Errorf("setup: ledger: %w", err)
	}
	fmt.Fprintln(out, "Ledger:")
	n := 0
	for _, e := range slices.Backward(entries) {
		if e.CreatedAt.Before(since) {
			continue
		}
		n++
		fmt.Fprintf(out, "  %s %s %s %d %s — %s (%s)", e.Kind, e.Status, e.Customer, e.Amount, e.Currency, e.Description, e.StripeID)
		if e.ErrorMessage != "" {
			fmt.Fprintf(out, " error: %s", e.ErrorMessage)
		}
		fmt.Fprintln(out)
	}
	if n == 0 {
		fmt.Fprintln(out, "  (no entries)")
	}
	return nil
}

// Indent prefixes every line of text.
func Indent(text, prefix string) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

// redact hides a URL's password.
func redact(dsn string) string {
	if at := strings.LastIndex(dsn, "@"); at > 0 {
		if scheme := strings.Index(dsn, "://"); scheme > 0 && scheme+3 < at {
			return dsn[:scheme+3] + "…" + dsn[at:]
		}
	}
	return dsn
}
