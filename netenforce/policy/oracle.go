package policy

import (
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/hivesec/hive/structs"
)

// Allowed is the reference evaluator: it decides a flow straight from the
// policies, as plainly as the semantics can be written, so that it can be
// trusted as the oracle for the compiled Ruleset. It is far too slow for a
// dataplane and is not meant to be one. It shares no matching code with the
// compiler on purpose (selectors, CIDRs and ports are matched here afresh).
//
// Semantics, per direction (egress is decided for the source endpoint,
// ingress for the destination endpoint; the flow passes only if both
// directions allow it; an address that is no endpoint has no direction to
// decide):
//  0. A flow from an address to itself is allowed: it is loopback inside
//     the endpoint's netns and never reaches the dataplane.
//  1. A quarantined endpoint at either end denies the flow.
//  2. Admin policy rules whose subject is the endpoint, in ascending
//     priority (then name, then rule order): the first whose peer and port
//     match decides: Allow allows the direction, Deny denies it, Pass skips
//     to step 3.
//  3. Namespace policies of the endpoint's namespace: if none that isolate
//     this direction selects it, the direction is allowed; otherwise some
//     rule of one of those policies must match peer and port.
//
// Audit policies are ignored here: they log, they do not enforce. Policies
// are assumed valid; invalid ones are Compile's to reject.
func Allowed(flow Flow, eps []Endpoint, policies []structs.NetworkPolicy, admin []structs.AdminNetworkPolicy) bool {
	if flow.Src.Unmap() == flow.Dst.Unmap() {
		return true // loopback never leaves the endpoint's netns
	}
	src := oracleFind(eps, flow.Src)
	dst := oracleFind(eps, flow.Dst)
	if (src != nil && src.Quarantined) || (dst != nil && dst.Quarantined) {
		return false
	}
	if src != nil && !oracleDirection(flow, src, dst, flow.Dst, true, policies, admin) {
		return false
	}
	if dst != nil && !oracleDirection(flow, dst, src, flow.Src, false, policies, admin) {
		return false
	}
	return true
}

func oracleFind(eps []Endpoint, ip netip.Addr) *Endpoint {
	ip = ip.Unmap()
	for i := range eps {
		if eps[i].IP.Unmap() == ip {
			return &eps[i]
		}
	}
	return nil
}

// oracleDirection decides one direction for subject; peer is the endpoint
// at the other end (nil when peerIP is external).
func oracleDirection(flow Flow, subject, peer *Endpoint, peerIP netip.Addr, egress bool, policies []structs.NetworkPolicy, admin []structs.AdminNetworkPolicy) bool {
	switch oracleAdmin(flow, subject, peer, peerIP, egress, admin) {
	case "allow":
		return true
	case "deny":
		return false
	}
	selected := false
	for _, p := range policies {
		if p.Audit || p.Namespace != subject.Namespace || !oracleSelector(&p.Selector, subject.Labels) {
			continue
		}
		isolatesIngress := len(p.PolicyTypes) == 0 || slices.Contains(p.PolicyTypes, "Ingress")
		isolatesEgress := slices.Contains(p.PolicyTypes, "Egress") || (len(p.PolicyTypes) == 0 && len(p.Egress) > 0)
		if egress && isolatesEgress {
			selected = true
			for _, r := range p.Egress {
				if oracleRule(r.To, r.Ports, p.Namespace, flow, peer, peerIP) {
					return true
				}
			}
		}
		if !egress && isolatesIngress {
			selected = true
			for _, r := range p.Ingress {
				if oracleRule(r.From, r.Ports, p.Namespace, flow, peer, peerIP) {
					return true
				}
			}
		}
	}
	return !selected
}

