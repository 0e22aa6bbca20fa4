package billing_test

import (
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/billing"
	"github.com/keelhq/keel/billing/stripefake"
	"github.com/keelhq/keel/durable"
)

func TestChargeOnce(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, open dbOpener) {
		b := setup(t, open)
		ctx := t.Context()
		p := billing.ChargeParams{Customer: "cus_ada", Amount: 99, Description: "ticket T-1 resolved", Key: "run-1-7/charge"}

		e, err := b.svc.Charge(ctx, p)
		require.NoError(t, err)
		require.Equal(t, billing.StatusSucceeded, e.Status)
		require.Equal(t, "usd", e.Currency)
		require.Equal(t, "pm_card_visa", e.PaymentMethod, "the customer's default payment method")
		require.False(t, e.Replayed)
		require.Equal(t, 1, e.Attempts)

		charges := b.fake.Charges()
		require.Len(t, charges, 1)
		require.Equal(t, e.StripeID, charges[0].ID)
		require.Equal(t, int64(99), charges[0].Amount)
		require.Equal(t, "run-1-7/charge", charges[0].Metadata[billing.MetadataKey])

		// The same key again: the ledger answers, Stripe is not called.
		again, err := b.svc.Charge(ctx, p)
		require.NoError(t, err)
		require.True(t, again.Replayed)
		require.Equal(t, e.StripeID, again.StripeID)
		total, _ := posts(b.fake, "/v1/payment_intents")
		require.Equal(t, 1, total)
		require.Len(t, b.fake.Charges(), 1)

		got, err := b.svc.Entry(ctx, "run-1-7/charge")
		require.NoError(t, err)
		require.Equal(t, e.StripeID, got.StripeID)
		require.Equal(t, "succeeded", got.StripeStatus)
	})
}

// Stripe accepted the charge but its answer was lost: the entry stays
// pending, and the retry, sent with the same Idempotency-Key, gets the
// original PaymentIntent back instead of a second charge.
func TestChargeAnswerLost(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, open dbOpener) {
		b := setup(t, open)
		ctx := t.Context()
		b.fake.Inject("POST", "/v1/payment_intents", stripefake.Fault{Drop: true})
		p := billing.ChargeParams{Customer: "cus_ada", Amount: 99, Key: "k-drop"}

		e, err := b.svc.Charge(ctx, p)
		requireCode(t, err, billing.CodeConnection, billing.ErrConnection)
		require.Equal(t, billing.StatusPending, e.Status)
		require.Equal(t, billing.CodeConnection, e.ErrorCode)
		require.Len(t, b.fake.Charges(), 1, "Stripe did charge")

		e, err = b.svc.Charge(ctx, p)
		require.NoError(t, err)
		require.Equal(t, billing.StatusSucceeded, e.Status)
		require.Equal(t, b.fake.Charges()[0].ID, e.StripeID)
		require.Equal(t, 2, e.Attempts)
		require.Len(t, b.fake.Charges(), 1, "the retry did not charge again")
		total, replayed := posts(b.fake, "/v1/payment_intents")
		require.Equal(t, 2, total)
		require.Equal(t, 1, replayed, "Stripe replayed the saved response")
	})
}

// A Stripe failure before the charge executed (500, 429) leaves the entry
// pending; the retry charges once.
func TestChargeTransientErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status   int
		code     billing.Code
		sentinel error
	}{
		{http.StatusTooManyRequests, billing.CodeRateLimited, billing.ErrRateLimited},
		{http.StatusInternalServerError, billing.CodeUnavailable, billing.ErrUnavailable},
		{http.StatusServiceUnavailable, billing.CodeUnavailable, billing.ErrUnavailable},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			t.Parallel()
			b := setup(t, sqliteDB)
			b.fake.Inject("POST", "/v1/payment_intents", stripefake.Fault{Status: tc.status})
			p := billing.ChargeParams{Customer: "cus_ada", Amount: 150, Key: "k"}
			e, err := b.svc.Charge(t.Context(), p)
			be := requireCode(t, err, tc.code, tc.sentinel)
			require.Equal(t, tc.status, be.HTTPStatus)
			require.NotEmpty(t, be.RequestID)
			require.Equal(t, billing.StatusPending, e.Status)
			require.Empty(t, b.fake.Charges())

			e, err = b.svc.Charge(t.Context(), p)
			require.NoError(t, err)
			require.Equal(t, billing.StatusSucceeded, e.Status)
			require.Len(t, b.fake.Charges(), 1)
		})
	}
}

