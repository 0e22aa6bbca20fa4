package httpreq

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

// nonPublic is judged on addresses alone: no packet is sent.
func TestNonPublic(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"127.0.0.1":        "loopback",
		"127.8.9.10":       "loopback",
		"::1":              "loopback",
		"169.254.169.254":  "link-local",
		"fe80::1":          "link-local",
		"10.1.2.3":         "private",
		"172.16.0.1":       "private",
		"172.31.255.255":   "private",
		"192.168.0.1":      "private",
		"fd12:3456::1":     "private",
		"0.0.0.0":          "unspecified",
		"::":               "unspecified",
		"0.1.2.3":          "this-network",
		"224.0.0.1":        "link-local",
		"239.1.2.3":        "multicast",
		"ff0e::1":          "multicast",
		"255.255.255.255":  "broadcast",
		"100.64.0.1":       "shared (carrier-grade NAT)",
		"240.0.0.1":        "reserved",
		"64:ff9b::7f00:1":  "NAT64 of loopback",
		"2002:a00:1::1":    "6to4 of private",
		"::7f00:1":         "IPv4-compatible",
		"8.8.8.8":          "",
		"1.1.1.1":          "",
		"172.32.0.1":       "",
		"2606:4700::1111":  "",
		"64:ff9b::808:808": "",
	}
	for addr, want := range cases {
		require.Equal(t, want, nonPublic(netip.MustParseAddr(addr)), addr)
	}
	// IPv4-mapped IPv6 is unmapped before the check.
	c, err := New(&Config{AllowHosts: []string{"*"}})
	require.NoError(t, err)
	require.ErrorIs(t, c.checkIP("x", netip.MustParseAddr("::ffff:127.0.0.1")), ErrBlockedAddress)
	require.NoError(t, c.checkIP("x", netip.MustParseAddr("::ffff:8.8.8.8")))
}

func TestHostAllowed(t *testing.T) {
	t.Parallel()
	c, err := New(&Config{AllowHosts: []string{"API.example.com.", "*.hooks.example.org", "203.0.113.7"}})
	require.NoError(t, err)
	for host, want := range map[string]bool{
		"api.example.com":           true,
		"API.EXAMPLE.COM.":          true,
		"www.example.com":           false,
		"example.com":               false,
		"a.hooks.example.org":       true,
		"a.b.hooks.example.org":     true,
		"hooks.example.org":         false,
		"evilhooks.example.org":     false,
		"hooks.example.org.evil.io": false,
		"203.0.113.7":               true,
		"203.0.113.8":               false,
	} {
		require.Equal(t, want, c.hostAllowed(host), host)
	}
	all, err := New(&Config{AllowHosts: []string{"*"}})
	require.NoError(t, err)
	require.True(t, all.hostAllowed("anything.example"))
	none, err := New(nil)
	require.NoError(t, err)
	require.False(t, none.hostAllowed("example.com"))

	for _, bad := range []string{"a*.example.com", "*.*.example.com", "", "ex*mple.com"} {
		_, err := New(&Config{AllowHosts: []string{bad}})
		require.Error(t, err, bad)
	}
}
