package allocnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/hivesec/hive/netenforce/ipam"
)

func TestSetup(t *testing.T) {
	e := newEnv(t, "198.19.7.0/24")
	// A node whose owner answers ARP only for addresses of the asking
	// interface (arp_ignore=2): the gateway is not an address of any veth,
	// so the allocations must not depend on ARP for it.
	e.hostDo(func() error { return sysctl("net/ipv4/conf/all/arp_ignore", "2") })
	m := e.newManager(e.config())

	// Called from the test's goroutine, which is not in the host
	// namespace: the Manager works in New's namespace regardless.
	a := setup(t, m, "alloc-a")
	b := setup(t, m, "alloc-b")

	if a.Addr.String() != "198.19.7.2" || b.Addr.String() != "198.19.7.3" {
		t.Fatalf("addresses %s, %s; want .2 and .3 (.1 is the gateway)", a.Addr, b.Addr)
	}
	if !regexp.MustCompile(`^hv[0-9a-f]{10}$`).MatchString(a.HostVeth) || a.HostVeth == b.HostVeth {
		t.Fatalf("host veths %q, %q", a.HostVeth, b.HostVeth)
	}
	if a.NetnsPath != filepath.Join(e.nsDir, netnsName("alloc-a")) || !regexp.MustCompile(`/hive-[0-9a-f]{12}$`).MatchString(a.NetnsPath) {
		t.Fatalf("netns path %s", a.NetnsPath)
	}
	if a.AllocID != "alloc-a" {
		t.Fatalf("alloc ID %q", a.AllocID)
	}
	if _, err := netlink.LinkByName(a.HostVeth); err == nil {
		t.Fatalf("%s exists in the test process's namespace; want it only in the host's", a.HostVeth)
	}
	nsA, nsB := allocNS(t, a), allocNS(t, b)
	// New namespaces inherit the root namespace's arp_ignore; with 2, an
	// allocation would not answer ARP from the node, whose source
	// address is not inside the allocation's /32.
	for _, ns := range []netns.NsHandle{nsA, nsB} {
		if err := onThreadIn(ns, func() error { return sysctl("net/ipv4/conf/all/arp_ignore", "2") }); err != nil {
			t.Fatal(err)
		}
	}

	// Traffic: allocation to allocation both ways, and to the gateway.
	echoServer(t, nsB, "198.19.7.3:8080")
	echoServer(t, nsA, "198.19.7.2:8080")
	echoServer(t, e.host, "198.19.7.1:9090")
	for _, c := range []struct {
		from netns.NsHandle
		name string
		to   string
	}{{nsA, "a -> b", "198.19.7.3:8080"}, {nsB, "b -> a", "198.19.7.2:8080"},
		{nsA, "a -> gateway", "198.19.7.1:9090"}, {nsB, "b -> gateway", "198.19.7.1:9090"}} {
		if err := echo(c.from, c.to); err != nil {
			t.Errorf("%s (%s): %v", c.name, c.to, err)
		}
	}

	// What a process in the allocation sees.
	err := onThreadIn(nsA, func() error {
		eth, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if eth.MTU != DefaultMTU || eth.Flags&net.FlagUp == 0 {
			return fmt.Errorf("eth0: MTU %d, flags %v; want MTU %d, up", eth.MTU, eth.Flags, DefaultMTU)
		}
		addrs, err := eth.Addrs()
		if err != nil || len(addrs) == 0 || addrs[0].String() != "198.19.7.2/32" {
			return fmt.Errorf("eth0 addresses %v (%v); want 198.19.7.2/32", addrs, err)
		}
		lo, err := net.InterfaceByName("lo")
		if err != nil || lo.Flags&net.FlagUp == 0 {
			return fmt.Errorf("lo is not up: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	in, err := handleIn(nsA)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	eth, err := in.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	routes, err := in.RouteList(eth, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var haveDefault, haveGW bool
	for _, r := range routes {
		switch {
		case r.Dst == nil || r.Dst.String() == "0.0.0.0/0":
			haveDefault = r.Gw.String() == "198.19.7.1" && r.Flags&int(netlink.FLAG_ONLINK) != 0
		case r.Dst.String() == "198.19.7.1/32":
			haveGW = r.Scope == netlink.SCOPE_LINK
		}
	}
	if !haveDefault || !haveGW {
		t.Errorf("routes inside: %v; want default via 198.19.7.1 onlink and 198.19.7.1 scope link", routes)
	}

	// The node's side.
	h := e.hostHandle()
	hv, err := h.LinkByName(a.HostVeth)
	if err != nil {
		t.Fatal(err)
	}
	if hv.Attrs().MTU != DefaultMTU || hv.Attrs().MasterIndex != 0 {
		t.Errorf("%s: MTU %d, master %d; want %d and no bridge", a.HostVeth, hv.Attrs().MTU, hv.Attrs().MasterIndex, DefaultMTU)
	}
	rs, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: hv.Attrs().Index}, netlink.RT_FILTER_OIF)
	if err != nil || len(rs) != 1 || rs[0].Dst.String() != "198.19.7.2/32" || rs[0].Scope != netlink.SCOPE_LINK {
		t.Errorf("routes via %s: %v (%v); want exactly 198.19.7.2/32 scope link", a.HostVeth, rs, err)
	}
	br, err := h.LinkByName(BridgeName)
	if err != nil {
		t.Fatal(err)
	}
	if addrs, _ := h.AddrList(br, netlink.FAMILY_V4); len(addrs) != 1 || addrs[0].IPNet.String() != "198.19.7.1/24" || br.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("%s: addresses %v, flags %v; want up with 198.19.7.1/24", BridgeName, addrs, br.Attrs().Flags)
	}
	for key, want := range map[string]string{
		"net/ipv4/ip_forward":                           "1",
		"net/ipv4/conf/" + a.HostVeth + "/rp_filter":    "1",
		"net/ipv6/conf/" + a.HostVeth + "/disable_ipv6": "1",
		"net/ipv4/conf/" + a.HostVeth + "/proxy_arp":    "0",
		"net/ipv4/conf/" + a.HostVeth + "/forwarding":   "1",
		"net/ipv4/conf/" + BridgeName + "/forwarding":   "1",
		"net/ipv4/conf/" + b.HostVeth + "/rp_filter":    "1",
		"net/ipv6/conf/" + b.HostVeth + "/disable_ipv6": "1",
		"net/ipv4/conf/all/arp_ignore":                  "2",
	} {
		if got := readSysctl(t, e.host, key); got != want {
			t.Errorf("host %s = %s, want %s", key, got, want)
		}
	}

	// Setup again: the same, nothing made anew.
	idx := hv.Attrs().Index
	ino := inode(t, a.NetnsPath)
	again := setup(t, m, "alloc-a")
	if *again != *a {
		t.Errorf("second Setup: %+v, first: %+v", again, a)
	}
	if hv2, err := h.LinkByName(a.HostVeth); err != nil || hv2.Attrs().Index != idx || inode(t, a.NetnsPath) != ino {
		t.Errorf("second Setup made the veth or namespace anew")
	}
	if got := m.Attachments(); len(got) != 2 || got[0] != *a || got[1] != *b {
		t.Errorf("Attachments() = %+v", got)
	}
}

// Same-node traffic is routed by the node, so it passes the inet forward
// hook where table inet hive polices it: that is why allocations are
// routed /32s, not bridge ports (see netenforce/nft, "Same-node traffic").
func TestSameNodeTrafficPassesForwardHook(t *testing.T) {
	e := newEnv(t, "198.19.7.0/24")
	m := e.newManager(e.config())
	a, b := setup(t, m, "alloc-a"), setup(t, m, "alloc-b")
	nsA, nsB := allocNS(t, a), allocNS(t, b)
	echoServer(t, nsB, "198.19.7.3:8080")
	echoServer(t, nsB, "198.19.7.3:8081")

	c, err := nftables.New(nftables.WithNetNSFd(int(e.host)))
	if err != nil {
		t.Fatal(err)
	}
	tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "allocnet_test"})
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "forward", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	port := make([]byte, 2)
	binary.BigEndian.PutUint16(port, 8081)
	// ip saddr A ip daddr B tcp dport 8081 counter drop
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.Addr.AsSlice()},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b.Addr.AsSlice()},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("nftables: %v", err)
	}

	if err := echo(nsA, "198.19.7.3:8080"); err != nil {
		t.Fatalf("a -> b:8080 (not matched by the rule): %v", err)
	}
	if conn, err := dial(nsA, "198.19.7.3:8081", 500*time.Millisecond); err == nil {
		conn.Close()
		t.Fatal("a -> b:8081 connected although the forward hook drops it")
	}
	rules, err := c.GetRules(tbl, ch)
	if err != nil || len(rules) != 1 {
		t.Fatalf("rules: %v %v", rules, err)
	}
	var packets uint64
	for _, x := range rules[0].Exprs {
		if ctr, ok := x.(*expr.Counter); ok {
			packets = ctr.Packets
		}
	}
	if packets == 0 {
		t.Fatal("the forward hook's rule counted no packets from a to b")
	}
}

