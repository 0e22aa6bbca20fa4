package httpreq

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// Errors returned by Client.Do. Match them with errors.Is (and
// *BlockedAddressError with errors.As).
var (
	// ErrInvalidRequest: a method, URL or header that is not allowed or
	// malformed.
	ErrInvalidRequest = errors.New("httpreq: invalid request")
	// ErrHostNotAllowed: the URL's host, or a redirect's, is not on
	// Config.AllowHosts.
	ErrHostNotAllowed = errors.New("httpreq: host not allowed")
	// ErrBlockedAddress is matched by every *BlockedAddressError.
	ErrBlockedAddress = errors.New("httpreq: address not allowed")
	// ErrTooManyRedirects: more redirects than Config.MaxRedirects.
	ErrTooManyRedirects = errors.New("httpreq: too many redirects")
	// ErrResponseTooLarge: the body is larger than Config.MaxResponseBytes
	// and Config.ErrorOnOversize is set.
	ErrResponseTooLarge = errors.New("httpreq: response too large")
	// ErrTimeout: the request took longer than Config.Timeout.
	ErrTimeout = errors.New("httpreq: timeout")
)

// BlockedAddressError reports a connection refused because the address
// the host resolved to is loopback, private, link-local or otherwise not
// public, and not in Config.AllowNetworks.
type BlockedAddressError struct {
	// Host is the host being dialed (as resolved: an IP and port).
	Host string
	IP   netip.Addr
	// Reason names the kind of address, such as "loopback".
	Reason string
}

func (e *BlockedAddressError) Error() string {
	return fmt.Sprintf("httpreq: refusing to connect to %s: %s address", e.IP, e.Reason)
}

// Is matches ErrBlockedAddress.
func (e *BlockedAddressError) Is(target error) bool { return target == ErrBlockedAddress }

// Defaults.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultMaxResponseBytes = 1 << 20
	DefaultMaxRequestBytes  = 1 << 20
	DefaultMaxRedirects     = 5
	DefaultUserAgent        = "keel-httpreq/1"
)

// Config configures a Client. The zero value refuses every request: list
// the hosts in AllowHosts.
type Config struct {
	// AllowHosts lists the hosts requests may go to: exact names
	// ("api.example.com"), IP literals ("203.0.113.7"), "*.example.com" for
	// any subdomain of example.com (not example.com itself), or "*" for
	// any host. Names compare without case. Redirects are checked too.
	// With none, every request fails with ErrHostNotAllowed.
	AllowHosts []string
	// AllowNetworks lists address ranges that may be reached although
	// they are not public (loopback, private, link-local…), for example
	// 10.20.0.0/16 for an internal API. Optional; default none: only
	// public addresses are dialed.
	AllowNetworks []netip.Prefix
	// Methods are the HTTP methods allowed. Optional; default GET, HEAD,
	// POST, PUT, PATCH, DELETE.
	Methods []string
	// Timeout bounds a whole request: connecting, redirects and reading
	// the body. Optional; default DefaultTimeout.
	Timeout time.Duration
	// MaxRequestBytes bounds the request body. Optional; default
	// DefaultMaxRequestBytes.
	MaxRequestBytes int
	// MaxResponseBytes bounds the response body that is read. Optional;
	// default DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// ErrorOnOversize makes a response body larger than MaxResponseBytes
	// an error (ErrResponseTooLarge). Optional; default false: the body is
	// cut at MaxResponseBytes and Response.Truncated is set.
	ErrorOnOversize bool
	// MaxRedirects is how many redirects are followed. Optional; default
	// DefaultMaxRedirects; negative: none, the 3xx response is returned.
	MaxRedirects int
	// UserAgent is sent unless the request sets one. Optional; default
	// DefaultUserAgent.
	UserAgent string
	// IdempotencyHeader, when set (for example "Idempotency-Key"), makes
	// the http_request tool send its call's idempotency key in that
	// header on requests other than GET and HEAD that do not set it.
	// Optional.
	IdempotencyHeader string
}

// Request is one HTTP request.
type Request struct {
	// Method is optional; default GET.
	Method string `json:"method,omitempty"`
	// URL is an absolute http or https URL. Required.
	URL string `json:"url"`
	// Headers are sent as given. Host, Content-Length, Transfer-Encoding
	// and connection-level headers cannot be set.
	Headers map[string]string `json:"headers,omitempty"`
	// Body is sent as the request body. Optional.
	Body string `json:"body,omitempty"`
}

// Response is an HTTP response. A status of 4xx or 5xx is a Response, not
// an error.
type Response struct {
	StatusCode int `json:"status"`
	// Headers holds each header's values joined with ", ".
	Headers map[string]string `json:"headers"`
	// Body is the body as text, or base64 when BodyEncoding says so.
	Body string `json:"body"`
	// BodyEncoding is "base64" when the body is not valid UTF-8 text;
	// empty otherwise.
	BodyEncoding string `json:"body_encoding,omitempty"`
	// Truncated is set when the body was longer than the limit and was
	// cut.
	Truncated bool `json:"truncated,omitempty"`
	// URL is the URL of the final response, after redirects.
	URL string `json:"url"`
}

