package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// maxBatch bounds how many operations share one transaction.
const maxBatch = 64

// errClosed is returned by writes after Close.
var errClosed = errors.New("sqlitestore: store is closed")

// writeOp is the body of one Store method's write transaction, waiting for
// the writer.
type writeOp struct {
	fn    func(t *tx) error
	state atomic.Int32 // opQueued, then opTaken by the writer or opAbandoned by the caller
	done  chan error   // receives the outcome once committed or rolled back
}

const (
	opQueued int32 = iota
	opTaken
	opAbandoned
)

// write runs fn in a write transaction, committed if fn returns nil, and
// returns once the commit is durable.
//
// The transactions of concurrent callers are grouped: one goroutine, the
// writer, takes every operation queued while the previous commit was being
// written, runs each under its own savepoint (so that one operation's error
// undoes only its own changes) and commits them together, with one fsync.
// An operation alone in its batch runs without a savepoint. ctx bounds the
// wait for the writer; once the writer has taken the operation, it runs to
// completion.
func (s *Store) write(ctx context.Context, fn func(t *tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := &writeOp{fn: fn, done: make(chan error, 1)}
	if err := s.enqueue(ctx, op); err != nil {
		return err
	}
	select {
	case err := <-op.done:
		return err
	case <-ctx.Done():
		if op.state.CompareAndSwap(opQueued, opAbandoned) {
			return ctx.Err()
		}
		return <-op.done
	}
}

func (s *Store) enqueue(ctx context.Context, op *writeOp) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return errClosed
	}
	select {
	case s.ops <- op:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runWriter is the writer goroutine. It ends when Close closes s.ops,
// after running what was queued.
func (s *Store) runWriter() {
	defer close(s.writerDone)
	batch := make([]*writeOp, 0, maxBatch)
	for op := range s.ops {
		batch = append(batch[:0], op)
	drain:
		for len(batch) < maxBatch {
			select {
			case op, ok := <-s.ops:
				if !ok {
					break drain
				}
				batch = append(batch, op)
			default:
				break drain
			}
		}
		s.runBatch(batch)
	}
}

// runBatch runs the operations of batch whose callers still wait in one
// transaction and delivers each one's outcome.
func (s *Store) runBatch(batch []*writeOp) {
	live := batch[:0]
	for _, op := range batch {
		if op.state.CompareAndSwap(opQueued, opTaken) {
			live = append(live, op)
		}
	}
	if len(live) == 0 {
		return
	}
	errs := s.runTx(live)
	for i, op := range live {
		op.done <- errs[i]
	}
}

// savepointBatches is how many batches after one whose operation failed
// run under savepoints at once (see runTx).
const savepointBatches = 16

// runTx runs ops in one transaction and returns the outcome of each.
//
// Operations nearly always succeed, so a batch first runs them one after
// the other without savepoints, which cost SQLite two statements and a
// statement journal per operation. If one fails, the whole transaction is
// rolled back and the batch runs again with a savepoint per operation,
// which undoes only the failing one's changes; so do the next
// savepointBatches batches. An operation's body may therefore run twice;
// the bodies set their results afresh each time and draw nothing that a
// rollback does not undo.
func (s *Store) runTx(ops []*writeOp) []error {
	if len(ops) > 1 && s.guarded == 0 {
		if errs, ok := s.runTxOptimistic(ops); ok {
			return errs
		}
		s.guarded = savepointBatches
	} else if s.guarded > 0 {
		s.guarded--
	}
	return s.runTxGuarded(ops)
}

// runTxOptimistic runs ops in one transaction without savepoints. ok is
// false, with nothing written, when an operation failed; the caller then
// runs the batch under savepoints. A transaction that cannot begin or
// commit fails every operation, as under savepoints.
func (s *Store) runTxOptimistic(ops []*writeOp) (errs []error, ok bool) {
	errs = make([]error, len(ops))
	failAll := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	ctx := context.Background()
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return failAll(fmt.Errorf("begin: %w", err)), true
	}
	t := &tx{ctx: ctx, tx: sqlTx, adhoc: s.adhoc}
	for _, op := range ops {
		if err := runOp(op, t); err != nil {
			_ = sqlTx.Rollback()
			return nil, false
		}
	}
	if err := sqlTx.Commit(); err != nil {
		return failAll(fmt.Errorf("commit: %w", err)), true
	}
	return errs, true
}

