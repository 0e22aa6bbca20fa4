package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
)

// notifyBuffer is the capacity of each channel Notifications returns.
const notifyBuffer = 256

// runnableQueuesSQL lists, as notification payloads, the task queues with
// unleased tasks, which may have become runnable while the listener was
// disconnected.
const runnableQueuesSQL = `
SELECT 'w/' || task_queue FROM keel_workflow_tasks WHERE token IS NULL
UNION
SELECT 'a/' || task_queue FROM keel_activity_tasks WHERE token IS NULL`

// Notifications returns a channel that receives "w/<queue>" whenever a
// workflow task on task queue <queue> may have become runnable, and
// "a/<queue>" whenever an activity task on it may have, in this process or
// any other that shares the database. The prefix lets a receiver wake only
// the pollers that can claim the task. The channel is closed when ctx ends
// or the store is closed.
//
// Every store method that makes a task runnable now (starting a run,
// writing to a run's inbox, requeueing a workflow task, scheduling or
// retrying an activity, a lease expiry or backoff acknowledged by
// FireTimers), unless it leases the task to its caller (the eager fast
// paths), calls pg_notify in its transaction, on a channel of the
// store's schema (keel_tasks_<schema>), so the notification is delivered
// when, and only if, the transaction commits. One dedicated connection per
// Store LISTENs on it; it is taken from the pool and no longer counts
// against it. When the connection drops, it reconnects with exponential
// backoff and then sends "w/<queue>" for every queue that has unleased
// workflow tasks and "a/<queue>" for every queue that has unleased activity
// tasks, since notifications sent in between were lost.
//
// A notification is a hint, not a claim: the task may be gone by the time
// the receiver claims. Values are dropped rather than block the listener
// when a channel's buffer is full, so a receiver must still poll now and
// then. The first call starts the listener and returns once it has tried to
// connect, so that a task written after the call is seen.
func (s *Store) Notifications(ctx context.Context) <-chan string {
	ch := make(chan string, notifyBuffer)
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		close(ch)
		return ch
	}
	s.subs[ch] = struct{}{}
	if !s.listening {
		s.listening = true
		s.wg.Add(1)
		go s.listen()
	}
	s.wg.Add(1)
	s.mu.Unlock()

	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
		case <-s.ctx.Done():
		}
		s.mu.Lock()
		delete(s.subs, ch)
		close(ch)
		s.mu.Unlock()
	}()
	select {
	case <-s.listened:
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	return ch
}

// deliver sends a notification payload to every subscriber that has room
// for it.
func (s *Store) deliver(payload string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs {
		select {
		case ch <- payload:
		default:
		}
	}
}

// listen runs the listener until the store is closed.
func (s *Store) listen() {
	defer s.wg.Done()
	first := true
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(10*time.Second),
		backoff.WithMaxElapsedTime(0),
	)
	for {
		conn, err := s.connectListener()
		if first {
			close(s.listened)
		}
		if err == nil {
			bo.Reset()
			if !first {
				s.deliverRunnable()
			}
			err = s.receive(conn)
			closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = conn.Close(closeCtx)
			cancel()
		}
		first = false
		if s.ctx.Err() != nil {
			return
		}
		wait := bo.NextBackOff()
		s.logger.Warn("pgstore: notification listener disconnected; reconnecting",
			"channel", s.channel, "error", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return
		}
	}
}

// connectListener takes a connection from the pool for good and LISTENs on
// the store's channel with it.
func (s *Store) connectListener() (*pgx.Conn, error) {
	pc, err := s.pool.Acquire(s.ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	conn := pc.Hijack()
	if _, err := conn.Exec(s.ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
		return nil, fmt.Errorf("listen: %w", err)
	}
	return conn, nil
}

// receive delivers notifications until the connection fails or the store
// is closed.
func (s *Store) receive(conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(s.ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) && s.ctx.Err() != nil {
				return nil
			}
			return err
		}
		s.deliver(n.Payload)
	}
}

// deliverRunnable sends the payloads of the queues with unleased tasks.
func (s *Store) deliverRunnable() {
	rows, err := s.pool.Query(s.ctx, runnableQueuesSQL)
	if err != nil {
		s.logger.Warn("pgstore: list runnable queues after reconnecting", "error", err)
		return
	}
	payloads, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		s.logger.Warn("pgstore: list runnable queues after reconnecting", "error", err)
		return
	}
	for _, p := range payloads {
		s.deliver(p)
	}
}
