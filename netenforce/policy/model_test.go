package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/hivesec/hive/structs"
)

// The Kubernetes e2e network policy model: namespaces x, y, z, each with
// pods a, b, c (labels pod=<name>, namespace label ns=<name>), probed on
// ports 80 and 81 over TCP and UDP. Expected tables are written out by
// hand, rows are sources and columns destinations; '.' is allowed and 'X'
// denied. A pod reaching itself is loopback and always allowed.

var modelPods = []string{"xa", "xb", "xc", "ya", "yb", "yc", "za", "zb", "zc"}

// modelIP: x is 10.0.1.0/24, y 10.0.2.0/24, z 10.0.3.0/24; pod a is .1.
func modelIP(pod string) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 0, byte(pod[0]-'x') + 1, byte(pod[1]-'a') + 1})
}

func modelEndpoints() []Endpoint {
	var eps []Endpoint
	for _, p := range modelPods {
		ns, name := p[:1], p[1:]
		eps = append(eps, Endpoint{
			ID: ns + "/" + name, Namespace: ns, IP: modelIP(p),
			Labels:          map[string]string{"pod": name},
			NamespaceLabels: map[string]string{"ns": ns},
		})
	}
	return eps
}

type probe struct {
	proto uint8
	port  uint16
}

var (
	tcp80 = probe{ProtoTCP, 80}
	tcp81 = probe{ProtoTCP, 81}
	udp80 = probe{ProtoUDP, 80}
	udp81 = probe{ProtoUDP, 81}
)

func sel(kv ...string) *structs.LabelSelector {
	s := &structs.LabelSelector{MatchLabels: map[string]string{}}
	for i := 0; i < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}

const allAllowed = `
   xa xb xc ya yb yc za zb zc
xa .  .  .  .  .  .  .  .  .
xb .  .  .  .  .  .  .  .  .
xc .  .  .  .  .  .  .  .  .
ya .  .  .  .  .  .  .  .  .
yb .  .  .  .  .  .  .  .  .
yc .  .  .  .  .  .  .  .  .
za .  .  .  .  .  .  .  .  .
zb .  .  .  .  .  .  .  .  .
zc .  .  .  .  .  .  .  .  .
`

const denyIngressX = `
   xa xb xc ya yb yc za zb zc
xa .  X  X  .  .  .  .  .  .
xb X  .  X  .  .  .  .  .  .
xc X  X  .  .  .  .  .  .  .
ya X  X  X  .  .  .  .  .  .
yb X  X  X  .  .  .  .  .  .
yc X  X  X  .  .  .  .  .  .
za X  X  X  .  .  .  .  .  .
zb X  X  X  .  .  .  .  .  .
zc X  X  X  .  .  .  .  .  .
`

const sameNamespaceX = `
   xa xb xc ya yb yc za zb zc
xa .  .  .  .  .  .  .  .  .
xb .  .  .  .  .  .  .  .  .
xc .  .  .  .  .  .  .  .  .
ya X  X  X  .  .  .  .  .  .
yb X  X  X  .  .  .  .  .  .
yc X  X  X  .  .  .  .  .  .
za X  X  X  .  .  .  .  .  .
zb X  X  X  .  .  .  .  .  .
zc X  X  X  .  .  .  .  .  .
`

// Only x/a is isolated.
const xaFromY = `
   xa xb xc ya yb yc za zb zc
xa .  .  .  .  .  .  .  .  .
xb X  .  .  .  .  .  .  .  .
xc X  .  .  .  .  .  .  .  .
ya .  .  .  .  .  .  .  .  .
yb .  .  .  .  .  .  .  .  .
yc .  .  .  .  .  .  .  .  .
za X  .  .  .  .  .  .  .  .
zb X  .  .  .  .  .  .  .  .
zc X  .  .  .  .  .  .  .  .
`

const xaFromNobody = `
   xa xb xc ya yb yc za zb zc
xa .  .  .  .  .  .  .  .  .
xb X  .  .  .  .  .  .  .  .
xc X  .  .  .  .  .  .  .  .
ya X  .  .  .  .  .  .  .  .
yb X  .  .  .  .  .  .  .  .
yc X  .  .  .  .  .  .  .  .
za X  .  .  .  .  .  .  .  .
zb X  .  .  .  .  .  .  .  .
zc X  .  .  .  .  .  .  .  .
`

