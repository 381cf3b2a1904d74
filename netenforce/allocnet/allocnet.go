// Package allocnet gives each allocation on a worker its own network
// namespace and address, routed, not bridged (see netenforce/nft, "Same-node
// traffic", for why):
//
//	allocation netns                         node (the agent's netns)
//	  lo up
//	  eth0 <ip>/32, MTU 1420  ── veth ──  hvXXXXXXXXXX, MTU 1420, no address
//	  .1 dev eth0 scope link                <ip>/32 dev hvXXXXXXXXXX scope link
//	  default via .1 dev eth0 onlink        hive0 (bridge, no ports): .1/<bits>
//
// The node holds the subnet's gateway (.1) on bridge hive0. The bridge has
// no ports: it only carries the address, so that .1 is local to the node
// and the subnet is routed locally, ahead of the cluster CIDR route
// through hive-wg. Allocation-to-allocation traffic on one node leaves one
// veth, is routed by the node through the inet forward hook (where the
// policy is) and enters the other veth.
//
// Neither side uses ARP: both veth ends get permanent neighbour entries
// (inside: .1 → the host end's MAC; on the node: the allocation's address
// → eth0's MAC). The gateway is not an address of the host veth, so ARP
// for it would depend on the node's arp_ignore (1 or 2 makes the node stay
// silent) and the allocation's answer for its /32 on the namespace's
// inherited arp_ignore (2 requires the asker to be in the /32); static
// entries work whatever those are, and save a round trip on the first
// packet.
//
// The host veth has strict reverse-path filtering (only its allocation's
// address is routed back through it, so nothing else may arrive on it;
// the nft guard checks the same) and no IPv6, so an allocation cannot
// reach the node over link-local IPv6 around the IPv4 policy.
//
// # Namespaces and threads
//
// A Manager works in the network namespace of the thread that called New
// (the agent's namespace, which in tests is a namespace standing for the
// node, not the process's root one), whichever thread calls its methods
// later: node-side links are made through a netlink socket opened in New,
// and all work that must run inside a namespace (making an allocation's
// namespace, its netlink socket, the node's per-veth sysctls) runs on a
// fresh OS thread that enters that namespace and is thrown away after,
// never switched back. So no caller's thread ever changes namespace, and
// no thread is left in a wrong one if switching back were to fail.
//
// Allocation namespaces are files in Config.NetnsDir, bind-mounted like
// `ip netns add` does under /var/run/netns; containerd's OCI spec joins
// them by path (runc setns), and `nsenter --net=<file>` enters one.
package allocnet

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/hivesec/hive/netenforce/ipam"
)

// BridgeName is the node's gateway device.
const BridgeName = "hive0"

// DefaultMTU fits inside WireGuard on a 1500-byte underlay (1500 minus 80
// bytes of WireGuard over IPv6).
const DefaultMTU = 1420

// DefaultNetnsDir is where allocation namespaces are bind-mounted unless
// Config.NetnsDir says otherwise; it is where `ip netns` looks.
const DefaultNetnsDir = "/var/run/netns"

// Config configures a Manager.
type Config struct {
	// Subnet is the node's leased subnet; its first host address is the
	// gateway.
	Subnet netip.Prefix
	// MTU of both ends of every allocation's veth; DefaultMTU if zero.
	MTU int
	// StateDir holds the address store (StateDir/ipam.json).
	StateDir string
	// NetnsDir holds the allocations' namespace files; DefaultNetnsDir if
	// empty. A directory of the agent's own (the agent uses
	// <data-dir>/netns) keeps them apart from other tools' and goes with
	// the agent's data.
	NetnsDir string
	// Logger gets a warning when a new lease removes old allocations'
	// networks and a line for each repair; nil discards.
	Logger hclog.Logger
}

// Attachment is an allocation's network.
type Attachment struct {
	AllocID string
	// NetnsPath is the allocation's namespace file, for the OCI spec.
	NetnsPath string
	Addr      netip.Addr
	// HostVeth is the node's end of the allocation's veth.
	HostVeth string
}

// Manager sets up and removes allocation networks. It is safe for
// concurrent use; Setup and Teardown run one at a time.
type Manager struct {
	cfg    Config
	log    hclog.Logger
	store  *ipam.Store
	hostNS netns.NsHandle  // the node's namespace (see the package comment)
	host   *netlink.Handle // a netlink socket in hostNS

	mu     sync.Mutex
	owners map[string]string // host veth name → allocation ID
	closed bool
}

