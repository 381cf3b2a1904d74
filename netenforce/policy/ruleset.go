package policy

import (
	"net/netip"

	"github.com/hivesec/hive/structs"
)

// ID is a numeric identity, the value the dataplane keys its maps by (a
// 32-bit nftables register or mark). Class and namespace identities share
// one space so a single (subject, peer) map can hold both kinds of peer.
type ID uint32

// AnyEndpoint is the peer identity that stands for every endpoint: rules
// like "from all namespaces" compile to one element instead of one per
// identity. IDs below firstID are reserved for such markers.
const AnyEndpoint ID = 1

const firstID ID = 16

// EndpointIdentity is what the address map yields for an endpoint's IP: its
// class (label identity) and its namespace identity.
type EndpointIdentity struct {
	Class     ID
	Namespace ID
}

// Class is an identity: all endpoints with the same namespace, labels and
// namespace labels are indistinguishable to every selector, so they share
// one ID and the policy maps grow with the number of distinct label sets,
// not with the number of endpoints.
type Class struct {
	ID              ID
	Namespace       string
	Labels          map[string]string
	NamespaceLabels map[string]string
}

// NamespaceIdentity is the identity of "every endpoint of a namespace", so
// that peers naming whole namespaces cost one element per namespace rather
// than one per class in it.
type NamespaceIdentity struct {
	ID     ID
	Name   string
	Labels map[string]string
}

// PairKey keys the all-ports allow set: (subject, peer) where subject is
// the class a direction is decided for (destination for ingress, source for
// egress) and peer is a class, a namespace identity or AnyEndpoint.
type PairKey struct{ Subject, Peer ID }

// PortKey keys the per-protocol port allow map: (subject, peer, protocol)
// → sorted disjoint port ranges.
type PortKey struct {
	Subject, Peer ID
	Proto         uint8
}

// CIDRKey keys the CIDR-with-ports map: (subject, protocol) → segments.
type CIDRKey struct {
	Subject ID
	Proto   uint8
}

// Direction is the compiled namespace policy of one direction. Every map
// is a single nftables set or map; a packet costs a fixed number of lookups
// (three identity keys, the CIDR sets) however many policies there are.
type Direction struct {
	// Isolated holds the classes selected by some policy of this direction:
	// they are default-deny, all others default-allow.
	Isolated map[ID]struct{}
	// SelectedBy names, for each isolated class, the policies
	// ("namespace/name", sorted) that select it: the dataplane counts the
	// packets it accepts and drops for the class under those names.
	SelectedBy map[ID][]string
	// AnyPort holds (subject, peer) pairs allowed on every port and
	// protocol.
	AnyPort map[PairKey]struct{}
	// Ports holds (subject, peer, proto) → allowed ports; keys whose pair
	// is in AnyPort are left out.
	Ports map[PortKey][]PortRange
	// CIDRAny holds subject → peer address ranges allowed on every port,
	// sorted and disjoint. An empty from/to list ("every peer") compiles to
	// the full IPv4 and IPv6 ranges here.
	CIDRAny map[ID][]AddrRange
	// CIDRPorts holds (subject, proto) → disjoint address segments with
	// their allowed ports.
	CIDRPorts map[CIDRKey][]CIDRPorts
}

// AdminRule is one compiled admin policy rule. Admin rules stay an ordered
// list, evaluated first match wins, with each rule's subject, peer and port
// sets being set lookups.
//
// Trade-off: per-packet cost grows with the number of admin rules (not with
// namespace policies). Resolving the order at compile time into a single
// (subject, peer, proto, port) → verdict map would make lookups constant,
// but broad admin rules ("deny from namespace x to everything") would then
// need an element per (subject class, peer class) pair — quadratic in the
// number of classes — and first-match across the class, namespace and CIDR
// keys of one packet cannot be expressed by independent lookups. Admin
// policies are few and written by cluster operators, so Validate caps them
// per direction and the list stays short.
type AdminRule struct {
	Policy   string
	Priority int
	Index    int // position within the policy's rules of this direction
	Name     string
	Action   string // structs.AdminActionAllow, Deny or Pass
	Subjects map[ID]struct{}
	// Peers holds class IDs, namespace IDs and AnyEndpoint.
	Peers     map[ID]struct{}
	PeerCIDRs []AddrRange
	// AnyPort is set when the rule names no ports.
	AnyPort bool
	Ports   map[uint8][]PortRange
}

