package security_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/internal/hitltest"
	"github.com/keelhq/keel/server"
)

// TestSecurityApprovals attacks approvals: forged, expired, reused and
// misdirected review links, reviewers who may not decide, and decisions
// on closed approvals or on other arguments. Each attack gets its typed
// error from hitl and its HTTP status from the server, and writes nothing.
func TestSecurityApprovals(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, be backend) {
		b := setup(t, setupOpts{backend: be})
		runThreats(t, b, approvalThreats)
	})
}

var approvalThreats = []threat{
	{"signed link tampered", func(t *testing.T, b *bundle) {
		a := b.requestRefund(t, "link-tampered", refund{Order: "T-1", Amount: 10})
		other := b.requestRefund(t, "link-tampered-other", refund{Order: "T-2", Amount: 20})
		token := hitltest.SignLink(t, b.approvals, a.ID, "fred", time.Hour)
		c := b.browser(t)
		page := c.get("/review/" + token)
		require.Equal(t, http.StatusOK, page.Status)
		csrf := csrfOf(t, page.Body)

		l := parseLink(t, token)
		for _, v := range []struct {
			name  string
			token string
			want  error
		}{
			{"reviewer renamed", l.with(func(l *link) { l.reviewer = "fiona" }), hitl.ErrLinkForged},
			{"approval swapped", l.with(func(l *link) { l.approvalID = other.ID }), hitl.ErrLinkForged},
			{"expiry extended", l.with(func(l *link) { l.expiry += uint64(365 * 24 * time.Hour / time.Millisecond) }), hitl.ErrLinkForged},
			{"nonce changed", l.with(func(l *link) { l.nonce[0] ^= 1 }), hitl.ErrLinkForged},
			{"MAC altered", l.with(func(l *link) { l.mac[31] ^= 1 }), hitl.ErrLinkForged},
			{"truncated", token[:len(token)-2], hitl.ErrLinkMalformed},
			{"extended", token + "AA", hitl.ErrLinkMalformed},
			{"not base64", token[:10] + "!" + token[11:], hitl.ErrLinkMalformed},
		} {
			r := c.get("/review/" + v.token)
			require.Equal(t, http.StatusForbidden, r.Status, v.name)
			require.NotContains(t, string(r.Body), "csrf_token", "%s: no form to post", v.name)
			r = c.post("/review/"+v.token, url.Values{"csrf_token": {csrf}, "decision": {"approve"}, "args_hash": {a.ArgsHash}})
			require.Equal(t, http.StatusForbidden, r.Status, v.name)

			_, err := b.approvals.Decide(context.Background(), a.ID, hitl.DecideInput{Approve: true, ArgsHash: a.ArgsHash, LinkToken: v.token})
			require.ErrorIs(t, err, hitl.ErrInvalidLink, v.name)
			require.ErrorIs(t, err, v.want, v.name)
			_, err = b.approvals.Decide(context.Background(), other.ID, hitl.DecideInput{Approve: true, ArgsHash: other.ArgsHash, LinkToken: v.token})
			require.ErrorIs(t, err, hitl.ErrInvalidLink, v.name)
		}
		b.requireUntouched(t, a.ID)
		b.requireUntouched(t, other.ID)

		// The genuine link decides.
		r := c.post("/review/"+token, url.Values{"csrf_token": {csrf}, "decision": {"approve"}, "args_hash": {a.ArgsHash}})
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		require.Equal(t, hitl.StatusApproved, b.approval(t, a.ID).Status)
	}},

	{"signed link expired", func(t *testing.T, b *bundle) {
		a := b.requestRefund(t, "link-expired", refund{Order: "E-1", Amount: 10})
		token := hitltest.SignLink(t, b.approvals, a.ID, "fred", time.Minute)
		c := b.browser(t)
		page := c.get("/review/" + token)
		require.Equal(t, http.StatusOK, page.Status, "the link works until it expires")
		csrf := csrfOf(t, page.Body)

		// Other tests' links last an hour; two minutes expire this one only.
		b.clock.Advance(2 * time.Minute)
		require.Equal(t, http.StatusGone, c.get("/review/"+token).Status)
		r := c.post("/review/"+token, url.Values{"csrf_token": {csrf}, "decision": {"approve"}, "args_hash": {a.ArgsHash}})
		require.Equal(t, http.StatusGone, r.Status)
		require.Contains(t, string(r.Body), "Link expired")
		_, err := b.approvals.Decide(context.Background(), a.ID, hitl.DecideInput{Approve: true, ArgsHash: a.ArgsHash, LinkToken: token})
		require.ErrorIs(t, err, hitl.ErrLinkExpired)
		b.requireUntouched(t, a.ID)
	}},

	{"signed link used twice", func(t *testing.T, b *bundle) {
		a := b.requestRefund(t, "link-twice", refund{Order: "U-1", Amount: 10})
		token := hitltest.SignLink(t, b.approvals, a.ID, "fred", time.Hour)
		c := b.browser(t)
		csrf := csrfOf(t, c.get("/review/"+token).Body)
		r := c.post("/review/"+token, url.Values{"csrf_token": {csrf}, "decision": {"approve"}, "args_hash": {a.ArgsHash}})
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))

		for _, decision := range []string{"approve", "reject"} {
			r = c.post("/review/"+token, url.Values{"csrf_token": {csrf}, "decision": {decision}, "args_hash": {a.ArgsHash}})
			require.Equal(t, http.StatusConflict, r.Status, decision)
			require.Contains(t, string(r.Body), "Link already used")
		}
		require.Equal(t, http.StatusConflict, c.get("/review/"+token).Status)
		_, err := b.approvals.Decide(context.Background(), a.ID, hitl.DecideInput{Approve: false, ArgsHash: a.ArgsHash, LinkToken: token})
		require.ErrorIs(t, err, hitl.ErrLinkUsed)

		got := b.approval(t, a.ID)
		require.Equal(t, hitl.StatusApproved, got.Status)
		require.Len(t, got.Votes, 1, "one vote")
		require.True(t, got.Votes[0].ViaLink)
		require.Equal(t, "fred", got.Votes[0].Reviewer)
	}},

	{"link for another approval", func(t *testing.T, b *bundle) {
		a := b.requestRefund(t, "link-other-a", refund{Order: "O-1", Amount: 10})
		other := b.requestRefund(t, "link-other-b", refund{Order: "O-2", Amount: 99})
		require.NotEqual(t, a.ArgsHash, other.ArgsHash)
		token := hitltest.SignLink(t, b.approvals, a.ID, "fred", time.Hour)

		// The link names its approval: it cannot decide another one, nor
		// decide as another reviewer.
		_, err := b.approvals.Decide(context.Background(), other.ID, hitl.DecideInput{Approve: true, ArgsHash: other.ArgsHash, LinkToken: token})
		require.ErrorIs(t, err, hitl.ErrLinkMismatch)
		_, err = b.approvals.Decide(context.Background(), a.ID, hitl.DecideInput{Reviewer: "fiona", Approve: true, ArgsHash: a.ArgsHash, LinkToken: token})
		require.ErrorIs(t, err, hitl.ErrLinkMismatch)
		// Over HTTP the link's approval is the one decided, and the other
		// approval's arguments are not its own.
		c := b.browser(t)
		csrf := csrfOf(t, c.get("/review/"+token).Body)
		r := c.post("/review/"+token, url.Values{"csrf_token": {csrf}, "decision": {"approve"}, "args_hash": {other.ArgsHash}})
		require.Equal(t, http.StatusConflict, r.Status)
		require.Contains(t, string(r.Body), "not recorded")
		b.requireUntouched(t, a.ID)
		b.requireUntouched(t, other.ID)
	}},

	{"non-member decides", func(t *testing.T, b *bundle) {
		a := b.requestRefund(t, "non-member", refund{Order: "N-1", Amount: 10})
		path := "/v1/approvals/" + a.ID + "/decision"
		r := b.do(t, "POST", path, map[string]any{"decision": "approve", "args_hash": a.ArgsHash}, b.newKey(t, "olga", server.ScopeReview))
		require.Equal(t, http.StatusForbidden, r.Status)
		require.Equal(t, server.CodeNotInGroup, r.problem(t, path).Code)

		// A correctly signed link made out to her shows the approval
		// without the form (and so without the token a post needs).
		token := hitltest.SignLink(t, b.approvals, a.ID, "olga", time.Hour)
		c := b.browser(t)
		page := c.get("/review/" + token)
		require.Equal(t, http.StatusOK, page.Status)
		require.Contains(t, string(page.Body), "not a member")
		require.NotContains(t, string(page.Body), `id="decision-form"`)
		r = c.post("/review/"+token, url.Values{"decision": {"approve"}, "args_hash": {a.ArgsHash}})
		require.Equal(t, http.StatusForbidden, r.Status)

		_, err := b.approvals.Decide(context.Background(), a.ID, hitl.DecideInput{Reviewer: "olga", Approve: true, ArgsHash: a.ArgsHash})
		require.ErrorIs(t, err, hitl.ErrNotInGroup)
		b.requireUntouched(t, a.ID)
	}},

	{"self-approval", func(t *testing.T, b *bundle) {
		a := b.requestRefund(t, "self-approval", refund{Order: "S-1", Amount: 10})
		require.Equal(t, "support-agent", a.Requester)
		path := "/v1/approvals/" + a.ID + "/decision"
		r := b.do(t, "POST", path, map[string]any{"decision": "approve", "args_hash": a.ArgsHash}, b.newKey(t, "support-agent", server.ScopeReview))
		require.Equal(t, http.StatusForbidden, r.Status)
		require.Equal(t, server.CodeSelfApproval, r.problem(t, path).Code)

		token := hitltest.SignLink(t, b.approvals, a.ID, "support-agent", time.Hour)
		c := b.browser(t)
		page := c.get("/review/" + token)
		require.Equal(t, http.StatusOK, page.Status)
		require.Contains(t, string(page.Body), "someone else must decide it")
		require.NotContains(t, string(page.Body), `id="decision-form"`)
		r = c.post("/review/"+token, url.Values{"decision": {"approve"}, "args_hash": {a.ArgsHash}})
		require.Equal(t, http.StatusForbidden, r.Status)

		_, err := b.approvals.Decide(context.Background(), a.ID, hitl.DecideInput{Reviewer: "support-agent", Approve: true, ArgsHash: a.ArgsHash})
		require.ErrorIs(t, err, hitl.ErrSelfApproval)
		b.requireUntouched(t, a.ID)
	}},

	{"decision on a closed approval", func(t *testing.T, b *bundle) {
		a := b.requestRefund(t, "closed", refund{Order: "X-1", Amount: 10})
		// Fiona opens her review link while the approval is pending...
		token := hitltest.SignLink(t, b.approvals, a.ID, "fiona", time.Hour)
		c := b.browser(t)
		csrf := csrfOf(t, c.get("/review/"+token).Body)
		// ...and Fred approves first.
		path := "/v1/approvals/" + a.ID + "/decision"
		r := b.do(t, "POST", path, map[string]any{"decision": "approve", "args_hash": a.ArgsHash}, b.newKey(t, "fred", server.ScopeReview))
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))

		r = c.post("/review/"+token, url.Values{"csrf_token": {csrf}, "decision": {"reject"}, "args_hash": {a.ArgsHash}})
		require.Equal(t, http.StatusConflict, r.Status)
		require.Contains(t, string(r.Body), "not recorded")
		r = b.do(t, "POST", path, map[string]any{"decision": "reject", "args_hash": a.ArgsHash}, b.newKey(t, "fiona", server.ScopeReview))
		require.Equal(t, http.StatusConflict, r.Status)
		require.Equal(t, server.CodeApprovalClosed, r.problem(t, path).Code)
		_, err := b.approvals.Decide(context.Background(), a.ID, hitl.DecideInput{Reviewer: "fiona", Approve: false, ArgsHash: a.ArgsHash})
		require.ErrorIs(t, err, hitl.ErrClosed)

		got := b.approval(t, a.ID)
		require.Equal(t, hitl.StatusApproved, got.Status)
		require.Len(t, got.Votes, 1, "the vote count is unchanged")
		var d hitl.Decision
		require.NoError(t, json.Unmarshal(b.waitClosed(t, "closed").Result, &d))
		require.Equal(t, []string{"fred"}, d.DecidedBy)
	}},

	{"arguments changed after the request", func(t *testing.T, b *bundle) {
		in := refund{Order: "H-1", Amount: 42}
		a := b.requestRefund(t, "args-changed", in)
		// The approval is bound to the hash of its action and arguments.
		require.Equal(t, argsHash(t, "refund", in.args()), a.ArgsHash)
		changed := in
		changed.Amount = 4200
		h := argsHash(t, "refund", changed.args())

		path := "/v1/approvals/" + a.ID + "/decision"
		fredKey := b.newKey(t, "fred", server.ScopeReview)
		r := b.do(t, "POST", path, map[string]any{"decision": "approve", "args_hash": h}, fredKey)
		require.Equal(t, http.StatusConflict, r.Status)
		p := r.problem(t, path)
		require.Equal(t, server.CodeArgsMismatch, p.Code)
		require.Equal(t, "args_hash", p.Errors[0].Field)

		fred := b.signIn(t, fredKey)
		csrf := csrfOf(t, fred.get("/ui/approvals/"+a.ID).Body)
		r = fred.post("/ui/approvals/"+a.ID+"/decision", url.Values{"csrf_token": {csrf}, "decision": {"approve"}, "args_hash": {h}})
		require.Equal(t, http.StatusConflict, r.Status)
		token := hitltest.SignLink(t, b.approvals, a.ID, "fred", time.Hour)
		c := b.browser(t)
		csrf = csrfOf(t, c.get("/review/"+token).Body)
		r = c.post("/review/"+token, url.Values{"csrf_token": {csrf}, "decision": {"approve"}, "args_hash": {h}})
		require.Equal(t, http.StatusConflict, r.Status)
		_, err := b.approvals.Decide(context.Background(), a.ID, hitl.DecideInput{Reviewer: "fred", Approve: true, ArgsHash: h})
		require.ErrorIs(t, err, hitl.ErrArgsMismatch)
		b.requireUntouched(t, a.ID)

		// The hash shown with the approval decides, for the arguments
		// requested.
		r = b.do(t, "POST", path, map[string]any{"decision": "approve", "args_hash": a.ArgsHash}, fredKey)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var d hitl.Decision
		require.NoError(t, json.Unmarshal(b.waitClosed(t, "args-changed").Result, &d))
		require.True(t, d.Approved())
		require.Equal(t, a.ArgsHash, d.ArgsHash)
		require.JSONEq(t, `{"order":"H-1","amount":42}`, string(d.Args))
	}},

	{"approval past its deadline", func(t *testing.T, b *bundle) {
		a := b.requestRefund(t, "deadline", refund{Order: "D-1", Amount: 10, TimeoutMS: 1})
		require.Eventually(t, func() bool {
			return b.approval(t, a.ID).Status == hitl.StatusTimedOut
		}, waitFor, 20*time.Millisecond, "the approval times out")

		path := "/v1/approvals/" + a.ID + "/decision"
		r := b.do(t, "POST", path, map[string]any{"decision": "approve", "args_hash": a.ArgsHash}, b.newKey(t, "fred", server.ScopeReview))
		require.Equal(t, http.StatusConflict, r.Status)
		require.Equal(t, server.CodeApprovalExpired, r.problem(t, path).Code)
		_, err := b.approvals.Decide(context.Background(), a.ID, hitl.DecideInput{Reviewer: "fiona", Approve: true, ArgsHash: a.ArgsHash})
		require.ErrorIs(t, err, hitl.ErrExpired)

		got := b.approval(t, a.ID)
		require.Equal(t, hitl.StatusTimedOut, got.Status)
		require.Empty(t, got.Votes)
		var d hitl.Decision
		require.NoError(t, json.Unmarshal(b.waitClosed(t, "deadline").Result, &d))
		require.True(t, d.TimedOut())
	}},
}

