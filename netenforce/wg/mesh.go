package wg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

const (
	// InterfaceName is the mesh interface; like everything Hive owns on a
	// host its name starts with "hive".
	InterfaceName = "hive-wg"
	// DefaultListenPort is WireGuard's UDP port (DESIGN.md §3).
	DefaultListenPort = 51820
	// DefaultMTU leaves room for WireGuard's 80 bytes of IPv6+UDP+WireGuard
	// overhead on a 1500-byte underlay; allocation veths use ≤ this.
	DefaultMTU = 1420
	// EnvUserspace set to "1" forces the embedded wireguard-go device even
	// when the kernel module is available.
	EnvUserspace = "HIVE_WG_USERSPACE"
)

// Mode says which WireGuard implementation backs hive-wg.
type Mode string

const (
	ModeKernel    Mode = "kernel"
	ModeUserspace Mode = "userspace"
)

// Config is what Up needs to bring the node into the mesh.
type Config struct {
	PrivateKey *PrivateKey
	// Address is the node's overlay address (in practice the .1 of its
	// subnet). It is assigned as a /32 (/128): the node's subnet itself is
	// routed to bridge hive0, and only the rest of the cluster CIDR goes
	// through hive-wg.
	Address netip.Addr
	// ClusterCIDR is routed through hive-wg, with Address as the preferred
	// source so traffic leaving the node matches the AllowedIPs its peers
	// hold for it.
	ClusterCIDR netip.Prefix
	ListenPort  int // 0 means DefaultListenPort
	MTU         int // 0 means DefaultMTU
	// Netns is the path of the network namespace to create hive-wg in (for
	// example /var/run/netns/NAME); empty means the namespace of the thread
	// calling Up. Everything the mesh creates — link, TUN, UDP sockets,
	// routes — lives in that namespace.
	Netns string
	// Userspace forces wireguard-go, as EnvUserspace=1 does.
	Userspace bool
	Logger    *slog.Logger
}

// Mesh is the node's hive-wg interface. The zero value is ready for Up; a
// Mesh is safe for concurrent use.
type Mesh struct {
	mu     sync.Mutex
	cfg    Config
	log    *slog.Logger
	ns     netns.NsHandle
	haveNS bool // NsHandle's zero value is fd 0, so track ownership apart
	nl     *netlink.Handle
	conf   configurer
	mode   Mode
	dev    *device.Device // userspace only

	applied int // peer changes handed to the device; lets tests see no-ops
}

