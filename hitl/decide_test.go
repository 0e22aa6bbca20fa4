package hitl_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/internal/hitltest"
)

// Each way a decision can be wrong is refused with its own error, and
// changes nothing.
func TestDecisionRefusals(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, db opener) {
		b := setup(t, setupOpts{db: db})
		ctx := testContext(t)
		req := refundRequest()
		req.Group, req.Requester, req.Required = "finance", "fred", 2 // fred asks, is in finance
		h, err := askWorkflow.Start(ctx, b.e, req, nil)
		require.NoError(t, err)
		a := b.pending(t, h.RunID(), 1)
		ok := hitl.DecideInput{Reviewer: "fiona", Approve: true, ArgsHash: a.ArgsHash}

		refusals := []struct {
			name string
			id   string
			in   hitl.DecideInput
			want error
		}{
			{"unknown approval", "no-such-id", ok, hitl.ErrNotFound},
			{"non-member", a.ID, hitl.DecideInput{Reviewer: "lena", Approve: true, ArgsHash: a.ArgsHash}, hitl.ErrNotInGroup},
			{"self-approval", a.ID, hitl.DecideInput{Reviewer: "fred", Approve: true, ArgsHash: a.ArgsHash}, hitl.ErrSelfApproval},
			{"other arguments", a.ID, hitl.DecideInput{Reviewer: "fiona", Approve: true, ArgsHash: mustHash(t, "refund", `{"order":"A-17","amount":7500}`)}, hitl.ErrArgsMismatch},
			{"other action", a.ID, hitl.DecideInput{Reviewer: "fiona", Approve: true, ArgsHash: mustHash(t, "charge", `{"order":"A-17","amount":750}`)}, hitl.ErrArgsMismatch},
			{"no hash", a.ID, hitl.DecideInput{Reviewer: "fiona", Approve: true}, hitl.ErrInvalidInput},
			{"no reviewer", a.ID, hitl.DecideInput{Approve: true, ArgsHash: a.ArgsHash}, hitl.ErrInvalidInput},
		}
		for _, r := range refusals {
			_, err := b.svc.Decide(ctx, r.id, r.in)
			require.ErrorIs(t, err, r.want, r.name)
		}
		// Malformed input names its field.
		fields := []struct {
			in    hitl.DecideInput
			field string
		}{
			{hitl.DecideInput{Approve: true, ArgsHash: a.ArgsHash}, "Reviewer"},
			{hitl.DecideInput{Reviewer: "fiona", Approve: true}, "ArgsHash"},
			{hitl.DecideInput{Reviewer: "fiona", Approve: true, ArgsHash: a.ArgsHash, Comment: strings.Repeat("c", hitl.MaxCommentBytes+1)}, "Comment"},
			{hitl.DecideInput{Reviewer: "fiona", Approve: true, ArgsHash: a.ArgsHash, EditedArgs: json.RawMessage(`{"amount":`)}, "EditedArgs"},
			{hitl.DecideInput{Reviewer: "fiona", Approve: true, ArgsHash: a.ArgsHash, EditedArgs: json.RawMessage(strings.Repeat(" ", hitl.MaxEditedArgsBytes) + "1")}, "EditedArgs"},
		}
		for _, f := range fields {
			_, err := b.svc.Decide(ctx, a.ID, f.in)
			require.ErrorIs(t, err, hitl.ErrInvalidInput, f.field)
			fe, isField := errors.AsType[*hitl.FieldError](err)
			require.True(t, isField, "%s: %v", f.field, err)
			require.Equal(t, f.field, fe.Field)
			require.NotEmpty(t, fe.Detail)
		}
		_, _, err = b.svc.List(ctx, &hitl.ListParams{Cursor: "not-a-cursor"})
		fe, isField := errors.AsType[*hitl.FieldError](err)
		require.True(t, isField, "%v", err)
		require.Equal(t, "Cursor", fe.Field)
		got, err := b.svc.Get(ctx, a.ID)
		require.NoError(t, err)
		require.Empty(t, got.Votes, "refused decisions wrote nothing")
		_, err = b.svc.Get(ctx, "no-such-id")
		require.ErrorIs(t, err, hitl.ErrNotFound)

		require.NoError(t, b.svc.CanDecide(got, "fiona"))
		_, err = b.svc.Decide(ctx, a.ID, ok)
		require.NoError(t, err)
		_, err = b.svc.Decide(ctx, a.ID, ok)
		require.ErrorIs(t, err, hitl.ErrAlreadyVoted)
		got, err = b.svc.Get(ctx, a.ID)
		require.NoError(t, err)
		require.ErrorIs(t, b.svc.CanDecide(got, "fiona"), hitl.ErrAlreadyVoted)
		require.ErrorIs(t, b.svc.CanDecide(got, "fred"), hitl.ErrSelfApproval)

		_, err = b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "farid", Approve: true, ArgsHash: a.ArgsHash})
		require.NoError(t, err)
		_, err = h.Result(ctx)
		require.NoError(t, err)
		// After the close: refused as closed, for every member who has
		// not voted yet (here none is left but the requester), and as
		// already voted for those who did.
		_, err = b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "farid", Approve: false, ArgsHash: a.ArgsHash})
		require.ErrorIs(t, err, hitl.ErrAlreadyVoted)
		got, err = b.svc.Get(ctx, a.ID)
		require.NoError(t, err)
		require.Len(t, got.Votes, 2)
	})
}

