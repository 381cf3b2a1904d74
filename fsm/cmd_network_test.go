package fsm

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

func wgKey(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

// populateNetwork adds records to the network tables, for the snapshot
// round trip: w2 (which runs a1) registers a WireGuard key and reports a1's
// address, a1 is quarantined, team-a gets labels and policies.
func populateNetwork(t testing.TB, f *FSM, next func() uint64) {
	t.Helper()
	mustApply(t, f, next(), NodeFingerprintType, &NodeFingerprintRequest{NodeID: "w2", WireGuardKey: wgKey(2), WireGuardPort: 51820, Now: t0})
	subnet := f.State().Snapshot().Node(nil, "w2").Subnet
	addr := strings.TrimSuffix(subnet, "0/24") + "7"
	mustApply(t, f, next(), AllocClientUpdateType, &AllocClientUpdateRequest{NodeID: "w2", Now: t0, Updates: []structs.AllocUpdate{
		{ID: "a1", ClientStatus: structs.AllocRunning, Address: addr},
	}})
	mustApply(t, f, next(), AllocQuarantineType, &AllocQuarantineRequest{AllocID: "a1", Quarantined: true, By: "user:root", Now: t0})
	iso := true
	mustApply(t, f, next(), NamespaceUpdateType, &NamespaceUpdateRequest{Name: "team-a", Update: structs.NamespaceUpdateRequest{
		SetLabels: map[string]string{"tier": "web"}, Isolation: &iso,
	}})
	mustApply(t, f, next(), NetworkPolicyUpsertType, &NetworkPolicyUpsertRequest{Policy: testPolicy("team-a", "allow-web")})
	mustApply(t, f, next(), AdminNetworkPolicyUpsertType, &AdminNetworkPolicyUpsertRequest{Policy: testAdminPolicy("deny-metadata")})
}

func testPolicy(ns, name string) structs.NetworkPolicy {
	return structs.NetworkPolicy{
		Namespace: ns, Name: name,
		Selector:    structs.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		PolicyTypes: []string{structs.PolicyTypeIngress},
		Ingress: []structs.NetpolIngressRule{{
			From:  []structs.NetpolPeer{{IPBlock: &structs.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}}},
			Ports: []structs.NetpolPort{{Protocol: "TCP", Port: 80, EndPort: 90}},
		}},
	}
}

func testAdminPolicy(name string) structs.AdminNetworkPolicy {
	return structs.AdminNetworkPolicy{
		Name: name, Priority: 10,
		Egress: []structs.AdminNetpolRule{{Name: "metadata", Action: "deny",
			Peers: []structs.NetpolPeer{{IPBlock: &structs.IPBlock{CIDR: "169.254.169.254/32"}}}}},
	}
}

// netBootstrapped is bootstrapped with a cluster CIDR of four /24s.
func netBootstrapped(t *testing.T) *FSM {
	t.Helper()
	f := newFSM(t)
	req := bootstrapRequest(workerToken("wk"))
	req.Cluster.ClusterCIDR, req.Cluster.SubnetBits = "198.19.0.0/22", 24
	mustApply(t, f, 1, ClusterBootstrapType, req)
	return f
}

func subnetOf(f *FSM, id string) string {
	n := f.State().Snapshot().Node(nil, id)
	if n == nil {
		return "<no node>"
	}
	return n.Subnet
}