func TestChargeDeclined(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, open dbOpener) {
		b := setup(t, open)
		ctx := t.Context()
		b.fake.AddCustomer("cus_broke", "pm_card_chargeDeclinedInsufficientFunds")
		p := billing.ChargeParams{Customer: "cus_broke", Amount: 99, Key: "k-declined"}

		e, err := b.svc.Charge(ctx, p)
		be := requireCode(t, err, billing.CodeCardDeclined, billing.ErrCardDeclined)
		require.Equal(t, http.StatusPaymentRequired, be.HTTPStatus)
		require.Equal(t, "insufficient_funds", be.DeclineCode)
		require.True(t, be.NonRetryable())
		require.Equal(t, billing.StatusFailed, e.Status)
		require.NotEmpty(t, e.StripeID, "the declined PaymentIntent is recorded")
		require.Equal(t, "requires_payment_method", e.StripeStatus)

		// The engine records it under a type workflow code can test.
		var ae *durable.ApplicationError
		require.True(t, errors.As(err, &ae))
		require.Equal(t, "billing.card_declined", ae.Type)
		require.True(t, ae.NonRetryable)

		// A repeat returns the recorded decline without calling Stripe.
		e, err = b.svc.Charge(ctx, p)
		requireCode(t, err, billing.CodeCardDeclined, billing.ErrCardDeclined)
		require.True(t, e.Replayed)
		total, _ := posts(b.fake, "/v1/payment_intents")
		require.Equal(t, 1, total)
		require.Empty(t, b.fake.Charges())
	})
}

