package durabletest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/keelhq/keel/durable"
)

// Stub counts the attempts of a stubbed activity.
type Stub struct {
	mu    sync.Mutex
	calls int
}

// Calls returns how many attempts of the activity the stub has run.
func (s *Stub) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// StubActivity replaces act's implementation in env with fn: the workflow
// code is unchanged, and every attempt of act (same name, same options and
// retry policy) runs fn instead. Call it before Register; Register then
// skips act, and any other activity of the same name.
func StubActivity[In, Out any](t testing.TB, env *Env, act *durable.Activity[In, Out], fn func(ctx context.Context, in In) (Out, error)) *Stub {
	t.Helper()
	return StubActivityByName(t, env, act.Name(), fn)
}

// StubActivityByName is StubActivity for an activity known by its name
// only, for example one built inside a package's constructor.
func StubActivityByName[In, Out any](t testing.TB, env *Env, name string, fn func(ctx context.Context, in In) (Out, error)) *Stub {
	t.Helper()
	s := &Stub{}
	stub := durable.NewActivity(name, func(ctx context.Context, in In) (Out, error) {
		s.mu.Lock()
		s.calls++
		s.mu.Unlock()
		return fn(ctx, in)
	}, nil)
	if err := env.Engine.Register(stub); err != nil {
		if errors.Is(err, durable.ErrAlreadyRegistered) {
			t.Fatalf("durabletest: stub %q: an activity of that name is already registered; stub it before Register", name)
		}
		t.Fatalf("durabletest: stub %q: %v", name, err)
	}
	env.mu.Lock()
	env.stubs[name] = true
	env.mu.Unlock()
	return s
}
