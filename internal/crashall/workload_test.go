//go:build failpoints

package crashall_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/billing"
	"github.com/keelhq/keel/billing/stripefake"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/pgstore"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/internal/failpoint"
)

// Environment of the child processes.
const (
	envRole    = "KEEL_CRASHALL_ROLE"     // worker, reviewer or ambiguous
	envDB      = "KEEL_CRASHALL_DB"       // the SQLite file
	envStripe  = "KEEL_CRASHALL_STRIPE"   // the fake Stripe's URL
	envGen     = "KEEL_CRASHALL_GEN"      // the process's generation: its clock runs gen × genSkew ahead
	envOut     = "KEEL_CRASHALL_OUT"      // where the process writes its report
	envN       = "KEEL_CRASHALL_N"        // ambiguous: how many workflows
	envStartAt = "KEEL_CRASHALL_START_AT" // open: when to open, in Unix nanoseconds
)

// genSkew is how far each generation's clock runs ahead of the previous
// one's: more than the longest lease (hitl's activities hold theirs for a
// minute), so that a resumed process finds the dead one's leases expired.
const genSkew = 2 * time.Minute

// childTimeout bounds a child process's work; it reports what it waited
// for when it gives up.
const childTimeout = 90 * time.Second

const (
	customer   = "cus_ada"
	linkSecret = "a crash test secret of at least 32 bytes"
	reviewer   = "fred"
)

// skewClock is the real clock, moved ahead by a fixed offset.
type skewClock struct{ d time.Duration }

