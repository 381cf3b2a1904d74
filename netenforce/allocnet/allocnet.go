// Package allocnet gives each allocation on a worker its own network
// namespace and address: a veth pair whose host end stays in the node's
// namespace, unbridged, with a /32 route to the allocation's address (see
// netenforce/nft's "Same-node traffic" for why routed, not bridged). The
// node holds the subnet's gateway (.1) on bridge hive0, which has no ports:
// it carries the address so the node answers the allocations' ARP for
// their default route, and routes the subnet locally ahead of the cluster
// CIDR route through hive-wg.
//
// Everything is created in the network namespace of the calling thread
// (the agent's), and allocation namespaces are bind-mounted as files in
// Config.NetnsDir (the agent uses <data-dir>/netns), as `ip netns add` does
// under /var/run/netns; containerd's OCI spec joins them by path, and
// `nsenter --net=<file>` enters one.
package allocnet

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/hivesec/hive/netenforce/ipam"
)

// BridgeName is the node's gateway device.
const BridgeName = "hive0"

// DefaultMTU fits inside WireGuard on a 1500-byte underlay.
const DefaultMTU = 1420

// DefaultNetnsDir is where allocation namespaces are bind-mounted unless
// Config.NetnsDir says otherwise.
const DefaultNetnsDir = "/var/run/netns"

// Config configures a Manager.
type Config struct {
	// Subnet is the node's leased subnet; its first host address is the
	// gateway.
	Subnet netip.Prefix
	MTU    int
	// StateDir holds the address store (ipam.json).
	StateDir string
	// NetnsDir holds the allocations' namespace files; default
	// DefaultNetnsDir. A directory of the agent's own keeps them apart
	// from other tools' and goes with the agent's data.
	NetnsDir string
	Logger   hclog.Logger
}

// Attachment is an allocation's network.
type Attachment struct {
	AllocID   string
	NetnsPath string
	Addr      netip.Addr
	HostVeth  string
}

// Manager sets up and removes allocation networks.
type Manager struct {
	cfg   Config
	log   hclog.Logger
	store *ipam.Store
	mu    sync.Mutex
}

// New prepares the node: bridge hive0 with the gateway address, IPv4
// forwarding, and the address store. Networks of allocations the store
// held for another subnet (a new lease) are removed.
func New(cfg Config) (*Manager, error) {
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.StateDir == "" {
		return nil, errors.New("allocnet: no state dir")
	}
	if cfg.NetnsDir == "" {
		cfg.NetnsDir = DefaultNetnsDir
	}
	store, dropped, err := ipam.Open(filepath.Join(cfg.StateDir, "ipam.json"), cfg.Subnet)
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, store: store}
	for id := range dropped {
		m.log.Warn("the node's subnet changed; removing an allocation network of the old one", "alloc", id)
		if err := m.remove(id); err != nil {
			m.log.Warn("cannot remove an old allocation network", "alloc", id, "error", err)
		}
	}
	if err := m.bridge(); err != nil {
		return nil, err
	}
	for _, k := range []string{"net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding"} {
		if err := sysctl(k, "1"); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func sysctl(key, v string) error {
	if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(v), 0o644); err != nil {
		return fmt.Errorf("allocnet: sysctl %s=%s: %w", key, v, err)
	}
	return nil
}

