package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// readyWait bounds how long WaitReady retries.
const readyWait = 30 * time.Second

// WaitReady opens a first connection on db, retrying while SQLite answers
// SQLITE_BUSY. A new connection switches the file to WAL journaling (the
// DSN's _journal_mode=WAL); while another process is doing the same to a
// new file, SQLite refuses at once, without waiting for the busy timeout,
// so two processes opening one new file at the same moment would
// otherwise fail now and then. Open calls it; call it before New on a
// handle of your own.
func WaitReady(ctx context.Context, db *sql.DB) error {
	ctx, cancel := context.WithTimeout(ctx, readyWait)
	defer cancel()
	wait := 5 * time.Millisecond
	for {
		err := db.PingContext(ctx)
		if err == nil || !isBusy(err) {
			if err != nil {
				return fmt.Errorf("sqlitestore: open: %w", err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sqlitestore: open: still busy: %w", err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}