const xaFromYZbc = `
   xa xb xc ya yb yc za zb zc
xa .  .  .  .  .  .  .  .  .
xb X  .  .  .  .  .  .  .  .
xc X  .  .  .  .  .  .  .  .
ya X  .  .  .  .  .  .  .  .
yb .  .  .  .  .  .  .  .  .
yc .  .  .  .  .  .  .  .  .
za X  .  .  .  .  .  .  .  .
zb .  .  .  .  .  .  .  .  .
zc .  .  .  .  .  .  .  .  .
`

// Only x/a's egress is isolated.
const xaToY = `
   xa xb xc ya yb yc za zb zc
xa .  X  X  .  .  .  X  X  X
xb .  .  .  .  .  .  .  .  .
xc .  .  .  .  .  .  .  .  .
ya .  .  .  .  .  .  .  .  .
yb .  .  .  .  .  .  .  .  .
yc .  .  .  .  .  .  .  .  .
za .  .  .  .  .  .  .  .  .
zb .  .  .  .  .  .  .  .  .
zc .  .  .  .  .  .  .  .  .
`

const xaToNobody = `
   xa xb xc ya yb yc za zb zc
xa .  X  X  X  X  X  X  X  X
xb .  .  .  .  .  .  .  .  .
xc .  .  .  .  .  .  .  .  .
ya .  .  .  .  .  .  .  .  .
yb .  .  .  .  .  .  .  .  .
yc .  .  .  .  .  .  .  .  .
za .  .  .  .  .  .  .  .  .
zb .  .  .  .  .  .  .  .  .
zc .  .  .  .  .  .  .  .  .
`

const xaToYaYc = `
   xa xb xc ya yb yc za zb zc
xa .  X  X  .  X  .  X  X  X
xb .  .  .  .  .  .  .  .  .
xc .  .  .  .  .  .  .  .  .
ya .  .  .  .  .  .  .  .  .
yb .  .  .  .  .  .  .  .  .
yc .  .  .  .  .  .  .  .  .
za .  .  .  .  .  .  .  .  .
zb .  .  .  .  .  .  .  .  .
zc .  .  .  .  .  .  .  .  .
`

// x denies all ingress by namespace policy; admin lets y in and keeps z
// out.
const adminYInZOut = `
   xa xb xc ya yb yc za zb zc
xa .  X  X  .  .  .  .  .  .
xb X  .  X  .  .  .  .  .  .
xc X  X  .  .  .  .  .  .  .
ya .  .  .  .  .  .  .  .  .
yb .  .  .  .  .  .  .  .  .
yc .  .  .  .  .  .  .  .  .
za X  X  X  .  .  .  .  .  .
zb X  X  X  .  .  .  .  .  .
zc X  X  X  .  .  .  .  .  .
`

// The admin deny on z→x beats the namespace policy that would allow it;
// Pass on y→x leaves y to the namespace policy, which allows only port 80
// and only from y and z, so x itself stays shut out.
const adminPassTCP80 = `
   xa xb xc ya yb yc za zb zc
xa .  X  X  .  .  .  .  .  .
xb X  .  X  .  .  .  .  .  .
xc X  X  .  .  .  .  .  .  .
ya .  .  .  .  .  .  .  .  .
yb .  .  .  .  .  .  .  .  .
yc .  .  .  .  .  .  .  .  .
za X  X  X  .  .  .  .  .  .
zb X  X  X  .  .  .  .  .  .
zc X  X  X  .  .  .  .  .  .
`

const adminPassOther = `
   xa xb xc ya yb yc za zb zc
xa .  X  X  .  .  .  .  .  .
xb X  .  X  .  .  .  .  .  .
xc X  X  .  .  .  .  .  .  .
ya X  X  X  .  .  .  .  .  .
yb X  X  X  .  .  .  .  .  .
yc X  X  X  .  .  .  .  .  .
za X  X  X  .  .  .  .  .  .
zb X  X  X  .  .  .  .  .  .
zc X  X  X  .  .  .  .  .  .
`

