package policy

import (
	"cmp"
	"net/netip"
	"slices"
	"sort"
)

// PortRange is an inclusive port range.
type PortRange struct{ Lo, Hi uint16 }

// AddrRange is an inclusive address range within one family, the element
// of an nftables interval set.
type AddrRange struct{ Lo, Hi netip.Addr }

// Contains reports whether a lies in the range.
func (r AddrRange) Contains(a netip.Addr) bool {
	return r.Lo.Compare(a) <= 0 && a.Compare(r.Hi) <= 0
}

var (
	allIPv4 = AddrRange{netip.IPv4Unspecified(), netip.AddrFrom4([4]byte{255, 255, 255, 255})}
	allIPv6 = AddrRange{netip.IPv6Unspecified(), netip.AddrFrom16([16]byte{
		255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255})}
)

// prefixRange is the inclusive range a masked prefix covers.
func prefixRange(p netip.Prefix) AddrRange {
	lo := p.Masked().Addr()
	b := lo.AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	hi, _ := netip.AddrFromSlice(b)
	return AddrRange{lo, hi}
}

// blockRanges turns a validated CIDR-with-exceptions into disjoint sorted
// ranges, which is how nftables interval sets want them.
func blockRanges(cidr string, except []string) []AddrRange {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil
	}
	out := []AddrRange{prefixRange(p)}
	holes := make([]AddrRange, 0, len(except))
	for _, e := range except {
		if ep, err := netip.ParsePrefix(e); err == nil {
			holes = append(holes, prefixRange(ep))
		}
	}
	for _, h := range mergeAddrRanges(holes) {
		out = subtractRange(out, h)
	}
	return out
}

// subtractRange removes h from sorted disjoint ranges.
func subtractRange(rs []AddrRange, h AddrRange) []AddrRange {
	out := rs[:0:0]
	for _, r := range rs {
		if h.Hi.Compare(r.Lo) < 0 || r.Hi.Compare(h.Lo) < 0 {
			out = append(out, r)
			continue
		}
		if r.Lo.Compare(h.Lo) < 0 {
			out = append(out, AddrRange{r.Lo, h.Lo.Prev()})
		}
		if h.Hi.Compare(r.Hi) < 0 {
			out = append(out, AddrRange{h.Hi.Next(), r.Hi})
		}
	}
	return out
}

// adjacent reports whether b starts right after a ends (same family).
func adjacent(a, b netip.Addr) bool {
	n := a.Next()
	return n.IsValid() && n == b
}

// mergeAddrRanges sorts and merges overlapping and adjacent ranges. Ranges
// of different families never merge: Compare orders IPv4 before IPv6.
func mergeAddrRanges(rs []AddrRange) []AddrRange {
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b AddrRange) int { return a.Lo.Compare(b.Lo) })
	out := []AddrRange{rs[0]}
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.Lo.Compare(last.Hi) <= 0 || adjacent(last.Hi, r.Lo) {
			if r.Hi.Compare(last.Hi) > 0 {
				last.Hi = r.Hi
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// mergePorts sorts and merges overlapping and adjacent port ranges, so each
// element of an nftables interval set is disjoint from the others (the
// kernel rejects overlapping elements).
func mergePorts(ps []PortRange) []PortRange {
	if len(ps) == 0 {
		return nil
	}
	slices.SortFunc(ps, func(a, b PortRange) int { return cmp.Compare(a.Lo, b.Lo) })
	out := []PortRange{ps[0]}
	for _, p := range ps[1:] {
		last := &out[len(out)-1]
		if int(p.Lo) <= int(last.Hi)+1 {
			last.Hi = max(last.Hi, p.Hi)
			continue
		}
		out = append(out, p)
	}
	return out
}

// portIn looks port up in sorted disjoint ranges, as an interval set does.
func portIn(rs []PortRange, port uint16) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].Hi >= port })
	return i < len(rs) && rs[i].Lo <= port
}

// addrIn looks a up in sorted disjoint ranges.
func addrIn(rs []AddrRange, a netip.Addr) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].Hi.Compare(a) >= 0 })
	return i < len(rs) && rs[i].Lo.Compare(a) <= 0
}

// cidrBox is one (address range, port range) allow of a CIDR peer with
// ports, before decomposition.
type cidrBox struct {
	addr AddrRange
	port PortRange
}

// CIDRPorts is one element group of a CIDR-with-ports set: sources (or
// destinations) in Range may use Ports. Segments of one key are disjoint
// and sorted, so the applier can write them as non-overlapping
// (range . port-range) elements.
type CIDRPorts struct {
	Range AddrRange
	Ports []PortRange
}

// decomposeBoxes cuts overlapping (address range × port range) boxes into
// disjoint address segments, each with its merged port list, and joins
// neighbouring segments that allow the same ports. Overlap happens whenever
// two rules name overlapping CIDRs for one subject, and nftables'
// concatenated interval sets refuse overlapping elements.
func decomposeBoxes(boxes []cidrBox) []CIDRPorts {
	if len(boxes) == 0 {
		return nil
	}
	bounds := make([]netip.Addr, 0, 2*len(boxes))
	for _, b := range boxes {
		bounds = append(bounds, b.addr.Lo)
		if n := b.addr.Hi.Next(); n.IsValid() {
			bounds = append(bounds, n)
		}
	}
	slices.SortFunc(bounds, netip.Addr.Compare)
	bounds = slices.Compact(bounds)
	slices.SortFunc(boxes, func(a, b cidrBox) int { return a.addr.Lo.Compare(b.addr.Lo) })

	var out []CIDRPorts
	var active []cidrBox
	next := 0
	for i, lo := range bounds {
		hi := familyMax(lo)
		if i+1 < len(bounds) && bounds[i+1].BitLen() == lo.BitLen() {
			hi = bounds[i+1].Prev()
		}
		for next < len(boxes) && boxes[next].addr.Lo.Compare(lo) <= 0 {
			active = append(active, boxes[next])
			next++
		}
		kept := active[:0]
		var ports []PortRange
		for _, b := range active {
			if b.addr.Hi.Compare(lo) >= 0 {
				kept = append(kept, b)
				ports = append(ports, b.port)
			}
		}
		active = kept
		if len(ports) == 0 {
			continue
		}
		ports = mergePorts(ports)
		if n := len(out); n > 0 && adjacent(out[n-1].Range.Hi, lo) && slices.Equal(out[n-1].Ports, ports) {
			out[n-1].Range.Hi = hi
			continue
		}
		out = append(out, CIDRPorts{Range: AddrRange{lo, hi}, Ports: ports})
	}
	return out
}

func familyMax(a netip.Addr) netip.Addr {
	if a.Is4() {
		return allIPv4.Hi
	}
	return allIPv6.Hi
}

// cidrPortsLookup finds the segment holding a and checks port in it.
func cidrPortsLookup(segs []CIDRPorts, a netip.Addr, port uint16) bool {
	i := sort.Search(len(segs), func(i int) bool { return segs[i].Range.Hi.Compare(a) >= 0 })
	return i < len(segs) && segs[i].Range.Lo.Compare(a) <= 0 && portIn(segs[i].Ports, port)
}
