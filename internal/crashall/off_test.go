//go:build !failpoints

package crashall_test

import "testing"

func TestNeedsFailpointsTag(t *testing.T) {
	t.Parallel()
	t.Skip("the crash suite needs failpoints: go test -tags failpoints ./internal/crashall/")
}
