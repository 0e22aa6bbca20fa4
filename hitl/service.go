package hitl

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
)

//go:embed migrations
var migrations embed.FS

// LinkSecretEnv is the environment variable New reads the link signing key
// from when Config.LinkSecret is empty.
const LinkSecretEnv = "KEEL_LINK_SECRET"

// MinLinkSecret is the shortest link signing key accepted, in bytes.
const MinLinkSecret = 32

// Config configures a Service.
type Config struct {
	// Codec encodes at rest what an approval carries that may hold
	// secrets: its title, details and arguments, and each vote's comment
	// and edited arguments, so that the approval tables are as protected
	// as the run's history. IDs, the action, group, requester, reviewers,
	// statuses, times and the argument hashes stay readable: they are
	// what approvals are looked up, listed and bound by. Rows written
	// before the codec was set still read. Optional; default the engine's
	// (durable.Config.Codec, compression and encryption from package
	// durable/codec), and plain text when the engine has none.
	Codec durable.Codec
	// Groups are the reviewer groups and their members. Required.
	Groups Groups
	// LinkSecret is the HMAC-SHA256 key of signed review links, at least
	// MinLinkSecret bytes. Optional; default the value of
	// KEEL_LINK_SECRET; New fails when neither is set.
	LinkSecret []byte
	// Logger. Optional; default slog.Default().
	Logger *slog.Logger
	// RedeliverInterval is how often Run looks for decisions whose
	// signal did not reach the workflow. Optional; default 5s.
	RedeliverInterval time.Duration

	// Test holds settings for tests.
	Test TestConfig
}

// TestConfig holds test-only settings.
type TestConfig struct {
	// Clock replaces the wall clock for deadlines, link expiry and
	// timestamps; give it the engine's fake clock. Optional.
	Clock durable.Clock
}

// WithDefaults returns a copy of c with defaults filled in (the link secret
// from KEEL_LINK_SECRET when unset).
func (c *Config) WithDefaults() *Config {
	out := &Config{}
	if c != nil {
		*out = *c
	}
	if len(out.LinkSecret) == 0 {
		out.LinkSecret = []byte(os.Getenv(LinkSecretEnv))
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	if out.RedeliverInterval <= 0 {
		out.RedeliverInterval = 5 * time.Second
	}
	if out.Test.Clock == nil {
		out.Test.Clock = wallClock{}
	}
	return out
}

func (c *Config) validate() error {
	if err := c.Groups.validate(); err != nil {
		return err
	}
	if len(c.LinkSecret) < MinLinkSecret {
		return ErrLinkSecret
	}
	return nil
}

// Service is the reviewers' side of approvals: it lists and shows them,
// takes decisions and delivers them to the waiting workflows, and signs
// review links. It also executes the activities Approve calls, so every
// worker process that runs workflows calling Approve needs one (New
// registers them on the engine). A Service is safe for concurrent use.
type Service struct {
	db       *appdb.DB
	engine   *durable.Engine
	codec    durable.Codec
	groups   Groups
	key      []byte
	clock    durable.Clock
	log      *slog.Logger
	interval time.Duration
	// sqliteWrite serializes this process's vote transactions on SQLite,
	// which has one writer at a time anyway: waiting here is cheaper and
	// fairer than SQLite's busy-wait loop. Other processes still contend
	// through the busy timeout.
	sqliteWrite sync.Mutex

	// signal sends a decision to its workflow; tests replace it to make
	// delivery fail.
	signal func(ctx context.Context, workflowID, name string, payload json.RawMessage, opts *durable.SignalOptions) error
	// afterInsert, when set, runs in the record activity after its insert;
	// tests use it to fail an attempt that has written its row.
	afterInsert func(attempt int) error
}

// New returns a Service over db (the application database, usually the
// engine's own) and e. It applies the approval tables' migrations and
// registers the activities that Approve calls on e, so call it before
// e.Start, once per engine. cfg may be nil only if KEEL_LINK_SECRET is set
// — Groups are required — so in practice it is not.
func New(ctx context.Context, db *appdb.DB, e *durable.Engine, cfg *Config) (*Service, error) {
	if db == nil || e == nil {
		return nil, fmt.Errorf("%w: New needs a database and an engine", ErrInvalidConfig)
	}
	c := cfg.WithDefaults()
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("hitl: new: %w", err)
	}
	if c.Codec == nil {
		c.Codec = e.Codec()
	}
	s := &Service{
		db:       db,
		engine:   e,
		codec:    c.Codec,
		groups:   c.Groups.clone(),
		key:      append([]byte(nil), c.LinkSecret...),
		clock:    c.Test.Clock,
		log:      c.Logger,
		interval: c.RedeliverInterval,
		signal:   e.Signal,
	}
	if err := Migrate(ctx, db); err != nil {
		return nil, err
	}
	err := e.Register(
		durable.NewActivity(recordActivityName, s.recordActivity, activityOptions()),
		durable.NewActivity(expireActivityName, s.expireActivity, activityOptions()),
	)
	if err != nil {
		return nil, fmt.Errorf("hitl: new: register activities: %w", err)
	}
	return s, nil
}

