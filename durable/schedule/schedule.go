package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/keelhq/keel/durable"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrScheduleExists: Create was given the ID of a schedule that exists.
	ErrScheduleExists = errors.New("schedule: schedule already exists")
	// ErrScheduleNotFound: no schedule has that ID (or it was deleted).
	ErrScheduleNotFound = errors.New("schedule: schedule not found")
	// ErrInvalidSpec: a Spec does not parse or is inconsistent.
	ErrInvalidSpec = errors.New("schedule: invalid spec")
	// ErrInvalidAction: an Action names no workflow or its input is not
	// JSON.
	ErrInvalidAction = errors.New("schedule: invalid action")
	// ErrInvalidRequest: an empty schedule ID, or a backfill window that
	// ends before it starts.
	ErrInvalidRequest = errors.New("schedule: invalid request")
)

// Config configures a Client. The zero value is valid. Every process that
// runs schedule workers must use the same MaxActionsPerRun and
// RecentActions: they shape the schedule workflow's history.
type Config struct {
	// TaskQueue is where the schedule workflows and their activities run.
	// Optional; default "default".
	TaskQueue string
	// MaxActionsPerRun is how many actions and control signals a schedule's
	// run handles before it continues as new, which keeps its history
	// bounded. Optional; default 100.
	MaxActionsPerRun int
	// RecentActions is how many of the latest actions a schedule remembers
	// for Describe. Optional; default 10.
	RecentActions int

	// Test holds settings for tests.
	Test TestConfig

	heartbeatEvery time.Duration
}

// TestConfig holds test-only settings.
type TestConfig struct {
	// BeforeStart, if set, runs in the start activity just before it
	// starts the target workflow, and AfterStart just after; tests use them
	// to stop or kill the process at that point. An error they return fails
	// the attempt, which is retried. Optional.
	BeforeStart func(ctx context.Context, workflowID string) error
	AfterStart  func(ctx context.Context, workflowID string) error
}

// WithDefaults returns a copy of c with defaults filled in.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.TaskQueue == "" {
		out.TaskQueue = "default"
	}
	if out.MaxActionsPerRun <= 0 {
		out.MaxActionsPerRun = 100
	}
	if out.RecentActions <= 0 {
		out.RecentActions = 10
	}
	if out.heartbeatEvery <= 0 {
		out.heartbeatEvery = 20 * time.Second
	}
	return &out
}

// Client creates and controls schedules on an engine. Create it with New
// before the engine starts: New registers the schedule workflow and its
// activities, which every process running schedule workers (and every
// process calling Describe) needs.
type Client struct {
	e        *durable.Engine
	cfg      *Config
	wf       *durable.Workflow[state, struct{}]
	startAct *durable.Activity[startInput, startOutput]
	waitAct  *durable.Activity[string, struct{}]
}

