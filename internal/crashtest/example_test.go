//go:build unix

package crashtest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/crashtest"
)

// The helper child's HTTP client dies before the charge leaves, or once the
// payment service has accepted it, as KEEL_PAY_CRASH_MODE says. TestMain
// runs the helper in the child (see the package documentation); the test
// kills one child and resumes the run in a second.
func Example() {
	newClient := func(mode string) *http.Client {
		charge := func(r *http.Request) bool {
			return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/charges")
		}
		return &http.Client{Transport: &crashtest.KillingTransport{
			BeforeFunc: func(r *http.Request) bool { return mode == "before-send" && charge(r) },
			AfterFunc: func(r *http.Request, resp *http.Response) bool {
				return mode == "after-accept" && charge(r) && resp.StatusCode == http.StatusOK
			},
		}}
	}
	_ = newClient

	testCrash := func(t *testing.T) {
		t.Parallel()
		out := crashtest.RequireKilled(t, "KEEL_PAY_CRASH_HELPER=1", "KEEL_PAY_CRASH_MODE=after-accept")
		// ... assert what the payment service and the database hold ...
		out = crashtest.RequireSuccess(t, "KEEL_PAY_CRASH_HELPER=1")
		if !strings.Contains(out, "charged: ") {
			t.Fatalf("the resumed run did not finish:\n%s", out)
		}
	}
	_ = testCrash
}