func TestSubnetLeasing(t *testing.T) {
	f := netBootstrapped(t)
	idx := uint64(1)
	next := func() uint64 { idx++; return idx }
	join := func(id string) {
		t.Helper()
		mustApply(t, f, next(), NodeRegisterType, workerJoin("wk", id, id+"-"+time.Duration(idx).String(), t0))
	}

	if got := subnetOf(f, "m1"); got != "" {
		t.Errorf("manager got subnet %q; only workers run allocations", got)
	}
	for _, id := range []string{"w1", "w2", "w3", "w4"} {
		join(id)
	}
	want := map[string]string{"w1": "198.19.0.0/24", "w2": "198.19.1.0/24", "w3": "198.19.2.0/24", "w4": "198.19.3.0/24"}
	for id, w := range want {
		if got := subnetOf(f, id); got != w {
			t.Errorf("%s got subnet %q, want %q (the lowest free, in join order)", id, got, w)
		}
	}

	// The range is full: w5 joins all the same, without a subnet, and an
	// event says why.
	join("w5")
	if got := subnetOf(f, "w5"); got != "" {
		t.Errorf("w5 got subnet %q from a full range", got)
	}
	evs := eventsOfType(f.State(), structs.EventNodeNoSubnet)
	if len(evs) != 1 || evs[0].Subject != "w5" || !strings.Contains(evs[0].Message, "198.19.0.0/22 has no free /24") {
		t.Fatalf("exhaustion events = %+v, want one for w5 naming the range", evs)
	}

	// A rejoin (a renewed identity, same node ID) keeps the subnet.
	join("w2")
	if got := subnetOf(f, "w2"); got != want["w2"] {
		t.Errorf("w2 rejoined with subnet %q, want its old %q", got, want["w2"])
	}
	// The joiner cannot pick its own subnet.
	claim := workerJoin("wk", "w6", "w6-a", t0)
	claim.Node.Subnet = "198.19.3.0/24"
	mustApply(t, f, next(), NodeRegisterType, claim)
	if got := subnetOf(f, "w6"); got != "" {
		t.Errorf("w6 claimed %q and got %q; a full range gives nothing", claim.Node.Subnet, got)
	}

	// Removing w2 frees its subnet; the lowest free one goes to the next
	// worker that registers without one.
	mustApply(t, f, next(), NodeRemoveType, &NodeRemoveRequest{NodeID: "w2", Now: t0})
	mustApply(t, f, next(), NodeFingerprintType, &NodeFingerprintRequest{NodeID: "w6", Now: t0})
	if got := subnetOf(f, "w6"); got != want["w2"] {
		t.Errorf("w6 got %q after w2 left, want w2's old %q", got, want["w2"])
	}
	// Registering again keeps it.
	mustApply(t, f, next(), NodeFingerprintType, &NodeFingerprintRequest{NodeID: "w6", Now: t0})
	if got := subnetOf(f, "w6"); got != want["w2"] {
		t.Errorf("w6 re-registered and got %q, want %q kept", got, want["w2"])
	}
	if got := subnetOf(f, "w5"); got != "" {
		t.Errorf("w5 got %q without registering again", got)
	}

	// Every subnet is held once.
	seen := map[string]string{}
	for _, n := range f.State().Snapshot().Nodes(nil) {
		if n.Subnet == "" {
			continue
		}
		if other, dup := seen[n.Subnet]; dup {
			t.Errorf("subnet %s held by %s and %s", n.Subnet, other, n.ID)
		}
		seen[n.Subnet] = n.ID
	}
}

func TestSubnetLeasingDefaultsAndRestore(t *testing.T) {
	// A cluster that recorded no CIDR (made before the dataplane) leases
	// from the default range.
	f := bootstrapped(t, workerToken("wk"))
	mustApply(t, f, 2, NodeRegisterType, workerJoin("wk", "w1", "w1-a", t0))
	mustApply(t, f, 3, NodeRegisterType, workerJoin("wk", "w2", "w2-a", t0))
	if got := subnetOf(f, "w2"); got != "10.242.1.0/24" {
		t.Fatalf("second worker in the default range got %q, want 10.242.1.0/24", got)
	}
	// A manager restored from a snapshot leases as the others do.
	restored := newFSM(t)
	if err := restored.Restore(io.NopCloser(bytes.NewReader(persist(t, f)))); err != nil {
		t.Fatal(err)
	}
	for _, g := range []*FSM{f, restored} {
		mustApply(t, g, 4, NodeRemoveType, &NodeRemoveRequest{NodeID: "w1", Now: t0})
		mustApply(t, g, 5, NodeRegisterType, workerJoin("wk", "w3", "w3-a", t0))
	}
	if a, b := subnetOf(f, "w3"), subnetOf(restored, "w3"); a != "10.242.0.0/24" || b != a {
		t.Errorf("w3 leased %q on the original and %q on the restored manager, want 10.242.0.0/24 on both", a, b)
	}
}

