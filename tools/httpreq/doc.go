// Package httpreq lets an agent send HTTP requests without letting it
// reach what it should not.
//
// A Client sends one request (method, URL, headers, body) and returns the
// status, headers and body. What it may reach is set by its Config:
//
//   - Hosts: only those on AllowHosts, exact ("api.example.com") or by
//     wildcard ("*.example.com" for its subdomains); "*" allows any.
//     Nothing is allowed by default.
//   - Addresses: no server-side request forgery. Loopback, private
//     (RFC 1918, IPv6 ULA), link-local (including the cloud metadata
//     address 169.254.169.254), unspecified, multicast and other
//     non-public addresses are refused unless a range on AllowNetworks
//     covers them. The check runs on the resolved address at dial time,
//     in the net.Dialer's Control function, before any packet is sent: a
//     host name that resolves, or is rebound, to an internal address is
//     refused too. No proxy is used.
//   - Redirects: followed up to MaxRedirects, each one checked again.
//   - Limits: Timeout bounds the whole request; MaxResponseBytes bounds
//     the body read, which is cut (Response.Truncated) or, with
//     ErrorOnOversize, refused.
//
// For example:
//
//	c, _ := httpreq.New(&httpreq.Config{AllowHosts: []string{"api.github.com"}})
//	resp, err := c.Do(ctx, httpreq.Request{URL: "https://api.github.com/zen"})
//
// A 4xx or 5xx status is a Response, not an error. Refusals are errors
// matching ErrHostNotAllowed, ErrBlockedAddress (a *BlockedAddressError
// says which address and why), ErrInvalidRequest, ErrTooManyRedirects or
// ErrResponseTooLarge; a request that runs out of time matches
// ErrTimeout.
//
// Tool wraps a Client as the agent tool http_request for package tools.
package httpreq
