package wg

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Peer is one other node of the mesh, as the managers describe it.
type Peer struct {
	PublicKey  wgtypes.Key
	Endpoint   netip.AddrPort // the node's underlay address and WireGuard port
	AllowedIPs []netip.Prefix // the node's subnet(s) of the cluster CIDR
}

// validatePeers rejects a desired set that WireGuard would apply in a
// surprising way: a duplicate key (the second silently wins), our own key,
// or overlapping AllowedIPs (WireGuard moves the prefix to whichever peer was
// configured last, so traffic would follow configuration order).
func validatePeers(self wgtypes.Key, peers []Peer) error {
	type owned struct {
		p   netip.Prefix
		key wgtypes.Key
	}
	seen := make(map[wgtypes.Key]bool, len(peers))
	var all []owned
	for _, p := range peers {
		if p.PublicKey == (wgtypes.Key{}) {
			return fmt.Errorf("wireguard peers: zero public key")
		}
		if p.PublicKey == self {
			return fmt.Errorf("wireguard peers: peer %s is this node", p.PublicKey)
		}
		if seen[p.PublicKey] {
			return fmt.Errorf("wireguard peers: duplicate peer %s", p.PublicKey)
		}
		seen[p.PublicKey] = true
		if !p.Endpoint.IsValid() || p.Endpoint.Port() == 0 {
			return fmt.Errorf("wireguard peers: peer %s: invalid endpoint %q", p.PublicKey, p.Endpoint)
		}
		for _, a := range p.AllowedIPs {
			if !a.IsValid() {
				return fmt.Errorf("wireguard peers: peer %s: invalid allowed IP %q", p.PublicKey, a)
			}
			all = append(all, owned{a.Masked(), p.PublicKey})
		}
	}
	// Sorted by first address, a prefix that overlaps any later one also
	// contains the start of its immediate successor, so checking neighbours
	// finds every overlap.
	slices.SortFunc(all, func(a, b owned) int {
		if c := a.p.Addr().Compare(b.p.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.p.Bits(), b.p.Bits())
	})
	for i := 1; i < len(all); i++ {
		if all[i-1].p.Overlaps(all[i].p) {
			return fmt.Errorf("wireguard peers: allowed IPs %s (peer %s) and %s (peer %s) overlap",
				all[i-1].p, all[i-1].key, all[i].p, all[i].key)
		}
	}
	return nil
}

// diffPeers returns the peer changes that turn the device's current peers
// into the desired ones, touching only what differs: new peers are added,
// peers whose endpoint or allowed IPs changed are updated in place (so their
// session survives), and peers no longer wanted are removed. An empty result
// means the device is already as wanted.
//
// The endpoint is compared too, although wireguard-go and the kernel roam a
// peer's endpoint to wherever its authenticated packets come from: the
// managers' view is the desired state, and a roamed endpoint is put back.
func diffPeers(current []wgtypes.Peer, desired []Peer) []wgtypes.PeerConfig {
	cur := make(map[wgtypes.Key]wgtypes.Peer, len(current))
	for _, p := range current {
		cur[p.PublicKey] = p
	}
	var out []wgtypes.PeerConfig
	want := make(map[wgtypes.Key]bool, len(desired))
	for _, d := range desired {
		want[d.PublicKey] = true
		c, exists := cur[d.PublicKey]
		if exists && sameEndpoint(c.Endpoint, d.Endpoint) && samePrefixes(c.AllowedIPs, d.AllowedIPs) {
			continue
		}
		out = append(out, wgtypes.PeerConfig{
			PublicKey:         d.PublicKey,
			UpdateOnly:        exists,
			Endpoint:          net.UDPAddrFromAddrPort(d.Endpoint),
			ReplaceAllowedIPs: true,
			AllowedIPs:        toIPNets(d.AllowedIPs),
		})
	}
	for _, c := range current {
		if !want[c.PublicKey] {
			out = append(out, wgtypes.PeerConfig{PublicKey: c.PublicKey, Remove: true})
		}
	}
	return out
}

func sameEndpoint(have *net.UDPAddr, want netip.AddrPort) bool {
	if have == nil {
		return false
	}
	ap := have.AddrPort()
	return ap.Addr().Unmap() == want.Addr().Unmap() && ap.Port() == want.Port()
}

func samePrefixes(have []net.IPNet, want []netip.Prefix) bool {
	h := make(map[netip.Prefix]bool, len(have))
	for _, n := range have {
		p, ok := prefixFromIPNet(n)
		if !ok {
			return false
		}
		h[p] = true
	}
	w := make(map[netip.Prefix]bool, len(want))
	for _, p := range want {
		w[p.Masked()] = true
	}
	if len(h) != len(w) {
		return false
	}
	for p := range w {
		if !h[p] {
			return false
		}
	}
	return true
}

func prefixFromIPNet(n net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	if a.Is4() && bits == 128 {
		ones -= 96
	}
	return netip.PrefixFrom(a, ones).Masked(), true
}

func toIPNets(ps []netip.Prefix) []net.IPNet {
	out := make([]net.IPNet, 0, len(ps))
	for _, p := range ps {
		p = p.Masked()
		out = append(out, net.IPNet{
			IP:   net.IP(p.Addr().AsSlice()),
			Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
		})
	}
	return out
}
