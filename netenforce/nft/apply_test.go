package nft

import (
	"encoding/binary"
	"fmt"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"

	"github.com/hivesec/hive/netenforce/policy"
	"github.com/hivesec/hive/structs"
)

func readbackConn(t *testing.T, ns *testNS) *nftables.Conn {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.h)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// setElems reads set name of table inet hive, keyed by hex of key (and
// key end) with the value.
func setElems(t *testing.T, c *nftables.Conn, name string) map[string]string {
	t.Helper()
	s, err := c.GetSetByName(table(), name)
	if err != nil {
		t.Fatalf("set %s: %v", name, err)
	}
	els, err := c.GetSetElements(s)
	if err != nil {
		t.Fatalf("elements of %s: %v", name, err)
	}
	out := map[string]string{}
	for _, e := range els {
		k := fmt.Sprintf("%x", e.Key)
		if len(e.KeyEnd) > 0 {
			k += "-" + fmt.Sprintf("%x", e.KeyEnd)
		}
		out[k] = elemValue(e)
	}
	return out
}

// elemValue is an element's value as tests compare it: the target chain
// of a verdict map, else the data bytes.
// The library reads a verdict map's values back as their raw netlink
// attributes (code, chain), so those are decoded here.
func elemValue(e nftables.SetElement) string {
	if e.VerdictData != nil {
		return fmt.Sprintf("%d:%s", e.VerdictData.Kind, e.VerdictData.Chain)
	}
	if ad, err := netlink.NewAttributeDecoder(e.Val); err == nil && len(e.Val) > 8 {
		ad.ByteOrder = binary.BigEndian
		var code int32
		var chain string
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_VERDICT_CODE:
				code = int32(ad.Uint32())
			case unix.NFTA_VERDICT_CHAIN:
				chain = ad.String()
			}
		}
		if ad.Err() == nil && chain != "" {
			return fmt.Sprintf("%d:%s", code, chain)
		}
	}
	return fmt.Sprintf("%x", e.Val)
}

func ep(id, ns, app, ip string) policy.Endpoint {
	return policy.Endpoint{ID: id, Namespace: ns, Labels: map[string]string{"app": app},
		NamespaceLabels: map[string]string{"name": ns}, IP: netip.MustParseAddr(ip)}
}

func allowFrom(ns, to, from string, port int) structs.NetworkPolicy {
	return structs.NetworkPolicy{
		Namespace: ns, Name: "allow-" + from + "-to-" + to,
		Selector: structs.LabelSelector{MatchLabels: map[string]string{"app": to}},
		Ingress: []structs.NetpolIngressRule{{
			From:  []structs.NetpolPeer{{PodSelector: &structs.LabelSelector{MatchLabels: map[string]string{"app": from}}}},
			Ports: []structs.NetpolPort{{Protocol: "TCP", Port: port}},
		}},
	}
}