// bridge makes hive0 exist, be up, and hold exactly the gateway address.
func (m *Manager) bridge() error {
	gw := netlink.Addr{IPNet: &net.IPNet{IP: m.store.Gateway().AsSlice(), Mask: net.CIDRMask(m.cfg.Subnet.Bits(), 32)}}
	link, err := netlink.LinkByName(BridgeName)
	if err != nil {
		if !errors.As(err, new(netlink.LinkNotFoundError)) {
			return fmt.Errorf("allocnet: look up %s: %w", BridgeName, err)
		}
		la := netlink.NewLinkAttrs()
		la.Name, la.MTU = BridgeName, m.cfg.MTU
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
			return fmt.Errorf("allocnet: create %s: %w", BridgeName, err)
		}
		if link, err = netlink.LinkByName(BridgeName); err != nil {
			return fmt.Errorf("allocnet: %s: %w", BridgeName, err)
		}
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("allocnet: addresses of %s: %w", BridgeName, err)
	}
	for _, a := range addrs {
		if a.IPNet.String() != gw.IPNet.String() {
			if err := netlink.AddrDel(link, &a); err != nil {
				return fmt.Errorf("allocnet: remove stale %s from %s: %w", a.IPNet, BridgeName, err)
			}
		}
	}
	if err := netlink.AddrReplace(link, &gw); err != nil {
		return fmt.Errorf("allocnet: %s on %s: %w", gw.IPNet, BridgeName, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("allocnet: bring %s up: %w", BridgeName, err)
	}
	return nil
}

// names derives an allocation's namespace and host veth names from its ID
// (veth names are at most 15 bytes).
func names(allocID string) (nsName, hostVeth, tmpPeer string) {
	h := sha256.Sum256([]byte(allocID))
	x := hex.EncodeToString(h[:])
	return "hive-" + x[:12], "hv" + x[:10], "hp" + x[:10]
}

func (m *Manager) attachment(allocID string, addr netip.Addr) *Attachment {
	ns, veth, _ := names(allocID)
	return &Attachment{AllocID: allocID, NetnsPath: filepath.Join(m.cfg.NetnsDir, ns), Addr: addr, HostVeth: veth}
}

// Setup gives allocID its network, or returns the one it has. A half-made
// network (an agent that died midway) is removed and made again.
func (m *Manager) Setup(allocID string) (*Attachment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	addr, err := m.store.Allocate(allocID)
	if err != nil {
		return nil, err
	}
	at := m.attachment(allocID, addr)
	if m.intact(at) {
		return at, nil
	}
	if err := m.remove(allocID); err != nil {
		return nil, err
	}
	if err := m.create(at); err != nil {
		_ = m.remove(allocID)
		return nil, fmt.Errorf("allocnet: set up %s: %w", allocID, err)
	}
	m.log.Debug("allocation network up", "alloc", allocID, "address", addr, "netns", at.NetnsPath, "veth", at.HostVeth)
	return at, nil
}

// intact reports whether at's namespace, veth, address and route exist.
func (m *Manager) intact(at *Attachment) bool {
	link, err := netlink.LinkByName(at.HostVeth)
	if err != nil || link.Attrs().OperState == netlink.OperDown {
		return false
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: link.Attrs().Index}, netlink.RT_FILTER_OIF)
	if err != nil || len(routes) == 0 {
		return false
	}
	ns, err := netns.GetFromPath(at.NetnsPath)
	if err != nil {
		return false
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return false
	}
	defer h.Close()
	eth, err := h.LinkByName("eth0")
	if err != nil {
		return false
	}
	addrs, err := h.AddrList(eth, netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == at.Addr {
			return true
		}
	}
	return false
}

// newNetnsAt creates a network namespace bind-mounted at path (as `ip
// netns add` does under /var/run/netns) without leaving the calling
// goroutine's thread in it.
func newNetnsAt(path string) (netns.NsHandle, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return -1, err
	}
	defer orig.Close()
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return -1, err
	}
	f.Close()
	ns, err := netns.New() // unshares: this thread is now in ns
	if err == nil {
		src := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if merr := unix.Mount(src, path, "none", unix.MS_BIND, ""); merr != nil {
			ns.Close()
			ns, err = -1, fmt.Errorf("bind-mount %s: %w", path, merr)
		}
	}
	if serr := netns.Set(orig); serr != nil {
		// The thread is in the wrong namespace: never let it run
		// anything else.
		runtime.LockOSThread()
		return -1, fmt.Errorf("restore the agent's netns: %w", serr)
	}
	if err != nil {
		_ = os.Remove(path)
		return -1, err
	}
	return ns, nil
}

