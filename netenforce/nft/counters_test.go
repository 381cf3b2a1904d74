package nft

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/hivesec/hive/netenforce/policy"
	"github.com/hivesec/hive/structs"
)

// TestCountersAttributeVerdicts sends real connects through a node whose
// policies make known verdicts and reads the counters back: accepts and
// drops land on the policies that select the destination, admin denials on
// the admin policy, quarantine drops on "quarantine"; a policy that
// selects nothing counts nothing.
func TestCountersAttributeVerdicts(t *testing.T) {
	eps, ips, tp, a := applierWorld(t, 3)

	isolateB := structs.NetworkPolicy{Namespace: "x", Name: "isolate-b",
		Selector: structs.LabelSelector{MatchLabels: map[string]string{"app": "b"}}, PolicyTypes: []string{"Ingress"}}
	nobody := structs.NetworkPolicy{Namespace: "x", Name: "nobody",
		Selector: structs.LabelSelector{MatchLabels: map[string]string{"app": "zzz"}}, PolicyTypes: []string{"Ingress"}}
	pols := []structs.NetworkPolicy{isolateB, allowFrom("x", "b", "a", 8080), nobody}
	admin := []structs.AdminNetworkPolicy{{Name: "deny-c-8081", Priority: 1,
		Subject: structs.AdminNetpolSubject{NamespaceSelector: structs.LabelSelector{MatchLabels: map[string]string{"name": "y"}}},
		Ingress: []structs.AdminNetpolRule{{Action: "Deny", Peers: []structs.NetpolPeer{{NamespaceSelector: &structs.LabelSelector{}}},
			Ports: []structs.NetpolPort{{Protocol: "TCP", Port: 8081}}}}}}
	r, err := policy.Compile(eps, pols, admin)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(r); err != nil {
		t.Fatal(err)
	}
	connect := func(from, to int, port uint16) bool {
		c, err := tp.dial(from, netip.AddrPortFrom(ips[to], port))
		if err != nil {
			return false
		}
		defer c.Close()
		return echo(c, "x") == nil
	}
	// a -> b:8080 allowed (by allow-from), b:8081 dropped; twice each.
	for range 2 {
		if !connect(0, 1, 8080) {
			t.Fatal("a -> b:8080 refused")
		}
		if connect(0, 1, 8081) {
			t.Fatal("a -> b:8081 allowed")
		}
	}
	if connect(0, 2, 8081) {
		t.Fatal("a -> c:8081 allowed despite the admin deny")
	}
	counters := func() map[string]uint64 {
		t.Helper()
		got, err := a.Counters()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]uint64{}
		for _, c := range got {
			m[c.Policy+" "+c.Direction+" "+c.Verdict] = c.Packets
			t.Logf("%s %s %s: %d packets, %d bytes", c.Policy, c.Direction, c.Verdict, c.Packets, c.Bytes)
		}
		return m
	}
	got := counters()
	for _, k := range []string{"x/isolate-b ingress accept", "x/isolate-b ingress drop",
		"x/allow-a-to-b ingress accept", "x/allow-a-to-b ingress drop", "admin:deny-c-8081 ingress drop"} {
		if got[k] == 0 {
			t.Errorf("counter %q is 0 after traffic it decided", k)
		}
	}
	for k := range got {
		if strings.HasPrefix(k, "x/nobody") {
			t.Errorf("a policy that selects nothing has a counter: %q", k)
		}
	}
	if got["quarantine  drop"] != 0 {
		t.Errorf("quarantine dropped %d packets with nothing quarantined", got["quarantine  drop"])
	}

	// Quarantine c: a -> c:8080 is dropped by it, and counted there.
	eps[2].Quarantined = true
	if r, err = policy.Compile(eps, pols, admin); err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(r); err != nil {
		t.Fatal(err)
	}
	if connect(0, 2, 8080) {
		t.Fatal("a -> quarantined c allowed")
	}
	if got := counters(); got["quarantine  drop"] == 0 {
		t.Errorf("quarantine drops not counted")
	}
}