func TestChargeErrors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	t.Run("invalid params", func(t *testing.T) {
		t.Parallel()
		b := setup(t, sqliteDB)
		for _, p := range []billing.ChargeParams{
			{Amount: 99, Key: "a"},
			{Customer: "cus_ada", Amount: 0, Key: "b"},
			{Customer: "cus_ada", Amount: 99, Currency: "USD", Key: "c"},
			{Customer: "cus_ada", Amount: 99, Key: "d", Metadata: map[string]string{billing.MetadataKey: "x"}},
		} {
			e, err := b.svc.Charge(ctx, p)
			requireCode(t, err, billing.CodeInvalidRequest, billing.ErrInvalidRequest)
			require.Nil(t, e)
		}
		require.Empty(t, b.fake.Requests(), "nothing reached Stripe")
		entries, err := b.svc.Entries(ctx, nil)
		require.NoError(t, err)
		require.Empty(t, entries, "nothing was written")
	})

	t.Run("rejected by stripe", func(t *testing.T) {
		t.Parallel()
		b := setup(t, sqliteDB)
		// Stripe's minimum charge is $0.50.
		e, err := b.svc.Charge(ctx, billing.ChargeParams{Customer: "cus_ada", Amount: 10, Key: "k"})
		be := requireCode(t, err, billing.CodeInvalidRequest, billing.ErrInvalidRequest)
		require.Equal(t, "amount_too_small", be.StripeCode)
		require.Equal(t, billing.StatusFailed, e.Status)
		// An unknown customer.
		_, err = b.svc.Charge(ctx, billing.ChargeParams{Customer: "cus_nobody", Amount: 99, Key: "k2"})
		requireCode(t, err, billing.CodeInvalidRequest, billing.ErrInvalidRequest)
	})

	t.Run("no payment method", func(t *testing.T) {
		t.Parallel()
		b := setup(t, sqliteDB)
		b.fake.AddCustomer("cus_new", "")
		e, err := b.svc.Charge(ctx, billing.ChargeParams{Customer: "cus_new", Amount: 99, Key: "k"})
		requireCode(t, err, billing.CodeNoPaymentMethod, billing.ErrNoPaymentMethod)
		require.Equal(t, billing.StatusFailed, e.Status)
		require.Empty(t, b.fake.PaymentIntents())
	})

	t.Run("key reused with other params", func(t *testing.T) {
		t.Parallel()
		b := setup(t, sqliteDB)
		_, err := b.svc.Charge(ctx, billing.ChargeParams{Customer: "cus_ada", Amount: 99, Key: "k"})
		require.NoError(t, err)
		_, err = b.svc.Charge(ctx, billing.ChargeParams{Customer: "cus_ada", Amount: 199, Key: "k"})
		requireCode(t, err, billing.CodeIdempotencyMismatch, billing.ErrIdempotencyMismatch)
		_, err = b.svc.Refund(ctx, billing.RefundParams{PaymentIntent: "pi_x", Key: "k"})
		requireCode(t, err, billing.CodeIdempotencyMismatch, billing.ErrIdempotencyMismatch)
		require.Len(t, b.fake.Charges(), 1)
	})

	t.Run("stripe idempotency error", func(t *testing.T) {
		t.Parallel()
		// A second ledger (another database) uses a key Stripe already
		// saw with other parameters: Stripe refuses with 400
		// idempotency_error, and the entry stays pending.
		b := setup(t, sqliteDB)
		_, err := b.svc.Charge(ctx, billing.ChargeParams{Customer: "cus_ada", Amount: 99, Key: "shared"})
		require.NoError(t, err)
		other := newService(t, sqliteDB(t), b.fake, &clock{})
		e, err := other.Charge(ctx, billing.ChargeParams{Customer: "cus_ada", Amount: 500, Key: "shared"})
		be := requireCode(t, err, billing.CodeIdempotencyMismatch, billing.ErrIdempotencyMismatch)
		require.Equal(t, http.StatusBadRequest, be.HTTPStatus)
		require.Equal(t, billing.StatusPending, e.Status)
		require.Len(t, b.fake.Charges(), 1)
	})

	t.Run("concurrent request", func(t *testing.T) {
		t.Parallel()
		// While a request is in flight at Stripe, another with the same
		// key gets 409, which is retryable.
		b := setup(t, sqliteDB)
		hold, held := make(chan struct{}), make(chan struct{})
		b.fake.Inject("POST", "/v1/payment_intents", stripefake.Fault{Hold: hold, Held: held})
		p := billing.ChargeParams{Customer: "cus_ada", Amount: 99, Key: "k"}
		var (
			wg       sync.WaitGroup
			firstErr error
		)
		wg.Go(func() { _, firstErr = b.svc.Charge(ctx, p) })
		select {
		case <-held:
		case <-time.After(10 * time.Second):
			t.Fatal("the first request did not reach Stripe")
		}
		other := newService(t, sqliteDB(t), b.fake, &clock{})
		_, err := other.Charge(ctx, p)
		be := requireCode(t, err, billing.CodeConcurrentRequest, billing.ErrConcurrentRequest)
		require.Equal(t, http.StatusConflict, be.HTTPStatus)
		close(hold)
		wg.Wait()
		require.NoError(t, firstErr)
		e, err := other.Charge(ctx, p)
		require.NoError(t, err)
		require.Equal(t, billing.StatusSucceeded, e.Status)
		require.Len(t, b.fake.Charges(), 1)
	})

	t.Run("authentication", func(t *testing.T) {
		t.Parallel()
		fake := stripefake.NewServer()
		t.Cleanup(fake.Close)
		fake.AddCustomer("cus_ada", "pm_card_visa")
		svc, err := billing.New(ctx, sqliteDB(t), &billing.Config{APIBase: fake.URL, SecretKey: "sk_test_wrong", HTTPClient: fake.Client()})
		require.NoError(t, err)
		e, err := svc.Charge(ctx, billing.ChargeParams{Customer: "cus_ada", Amount: 99, PaymentMethod: "pm_card_visa", Key: "k"})
		requireCode(t, err, billing.CodeAuthentication, billing.ErrAuthentication)
		require.Equal(t, billing.StatusPending, e.Status, "a configuration error says nothing about the charge")
	})

	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		fake := stripefake.NewServer()
		url := fake.URL
		fake.Close()
		svc, err := billing.New(ctx, sqliteDB(t), &billing.Config{APIBase: url, SecretKey: stripefake.SecretKey, HTTPClient: fake.Client()})
		require.NoError(t, err)
		e, err := svc.Charge(ctx, billing.ChargeParams{Customer: "cus_ada", Amount: 99, PaymentMethod: "pm_card_visa", Key: "k"})
		requireCode(t, err, billing.CodeConnection, billing.ErrConnection)
		require.Equal(t, billing.StatusPending, e.Status)
	})

	t.Run("no key outside an activity", func(t *testing.T) {
		t.Parallel()
		b := setup(t, sqliteDB)
		_, err := b.svc.Charge(ctx, billing.ChargeParams{Customer: "cus_ada", Amount: 99})
		require.ErrorIs(t, err, billing.ErrNoIdempotencyKey)
	})
}

