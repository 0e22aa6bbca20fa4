package schedule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/schedule"
	"github.com/keelhq/keel/durable/store/sqlitestore"
)

// A schedule that starts a report workflow every morning, backfilled for
// three days it missed.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keel-schedule-")
	defer os.RemoveAll(dir)

	report := durable.NewWorkflow("daily-report", func(ctx durable.Context, region string) (string, error) {
		return "report for " + region, nil
	})

	st, _ := sqlitestore.Open(filepath.Join(dir, "keel.db"), nil)
	defer st.Close()
	e, _ := durable.New(st, nil)
	schedules, _ := schedule.New(e, nil) // registers the schedule workflow
	e.MustRegister(report)
	e.NewWorker(nil)
	_ = e.Start(ctx)
	defer e.Stop(ctx)

	err := schedules.Create(ctx, "emea-report",
		schedule.Spec{Cron: []string{"0 6 * * *"}},
		schedule.Action{Workflow: "daily-report", Input: json.RawMessage(`"emea"`)})
	fmt.Println("created:", err)

	march1 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	_ = schedules.Backfill(ctx, "emea-report", march1, march1.AddDate(0, 0, 3))

	d := waitForActions(ctx, schedules, "emea-report", 3)
	for _, a := range d.RecentActions {
		fmt.Println(a.Kind, a.WorkflowID, a.Outcome)
	}
	// Output:
	// created: <nil>
	// backfill emea-report/2026-03-01T06:00:00Z started
	// backfill emea-report/2026-03-02T06:00:00Z started
	// backfill emea-report/2026-03-03T06:00:00Z started
}

// waitForActions polls Describe until the schedule has started n actions.
func waitForActions(ctx context.Context, c *schedule.Client, id string, n int64) schedule.Description {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if d, err := c.Describe(ctx, id); err == nil && d.Actions >= n {
			return d
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return schedule.Description{}
		}
	}
}

func ExampleActionWorkflowID() {
	fire := time.Date(2026, 1, 5, 2, 0, 0, 0, time.UTC)
	fmt.Println(schedule.ActionWorkflowID("nightly-billing", fire))
	fmt.Println(schedule.WorkflowID("nightly-billing"))
	// Output:
	// nightly-billing/2026-01-05T02:00:00Z
	// schedule/nightly-billing
}