// Review links: signed, single use, expiring; forged, expired, replayed
// and truncated tokens are each refused with their own error.
func TestReviewLinks(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, db opener) {
		b := setup(t, setupOpts{db: db, fakeClock: true})
		ctx := testContext(t)
		h, err := askWorkflow.Start(ctx, b.e, refundRequest(), nil)
		require.NoError(t, err)
		a := b.pending(t, h.RunID(), 1)

		token := hitltest.SignLink(t, b.svc, a.ID, "lena", time.Hour)
		claims, err := b.svc.VerifyLink(token)
		require.NoError(t, err)
		require.Equal(t, a.ID, claims.ApprovalID)
		require.Equal(t, "lena", claims.Reviewer)
		require.Equal(t, b.clock.Now().Add(time.Hour), claims.ExpiresAt)
		_, err = b.svc.CheckLink(ctx, token)
		require.NoError(t, err)
		require.NotEqual(t, token, hitltest.SignLink(t, b.svc, a.ID, "lena", time.Hour), "each token has its own nonce")

		// Forged: signed with another key, or with a changed claim.
		other := setup(t, setupOpts{fakeClock: true, cfg: &hitl.Config{LinkSecret: []byte("another-secret-0123456789abcdef-xyz")}})
		_, err = b.svc.VerifyLink(hitltest.SignLink(t, other.svc, a.ID, "lena", time.Hour))
		require.ErrorIs(t, err, hitl.ErrLinkForged)
		raw, err := base64.RawURLEncoding.DecodeString(token)
		require.NoError(t, err)
		raw[1+8+16+1] ^= 0x01 // a byte of the approval ID
		_, err = b.svc.VerifyLink(base64.RawURLEncoding.EncodeToString(raw))
		require.ErrorIs(t, err, hitl.ErrLinkForged)

		// Truncated at every length, or not a token at all.
		for n := range len(token) {
			_, err := b.svc.VerifyLink(token[:n])
			require.ErrorIs(t, err, hitl.ErrLinkMalformed, "truncated to %d", n)
		}
		_, err = b.svc.VerifyLink("not a token!")
		require.ErrorIs(t, err, hitl.ErrLinkMalformed)

		// Used for another approval or reviewer.
		_, err = b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "lars", Approve: true, ArgsHash: a.ArgsHash, LinkToken: token})
		require.ErrorIs(t, err, hitl.ErrLinkMismatch)
		_, err = b.svc.Decide(ctx, "other-approval", hitl.DecideInput{Approve: true, ArgsHash: a.ArgsHash, LinkToken: token})
		require.ErrorIs(t, err, hitl.ErrLinkMismatch)

		// Expired.
		short := hitltest.SignLink(t, b.svc, a.ID, "lars", time.Minute)
		b.clock.Advance(2 * time.Minute)
		_, err = b.svc.VerifyLink(short)
		require.ErrorIs(t, err, hitl.ErrLinkExpired)
		_, err = b.svc.Decide(ctx, a.ID, hitl.DecideInput{Approve: true, ArgsHash: a.ArgsHash, LinkToken: short})
		require.ErrorIs(t, err, hitl.ErrLinkExpired)
		require.ErrorIs(t, err, hitl.ErrInvalidLink)

		// Used once; replayed: refused.
		updated, err := b.svc.Decide(ctx, a.ID, hitl.DecideInput{Approve: true, Comment: "via email", ArgsHash: a.ArgsHash, LinkToken: token})
		require.NoError(t, err)
		require.Equal(t, "lena", updated.Votes[0].Reviewer)
		require.True(t, updated.Votes[0].ViaLink)
		_, err = b.svc.Decide(ctx, a.ID, hitl.DecideInput{Approve: true, ArgsHash: a.ArgsHash, LinkToken: token})
		require.ErrorIs(t, err, hitl.ErrLinkUsed)
		_, err = b.svc.CheckLink(ctx, token)
		require.ErrorIs(t, err, hitl.ErrLinkUsed)

		d, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"lena"}, d.DecidedBy)
	})
}