func denyAllIngress(ns string) structs.NetworkPolicy {
	return structs.NetworkPolicy{Namespace: ns, Name: "deny-all", PolicyTypes: []string{"Ingress"}}
}

type modelCase struct {
	name     string
	policies []structs.NetworkPolicy
	admin    []structs.AdminNetworkPolicy
	tables   map[probe]string
	// external probes: flows from outside addresses, with expectations.
	external []externalProbe
}

type externalProbe struct {
	from, to string // from is an address, to a pod
	p        probe
	allowed  bool
}

func allProbes(table string) map[probe]string {
	return map[probe]string{tcp80: table, tcp81: table, udp80: table, udp81: table}
}

var modelCases = []modelCase{
	{name: "no policies", tables: allProbes(allAllowed)},
	{
		name:     "default deny all ingress in x",
		policies: []structs.NetworkPolicy{denyAllIngress("x")},
		tables:   allProbes(denyIngressX),
	},
	{
		name: "allow from same namespace",
		policies: []structs.NetworkPolicy{denyAllIngress("x"), {
			Namespace: "x", Name: "same-ns",
			Ingress: []structs.NetpolIngressRule{{From: []structs.NetpolPeer{{PodSelector: &structs.LabelSelector{}}}}},
		}},
		tables: allProbes(sameNamespaceX),
	},
	{
		name: "allow from namespace by label on TCP 80",
		policies: []structs.NetworkPolicy{{
			Namespace: "x", Name: "from-y", Selector: *sel("pod", "a"),
			Ingress: []structs.NetpolIngressRule{{
				From:  []structs.NetpolPeer{{NamespaceSelector: sel("ns", "y")}},
				Ports: []structs.NetpolPort{{Protocol: "TCP", Port: 80}},
			}},
		}},
		tables: map[probe]string{tcp80: xaFromY, tcp81: xaFromNobody, udp80: xaFromNobody, udp81: xaFromNobody},
	},
	{
		name: "namespace and pod selector expressions in one peer",
		policies: []structs.NetworkPolicy{{
			Namespace: "x", Name: "from-not-x-bc", Selector: *sel("pod", "a"),
			Ingress: []structs.NetpolIngressRule{{From: []structs.NetpolPeer{{
				NamespaceSelector: &structs.LabelSelector{MatchExpressions: []structs.LabelSelectorRequirement{{Key: "ns", Operator: "NotIn", Values: []string{"x"}}}},
				PodSelector:       &structs.LabelSelector{MatchExpressions: []structs.LabelSelectorRequirement{{Key: "pod", Operator: "In", Values: []string{"b", "c"}}}},
			}}}},
		}},
		tables: allProbes(xaFromYZbc),
	},
	{
		name: "egress to a port range with end_port",
		policies: []structs.NetworkPolicy{{
			Namespace: "x", Name: "egress-range", Selector: *sel("pod", "a"), PolicyTypes: []string{"Egress"},
			Egress: []structs.NetpolEgressRule{{
				To:    []structs.NetpolPeer{{NamespaceSelector: sel("ns", "y")}},
				Ports: []structs.NetpolPort{{Protocol: "TCP", Port: 80, EndPort: 81}},
			}},
		}},
		tables: map[probe]string{tcp80: xaToY, tcp81: xaToY, udp80: xaToNobody, udp81: xaToNobody},
	},
	{
		name: "egress to a port range starting at 81",
		policies: []structs.NetworkPolicy{{
			Namespace: "x", Name: "egress-range", Selector: *sel("pod", "a"), PolicyTypes: []string{"Egress"},
			Egress: []structs.NetpolEgressRule{{
				To:    []structs.NetpolPeer{{NamespaceSelector: sel("ns", "y")}},
				Ports: []structs.NetpolPort{{Protocol: "UDP", Port: 81, EndPort: 9000}},
			}},
		}},
		tables: map[probe]string{tcp80: xaToNobody, tcp81: xaToNobody, udp80: xaToNobody, udp81: xaToY},
	},
	{
		name: "egress to CIDR with except",
		policies: []structs.NetworkPolicy{{
			Namespace: "x", Name: "egress-cidr", Selector: *sel("pod", "a"), PolicyTypes: []string{"Egress"},
			Egress: []structs.NetpolEgressRule{{
				To: []structs.NetpolPeer{{IPBlock: &structs.IPBlock{CIDR: "10.0.2.0/24", Except: []string{"10.0.2.2/32"}}}},
			}},
		}},
		tables: allProbes(xaToYaYc),
	},
	{
		name: "ingress from CIDR with except, external sources",
		policies: []structs.NetworkPolicy{{
			Namespace: "x", Name: "ingress-cidr", Selector: *sel("pod", "a"),
			Ingress: []structs.NetpolIngressRule{{
				From:  []structs.NetpolPeer{{IPBlock: &structs.IPBlock{CIDR: "192.0.2.0/24", Except: []string{"192.0.2.128/25"}}}},
				Ports: []structs.NetpolPort{{Protocol: "TCP", Port: 80}},
			}},
		}},
		tables: allProbes(xaFromNobody),
		external: []externalProbe{
			{"192.0.2.1", "xa", tcp80, true},
			{"192.0.2.127", "xa", tcp80, true},
			{"192.0.2.128", "xa", tcp80, false},
			{"192.0.2.1", "xa", tcp81, false},
			{"192.0.2.1", "xa", udp80, false},
			{"198.51.100.1", "xa", tcp80, false},
			{"198.51.100.1", "xb", tcp80, true},
		},
	},
	{
		name:     "admin allow beats namespace deny, admin deny keeps z out",
		policies: []structs.NetworkPolicy{denyAllIngress("x")},
		admin: []structs.AdminNetworkPolicy{
			{Name: "allow-y", Priority: 20, Subject: structs.AdminNetpolSubject{NamespaceSelector: *sel("ns", "x")},
				Ingress: []structs.AdminNetpolRule{{Action: "Allow", Peers: []structs.NetpolPeer{{NamespaceSelector: sel("ns", "y")}}}}},
			{Name: "deny-z", Priority: 10, Subject: structs.AdminNetpolSubject{NamespaceSelector: *sel("ns", "x")},
				Ingress: []structs.AdminNetpolRule{{Action: "Deny", Peers: []structs.NetpolPeer{{NamespaceSelector: sel("ns", "z")}}}}},
		},
		tables: allProbes(adminYInZOut),
	},
	{
		name: "admin pass defers to namespace policy",
		policies: []structs.NetworkPolicy{denyAllIngress("x"), {
			Namespace: "x", Name: "from-y-z-80", Ingress: []structs.NetpolIngressRule{{
				From:  []structs.NetpolPeer{{NamespaceSelector: &structs.LabelSelector{MatchExpressions: []structs.LabelSelectorRequirement{{Key: "ns", Operator: "In", Values: []string{"y", "z"}}}}}},
				Ports: []structs.NetpolPort{{Port: 80}},
			}},
		}},
		admin: []structs.AdminNetworkPolicy{
			{Name: "pass-y", Priority: 1, Subject: structs.AdminNetpolSubject{NamespaceSelector: *sel("ns", "x")},
				Ingress: []structs.AdminNetpolRule{{Action: "pass", Peers: []structs.NetpolPeer{{NamespaceSelector: sel("ns", "y")}}}}},
			{Name: "deny-not-x", Priority: 2, Subject: structs.AdminNetpolSubject{NamespaceSelector: *sel("ns", "x")},
				Ingress: []structs.AdminNetpolRule{{Action: "deny", Peers: []structs.NetpolPeer{{NamespaceSelector: &structs.LabelSelector{MatchExpressions: []structs.LabelSelectorRequirement{{Key: "ns", Operator: "NotIn", Values: []string{"x"}}}}}}}}},
		},
		tables: map[probe]string{tcp80: adminPassTCP80, tcp81: adminPassOther, udp80: adminPassOther, udp81: adminPassOther},
	},
}