func TestBootstrapChecksClusterCIDR(t *testing.T) {
	for _, tc := range []struct {
		cidr string
		bits int
	}{
		{"10.0.0.0/33", 24}, {"fd00::/64", 80}, {"10.0.0.1/16", 24}, {"10.0.0.0/16", 16},
		{"10.0.0.0/16", 31}, {"", 24}, {"nope", 24}, {"10.0.0.0/30", 30},
	} {
		f := newFSM(t)
		req := bootstrapRequest()
		req.Cluster.ClusterCIDR, req.Cluster.SubnetBits = tc.cidr, tc.bits
		res := apply(t, f, 1, ClusterBootstrapType, req)
		if !errors.Is(res.Err, ErrInvalid) {
			t.Errorf("bootstrap with %q /%d: %v, want ErrInvalid", tc.cidr, tc.bits, res.Err)
		}
		if f.State().Snapshot().Cluster(nil) != nil {
			t.Errorf("bootstrap with %q /%d was refused but wrote the cluster", tc.cidr, tc.bits)
		}
	}
}

func TestNodeFingerprintWireGuard(t *testing.T) {
	f := bootstrapped(t, workerToken("wk"))
	mustApply(t, f, 2, NodeRegisterType, workerJoin("wk", "w1", "w1-a", t0))
	mustApply(t, f, 3, NodeRegisterType, workerJoin("wk", "w2", "w2-a", t0))
	mustApply(t, f, 4, NodeFingerprintType, &NodeFingerprintRequest{NodeID: "w1", WireGuardKey: wgKey(1), WireGuardPort: 51820, Now: t0})
	n := f.State().Snapshot().Node(nil, "w1")
	if n.WireGuardKey != wgKey(1) || n.WireGuardPort != 51820 {
		t.Fatalf("w1 key %q port %d, want what it registered", n.WireGuardKey, n.WireGuardPort)
	}
	for _, tc := range []struct {
		name string
		key  string
		port int
		want error
	}{
		{"short key", base64.StdEncoding.EncodeToString([]byte("short")), 51820, ErrInvalid},
		{"not base64", "!!!!", 51820, ErrInvalid},
		{"no port", wgKey(3), 0, ErrInvalid},
		{"port too high", wgKey(3), 65536, ErrInvalid},
		{"port without key", "", 51820, ErrInvalid},
		{"w1's key", wgKey(1), 51820, ErrConflict},
	} {
		before := dump(t, f.State())
		res := apply(t, f, 5, NodeFingerprintType, &NodeFingerprintRequest{NodeID: "w2", WireGuardKey: tc.key, WireGuardPort: tc.port, Now: t0})
		if !errors.Is(res.Err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, res.Err, tc.want)
		}
		requireSameState(t, before, dump(t, f.State()))
	}
	// A rejoin keeps the key until the agent registers again.
	mustApply(t, f, 6, NodeRegisterType, workerJoin("wk", "w1", "w1-b", t0))
	if n := f.State().Snapshot().Node(nil, "w1"); n.WireGuardKey != wgKey(1) {
		t.Errorf("w1 lost its key on rejoin: %q", n.WireGuardKey)
	}
	// Registering without networking clears it.
	mustApply(t, f, 7, NodeFingerprintType, &NodeFingerprintRequest{NodeID: "w1", Now: t0})
	if n := f.State().Snapshot().Node(nil, "w1"); n.WireGuardKey != "" || n.WireGuardPort != 0 {
		t.Errorf("w1 registered without a key but kept %q:%d", n.WireGuardKey, n.WireGuardPort)
	}
}