// Migrate creates or updates the approval tables (hitl_approvals,
// hitl_votes) in db. New calls it; it is safe to run from several
// processes at once.
func Migrate(ctx context.Context, db *appdb.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("hitl: migrate: %w", err)
	}
	if err := db.Migrate(ctx, "hitl", sub); err != nil {
		return fmt.Errorf("hitl: migrate: %w", err)
	}
	return nil
}

// Groups returns a copy of the reviewer groups.
func (s *Service) Groups() Groups { return s.groups.clone() }

func (s *Service) now() time.Time { return s.clock.Now().UTC() }

// recordActivity is the activity Approve runs to record a pending approval.
// Its row is keyed by the activity's idempotency key (run ID + sequence),
// so a retried attempt returns the row an earlier attempt wrote.
func (s *Service) recordActivity(ctx context.Context, in recordInput) (Approval, error) {
	info, ok := durable.GetActivityInfo(ctx)
	if !ok {
		return Approval{}, durable.NonRetryable(errors.New("hitl: record must run as an activity"))
	}
	a, err := s.record(ctx, info.IdempotencyKey, info.WorkflowID, info.RunID, info.Attempt, in)
	if err != nil {
		return Approval{}, err
	}
	a.Args, a.Details = nil, "" // the workflow has them; keep its history small
	return *a, nil
}

// expireActivity is the activity Approve runs when the deadline passed: it
// closes a still pending approval as timed out and returns its final state,
// which may be approved or rejected if a decision won the race.
func (s *Service) expireActivity(ctx context.Context, id string) (Approval, error) {
	if err := s.expire(ctx, id); err != nil {
		return Approval{}, err
	}
	a, err := s.get(ctx, s.db, id)
	if err != nil {
		return Approval{}, err
	}
	a.Args, a.Details = nil, ""
	return *a, nil
}

// Get returns an approval with its votes, or ErrNotFound.
func (s *Service) Get(ctx context.Context, id string) (*Approval, error) {
	a, err := s.get(ctx, s.db, id)
	if err != nil {
		return nil, fmt.Errorf("hitl: get %s: %w", id, err)
	}
	return a, nil
}

// CanDecide reports whether reviewer may decide a now, with the error
// Decide would return otherwise (ErrNotInGroup, ErrSelfApproval,
// ErrAlreadyVoted, ErrClosed, ErrExpired). Pages use it to show or hide
// the decision form; Decide checks again.
func (s *Service) CanDecide(a *Approval, reviewer string) error {
	return s.check(a, reviewer, s.now())
}

// check applies the rules every decision must pass, in this order:
// membership, self-approval, one vote per reviewer, then the approval's
// state and deadline.
func (s *Service) check(a *Approval, reviewer string, now time.Time) error {
	if !s.groups.Has(a.Group, reviewer) {
		return fmt.Errorf("%w: %q is not a member of %q", ErrNotInGroup, reviewer, a.Group)
	}
	if a.Requester != "" && reviewer == a.Requester {
		return fmt.Errorf("%w: %q asked for this approval", ErrSelfApproval, reviewer)
	}
	for _, v := range a.Votes {
		if v.Reviewer == reviewer {
			return fmt.Errorf("%w: %q decided at %s", ErrAlreadyVoted, reviewer, v.At.Format(time.RFC3339))
		}
	}
	switch {
	case a.Status == StatusTimedOut:
		return fmt.Errorf("%w: timed out at %s", ErrExpired, a.Deadline.Format(time.RFC3339))
	case a.Status.Closed():
		return fmt.Errorf("%w: %s", ErrClosed, a.Status)
	case !now.Before(a.Deadline):
		return fmt.Errorf("%w: deadline was %s", ErrExpired, a.Deadline.Format(time.RFC3339))
	}
	return nil
}

// Run redelivers, every RedeliverInterval, the decisions whose signal did
// not reach their workflow (see Redeliver), until ctx is canceled; it then
// returns nil. Run it in one goroutine per process (several processes may
// run it: a repeated signal is applied once).
func (s *Service) Run(ctx context.Context) error {
	for {
		if _, err := s.Redeliver(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("hitl: redeliver decisions", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.clock.After(s.interval):
		}
	}
}

type wallClock struct{}

func (wallClock) Now() time.Time                         { return time.Now() }
func (wallClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