// 100 decisions at once on one approval, from goroutines against the real
// database: one vote per reviewer at most, and the approval closes once.
func TestConcurrentDecisions(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, db opener) {
		b := setup(t, setupOpts{db: db})
		ctx := testContext(t)
		members := testGroups()["ops"]

		decideAll := func(a hitl.Approval, approve func(i int) bool) (applied []hitl.DecideInput) {
			var (
				mu    sync.Mutex
				wg    sync.WaitGroup
				start = make(chan struct{})
			)
			for i := range 100 {
				in := hitl.DecideInput{Reviewer: members[i%len(members)], Approve: approve(i), Comment: fmt.Sprint(i), ArgsHash: a.ArgsHash}
				wg.Go(func() {
					<-start
					_, err := b.svc.Decide(ctx, a.ID, in)
					if err == nil {
						mu.Lock()
						applied = append(applied, in)
						mu.Unlock()
						return
					}
					if !errors.Is(err, hitl.ErrClosed) && !errors.Is(err, hitl.ErrAlreadyVoted) {
						t.Errorf("decision %d: %v", i, err)
					}
				})
			}
			close(start)
			wg.Wait()
			return applied
		}

		// One approver needed, approvals and rejections mixed: exactly
		// one decision applies.
		req := refundRequest()
		req.Group = "ops"
		h, err := askWorkflow.Start(ctx, b.e, req, nil)
		require.NoError(t, err)
		a := b.pending(t, h.RunID(), 1)
		applied := decideAll(a, func(i int) bool { return i%3 != 0 })
		require.Len(t, applied, 1)
		require.Equal(t, 1, b.countRows(t, `SELECT count(*) FROM hitl_votes WHERE approval_id = ?`, a.ID))
		d, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{applied[0].Reviewer}, d.DecidedBy)
		require.Equal(t, applied[0].Approve, d.Approved())
		require.Len(t, b.signals(t, h.RunID()), 1)

		// Two of four: exactly two reviewers' votes apply.
		req.Required = 2
		h2, err := askWorkflow.Start(ctx, b.e, req, nil)
		require.NoError(t, err)
		a2 := b.pending(t, h2.RunID(), 1)
		applied = decideAll(a2, func(int) bool { return true })
		require.Len(t, applied, 2)
		require.NotEqual(t, applied[0].Reviewer, applied[1].Reviewer)
		d2, err := h2.Result(ctx)
		require.NoError(t, err)
		require.True(t, d2.Approved())
		require.ElementsMatch(t, []string{applied[0].Reviewer, applied[1].Reviewer}, d2.DecidedBy)
		require.Len(t, b.signals(t, h2.RunID()), 2)
	})
}

// A decision whose signal fails after the commit still reaches the
// workflow: Run delivers it, and a repeated signal is applied once.
func TestRedelivery(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, db opener) {
		var down atomic.Bool
		var e *durable.Engine
		b := setup(t, setupOpts{db: db, cfg: &hitl.Config{RedeliverInterval: 20 * time.Millisecond}, before: func(svc *hitl.Service) {
			hitl.SetSignal(svc, func(ctx context.Context, workflowID, name string, payload json.RawMessage, opts *durable.SignalOptions) error {
				if down.Load() {
					return errors.New("store unreachable")
				}
				return e.Signal(ctx, workflowID, name, payload, opts)
			})
		}})
		e = b.e
		ctx := testContext(t)
		req := refundRequest()
		req.Group, req.Required = "finance", 2
		h, err := askWorkflow.Start(ctx, b.e, req, nil)
		require.NoError(t, err)
		a := b.pending(t, h.RunID(), 1)

		// The first vote is delivered; deliver it again: still one signal.
		_, err = b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "fred", Approve: true, ArgsHash: a.ArgsHash})
		require.NoError(t, err)
		_, err = b.db.ExecContext(ctx, `UPDATE hitl_votes SET delivered_at = NULL`)
		require.NoError(t, err)
		n, err := b.svc.Redeliver(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		waitFor(t, "the first vote", func() bool { return len(b.signals(t, h.RunID())) >= 1 })

		// The second vote's signal fails: Decide still succeeds, the vote
		// stands undelivered, the run still waits.
		down.Store(true)
		updated, err := b.svc.Decide(ctx, a.ID, hitl.DecideInput{Reviewer: "fiona", Approve: true, ArgsHash: a.ArgsHash})
		require.NoError(t, err)
		require.Equal(t, hitl.StatusApproved, updated.Status)
		require.False(t, updated.Votes[1].Delivered)
		info, err := b.e.DescribeRun(ctx, h.RunID())
		require.NoError(t, err)
		require.Equal(t, durable.StatusRunning, info.Status)

		// Run's loop delivers it once the store is back.
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- b.svc.Run(runCtx) }()
		down.Store(false)
		d, err := h.Result(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"fred", "fiona"}, d.DecidedBy)
		waitFor(t, "the votes marked delivered", func() bool {
			got, err := b.svc.Get(ctx, a.ID)
			require.NoError(t, err)
			return got.Votes[0].Delivered && got.Votes[1].Delivered
		})
		stop()
		require.NoError(t, <-done)

		sigs := b.signals(t, h.RunID())
		require.Len(t, sigs, 2, "the redelivered first vote was applied once")
	})
}