func (m *Manager) create(at *Attachment) error {
	nsName, hostVeth, tmpPeer := names(at.AllocID)
	if err := os.MkdirAll(m.cfg.NetnsDir, 0o755); err != nil {
		return err
	}
	ns, err := newNetnsAt(at.NetnsPath)
	if err != nil {
		return fmt.Errorf("create netns %s: %w", nsName, err)
	}
	defer ns.Close()
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = hostVeth, m.cfg.MTU
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: tmpPeer}); err != nil {
		return fmt.Errorf("create veth %s: %w", hostVeth, err)
	}
	peer, err := netlink.LinkByName(tmpPeer)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetNsFd(peer, int(ns)); err != nil {
		return fmt.Errorf("move %s into %s: %w", tmpPeer, nsName, err)
	}
	if err := m.inside(ns, tmpPeer, at.Addr); err != nil {
		return err
	}
	host, err := netlink.LinkByName(hostVeth)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("bring %s up: %w", hostVeth, err)
	}
	route := &netlink.Route{LinkIndex: host.Attrs().Index, Scope: netlink.SCOPE_LINK,
		Dst: &net.IPNet{IP: at.Addr.AsSlice(), Mask: net.CIDRMask(32, 32)}}
	if err := netlink.RouteReplace(route); err != nil {
		return fmt.Errorf("route %s via %s: %w", at.Addr, hostVeth, err)
	}
	// Strict reverse-path filtering holds: the route back to the
	// allocation's address is its own veth.
	_ = sysctl("net/ipv4/conf/"+hostVeth+"/rp_filter", "1")
	return nil
}

// inside configures the allocation's end: eth0 with its /32, the gateway
// on-link, the default route through it, and lo.
func (m *Manager) inside(ns netns.NsHandle, tmpPeer string, addr netip.Addr) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	eth, err := h.LinkByName(tmpPeer)
	if err != nil {
		return err
	}
	if err := h.LinkSetName(eth, "eth0"); err != nil {
		return fmt.Errorf("rename to eth0: %w", err)
	}
	if err := h.LinkSetMTU(eth, m.cfg.MTU); err != nil {
		return err
	}
	if err := h.AddrAdd(eth, &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
		return fmt.Errorf("address %s: %w", addr, err)
	}
	if err := h.LinkSetUp(eth); err != nil {
		return err
	}
	if lo, err := h.LinkByName("lo"); err == nil {
		if err := h.LinkSetUp(lo); err != nil {
			return err
		}
	}
	gw := m.store.Gateway()
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Scope: netlink.SCOPE_LINK,
		Dst: &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
		return fmt.Errorf("route to the gateway: %w", err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
		return fmt.Errorf("default route: %w", err)
	}
	return nil
}

// remove deletes allocID's namespace and veth (the route goes with the
// veth); what is already gone is fine.
func (m *Manager) remove(allocID string) error {
	nsName, hostVeth, tmpPeer := names(allocID)
	var errs []error
	for _, n := range []string{hostVeth, tmpPeer} {
		if l, err := netlink.LinkByName(n); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("delete %s: %w", n, err))
			}
		}
	}
	p := filepath.Join(m.cfg.NetnsDir, nsName)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove %s: %w", p, err))
	}
	return errors.Join(errs...)
}

// Teardown removes allocID's network and frees its address; an allocation
// without one is fine.
func (m *Manager) Teardown(allocID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.remove(allocID); err != nil {
		return fmt.Errorf("allocnet: tear down %s: %w", allocID, err)
	}
	return m.store.Release(allocID)
}

// Attachments lists the allocations the store holds addresses for.
func (m *Manager) Attachments() []Attachment {
	all := m.store.All()
	out := make([]Attachment, 0, len(all))
	for id, a := range all {
		out = append(out, *m.attachment(id, a))
	}
	return out
}

// Close releases nothing the allocations use: their namespaces, veths and
// addresses stay for the next agent.
func (m *Manager) Close() error { return nil }
