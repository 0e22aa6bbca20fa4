package billing_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/billing"
	"github.com/keelhq/keel/billing/billingtools"
	"github.com/keelhq/keel/billing/stripefake"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/internal/crashtest"
	"github.com/keelhq/keel/tools"
)

// startEngine runs an engine on the SQLite file path with defs registered.
func startEngine(t *testing.T, path string, defs ...durable.Definition) *durable.Engine {
	t.Helper()
	st, err := sqlitestore.Open(path, nil)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	e, err := durable.New(st, &durable.Config{PollInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	e.MustRegister(defs...)
	e.NewWorker(nil)
	require.NoError(t, e.Start(t.Context()))
	t.Cleanup(func() { e.Stop(context.Background()) })
	return e
}

var fastRetry = &durable.ActivityOptions{ //nolint:gochecknoglobals // test constant
	StartToCloseTimeout: 10 * time.Second,
	RetryPolicy:         durable.RetryPolicy{InitialInterval: 10 * time.Millisecond, MaximumAttempts: 5},
}

// In a workflow, the charge's key comes from the activity: every attempt
// uses the same one, so a retried activity charges once, whether the first
// attempt lost Stripe's answer or failed after the charge was recorded.
func TestChargeActivityRetries(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"answer lost", "failed after charging"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "keel.db")
			db, err := appdb.Open(t.Context(), path) // the engine's database
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			fake := stripefake.NewServer()
			t.Cleanup(fake.Close)
			fake.AddCustomer("cus_ada", "pm_card_visa")
			svc := newService(t, db, fake, &clock{})
			if mode == "answer lost" {
				fake.Inject("POST", "/v1/payment_intents", stripefake.Fault{Drop: true})
			}

			var attempts atomic.Int32
			charge := durable.NewActivity("charge", func(ctx context.Context, customer string) (string, error) {
				n := attempts.Add(1)
				e, err := svc.Charge(ctx, billing.ChargeParams{Customer: customer, Amount: 99, Description: "ticket resolved"})
				if err != nil {
					return "", err
				}
				if mode == "failed after charging" && n == 1 {
					return "", errors.New("worker hiccup after the charge")
				}
				return e.StripeID, nil
			}, fastRetry)
			wf := durable.NewWorkflow("resolve", func(ctx durable.Context, customer string) (string, error) {
				return charge.Run(ctx, customer)
			})
			e := startEngine(t, path, charge, wf)
			h, err := wf.Start(t.Context(), e, "cus_ada", &durable.StartOptions{ID: "ticket-1"})
			require.NoError(t, err)
			pi, err := h.Result(t.Context())
			require.NoError(t, err)

			require.Equal(t, int32(2), attempts.Load())
			charges := fake.Charges()
			require.Len(t, charges, 1)
			require.Equal(t, charges[0].ID, pi)
			entries, err := svc.Entries(t.Context(), nil)
			require.NoError(t, err)
			require.Len(t, entries, 1)
			require.Equal(t, h.RunID()+"-1/charge", entries[0].Key, "run ID, step, operation")
			require.Equal(t, entries[0].Key, charges[0].Metadata[billing.MetadataKey])
		})
	}
}

// A declined card fails the activity at once (no retry), and workflow code
// sees the error's type.
func TestDeclineFailsActivity(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keel.db")
	db, err := appdb.Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	fake := stripefake.NewServer()
	t.Cleanup(fake.Close)
	fake.AddCustomer("cus_broke", "pm_card_chargeDeclined")
	svc := newService(t, db, fake, &clock{})

	var attempts atomic.Int32
	charge := durable.NewActivity("charge", func(ctx context.Context, customer string) (string, error) {
		attempts.Add(1)
		e, err := svc.Charge(ctx, billing.ChargeParams{Customer: customer, Amount: 99})
		if err != nil {
			return "", err
		}
		return e.StripeID, nil
	}, fastRetry)
	wf := durable.NewWorkflow("resolve", func(ctx durable.Context, customer string) (string, error) {
		_, err := charge.Run(ctx, customer)
		var ae *durable.ApplicationError
		if errors.As(err, &ae) && ae.Type == billing.CodeCardDeclined.ErrorType() {
			return "declined", nil
		}
		return "other", err
	})
	e := startEngine(t, path, charge, wf)
	out, err := wf.Run(t.Context(), e, "cus_broke", &durable.StartOptions{ID: "ticket-2"})
	require.NoError(t, err)
	require.Equal(t, "declined", out)
	require.Equal(t, int32(1), attempts.Load(), "not retried")
}