// Up creates and configures hive-wg: the kernel module through netlink and
// wgctrl when it exists, else wireguard-go on a TUN device of the same name.
// It assigns the address, MTU and listen port, brings the link up and routes
// the cluster CIDR through it. A hive-wg left over from an earlier run is
// replaced. The mesh starts without peers; see SetPeers.
func (m *Mesh) Up(cfg Config) (err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conf != nil {
		return errors.New("wireguard: mesh is already up")
	}
	if cfg.PrivateKey == nil {
		return errors.New("wireguard: no private key")
	}
	if !cfg.ClusterCIDR.IsValid() {
		return errors.New("wireguard: invalid cluster CIDR")
	}
	if !cfg.Address.IsValid() || !cfg.ClusterCIDR.Contains(cfg.Address) {
		return fmt.Errorf("wireguard: node address %s is not in cluster CIDR %s", cfg.Address, cfg.ClusterCIDR)
	}
	if cfg.ListenPort == 0 {
		cfg.ListenPort = DefaultListenPort
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	cfg.ClusterCIDR = cfg.ClusterCIDR.Masked()
	m.cfg = cfg
	m.log = cfg.Logger
	if m.log == nil {
		m.log = slog.Default()
	}
	m.log = m.log.With("interface", InterfaceName)

	defer func() {
		if err != nil {
			_ = m.teardown()
		}
	}()
	if cfg.Netns == "" {
		m.ns, err = netns.Get()
	} else {
		m.ns, err = netns.GetFromPath(cfg.Netns)
	}
	if err != nil {
		return fmt.Errorf("wireguard: open netns %q: %w", cfg.Netns, err)
	}
	m.haveNS = true
	if m.nl, err = netlink.NewHandleAt(m.ns); err != nil {
		return fmt.Errorf("wireguard: netlink in netns %q: %w", cfg.Netns, err)
	}
	if l, lerr := m.nl.LinkByName(InterfaceName); lerr == nil {
		m.log.Info("wireguard: removing stale interface")
		if err := m.nl.LinkDel(l); err != nil {
			return fmt.Errorf("wireguard: remove stale %s: %w", InterfaceName, err)
		}
	}

	userspace := cfg.Userspace || os.Getenv(EnvUserspace) == "1"
	if !userspace {
		if kerr := m.upKernel(); kerr != nil {
			m.log.Info("wireguard: kernel module unavailable, using wireguard-go", "reason", kerr)
			userspace = true
		}
	}
	if userspace {
		if err := m.upUserspace(); err != nil {
			return err
		}
	}

	port := cfg.ListenPort
	if err := m.conf.configure(wgtypes.Config{
		PrivateKey:   &cfg.PrivateKey.k,
		ListenPort:   &port,
		ReplacePeers: true,
	}); err != nil {
		return fmt.Errorf("wireguard: configure %s: %w", InterfaceName, err)
	}
	if err := m.configureLink(); err != nil {
		return err
	}
	if m.dev != nil {
		// The TUN "up" event also brings the device up, asynchronously;
		// doing it here makes a busy port an error of Up.
		if err := m.dev.Up(); err != nil {
			return fmt.Errorf("wireguard: start wireguard-go: %w", err)
		}
	}
	m.log.Info("wireguard: mesh up", "mode", m.mode, "address", cfg.Address,
		"listen_port", cfg.ListenPort, "public_key", cfg.PrivateKey.PublicKey())
	return nil
}

func (m *Mesh) upKernel() error {
	la := netlink.NewLinkAttrs()
	la.Name = InterfaceName
	la.MTU = m.cfg.MTU
	if err := m.nl.LinkAdd(&netlink.Wireguard{LinkAttrs: la}); err != nil {
		return fmt.Errorf("add wireguard link: %w", err)
	}
	var c *wgctrl.Client
	err := runInNetns(m.ns, func() (err error) {
		c, err = wgctrl.New() // its netlink socket belongs to m.ns
		return err
	})
	if err != nil {
		if l, lerr := m.nl.LinkByName(InterfaceName); lerr == nil {
			_ = m.nl.LinkDel(l)
		}
		return fmt.Errorf("wgctrl: %w", err)
	}
	m.conf = kernelConfigurer{c: c, name: InterfaceName}
	m.mode = ModeKernel
	return nil
}

func (m *Mesh) upUserspace() error {
	var tdev tun.Device
	err := runInNetns(m.ns, func() (err error) {
		tdev, err = tun.CreateTUN(InterfaceName, m.cfg.MTU)
		return err
	})
	if err != nil {
		return fmt.Errorf("wireguard: create TUN %s: %w", InterfaceName, err)
	}
	m.dev = device.NewDevice(&nsTun{Device: tdev, ns: m.ns}, &nsBind{Bind: conn.NewDefaultBind(), ns: m.ns}, m.deviceLogger())
	m.conf = userspaceConfigurer{dev: m.dev}
	m.mode = ModeUserspace
	return nil
}

func (m *Mesh) deviceLogger() *device.Logger {
	l := m.log.With("mode", ModeUserspace)
	return &device.Logger{
		Verbosef: func(format string, args ...any) {
			if l.Enabled(context.Background(), slog.LevelDebug) {
				l.Debug(fmt.Sprintf(format, args...))
			}
		},
		Errorf: func(format string, args ...any) { l.Error(fmt.Sprintf(format, args...)) },
	}
}

func (m *Mesh) configureLink() error {
	link, err := m.nl.LinkByName(InterfaceName)
	if err != nil {
		return fmt.Errorf("wireguard: find %s: %w", InterfaceName, err)
	}
	if err := m.nl.LinkSetMTU(link, m.cfg.MTU); err != nil {
		return fmt.Errorf("wireguard: set MTU %d on %s: %w", m.cfg.MTU, InterfaceName, err)
	}
	addr := netip.PrefixFrom(m.cfg.Address, m.cfg.Address.BitLen())
	if err := m.nl.AddrReplace(link, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
		return fmt.Errorf("wireguard: set address %s on %s: %w", addr, InterfaceName, err)
	}
	if err := m.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("wireguard: bring %s up: %w", InterfaceName, err)
	}
	if err := m.nl.RouteReplace(m.route(link)); err != nil {
		return fmt.Errorf("wireguard: route %s via %s: %w", m.cfg.ClusterCIDR, InterfaceName, err)
	}
	return nil
}

