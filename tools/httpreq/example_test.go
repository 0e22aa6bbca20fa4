package httpreq_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"

	"github.com/keelhq/keel/tools/httpreq"
)

// Internal addresses are refused unless the Config allows them.
func Example() {
	ctx := context.Background()
	c, _ := httpreq.New(&httpreq.Config{AllowHosts: []string{"*"}})

	_, err := c.Do(ctx, httpreq.Request{URL: "http://169.254.169.254/latest/meta-data/"})
	var blocked *httpreq.BlockedAddressError
	fmt.Println(errors.As(err, &blocked), blocked.Reason)

	_, err = c.Do(ctx, httpreq.Request{URL: "http://10.0.0.1/admin"})
	fmt.Println(errors.Is(err, httpreq.ErrBlockedAddress))
	// Output:
	// true link-local
	// true
}

// A service on the local machine is reachable once its host and address
// are both allowed.
func ExampleClient_Do() {
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "pong")
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)

	c, _ := httpreq.New(&httpreq.Config{
		AllowHosts:       []string{u.Hostname()},
		AllowNetworks:    []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		MaxResponseBytes: 2,
	})
	resp, err := c.Do(ctx, httpreq.Request{URL: srv.URL + "/ping"})
	fmt.Println(resp.StatusCode, resp.Body, resp.Truncated, err)
	// Output: 200 po true <nil>
}
