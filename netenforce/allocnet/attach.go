package allocnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// peerName is the allocation's end of its veth, inside its namespace.
const peerName = "eth0"

// ensure makes at's network whole, keeping whatever of it is already
// right; every step is idempotent. made names what had to be made anew.
func (m *Manager) ensure(at *Attachment) (made []string, err error) {
	ns, ok, err := openNetns(at.NetnsPath)
	if err != nil {
		return nil, err
	}
	if !ok {
		// Missing, or a file left unmounted: a veth of this allocation
		// can only lead into a namespace that is gone from the path.
		if err := m.removeVeth(at.HostVeth); err != nil {
			return nil, err
		}
		if err := removeNetns(at.NetnsPath); err != nil {
			return nil, err
		}
		if ns, err = newNetns(at.NetnsPath); err != nil {
			return nil, fmt.Errorf("create network namespace %s: %w", at.NetnsPath, err)
		}
		made = append(made, "netns")
	}
	defer ns.Close()
	in, err := handleIn(ns)
	if err != nil {
		return made, fmt.Errorf("netlink in %s: %w", at.NetnsPath, err)
	}
	defer in.Close()

	host, eth, fresh, err := m.ensureVeth(in, ns, at.HostVeth)
	if err != nil {
		return made, err
	}
	if fresh {
		made = append(made, "veth")
	}
	if err := m.configureInside(in, eth, host.Attrs().HardwareAddr, at.Addr); err != nil {
		return made, fmt.Errorf("inside %s: %w", at.NetnsPath, err)
	}
	if err := m.configureHost(host, eth.Attrs().HardwareAddr, at.Addr); err != nil {
		return made, err
	}
	if err := m.waitUp(in, eth.Attrs().Index, host.Attrs().Index); err != nil {
		return made, err
	}
	return made, nil
}

// linkUpTimeout bounds waitUp; the kernel normally takes well under a
// millisecond.
const linkUpTimeout = 2 * time.Second

// waitUp returns once both ends of the veth are operationally up. Until
// the kernel's link watcher has handled the carrier coming on (it sets
// the operational state, then swaps each transmit queue's "noop" qdisc,
// which drops everything, for the real one), packets sent on the veth are
// silently lost: a container that sent its first SYN right after Setup
// would wait a second for the retransmission.
func (m *Manager) waitUp(in *netlink.Handle, ethIndex, hostIndex int) error {
	deadline := time.Now().Add(linkUpTimeout)
	for delay := 100 * time.Microsecond; ; delay = min(2*delay, 20*time.Millisecond) {
		eth, err := in.LinkByIndex(ethIndex)
		if err != nil {
			return fmt.Errorf("look up %s: %w", peerName, err)
		}
		host, err := m.host.LinkByIndex(hostIndex)
		if err != nil {
			return fmt.Errorf("look up the host veth: %w", err)
		}
		es, hs := eth.Attrs().OperState, host.Attrs().OperState
		if es == netlink.OperUp && hs == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("veth %s not up after %s: operational state %s, %s inside", host.Attrs().Name, linkUpTimeout, hs, es)
		}
		time.Sleep(delay)
	}
}

// ensureVeth returns the veth pair between the node and ns, making it if
// there is none or the one named hostVeth leads elsewhere.
func (m *Manager) ensureVeth(in *netlink.Handle, ns netns.NsHandle, hostVeth string) (host, eth netlink.Link, fresh bool, err error) {
	host, herr := m.host.LinkByName(hostVeth)
	eth, eerr := in.LinkByName(peerName)
	if herr == nil && eerr == nil && paired(host, eth) {
		return host, eth, false, nil
	}
	if err := m.removeVeth(hostVeth); err != nil {
		return nil, nil, false, err
	}
	// Looked up again: it went with the host end if it was its peer.
	if eth, err := in.LinkByName(peerName); err == nil {
		// Whatever it is, it holds the name the peer needs.
		if err := in.LinkDel(eth); err != nil && !errors.Is(err, unix.ENODEV) {
			return nil, nil, false, fmt.Errorf("delete a stray %s: %w", peerName, err)
		}
	}
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = hostVeth, m.cfg.MTU
	// The peer is made directly inside the namespace under its final
	// name: no moment where it sits in the node's namespace to be
	// cleaned up after a crash.
	veth := &netlink.Veth{LinkAttrs: la, PeerName: peerName, PeerNamespace: netlink.NsFd(ns), PeerMTU: uint32(m.cfg.MTU)}
	if err := m.host.LinkAdd(veth); err != nil {
		return nil, nil, false, fmt.Errorf("create veth %s: %w", hostVeth, err)
	}
	if host, err = m.host.LinkByName(hostVeth); err != nil {
		return nil, nil, false, fmt.Errorf("look up %s: %w", hostVeth, err)
	}
	if eth, err = in.LinkByName(peerName); err != nil {
		return nil, nil, false, fmt.Errorf("look up %s in the allocation's namespace: %w", peerName, err)
	}
	return host, eth, true, nil
}