func (m *Mesh) route(link netlink.Link) *netlink.Route {
	return &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       ipNet(m.cfg.ClusterCIDR),
		Src:       net.IP(m.cfg.Address.AsSlice()),
		Scope:     netlink.SCOPE_LINK,
	}
}

// SetPeers makes the device's peers exactly the given set, changing only
// what differs from what the device holds now: new peers are added, changed
// ones updated in place (their sessions survive), and peers not in the set
// are removed, after which no traffic flows to or from them. Calling it
// again with the same set changes nothing.
func (m *Mesh) SetPeers(peers []Peer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conf == nil {
		return errors.New("wireguard: set peers: mesh is not up")
	}
	if err := validatePeers(m.cfg.PrivateKey.PublicKey(), peers); err != nil {
		return err
	}
	cur, err := m.conf.device()
	if err != nil {
		return fmt.Errorf("wireguard: read %s: %w", InterfaceName, err)
	}
	changes := diffPeers(cur.Peers, peers)
	if len(changes) == 0 {
		return nil
	}
	if err := m.conf.configure(wgtypes.Config{Peers: changes}); err != nil {
		return fmt.Errorf("wireguard: apply %d peer changes: %w", len(changes), err)
	}
	m.applied += len(changes)
	var added, updated, removed int
	for _, c := range changes {
		switch {
		case c.Remove:
			removed++
		case c.UpdateOnly:
			updated++
		default:
			added++
		}
	}
	m.log.Info("wireguard: peers changed", "added", added, "updated", updated, "removed", removed, "peers", len(peers))
	return nil
}

// Peers returns the device's current peers with their handshake and
// traffic counters.
func (m *Mesh) Peers() ([]wgtypes.Peer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conf == nil {
		return nil, errors.New("wireguard: mesh is not up")
	}
	d, err := m.conf.device()
	if err != nil {
		return nil, fmt.Errorf("wireguard: read %s: %w", InterfaceName, err)
	}
	return d.Peers, nil
}

// Mode reports the implementation behind hive-wg; empty before Up.
func (m *Mesh) Mode() Mode {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mode
}

// Down removes the route and the interface and stops wireguard-go. It is
// safe to call on a mesh that is not (or only partly) up.
func (m *Mesh) Down() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.teardown()
}

func (m *Mesh) teardown() error {
	var errs []error
	if m.nl != nil {
		if link, err := m.nl.LinkByName(InterfaceName); err == nil {
			if err := m.nl.RouteDel(m.route(link)); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("wireguard: remove route %s: %w", m.cfg.ClusterCIDR, err))
			}
		}
	}
	if m.conf != nil {
		// For wireguard-go this closes the TUN, which deletes the link.
		if err := m.conf.close(); err != nil {
			errs = append(errs, fmt.Errorf("wireguard: close: %w", err))
		}
	}
	if m.nl != nil {
		if link, err := m.nl.LinkByName(InterfaceName); err == nil {
			if err := m.nl.LinkDel(link); err != nil {
				errs = append(errs, fmt.Errorf("wireguard: remove %s: %w", InterfaceName, err))
			}
		}
		m.nl.Close()
	}
	if m.haveNS {
		m.ns.Close()
	}
	if m.log != nil && m.conf != nil {
		m.log.Info("wireguard: mesh down", "mode", m.mode)
	}
	m.nl, m.conf, m.dev, m.mode, m.haveNS = nil, nil, nil, "", false
	return errors.Join(errs...)
}

func ipNet(p netip.Prefix) *net.IPNet {
	n := toIPNets([]netip.Prefix{p})[0]
	return &n
}