func TestRefund(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, open dbOpener) {
		b := setup(t, open)
		ctx := t.Context()
		charge, err := b.svc.Charge(ctx, billing.ChargeParams{Customer: "cus_ada", Amount: 990, Key: "c1"})
		require.NoError(t, err)

		// A partial refund whose answer is lost, then retried.
		b.fake.Inject("POST", "/v1/refunds", stripefake.Fault{Drop: true})
		p := billing.RefundParams{ChargeKey: "c1", Amount: 300, Reason: "requested_by_customer", Key: "r1"}
		_, err = b.svc.Refund(ctx, p)
		requireCode(t, err, billing.CodeConnection, billing.ErrConnection)
		r, err := b.svc.Refund(ctx, p)
		require.NoError(t, err)
		require.Equal(t, billing.StatusSucceeded, r.Status)
		require.Equal(t, charge.StripeID, r.Target)
		require.Equal(t, "cus_ada", r.Customer)
		require.Equal(t, int64(300), r.Amount)
		again, err := b.svc.Refund(ctx, p)
		require.NoError(t, err)
		require.True(t, again.Replayed)
		refunds := b.fake.Refunds()
		require.Len(t, refunds, 1)
		require.Equal(t, r.StripeID, refunds[0].ID)
		require.Equal(t, "r1", refunds[0].Metadata[billing.MetadataKey])

		// The rest, by PaymentIntent: the amount is what Stripe refunded.
		rest, err := b.svc.Refund(ctx, billing.RefundParams{PaymentIntent: charge.StripeID, Key: "r2"})
		require.NoError(t, err)
		require.Equal(t, int64(690), rest.Amount)
		// Nothing left: Stripe refuses, and the refusal is final.
		e, err := b.svc.Refund(ctx, billing.RefundParams{PaymentIntent: charge.StripeID, Key: "r3"})
		be := requireCode(t, err, billing.CodeInvalidRequest, billing.ErrInvalidRequest)
		require.Equal(t, "charge_already_refunded", be.StripeCode)
		require.Equal(t, billing.StatusFailed, e.Status)
		require.Len(t, b.fake.Refunds(), 2)

		// Bad input is refused before anything is written.
		for _, bad := range []billing.RefundParams{
			{Key: "x1"},
			{ChargeKey: "nope", Key: "x2"},
			{ChargeKey: "c1", PaymentIntent: charge.StripeID, Key: "x3"},
			{ChargeKey: "c1", Amount: 5000, Key: "x4"},
			{ChargeKey: "c1", Reason: "bored", Key: "x5"},
			{ChargeKey: "r1", Key: "x6"},
		} {
			_, err := b.svc.Refund(ctx, bad)
			requireCode(t, err, billing.CodeInvalidRequest, billing.ErrInvalidRequest)
		}
		list, err := b.svc.Entries(ctx, &billing.ListOpts{Kind: billing.KindRefund})
		require.NoError(t, err)
		require.Len(t, list, 3)
	})
}