// New registers the schedule workflow and its activities on e and returns
// a client for it. cfg may be nil. It fails if e already has them
// registered (New was called twice on one engine).
func New(e *durable.Engine, cfg *Config) (*Client, error) {
	if e == nil {
		return nil, errors.New("schedule: New: nil engine")
	}
	c := &Client{e: e, cfg: cfg.WithDefaults()}
	c.wf = durable.NewWorkflow(WorkflowName, c.run)
	c.startAct = durable.NewActivity(startActivityName, c.startAction, &durable.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         durable.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
	c.waitAct = durable.NewActivity(waitActivityName, c.waitClosed, &durable.ActivityOptions{
		StartToCloseTimeout: 24 * time.Hour,
		HeartbeatTimeout:    2 * time.Minute,
		RetryPolicy:         durable.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
	if err := e.Register(c.wf, c.startAct, c.waitAct); err != nil {
		return nil, fmt.Errorf("schedule: register: %w", err)
	}
	return c, nil
}

// Create starts a schedule: a workflow with ID WorkflowID(id) that takes
// action each time spec fires, from now on. It fails with
// ErrScheduleExists if a schedule with that ID exists, and with
// ErrInvalidSpec, ErrInvalidAction or ErrInvalidRequest for bad arguments.
func (c *Client) Create(ctx context.Context, id string, spec Spec, action Action) error {
	if err := validID(id); err != nil {
		return fmt.Errorf("schedule: create: %w", err)
	}
	spec = spec.withDefaults()
	if _, err := compile(id, spec); err != nil {
		return fmt.Errorf("schedule: create %s: %w", id, err)
	}
	if err := validAction(action); err != nil {
		return fmt.Errorf("schedule: create %s: %w", id, err)
	}
	in, err := json.Marshal(state{ID: id, Spec: spec, Action: action})
	if err != nil {
		return fmt.Errorf("schedule: create %s: %w", id, err)
	}
	info, err := c.e.StartWorkflow(ctx, WorkflowName, in, &durable.StartOptions{
		ID:            WorkflowID(id),
		TaskQueue:     c.cfg.TaskQueue,
		IDReusePolicy: durable.AllowDuplicate,
	})
	if err != nil {
		return fmt.Errorf("schedule: create %s: %w", id, err)
	}
	if !info.Created {
		return fmt.Errorf("schedule: create %s: %w", id, ErrScheduleExists)
	}
	return nil
}

// Pause stops a schedule from taking scheduled actions; fire times that
// pass while it is paused are skipped. Trigger and Backfill still act.
// Like every control operation it is a signal: it takes effect when the
// schedule's workflow handles it, normally within milliseconds.
func (c *Client) Pause(ctx context.Context, id string) error {
	return c.signal(ctx, id, controlMsg{Op: opPause})
}

// Unpause resumes a paused schedule from its next fire time.
func (c *Client) Unpause(ctx context.Context, id string) error {
	return c.signal(ctx, id, controlMsg{Op: opUnpause})
}

// Trigger takes an action now, with the workflow time at which the
// schedule handles the request as its nominal time (so two triggers within
// one second name the same workflow ID and start one run). The overlap
// policy applies; a paused schedule acts too.
func (c *Client) Trigger(ctx context.Context, id string) error {
	return c.signal(ctx, id, controlMsg{Op: opTrigger})
}

// Backfill takes the actions the spec would have taken at its fire times in
// [start, end), oldest first, whether or not the schedule is paused and
// regardless of the catch-up window. Backfilled actions ignore the overlap
// policy (they all start); a fire time whose workflow ID already exists is
// not started again.
func (c *Client) Backfill(ctx context.Context, id string, start, end time.Time) error {
	if start.IsZero() || end.IsZero() || !end.After(start) {
		return fmt.Errorf("schedule: backfill %s: %w: window [%s, %s) is empty", id, ErrInvalidRequest, start, end)
	}
	return c.signal(ctx, id, controlMsg{Op: opBackfill, Start: start, End: end})
}

// Update replaces a schedule's spec. Fire times already handled are not
// taken again; the new spec applies from the schedule's current position.
func (c *Client) Update(ctx context.Context, id string, spec Spec) error {
	spec = spec.withDefaults()
	if _, err := compile(id, spec); err != nil {
		return fmt.Errorf("schedule: update %s: %w", id, err)
	}
	return c.signal(ctx, id, controlMsg{Op: opUpdate, Spec: &spec})
}

// Delete stops a schedule at once (its workflow is terminated). Runs it
// started are not touched. The ID can then be used by Create again.
func (c *Client) Delete(ctx context.Context, id string) error {
	err := c.e.Terminate(ctx, WorkflowID(id), "schedule deleted")
	if errors.Is(err, durable.ErrRunNotFound) || errors.Is(err, durable.ErrRunClosed) {
		return fmt.Errorf("schedule: delete %s: %w", id, ErrScheduleNotFound)
	}
	if err != nil {
		return fmt.Errorf("schedule: delete %s: %w", id, err)
	}
	return nil
}

// Description is a schedule's state, as of its workflow's last step.
type Description struct {
	ID     string `json:"id"`
	Spec   Spec   `json:"spec"`
	Action Action `json:"action"`
	Paused bool   `json:"paused"`
	// NextActionTimes are the next nominal fire times (without jitter),
	// whether or not the schedule is paused.
	NextActionTimes []time.Time `json:"next_action_times"`
	// RecentActions are the latest actions, oldest first, with the live
	// status of the runs they started.
	RecentActions []ActionResult `json:"recent_actions"`
	// Running lists the workflow IDs of recent actions whose runs are
	// running.
	Running []string `json:"running"`
	// Buffered is true while an action waits for the running run to close.
	Buffered bool `json:"buffered"`
	// PendingBackfills counts backfill requests not yet finished.
	PendingBackfills int `json:"pending_backfills"`
	// Lifetime totals: actions started, actions dropped by the overlap
	// policy, fire times skipped by the catch-up window, failed starts.
	Actions        int64 `json:"actions"`
	OverlapSkipped int64 `json:"overlap_skipped"`
	CatchupMissed  int64 `json:"catchup_missed"`
	Failed         int64 `json:"failed"`
	// CreatedAt is when the schedule was created.
	CreatedAt time.Time `json:"created_at"`
	// WorkflowID and RunID are the schedule workflow's current run;
	// Generation counts its continue-as-new rollovers.
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	Generation int    `json:"generation"`
}

// Describe returns a schedule's state, read with a query on its workflow,
// and the live status of the runs its recent actions started.
func (c *Client) Describe(ctx context.Context, id string) (Description, error) {
	wid := WorkflowID(id)
	info, err := c.e.Describe(ctx, wid)
	if errors.Is(err, durable.ErrRunNotFound) || (err == nil && info.Status != durable.StatusRunning) {
		return Description{}, fmt.Errorf("schedule: describe %s: %w", id, ErrScheduleNotFound)
	}
	if err != nil {
		return Description{}, fmt.Errorf("schedule: describe %s: %w", id, err)
	}
	raw, err := c.e.Query(ctx, wid, describeQueryName, nil)
	if err != nil {
		return Description{}, fmt.Errorf("schedule: describe %s: %w", id, err)
	}
	var d Description
	if err := json.Unmarshal(raw, &d); err != nil {
		return Description{}, fmt.Errorf("schedule: describe %s: decode: %w", id, err)
	}
	d.WorkflowID, d.RunID = wid, info.RunID
	d.Running = []string{}
	for i, a := range d.RecentActions {
		if a.RunID == "" {
			continue
		}
		run, err := c.e.DescribeRun(ctx, a.RunID)
		if errors.Is(err, durable.ErrRunNotFound) {
			continue // deleted by retention
		}
		if err != nil {
			return Description{}, fmt.Errorf("schedule: describe %s: run %s: %w", id, a.RunID, err)
		}
		d.RecentActions[i].Status = run.Status
		if run.Status == durable.StatusRunning {
			d.Running = append(d.Running, a.WorkflowID)
		}
	}
	return d, nil
}

// Entry is one schedule in List.
type Entry struct {
	ID         string `json:"id"`
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	// StartedAt is when the schedule's current run started (it changes
	// when the run continues as new).
	StartedAt time.Time `json:"started_at"`
}

// List returns every schedule, by ID.
func (c *Client) List(ctx context.Context) ([]Entry, error) {
	var out []Entry
	cursor := ""
	for {
		runs, next, err := c.e.ListRuns(ctx, &durable.ListOptions{
			WorkflowType: WorkflowName, Status: durable.StatusRunning, Cursor: cursor, Limit: 500,
		})
		if err != nil {
			return nil, fmt.Errorf("schedule: list: %w", err)
		}
		for _, r := range runs {
			out = append(out, Entry{
				ID:         strings.TrimPrefix(r.WorkflowID, workflowIDPrefix),
				WorkflowID: r.WorkflowID,
				RunID:      r.RunID,
				StartedAt:  r.CreatedAt,
			})
		}
		if next == "" {
			break
		}
		cursor = next
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (c *Client) signal(ctx context.Context, id string, msg controlMsg) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("schedule: %s %s: %w", msg.Op, id, err)
	}
	err = c.e.Signal(ctx, WorkflowID(id), controlSignalName, b, nil)
	if errors.Is(err, durable.ErrRunNotFound) || errors.Is(err, durable.ErrRunClosed) {
		return fmt.Errorf("schedule: %s %s: %w", msg.Op, id, ErrScheduleNotFound)
	}
	if err != nil {
		return fmt.Errorf("schedule: %s %s: %w", msg.Op, id, err)
	}
	return nil
}

func validID(id string) error {
	if strings.TrimSpace(id) == "" {
		return fmt.Errorf("%w: empty schedule ID", ErrInvalidRequest)
	}
	return nil
}

func validAction(a Action) error {
	if a.Workflow == "" {
		return fmt.Errorf("%w: no workflow name", ErrInvalidAction)
	}
	if len(a.Input) > 0 && !json.Valid(a.Input) {
		return fmt.Errorf("%w: input is not valid JSON", ErrInvalidAction)
	}
	return nil
}
