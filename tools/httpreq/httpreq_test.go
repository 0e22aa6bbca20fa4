package httpreq_test

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/keelhq/keel/tools/httpreq"
)

// loopback allows the test servers, which listen on 127.0.0.1.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// server is an HTTP server on 127.0.0.1 that counts the requests it gets.
type server struct {
	*httptest.Server
	hits    atomic.Int64
	release chan struct{}
	// slow gets a value when a request to /slow arrives.
	slow chan struct{}
}

func newServer(t *testing.T) *server {
	t.Helper()
	s := &server{release: make(chan struct{}), slow: make(chan struct{}, 16)}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Got-Header", r.Header.Get("X-Test"))
		w.Header().Set("X-User-Agent", r.UserAgent())
		w.Header().Set("X-Idempotency-Key", r.Header.Get("Idempotency-Key"))
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write(body)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("a", 10000)))
	})
	mux.HandleFunc("/accents", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("é", 100))) // 2 bytes each
	})
	mux.HandleFunc("/binary", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte{0xff, 0x00, 0xfe})
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		s.slow <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-s.release:
		}
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		close(s.release)
		s.Close()
	})
	return s
}

func (s *server) port() string {
	u, _ := url.Parse(s.URL)
	return u.Port()
}

func newClient(t *testing.T, cfg *httpreq.Config) *httpreq.Client {
	t.Helper()
	c, err := httpreq.New(cfg)
	require.NoError(t, err)
	return c
}

// Internal addresses are refused before any connection is made, by
// default, even when every host name is allowed.
func TestRefusesInternalAddresses(t *testing.T) {
	t.Parallel()
	c := newClient(t, &httpreq.Config{AllowHosts: []string{"*"}})
	for target, reason := range map[string]string{
		"http://127.0.0.1:1/":                      "loopback",
		"http://[::1]:1/":                          "loopback",
		"http://169.254.169.254/latest/meta-data/": "link-local",
		"http://10.0.0.1/":                         "private",
		"http://10.255.255.254:8080/admin":         "private",
		"http://192.168.1.1/":                      "private",
		"http://172.16.0.1/":                       "private",
		"https://[fd00::1]/":                       "private",
		"http://0.0.0.0/":                          "unspecified",
		"http://[::]/":                             "unspecified",
		"http://239.1.2.3/":                        "multicast",
		"http://[::ffff:127.0.0.1]/":               "loopback",
		"http://[fe80::1%25eth0]/":                 "link-local",
	} {
		_, err := c.Do(t.Context(), httpreq.Request{URL: target})
		var be *httpreq.BlockedAddressError
		require.ErrorAs(t, err, &be, target)
		require.ErrorIs(t, err, httpreq.ErrBlockedAddress, target)
		require.Equal(t, reason, be.Reason, target)
	}
}

// A host name that resolves to loopback is caught when it is dialed, and
// the server never sees the request.
func TestRefusesNameResolvingToLoopback(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	c := newClient(t, &httpreq.Config{AllowHosts: []string{"localhost"}})
	_, err := c.Do(t.Context(), httpreq.Request{URL: "http://localhost:" + s.port() + "/echo"})
	var be *httpreq.BlockedAddressError
	require.ErrorAs(t, err, &be)
	require.Equal(t, "loopback", be.Reason)
	require.True(t, be.IP.IsLoopback())
	require.Zero(t, s.hits.Load())

	// Allowed once loopback is allowed explicitly.
	c = newClient(t, &httpreq.Config{AllowHosts: []string{"localhost"},
		AllowNetworks: append(loopback, netip.MustParsePrefix("::1/128"))})
	resp, err := c.Do(t.Context(), httpreq.Request{URL: "http://localhost:" + s.port() + "/echo"})
	require.NoError(t, err)
	require.Equal(t, http.StatusTeapot, resp.StatusCode)
	require.Equal(t, int64(1), s.hits.Load())
}