// The crash tests run a workflow that charges a customer in a child
// process of the test binary, which SIGKILLs itself at a chosen point, then
// resume the run in a second child process. The fake Stripe runs in the
// test process.

const (
	crashHelperEnv = "KEEL_BILLING_CRASH_HELPER"
	crashDBEnv     = "KEEL_BILLING_CRASH_DB"
	crashStripeEnv = "KEEL_BILLING_CRASH_STRIPE"
	crashModeEnv   = "KEEL_BILLING_CRASH_MODE"
)

// chargeKiller is the transport of the crash helper's Stripe client: it
// SIGKILLs the process before the first PaymentIntent request is sent
// ("before-send"), or once Stripe's answer has arrived, before the ledger
// records it ("after-accept").
func chargeKiller(mode string) http.RoundTripper {
	charge := func(r *http.Request) bool {
		return r.Method == http.MethodPost && r.URL.Path == "/v1/payment_intents"
	}
	return &crashtest.KillingTransport{
		BeforeFunc: func(r *http.Request) bool { return mode == "before-send" && charge(r) },
		AfterFunc: func(r *http.Request, resp *http.Response) bool {
			return mode == "after-accept" && charge(r) && resp.StatusCode == http.StatusOK
		},
		Next: &http.Transport{DisableKeepAlives: true},
	}
}

func crashHelper(ctx context.Context) error {
	path := os.Getenv(crashDBEnv)
	db, err := appdb.Open(ctx, path)
	if err != nil {
		return err
	}
	defer db.Close()
	svc, err := billing.New(ctx, db, &billing.Config{
		APIBase:    os.Getenv(crashStripeEnv),
		SecretKey:  stripefake.SecretKey,
		HTTPClient: &http.Client{Transport: chargeKiller(os.Getenv(crashModeEnv))},
	})
	if err != nil {
		return err
	}
	charge := durable.NewActivity("charge", func(ctx context.Context, customer string) (string, error) {
		e, err := svc.Charge(ctx, billing.ChargeParams{Customer: customer, Amount: 99, Description: "ticket resolved"})
		if err != nil {
			return "", err
		}
		return e.StripeID, nil
	}, &durable.ActivityOptions{
		StartToCloseTimeout: 2 * time.Second,
		RetryPolicy:         durable.RetryPolicy{InitialInterval: 50 * time.Millisecond},
	})
	wf := durable.NewWorkflow("resolve", func(ctx durable.Context, customer string) (string, error) {
		return charge.Run(ctx, customer)
	})
	e, stop, err := crashtest.StartEngine(ctx, path, charge, wf)
	if err != nil {
		return err
	}
	defer stop()
	pi, err := wf.Run(ctx, e, "cus_ada", &durable.StartOptions{ID: "ticket-1"})
	if err != nil {
		return err
	}
	fmt.Println("charged:", pi)
	return nil
}

// crashEnv is the crash helper's environment: the engine's database, the
// fake Stripe and where to die ("" for nowhere).
func crashEnv(db, stripeURL, mode string) []string {
	return []string{crashHelperEnv + "=1", crashDBEnv + "=" + db, crashStripeEnv + "=" + stripeURL, crashModeEnv + "=" + mode}
}