// Ruleset is the compiled desired state: every set and map the applier
// writes into table inet hive.
type Ruleset struct {
	// Endpoints maps endpoint addresses to identities (an exact-match map).
	Endpoints map[netip.Addr]EndpointIdentity
	// Quarantined addresses are dropped to and from, before anything else.
	Quarantined map[netip.Addr]struct{}
	Classes     []Class
	Namespaces  []NamespaceIdentity
	Ingress     Direction
	Egress      Direction
	// AdminIngress and AdminEgress are in evaluation order.
	AdminIngress []AdminRule
	AdminEgress  []AdminRule
	// Audit is the ruleset with audit policies enforced, nil when there are
	// none: the applier logs flows Audit denies but the ruleset allows.
	Audit *Ruleset
}

// Evaluate decides a flow the way the nftables chains do, using only the
// lookups the dataplane has: the address map, the quarantine set, the admin
// rule list, and the direction maps. Tests hold it against Allowed.
func (r *Ruleset) Evaluate(f Flow) bool {
	src, dst := f.Src.Unmap(), f.Dst.Unmap()
	if src == dst {
		return true // loopback: the host's chains never see it
	}
	if _, q := r.Quarantined[src]; q {
		return false
	}
	if _, q := r.Quarantined[dst]; q {
		return false
	}
	se, srcEP := r.Endpoints[src]
	de, dstEP := r.Endpoints[dst]
	if srcEP && !decide(&r.Egress, r.AdminEgress, se, de, dstEP, dst, f) {
		return false
	}
	if dstEP && !decide(&r.Ingress, r.AdminIngress, de, se, srcEP, src, f) {
		return false
	}
	return true
}

// decide is one direction's chain: admin rules in order, then the
// isolation check, then the allow lookups.
func decide(d *Direction, admin []AdminRule, subj, peer EndpointIdentity, peerIsEP bool, peerIP netip.Addr, f Flow) bool {
	for i := range admin {
		a := &admin[i]
		if !a.matches(subj, peer, peerIsEP, peerIP, f) {
			continue
		}
		switch a.Action {
		case structs.AdminActionAllow:
			return true
		case structs.AdminActionDeny:
			return false
		}
		break // Pass: on to the namespace policies
	}
	if _, iso := d.Isolated[subj.Class]; !iso {
		return true
	}
	if peerIsEP {
		for _, p := range [...]ID{peer.Class, peer.Namespace, AnyEndpoint} {
			if _, ok := d.AnyPort[PairKey{subj.Class, p}]; ok {
				return true
			}
			if portIn(d.Ports[PortKey{subj.Class, p, f.Protocol}], f.Port) {
				return true
			}
		}
	}
	if addrIn(d.CIDRAny[subj.Class], peerIP) {
		return true
	}
	return cidrPortsLookup(d.CIDRPorts[CIDRKey{subj.Class, f.Protocol}], peerIP, f.Port)
}

func (a *AdminRule) matches(subj, peer EndpointIdentity, peerIsEP bool, peerIP netip.Addr, f Flow) bool {
	if _, ok := a.Subjects[subj.Class]; !ok {
		return false
	}
	if !a.AnyPort && !portIn(a.Ports[f.Protocol], f.Port) {
		return false
	}
	if peerIsEP {
		for _, p := range [...]ID{peer.Class, peer.Namespace, AnyEndpoint} {
			if _, ok := a.Peers[p]; ok {
				return true
			}
		}
	}
	return addrIn(a.PeerCIDRs, peerIP)
}