// An agent restart: a new Manager over the same state finds every
// allocation's network as it was and leaves it alone, so running
// containers and open connections are undisturbed.
func TestRestart(t *testing.T) {
	e := newEnv(t, "198.19.7.0/24")
	m := e.newManager(e.config())
	a, b := setup(t, m, "alloc-a"), setup(t, m, "alloc-b")
	nsA, nsB := allocNS(t, a), allocNS(t, b)
	echoServer(t, nsB, "198.19.7.3:8080")
	conn, err := dial(nsA, "198.19.7.3:8080", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := roundTrip(conn); err != nil {
		t.Fatal(err)
	}
	h := e.hostHandle()
	hvA, _ := h.LinkByName(a.HostVeth)
	inoA := inode(t, a.NetnsPath)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Setup("alloc-c"); err == nil {
		t.Fatal("Setup on a closed Manager succeeded")
	}

	m2 := e.newManager(e.config())
	if got := m2.Attachments(); len(got) != 2 || got[0] != *a || got[1] != *b {
		t.Fatalf("after restart Attachments() = %+v; want %+v and %+v", got, a, b)
	}
	a2 := setup(t, m2, "alloc-a")
	if *a2 != *a {
		t.Fatalf("after restart: %+v, before: %+v", a2, a)
	}
	if l, err := h.LinkByName(a.HostVeth); err != nil || l.Attrs().Index != hvA.Attrs().Index {
		t.Fatalf("the veth was made anew (%v)", err)
	}
	if inode(t, a.NetnsPath) != inoA {
		t.Fatal("the namespace was made anew")
	}
	if err := roundTrip(conn); err != nil {
		t.Fatalf("the connection opened before the restart: %v", err)
	}
	if c := setup(t, m2, "alloc-c"); c.Addr.String() != "198.19.7.4" {
		t.Fatalf("a new allocation after restart got %s", c.Addr)
	}
}

// Setup repairs what is missing or wrong and keeps the namespace when it
// still exists (a container in it stays attached).
func TestRepair(t *testing.T) {
	e := newEnv(t, "198.19.7.0/24")
	m := e.newManager(e.config())
	a := setup(t, m, "alloc-a")
	nsA := allocNS(t, a)
	echoServer(t, e.host, "198.19.7.1:9090")
	h := e.hostHandle()
	in, err := handleIn(nsA)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	ino := inode(t, a.NetnsPath)

	check := func(what string, sameNetns bool) {
		t.Helper()
		if _, err := m.Setup("alloc-a"); err != nil {
			t.Fatalf("%s: Setup: %v", what, err)
		}
		ns := nsA
		if !sameNetns {
			ns = allocNS(t, a)
		} else if inode(t, a.NetnsPath) != ino {
			t.Fatalf("%s: the namespace was made anew", what)
		}
		if err := echo(ns, "198.19.7.1:9090"); err != nil {
			t.Fatalf("%s: a -> gateway after Setup: %v", what, err)
		}
	}

	hv, _ := h.LinkByName(a.HostVeth)
	if err := h.LinkDel(hv); err != nil {
		t.Fatal(err)
	}
	check("host veth deleted", true)

	eth, _ := in.LinkByName("eth0")
	routes, _ := in.RouteList(eth, netlink.FAMILY_V4)
	for _, r := range routes {
		_ = in.RouteDel(&r)
	}
	_ = in.NeighDel(permanentNeigh(eth.Attrs().Index, netip.MustParseAddr("198.19.7.1"), nil))
	_ = in.LinkSetDown(eth)
	_ = in.LinkSetMTU(eth, 1500)
	check("eth0 down, MTU 1500, routes and neighbour inside deleted", true)
	if eth, _ := in.LinkByName("eth0"); eth.Attrs().MTU != DefaultMTU {
		t.Fatalf("eth0 MTU %d after repair", eth.Attrs().MTU)
	}

	hv, _ = h.LinkByName(a.HostVeth)
	_ = h.RouteDel(hostRoute(hv.Attrs().Index, a.Addr))
	_ = h.NeighDel(permanentNeigh(hv.Attrs().Index, a.Addr, nil))
	_ = h.LinkSetDown(hv)
	check("host route and neighbour deleted, veth down", true)

	// A stray eth0 inside (here a veth whose peer is in the namespace
	// too) and no host veth.
	hv, _ = h.LinkByName(a.HostVeth)
	if err := h.LinkDel(hv); err != nil {
		t.Fatal(err)
	}
	if err := in.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "stray"}); err != nil {
		t.Fatal(err)
	}
	check("a stray eth0 inside", true)

	// The namespace file unmounted behind the agent's back (its
	// namespace lives on while anything holds it, here nsA): the path
	// now names nothing, so a new namespace and veth are made.
	if err := unix.Unmount(a.NetnsPath, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	check("namespace file unmounted", false)
	if inode(t, a.NetnsPath) == ino {
		t.Fatal("the unmounted namespace is still at the path")
	}

	// An agent that died between creating the namespace file and
	// mounting it leaves an empty file.
	b := m.attachment("alloc-b", netip.Addr{})
	if err := os.WriteFile(b.NetnsPath, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	b2 := setup(t, m, "alloc-b")
	if err := echo(allocNS(t, b2), "198.19.7.1:9090"); err != nil {
		t.Fatalf("b over a stale empty namespace file: %v", err)
	}
}

func TestTeardown(t *testing.T) {
	e := newEnv(t, "198.19.7.0/24")
	m := e.newManager(e.config())
	a, b := setup(t, m, "alloc-a"), setup(t, m, "alloc-b")
	nsB := allocNS(t, b)
	echoServer(t, e.host, "198.19.7.1:9090")
	h := e.hostHandle()

	for i := range 2 {
		if err := m.Teardown("alloc-a"); err != nil {
			t.Fatalf("Teardown #%d: %v", i+1, err)
		}
	}
	if err := m.Teardown("never-set-up"); err != nil {
		t.Fatalf("Teardown of an unknown allocation: %v", err)
	}
	if _, err := h.LinkByName(a.HostVeth); err == nil {
		t.Errorf("%s still exists", a.HostVeth)
	}
	if _, err := os.Stat(a.NetnsPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists: %v", a.NetnsPath, err)
	}
	routes, err := h.RouteGet(a.Addr.AsSlice())
	if err != nil {
		t.Fatal(err)
	}
	if br, _ := h.LinkByName(BridgeName); len(routes) != 1 || routes[0].LinkIndex != br.Attrs().Index {
		t.Errorf("route to %s after Teardown: %v; want only the subnet's, through %s", a.Addr, routes, BridgeName)
	}
	if _, ok := m.store.Lookup("alloc-a"); ok {
		t.Error("the address is still allocated")
	}
	if got := m.Attachments(); len(got) != 1 || got[0] != *b {
		t.Errorf("Attachments() = %+v", got)
	}
	if err := echo(nsB, "198.19.7.1:9090"); err != nil {
		t.Errorf("b after a's teardown: %v", err)
	}
	// Round-robin: the freed address is not handed out at once.
	if c := setup(t, m, "alloc-c"); c.Addr == a.Addr {
		t.Errorf("alloc-c got alloc-a's address %s at once", c.Addr)
	}
	for _, id := range []string{"alloc-b", "alloc-c"} {
		if err := m.Teardown(id); err != nil {
			t.Fatal(err)
		}
	}
	if ents, _ := os.ReadDir(e.nsDir); len(ents) != 0 {
		t.Errorf("namespace files left: %v", ents)
	}
	links, _ := h.LinkList()
	for _, l := range links {
		if l.Type() == "veth" {
			t.Errorf("veth %s left", l.Attrs().Name)
		}
	}
}

// The node got a new lease: the old allocations' networks go, the bridge
// carries only the new gateway.
func TestNewLease(t *testing.T) {
	e := newEnv(t, "198.19.7.0/24")
	m := e.newManager(e.config())
	a := setup(t, m, "alloc-a")
	m.Close()

	cfg := e.config()
	cfg.Subnet = netip.MustParsePrefix("198.19.9.0/24")
	m2 := e.newManager(cfg)
	h := e.hostHandle()
	if _, err := h.LinkByName(a.HostVeth); err == nil {
		t.Error("the old allocation's veth is still there")
	}
	if _, err := os.Stat(a.NetnsPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the old allocation's namespace file: %v", err)
	}
	if got := m2.Attachments(); len(got) != 0 {
		t.Errorf("Attachments() = %+v", got)
	}
	br, _ := h.LinkByName(BridgeName)
	if addrs, _ := h.AddrList(br, netlink.FAMILY_V4); len(addrs) != 1 || addrs[0].IPNet.String() != "198.19.9.1/24" {
		t.Errorf("%s addresses %v; want only 198.19.9.1/24", BridgeName, addrs)
	}
	b := setup(t, m2, "alloc-a")
	if b.Addr.String() != "198.19.9.2" {
		t.Fatalf("in the new subnet: %s", b.Addr)
	}
	echoServer(t, e.host, "198.19.9.1:9090")
	if err := echo(allocNS(t, b), "198.19.9.1:9090"); err != nil {
		t.Fatal(err)
	}
}

func TestFull(t *testing.T) {
	e := newEnv(t, "198.19.7.0/30") // one address: .2
	m := e.newManager(e.config())
	setup(t, m, "alloc-a")
	_, err := m.Setup("alloc-b")
	if !errors.Is(err, ipam.ErrFull) {
		t.Fatalf("second allocation in a /30: %v; want ipam.ErrFull", err)
	}
	b := m.attachment("alloc-b", netip.Addr{})
	if _, err := os.Stat(b.NetnsPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a namespace file for the refused allocation: %v", err)
	}
	if _, err := e.hostHandle().LinkByName(b.HostVeth); err == nil {
		t.Error("a veth for the refused allocation")
	}
}

// Setup and Teardown from many goroutines at once; each allocation's first
// connection, made the moment Setup returns while others are being set up,
// goes through at once.
func TestConcurrentSetupTeardown(t *testing.T) {
	e := newEnv(t, "198.19.7.0/24")
	m := e.newManager(e.config())
	echoServer(t, e.host, "198.19.7.1:9090")
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprint("alloc-", i)
			at, err := m.Setup(id)
			if err != nil {
				errs <- err
				return
			}
			ns, ok, err := openNetns(at.NetnsPath)
			if err != nil || !ok {
				errs <- fmt.Errorf("%s: %v", id, err)
				return
			}
			// Shorter than the first SYN retransmission (1 s): a first
			// packet lost on a veth not yet up fails here.
			c, err := dial(ns, "198.19.7.1:9090", 700*time.Millisecond)
			ns.Close()
			if err == nil {
				err = roundTrip(c)
				c.Close()
			}
			if err != nil {
				errs <- fmt.Errorf("%s -> gateway right after Setup: %w", id, err)
			}
			if i%2 == 0 {
				if err := m.Teardown(id); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := m.Attachments()
	seen := map[netip.Addr]bool{}
	for _, at := range got {
		if seen[at.Addr] {
			t.Errorf("address %s twice", at.Addr)
		}
		seen[at.Addr] = true
	}
	if len(got) != n/2 {
		t.Errorf("%d attachments, want %d", len(got), n/2)
	}
	if ents, _ := os.ReadDir(e.nsDir); len(ents) != n/2 {
		t.Errorf("%d namespace files, want %d", len(ents), n/2)
	}
}

func TestNewRefusesAForeignHive0(t *testing.T) {
	e := newEnv(t, "198.19.7.0/24")
	e.hostDo(func() error {
		// No dummy module here; any device that is not a bridge will do.
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: BridgeName}, PeerName: "hive0-peer"})
	})
	err := onThreadIn(e.host, func() error {
		m, err := New(e.config())
		if err == nil {
			m.Close()
		}
		return err
	})
	if err == nil || !regexp.MustCompile(`hive0 exists but is a veth device`).MatchString(err.Error()) {
		t.Fatalf("New with a veth named hive0: %v", err)
	}
}

// BenchmarkSetupTeardown is the latency of giving one allocation its
// network and removing it again. Teardown dominates: the kernel waits for
// RCU grace periods when it unregisters the veth.
func BenchmarkSetupTeardown(b *testing.B) {
	e := newEnv(b, "198.19.8.0/24")
	m := e.newManager(e.config())
	var setupTime, teardownTime time.Duration
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprint("bench-", i)
		t0 := time.Now()
		if _, err := m.Setup(id); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := m.Teardown(id); err != nil {
			b.Fatal(err)
		}
		setupTime += t1.Sub(t0)
		teardownTime += time.Since(t1)
	}
	b.ReportMetric(float64(setupTime.Microseconds())/float64(b.N)/1000, "setup-ms/op")
	b.ReportMetric(float64(teardownTime.Microseconds())/float64(b.N)/1000, "teardown-ms/op")
}
