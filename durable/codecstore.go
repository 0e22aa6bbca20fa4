package durable

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keelhq/keel/durable/store"
)

// Codec transforms payloads on their way to the store and back: package
// durable/codec has compression and AES-GCM encryption with rotating keys.
// Decode must pass through data that Encode did not produce, so a store
// that held plain payloads before a codec was configured stays readable.
type Codec interface {
	Encode(data []byte) ([]byte, error)
	Decode(data []byte) ([]byte, error)
}

// codecStore runs every opaque byte field the engine writes through a
// Codec: history event data (inputs, results, failures, signal and update
// arguments, markers), inbox items, activity inputs and heartbeat details,
// run inputs, results, failures and memos, and the failure messages kept
// with a run's last failed task and with each activity attempt. Types,
// names, IDs, task queues, times and search attributes stay readable: they
// are what the store indexes and filters on, so secrets do not belong in
// search attributes.
type codecStore struct {
	store.Store
	c Codec
}

// textPrefix starts a text value in EncodeText's form.
const textPrefix = "keel-codec:"

// ErrMalformedText: a value starts like EncodeText's form but the rest is
// not base64.
var ErrMalformedText = errors.New("durable: codec: malformed encoded text")

// EncodeText encodes t with c for a text column: the form in which the
// engine stores failure messages encoded (and hitl its approvals' text
// columns), "keel-codec:" followed by the base64 of c's output. The empty
// string stays empty.
func EncodeText(c Codec, t string) (string, error) {
	if t == "" {
		return t, nil
	}
	b, err := c.Encode([]byte(t))
	if err != nil {
		return "", fmt.Errorf("durable: codec: encode: %w", err)
	}
	return textPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// IsEncodedText reports whether t starts like EncodeText's form.
func IsEncodedText(t string) bool { return strings.HasPrefix(t, textPrefix) }

// DecodeText reverses EncodeText. A value not in its form is plain text,
// written before a codec was configured, and is returned as it is; one
// with the prefix whose rest is not base64 is an error wrapping
// ErrMalformedText.
func DecodeText(c Codec, t string) (string, error) {
	rest, ok := strings.CutPrefix(t, textPrefix)
	if !ok {
		return t, nil
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrMalformedText, err)
	}
	if len(b) == 0 {
		return "", nil
	}
	out, err := c.Decode(b)
	if err != nil {
		return "", fmt.Errorf("durable: codec: decode: %w", err)
	}
	return string(out), nil
}

func (s *codecStore) enc(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return b, nil
	}
	out, err := s.c.Encode(b)
	if err != nil {
		return nil, fmt.Errorf("durable: codec: encode: %w", err)
	}
	return out, nil
}

func (s *codecStore) dec(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return b, nil
	}
	out, err := s.c.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("durable: codec: decode: %w", err)
	}
	return out, nil
}

func (s *codecStore) encText(t string) (string, error) { return EncodeText(s.c, t) }

func (s *codecStore) decText(t string) (string, error) { return DecodeText(s.c, t) }

// encAll encodes each field in place, stopping at the first error.
func (s *codecStore) encAll(fields ...*[]byte) error {
	for _, f := range fields {
		b, err := s.enc(*f)
		if err != nil {
			return err
		}
		*f = b
	}
	return nil
}

func (s *codecStore) decAll(fields ...*[]byte) error {
	for _, f := range fields {
		b, err := s.dec(*f)
		if err != nil {
			return err
		}
		*f = b
	}
	return nil
}