// Client sends HTTP requests within the limits of its Config. It is safe
// for concurrent use.
type Client struct {
	cfg   Config
	hosts []string
	http  *http.Client
}

// New returns a Client. cfg may be nil, which refuses every request.
func New(cfg *Config) (*Client, error) {
	c := &Client{}
	if cfg != nil {
		c.cfg = *cfg
	}
	cfg = &c.cfg
	for _, h := range cfg.AllowHosts {
		h = normalizeHost(h)
		if h == "" || (strings.Contains(h, "*") && h != "*" && (!strings.HasPrefix(h, "*.") || strings.Count(h, "*") > 1)) {
			return nil, fmt.Errorf("httpreq: AllowHosts entry %q: want a host name, *.domain or *", h)
		}
		c.hosts = append(c.hosts, h)
	}
	for _, p := range cfg.AllowNetworks {
		if !p.IsValid() {
			return nil, fmt.Errorf("httpreq: AllowNetworks entry %v is not valid", p)
		}
	}
	if len(cfg.Methods) == 0 {
		cfg.Methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	}
	methods := make([]string, len(cfg.Methods))
	for i, m := range cfg.Methods {
		methods[i] = strings.ToUpper(strings.TrimSpace(m))
	}
	cfg.Methods = methods
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.MaxRedirects == 0 {
		cfg.MaxRedirects = DefaultMaxRedirects
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}

	dialer := &net.Dialer{Timeout: cfg.Timeout, Control: c.checkDial}
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would dial on our behalf, unchecked
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
	}
	c.http = &http.Client{Transport: transport, Timeout: cfg.Timeout, CheckRedirect: c.checkRedirect}
	return c, nil
}

// checkDial runs after the host name is resolved, on each address about to
// be dialed, before any packet is sent: this is where a name that
// resolves (or is rebound) to an internal address is caught.
func (c *Client) checkDial(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("httpreq: dial %s: %w", address, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("httpreq: dial %s: %w", address, err)
	}
	return c.checkIP(address, ip)
}

func (c *Client) checkIP(host string, ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	for _, p := range c.cfg.AllowNetworks {
		if p.Contains(ip) {
			return nil
		}
	}
	if reason := nonPublic(ip); reason != "" {
		return &BlockedAddressError{Host: host, IP: ip, Reason: reason}
	}
	return nil
}

// Address ranges that are not public beyond what netip.Addr's methods
// know. Read-only.
var ( //nolint:gochecknoglobals // constant tables
	specialRanges = []struct {
		prefix netip.Prefix
		reason string
	}{
		{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
		{netip.MustParsePrefix("100.64.0.0/10"), "shared (carrier-grade NAT)"},
		{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol"},
		{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
		{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
		{netip.MustParsePrefix("fec0::/10"), "site-local"},
		{netip.MustParsePrefix("::/96"), "IPv4-compatible"},
		{netip.MustParsePrefix("100::/64"), "discard"},
	}
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// nonPublic returns why ip may not be dialed by default, or "" for a
// public address.
func nonPublic(ip netip.Addr) string {
	switch {
	case !ip.IsValid():
		return "invalid"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsPrivate():
		return "private"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast"
	case ip.Is4() && ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	for _, r := range specialRanges {
		if r.prefix.Contains(ip) {
			return r.reason
		}
	}
	// IPv6 addresses that carry an IPv4 address are judged by it.
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		if reason := nonPublic(netip.AddrFrom4([4]byte(b[12:16]))); reason != "" {
			return "NAT64 of " + reason
		}
	case sixToFour.Contains(ip):
		if reason := nonPublic(netip.AddrFrom4([4]byte(b[2:6]))); reason != "" {
			return "6to4 of " + reason
		}
	}
	return ""
}

func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// hostAllowed reports whether host (without port) is on the allow-list.
func (c *Client) hostAllowed(host string) bool {
	host = normalizeHost(host)
	for _, pat := range c.hosts {
		switch {
		case pat == "*", pat == host:
			return true
		case strings.HasPrefix(pat, "*."):
			if strings.HasSuffix(host, pat[1:]) && len(host) > len(pat)-1 {
				return true
			}
		}
	}
	return false
}

// checkURL checks a URL's scheme, host and, for an IP literal, address.
func (c *Client) checkURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: URL scheme %q: only http and https are allowed", ErrInvalidRequest, u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: URL %q has no host", ErrInvalidRequest, u.Redacted())
	}
	if !c.hostAllowed(host) {
		return fmt.Errorf("%w: %s", ErrHostNotAllowed, host)
	}
	// An IP literal is checked now for a clear error; every address is
	// checked again when dialed.
	if ip, err := netip.ParseAddr(host); err == nil {
		return c.checkIP(u.Host, ip)
	}
	return nil
}

func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if c.cfg.MaxRedirects < 0 {
		return http.ErrUseLastResponse
	}
	if len(via) > c.cfg.MaxRedirects {
		return fmt.Errorf("%w: more than %d", ErrTooManyRedirects, c.cfg.MaxRedirects)
	}
	if err := c.checkURL(req.URL); err != nil {
		return fmt.Errorf("redirect to %s: %w", req.URL.Redacted(), err)
	}
	return nil
}

// forbiddenHeader reports whether a Request may not set the header with
// canonical name h: headers that belong to the connection or the
// transport.
func forbiddenHeader(h string) bool {
	switch h {
	case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
		"Upgrade", "Te", "Trailer", "Proxy-Connection", "Proxy-Authorization":
		return true
	}
	return false
}

func validHeader(name, value string) error {
	if name == "" {
		return errors.New("empty header name")
	}
	for _, r := range name {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return fmt.Errorf("header name %q is not a token", name)
		}
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return fmt.Errorf("header %s: value contains a line break or NUL", name)
	}
	if forbiddenHeader(http.CanonicalHeaderKey(name)) {
		return fmt.Errorf("header %s cannot be set", http.CanonicalHeaderKey(name))
	}
	return nil
}

