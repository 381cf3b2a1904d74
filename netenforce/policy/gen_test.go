package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/hivesec/hive/structs"
)

// world is a random cluster: endpoints, policies and admin policies drawn
// from small vocabularies so that selectors, CIDRs and ports collide often.
type world struct {
	eps      []Endpoint
	policies []structs.NetworkPolicy
	admin    []structs.AdminNetworkPolicy
}

type gen struct{ r *rand.Rand }

var (
	genNamespaces = []string{"x", "y", "z", "w"}
	genKeys       = []string{"app", "tier", "role"}
	genValues     = []string{"a", "b", "c"}
	genPorts      = []int{1, 79, 80, 81, 443, 1000, 65535}
)

func (g gen) pick(s []string) string { return s[g.r.IntN(len(s))] }
func (g gen) chance(pct int) bool    { return g.r.IntN(100) < pct }

func (g gen) labels(keys []string) map[string]string {
	m := map[string]string{}
	for _, k := range keys {
		if g.chance(60) {
			m[k] = g.pick(genValues)
		}
	}
	return m
}

func (g gen) nsLabels(ns string) map[string]string {
	m := map[string]string{"ns": ns}
	if g.chance(60) {
		m["team"] = g.pick([]string{"a", "b"})
	}
	if g.chance(40) {
		m["env"] = g.pick([]string{"prod", "dev"})
	}
	return m
}

func (g gen) selector(keys []string) structs.LabelSelector {
	s := structs.LabelSelector{}
	for range g.r.IntN(3) {
		if s.MatchLabels == nil {
			s.MatchLabels = map[string]string{}
		}
		s.MatchLabels[g.pick(keys)] = g.pick(genValues)
	}
	ops := []string{structs.SelectorOpIn, structs.SelectorOpNotIn, structs.SelectorOpExists, structs.SelectorOpDoesNotExist}
	for range g.r.IntN(3) {
		e := structs.LabelSelectorRequirement{Key: g.pick(keys), Operator: g.pick(ops)}
		if e.Operator == structs.SelectorOpIn || e.Operator == structs.SelectorOpNotIn {
			for range 1 + g.r.IntN(2) {
				e.Values = append(e.Values, g.pick(genValues))
			}
		}
		s.MatchExpressions = append(s.MatchExpressions, e)
	}
	return s
}

func (g gen) selectorPtr(keys []string) *structs.LabelSelector {
	s := g.selector(keys)
	return &s
}

var nsSelKeys = []string{"ns", "team", "env"}

func (g gen) nsSelector() structs.LabelSelector {
	s := structs.LabelSelector{}
	if g.chance(50) {
		s.MatchLabels = map[string]string{g.pick(nsSelKeys): g.pick([]string{"x", "y", "a", "b", "prod"})}
	}
	if g.chance(30) {
		s.MatchExpressions = []structs.LabelSelectorRequirement{{Key: "ns", Operator: g.pick([]string{"In", "NotIn"}), Values: []string{g.pick(genNamespaces)}}}
	}
	if g.chance(15) {
		s.MatchExpressions = append(s.MatchExpressions, structs.LabelSelectorRequirement{Key: g.pick(nsSelKeys), Operator: g.pick([]string{"Exists", "DoesNotExist"})})
	}
	return s
}

// addr draws an address from the pools endpoints and CIDRs live in, so
// external addresses land inside, outside and on the edges of blocks.
func (g gen) addr() netip.Addr {
	switch g.r.IntN(10) {
	case 0:
		return netip.AddrFrom4([4]byte{192, 168, 1, byte(g.r.IntN(4))})
	case 1, 2:
		return netip.AddrFrom16([16]byte{0xfd, 15: byte(g.r.IntN(64))})
	}
	return netip.AddrFrom4([4]byte{10, 0, byte(g.r.IntN(2)), byte(g.r.IntN(64))})
}

func (g gen) ipBlock() *structs.IPBlock {
	if g.chance(5) {
		return &structs.IPBlock{CIDR: g.pick([]string{"0.0.0.0/0", "::/0"})}
	}
	a := g.addr()
	var bits int
	if a.Is4() {
		bits = 22 + g.r.IntN(10)
	} else {
		bits = 118 + g.r.IntN(10)
	}
	p := netip.PrefixFrom(a, bits).Masked()
	b := &structs.IPBlock{CIDR: p.String()}
	for range g.r.IntN(3) {
		if p.Bits() >= a.BitLen() {
			break
		}
		eb := p.Bits() + 1 + g.r.IntN(a.BitLen()-p.Bits())
		// A random address inside p, then the except around it.
		raw := p.Addr().AsSlice()
		for i := p.Bits(); i < len(raw)*8; i++ {
			if g.chance(50) {
				raw[i/8] |= 0x80 >> (i % 8)
			}
		}
		in, _ := netip.AddrFromSlice(raw)
		b.Except = append(b.Except, netip.PrefixFrom(in, eb).Masked().String())
	}
	return b
}

