package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/keelhq/keel/durable/store"
)

// queueStatsSQL counts ready and leased tasks per queue ($1 is now). A
// workflow task is leased while it has a token; its available_at is then
// the lease expiry, else its ready time.
const queueStatsSQL = `
SELECT task_queue, 'workflow',
	sum(token IS NULL AND available_at <= ?1), sum(token IS NOT NULL),
	min(CASE WHEN token IS NULL AND available_at <= ?1 THEN available_at END)
FROM workflow_tasks GROUP BY task_queue
UNION ALL
SELECT task_queue, 'activity',
	sum(token IS NULL AND ready_at <= ?1), sum(token IS NOT NULL),
	min(CASE WHEN token IS NULL AND ready_at <= ?1 THEN ready_at END)
FROM activity_tasks GROUP BY task_queue
ORDER BY 1, 2`

// QueueStats returns, per task queue and kind of task, the tasks ready and
// leased at now and the oldest ready one's ready time.
func (s *Store) QueueStats(ctx context.Context, now time.Time) ([]store.QueueStat, error) {
	rows, err := s.db.QueryContext(ctx, queueStatsSQL, nanos(now))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: queue stats: %w", err)
	}
	defer rows.Close()
	var out []store.QueueStat
	for rows.Next() {
		var (
			q      store.QueueStat
			oldest sql.NullInt64
		)
		if err := rows.Scan(&q.TaskQueue, &q.Kind, &q.Ready, &q.Leased, &oldest); err != nil {
			return nil, fmt.Errorf("sqlitestore: queue stats: %w", err)
		}
		q.OldestReady = fromNullNanos(oldest)
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: queue stats: %w", err)
	}
	return out, nil
}