// oracleAdmin returns the action of the first matching admin rule, lower
// case, or "" when none matches.
func oracleAdmin(flow Flow, subject, peer *Endpoint, peerIP netip.Addr, egress bool, admin []structs.AdminNetworkPolicy) string {
	sorted := slices.Clone(admin)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Priority != sorted[j].Priority {
			return sorted[i].Priority < sorted[j].Priority
		}
		return sorted[i].Name < sorted[j].Name
	})
	for _, a := range sorted {
		if !oracleSelector(&a.Subject.NamespaceSelector, subject.NamespaceLabels) {
			continue
		}
		if a.Subject.PodSelector != nil && !oracleSelector(a.Subject.PodSelector, subject.Labels) {
			continue
		}
		rules := a.Ingress
		if egress {
			rules = a.Egress
		}
		for _, r := range rules {
			if !oraclePorts(r.Ports, flow) {
				continue
			}
			for _, p := range r.Peers {
				if oracleAdminPeer(p, peer, peerIP) {
					return strings.ToLower(r.Action)
				}
			}
		}
	}
	return ""
}

func oracleRule(peers []structs.NetpolPeer, ports []structs.NetpolPort, ns string, flow Flow, peer *Endpoint, peerIP netip.Addr) bool {
	if !oraclePorts(ports, flow) {
		return false
	}
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if oraclePeer(p, ns, peer, peerIP) {
			return true
		}
	}
	return false
}

// oraclePeer matches a namespace policy peer: a pod selector alone stays in
// the policy's namespace.
func oraclePeer(p structs.NetpolPeer, ns string, peer *Endpoint, peerIP netip.Addr) bool {
	if p.IPBlock != nil {
		return oracleIPBlock(p.IPBlock, peerIP)
	}
	if peer == nil {
		return false
	}
	if p.NamespaceSelector == nil && peer.Namespace != ns {
		return false
	}
	if p.NamespaceSelector != nil && !oracleSelector(p.NamespaceSelector, peer.NamespaceLabels) {
		return false
	}
	if p.PodSelector != nil && !oracleSelector(p.PodSelector, peer.Labels) {
		return false
	}
	return true
}

// oracleAdminPeer matches an admin peer: there is no own namespace, so a
// missing selector constrains nothing.
func oracleAdminPeer(p structs.NetpolPeer, peer *Endpoint, peerIP netip.Addr) bool {
	if p.IPBlock != nil {
		return oracleIPBlock(p.IPBlock, peerIP)
	}
	if peer == nil {
		return false
	}
	if p.NamespaceSelector != nil && !oracleSelector(p.NamespaceSelector, peer.NamespaceLabels) {
		return false
	}
	if p.PodSelector != nil && !oracleSelector(p.PodSelector, peer.Labels) {
		return false
	}
	return true
}

func oracleIPBlock(b *structs.IPBlock, ip netip.Addr) bool {
	ip = ip.Unmap()
	if !netip.MustParsePrefix(b.CIDR).Contains(ip) {
		return false
	}
	for _, e := range b.Except {
		if netip.MustParsePrefix(e).Contains(ip) {
			return false
		}
	}
	return true
}

func oraclePorts(ports []structs.NetpolPort, flow Flow) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		proto := map[string]uint8{"": ProtoTCP, "TCP": ProtoTCP, "UDP": ProtoUDP, "SCTP": ProtoSCTP}[strings.ToUpper(p.Protocol)]
		end := p.EndPort
		if end == 0 {
			end = p.Port
		}
		if flow.Protocol == proto && int(flow.Port) >= p.Port && int(flow.Port) <= end {
			return true
		}
	}
	return false
}

func oracleSelector(s *structs.LabelSelector, labels map[string]string) bool {
	for k, v := range s.MatchLabels {
		got, ok := labels[k]
		if !ok || got != v {
			return false
		}
	}
	for _, e := range s.MatchExpressions {
		v, ok := labels[e.Key]
		switch e.Operator {
		case "In":
			if !ok || !slices.Contains(e.Values, v) {
				return false
			}
		case "NotIn":
			if ok && slices.Contains(e.Values, v) {
				return false
			}
		case "Exists":
			if !ok {
				return false
			}
		case "DoesNotExist":
			if ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}