func TestAllocAddress(t *testing.T) {
	f := populated(t)
	idx := uint64(1000)
	next := func() uint64 { idx++; return idx }
	a1 := f.State().Snapshot().Alloc(nil, "a1")
	if a1.Address != "10.242.1.7" {
		t.Fatalf("a1 address %q after populate, want 10.242.1.7 in w2's 10.242.1.0/24", a1.Address)
	}
	for _, addr := range []string{"10.242.0.7", "10.242.1.0", "10.242.1.1", "10.242.1.255", "fd00::1", "::ffff:10.242.1.8", "10.242.1.8/24", "nope"} {
		before := dump(t, f.State())
		res := apply(t, f, next(), AllocClientUpdateType, &AllocClientUpdateRequest{NodeID: "w2", Now: t0, Updates: []structs.AllocUpdate{
			{ID: "a1", ClientStatus: structs.AllocComplete, Address: addr},
		}})
		if !errors.Is(res.Err, ErrInvalid) {
			t.Errorf("address %q: %v, want ErrInvalid", addr, res.Err)
		}
		requireSameState(t, before, dump(t, f.State()))
	}
	// An update without an address leaves it; a new one replaces it.
	mustApply(t, f, next(), AllocClientUpdateType, &AllocClientUpdateRequest{NodeID: "w2", Now: t0, Updates: []structs.AllocUpdate{{ID: "a1", ClientStatus: structs.AllocRunning}}})
	if got := f.State().Snapshot().Alloc(nil, "a1").Address; got != "10.242.1.7" {
		t.Errorf("address %q after an update without one", got)
	}
	mustApply(t, f, next(), AllocClientUpdateType, &AllocClientUpdateRequest{NodeID: "w2", Now: t0, Updates: []structs.AllocUpdate{{ID: "a1", ClientStatus: structs.AllocRunning, Address: "10.242.1.254"}}})
	if got := f.State().Snapshot().Alloc(nil, "a1").Address; got != "10.242.1.254" {
		t.Errorf("address %q, want the new 10.242.1.254", got)
	}
}

func TestNetworkPolicyCommands(t *testing.T) {
	f := populated(t)
	idx := uint64(1000)
	next := func() uint64 { idx++; return idx }
	if p := f.State().Snapshot().NetworkPolicy(nil, "team-a", "allow-web"); p == nil || !reflect.DeepEqual(p.Ingress, testPolicy("team-a", "allow-web").Ingress) {
		t.Fatalf("stored policy = %+v", p)
	}

	bad := func(mod func(*structs.NetworkPolicy)) *NetworkPolicyUpsertRequest {
		p := testPolicy("team-a", "other")
		mod(&p)
		return &NetworkPolicyUpsertRequest{Policy: p}
	}
	for _, tc := range []struct {
		name  string
		req   *NetworkPolicyUpsertRequest
		field string
	}{
		{"bad CIDR", bad(func(p *structs.NetworkPolicy) { p.Ingress[0].From[0].IPBlock.CIDR = "10.0.0.0/33" }), "ingress[0].from[0].cidr"},
		{"port 0", bad(func(p *structs.NetworkPolicy) { p.Ingress[0].Ports[0].Port = 0 }), "ingress[0].ports[0].port"},
		{"port too high", bad(func(p *structs.NetworkPolicy) { p.Ingress[0].Ports[0].EndPort = 70000 }), "ingress[0].ports[0].end_port"},
		{"unknown protocol", bad(func(p *structs.NetworkPolicy) { p.Ingress[0].Ports[0].Protocol = "ICMP" }), "ingress[0].ports[0].protocol"},
		{"bad selector", bad(func(p *structs.NetworkPolicy) {
			p.Selector.MatchExpressions = []structs.LabelSelectorRequirement{{Key: "app", Operator: "Matches"}}
		}), "selector.match_expressions[0].operator"},
		{"unknown namespace", bad(func(p *structs.NetworkPolicy) { p.Namespace = "nope" }), "namespace"},
		{"reserved name", bad(func(p *structs.NetworkPolicy) { p.Name = structs.NamespaceIsolationPolicyName }), "name"},
		{"bad name", bad(func(p *structs.NetworkPolicy) { p.Name = "Bad_Name" }), "name"},
	} {
		before := dump(t, f.State())
		res := apply(t, f, next(), NetworkPolicyUpsertType, tc.req)
		if !errors.Is(res.Err, ErrInvalid) || !strings.Contains(res.Err.Error(), tc.field+":") {
			t.Errorf("%s: %v, want ErrInvalid naming %s", tc.name, res.Err, tc.field)
		}
		requireSameState(t, before, dump(t, f.State()))
	}
	badAdmin := testAdminPolicy("x")
	badAdmin.Egress[0].Action = "drop"
	if res := apply(t, f, next(), AdminNetworkPolicyUpsertType, &AdminNetworkPolicyUpsertRequest{Policy: badAdmin}); !errors.Is(res.Err, ErrInvalid) || !strings.Contains(res.Err.Error(), "egress[0].action") {
		t.Errorf("admin policy with action drop: %v", res.Err)
	}

	if res := apply(t, f, next(), NetworkPolicyDeleteType, &NetworkPolicyDeleteRequest{Namespace: "team-a", Name: "nope"}); !errors.Is(res.Err, state.ErrNotFound) {
		t.Errorf("deleting a missing policy: %v", res.Err)
	}
	if res := apply(t, f, next(), AdminNetworkPolicyDeleteType, &AdminNetworkPolicyDeleteRequest{Name: "nope"}); !errors.Is(res.Err, state.ErrNotFound) {
		t.Errorf("deleting a missing admin policy: %v", res.Err)
	}
	mustApply(t, f, next(), AdminNetworkPolicyDeleteType, &AdminNetworkPolicyDeleteRequest{Name: "deny-metadata"})
	if f.State().Snapshot().AdminNetworkPolicy(nil, "deny-metadata") != nil {
		t.Error("admin policy still there after delete")
	}

	// Deleting a namespace deletes its policies, so a namespace made again
	// under the name does not inherit them.
	mustApply(t, f, next(), NamespaceUpsertType, &NamespaceUpsertRequest{Namespace: structs.Namespace{Name: "team-b"}, Create: true})
	mustApply(t, f, next(), NetworkPolicyUpsertType, &NetworkPolicyUpsertRequest{Policy: testPolicy("team-b", "p")})
	mustApply(t, f, next(), NamespaceDeleteType, &NamespaceDeleteRequest{Name: "team-b"})
	if ps := f.State().Snapshot().NetworkPolicies(nil, "team-b"); len(ps) != 0 {
		t.Errorf("namespace team-b deleted but %d of its policies remain", len(ps))
	}
	if ps := f.State().Snapshot().NetworkPolicies(nil, "team-a"); len(ps) != 1 {
		t.Errorf("team-a has %d policies after another namespace went, want 1", len(ps))
	}
	if res := apply(t, f, next(), NamespaceDeleteType, &NamespaceDeleteRequest{Name: "team-b"}); !errors.Is(res.Err, state.ErrNotFound) {
		t.Errorf("deleting a missing namespace: %v", res.Err)
	}
}

