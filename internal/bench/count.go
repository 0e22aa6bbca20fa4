package bench

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"modernc.org/sqlite"

	"github.com/keelhq/keel/durable/store"
)

// Counts are what a workload sent the database, counted as it happened.
type Counts struct {
	// Tx is the number of store calls that wrote: each is one atomic
	// transaction of the store's API (a claim that found nothing is not
	// counted).
	Tx int64
	// Commits is the number of database commits (SQLite only: concurrent
	// store transactions share one commit through the group-commit
	// writer; on PostgreSQL every write is its own commit).
	Commits int64
	// RoundTrips is the number of calls into the database: on PostgreSQL
	// every query and every pipelined batch (one network round trip each);
	// on SQLite every statement executed, BEGIN and COMMIT.
	RoundTrips int64
	// Statements is the number of SQL statements the database ran: on
	// PostgreSQL every query, alone or in a batch (BEGIN and COMMIT
	// included); on SQLite every statement executed, BEGIN, COMMIT and
	// ROLLBACK not included.
	Statements int64
}

// Sub returns c - o.
func (c Counts) Sub(o Counts) Counts {
	return Counts{Tx: c.Tx - o.Tx, Commits: c.Commits - o.Commits, RoundTrips: c.RoundTrips - o.RoundTrips,
		Statements: c.Statements - o.Statements}
}

// Counter accumulates Counts; it is safe for concurrent use.
type Counter struct {
	tx, commits, roundTrips, statements atomic.Int64
}

// Snapshot returns the counts so far.
func (c *Counter) Snapshot() Counts {
	return Counts{Tx: c.tx.Load(), Commits: c.commits.Load(), RoundTrips: c.roundTrips.Load(),
		Statements: c.statements.Load()}
}

// CountingStore wraps a store.Store and counts the calls that write, each
// one transaction. It passes on the optional interfaces the engine looks
// for (LISTEN/NOTIFY wake-ups, retention).
type CountingStore struct {
	store.Store
	c *Counter
}

// NewCountingStore wraps st; its writes are added to c.
func NewCountingStore(st store.Store, c *Counter) *CountingStore {
	return &CountingStore{Store: st, c: c}
}

func (s *CountingStore) count() { s.c.tx.Add(1) }

// Notifications passes on the wrapped store's cross-process wake-ups, if
// it has them; otherwise the channel is closed at once.
func (s *CountingStore) Notifications(ctx context.Context) <-chan string {
	if n, ok := s.Store.(interface {
		Notifications(context.Context) <-chan string
	}); ok {
		return n.Notifications(ctx)
	}
	ch := make(chan string)
	close(ch)
	return ch
}

// CreateRun counts one transaction.
func (s *CountingStore) CreateRun(ctx context.Context, p store.CreateRunParams) (store.CreateRunResult, error) {
	s.count()
	return s.Store.CreateRun(ctx, p)
}

// ClaimWorkflowTasks counts one transaction when it claimed something.
func (s *CountingStore) ClaimWorkflowTasks(ctx context.Context, p store.ClaimParams) ([]store.WorkflowTask, error) {
	ts, err := s.Store.ClaimWorkflowTasks(ctx, p)
	if len(ts) > 0 {
		s.count()
	}
	return ts, err
}

// CompleteWorkflowTask counts one transaction.
func (s *CountingStore) CompleteWorkflowTask(ctx context.Context, p store.CompleteWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	s.count()
	return s.Store.CompleteWorkflowTask(ctx, p)
}

// FailWorkflowTask counts one transaction.
func (s *CountingStore) FailWorkflowTask(ctx context.Context, p store.FailWorkflowTaskParams) error {
	s.count()
	return s.Store.FailWorkflowTask(ctx, p)
}

// ClaimActivityTasks counts one transaction when it claimed something.
func (s *CountingStore) ClaimActivityTasks(ctx context.Context, p store.ClaimParams) ([]store.ActivityTask, error) {
	ts, err := s.Store.ClaimActivityTasks(ctx, p)
	if len(ts) > 0 {
		s.count()
	}
	return ts, err
}

// CompleteActivityTask counts one transaction.
func (s *CountingStore) CompleteActivityTask(ctx context.Context, p store.CompleteActivityTaskParams) (store.CompleteActivityTaskResult, error) {
	s.count()
	return s.Store.CompleteActivityTask(ctx, p)
}

// CompleteActivityWithWorkflowTask counts one transaction.
func (s *CountingStore) CompleteActivityWithWorkflowTask(ctx context.Context, p store.CompleteActivityWithWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	s.count()
	return s.Store.CompleteActivityWithWorkflowTask(ctx, p)
}

// SignalWithWorkflowTask counts one transaction.
func (s *CountingStore) SignalWithWorkflowTask(ctx context.Context, p store.SignalWithWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	s.count()
	return s.Store.SignalWithWorkflowTask(ctx, p)
}

// FireTimerWithWorkflowTask counts one transaction.
func (s *CountingStore) FireTimerWithWorkflowTask(ctx context.Context, p store.FireTimerWithWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	s.count()
	return s.Store.FireTimerWithWorkflowTask(ctx, p)
}