func mustCompile(t testing.TB, eps []policy.Endpoint, pols []structs.NetworkPolicy, admin []structs.AdminNetworkPolicy) *policy.Ruleset {
	t.Helper()
	r, err := policy.Compile(eps, pols, admin)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// foreignTables creates tables Hive must never touch and returns a function
// that lists them as nft prints them.
func foreignTables(t *testing.T, ns *testNS) func() string {
	for _, cmd := range [][]string{
		{"add", "table", "inet", "other"},
		{"add", "chain", "inet", "other", "fw", "{ type filter hook forward priority -10; policy accept; }"},
		{"add", "set", "inet", "other", "s", "{ type ipv4_addr; elements = { 198.18.5.5 } }"},
		{"add", "rule", "inet", "other", "fw", "ip saddr @s counter drop"},
		{"add", "table", "ip", "hive2"},
		{"add", "chain", "ip", "hive2", "c"},
		{"add", "rule", "ip", "hive2", "c", "tcp dport 22 accept"},
	} {
		ns.exec(t, append([]string{"nft"}, cmd...)...)
	}
	return func() string {
		return ns.exec(t, "nft", "list", "table", "inet", "other") + ns.exec(t, "nft", "list", "table", "ip", "hive2")
	}
}

func TestApplyReadBackReplaceDelete(t *testing.T) {
	requirePrereqs(t)
	ns := newNS(t)
	others := foreignTables(t, ns)
	before := others()

	eps := []policy.Endpoint{
		ep("a", "x", "a", "198.19.0.10"),
		ep("b", "x", "b", "198.19.0.11"),
		ep("c", "y", "c", "198.19.0.12"),
	}
	eps[2].Quarantined = true
	pols := []structs.NetworkPolicy{allowFrom("x", "a", "b", 80)}
	admin := []structs.AdminNetworkPolicy{{
		Name: "deny-ssh", Priority: 1,
		Subject: structs.AdminNetpolSubject{NamespaceSelector: structs.LabelSelector{}},
		Ingress: []structs.AdminNetpolRule{{Action: "Deny", Peers: []structs.NetpolPeer{{IPBlock: &structs.IPBlock{CIDR: "198.18.0.0/16"}}},
			Ports: []structs.NetpolPort{{Protocol: "TCP", Port: 22}}}},
	}}
	r := mustCompile(t, eps, pols, admin)
	a := New(WithNetNS(int(ns.h)))
	if err := a.Apply(r); err != nil {
		t.Fatal(err)
	}
	c := readbackConn(t, ns)

	tb, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet)
	if err != nil || tb == nil {
		t.Fatalf("table inet hive after apply: %v", err)
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	counting := 0
	for _, ch := range chains {
		if ch.Table.Name != TableName {
			continue
		}
		// Verdict counting chains, one accept and one drop per group of
		// subjects (see counters.go).
		if strings.HasPrefix(ch.Name, "in_acc") || strings.HasPrefix(ch.Name, "in_drop") ||
			strings.HasPrefix(ch.Name, "out_acc") || strings.HasPrefix(ch.Name, "out_drop") {
			counting++
			continue
		}
		// Drop chains of quarantine and admin deny rules (logged).
		if ch.Name == "quarantine" || strings.HasSuffix(ch.Name, "_drop") && strings.Contains(ch.Name, "_admin") {
			continue
		}
		names = append(names, ch.Name)
	}
	slices.Sort(names)
	if counting == 0 || counting%2 != 0 {
		t.Fatalf("%d counting chains, want a positive even number", counting)
	}
	if want := []string{"egress", "egress_ns", "forward", "ingress", "ingress_ns"}; !slices.Equal(names, want) {
		t.Fatalf("chains = %v, want %v", names, want)
	}
	for _, ch := range chains {
		if ch.Table.Name == TableName && ch.Name == "forward" && (ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookForward) {
			t.Errorf("chain forward is not on the forward hook: %+v", ch)
		}
	}

	idOf := func(ip string) policy.ID { return r.Endpoints[netip.MustParseAddr(ip)].Class }
	hexID := func(v policy.ID) string { return fmt.Sprintf("%x", id(v)) }
	epWant := map[string]string{}
	for _, e := range eps {
		epWant[fmt.Sprintf("%x", e.IP.AsSlice())] = hexID(idOf(e.IP.String()))
	}
	if got := setElems(t, c, "ep4"); !mapsEq(got, epWant) {
		t.Errorf("ep4 = %v, want %v", got, epWant)
	}
	qWant := map[string]string{fmt.Sprintf("%x", netip.MustParseAddr("198.19.0.12").AsSlice()): ""}
	if got := setElems(t, c, "quarantine4"); !mapsEq(got, qWant) {
		t.Errorf("quarantine4 = %v, want %v (198.19.0.12)", got, qWant)
	}
	if got := setElems(t, c, "in_isolated"); !mapsEq(got, map[string]string{hexID(idOf("198.19.0.10")): ""}) {
		t.Errorf("in_isolated = %v, want class of a", got)
	}
	portKey := func(port uint16) string {
		k := appendProto(appendID(id(idOf("198.19.0.10")), idOf("198.19.0.11")), policy.ProtoTCP)
		return fmt.Sprintf("%x-%x", appendPort(slices.Clone(k), port), appendPort(slices.Clone(k), port))
	}
	if got := setElems(t, c, "in_ports"); !mapsEq(got, map[string]string{portKey(80): ""}) {
		t.Errorf("in_ports = %v, want %s", got, portKey(80))
	}
	if got := setElems(t, c, "in_admin0_cidr4"); len(got) != 2 {
		t.Errorf("in_admin0_cidr4 = %v, want start and end of 198.18.0.0/16", got)
	}
	if got := setElems(t, c, "class_ns"); len(got) != 3 {
		t.Errorf("class_ns = %v, want 3 classes", got)
	}
	if got := others(); got != before {
		t.Fatalf("foreign tables changed by apply:\nbefore:\n%s\nafter:\n%s", before, got)
	}

	// Re-apply a changed ruleset: c released, port 80 → 8443, admin gone.
	eps[2].Quarantined = false
	pols[0] = allowFrom("x", "a", "b", 8443)
	r = mustCompile(t, eps, pols, nil)
	if err := a.Apply(r); err != nil {
		t.Fatal(err)
	}
	if got := setElems(t, c, "quarantine4"); len(got) != 0 {
		t.Errorf("quarantine4 after re-apply = %v, want empty", got)
	}
	if got := setElems(t, c, "in_ports"); !mapsEq(got, map[string]string{portKey(8443): ""}) {
		t.Errorf("in_ports after re-apply = %v, want only %s", got, portKey(8443))
	}
	if _, err := c.GetSetByName(table(), "in_admin0_subj"); err == nil {
		t.Errorf("admin set in_admin0_subj survived a re-apply without admin policies")
	}
	if got := others(); got != before {
		t.Fatalf("foreign tables changed by re-apply:\nbefore:\n%s\nafter:\n%s", before, got)
	}

	if err := a.Delete(); err != nil {
		t.Fatal(err)
	}
	if tb, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet); err == nil && tb != nil {
		t.Fatalf("table inet hive still exists after Delete")
	}
	if err := a.Delete(); err != nil {
		t.Fatalf("Delete of a missing table: %v", err)
	}
	if got := others(); got != before {
		t.Fatalf("foreign tables changed by delete:\nbefore:\n%s\nafter:\n%s", before, got)
	}
}