// argsHash returns the hash an approval of action with args is bound to.
func argsHash(t *testing.T, action string, args any) string {
	t.Helper()
	raw, err := json.Marshal(args)
	require.NoError(t, err)
	canon, err := hitl.Canonical(raw)
	require.NoError(t, err)
	h, err := hitl.Hash(action, canon)
	require.NoError(t, err)
	return h
}

// link is a review link token taken apart, as hitl documents its layout:
// version, expiry (Unix ms), nonce, approval ID, reviewer, HMAC.
type link struct {
	version    byte
	expiry     uint64
	nonce      [16]byte
	approvalID string
	reviewer   string
	mac        [32]byte
}

func parseLink(t *testing.T, token string) link {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(token)
	require.NoError(t, err)
	var l link
	l.version = b[0]
	l.expiry = binary.BigEndian.Uint64(b[1:9])
	copy(l.nonce[:], b[9:25])
	rest := b[25:]
	field := func() string {
		n, k := binary.Uvarint(rest)
		require.Positive(t, k)
		s := string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
		return s
	}
	l.approvalID = field()
	l.reviewer = field()
	require.Len(t, rest, 32)
	copy(l.mac[:], rest)
	require.Equal(t, token, l.encode(), "the layout is understood")
	return l
}

func (l link) encode() string {
	b := []byte{l.version}
	b = binary.BigEndian.AppendUint64(b, l.expiry)
	b = append(b, l.nonce[:]...)
	b = binary.AppendUvarint(b, uint64(len(l.approvalID)))
	b = append(b, l.approvalID...)
	b = binary.AppendUvarint(b, uint64(len(l.reviewer)))
	b = append(b, l.reviewer...)
	b = append(b, l.mac[:]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// with returns the token of l changed by edit, its MAC kept.
func (l link) with(edit func(l *link)) string {
	edit(&l)
	return l.encode()
}
