// Package billing charges customers, refunds them and records metered usage
// through Stripe (stripe-go v76), exactly once per workflow step, and keeps
// a ledger of everything it did in Keel's application database (package
// appdb, SQLite or PostgreSQL).
//
// # Getting started
//
//	svc, err := billing.New(ctx, db, nil) // STRIPE_SECRET_KEY, STRIPE_API_BASE
//	charge := durable.NewActivity("charge-resolution", func(ctx context.Context, customer string) (*billing.Entry, error) {
//		return svc.Charge(ctx, billing.ChargeParams{Customer: customer, Amount: 99, Description: "Ticket resolved"})
//	}, nil)
//
// Inside an activity the ledger key comes from the activity: its
// idempotency key (run ID and step, the same on every attempt) followed by
// the operation ("/charge", "/refund", "/usage"). Outside one, or for
// several operations of one kind in one activity, set Key in the params.
//
// # Charging per resolution, and metered usage
//
// Two ways to bill for work an agent did, and a SaaS picks per price:
//
//   - Charge collects now: it creates a PaymentIntent for the amount,
//     confirmed at once off-session (confirm=true, off_session=true, no
//     redirect-based methods) against the customer's saved default payment
//     method (invoice_settings.default_payment_method, else the default
//     source), or one named in the params. This is how a pay-as-you-go
//     account is charged its $0.99 per resolved ticket, or a one-off fee.
//     A card payment carries a fixed fee, so for many small amounts the
//     next way is cheaper.
//   - RecordUsage meters: it sends a billing meter event (POST
//     /v1/billing/meter_events, in stripe-go v76) with the customer and a
//     quantity; Stripe adds the events up and bills them on the
//     subscription that prices the meter, once per period. Meter events
//     replace the legacy usage records on subscription items, which newer
//     Stripe API versions no longer accept.
//
// Invoice items were the third option; they give no immediate answer on
// whether the customer can pay, and are not used.
//
// Refund refunds a charge (by its ledger key or PaymentIntent), in full or
// in part.
//
// # Exactly once
//
// A durable activity runs at least once: an attempt may fail after Stripe
// acted, or its process may die. Two things keep a retry from billing
// twice.
//
// The Idempotency-Key of every request that changes something at Stripe is
// set explicitly to the ledger key (stripe-go would otherwise make a random
// key per call, which a retried activity would not reuse). For 24 hours
// Stripe answers a request whose key it has seen with the saved response of
// the first one, with the header Idempotent-Replayed: true, instead of
// executing it again; with different parameters it refuses (400
// idempotency_error); while the first is still running it answers 409.
//
// The ledger (table billing_ledger) has one row per key. The row is written,
// pending, before Stripe is called, and marked succeeded or failed, with
// the Stripe object's ID, after. A later call with the same key:
//
//   - finds it succeeded, or failed: returns it, without calling Stripe;
//   - finds it pending (the previous attempt crashed, or lost Stripe's
//     answer): sends the same request with the same key, and Stripe
//     answers with the original PaymentIntent;
//   - finds it written with other parameters: ErrIdempotencyMismatch.
//
// Parameters that could change between attempts are fixed in the row
// before the first request: the payment method charged (the customer's
// default could change meanwhile) and a meter event's timestamp.
//
// # After Stripe forgets a key
//
// Stripe keeps idempotency keys for 24 hours (Config.KeyRetention). A
// pending row older than that (a workflow blocked for days, a worker down
// over a weekend) could not rely on the key, so it is reconciled before
// anything is sent:
//
//   - a charge is looked for among the customer's PaymentIntents created
//     since the row was written (a list with a created filter), by the
//     ledger key that every PaymentIntent carries in its metadata
//     (MetadataKey, "keel_ledger_key"). Found, it is adopted (the row
//     records it, Entry.Reconciled is set) and nothing is charged; not
//     found, the request had never executed, and it is sent. A list is
//     used rather than the Search API because search results lag by up to
//     a minute and Search is not offered in every region;
//   - a refund is looked for among its PaymentIntent's refunds, the same
//     way;
//   - a meter event cannot be looked up (Stripe lists only aggregated
//     summaries), so RecordUsage returns ErrUnreconciled and leaves the row
//     pending rather than risk counting it twice; an operator checks the
//     meter's event summaries.
//
// Stripe also saves a 500 answer under its key: a request that failed that
// way keeps failing until the key expires, and is then reconciled as
// above.
//
// # Errors
//
// Every error from an operation is an *Error with a Code, matched with
// errors.Is against a sentinel:
//
//   - final, not retried: ErrCardDeclined (402 card_error),
//     ErrPaymentFailed (the PaymentIntent did not succeed),
//     ErrInvalidRequest (bad params, 400 or 404), ErrIdempotencyMismatch
//     (local, or Stripe's 400 idempotency_error), ErrAuthentication (401,
//     403), ErrNoPaymentMethod, ErrUnreconciled;
//   - transient, retried with the same key: ErrRateLimited (429),
//     ErrUnavailable (5xx, api_error), ErrConcurrentRequest (409),
//     ErrConnection (no answer).
//
// *Error implements NonRetryable() and RetryAfter(), which the engine
// honours, so the activity's retry policy needs no configuration. Once
// the error has crossed the activity boundary, workflow code sees a
// *durable.ApplicationError whose Type is Code.ErrorType()
// ("billing.card_declined").
//
// A final error about the operation itself (a decline, invalid parameters,
// no payment method) marks the row failed, so a repeat returns it without
// calling Stripe. A transient one, or one that says nothing about the
// operation (a refused secret key, a key Stripe holds with other
// parameters, an unreconcilable record), leaves the row pending with the
// error noted in ErrorCode and ErrorMessage.
//
// # Configuration
//
// The secret key comes from Config.SecretKey or STRIPE_SECRET_KEY; the API
// base URL from Config.APIBase or STRIPE_API_BASE (stripe-mock, or a
// stripefake.Server in tests). Each Service has its own stripe-go client
// and backend (client.New with a backend from stripe.GetBackendWithConfig),
// so services with different settings coexist in one process; stripe-go's
// own retries are off by default (Config.NetworkRetries).
//
// # Agent tools
//
// Package billing/billingtools wraps Charge and Refund as tools (package
// tools) an agent's model can call; each call's ledger key is the call's
// idempotency key, so a call is billed at most once however often it is
// retried or resumed.
//
// # Testing
//
// Package billing/stripefake is a fake Stripe API that applies Stripe's
// idempotency rules, counts the charges it really made, and injects
// declines, 429s, 500s, held requests and answers lost after the charge.
// The package's own tests also run every request against stripe-mock
// (go install github.com/stripe/stripe-mock@v0.203.0), which validates it
// against Stripe's OpenAPI specification.
package billing
