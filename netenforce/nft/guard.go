package nft

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Guard is a worker's anti-spoofing, written at the top of the forward
// chain ahead of any policy, because the policy trusts source addresses:
// an allocation that could send from another's address would take that
// one's identity.
//
//   - A packet from the cluster CIDR but outside this node's subnet is
//     another node's allocation: it must arrive through the WireGuard
//     interface, where cryptokey routing already ties the source to the
//     peer whose subnet it is.
//   - A packet from this node's subnet must come from the host end of the
//     veth of the allocation holding that address (set veth_src, keyed by
//     input interface and source address).
//
// The node's own gateway address never appears in forward (the host's own
// traffic leaves through output), so it needs no exception. IPv4 only, as
// the subnets are.
type Guard struct {
	ClusterCIDR netip.Prefix
	LocalSubnet netip.Prefix
	WGInterface string
	// Veths maps the host end of each local allocation's veth to the one
	// address it may send from.
	Veths map[string]netip.Addr
}

func (g *Guard) validate() error {
	if !g.ClusterCIDR.IsValid() || !g.ClusterCIDR.Addr().Is4() || !g.LocalSubnet.IsValid() || !g.LocalSubnet.Addr().Is4() {
		return fmt.Errorf("guard: cluster CIDR %s and local subnet %s must be IPv4 prefixes", g.ClusterCIDR, g.LocalSubnet)
	}
	if len(g.WGInterface) == 0 || len(g.WGInterface) >= unix.IFNAMSIZ {
		return fmt.Errorf("guard: WireGuard interface name %q must be 1-15 characters", g.WGInterface)
	}
	for dev, a := range g.Veths {
		if len(dev) == 0 || len(dev) >= unix.IFNAMSIZ || !g.LocalSubnet.Contains(a) {
			return fmt.Errorf("guard: veth %q with address %s: the name must be 1-15 characters and the address inside %s", dev, a, g.LocalSubnet)
		}
	}
	return nil
}

var typeIfAddr = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIPAddr)

// ifname is a device name as the kernel compares it: NUL-padded to
// IFNAMSIZ.
func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

// planGuard adds the guard's set; its rules come from guardRules.
func (p *planned) planGuard(g *Guard) {
	p.guard = g
	p.vethSrc = p.newSet("veth_src", typeIfAddr, prioDeny, concat)
	devs := make([]string, 0, len(g.Veths))
	for d := range g.Veths {
		devs = append(devs, d)
	}
	slices.Sort(devs)
	for _, d := range devs {
		p.vethSrc.elems = append(p.vethSrc.elems, nftables.SetElement{Key: append(ifname(d), g.Veths[d].AsSlice()...)})
	}
}

// inPrefix checks that the IPv4 address in register at lies in (or, with
// !want, outside) pfx; it overwrites the register.
func (r rule) inPrefix(at uint32, pfx netip.Prefix, want bool) rule {
	m := prefixMask(pfx.Bits())
	op := expr.CmpOpEq
	if !want {
		op = expr.CmpOpNeq
	}
	return append(r,
		&expr.Bitwise{SourceRegister: reg(at), DestRegister: reg(at), Len: 4, Mask: m, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: op, Register: reg(at), Data: pfx.Masked().Addr().AsSlice()})
}

func prefixMask(bits int) []byte {
	v := ^uint32(0) << (32 - bits)
	if bits == 0 {
		v = 0
	}
	return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

func (p *planned) guardRules() []rule {
	g := p.guard
	if g == nil {
		return nil
	}
	v4 := families[0]
	// Another node's subnet, not through WireGuard: drop.
	foreign := rule{}.nfproto(v4).
		addr(v4, true, rAddr).inPrefix(rAddr, g.ClusterCIDR, true).
		addr(v4, true, rAddr).inPrefix(rAddr, g.LocalSubnet, false)
	foreign = append(foreign,
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg(rTmp)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg(rTmp), Data: ifname(g.WGInterface)},
		&expr.Verdict{Kind: expr.VerdictDrop})
	// This node's subnet, not from the veth that holds the address: drop.
	local := rule{}.nfproto(v4).addr(v4, true, rAddr).inPrefix(rAddr, g.LocalSubnet, true)
	local = append(local,
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg(rSubj)},
		&expr.Payload{DestRegister: reg(rSubj + 4), Base: expr.PayloadBaseNetworkHeader, Offset: v4.src, Len: v4.len})
	local = local.notIn(p.vethSrc.set, rSubj).verdict(expr.VerdictDrop, "")
	return []rule{foreign, local}
}
