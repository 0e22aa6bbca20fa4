package ticket_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/tools/ticket"
)

func TestZendesk(t *testing.T) {
	t.Parallel()
	f := newFakeZendesk(t)
	z := newZendesk(t, f)
	ctx := t.Context()

	created, err := z.Create(ctx, ticket.CreateParams{Subject: "Webhooks failing", RequesterEmail: "ada@example.com"})
	require.NoError(t, err)
	require.Equal(t, "101", created.ID)
	require.Equal(t, ticket.StatusOpen, created.Status, "Zendesk's new reads as open")
	require.Equal(t, "cus_ada", created.CustomerKey, "from the requester's external_id")
	got, err := z.Get(ctx, "T-101")
	require.NoError(t, err)
	require.Equal(t, created, got)

	f.setStatus("101", "hold")
	got, err = z.Get(ctx, "#101")
	require.NoError(t, err)
	require.Equal(t, ticket.StatusPending, got.Status, "Zendesk's hold reads as pending")

	// Assign by email, then unassign; a retried update is sent once.
	_, err = z.Update(ctx, "101", ticket.UpdateParams{Assignee: ptr("sam@support.example.com"), IdempotencyKey: "call-a"})
	require.NoError(t, err)
	puts := f.putCount()
	got, err = z.Update(ctx, "101", ticket.UpdateParams{Assignee: ptr("sam@support.example.com"), IdempotencyKey: "call-a"})
	require.NoError(t, err)
	require.Equal(t, "sam@support.example.com", got.Assignee)
	require.Equal(t, puts, f.putCount(), "the retry sent no PUT")
	got, err = z.Update(ctx, "101", ticket.UpdateParams{Assignee: ptr("")})
	require.NoError(t, err)
	require.Empty(t, got.Assignee)
	_, err = z.Update(ctx, "101", ticket.UpdateParams{Assignee: ptr("sam")})
	require.ErrorIs(t, err, ticket.ErrInvalid)

	// Comments come from several pages, authors from side-loaded users.
	for i := range 4 {
		_, err = z.Update(ctx, "101", ticket.UpdateParams{Comment: &ticket.NewComment{Body: "note " + string(rune('a'+i))}})
		require.NoError(t, err)
	}
	cs, err := z.Comments(ctx, "101")
	require.NoError(t, err)
	require.Len(t, cs, 5)
	require.Equal(t, "ada@example.com", cs[0].Author)
	require.Equal(t, "Webhooks failing", cs[0].Body)
	require.Equal(t, zdEmail, cs[4].Author)
	require.Equal(t, "note d", cs[4].Body)
	require.False(t, cs[4].Public)

	// Zendesk's own validation errors (422) match ErrInvalid.
	_, err = z.Update(ctx, "101", ticket.UpdateParams{Assignee: ptr("999")})
	var ze *ticket.ZendeskError
	require.ErrorAs(t, err, &ze)
	require.Equal(t, 422, ze.StatusCode)
	require.ErrorIs(t, err, ticket.ErrInvalid)

	// A ticket closed in Zendesk takes no update.
	f.setStatus("101", "closed")
	_, err = z.Update(ctx, "101", ticket.UpdateParams{Comment: &ticket.NewComment{Body: "x"}})
	require.ErrorIs(t, err, ticket.ErrInvalidTransition)

	// Explicit IDs are Store-only.
	_, err = z.Create(ctx, ticket.CreateParams{ID: "T-5", Subject: "x"})
	require.ErrorIs(t, err, ticket.ErrInvalid)

	// Wrong credentials: a *ZendeskError with Zendesk's message.
	bad, err := ticket.NewZendesk(&ticket.ZendeskConfig{BaseURL: f.srv.URL, Email: zdEmail, APIToken: "wrong"})
	require.NoError(t, err)
	_, err = bad.Get(ctx, "101")
	require.ErrorAs(t, err, &ze)
	require.Equal(t, 401, ze.StatusCode)
	require.Equal(t, "Couldn't authenticate you", ze.Err)
	require.NotErrorIs(t, err, ticket.ErrNotFound)

	for _, cfg := range []*ticket.ZendeskConfig{nil, {BaseURL: "acme.zendesk.com", OAuthToken: "t"}, {BaseURL: f.srv.URL}} {
		_, err := ticket.NewZendesk(cfg)
		require.Error(t, err)
	}
}