// New prepares the node: bridge hive0 with the gateway address (any other
// IPv4 address on it, left by an earlier lease, is removed), IPv4
// forwarding, and the address store. Networks of allocations the store
// held for another subnet (the node got a new lease) are removed, with a
// warning.
//
// The node's namespace is the calling thread's: an agent calls New from
// any goroutine, a test from a goroutine locked to a thread it switched
// into the namespace standing for the node.
func New(cfg Config) (*Manager, error) {
	// netns.Get, the netlink socket and the sysctl must all see the
	// same namespace.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.MTU < 68 || cfg.MTU > 65535 {
		return nil, fmt.Errorf("allocnet: MTU %d is outside 68-65535", cfg.MTU)
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.StateDir == "" {
		return nil, errors.New("allocnet: no state directory")
	}
	if cfg.NetnsDir == "" {
		cfg.NetnsDir = DefaultNetnsDir
	}
	store, dropped, err := ipam.Open(filepath.Join(cfg.StateDir, "ipam.json"), cfg.Subnet)
	if err != nil {
		return nil, fmt.Errorf("allocnet: %w", err)
	}
	hostNS, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("allocnet: open the node's network namespace: %w", err)
	}
	host, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		hostNS.Close()
		return nil, fmt.Errorf("allocnet: netlink: %w", err)
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, store: store, hostNS: hostNS, host: host, owners: map[string]string{}}
	if len(dropped) > 0 {
		m.log.Warn("the node's subnet changed; removing the networks of the allocations of the old one",
			"subnet", cfg.Subnet, "allocations", len(dropped))
		for _, id := range slices.Sorted(maps.Keys(dropped)) {
			if err := m.remove(m.attachment(id, dropped[id])); err != nil {
				m.log.Warn("cannot remove the network of an allocation of the old subnet", "alloc", id, "error", err)
			}
		}
	}
	for id := range store.All() {
		m.owners[vethName(id)] = id
	}
	if err := m.bridge(); err != nil {
		m.closeHandles()
		return nil, err
	}
	// New runs in the node's namespace, by definition of it.
	if err := sysctl("net/ipv4/ip_forward", "1"); err != nil {
		m.closeHandles()
		return nil, fmt.Errorf("allocnet: %w", err)
	}
	m.log.Debug("allocation networking ready", "subnet", cfg.Subnet, "gateway", store.Gateway(), "mtu", cfg.MTU,
		"allocations", len(m.owners))
	return m, nil
}

// hash is the hex SHA-256 of an allocation ID: its names must fit in 15
// bytes (IFNAMSIZ) and be the same in every agent run.
func hash(allocID string) string {
	h := sha256.Sum256([]byte(allocID))
	return hex.EncodeToString(h[:])
}

func vethName(allocID string) string  { return "hv" + hash(allocID)[:10] }
func netnsName(allocID string) string { return "hive-" + hash(allocID)[:12] }

func (m *Manager) attachment(allocID string, addr netip.Addr) *Attachment {
	return &Attachment{AllocID: allocID, NetnsPath: filepath.Join(m.cfg.NetnsDir, netnsName(allocID)),
		Addr: addr, HostVeth: vethName(allocID)}
}

// Setup gives allocID its network, or returns the one it has (after an
// agent restart). What is missing or wrong in an existing one (an agent
// that died midway, a deleted veth or route) is made again; the namespace
// itself is kept whenever it still exists, so a container running in it
// stays attached. If making a new allocation's network fails, nothing of
// it is left and its address is released.
func (m *Manager) Setup(allocID string) (*Attachment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("allocnet: manager closed")
	}
	_, existed := m.store.Lookup(allocID)
	veth := vethName(allocID)
	if other, ok := m.owners[veth]; ok && other != allocID {
		// 40 bits of hash: not expected in practice, but setting up
		// one must never tear down the other's network.
		return nil, fmt.Errorf("allocnet: allocations %s and %s hash to the same veth name %s", allocID, other, veth)
	}
	addr, err := m.store.Allocate(allocID)
	if err != nil {
		return nil, fmt.Errorf("allocnet: set up %s: %w", allocID, err)
	}
	m.owners[veth] = allocID
	at := m.attachment(allocID, addr)
	made, err := m.ensure(at)
	if err != nil {
		err = fmt.Errorf("allocnet: set up %s: %w", allocID, err)
		if !existed {
			// Nothing can run in a network made just now.
			if rerr := m.remove(at); rerr != nil {
				return nil, errors.Join(err, fmt.Errorf("and cleaning up after it: %w", rerr))
			}
			delete(m.owners, veth)
			if rerr := m.store.Release(allocID); rerr != nil {
				return nil, errors.Join(err, rerr)
			}
		}
		return nil, err
	}
	switch {
	case !existed:
		m.log.Debug("allocation network up", "alloc", allocID, "address", addr, "netns", at.NetnsPath, "veth", at.HostVeth)
	case len(made) > 0:
		m.log.Info("repaired an allocation network", "alloc", allocID, "address", addr, "remade", strings.Join(made, ","))
	}
	return at, nil
}

// Teardown removes allocID's namespace file, veth (with its route and
// neighbour entry) and address. What is already gone is fine, so is an
// allocation that never had a network. The address is released only once
// the rest is gone, so a failed Teardown can be retried.
func (m *Manager) Teardown(allocID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("allocnet: manager closed")
	}
	addr, _ := m.store.Lookup(allocID)
	if err := m.remove(m.attachment(allocID, addr)); err != nil {
		return fmt.Errorf("allocnet: tear down %s: %w", allocID, err)
	}
	if err := m.store.Release(allocID); err != nil {
		return fmt.Errorf("allocnet: tear down %s: %w", allocID, err)
	}
	if m.owners[vethName(allocID)] == allocID {
		delete(m.owners, vethName(allocID))
	}
	m.log.Debug("allocation network removed", "alloc", allocID, "address", addr)
	return nil
}

// Attachments lists, sorted by allocation ID, the allocations the address
// store holds addresses for: what an agent set up and has not torn down,
// for a restarted agent to reconcile with what runs.
func (m *Manager) Attachments() []Attachment {
	all := m.store.All()
	out := make([]Attachment, 0, len(all))
	for _, id := range slices.Sorted(maps.Keys(all)) {
		out = append(out, *m.attachment(id, all[id]))
	}
	return out
}

// Close releases the Manager's sockets. The allocations' namespaces,
// veths and addresses stay for the next agent.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		m.closeHandles()
	}
	return nil
}

func (m *Manager) closeHandles() {
	m.host.Close()
	m.hostNS.Close()
}
