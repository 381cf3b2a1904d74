package nft

import (
	"net"
	"net/netip"
	"testing"

	"github.com/hivesec/hive/netenforce/policy"
)

// TestGuardDropsSpoofedSources runs real TCP connects through a node
// namespace with two local allocations (198.18.1.0/24) and a peer node's
// allocation (198.18.2.10) behind an interface named hive-wg, with no
// network policy at all: what the guard drops is only spoofing.
func TestGuardDropsSpoofedSources(t *testing.T) {
	requirePrereqs(t)
	ips := []netip.Addr{netip.MustParseAddr("198.18.1.10"), netip.MustParseAddr("198.18.1.11"), netip.MustParseAddr("198.18.2.10")}
	tp := newTopology(t, ips)
	tp.node.exec(t, "ip", "link", "set", "hv2", "down")
	tp.node.exec(t, "ip", "link", "set", "hv2", "name", "hive-wg")
	tp.node.exec(t, "ip", "link", "set", "hive-wg", "up")
	tp.node.exec(t, "ip", "route", "replace", "198.18.2.10/32", "dev", "hive-wg")
	tp.listen(t)
	// Extra source addresses an allocation has no right to.
	tp.eps[0].exec(t, "ip", "addr", "add", "198.18.1.50/32", "dev", "eth0")
	tp.eps[0].exec(t, "ip", "addr", "add", "198.18.2.99/32", "dev", "eth0")
	tp.eps[2].exec(t, "ip", "addr", "add", "198.18.1.60/32", "dev", "eth0")
	// Routes back to them, so without the guard those connects succeed
	// and the test shows it is the guard that drops them.
	tp.node.exec(t, "ip", "route", "add", "198.18.1.50/32", "dev", "hv0")
	tp.node.exec(t, "ip", "route", "add", "198.18.2.99/32", "dev", "hv0")
	tp.node.exec(t, "ip", "route", "add", "198.18.1.60/32", "dev", "hive-wg")

	ruleset, err := policy.Compile(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := New(WithNetNS(int(tp.node.h)))
	t.Cleanup(func() { _ = a.Delete() })
	guard := &Guard{
		ClusterCIDR: netip.MustParsePrefix("198.18.0.0/16"),
		LocalSubnet: netip.MustParsePrefix("198.18.1.0/24"),
		WGInterface: "hive-wg",
		Veths:       map[string]netip.Addr{"hv0": ips[0], "hv1": ips[1]},
	}
	cases := []struct {
		name     string
		from     int
		src, dst string
		guarded  bool // allowed with the guard on
	}{
		{"local allocation from its own address", 0, "198.18.1.10", "198.18.1.11", true},
		{"peer node's allocation through hive-wg", 2, "198.18.2.10", "198.18.1.10", true},
		{"local allocation with another local address", 0, "198.18.1.50", "198.18.1.11", false},
		{"local allocation with a peer subnet's address", 0, "198.18.2.99", "198.18.1.11", false},
		{"through hive-wg with a local address", 2, "198.18.1.60", "198.18.1.11", false},
	}
	connect := func(from int, src, dst string) bool {
		var c net.Conn
		err := tp.eps[from].do(func() (err error) {
			d := net.Dialer{Timeout: probeTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			c, err = d.Dial("tcp", net.JoinHostPort(dst, "8080"))
			return err
		})
		if err != nil {
			if !isTimeout(err) {
				t.Errorf("%s -> %s: unexpected error %v", src, dst, err)
			}
			return false
		}
		defer c.Close()
		return echo(c, "ping") == nil
	}
	for _, withGuard := range []bool{false, true} {
		g := guard
		if !withGuard {
			g = nil
		}
		if err := a.SetGuard(g); err != nil {
			t.Fatal(err)
		}
		if err := a.Apply(ruleset); err != nil {
			t.Fatalf("apply: %v", err)
		}
		for _, c := range cases {
			want := c.guarded || !withGuard
			if got := connect(c.from, c.src, c.dst); got != want {
				t.Errorf("guard %v: %s (%s -> %s): connected %v, want %v", withGuard, c.name, c.src, c.dst, got, want)
			}
		}
	}
	// An invalid guard is refused and leaves the applier as it was.
	bad := *guard
	bad.Veths = map[string]netip.Addr{"hv0": netip.MustParseAddr("198.18.9.9")}
	if err := a.SetGuard(&bad); err == nil {
		t.Fatal("guard with a veth address outside the local subnet accepted")
	}
}
