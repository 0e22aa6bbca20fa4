package durable

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/durable/store"
	"github.com/keelhq/keel/durable/store/sqlitestore"
)

// notifyingStore is a store whose notifications are the values the test
// sends on ch.
type notifyingStore struct {
	store.Store
	ch chan string
}

func (s notifyingStore) Notifications(context.Context) <-chan string { return s.ch }

// A notification wakes the local pollers its payload names: "w/<queue>"
// the queue's workflow task pollers, "a/<queue>" its activity pollers, and
// a bare queue name both.
func TestNotificationWakesPollersOfItsKind(t *testing.T) {
	t.Parallel()
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "keel.db"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	ch := make(chan string)
	e, err := New(notifyingStore{Store: st, ch: ch}, nil)
	require.NoError(t, err)
	require.NoError(t, e.Start(t.Context()))

	// No worker polls these queues, so the wake-ups stay where the
	// notifications put them.
	for _, n := range []string{"w/workflow-q", "a/activity-q", "bare-q", "w/a/nested-q"} {
		ch <- n
	}
	close(ch) // the engine stops once it has handled every value
	require.NoError(t, e.Stop(t.Context()))

	e.mu.Lock()
	defer e.mu.Unlock()
	var woken []string
	for key, wake := range e.queues {
		if len(wake) > 0 {
			woken = append(woken, key)
		}
	}
	require.ElementsMatch(t, []string{"w/workflow-q", "a/activity-q", "w/bare-q", "a/bare-q", "w/a/nested-q"}, woken)
}
