package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/server"
)

func TestAuthAndScopes(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{keys: true, approvals: true})
	read := b.newKey(t, "dashboard", server.ScopeRead)
	trigger := b.newKey(t, "ci", server.ScopeTrigger)
	review := b.newKey(t, "fred", server.ScopeReview)
	revoked := b.newKey(t, "gone", server.ScopeAdmin)
	id := strings.Split(revoked, "_")[1]
	require.NoError(t, b.keys.Revoke(context.Background(), id))

	trig := map[string]any{"input": map[string]string{"text": "x"}}
	decision := map[string]any{"decision": "approve", "args_hash": "h"}

	// Without a key, or with a bad one: 401, with a challenge.
	for _, hdr := range []string{"", "Basic dXNlcjpwYXNz", "Bearer keel_0123456789abcdef_wrong", "Bearer " + revoked, "Bearer nonsense"} {
		var r response
		if hdr == "" {
			r = b.do(t, "POST", "/v1/agents/echo/runs", trig, "")
		} else {
			r = b.do(t, "POST", "/v1/agents/echo/runs", trig, "", "Authorization", hdr)
		}
		require.Equal(t, http.StatusUnauthorized, r.Status, hdr)
		require.Equal(t, server.CodeUnauthorized, r.problem(t).Code)
		require.Equal(t, `Bearer realm="keel"`, r.Header.Get("WWW-Authenticate"))
	}
	for _, path := range []string{"/v1/runs", "/v1/approvals", "/metrics", "/v1/runs/x/events"} {
		require.Equal(t, http.StatusUnauthorized, b.do(t, "GET", path, nil, "").Status, path)
	}

	// A read key reads, and can neither trigger, signal, cancel nor decide.
	require.Equal(t, http.StatusOK, b.do(t, "GET", "/v1/runs", nil, read).Status)
	require.Equal(t, http.StatusOK, b.do(t, "GET", "/metrics", nil, read).Status)
	for _, c := range []struct {
		path string
		body any
	}{
		{"/v1/agents/echo/runs", trig},
		{"/v1/runs/x/signals/go", map[string]any{}},
		{"/v1/runs/x/cancel", map[string]any{}},
		{"/v1/approvals/x/decision", decision},
	} {
		r := b.do(t, "POST", c.path, c.body, read)
		require.Equal(t, http.StatusForbidden, r.Status, c.path)
		require.Equal(t, server.CodeForbidden, r.problem(t).Code)
	}

	// A trigger key triggers and reads, but does not decide.
	r := b.do(t, "POST", "/v1/agents/echo/runs", trig, trigger)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	require.Equal(t, http.StatusOK, b.do(t, "GET", "/v1/runs", nil, trigger).Status)
	require.Equal(t, http.StatusForbidden, b.do(t, "POST", "/v1/approvals/x/decision", decision, trigger).Status)

	// A review key decides (here: an approval that does not exist) but
	// does not trigger.
	require.Equal(t, http.StatusNotFound, b.do(t, "POST", "/v1/approvals/x/decision", decision, review).Status)
	require.Equal(t, http.StatusForbidden, b.do(t, "POST", "/v1/agents/echo/runs", trig, review).Status)

	// Operations endpoints need no key.
	for _, path := range []string{"/healthz", "/readyz", "/openapi.json"} {
		require.Equal(t, http.StatusOK, b.do(t, "GET", path, nil, "").Status, path)
	}
	// Only the trigger key's run exists.
	require.Equal(t, 1, b.runCount(t))
}

// Keys are stored as hashes: the table never holds a key or its secret.
func TestKeyStore(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, be backend) {
		_, db := be(t)
		ctx := context.Background()
		ks, err := server.NewKeyStore(ctx, db)
		require.NoError(t, err)
		_, err = server.NewKeyStore(ctx, db) // migrating twice is fine
		require.NoError(t, err)

		res, err := ks.Create(ctx, server.CreateKeyParams{Subject: "lena", Scopes: []server.Scope{server.ScopeReview, server.ScopeRead, server.ScopeReview}})
		require.NoError(t, err)
		require.Equal(t, []server.Scope{server.ScopeReview, server.ScopeRead}, res.Key.Scopes)
		parts := strings.SplitN(res.Secret, "_", 3)
		require.Equal(t, "keel", parts[0])
		require.Equal(t, res.Key.ID, parts[1])
		secret := parts[2]
		require.GreaterOrEqual(t, len(secret), 43) // 32 random bytes

		rows, err := db.QueryContext(ctx, "SELECT * FROM keel_api_keys")
		require.NoError(t, err)
		cols, err := rows.Columns()
		require.NoError(t, err)
		n := 0
		for rows.Next() {
			n++
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(t, rows.Scan(ptrs...))
			for i, v := range vals {
				s := fmt.Sprint(v)
				if b, ok := v.([]byte); ok {
					s = string(b)
				}
				require.NotContains(t, s, secret, "column %s holds the secret", cols[i])
				if cols[i] == "hash" {
					sum := sha256.Sum256([]byte(secret))
					require.Equal(t, hex.EncodeToString(sum[:]), s)
				}
			}
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
		require.Equal(t, 1, n)

		k, err := ks.Authenticate(ctx, res.Secret)
		require.NoError(t, err)
		require.Equal(t, "lena", k.Subject)
		require.True(t, k.Has(server.ScopeRead))
		require.True(t, k.Has(server.ScopeReview))
		require.False(t, k.Has(server.ScopeTrigger))

		for _, bad := range []string{"", "keel_", res.Secret + "x", "keel_" + res.Key.ID + "_" + strings.Repeat("A", 43), "keel_ffffffffffffffff_" + secret, strings.TrimPrefix(res.Secret, "keel_")} {
			_, err := ks.Authenticate(ctx, bad)
			require.ErrorIs(t, err, server.ErrInvalidKey, bad)
		}

		n, err = ks.Active(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.NoError(t, ks.Revoke(ctx, res.Key.ID))
		_, err = ks.Authenticate(ctx, res.Secret)
		require.ErrorIs(t, err, server.ErrInvalidKey)
		keys, err := ks.List(ctx)
		require.NoError(t, err)
		require.Len(t, keys, 1)
		require.False(t, keys[0].RevokedAt.IsZero())
		n, err = ks.Active(ctx)
		require.NoError(t, err)
		require.Zero(t, n)

		require.ErrorIs(t, ks.Revoke(ctx, "0000000000000000"), server.ErrKeyNotFound)
		_, err = ks.Get(ctx, "0000000000000000")
		require.ErrorIs(t, err, server.ErrKeyNotFound)
		_, err = ks.Create(ctx, server.CreateKeyParams{Subject: "x", Scopes: []server.Scope{"root"}})
		require.ErrorIs(t, err, server.ErrInvalidScope)
		_, err = ks.Create(ctx, server.CreateKeyParams{Subject: "x"})
		require.ErrorIs(t, err, server.ErrInvalidScope)
		_, err = ks.Create(ctx, server.CreateKeyParams{Subject: " ", Scopes: []server.Scope{server.ScopeRead}})
		require.ErrorIs(t, err, server.ErrInvalidSubject)
		_, err = ks.Create(ctx, server.CreateKeyParams{Subject: "a\nb", Scopes: []server.Scope{server.ScopeRead}})
		require.ErrorIs(t, err, server.ErrInvalidSubject)
		keys, err = ks.List(ctx)
		require.NoError(t, err)
		require.Len(t, keys, 1, "refused keys are not stored")
	})
}