func (g gen) peers(admin bool) []structs.NetpolPeer {
	n := g.r.IntN(3)
	if admin {
		n++
	}
	var out []structs.NetpolPeer
	for range n {
		switch g.r.IntN(4) {
		case 0:
			out = append(out, structs.NetpolPeer{IPBlock: g.ipBlock()})
		case 1:
			out = append(out, structs.NetpolPeer{PodSelector: g.selectorPtr(genKeys)})
		case 2:
			s := g.nsSelector()
			out = append(out, structs.NetpolPeer{NamespaceSelector: &s})
		default:
			s := g.nsSelector()
			out = append(out, structs.NetpolPeer{NamespaceSelector: &s, PodSelector: g.selectorPtr(genKeys)})
		}
	}
	return out
}

func (g gen) ports() []structs.NetpolPort {
	var out []structs.NetpolPort
	for range g.r.IntN(3) {
		p := structs.NetpolPort{Protocol: g.pick([]string{"", "TCP", "UDP", "SCTP", "udp"}), Port: genPorts[g.r.IntN(len(genPorts))]}
		if g.chance(40) {
			p.EndPort = min(65535, p.Port+g.r.IntN(100))
		}
		out = append(out, p)
	}
	return out
}

func (g gen) world() world {
	var w world
	nsLabels := map[string]map[string]string{}
	for _, ns := range genNamespaces {
		nsLabels[ns] = g.nsLabels(ns)
	}
	used := map[netip.Addr]bool{}
	for i := range 1 + g.r.IntN(25) {
		ip := g.addr()
		if used[ip] {
			continue
		}
		used[ip] = true
		ns := g.pick(genNamespaces)
		nl := nsLabels[ns]
		if g.chance(5) { // an endpoint with stale namespace labels
			nl = g.nsLabels(ns)
		}
		w.eps = append(w.eps, Endpoint{
			ID: fmt.Sprint("ep", i), Namespace: ns, Labels: g.labels(genKeys), NamespaceLabels: nl,
			IP: ip, Quarantined: g.chance(4),
		})
	}
	for i := range 1 + g.r.IntN(8) {
		p := structs.NetworkPolicy{Namespace: g.pick(genNamespaces), Name: fmt.Sprint("p", i), Selector: g.selector(genKeys), Audit: g.chance(15)}
		var in, eg bool
		switch g.r.IntN(4) {
		case 0:
			in, eg = true, g.chance(50)
		case 1:
			p.PolicyTypes, in = []string{"Ingress"}, true
		case 2:
			p.PolicyTypes, eg = []string{"Egress"}, true
		default:
			p.PolicyTypes, in, eg = []string{"Egress", "Ingress"}, true, true
		}
		if in {
			for range g.r.IntN(4) {
				p.Ingress = append(p.Ingress, structs.NetpolIngressRule{From: g.peers(false), Ports: g.ports()})
			}
		}
		if eg {
			for range g.r.IntN(4) {
				p.Egress = append(p.Egress, structs.NetpolEgressRule{To: g.peers(false), Ports: g.ports()})
			}
		}
		w.policies = append(w.policies, p)
	}
	for i := range g.r.IntN(4) {
		a := structs.AdminNetworkPolicy{Name: fmt.Sprint("admin", i), Priority: g.r.IntN(4), Subject: structs.AdminNetpolSubject{NamespaceSelector: g.nsSelector()}}
		if g.chance(50) {
			a.Subject.PodSelector = g.selectorPtr(genKeys)
		}
		rules := func() []structs.AdminNetpolRule {
			var rs []structs.AdminNetpolRule
			for range g.r.IntN(4) {
				rs = append(rs, structs.AdminNetpolRule{Action: g.pick([]string{"Allow", "Deny", "Pass", "deny"}), Peers: g.peers(true), Ports: g.ports()})
			}
			return rs
		}
		a.Ingress, a.Egress = rules(), rules()
		w.admin = append(w.admin, a)
	}
	// Input order must not matter: priority ties are broken by name.
	g.r.Shuffle(len(w.admin), func(i, j int) { w.admin[i], w.admin[j] = w.admin[j], w.admin[i] })
	return w
}

func (g gen) flow(w *world) Flow {
	end := func() netip.Addr {
		if len(w.eps) > 0 && g.chance(75) {
			return w.eps[g.r.IntN(len(w.eps))].IP
		}
		return g.addr()
	}
	f := Flow{Src: end(), Dst: end()}
	if len(w.eps) > 0 && g.chance(90) {
		// Flows between two outside addresses never meet a policy; keep
		// a few, spend the rest where decisions are made.
		f.Dst = w.eps[g.r.IntN(len(w.eps))].IP
	}
	switch g.r.IntN(10) {
	case 0:
		f.Protocol = ProtoICMP
	case 1, 2:
		f.Protocol = ProtoUDP
	case 3:
		f.Protocol = ProtoSCTP
	default:
		f.Protocol = ProtoTCP
	}
	if f.Protocol != ProtoICMP {
		f.Port = uint16(genPorts[g.r.IntN(len(genPorts))] + g.r.IntN(3) - 1)
	}
	return f
}

// withoutAudit returns the policies with audit turned off: what the audit
// ruleset enforces.
func withoutAudit(ps []structs.NetworkPolicy) []structs.NetworkPolicy {
	out := make([]structs.NetworkPolicy, len(ps))
	copy(out, ps)
	for i := range out {
		out[i].Audit = false
	}
	return out
}