// runTxGuarded runs ops in one transaction, each under a savepoint when
// there are several, and returns the outcome of each.
func (s *Store) runTxGuarded(ops []*writeOp) []error {
	errs := make([]error, len(ops))
	failAll := func(err error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	// The statements of a transaction never watch a context: they take
	// microseconds, and the driver would otherwise start a goroutine per
	// statement.
	ctx := context.Background()
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return failAll(fmt.Errorf("begin: %w", err))
	}
	t := &tx{ctx: ctx, tx: sqlTx, adhoc: s.adhoc}
	if len(ops) == 1 {
		if errs[0] = runOp(ops[0], t); errs[0] != nil {
			_ = sqlTx.Rollback()
			return errs
		}
	} else {
		for i, op := range ops {
			if _, err := t.exec(s.q.savepoint); err != nil {
				_ = sqlTx.Rollback()
				return failAll(fmt.Errorf("savepoint: %w", err))
			}
			if errs[i] = runOp(op, t); errs[i] != nil {
				if _, err := t.exec(s.q.rollbackToSavepoint); err != nil {
					// SQLite rolled back the whole transaction (as it does
					// on some I/O errors): every operation is lost.
					_ = sqlTx.Rollback()
					return failAll(fmt.Errorf("transaction aborted by another operation's error: %w", errs[i]))
				}
			}
			if _, err := t.exec(s.q.releaseSavepoint); err != nil {
				_ = sqlTx.Rollback()
				return failAll(fmt.Errorf("release savepoint: %w", err))
			}
		}
	}
	if err := sqlTx.Commit(); err != nil {
		return failAll(fmt.Errorf("commit: %w", err))
	}
	return errs
}

// runOp runs op's body, turning a panic into an error.
func runOp(op *writeOp, t *tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sqlitestore: panic in write transaction: %v", r)
		}
	}()
	return op.fn(t)
}

// tx is one write transaction, shared by the operations of a batch.
type tx struct {
	ctx   context.Context
	tx    *sql.Tx
	adhoc *stmtCache
}

// stmtCache holds the statements of the rarer write paths (children,
// search attributes, continue-as-new), which queries does not list, each
// prepared the first time it runs, so that SQLite parses it once rather
// than at every execution.
type stmtCache struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: make(map[string]*sql.Stmt)}
}

// get returns query prepared on the handle.
func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.m[query] = st
	return st, nil
}

// close closes every statement prepared.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, st := range c.m {
		errs = append(errs, st.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}

func (t *tx) exec(s *sql.Stmt, args ...any) (sql.Result, error) {
	return t.tx.StmtContext(t.ctx, s).ExecContext(t.ctx, args...)
}

// execN runs s and returns the number of rows it changed.
func (t *tx) execN(s *sql.Stmt, args ...any) (int64, error) {
	res, err := t.exec(s, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t *tx) query(s *sql.Stmt, args ...any) (*sql.Rows, error) {
	return t.tx.StmtContext(t.ctx, s).QueryContext(t.ctx, args...)
}

func (t *tx) queryRow(s *sql.Stmt, args ...any) *sql.Row {
	return t.tx.StmtContext(t.ctx, s).QueryRowContext(t.ctx, args...)
}

// execSQL runs query, prepared once (stmtCache), and returns the number
// of rows it changed.
func (t *tx) execSQL(query string, args ...any) (int64, error) {
	st, err := t.adhoc.get(t.ctx, query)
	if err != nil {
		return 0, err
	}
	return t.execN(st, args...)
}

// querySQL is execSQL for a query.
func (t *tx) querySQL(query string, args ...any) (*sql.Rows, error) {
	st, err := t.adhoc.get(t.ctx, query)
	if err != nil {
		return nil, err
	}
	return t.query(st, args...)
}

// queryRowSQL is querySQL for a query of one row.
func (t *tx) queryRowSQL(query string, args ...any) *sql.Row {
	st, err := t.adhoc.get(t.ctx, query)
	if err != nil {
		// The same preparation fails again, into the Row's error.
		return t.tx.QueryRowContext(t.ctx, query, args...)
	}
	return t.queryRow(st, args...)
}