func TestCrash(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"before-send", "after-accept"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "keel.db")
			fake := stripefake.NewServer()
			t.Cleanup(fake.Close)
			fake.AddCustomer("cus_ada", "pm_card_visa")

			crashtest.RequireKilled(t, crashEnv(path, fake.URL, mode)...)

			db, err := appdb.Open(t.Context(), path)
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			svc := newService(t, db, fake, &clock{})
			entries, err := svc.Entries(t.Context(), nil)
			require.NoError(t, err)
			require.Len(t, entries, 1)
			require.Equal(t, billing.StatusPending, entries[0].Status, "the ledger row was written before the call")
			if mode == "before-send" {
				require.Empty(t, fake.PaymentIntents())
			} else {
				require.Len(t, fake.Charges(), 1, "Stripe charged before the kill")
			}

			out := crashtest.RequireSuccess(t, crashEnv(path, fake.URL, "")...)
			charges := fake.Charges()
			require.Len(t, charges, 1, "exactly one charge after the resume")
			require.Contains(t, out, "charged: "+charges[0].ID)
			e, err := svc.Entry(t.Context(), entries[0].Key)
			require.NoError(t, err)
			require.Equal(t, billing.StatusSucceeded, e.Status)
			require.Equal(t, charges[0].ID, e.StripeID)
			if mode == "after-accept" {
				total, replayed := posts(fake, "/v1/payment_intents")
				require.Equal(t, 2, total)
				require.Equal(t, 1, replayed, "the resumed attempt got Stripe's saved answer")
			}
		})
	}
}

// The charge tool runs each model call as an activity keyed by the call:
// a lost answer is retried without a second charge, and a decline comes
// back to the model as an error result, not retried.
func TestChargeTool(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keel.db")
	db, err := appdb.Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	fake := stripefake.NewServer()
	t.Cleanup(fake.Close)
	fake.AddCustomer("cus_ada", "pm_card_visa")
	fake.AddCustomer("cus_broke", "pm_card_chargeDeclined")
	svc := newService(t, db, fake, &clock{})
	charge := billingtools.ChargeTool(svc, &tools.Options{Activity: fastRetry})
	refund := billingtools.RefundTool(svc, &tools.Options{Activity: fastRetry})
	require.Contains(t, string(charge.Schema()), `"amount_cents"`)

	fake.Inject("POST", "/v1/payment_intents", stripefake.Fault{Drop: true})
	wf := durable.NewWorkflow("agent", func(ctx durable.Context, _ string) ([]tools.Result, error) {
		var out []tools.Result
		for _, c := range []struct {
			tool *tools.Tool
			args string
		}{
			{charge, `{"customer_id":"cus_ada","amount_cents":99,"description":"ticket T-1 resolved"}`},
			{charge, `{"customer_id":"cus_broke","amount_cents":99,"description":"ticket T-2 resolved"}`},
			{charge, `{"customer_id":"cus_ada","amount_cents":0,"description":"bad"}`},
		} {
			r, err := c.tool.Start(ctx, tools.Call{ID: "call", Name: c.tool.Name(), Arguments: c.args}, nil).Get(ctx)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		var first billing.Entry
		if err := json.Unmarshal(out[0].Content, &first); err != nil {
			return nil, err
		}
		r, err := refund.Start(ctx, tools.Call{Name: refund.Name(), Arguments: `{"payment_intent_id":"` + first.StripeID + `"}`}, nil).Get(ctx)
		return append(out, r), err
	})
	e := startEngine(t, path, append(tools.Definitions(charge, refund), wf)...)
	results, err := wf.Run(t.Context(), e, "", &durable.StartOptions{ID: "agent-1"})
	require.NoError(t, err)
	require.Len(t, results, 4)

	require.False(t, results[0].IsError, results[0].Text())
	var first billing.Entry
	require.NoError(t, json.Unmarshal(results[0].Content, &first))
	require.Equal(t, billing.StatusSucceeded, first.Status)
	require.Equal(t, 2, first.Attempts, "the lost answer was retried")

	require.True(t, results[1].IsError)
	require.Contains(t, results[1].Error, "card_declined")
	require.Equal(t, tools.ErrorInvalidArguments, results[2].ErrorKind)

	require.False(t, results[3].IsError, results[3].Text())
	charges := fake.Charges()
	require.Len(t, charges, 1)
	require.Equal(t, first.StripeID, charges[0].ID)
	require.Len(t, fake.Refunds(), 1)

	runInfo, err := e.Describe(t.Context(), "agent-1")
	require.NoError(t, err)
	attempts, err := e.ActivityAttempts(t.Context(), runInfo.RunID)
	require.NoError(t, err)
	declined := 0
	for _, a := range attempts {
		if strings.Contains(a.Error, "card_declined") {
			declined++
		}
	}
	require.Equal(t, 1, declined, "the decline was not retried")
}