func TestAllowedServer(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	ctx := t.Context()

	// Not on the host list; on it but loopback not allowed; both allowed.
	c := newClient(t, &httpreq.Config{AllowHosts: []string{"api.example.com"}, AllowNetworks: loopback})
	_, err := c.Do(ctx, httpreq.Request{URL: s.URL + "/echo"})
	require.ErrorIs(t, err, httpreq.ErrHostNotAllowed)
	c = newClient(t, &httpreq.Config{AllowHosts: []string{"127.0.0.1"}})
	_, err = c.Do(ctx, httpreq.Request{URL: s.URL + "/echo"})
	require.ErrorIs(t, err, httpreq.ErrBlockedAddress)
	require.Zero(t, s.hits.Load())

	c = newClient(t, &httpreq.Config{AllowHosts: []string{"127.0.0.1"}, AllowNetworks: loopback})
	resp, err := c.Do(ctx, httpreq.Request{Method: "post", URL: s.URL + "/echo", Body: `{"a":1}`,
		Headers: map[string]string{"X-Test": "yes", "Content-Type": "application/json"}})
	require.NoError(t, err)
	require.Equal(t, http.StatusTeapot, resp.StatusCode, "a 4xx is a response, not an error")
	require.Equal(t, `{"a":1}`, resp.Body)
	require.Equal(t, "POST", resp.Headers["X-Method"])
	require.Equal(t, "yes", resp.Headers["X-Got-Header"])
	require.Equal(t, httpreq.DefaultUserAgent, resp.Headers["X-User-Agent"])
	require.Equal(t, "a, b", resp.Headers["X-Multi"])
	require.Equal(t, s.URL+"/echo", resp.URL)
	require.False(t, resp.Truncated)
}