func TestAllocQuarantine(t *testing.T) {
	f := populated(t)
	idx := uint64(1000)
	next := func() uint64 { idx++; return idx }
	if !f.State().Snapshot().Alloc(nil, "a1").Quarantined {
		t.Fatal("a1 not quarantined after populate")
	}
	if evs := eventsOfType(f.State(), structs.EventAllocQuarantined); len(evs) != 1 || evs[0].Subject != "a1" || evs[0].Meta["by"] != "user:root" {
		t.Fatalf("quarantine events = %+v", evs)
	}
	// Again: nothing changes, no second event.
	res := mustApply(t, f, next(), AllocQuarantineType, &AllocQuarantineRequest{AllocID: "a1", Quarantined: true, By: "user:root", Now: t0})
	if res.Value != false || len(eventsOfType(f.State(), structs.EventAllocQuarantined)) != 1 {
		t.Errorf("quarantining twice: changed=%v, %d events", res.Value, len(eventsOfType(f.State(), structs.EventAllocQuarantined)))
	}
	res = mustApply(t, f, next(), AllocQuarantineType, &AllocQuarantineRequest{AllocID: "a1", By: "user:root", Now: t0})
	if res.Value != true || f.State().Snapshot().Alloc(nil, "a1").Quarantined {
		t.Errorf("releasing: changed=%v, still quarantined=%v", res.Value, f.State().Snapshot().Alloc(nil, "a1").Quarantined)
	}
	if evs := eventsOfType(f.State(), structs.EventAllocUnquarantined); len(evs) != 1 {
		t.Errorf("release events = %+v", evs)
	}
	if res := apply(t, f, next(), AllocQuarantineType, &AllocQuarantineRequest{AllocID: "nope", Quarantined: true, Now: t0}); !errors.Is(res.Err, state.ErrNotFound) {
		t.Errorf("quarantining a missing allocation: %v", res.Err)
	}
}