func TestUsage(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, open dbOpener) {
		b := setup(t, open)
		ctx := t.Context()
		b.fake.Inject("POST", "/v1/billing/meter_events", stripefake.Fault{Drop: true})
		p := billing.UsageParams{Customer: "cus_ada", EventName: "resolved_tickets", Value: 3, Key: "u1"}
		_, err := b.svc.RecordUsage(ctx, p)
		requireCode(t, err, billing.CodeConnection, billing.ErrConnection)
		e, err := b.svc.RecordUsage(ctx, p)
		require.NoError(t, err)
		require.Equal(t, billing.StatusSucceeded, e.Status)
		require.Equal(t, "u1", e.StripeID)

		events := b.fake.MeterEvents()
		require.Len(t, events, 1, "one event despite the retry")
		require.Equal(t, "u1", events[0].Identifier)
		require.Equal(t, map[string]string{"stripe_customer_id": "cus_ada", "value": "3"}, events[0].Payload)
		require.Equal(t, e.CreatedAt.Unix(), events[0].Timestamp, "the timestamp is fixed by the ledger")

		_, err = b.svc.RecordUsage(ctx, billing.UsageParams{Customer: "cus_ada", EventName: "resolved_tickets", Value: 0, Key: "u2"})
		requireCode(t, err, billing.CodeInvalidRequest, billing.ErrInvalidRequest)
	})
}

// After Stripe has forgotten an idempotency key (24 hours), a pending
// charge is looked up by the ledger key in its metadata and adopted, not
// charged again; one that never reached Stripe is sent.
func TestReconcileAfterKeyExpiry(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, open dbOpener) {
		b := setup(t, open)
		ctx := t.Context()

		// Accepted by Stripe, answer lost, retried two days later.
		b.fake.Inject("POST", "/v1/payment_intents", stripefake.Fault{Drop: true})
		lost := billing.ChargeParams{Customer: "cus_ada", Amount: 99, Key: "lost"}
		_, err := b.svc.Charge(ctx, lost)
		requireCode(t, err, billing.CodeConnection, billing.ErrConnection)
		// Never reached Stripe.
		b.fake.Inject("POST", "/v1/payment_intents", stripefake.Fault{Status: http.StatusServiceUnavailable})
		never := billing.ChargeParams{Customer: "cus_ada", Amount: 250, Key: "never"}
		_, err = b.svc.Charge(ctx, never)
		requireCode(t, err, billing.CodeUnavailable, billing.ErrUnavailable)
		// A refund accepted by Stripe, answer lost.
		paid, err := b.svc.Charge(ctx, billing.ChargeParams{Customer: "cus_ada", Amount: 500, Key: "paid"})
		require.NoError(t, err)
		b.fake.Inject("POST", "/v1/refunds", stripefake.Fault{Drop: true})
		refund := billing.RefundParams{ChargeKey: "paid", Key: "refund"}
		_, err = b.svc.Refund(ctx, refund)
		requireCode(t, err, billing.CodeConnection, billing.ErrConnection)
		// Usage accepted, answer lost.
		b.fake.Inject("POST", "/v1/billing/meter_events", stripefake.Fault{Drop: true})
		usage := billing.UsageParams{Customer: "cus_ada", EventName: "resolved_tickets", Value: 1, Key: "usage"}
		_, err = b.svc.RecordUsage(ctx, usage)
		requireCode(t, err, billing.CodeConnection, billing.ErrConnection)

		require.Len(t, b.fake.Charges(), 2)
		b.fake.ExpireIdempotencyKeys()
		b.clock.Advance(48 * time.Hour)
		postsBefore, _ := posts(b.fake, "/v1/payment_intents")

		e, err := b.svc.Charge(ctx, lost)
		require.NoError(t, err)
		require.True(t, e.Reconciled)
		require.Equal(t, billing.StatusSucceeded, e.Status)
		require.Len(t, b.fake.Charges(), 2, "adopted, not charged again")
		postsAfter, _ := posts(b.fake, "/v1/payment_intents")
		require.Equal(t, postsBefore, postsAfter)

		e, err = b.svc.Charge(ctx, never)
		require.NoError(t, err)
		require.False(t, e.Reconciled)
		require.Len(t, b.fake.Charges(), 3, "not found at Stripe, so charged")

		r, err := b.svc.Refund(ctx, refund)
		require.NoError(t, err)
		require.True(t, r.Reconciled)
		require.Equal(t, paid.StripeID, r.Target)
		require.Equal(t, int64(500), r.Amount)
		require.Len(t, b.fake.Refunds(), 1)

		u, err := b.svc.RecordUsage(ctx, usage)
		requireCode(t, err, billing.CodeUnreconciled, billing.ErrUnreconciled)
		require.Equal(t, billing.StatusPending, u.Status)
		require.Len(t, b.fake.MeterEvents(), 1, "not sent again")
	})
}