func TestRedirects(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	ctx := t.Context()
	redirect := func(to string) string { return s.URL + "/redirect?to=" + url.QueryEscape(to) }

	c := newClient(t, &httpreq.Config{AllowHosts: []string{"127.0.0.1"}, AllowNetworks: loopback})
	resp, err := c.Do(ctx, httpreq.Request{URL: redirect("/echo")})
	require.NoError(t, err)
	require.Equal(t, s.URL+"/echo", resp.URL)

	// To a host that is not allowed: refused before it is resolved.
	_, err = c.Do(ctx, httpreq.Request{URL: redirect("http://localhost:" + s.port() + "/echo")})
	require.ErrorIs(t, err, httpreq.ErrHostNotAllowed)
	// To an allowed host at an address that is not: refused.
	c2 := newClient(t, &httpreq.Config{AllowHosts: []string{"*"}, AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	_, err = c2.Do(ctx, httpreq.Request{URL: redirect("http://[::1]:" + s.port() + "/echo")})
	require.ErrorIs(t, err, httpreq.ErrBlockedAddress)
	_, err = c2.Do(ctx, httpreq.Request{URL: redirect("http://169.254.169.254/latest/meta-data/")})
	require.ErrorIs(t, err, httpreq.ErrBlockedAddress)
	_, err = c2.Do(ctx, httpreq.Request{URL: redirect("file:///etc/passwd")})
	require.Error(t, err)

	before := s.hits.Load()
	_, err = c.Do(ctx, httpreq.Request{URL: s.URL + "/loop"})
	require.ErrorIs(t, err, httpreq.ErrTooManyRedirects)
	require.Equal(t, int64(httpreq.DefaultMaxRedirects+1), s.hits.Load()-before, "the first request and %d redirects", httpreq.DefaultMaxRedirects)

	noFollow := newClient(t, &httpreq.Config{AllowHosts: []string{"127.0.0.1"}, AllowNetworks: loopback, MaxRedirects: -1})
	resp, err = noFollow.Do(ctx, httpreq.Request{URL: redirect("/echo")})
	require.NoError(t, err)
	require.Equal(t, http.StatusFound, resp.StatusCode)
	require.Equal(t, "/echo", resp.Headers["Location"])
}

func TestResponseSize(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	ctx := t.Context()
	cfg := func(max int64, fail bool) *httpreq.Config {
		return &httpreq.Config{AllowHosts: []string{"127.0.0.1"}, AllowNetworks: loopback, MaxResponseBytes: max, ErrorOnOversize: fail}
	}

	resp, err := newClient(t, cfg(1000, false)).Do(ctx, httpreq.Request{URL: s.URL + "/big"})
	require.NoError(t, err)
	require.True(t, resp.Truncated)
	require.Len(t, resp.Body, 1000)

	resp, err = newClient(t, cfg(10000, false)).Do(ctx, httpreq.Request{URL: s.URL + "/big"})
	require.NoError(t, err)
	require.False(t, resp.Truncated, "a body exactly at the limit is whole")
	require.Len(t, resp.Body, 10000)

	_, err = newClient(t, cfg(1000, true)).Do(ctx, httpreq.Request{URL: s.URL + "/big"})
	require.ErrorIs(t, err, httpreq.ErrResponseTooLarge)

	// Cut inside a character: the partial character is dropped.
	resp, err = newClient(t, cfg(101, false)).Do(ctx, httpreq.Request{URL: s.URL + "/accents"})
	require.NoError(t, err)
	require.True(t, resp.Truncated)
	require.True(t, utf8.ValidString(resp.Body))
	require.Equal(t, strings.Repeat("é", 50), resp.Body)

	resp, err = newClient(t, cfg(0, false)).Do(ctx, httpreq.Request{URL: s.URL + "/binary"})
	require.NoError(t, err)
	require.Equal(t, "base64", resp.BodyEncoding)
	raw, err := base64.StdEncoding.DecodeString(resp.Body)
	require.NoError(t, err)
	require.Equal(t, []byte{0xff, 0x00, 0xfe}, raw)
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	c := newClient(t, &httpreq.Config{AllowHosts: []string{"127.0.0.1"}, AllowNetworks: loopback, Timeout: 100 * time.Millisecond})
	_, err := c.Do(t.Context(), httpreq.Request{URL: s.URL + "/slow"})
	require.ErrorIs(t, err, httpreq.ErrTimeout)

	// The caller's own cancellation is reported as such.
	c = newClient(t, &httpreq.Config{AllowHosts: []string{"127.0.0.1"}, AllowNetworks: loopback, Timeout: time.Minute})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-s.slow // the first request's
		<-s.slow // this one's
		cancel()
	}()
	_, err = c.Do(ctx, httpreq.Request{URL: s.URL + "/slow"})
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, errors.Is(err, httpreq.ErrTimeout))
}

func TestInvalidRequests(t *testing.T) {
	t.Parallel()
	c := newClient(t, &httpreq.Config{AllowHosts: []string{"*"}, MaxRequestBytes: 10})
	for _, r := range []httpreq.Request{
		{Method: "TRACE", URL: "http://example.com/"},
		{Method: "CONNECT", URL: "http://example.com/"},
		{URL: "ftp://example.com/file"},
		{URL: "file:///etc/passwd"},
		{URL: "example.com/no-scheme"},
		{URL: "http://"},
		{URL: "http://example.com/", Headers: map[string]string{"Host": "internal"}},
		{URL: "http://example.com/", Headers: map[string]string{"X-A": "b\r\nX-Injected: 1"}},
		{URL: "http://example.com/", Headers: map[string]string{"Bad Name": "x"}},
		{URL: "http://example.com/", Headers: map[string]string{"transfer-encoding": "chunked"}},
		{Method: "POST", URL: "http://example.com/", Body: "more than ten bytes"},
	} {
		_, err := c.Do(t.Context(), r)
		require.ErrorIs(t, err, httpreq.ErrInvalidRequest, "%+v", r)
	}
	none := newClient(t, nil)
	_, err := none.Do(t.Context(), httpreq.Request{URL: "https://example.com/"})
	require.ErrorIs(t, err, httpreq.ErrHostNotAllowed, "no host is allowed by default")
}