// parseTable reads a truth table into allowed[from][to].
func parseTable(t *testing.T, table string) map[string]map[string]bool {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(table), "\n")
	cols := strings.Fields(lines[0])
	if len(lines) != len(modelPods)+1 || strings.Join(cols, " ") != strings.Join(modelPods, " ") {
		t.Fatalf("malformed table:\n%s", table)
	}
	out := map[string]map[string]bool{}
	for i, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) != len(cols)+1 || f[0] != modelPods[i] {
			t.Fatalf("malformed table row %q", line)
		}
		out[f[0]] = map[string]bool{}
		for j, c := range f[1:] {
			if c != "." && c != "X" {
				t.Fatalf("malformed table cell %q in row %q", c, line)
			}
			out[f[0]][cols[j]] = c == "."
		}
	}
	return out
}

func TestKubernetesModel(t *testing.T) {
	eps := modelEndpoints()
	for _, tc := range modelCases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Compile(eps, tc.policies, tc.admin)
			if err != nil {
				t.Fatal(err)
			}
			for pr, table := range tc.tables {
				want := parseTable(t, table)
				var diffs []string
				for _, from := range modelPods {
					for _, to := range modelPods {
						f := Flow{Src: modelIP(from), Dst: modelIP(to), Protocol: pr.proto, Port: pr.port}
						w := want[from][to]
						if got := Allowed(f, eps, tc.policies, tc.admin); got != w {
							diffs = append(diffs, fmt.Sprintf("oracle %s→%s: got %v want %v", from, to, got, w))
						}
						if got := r.Evaluate(f); got != w {
							diffs = append(diffs, fmt.Sprintf("ruleset %s→%s: got %v want %v", from, to, got, w))
						}
					}
				}
				if len(diffs) > 0 {
					t.Errorf("proto %d port %d:\n%s", pr.proto, pr.port, strings.Join(diffs, "\n"))
				}
			}
			for _, ex := range tc.external {
				f := Flow{Src: netip.MustParseAddr(ex.from), Dst: modelIP(ex.to), Protocol: ex.p.proto, Port: ex.p.port}
				if got := Allowed(f, eps, tc.policies, tc.admin); got != ex.allowed {
					t.Errorf("oracle %s→%s %+v: got %v want %v", ex.from, ex.to, ex.p, got, ex.allowed)
				}
				if got := r.Evaluate(f); got != ex.allowed {
					t.Errorf("ruleset %s→%s %+v: got %v want %v", ex.from, ex.to, ex.p, got, ex.allowed)
				}
			}
		})
	}
}

