package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// PortForward publishes an allocation's port on the node: TCP and UDP to
// the node's address at HostPort go to Addr:To. The DNAT happens before
// routing, so the forwarded packet meets the allocation's ingress policy
// like any other (with the outside client as its source).
type PortForward struct {
	HostPort uint16
	Addr     netip.Addr
	To       uint16
}

// SetPorts makes every later Apply publish fw on node's address (the
// worker's advertise address); nil publishes nothing.
func (a *Applier) SetPorts(node netip.Addr, fw []PortForward) error {
	seen := map[uint16]bool{}
	for _, f := range fw {
		if !node.Is4() || !f.Addr.Is4() || f.HostPort == 0 || f.To == 0 {
			return fmt.Errorf("ports: %s:%d -> %s:%d: IPv4 addresses and non-zero ports only", node, f.HostPort, f.Addr, f.To)
		}
		if seen[f.HostPort] {
			return fmt.Errorf("ports: host port %d is published twice", f.HostPort)
		}
		seen[f.HostPort] = true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.node, a.ports = node, slices.Clone(fw)
	slices.SortFunc(a.ports, func(x, y PortForward) int { return int(x.HostPort) - int(y.HostPort) })
	return nil
}

// natRules are the DNAT rules, one per port and protocol; the count of
// published ports on a node is small, so a rule each is fine.
func (p *planned) natRules() []rule {
	var out []rule
	v4 := families[0]
	for _, f := range p.ports {
		for _, proto := range []byte{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
			out = append(out, rule{}.nfproto(v4).
				addr(v4, false, rAddr).cmpEq(rAddr, p.node.AsSlice()).
				l4proto(rTmp).cmpEq(rTmp, []byte{proto}).
				dport(rTmp).cmpEq(rTmp, binary.BigEndian.AppendUint16(nil, f.HostPort)),
			)
			r := &out[len(out)-1]
			*r = append(*r,
				&expr.Immediate{Register: 1, Data: f.Addr.AsSlice()},
				&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, f.To)},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
			)
		}
	}
	return out
}

func (r rule) cmpEq(at uint32, data []byte) rule {
	return append(r, &expr.Cmp{Op: expr.CmpOpEq, Register: reg(at), Data: data})
}

// writeNAT adds the DNAT chains: prerouting for traffic arriving at the
// node, output for the node's own connections to its address.
func (p *planned) writeNAT(c *nftables.Conn, t *nftables.Table) {
	if len(p.ports) == 0 {
		return
	}
	for _, h := range []struct {
		name string
		hook *nftables.ChainHook
	}{{"dnat_prerouting", nftables.ChainHookPrerouting}, {"dnat_output", nftables.ChainHookOutput}} {
		ch := c.AddChain(&nftables.Chain{Name: h.name, Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: h.hook, Priority: nftables.ChainPriorityNATDest})
		for _, r := range p.natRules() {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r})
		}
	}
}
