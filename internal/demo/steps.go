package demo

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/keelhq/keel/durable"
)

// stepMarker starts the line an activity of the steps workflow prints.
const stepMarker = "KEEL-STEP "

// Ticket is the steps workflow's input.
type Ticket struct {
	CustomerID string `json:"customer_id"`
	Question   string `json:"question"`
}

// Steps is a small built-in workflow of four durable steps — fetch a
// customer, search the knowledge base, generate a reply, send the email —
// that keel knows without any service behind it: `keel run steps` and the
// CLI's tests use it.
type Steps = durable.Workflow[Ticket, string]

// Definitions returns the steps workflow and its activities; the
// activities narrate each step to out as it happens.
func Definitions(out io.Writer) (*Steps, []durable.Definition) {
	say := func(ctx context.Context, step int, format string, args ...any) {
		info, _ := durable.GetActivityInfo(ctx)
		fmt.Fprintf(out, "%s%d → step %d %s (attempt %d, key %s)\n", stepMarker, step, step, fmt.Sprintf(format, args...), info.Attempt, info.IdempotencyKey)
	}
	opts := &durable.ActivityOptions{StartToCloseTimeout: 3 * time.Second, RetryPolicy: durable.RetryPolicy{InitialInterval: 100 * time.Millisecond}}
	fetch := durable.NewActivity("fetch-customer", func(ctx context.Context, id string) (string, error) {
		say(ctx, 1, "fetch customer %s", id)
		return "Ada Lovelace <ada@example.com>", nil
	}, opts)
	search := durable.NewActivity("search-kb", func(ctx context.Context, q string) (string, error) {
		say(ctx, 2, "search the knowledge base for %q", q)
		return "KB-12: passwords are reset from Settings → Security", nil
	}, opts)
	generate := durable.NewActivity("generate-reply", func(ctx context.Context, prompt string) (string, error) {
		say(ctx, 3, "generate a reply with the offline model")
		select { // the model thinks for a while
		case <-time.After(1500 * time.Millisecond):
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return "Hi Ada, you can reset your password from Settings → Security. [offline model]", nil
	}, opts)
	send := durable.NewActivity("send-email", func(ctx context.Context, body string) (string, error) {
		say(ctx, 4, "send the email (shown, not sent): %q", body)
		return "queued", nil
	}, opts)
	steps := durable.NewWorkflow("steps", func(ctx durable.Context, t Ticket) (string, error) {
		customer, err := fetch.Run(ctx, t.CustomerID)
		if err != nil {
			return "", err
		}
		article, err := search.Run(ctx, t.Question)
		if err != nil {
			return "", err
		}
		reply, err := generate.Run(ctx, customer+"\n"+t.Question+"\n"+article)
		if err != nil {
			return "", err
		}
		if _, err := send.Run(ctx, reply); err != nil {
			return "", err
		}
		return reply, nil
	})
	return steps, []durable.Definition{fetch, search, generate, send, steps}
}
