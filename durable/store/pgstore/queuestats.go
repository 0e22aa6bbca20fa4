package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/keelhq/keel/durable/store"
)

// queueStatsSQL counts ready and leased tasks per queue ($1 is now).
const queueStatsSQL = `
SELECT task_queue, 'workflow',
	count(*) FILTER (WHERE token IS NULL AND ready_at <= $1), count(*) FILTER (WHERE token IS NOT NULL),
	min(ready_at) FILTER (WHERE token IS NULL AND ready_at <= $1)
FROM keel_workflow_tasks GROUP BY task_queue
UNION ALL
SELECT task_queue, 'activity',
	count(*) FILTER (WHERE token IS NULL AND ready_at <= $1), count(*) FILTER (WHERE token IS NOT NULL),
	min(ready_at) FILTER (WHERE token IS NULL AND ready_at <= $1)
FROM keel_activity_tasks GROUP BY task_queue
ORDER BY 1, 2`

// QueueStats returns, per task queue and kind of task, the tasks ready and
// leased at now and the oldest ready one's ready time.
func (s *Store) QueueStats(ctx context.Context, now time.Time) ([]store.QueueStat, error) {
	rows, err := s.pool.Query(ctx, queueStatsSQL, nanos(now))
	if err != nil {
		return nil, fmt.Errorf("pgstore: queue stats: %w", err)
	}
	defer rows.Close()
	var out []store.QueueStat
	for rows.Next() {
		var (
			q      store.QueueStat
			oldest *int64
		)
		if err := rows.Scan(&q.TaskQueue, &q.Kind, &q.Ready, &q.Leased, &oldest); err != nil {
			return nil, fmt.Errorf("pgstore: queue stats: %w", err)
		}
		q.OldestReady = fromNullNanos(oldest)
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: queue stats: %w", err)
	}
	return out, nil
}
