package billing_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/billing"
)

// recordingTransport records every request and the status of its answer,
// and fails the first request to failPath before sending it.
type recordingTransport struct {
	next     http.RoundTripper
	failPath string

	mu    sync.Mutex
	calls []call
}

type call struct {
	method, path, key string
	status            int
	body              string
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	fail := r.failPath != "" && req.URL.Path == r.failPath
	if fail {
		r.failPath = ""
	}
	r.mu.Unlock()
	if fail {
		return nil, errors.New("connection reset (injected before sending)")
	}
	resp, err := r.next.RoundTrip(req)
	c := call{method: req.Method, path: req.URL.Path, key: req.Header.Get("Idempotency-Key")}
	if err == nil {
		c.status = resp.StatusCode
		if resp.StatusCode >= 400 {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			c.body = string(b)
			resp.Body = io.NopCloser(strings.NewReader(c.body))
		}
	}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	return resp, err
}

func (r *recordingTransport) all() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// stripe-mock validates every request against Stripe's OpenAPI
// specification: each request billing makes (customer lookup, confirmed
// PaymentIntent, PaymentIntent list for reconciliation, refund, refund
// list, meter event) must be accepted, with the Idempotency-Key set on
// every POST.
func TestStripeMockAcceptsRequests(t *testing.T) {
	t.Parallel()
	url := requireStripeMock(t)
	ctx := t.Context()
	rt := &recordingTransport{next: &http.Transport{DisableKeepAlives: true}}
	c := &clock{}
	svc, err := billing.New(ctx, sqliteDB(t), &billing.Config{
		APIBase:    url,
		SecretKey:  "sk_test_123",
		HTTPClient: &http.Client{Transport: rt, Timeout: 30 * time.Second},
		Logger:     slog.New(slog.DiscardHandler),
		Test:       billing.TestConfig{Now: c.Now},
	})
	require.NoError(t, err)

	// stripe-mock answers from fixtures: its customer has no default
	// payment method and its PaymentIntents are not succeeded, which billing
	// reports as such; what matters here is that Stripe accepted each
	// request.
	_, err = svc.Charge(ctx, billing.ChargeParams{Customer: "cus_mock", Amount: 99, Key: "mock/charge-default"})
	require.ErrorIs(t, err, billing.ErrNoPaymentMethod)
	_, err = svc.Charge(ctx, billing.ChargeParams{Customer: "cus_mock", Amount: 99, PaymentMethod: "pm_card_visa",
		Description: "ticket resolved", Metadata: map[string]string{"ticket": "T-1"}, Key: "mock/charge"})
	require.ErrorIs(t, err, billing.ErrPaymentFailed)

	// A pending charge past the key retention is looked up with a list.
	rt.mu.Lock()
	rt.failPath = "/v1/payment_intents"
	rt.mu.Unlock()
	_, err = svc.Charge(ctx, billing.ChargeParams{Customer: "cus_mock", Amount: 99, PaymentMethod: "pm_card_visa", Key: "mock/charge-late"})
	require.ErrorIs(t, err, billing.ErrConnection)
	c.Advance(25 * time.Hour)
	_, err = svc.Charge(ctx, billing.ChargeParams{Customer: "cus_mock", Amount: 99, PaymentMethod: "pm_card_visa", Key: "mock/charge-late"})
	require.ErrorIs(t, err, billing.ErrPaymentFailed)

	r, err := svc.Refund(ctx, billing.RefundParams{PaymentIntent: "pi_mock", Amount: 50, Reason: "requested_by_customer",
		Metadata: map[string]string{"ticket": "T-1"}, Key: "mock/refund"})
	require.NoError(t, err)
	require.NotEmpty(t, r.StripeID)
	rt.mu.Lock()
	rt.failPath = "/v1/refunds"
	rt.mu.Unlock()
	_, err = svc.Refund(ctx, billing.RefundParams{PaymentIntent: "pi_mock", Key: "mock/refund-late"})
	require.ErrorIs(t, err, billing.ErrConnection)
	c.Advance(25 * time.Hour)
	_, err = svc.Refund(ctx, billing.RefundParams{PaymentIntent: "pi_mock", Key: "mock/refund-late"})
	require.NoError(t, err)

	u, err := svc.RecordUsage(ctx, billing.UsageParams{Customer: "cus_mock", EventName: "resolved_tickets", Value: 2, Key: "mock/usage"})
	require.NoError(t, err)
	require.Equal(t, billing.StatusSucceeded, u.Status)

	seen := map[string]bool{}
	for _, c := range rt.all() {
		route := c.method + " " + c.path
		seen[route] = true
		require.Less(t, c.status, 300, "%s: %d %s", route, c.status, c.body)
		if c.method == http.MethodPost {
			require.True(t, strings.HasPrefix(c.key, "mock/"), "%s: Idempotency-Key %q", route, c.key)
		}
	}
	for _, route := range []string{
		"GET /v1/customers/cus_mock", "POST /v1/payment_intents", "GET /v1/payment_intents",
		"POST /v1/refunds", "GET /v1/refunds", "POST /v1/billing/meter_events",
	} {
		require.True(t, seen[route], "no request %s in %v", route, fmt.Sprint(seen))
	}
}
