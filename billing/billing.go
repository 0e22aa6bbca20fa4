package billing

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
)

// Environment variables read when the Config leaves a field empty.
const (
	SecretKeyEnv = "STRIPE_SECRET_KEY"
	APIBaseEnv   = "STRIPE_API_BASE"
)

// DefaultKeyRetention is how long Stripe keeps an idempotency key and the
// response saved under it (24 hours).
const DefaultKeyRetention = 24 * time.Hour

// MetadataKey is the PaymentIntent and Refund metadata field that carries
// the ledger key, by which a charge is found again after Stripe has
// forgotten its idempotency key.
const MetadataKey = "keel_ledger_key"

// maxKeyLength is the longest idempotency key Stripe accepts.
const maxKeyLength = 255

//go:embed migrations
var migrations embed.FS

// Config configures a Service. The zero value is valid when
// STRIPE_SECRET_KEY is set.
type Config struct {
	// APIBase is the URL of Stripe's API. Optional; default
	// $STRIPE_API_BASE, else https://api.stripe.com. Point it at
	// stripe-mock or a stripefake.Server in tests.
	APIBase string
	// Currency of charges whose params name none. Optional; default "usd".
	Currency string
	// HTTPClient makes the requests. Optional; default a client of this
	// Service's own with an 80s timeout (stripe-go's default).
	HTTPClient *http.Client
	// KeyRetention is how long Stripe keeps idempotency keys. A pending
	// entry older than this is reconciled (looked up at Stripe) before it
	// is sent again. Optional; default DefaultKeyRetention.
	KeyRetention time.Duration
	// Logger. Optional; default slog.Default().
	Logger *slog.Logger
	// NetworkRetries is how many times stripe-go itself retries one
	// request (with the same Idempotency-Key) before returning an error.
	// Optional; default 0: retries are left to the activity's retry
	// policy, which sees and records every failure.
	NetworkRetries int
	// SecretKey is Stripe's secret API key. Optional; default
	// $STRIPE_SECRET_KEY; New fails with ErrNoSecretKey without either,
	// unless Local is set.
	SecretKey string
	// Local, with no secret key, runs the Service without Stripe: every
	// operation is recorded in the ledger, once per key as always, with
	// status local, and nothing is charged. For the offline demo and
	// development; ignored when a secret key is set.
	Local bool

	// Test holds settings for tests.
	Test TestConfig
}

// TestConfig holds settings for tests.
type TestConfig struct {
	// Now replaces time.Now, to age ledger entries past KeyRetention.
	Now func() time.Time
}

// WithDefaults returns a copy of c (which may be nil) with defaults filled
// in from the environment and the documented defaults.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.SecretKey == "" {
		out.SecretKey = os.Getenv(SecretKeyEnv)
	}
	if out.APIBase == "" {
		out.APIBase = os.Getenv(APIBaseEnv)
	}
	if out.APIBase == "" {
		out.APIBase = stripe.APIURL
	}
	out.APIBase = strings.TrimRight(out.APIBase, "/")
	if out.Currency == "" {
		out.Currency = "usd"
	}
	if out.KeyRetention <= 0 {
		out.KeyRetention = DefaultKeyRetention
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	if out.Test.Now == nil {
		out.Test.Now = time.Now
	}
	return &out
}

var currencyPattern = regexp.MustCompile(`^[a-z]{3}$`) //nolint:gochecknoglobals // compiled once

func (c *Config) validate() error {
	if c.SecretKey == "" && !c.Local {
		return ErrNoSecretKey
	}
	if !currencyPattern.MatchString(c.Currency) {
		return fmt.Errorf("billing: config: currency %q is not a lowercase ISO 4217 code", c.Currency)
	}
	if !strings.HasPrefix(c.APIBase, "http://") && !strings.HasPrefix(c.APIBase, "https://") {
		return fmt.Errorf("billing: config: API base %q is not an http(s) URL", c.APIBase)
	}
	if c.NetworkRetries < 0 {
		return fmt.Errorf("billing: config: NetworkRetries %d is negative", c.NetworkRetries)
	}
	return nil
}

// Service charges, refunds and records usage through Stripe, each exactly
// once per idempotency key, and keeps the ledger of what it did. It is safe
// for concurrent use.
type Service struct {
	db      *appdb.DB
	cfg     *Config
	api     *client.API
	ownHTTP *http.Client // closed by Close; nil when the caller gave one
}

// New returns a Service over db, whose ledger table it creates or migrates.
// cfg may be nil.
func New(ctx context.Context, db *appdb.DB, cfg *Config) (*Service, error) {
	c := cfg.WithDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("billing: migrations: %w", err)
	}
	if err := db.Migrate(ctx, "billing", sub); err != nil {
		return nil, fmt.Errorf("billing: %w", err)
	}
	s := &Service{db: db, cfg: c}
	hc := c.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 80 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}
		s.ownHTTP = hc
	}
	retries := int64(c.NetworkRetries)
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		HTTPClient:        hc,
		LeveledLogger:     &stripeLogger{l: c.Logger},
		MaxNetworkRetries: &retries,
		URL:               stripe.String(c.APIBase),
	})
	s.api = client.New(c.SecretKey, &stripe.Backends{API: backend, Connect: backend, Uploads: backend})
	return s, nil
}

// Close releases the idle connections of the Service's own HTTP client. It
// does not close the database.
func (s *Service) Close() error {
	if s.ownHTTP != nil {
		s.ownHTTP.CloseIdleConnections()
	}
	return nil
}

func (s *Service) now() time.Time { return s.cfg.Test.Now() }

// ledgerKey returns the key of an operation: the explicit one, or the
// running activity's idempotency key followed by "/" and the operation.
func ledgerKey(ctx context.Context, explicit, op string) (string, error) {
	key := explicit
	if key == "" {
		info, ok := durable.GetActivityInfo(ctx)
		if !ok || info.IdempotencyKey == "" {
			return "", fmt.Errorf("billing: %s: %w", op, ErrNoIdempotencyKey)
		}
		key = info.IdempotencyKey + "/" + op
	}
	if len(key) > maxKeyLength {
		return "", newError(op, key[:32]+"…", CodeInvalidRequest, "idempotency key is %d bytes; Stripe accepts at most %d", len(key), maxKeyLength)
	}
	return key, nil
}

// stripeLogger sends stripe-go's log lines to slog at debug level: every
// error it logs is also returned, and reported by the caller.
type stripeLogger struct{ l *slog.Logger }

func (s *stripeLogger) Debugf(format string, v ...any) { s.log(format, v...) }
func (s *stripeLogger) Infof(format string, v ...any)  { s.log(format, v...) }
func (s *stripeLogger) Warnf(format string, v ...any)  { s.log(format, v...) }
func (s *stripeLogger) Errorf(format string, v ...any) { s.log(format, v...) }

func (s *stripeLogger) log(format string, v ...any) {
	if s.l.Enabled(context.Background(), slog.LevelDebug) {
		s.l.Debug(fmt.Sprintf(format, v...), "component", "stripe-go")
	}
}
