package nft

import (
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
	requirePrereqs(t)
	eps := []policy.Endpoint{
		ep("a", "x", "a", "198.19.0.10"),
		ep("b", "x", "b", "198.19.0.11"),
		ep("c", "y", "c", "198.19.0.12"),
	}
	ips := []netip.Addr{eps[0].IP, eps[1].IP, eps[2].IP}
	tp := newTopology(t, ips)
	tp.listen(t)
	a := New(WithNetNS(int(tp.node.h)))
	t.Cleanup(func() { _ = a.Delete() })

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