// RetryActivityTask counts one transaction.
func (s *CountingStore) RetryActivityTask(ctx context.Context, p store.RetryActivityTaskParams) error {
	s.count()
	return s.Store.RetryActivityTask(ctx, p)
}

// HeartbeatActivityTask counts one transaction.
func (s *CountingStore) HeartbeatActivityTask(ctx context.Context, p store.HeartbeatParams) (store.HeartbeatResult, error) {
	s.count()
	return s.Store.HeartbeatActivityTask(ctx, p)
}

// FireTimers counts one transaction when it fired something.
func (s *CountingStore) FireTimers(ctx context.Context, now time.Time, limit int) ([]string, error) {
	qs, err := s.Store.FireTimers(ctx, now, limit)
	if len(qs) > 0 {
		s.count()
	}
	return qs, err
}

// Signal counts one transaction.
func (s *CountingStore) Signal(ctx context.Context, p store.SignalParams) (store.Run, error) {
	s.count()
	return s.Store.Signal(ctx, p)
}

// RequestCancel counts one transaction.
func (s *CountingStore) RequestCancel(ctx context.Context, p store.CancelParams) error {
	s.count()
	return s.Store.RequestCancel(ctx, p)
}

// Terminate counts one transaction.
func (s *CountingStore) Terminate(ctx context.Context, p store.TerminateParams) error {
	s.count()
	return s.Store.Terminate(ctx, p)
}

// pgTracer is a pgx tracer that counts round trips: every query (BEGIN
// and COMMIT included) and every pipelined batch; and statements: every
// query, alone or in a batch.
type pgTracer struct{ c *Counter }

func (t pgTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	t.c.roundTrips.Add(1)
	t.c.statements.Add(1)
	return ctx
}

func (pgTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (t pgTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	t.c.roundTrips.Add(1)
	return ctx
}

func (t pgTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	t.c.statements.Add(1)
}

func (pgTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// openCountingSQLite opens dsn with modernc.org/sqlite through a
// connector whose connections add their statements, BEGINs and COMMITs to
// c.
func openCountingSQLite(dsn string, c *Counter) *sql.DB {
	return sql.OpenDB(countingConnector{dsn: dsn, d: countingDriver{&sqlite.Driver{}}, c: c})
}

type countingConnector struct {
	dsn string
	d   countingDriver
	c   *Counter
}

func (cc countingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := cc.d.d.Open(cc.dsn)
	if err != nil {
		return nil, err
	}
	return &countingConn{conn: conn, c: cc.c}, nil
}

func (cc countingConnector) Driver() driver.Driver { return cc.d }

type countingDriver struct{ d *sqlite.Driver }

// Open opens an uncounted connection (database/sql uses the connector).
func (d countingDriver) Open(name string) (driver.Conn, error) {
	conn, err := d.d.Open(name)
	if err != nil {
		return nil, err
	}
	return &countingConn{conn: conn, c: &Counter{}}, nil
}

// countingConn forwards to the modernc connection, which implements the
// context-aware driver interfaces asserted here.
type countingConn struct {
	conn driver.Conn
	c    *Counter
}

var (
	_ driver.ConnBeginTx        = (*countingConn)(nil)
	_ driver.ConnPrepareContext = (*countingConn)(nil)
	_ driver.ExecerContext      = (*countingConn)(nil)
	_ driver.QueryerContext     = (*countingConn)(nil)
	_ driver.SessionResetter    = (*countingConn)(nil)
	_ driver.Validator          = (*countingConn)(nil)
	_ driver.Pinger             = (*countingConn)(nil)
)

func (c *countingConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return &countingStmt{Stmt: st, c: c.c}, nil
}

func (c *countingConn) Close() error { return c.conn.Close() }

func (c *countingConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.c.roundTrips.Add(1)
	tx, err := c.conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &countingTx{Tx: tx, c: c.c}, nil
}

func (c *countingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	c.c.roundTrips.Add(1)
	c.c.statements.Add(1)
	return c.conn.(driver.ExecerContext).ExecContext(ctx, query, args)
}

func (c *countingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	c.c.roundTrips.Add(1)
	c.c.statements.Add(1)
	return c.conn.(driver.QueryerContext).QueryContext(ctx, query, args)
}

func (c *countingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *countingConn) IsValid() bool {
	if v, ok := c.conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *countingConn) Ping(ctx context.Context) error {
	if p, ok := c.conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

type countingTx struct {
	driver.Tx
	c *Counter
}

func (t *countingTx) Commit() error {
	t.c.roundTrips.Add(1)
	t.c.commits.Add(1)
	return t.Tx.Commit()
}

func (t *countingTx) Rollback() error {
	t.c.roundTrips.Add(1)
	return t.Tx.Rollback()
}

type countingStmt struct {
	driver.Stmt
	c *Counter
}

var (
	_ driver.StmtExecContext  = (*countingStmt)(nil)
	_ driver.StmtQueryContext = (*countingStmt)(nil)
)

func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.c.roundTrips.Add(1)
	s.c.statements.Add(1)
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.c.roundTrips.Add(1)
	s.c.statements.Add(1)
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}