func (c skewClock) Now() time.Time                         { return time.Now().Add(c.d) }
func (c skewClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// report is what a child process writes to envOut when it is done.
type report struct {
	Hits  map[string]int64 `json:"hits"`
	Fired map[string]int64 `json:"fired"`
	// Note says what the process saw (for example "already decided").
	Note string `json:"note,omitempty"`
}

func writeReport(note string) error {
	b, err := json.Marshal(report{Hits: failpoint.Hits(), Fired: failpoint.Fired(), Note: note})
	if err != nil {
		return err
	}
	return os.WriteFile(os.Getenv(envOut), b, 0o644)
}

// childMain runs a child process's role and returns its exit code.
func childMain(role string) int {
	timeout := childTimeout
	if n, err := strconv.Atoi(os.Getenv(envN)); err == nil {
		timeout = ambiguousTimeout(n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var err error
	var note string
	switch role {
	case "worker":
		err = runWorker(ctx)
	case "reviewer":
		note, err = runReviewer(ctx)
	case "ambiguous":
		note, err = runAmbiguous(ctx)
	case "open":
		// Open at the instant the parent chose, to meet the other process.
		if at, perr := strconv.ParseInt(os.Getenv(envStartAt), 10, 64); perr == nil {
			time.Sleep(time.Until(time.Unix(0, at)))
		}
		var st *sqlitestore.Store
		if st, err = sqlitestore.Open(os.Getenv(envDB), nil); err == nil {
			err = st.Close()
		}
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err == nil {
		err = writeReport(note)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "crashall %s: %v\n", role, err)
		return 1
	}
	return 0
}

// env is what every child process opens: the engine and the application
// database in one database, a SQLite file or a PostgreSQL schema.
type env struct {
	st     store.Store
	db     *appdb.DB
	e      *durable.Engine
	clock  skewClock
	log    *slog.Logger
	closer func()
}

// openStore opens the engine's store on dsn: a postgres:// URL or a SQLite
// file path.
func openStore(ctx context.Context, dsn string) (store.Store, func(), error) {
	if !appdb.IsPostgresURL(dsn) {
		st, err := sqlitestore.Open(dsn, nil)
		if err != nil {
			return nil, nil, err
		}
		return st, func() { st.Close() }, nil
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, nil, err
	}
	st, err := pgstore.New(ctx, pool, nil)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return st, func() { st.Close(); pool.Close() }, nil
}

func openEnv(ctx context.Context, cfg durable.Config) (*env, error) {
	gen, _ := strconv.Atoi(os.Getenv(envGen))
	dsn := os.Getenv(envDB)
	st, closeStore, err := openStore(ctx, dsn)
	if err != nil {
		return nil, err
	}
	db, err := appdb.Open(ctx, dsn)
	if err != nil {
		closeStore()
		return nil, err
	}
	v := &env{st: st, db: db, clock: skewClock{time.Duration(gen) * genSkew},
		log:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		closer: func() { db.Close(); closeStore() }}
	cfg.Test.Clock = v.clock
	cfg.Logger = v.log
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	if v.e, err = durable.New(st, &cfg); err != nil {
		v.close()
		return nil, err
	}
	return v, nil
}

func (v *env) close() { v.closer() }

func (v *env) hitl(ctx context.Context) (*hitl.Service, error) {
	return hitl.New(ctx, v.db, v.e, &hitl.Config{
		Groups:            hitl.Groups{"finance": {reviewer}},
		LinkSecret:        []byte(linkSecret),
		Logger:            v.log,
		RedeliverInterval: 50 * time.Millisecond,
		Test:              hitl.TestConfig{Clock: v.clock},
	})
}

func (v *env) billing(ctx context.Context) (*billing.Service, error) {
	return billing.New(ctx, v.db, &billing.Config{
		APIBase:   os.Getenv(envStripe),
		SecretKey: stripefake.SecretKey,
		Logger:    v.log,
		// Without keep-alives a dropped connection is an error, not a
		// silent resend (see package stripefake).
		HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	})
}

// effectsTable records the activities' side effects: one row per
// idempotency key, with the number of attempts that wrote it.
const effectsTable = `CREATE TABLE IF NOT EXISTS crash_effects (
	key TEXT PRIMARY KEY,
	workflow_id TEXT NOT NULL,
	name TEXT NOT NULL,
	arg TEXT NOT NULL,
	attempts INTEGER NOT NULL
)`

// effectIn is the input of the side-effect activities.
type effectIn struct {
	Name string `json:"name"`
	Arg  string `json:"arg"`
}

// activityOptions keep attempts short: a killed attempt's lease is what a
// resumed process waits out (or, with its clock ahead, does not).
func activityOptions() *durable.ActivityOptions {
	return &durable.ActivityOptions{
		StartToCloseTimeout: 5 * time.Second,
		RetryPolicy:         durable.RetryPolicy{InitialInterval: 20 * time.Millisecond, MaximumInterval: 200 * time.Millisecond},
	}
}

// workload holds the workflows and activities of both tests.
type workload struct {
	effect, flaky, pack *durable.Activity[effectIn, string]
	charge              *durable.Activity[string, string]

	order    *durable.Workflow[string, string]
	ship     *durable.Workflow[string, string]
	counter  *durable.Workflow[int, string]
	cancelMe *durable.Workflow[string, string]
	termMe   *durable.Workflow[string, string]
	mixed    *durable.Workflow[mixedIn, string]
}

var (
	goSignal    = durable.NewSignal[string]("go")
	neverSignal = durable.NewSignal[string]("never")
)

// stageQuery is the query by which the driver waits for a workflow to
// block where it expects an outside event, so that the event lands at the
// same place of the history in every run.
const stageQuery = "stage"

func newWorkload(db *appdb.DB, bill *billing.Service) *workload {
	w := &workload{}
	record := func(ctx context.Context, in effectIn) error {
		info, _ := durable.GetActivityInfo(ctx)
		_, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO crash_effects (key, workflow_id, name, arg, attempts)
			VALUES (?, ?, ?, ?, 1) ON CONFLICT (key) DO UPDATE SET attempts = crash_effects.attempts + 1`),
			info.IdempotencyKey, info.WorkflowID, in.Name, in.Arg)
		if err != nil {
			return fmt.Errorf("record effect %s: %w", in.Name, err)
		}
		return nil
	}
	w.effect = durable.NewActivity("crash.effect", func(ctx context.Context, in effectIn) (string, error) {
		if err := record(ctx, in); err != nil {
			return "", err
		}
		return in.Name + " " + in.Arg + " done", nil
	}, activityOptions())
	// flaky fails its first attempt after writing its effect: the retry
	// finds the row and counts a second attempt.
	w.flaky = durable.NewActivity("crash.flaky", func(ctx context.Context, in effectIn) (string, error) {
		if err := record(ctx, in); err != nil {
			return "", err
		}
		if info, _ := durable.GetActivityInfo(ctx); info.Attempt == 1 {
			return "", errors.New("flaky: first attempt fails")
		}
		return in.Name + " " + in.Arg + " done after a retry", nil
	}, activityOptions())
	// pack heartbeats before it acts.
	w.pack = durable.NewActivity("crash.pack", func(ctx context.Context, in effectIn) (string, error) {
		if err := durable.Heartbeat(ctx, "packing "+in.Arg); errors.Is(err, durable.ErrCanceled) {
			return "", err
		}
		if err := record(ctx, in); err != nil {
			return "", err
		}
		return "packed " + in.Arg, nil
	}, &durable.ActivityOptions{
		StartToCloseTimeout: 5 * time.Second,
		HeartbeatTimeout:    5 * time.Second,
		RetryPolicy:         durable.RetryPolicy{InitialInterval: 20 * time.Millisecond, MaximumInterval: 200 * time.Millisecond},
	})
	w.charge = durable.NewActivity("crash.charge", func(ctx context.Context, order string) (string, error) {
		e, err := bill.Charge(ctx, billing.ChargeParams{Customer: customer, Amount: 4200, Description: "order " + order})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("charged %d %s: %s", e.Amount, e.Currency, e.Status), nil
	}, activityOptions())

	w.ship = durable.NewWorkflow("crash.ship", func(ctx durable.Context, order string) (string, error) {
		packed, err := w.pack.Run(ctx, effectIn{Name: "pack", Arg: order})
		if err != nil {
			return "", err
		}
		label, err := w.effect.Run(ctx, effectIn{Name: "label", Arg: order})
		if err != nil {
			return "", err
		}
		return packed + ", " + label, nil
	})

	w.order = durable.NewWorkflow("crash.order", func(ctx durable.Context, order string) (string, error) {
		stage := "start"
		durable.SetQueryHandler(ctx, stageQuery, func(struct{}) (string, error) { return stage, nil })
		reserved, err := w.effect.Run(ctx, effectIn{Name: "reserve", Arg: order})
		if err != nil {
			return "", err
		}
		if err := durable.Sleep(ctx, 50*time.Millisecond); err != nil {
			return "", err
		}
		stage = "waiting-go"
		word, err := goSignal.Receive(ctx)
		if err != nil {
			return "", err
		}
		stage = "shipping"
		shipped, err := w.ship.RunChild(ctx, order, &durable.ChildOptions{ID: order + "-ship"})
		if err != nil {
			return "", err
		}
		d, err := hitl.Approve(ctx, hitl.Request{
			Title: "Ship and charge order " + order, Action: "charge", Args: map[string]any{"order": order, "amount": 4200},
			Group: "finance", Timeout: 24 * time.Hour, Requester: "order-bot",
		})
		if err != nil {
			return "", err
		}
		if !d.Approved() {
			return "", fmt.Errorf("approval %s", d.Status)
		}
		charged, err := w.charge.Run(ctx, order)
		if err != nil {
			return "", err
		}
		notified, err := w.flaky.Run(ctx, effectIn{Name: "notify", Arg: order})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s; signal %q; %s; approved by %v (%v); %s; %s",
			reserved, word, shipped, d.DecidedBy, d.Comments(), charged, notified), nil
	})

	w.counter = durable.NewWorkflow("crash.counter", func(ctx durable.Context, n int) (string, error) {
		if _, err := w.effect.Run(ctx, effectIn{Name: "tick", Arg: strconv.Itoa(n)}); err != nil {
			return "", err
		}
		if n < 3 {
			return "", w.counter.ContinueAsNew(ctx, n+1)
		}
		// The last run closes on a timer, not on an activity's result:
		// through an ordinary workflow-task commit.
		if err := durable.Sleep(ctx, 20*time.Millisecond); err != nil {
			return "", err
		}
		return "counted to " + strconv.Itoa(n), nil
	})

	blocked := func(cleanup bool) func(ctx durable.Context, id string) (string, error) {
		return func(ctx durable.Context, id string) (string, error) {
			stage := "start"
			durable.SetQueryHandler(ctx, stageQuery, func(struct{}) (string, error) { return stage, nil })
			if _, err := w.effect.Run(ctx, effectIn{Name: "begin", Arg: id}); err != nil {
				return "", err
			}
			stage = "blocked"
			_, err := neverSignal.Receive(ctx)
			if cleanup && errors.Is(err, durable.ErrCanceled) {
				if _, cerr := w.effect.Run(durable.WithoutCancel(ctx), effectIn{Name: "cleanup", Arg: id}); cerr != nil {
					return "", cerr
				}
			}
			return "", err
		}
	}
	w.cancelMe = durable.NewWorkflow("crash.cancel", blocked(true))
	w.termMe = durable.NewWorkflow("crash.terminate", blocked(false))

	w.mixed = durable.NewWorkflow("crash.mixed", w.mixedFunc)
	return w
}

func (w *workload) defs() []durable.Definition {
	return []durable.Definition{w.effect, w.flaky, w.pack, w.charge,
		w.order, w.ship, w.counter, w.cancelMe, w.termMe, w.mixed}
}

// The crash workload's workflow IDs.
const (
	orderID   = "order-1"
	counterID = "counter-1"
	cancelID  = "cancel-1"
	termID    = "term-1"
)

// runWorker runs (or resumes) the crash workload until every workflow has
// closed. It is idempotent: a resumed worker starts nothing twice, and the
// signal, cancel and terminate it repeats are applied once.
func runWorker(ctx context.Context) error {
	v, err := openEnv(ctx, durable.Config{})
	if err != nil {
		return err
	}
	defer v.close()
	if _, err := v.db.ExecContext(ctx, effectsTable); err != nil {
		return err
	}
	hs, err := v.hitl(ctx)
	if err != nil {
		return err
	}
	bill, err := v.billing(ctx)
	if err != nil {
		return err
	}
	defer bill.Close()
	w := newWorkload(v.db, bill)
	v.e.MustRegister(w.defs()...)
	v.e.NewWorker(nil)
	if err := v.e.Start(ctx); err != nil {
		return err
	}
	defer v.e.Stop(context.Background())
	redeliver, stopRedeliver := context.WithCancel(ctx)
	redelivered := make(chan struct{})
	go func() {
		defer close(redelivered)
		hs.Run(redeliver) //nolint:errcheck // returns nil when stopped
	}()
	defer func() { stopRedeliver(); <-redelivered }()

	start := func(name string, in any, id string) error {
		raw, _ := json.Marshal(in)
		_, err := v.e.StartWorkflow(ctx, name, raw, &durable.StartOptions{ID: id, IDReusePolicy: durable.RejectDuplicate})
		if err != nil && !errors.Is(err, durable.ErrWorkflowIDInUse) {
			return fmt.Errorf("start %s: %w", id, err)
		}
		return nil
	}
	for _, s := range []struct {
		name string
		in   any
		id   string
	}{
		{w.order.Name(), orderID, orderID},
		{w.counter.Name(), 1, counterID},
		{w.cancelMe.Name(), cancelID, cancelID},
		{w.termMe.Name(), termID, termID},
	} {
		if err := start(s.name, s.in, s.id); err != nil {
			return err
		}
	}

	sent := map[string]bool{}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		open := 0
		for _, id := range []string{orderID, counterID, cancelID, termID} {
			info, err := v.e.Describe(ctx, id)
			if err != nil {
				return fmt.Errorf("describe %s: %w", id, err)
			}
			if info.Status.Closed() && info.Status != durable.StatusContinuedAsNew {
				continue
			}
			open++
			if sent[id] || id == counterID {
				continue
			}
			raw, err := v.e.Query(ctx, id, stageQuery, json.RawMessage(`{}`))
			if err != nil {
				continue // not committed yet, or closed meanwhile
			}
			var stage string
			_ = json.Unmarshal(raw, &stage)
			switch {
			case id == orderID && stage == "waiting-go":
				err = v.e.Signal(ctx, id, goSignal.Name(), json.RawMessage(`"go!"`), &durable.SignalOptions{RequestID: "go-1"})
			case id == cancelID && stage == "blocked":
				err = v.e.Cancel(ctx, id, "the driver cancels")
			case id == termID && stage == "blocked":
				err = v.e.Terminate(ctx, id, "the driver terminates")
			default:
				continue
			}
			if err != nil && !errors.Is(err, durable.ErrRunClosed) {
				return fmt.Errorf("act on %s: %w", id, err)
			}
			sent[id] = true
		}
		if open == 0 {
			// A reviewer killed between its signal's commit and marking
			// the vote delivered leaves the vote undelivered, and the
			// workflow may close before the loop's next pass: one last
			// pass marks it, as a worker that kept running would.
			stopRedeliver()
			<-redelivered
			if _, err := hs.Redeliver(ctx); err != nil {
				return fmt.Errorf("final redelivery: %w", err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("workload not done: %d workflows open (sent %v)", open, sent)
		case <-tick.C:
		}
	}
}

// runReviewer waits for the order's approval and approves it, once the
// workflow waits for the decision. A reviewer that finds the approval
// already decided (by its killed predecessor) stops there.
func runReviewer(ctx context.Context) (string, error) {
	v, err := openEnv(ctx, durable.Config{})
	if err != nil {
		return "", err
	}
	defer v.close()
	hs, err := v.hitl(ctx)
	if err != nil {
		return "", err
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		list, _, err := hs.List(ctx, &hitl.ListParams{WorkflowID: orderID})
		if err != nil {
			return "", err
		}
		if len(list) > 0 {
			a := list[0]
			if a.Status.Closed() {
				return "already decided", nil
			}
			waiting, err := waitsForDecision(ctx, v.e, a.RunID)
			if err != nil {
				return "", err
			}
			if waiting {
				_, err := hs.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: reviewer, Approve: true, Comment: "ship it", ArgsHash: a.ArgsHash})
				switch {
				case err == nil:
					return "decided", nil
				case errors.Is(err, hitl.ErrAlreadyVoted), errors.Is(err, hitl.ErrClosed):
					return "already decided", nil
				default:
					return "", err
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", errors.New("no approval to decide")
		case <-tick.C:
		}
	}
}

// waitsForDecision reports whether the run has recorded its approval and
// started waiting for the decision: a timer started after the record
// activity completed. A reviewer deciding sooner is legitimate, but the
// run's history would then depend on the race.
func waitsForDecision(ctx context.Context, e *durable.Engine, runID string) (bool, error) {
	h, err := e.GetHistory(ctx, runID)
	if err != nil {
		return false, err
	}
	var recordSeq int64
	recorded := false
	for _, ev := range h.Events {
		d, err := ev.Details()
		if err != nil {
			return false, err
		}
		switch {
		case ev.Type == durable.EventActivityScheduled && d.Name == "hitl.record":
			recordSeq = d.Seq
		case ev.Type == durable.EventActivityCompleted && recordSeq != 0 && d.Seq == recordSeq:
			recorded = true
		case ev.Type == durable.EventTimerStarted && recorded:
			return true, nil
		}
	}
	return false, nil
}
