//go:build !failpoints

package durable

import "github.com/keelhq/keel/durable/store"

// withFailpoints returns st unchanged. Built with the failpoints tag
// (failpoints_on.go), it wraps st so that tests can crash or fail the
// process at every store write; see internal/failpoint.
func withFailpoints(st store.Store) store.Store { return st }