// paired reports whether host and eth are the two ends of one veth: each
// one's link index (IFLA_LINK) is the other's interface index.
func paired(host, eth netlink.Link) bool {
	return host.Type() == "veth" && eth.Type() == "veth" &&
		host.Attrs().ParentIndex == eth.Attrs().Index && eth.Attrs().ParentIndex == host.Attrs().Index
}

func hostRoute(ifindex int, a netip.Addr) *netlink.Route {
	return &netlink.Route{LinkIndex: ifindex, Scope: netlink.SCOPE_LINK, Dst: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}}
}

func permanentNeigh(ifindex int, a netip.Addr, mac net.HardwareAddr) *netlink.Neigh {
	return &netlink.Neigh{LinkIndex: ifindex, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: a.AsSlice(), HardwareAddr: mac}
}

// configureInside sets up the allocation's side: lo up; eth0 up with the
// MTU and the /32; the gateway on-link with a permanent neighbour entry;
// the default route through it.
func (m *Manager) configureInside(in *netlink.Handle, eth netlink.Link, hostMAC net.HardwareAddr, addr netip.Addr) error {
	lo, err := in.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("look up lo: %w", err)
	}
	if err := in.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	if eth.Attrs().MTU != m.cfg.MTU {
		if err := in.LinkSetMTU(eth, m.cfg.MTU); err != nil {
			return fmt.Errorf("MTU of %s: %w", peerName, err)
		}
	}
	if err := in.AddrReplace(eth, &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
		return fmt.Errorf("address %s/32: %w", addr, err)
	}
	if err := in.LinkSetUp(eth); err != nil {
		return fmt.Errorf("bring %s up: %w", peerName, err)
	}
	gw := m.store.Gateway()
	idx := eth.Attrs().Index
	if err := in.NeighSet(permanentNeigh(idx, gw, hostMAC)); err != nil {
		return fmt.Errorf("neighbour entry for the gateway %s: %w", gw, err)
	}
	if err := in.RouteReplace(hostRoute(idx, gw)); err != nil {
		return fmt.Errorf("route to the gateway %s: %w", gw, err)
	}
	// onlink: the default route does not depend on the route to .1
	// above; a container that deletes that one keeps its way out.
	def := &netlink.Route{LinkIndex: idx, Gw: gw.AsSlice(), Flags: int(netlink.FLAG_ONLINK),
		Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}}
	if err := in.RouteReplace(def); err != nil {
		return fmt.Errorf("default route via %s: %w", gw, err)
	}
	return nil
}

// configureHost sets up the node's side: the veth's sysctls, MTU, up, the
// /32 route and a permanent neighbour entry for the allocation's address.
func (m *Manager) configureHost(host netlink.Link, ethMAC net.HardwareAddr, addr netip.Addr) error {
	name := host.Attrs().Name
	err := onThreadIn(m.hostNS, func() error {
		// Strict: only the allocation's /32 routes back through this
		// veth, so a packet from any other source arriving on it is
		// spoofed. (The effective value is the larger of this and
		// conf/all/rp_filter, which the node's owner may set to 2.)
		if err := sysctl("net/ipv4/conf/"+name+"/rp_filter", "1"); err != nil {
			return err
		}
		// Before the link goes up, so it never gets a link-local address.
		err := sysctl("net/ipv6/conf/"+name+"/disable_ipv6", "1")
		if errors.Is(err, os.ErrNotExist) {
			return nil // a kernel without IPv6
		}
		return err
	})
	if err != nil {
		return err
	}
	if host.Attrs().MTU != m.cfg.MTU {
		if err := m.host.LinkSetMTU(host, m.cfg.MTU); err != nil {
			return fmt.Errorf("MTU of %s: %w", name, err)
		}
	}
	if err := m.host.LinkSetUp(host); err != nil {
		return fmt.Errorf("bring %s up: %w", name, err)
	}
	idx := host.Attrs().Index
	if err := m.host.NeighSet(permanentNeigh(idx, addr, ethMAC)); err != nil {
		return fmt.Errorf("neighbour entry for %s on %s: %w", addr, name, err)
	}
	if err := m.host.RouteReplace(hostRoute(idx, addr)); err != nil {
		return fmt.Errorf("route %s dev %s: %w", addr, name, err)
	}
	return nil
}

// removeVeth deletes the node's end of a veth (the kernel deletes the
// peer, the /32 route and the neighbour entry with it); a missing one is
// fine.
func (m *Manager) removeVeth(name string) error {
	l, err := m.host.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if err := m.host.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// remove deletes at's veth and namespace file; what is already gone is
// fine.
func (m *Manager) remove(at *Attachment) error {
	return errors.Join(m.removeVeth(at.HostVeth), removeNetns(at.NetnsPath))
}