func (s *codecStore) encTimers(ts []store.Timer) ([]store.Timer, error) {
	if len(ts) == 0 {
		return ts, nil
	}
	out := make([]store.Timer, len(ts))
	copy(out, ts)
	for i := range out {
		if err := s.encAll(&out[i].Item.Data); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *codecStore) encCreate(p store.CreateRunParams) (store.CreateRunParams, error) {
	if err := s.encAll(&p.Input, &p.StartEvent.Data, &p.Memo); err != nil {
		return p, err
	}
	p.History = append([]store.Event(nil), p.History...)
	for i := range p.History {
		if err := s.encAll(&p.History[i].Data); err != nil {
			return p, err
		}
	}
	p.Inbox = append([]store.NewInboxItem(nil), p.Inbox...)
	for i := range p.Inbox {
		if err := s.encAll(&p.Inbox[i].Data); err != nil {
			return p, err
		}
	}
	var err error
	if p.Timers, err = s.encTimers(p.Timers); err != nil {
		return p, err
	}
	if p.FirstTask != nil {
		first, err := s.encWorkflowCommit(*p.FirstTask)
		if err != nil {
			return p, err
		}
		p.FirstTask = &first
	}
	return p, nil
}

func (s *codecStore) decRun(r *store.Run) error {
	if err := s.decAll(&r.Input, &r.Result, &r.Failure, &r.Memo); err != nil {
		return err
	}
	var err error
	r.LastTaskFailure, err = s.decText(r.LastTaskFailure)
	return err
}

func (s *codecStore) decWorkflowTask(t *store.WorkflowTask) error {
	if err := s.decRun(&t.Run); err != nil {
		return err
	}
	for i := range t.Inbox {
		if err := s.decAll(&t.Inbox[i].Data); err != nil {
			return err
		}
	}
	return nil
}

func (s *codecStore) decActivity(t *store.ActivityTask) error {
	return s.decAll(&t.Input, &t.HeartbeatDetails)
}

func (s *codecStore) encWorkflowCommit(p store.CompleteWorkflowTaskParams) (store.CompleteWorkflowTaskParams, error) {
	p.Events = append([]store.Event(nil), p.Events...)
	for i := range p.Events {
		if err := s.encAll(&p.Events[i].Data); err != nil {
			return p, err
		}
	}
	p.ScheduleActivities = append([]store.ActivityTask(nil), p.ScheduleActivities...)
	for i := range p.ScheduleActivities {
		if err := s.encAll(&p.ScheduleActivities[i].Input, &p.ScheduleActivities[i].HeartbeatDetails); err != nil {
			return p, err
		}
	}
	var err error
	if p.StartTimers, err = s.encTimers(p.StartTimers); err != nil {
		return p, err
	}
	if p.Close != nil {
		cl := *p.Close
		if err := s.encAll(&cl.Result, &cl.Failure); err != nil {
			return p, err
		}
		if cl.ParentItem != nil {
			it := *cl.ParentItem
			if err := s.encAll(&it.Data); err != nil {
				return p, err
			}
			cl.ParentItem = &it
		}
		if cl.Children, err = s.encChildrenClose(cl.Children); err != nil {
			return p, err
		}
		if cl.ContinueAsNew != nil {
			can := *cl.ContinueAsNew
			if can.Run, err = s.encCreate(can.Run); err != nil {
				return p, err
			}
			can.Inbox = append([]store.NewInboxItem(nil), can.Inbox...)
			for i := range can.Inbox {
				if err := s.encAll(&can.Inbox[i].Data); err != nil {
					return p, err
				}
			}
			cl.ContinueAsNew = &can
		}
		p.Close = &cl
	}
	p.StartChildren = append([]store.ChildStart(nil), p.StartChildren...)
	for i := range p.StartChildren {
		c := &p.StartChildren[i]
		if c.Run, err = s.encCreate(c.Run); err != nil {
			return p, err
		}
		if err := s.encAll(&c.FailedItem.Data); err != nil {
			return p, err
		}
	}
	p.External = append([]store.ExternalRequest(nil), p.External...)
	for i := range p.External {
		x := &p.External[i]
		if err := s.encAll(&x.Item.Data, &x.DoneItem.Data, &x.FailedItem.Data); err != nil {
			return p, err
		}
	}
	return p, nil
}

func (s *codecStore) encChildrenClose(cc *store.ChildrenClose) (*store.ChildrenClose, error) {
	if cc == nil {
		return nil, nil
	}
	out := *cc
	if err := s.encAll(&out.TerminateEvent.Data, &out.TerminateFailure, &out.CancelItem.Data); err != nil {
		return nil, err
	}
	return &out, nil
}

func (s *codecStore) encAttempt(a store.ActivityAttempt) (store.ActivityAttempt, error) {
	var err error
	a.Error, err = s.encText(a.Error)
	return a, err
}

func (s *codecStore) encActivityDone(p store.CompleteActivityTaskParams) (store.CompleteActivityTaskParams, error) {
	var err error
	if p.Attempt, err = s.encAttempt(p.Attempt); err != nil {
		return p, err
	}
	err = s.encAll(&p.Item.Data)
	return p, err
}

// CreateRun encodes the run's input, start event and timers.
func (s *codecStore) CreateRun(ctx context.Context, p store.CreateRunParams) (store.CreateRunResult, error) {
	p, err := s.encCreate(p)
	if err != nil {
		return store.CreateRunResult{}, err
	}
	res, err := s.Store.CreateRun(ctx, p)
	if err != nil {
		return res, err
	}
	if err := s.decRun(&res.Run); err != nil {
		return res, err
	}
	if res.Task != nil {
		err = s.decWorkflowTask(res.Task)
	}
	for i := 0; err == nil && i < len(res.Activities); i++ {
		err = s.decActivity(&res.Activities[i])
	}
	return res, err
}

// GetRun decodes the run.
func (s *codecStore) GetRun(ctx context.Context, runID string) (store.Run, error) {
	r, err := s.Store.GetRun(ctx, runID)
	if err == nil {
		err = s.decRun(&r)
	}
	return r, err
}

// GetLatestRun decodes the run.
func (s *codecStore) GetLatestRun(ctx context.Context, workflowID string) (store.Run, error) {
	r, err := s.Store.GetLatestRun(ctx, workflowID)
	if err == nil {
		err = s.decRun(&r)
	}
	return r, err
}

// ListRuns decodes the runs.
func (s *codecStore) ListRuns(ctx context.Context, p store.ListRunsParams) (store.ListRunsResult, error) {
	res, err := s.Store.ListRuns(ctx, p)
	for i := 0; err == nil && i < len(res.Runs); i++ {
		err = s.decRun(&res.Runs[i])
	}
	return res, err
}

// History decodes the events.
func (s *codecStore) History(ctx context.Context, runID string, afterID int64) ([]store.Event, error) {
	evs, err := s.Store.History(ctx, runID, afterID)
	for i := 0; err == nil && i < len(evs); i++ {
		err = s.decAll(&evs[i].Data)
	}
	return evs, err
}

// ClaimWorkflowTasks decodes the tasks' runs and inboxes.
func (s *codecStore) ClaimWorkflowTasks(ctx context.Context, p store.ClaimParams) ([]store.WorkflowTask, error) {
	ts, err := s.Store.ClaimWorkflowTasks(ctx, p)
	for i := 0; err == nil && i < len(ts); i++ {
		err = s.decWorkflowTask(&ts[i])
	}
	return ts, err
}

// CompleteWorkflowTask encodes the commit and decodes the leased
// activities.
func (s *codecStore) CompleteWorkflowTask(ctx context.Context, p store.CompleteWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	p, err := s.encWorkflowCommit(p)
	if err != nil {
		return store.CompleteWorkflowTaskResult{}, err
	}
	res, err := s.Store.CompleteWorkflowTask(ctx, p)
	for i := 0; err == nil && i < len(res.Activities); i++ {
		err = s.decActivity(&res.Activities[i])
	}
	return res, err
}

// FailWorkflowTask encodes the failure message.
func (s *codecStore) FailWorkflowTask(ctx context.Context, p store.FailWorkflowTaskParams) error {
	var err error
	if p.Failure, err = s.encText(p.Failure); err != nil {
		return err
	}
	return s.Store.FailWorkflowTask(ctx, p)
}

// ClaimActivityTasks decodes the tasks.
func (s *codecStore) ClaimActivityTasks(ctx context.Context, p store.ClaimParams) ([]store.ActivityTask, error) {
	ts, err := s.Store.ClaimActivityTasks(ctx, p)
	for i := 0; err == nil && i < len(ts); i++ {
		err = s.decActivity(&ts[i])
	}
	return ts, err
}

// CompleteActivityTask encodes the outcome and decodes the leased task.
func (s *codecStore) CompleteActivityTask(ctx context.Context, p store.CompleteActivityTaskParams) (store.CompleteActivityTaskResult, error) {
	p, err := s.encActivityDone(p)
	if err != nil {
		return store.CompleteActivityTaskResult{}, err
	}
	res, err := s.Store.CompleteActivityTask(ctx, p)
	if err == nil && res.Task != nil {
		err = s.decWorkflowTask(res.Task)
	}
	return res, err
}

// CompleteActivityWithWorkflowTask encodes both halves.
func (s *codecStore) CompleteActivityWithWorkflowTask(ctx context.Context, p store.CompleteActivityWithWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	var err error
	if p.Activity, err = s.encActivityDone(p.Activity); err != nil {
		return store.CompleteWorkflowTaskResult{}, err
	}
	if p.Workflow, err = s.encWorkflowCommit(p.Workflow); err != nil {
		return store.CompleteWorkflowTaskResult{}, err
	}
	res, err := s.Store.CompleteActivityWithWorkflowTask(ctx, p)
	for i := 0; err == nil && i < len(res.Activities); i++ {
		err = s.decActivity(&res.Activities[i])
	}
	return res, err
}

// SignalWithWorkflowTask encodes the signal and the commit, and decodes
// the leased activities.
func (s *codecStore) SignalWithWorkflowTask(ctx context.Context, p store.SignalWithWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	var err error
	if err = s.encAll(&p.Signal.Item.Data); err != nil {
		return store.CompleteWorkflowTaskResult{}, err
	}
	if p.Workflow, err = s.encWorkflowCommit(p.Workflow); err != nil {
		return store.CompleteWorkflowTaskResult{}, err
	}
	res, err := s.Store.SignalWithWorkflowTask(ctx, p)
	for i := 0; err == nil && i < len(res.Activities); i++ {
		err = s.decActivity(&res.Activities[i])
	}
	return res, err
}

// FireTimerWithWorkflowTask encodes the commit and decodes the leased
// activities.
func (s *codecStore) FireTimerWithWorkflowTask(ctx context.Context, p store.FireTimerWithWorkflowTaskParams) (store.CompleteWorkflowTaskResult, error) {
	var err error
	if p.Workflow, err = s.encWorkflowCommit(p.Workflow); err != nil {
		return store.CompleteWorkflowTaskResult{}, err
	}
	res, err := s.Store.FireTimerWithWorkflowTask(ctx, p)
	for i := 0; err == nil && i < len(res.Activities); i++ {
		err = s.decActivity(&res.Activities[i])
	}
	return res, err
}

// RetryActivityTask encodes the attempt's error.
func (s *codecStore) RetryActivityTask(ctx context.Context, p store.RetryActivityTaskParams) error {
	var err error
	if p.Attempt, err = s.encAttempt(p.Attempt); err != nil {
		return err
	}
	return s.Store.RetryActivityTask(ctx, p)
}

// HeartbeatActivityTask encodes the details.
func (s *codecStore) HeartbeatActivityTask(ctx context.Context, p store.HeartbeatParams) (store.HeartbeatResult, error) {
	if p.Details != nil {
		d, err := s.enc(p.Details)
		if err != nil {
			return store.HeartbeatResult{}, err
		}
		p.Details = d
	}
	return s.Store.HeartbeatActivityTask(ctx, p)
}

// ExpiredActivityTasks decodes the tasks.
func (s *codecStore) ExpiredActivityTasks(ctx context.Context, now time.Time, limit int) ([]store.ActivityTask, error) {
	ts, err := s.Store.ExpiredActivityTasks(ctx, now, limit)
	for i := 0; err == nil && i < len(ts); i++ {
		err = s.decActivity(&ts[i])
	}
	return ts, err
}

// ActivityAttempts decodes the attempts' errors.
func (s *codecStore) ActivityAttempts(ctx context.Context, runID string) ([]store.ActivityAttempt, error) {
	as, err := s.Store.ActivityAttempts(ctx, runID)
	for i := 0; err == nil && i < len(as); i++ {
		as[i].Error, err = s.decText(as[i].Error)
	}
	return as, err
}

// Signal encodes the item and decodes the run.
func (s *codecStore) Signal(ctx context.Context, p store.SignalParams) (store.Run, error) {
	if err := s.encAll(&p.Item.Data); err != nil {
		return store.Run{}, err
	}
	r, err := s.Store.Signal(ctx, p)
	if err == nil {
		err = s.decRun(&r)
	}
	return r, err
}

// RequestCancel encodes the item.
func (s *codecStore) RequestCancel(ctx context.Context, p store.CancelParams) error {
	if err := s.encAll(&p.Item.Data); err != nil {
		return err
	}
	return s.Store.RequestCancel(ctx, p)
}

// Terminate encodes the event, the failure and what goes to the family.
func (s *codecStore) Terminate(ctx context.Context, p store.TerminateParams) error {
	if err := s.encAll(&p.Event.Data, &p.Failure); err != nil {
		return err
	}
	if p.ParentItem != nil {
		it := *p.ParentItem
		if err := s.encAll(&it.Data); err != nil {
			return err
		}
		p.ParentItem = &it
	}
	var err error
	if p.Children, err = s.encChildrenClose(p.Children); err != nil {
		return err
	}
	return s.Store.Terminate(ctx, p)
}
