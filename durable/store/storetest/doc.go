// Package storetest is the conformance suite for implementations of
// store.Store. Every driver runs Exercise unchanged; it is the checked
// definition of the behaviour store.Store documents, including the choices
// the interface leaves open (see the package documentation of sqlitestore
// for the wake-up rules).
//
// A driver's test passes a function that returns a new, empty store for
// each subtest:
//
//	func TestStore(t *testing.T) {
//		storetest.Exercise(t, func(t *testing.T) store.Store {
//			s, err := sqlitestore.Open(filepath.Join(t.TempDir(), "keel.db"), nil)
//			require.NoError(t, err)
//			t.Cleanup(func() { require.NoError(t, s.Close()) })
//			return s
//		})
//	}
//
// The suite never sleeps: every call passes an explicit Now (a fixed base
// time plus offsets), so leases, backoffs, deadlines and timers are tested
// by moving Now, not by waiting. Times are whole milliseconds, so a driver
// that stores microseconds passes too. Subtests run in parallel.
package storetest