func TestEntries(t *testing.T) {
	t.Parallel()
	b := setup(t, sqliteDB)
	ctx := t.Context()
	b.fake.AddCustomer("cus_bob", "pm_card_chargeDeclined")
	_, err := b.svc.Charge(ctx, billing.ChargeParams{Customer: "cus_ada", Amount: 99, Key: "a"})
	require.NoError(t, err)
	_, err = b.svc.Charge(ctx, billing.ChargeParams{Customer: "cus_bob", Amount: 99, Key: "b"})
	require.Error(t, err)
	_, err = b.svc.RecordUsage(ctx, billing.UsageParams{Customer: "cus_ada", EventName: "e", Value: 2, Key: "c"})
	require.NoError(t, err)

	all, err := b.svc.Entries(ctx, nil)
	require.NoError(t, err)
	require.Len(t, all, 3)
	ada, err := b.svc.Entries(ctx, &billing.ListOpts{Customer: "cus_ada"})
	require.NoError(t, err)
	require.Len(t, ada, 2)
	failed, err := b.svc.Entries(ctx, &billing.ListOpts{Status: billing.StatusFailed})
	require.NoError(t, err)
	require.Len(t, failed, 1)
	require.Equal(t, "b", failed[0].Key)
	require.Equal(t, billing.CodeCardDeclined, failed[0].ErrorCode)
	one, err := b.svc.Entries(ctx, &billing.ListOpts{Limit: 1})
	require.NoError(t, err)
	require.Len(t, one, 1)
	_, err = b.svc.Entry(ctx, "missing")
	require.ErrorIs(t, err, billing.ErrNotFound)
}

func TestConfig(t *testing.T) {
	// Not parallel: it sets environment variables.
	db := sqliteDB(t)
	t.Setenv(billing.SecretKeyEnv, "")
	_, err := billing.New(t.Context(), db, nil)
	require.ErrorIs(t, err, billing.ErrNoSecretKey)

	fake := stripefake.NewServer()
	t.Cleanup(fake.Close)
	fake.AddCustomer("cus_ada", "pm_card_visa")
	t.Setenv(billing.SecretKeyEnv, stripefake.SecretKey)
	t.Setenv(billing.APIBaseEnv, fake.URL+"/")
	c := (*billing.Config)(nil).WithDefaults()
	require.Equal(t, stripefake.SecretKey, c.SecretKey)
	require.Equal(t, fake.URL, c.APIBase)
	require.Equal(t, 24*time.Hour, c.KeyRetention)
	svc, err := billing.New(t.Context(), db, nil)
	require.NoError(t, err)
	t.Cleanup(func() { svc.Close() })
	_, err = svc.Charge(t.Context(), billing.ChargeParams{Customer: "cus_ada", Amount: 99, Key: "env"})
	require.NoError(t, err)
	require.Len(t, fake.Charges(), 1)

	_, err = billing.New(t.Context(), db, &billing.Config{SecretKey: "sk", Currency: "EUR"})
	require.Error(t, err)
	_, err = billing.New(t.Context(), db, &billing.Config{SecretKey: "sk", APIBase: "ftp://x"})
	require.Error(t, err)
}
