// Package policy is the pure half of Hive's network policy enforcement: it
// turns (endpoints, network policies, admin policies) into a Ruleset, a
// plain data model of the sets and maps the nftables applier writes into
// table inet hive, and it holds Allowed, the plain reference evaluator of
// the policy semantics that the compiled model is tested against.
//
// Nothing here does I/O, so the semantics get exhaustive tests without root;
// the applier that turns a Ruleset into one netlink batch lives elsewhere.
package policy

import "net/netip"

// IANA protocol numbers as carried in Flow.Protocol.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
	ProtoSCTP   uint8 = 132
)

// Endpoint is an allocation's network identity as the policy engine sees
// it: where it lives, the labels policies select it by, and its address.
// NamespaceLabels are the labels of its namespace, carried on the endpoint
// so the compiler needs no namespace table.
type Endpoint struct {
	ID              string
	Namespace       string
	Labels          map[string]string
	NamespaceLabels map[string]string
	IP              netip.Addr
	// Quarantined endpoints get no traffic in or out, whatever the
	// policies say.
	Quarantined bool
}

// Flow is the first packet of a connection: Src and Dst are endpoint or
// external addresses, Protocol an IANA number (ProtoTCP, ...), Port the
// destination port (0 for protocols without ports). Replies of allowed
// flows are conntrack's business, not the policy's.
type Flow struct {
	Src, Dst netip.Addr
	Protocol uint8
	Port     uint16
}

// protoNumber maps a validated NetpolPort protocol name to its number.
func protoNumber(name string) uint8 {
	switch name {
	case "UDP":
		return ProtoUDP
	case "SCTP":
		return ProtoSCTP
	}
	return ProtoTCP
}