// TestElementSync checks the small-change path: a quarantine or an
// endpoint leaving changes only set elements, so Apply sends those and
// keeps the table (and its counters); the kernel's sets then hold exactly
// what a full sync would have written, and verdicts follow.
func TestElementSync(t *testing.T) {
	eps, ips, tp, a := applierWorld(t, 3)
	pols := []structs.NetworkPolicy{{Namespace: "x", Name: "isolate-b", PolicyTypes: []string{"Ingress"},
		Selector: structs.LabelSelector{MatchLabels: map[string]string{"app": "b"}}}, allowFrom("x", "b", "a", 8080)}
	apply := func(eps []policy.Endpoint) *planned {
		t.Helper()
		r, err := policy.Compile(eps, pols, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Apply(r); err != nil {
			t.Fatal(err)
		}
		return plan(r, nil)
	}
	connect := func(to int, port uint16) bool {
		c, err := tp.dial(0, netip.AddrPortFrom(ips[to], port))
		if err != nil {
			return false
		}
		defer c.Close()
		return echo(c, "x") == nil
	}
	accepted := func() uint64 {
		cs, err := a.Counters()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Policy == "x/isolate-b" && c.Verdict == VerdictAccept {
				return c.Packets
			}
		}
		return 0
	}
	apply(eps)
	if a.FullSyncs != 1 || !connect(1, 8080) || !connect(2, 8080) {
		t.Fatalf("first apply: %d full syncs, or traffic refused", a.FullSyncs)
	}
	before := accepted()
	if before == 0 {
		t.Fatal("no accept counted")
	}

	// Quarantine c: elements only.
	q := append([]policy.Endpoint(nil), eps...)
	q[2].Quarantined = true
	want := apply(q)
	if a.FullSyncs != 1 || a.ElementSyncs != 1 {
		t.Fatalf("quarantine: %d full and %d element syncs, want 1 and 1", a.FullSyncs, a.ElementSyncs)
	}
	if connect(2, 8080) || !connect(1, 8080) {
		t.Fatal("after the element sync: c reachable or b refused")
	}
	if got := accepted(); got <= before {
		t.Fatalf("accept counter %d after the element sync, was %d: the table was replaced", got, before)
	}
	c := readbackConn(t, tp.node)
	for _, s := range want.sets {
		if s.set.Interval && !s.set.Concatenation {
			continue // rbtree sets read back with kernel-added end markers
		}
		got := setElems(t, c, s.set.Name)
		w := map[string]string{}
		for _, e := range s.elems {
			k := fmt.Sprintf("%x", e.Key)
			if len(e.KeyEnd) > 0 {
				k += "-" + fmt.Sprintf("%x", e.KeyEnd)
			}
			w[k] = elemValue(e)
		}
		if !mapsEq(got, w) {
			t.Errorf("set %s after the element sync: %v, want %v", s.set.Name, got, w)
		}
	}

	// A policy change is structure: a full sync, counters carried over.
	pols = pols[:1]
	apply(q)
	if a.FullSyncs != 2 {
		t.Fatalf("policy change: %d full syncs, want 2", a.FullSyncs)
	}
	if got := accepted(); got <= before {
		t.Fatalf("accept counter %d after a full sync, was above %d: the bank lost it", got, before)
	}
	if connect(1, 8080) {
		t.Fatal("b reachable after its allow was removed")
	}
}

// applierWorld is the fixture of the traffic tests: endpoints a and b in
// namespace x and c in y (the first n of them) behind a node namespace,
// each listening on the probe ports, and an Applier for the node that is
// removed at the end.
func applierWorld(t *testing.T, n int) ([]policy.Endpoint, []netip.Addr, *topology, *Applier) {
	t.Helper()
	requirePrereqs(t)
	eps := []policy.Endpoint{
		ep("a", "x", "a", "198.19.0.10"),
		ep("b", "x", "b", "198.19.0.11"),
		ep("c", "y", "c", "198.19.0.12"),
	}[:n]
	ips := make([]netip.Addr, n)
	for i := range eps {
		ips[i] = eps[i].IP
	}
	tp := newTopology(t, ips)
	tp.listen(t)
	a := New(WithNetNS(int(tp.node.h)))
	t.Cleanup(func() { _ = a.Delete() })
	return eps, ips, tp, a
}