// Do sends r and reads the response, within the Config's limits.
func (c *Client) Do(ctx context.Context, r Request) (Response, error) {
	method := strings.ToUpper(strings.TrimSpace(r.Method))
	if method == "" {
		method = http.MethodGet
	}
	if !slices.Contains(c.cfg.Methods, method) {
		return Response{}, fmt.Errorf("%w: method %q is not allowed (allowed: %s)", ErrInvalidRequest, method, strings.Join(c.cfg.Methods, ", "))
	}
	u, err := url.Parse(strings.TrimSpace(r.URL))
	if err != nil {
		return Response{}, fmt.Errorf("%w: URL: %w", ErrInvalidRequest, err)
	}
	if err := c.checkURL(u); err != nil {
		return Response{}, err
	}
	if len(r.Body) > c.cfg.MaxRequestBytes {
		return Response{}, fmt.Errorf("%w: body of %d bytes is over the limit of %d", ErrInvalidRequest, len(r.Body), c.cfg.MaxRequestBytes)
	}
	var body io.Reader
	if r.Body != "" {
		body = strings.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return Response{}, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	for k, v := range r.Headers {
		if err := validHeader(k, v); err != nil {
			return Response{}, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
		req.Header.Set(k, v)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", c.cfg.UserAgent)
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return Response{}, c.classify(ctx, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		return Response{}, c.classify(ctx, u, err)
	}
	out := Response{StatusCode: resp.StatusCode, Headers: map[string]string{}, URL: resp.Request.URL.String()}
	if int64(len(data)) > c.cfg.MaxResponseBytes {
		if c.cfg.ErrorOnOversize {
			return Response{}, fmt.Errorf("%w: %s: body over %d bytes", ErrResponseTooLarge, u.Redacted(), c.cfg.MaxResponseBytes)
		}
		data, out.Truncated = data[:c.cfg.MaxResponseBytes], true
	}
	for k, vs := range resp.Header {
		out.Headers[k] = strings.Join(vs, ", ")
	}
	switch {
	case utf8.Valid(data):
		out.Body = string(data)
	case out.Truncated && utf8.Valid(trimPartialRune(data)):
		out.Body = string(trimPartialRune(data)) // cut inside a character
	default:
		out.Body, out.BodyEncoding = base64.StdEncoding.EncodeToString(data), "base64"
	}
	return out, nil
}

// trimPartialRune drops an incomplete UTF-8 sequence at the end of b.
func trimPartialRune(b []byte) []byte {
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			break
		}
	}
	return b
}

// classify turns a transport error into one of the package's errors where
// one fits, keeping the cause.
func (c *Client) classify(ctx context.Context, u *url.URL, err error) error {
	target := u.Redacted()
	switch {
	case errors.Is(err, ErrBlockedAddress), errors.Is(err, ErrHostNotAllowed),
		errors.Is(err, ErrTooManyRedirects), errors.Is(err, ErrInvalidRequest):
		return fmt.Errorf("httpreq: request to %s: %w", target, unwrapURLError(err))
	case ctx.Err() != nil:
		return fmt.Errorf("httpreq: request to %s: %w", target, ctx.Err())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: request to %s took longer than %s: %w", ErrTimeout, target, c.cfg.Timeout, unwrapURLError(err))
	}
	return fmt.Errorf("httpreq: request to %s: %w", target, unwrapURLError(err))
}

// unwrapURLError drops net/http's *url.Error wrapper, whose text repeats
// the method and URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