func mapsEq(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestApplySplit forces the split path with a tiny batch limit and checks
// that every element arrives.
func TestApplySplit(t *testing.T) {
	requirePrereqs(t)
	ns := newNS(t)
	eps, pols := benchCluster(2000, 2000)
	r := mustCompile(t, eps, pols, nil)
	p := plan(r, nil)
	const limit = 256 << 10
	if n := len(p.split(limit)); n < 3 {
		t.Fatalf("split into %d batches, want several", n)
	}
	a := New(WithNetNS(int(ns.h)), WithMaxBatchBytes(limit))
	if err := a.Apply(r); err != nil {
		t.Fatal(err)
	}
	c := readbackConn(t, ns)
	for _, s := range p.sets {
		got := setElems(t, c, s.set.Name)
		want := map[string]string{}
		for _, e := range s.elems {
			k := fmt.Sprintf("%x", e.Key)
			if len(e.KeyEnd) > 0 {
				k += "-" + fmt.Sprintf("%x", e.KeyEnd)
			}
			want[k] = elemValue(e)
		}
		if s.set.Interval && !s.set.Concatenation {
			continue // rbtree sets read back with kernel-added end markers
		}
		if !mapsEq(got, want) {
			t.Errorf("set %s: %d elements read back, want %d", s.set.Name, len(got), len(want))
		}
	}
	if err := a.Delete(); err != nil {
		t.Fatal(err)
	}
}

// benchCluster is policy's benchmark cluster with addresses moved into
// 198.18.0.0/15: nEP endpoints in 100 namespaces, 1,000 apps, one ingress
// policy per (app, variant), some with namespace peers, CIDRs and egress
// port ranges.
func benchCluster(nEP, nPol int) ([]policy.Endpoint, []structs.NetworkPolicy) {
	eps := make([]policy.Endpoint, nEP)
	for i := range eps {
		app := i % 1000
		ns := app % 100
		var ip [4]byte
		binary.BigEndian.PutUint32(ip[:], 198<<24|19<<16|uint32(i+1))
		eps[i] = policy.Endpoint{
			ID:              fmt.Sprint("alloc-", i),
			Namespace:       fmt.Sprint("ns-", ns),
			Labels:          map[string]string{"app": fmt.Sprint("app-", app), "tier": []string{"web", "api", "db"}[app%3]},
			NamespaceLabels: map[string]string{"team": fmt.Sprint("t", ns%10), "env": []string{"prod", "dev"}[ns%2]},
			IP:              netip.AddrFrom4(ip),
		}
	}
	pols := make([]structs.NetworkPolicy, nPol)
	for j := range pols {
		app := j % 1000
		p := structs.NetworkPolicy{
			Namespace: fmt.Sprint("ns-", app%100),
			Name:      fmt.Sprint("p-", j),
			Selector:  structs.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprint("app-", app)}},
		}
		rule := structs.NetpolIngressRule{
			From:  []structs.NetpolPeer{{PodSelector: &structs.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprint("app-", (app+100)%1000)}}}},
			Ports: []structs.NetpolPort{{Protocol: "TCP", Port: 8000 + j%50}},
		}
		if j%10 == 0 {
			rule.From = append(rule.From, structs.NetpolPeer{
				NamespaceSelector: &structs.LabelSelector{MatchLabels: map[string]string{"team": fmt.Sprint("t", j%10)}},
				PodSelector:       &structs.LabelSelector{MatchExpressions: []structs.LabelSelectorRequirement{{Key: "tier", Operator: "In", Values: []string{"web", "api"}}}},
			})
		}
		if j%7 == 0 {
			rule.From = append(rule.From, structs.NetpolPeer{IPBlock: &structs.IPBlock{
				CIDR: fmt.Sprintf("198.18.%d.0/24", j%256), Except: []string{fmt.Sprintf("198.18.%d.%d/28", j%256, 16*(j%16))}}})
		}
		p.Ingress = []structs.NetpolIngressRule{rule}
		if j%5 == 0 {
			p.PolicyTypes = []string{"Ingress", "Egress"}
			p.Egress = []structs.NetpolEgressRule{{
				To:    []structs.NetpolPeer{{NamespaceSelector: &structs.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}},
				Ports: []structs.NetpolPort{{Protocol: "UDP", Port: 5000, EndPort: 5100 + j%100}},
			}}
		}
		pols[j] = p
	}
	return eps, pols
}