// TestQuarantine: quarantine cuts an endpoint off both ways, even from
// admin allows, and leaves everyone else alone.
func TestQuarantine(t *testing.T) {
	eps := modelEndpoints()
	eps[0].Quarantined = true // x/a
	admin := []structs.AdminNetworkPolicy{{Name: "allow-all", Subject: structs.AdminNetpolSubject{},
		Ingress: []structs.AdminNetpolRule{{Action: "Allow", Peers: []structs.NetpolPeer{{NamespaceSelector: &structs.LabelSelector{}}}}}}}
	r, err := Compile(eps, nil, admin)
	if err != nil {
		t.Fatal(err)
	}
	const want = `
   xa xb xc ya yb yc za zb zc
xa .  X  X  X  X  X  X  X  X
xb X  .  .  .  .  .  .  .  .
xc X  .  .  .  .  .  .  .  .
ya X  .  .  .  .  .  .  .  .
yb X  .  .  .  .  .  .  .  .
yc X  .  .  .  .  .  .  .  .
za X  .  .  .  .  .  .  .  .
zb X  .  .  .  .  .  .  .  .
zc X  .  .  .  .  .  .  .  .
`
	tbl := parseTable(t, want)
	for _, from := range modelPods {
		for _, to := range modelPods {
			f := Flow{Src: modelIP(from), Dst: modelIP(to), Protocol: ProtoTCP, Port: 80}
			if got := r.Evaluate(f); got != tbl[from][to] {
				t.Errorf("ruleset %s→%s: got %v", from, to, got)
			}
			if got := Allowed(f, eps, nil, admin); got != tbl[from][to] {
				t.Errorf("oracle %s→%s: got %v", from, to, got)
			}
		}
	}
	if r.Evaluate(Flow{Src: netip.MustParseAddr("192.0.2.1"), Dst: modelIP("xa"), Protocol: ProtoTCP, Port: 80}) {
		t.Error("external → quarantined allowed")
	}
}
