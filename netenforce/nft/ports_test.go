package nft

import (
	"net"
	"net/netip"
	"testing"

	"github.com/hivesec/hive/netenforce/policy"
	"github.com/hivesec/hive/structs"
)

// TestPublishedPorts connects to the node's address at a published port,
// from another allocation and from the node itself, and reaches the
// allocation behind it; a policy that isolates that allocation closes the
// published port too.
func TestPublishedPorts(t *testing.T) {
	eps, ips, tp, a := applierWorld(t, 2)
	node := netip.MustParseAddr(gateway)
	if err := a.SetPorts(node, []PortForward{{HostPort: 9000, Addr: ips[1], To: 8080}}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetPorts(node, []PortForward{{HostPort: 9000, Addr: ips[1], To: 8080}, {HostPort: 9000, Addr: ips[0], To: 8080}}); err == nil {
		t.Fatal("a host port published twice was accepted")
	}
	apply := func(pols []structs.NetworkPolicy) {
		t.Helper()
		r, err := policy.Compile(eps, pols, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	viaNode := func(from *testNS, local *net.TCPAddr) bool {
		var c net.Conn
		err := from.do(func() (err error) {
			d := net.Dialer{Timeout: probeTimeout, LocalAddr: local}
			c, err = d.Dial("tcp", netip.AddrPortFrom(node, 9000).String())
			return err
		})
		if err != nil {
			return false
		}
		defer c.Close()
		return echo(c, "published") == nil
	}
	apply(nil)
	if !viaNode(tp.eps[0], &net.TCPAddr{IP: ips[0].AsSlice()}) {
		t.Fatal("allocation a cannot reach b through the published port")
	}
	if !viaNode(tp.node, nil) {
		t.Fatal("the node cannot reach b through its own published port")
	}
	apply([]structs.NetworkPolicy{{Namespace: "x", Name: "isolate-b", PolicyTypes: []string{"Ingress"},
		Selector: structs.LabelSelector{MatchLabels: map[string]string{"app": "b"}}}})
	if viaNode(tp.eps[0], &net.TCPAddr{IP: ips[0].AsSlice()}) {
		t.Fatal("the published port bypasses b's ingress policy")
	}
}
