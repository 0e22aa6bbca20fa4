//go:build !failpoints

package failpoint

// Enabled reports whether failpoints are compiled in (the failpoints build
// tag).
const Enabled = false

// Inject returns nil: failpoints are not compiled in.
func Inject(string) error { return nil }

// Hits returns nil: failpoints are not compiled in.
func Hits() map[string]int64 { return nil }

// Fired returns nil: failpoints are not compiled in.
func Fired() map[string]int64 { return nil }

// Configure returns ErrDisabled: failpoints are not compiled in.
func Configure(string) error { return ErrDisabled }