func TestNamespaceLabels(t *testing.T) {
	f := populated(t)
	idx := uint64(1000)
	next := func() uint64 { idx++; return idx }
	ns := f.State().Snapshot().Namespace(nil, "team-a")
	if !reflect.DeepEqual(ns.Labels, map[string]string{"tier": "web"}) || !ns.Isolation || ns.Description != "Team A" {
		t.Fatalf("team-a after populate = %+v", ns)
	}
	desc := "front end"
	mustApply(t, f, next(), NamespaceUpdateType, &NamespaceUpdateRequest{Name: "team-a", Update: structs.NamespaceUpdateRequest{
		SetLabels: map[string]string{"env": "prod"}, RemoveLabels: []string{"tier", "absent"}, Description: &desc,
	}})
	ns = f.State().Snapshot().Namespace(nil, "team-a")
	if !reflect.DeepEqual(ns.Labels, map[string]string{"env": "prod"}) || !ns.Isolation || ns.Description != desc {
		t.Errorf("team-a after update = %+v; want env=prod only, isolation kept, new description", ns)
	}
	off := false
	mustApply(t, f, next(), NamespaceUpdateType, &NamespaceUpdateRequest{Name: "team-a", Update: structs.NamespaceUpdateRequest{Isolation: &off}})
	if ns := f.State().Snapshot().Namespace(nil, "team-a"); ns.Isolation || ns.Labels["env"] != "prod" {
		t.Errorf("team-a after isolation off = %+v", ns)
	}

	long := strings.Repeat("x", 1025)
	for _, tc := range []struct {
		name string
		typ  MessageType
		req  any
		want error
	}{
		{"bad label key", NamespaceUpdateType, &NamespaceUpdateRequest{Name: "team-a", Update: structs.NamespaceUpdateRequest{SetLabels: map[string]string{"-x": "y"}}}, ErrInvalid},
		{"bad label value", NamespaceUpdateType, &NamespaceUpdateRequest{Name: "team-a", Update: structs.NamespaceUpdateRequest{SetLabels: map[string]string{"x": "a b"}}}, ErrInvalid},
		{"set and removed", NamespaceUpdateType, &NamespaceUpdateRequest{Name: "team-a", Update: structs.NamespaceUpdateRequest{SetLabels: map[string]string{"x": "y"}, RemoveLabels: []string{"x"}}}, ErrInvalid},
		{"long description", NamespaceUpdateType, &NamespaceUpdateRequest{Name: "team-a", Update: structs.NamespaceUpdateRequest{Description: &long}}, ErrInvalid},
		{"missing namespace", NamespaceUpdateType, &NamespaceUpdateRequest{Name: "nope"}, state.ErrNotFound},
		{"create with a bad label", NamespaceUpsertType, &NamespaceUpsertRequest{Namespace: structs.Namespace{Name: "team-c", Labels: map[string]string{"a/b/c": "x"}}, Create: true}, ErrInvalid},
	} {
		before := dump(t, f.State())
		if res := apply(t, f, next(), tc.typ, tc.req); !errors.Is(res.Err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, res.Err, tc.want)
		}
		requireSameState(t, before, dump(t, f.State()))
	}
}

// TestQuarantineSurvivesInPlaceUpdate: a plan computed before a quarantine
// (its copy of the allocation is not quarantined) updates the allocation
// in place without lifting the quarantine.
func TestQuarantineSurvivesInPlaceUpdate(t *testing.T) {
	f := populated(t)
	stale := *f.State().Snapshot().Alloc(nil, "j1")
	mustApply(t, f, 1001, AllocQuarantineType, &AllocQuarantineRequest{AllocID: "j1", Quarantined: true, By: "user:root", Now: t0})
	stale.DesiredDescription = "updated in place"
	mustApply(t, f, 1002, PlanApplyType, &PlanApplyRequest{EvalID: "e9", Now: t0, Allocs: []*structs.Allocation{&stale}})
	got := f.State().Snapshot().Alloc(nil, "j1")
	if got.DesiredDescription != "updated in place" || !got.Quarantined {
		t.Errorf("after the in-place update: %q, quarantined %v; want the update and the quarantine", got.DesiredDescription, got.Quarantined)
	}
}