// List filters by status, group, run and reviewer, and pages.
func TestList(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, db opener) {
		b := setup(t, setupOpts{db: db})
		ctx := testContext(t)
		var ids []string
		for i, group := range []string{"legal", "finance", "finance", "legal", "finance"} {
			req := refundRequest()
			req.Group, req.Title = group, fmt.Sprintf("request %d", i)
			if i == 2 {
				req.Requester = "fiona"
			}
			h, err := askWorkflow.Start(ctx, b.e, req, nil)
			require.NoError(t, err)
			ids = append(ids, b.pending(t, h.RunID(), 1).ID)
		}
		// fred voted on #4 (finance needs one: it closes).
		a4, err := b.svc.Get(ctx, ids[4])
		require.NoError(t, err)
		_, err = b.svc.Decide(ctx, ids[4], hitl.DecideInput{Reviewer: "fred", Approve: true, ArgsHash: a4.ArgsHash})
		require.NoError(t, err)

		idsOf := func(p *hitl.ListParams) []string {
			list, _, err := b.svc.List(ctx, p)
			require.NoError(t, err)
			var out []string
			for _, a := range list {
				out = append(out, a.ID)
			}
			return out
		}
		require.ElementsMatch(t, ids, idsOf(nil))
		require.ElementsMatch(t, []string{ids[0], ids[3]}, idsOf(&hitl.ListParams{Group: "legal"}))
		require.ElementsMatch(t, []string{ids[0], ids[1], ids[2], ids[3]}, idsOf(&hitl.ListParams{Status: hitl.StatusPending}))
		require.Equal(t, []string{ids[4]}, idsOf(&hitl.ListParams{Status: hitl.StatusApproved}))
		require.ElementsMatch(t, []string{ids[1], ids[2]}, idsOf(&hitl.ListParams{Reviewer: "fred", Status: hitl.StatusPending}))
		require.ElementsMatch(t, []string{ids[1], ids[4]}, idsOf(&hitl.ListParams{Reviewer: "fiona"}), "not her own request")
		require.Empty(t, idsOf(&hitl.ListParams{Reviewer: "mallory"}))
		a0, err := b.svc.Get(ctx, ids[0])
		require.NoError(t, err)
		require.Equal(t, []string{ids[0]}, idsOf(&hitl.ListParams{RunID: a0.RunID}))
		require.Equal(t, []string{ids[0]}, idsOf(&hitl.ListParams{WorkflowID: a0.WorkflowID}))

		// Pages of two, newest first, with votes attached.
		var paged []string
		cursor := ""
		for pages := 0; ; pages++ {
			require.Less(t, pages, 3)
			list, next, err := b.svc.List(ctx, &hitl.ListParams{Limit: 2, Cursor: cursor})
			require.NoError(t, err)
			require.LessOrEqual(t, len(list), 2)
			for _, a := range list {
				paged = append(paged, a.ID)
				if a.ID == ids[4] {
					require.Len(t, a.Votes, 1)
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
		require.Len(t, paged, 5)
		require.ElementsMatch(t, ids, paged)
		_, _, err = b.svc.List(ctx, &hitl.ListParams{Cursor: "%%%"})
		require.ErrorIs(t, err, hitl.ErrInvalidInput)

		// Finish the runs so the engine stops cleanly.
		for _, id := range ids[:4] {
			a, err := b.svc.Get(ctx, id)
			require.NoError(t, err)
			reviewer := "lena"
			if a.Group == "finance" {
				reviewer = "farid"
			}
			_, err = b.svc.Decide(ctx, id, hitl.DecideInput{Reviewer: reviewer, Approve: false, ArgsHash: a.ArgsHash})
			require.NoError(t, err)
		}
	})
}
