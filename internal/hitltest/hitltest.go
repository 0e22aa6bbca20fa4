// Package hitltest holds test helpers for the hitl package's users.
package hitltest

import (
	"testing"
	"time"

	"github.com/keelhq/keel/hitl"
)

// SignLink is s.SignLink for a link the test expects to be signed: it
// fails the test if SignLink returns an error.
func SignLink(tb testing.TB, s *hitl.Service, approvalID, reviewer string, ttl time.Duration) string {
	tb.Helper()
	token, err := s.SignLink(approvalID, reviewer, ttl)
	if err != nil {
		tb.Fatalf("SignLink(%q, %q): %v", approvalID, reviewer, err)
	}
	return token
}
