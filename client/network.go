package client

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/netenforce/allocnet"
	"github.com/hivesec/hive/netenforce/nft"
	"github.com/hivesec/hive/netenforce/policy"
	"github.com/hivesec/hive/netenforce/wg"
	"github.com/hivesec/hive/structs"
)

// networkPollWait is how long one long poll of the node's dataplane waits.
const networkPollWait = time.Minute

// endpointWait bounds how long an allocation's tasks wait for the node to
// enforce policy on its address before the allocation fails: tasks never
// start with traffic the policy would refuse still flowing.
const endpointWait = 30 * time.Second

// dataplane is the worker's network: its WireGuard mesh, the per-allocation
// network namespaces, and table inet hive compiled from what the managers
// push (GET /v1/node/network). Everything it knows comes from Raft except
// the WireGuard private key, which never leaves the node.
type dataplane struct {
	a    *Agent
	log  hclog.Logger
	key  *wg.PrivateKey
	port int

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever state moves
	subnet  netip.Prefix
	cidr    netip.Prefix
	mesh    *wg.Mesh
	nets    *allocnet.Manager
	applier *nft.Applier
	last    *structs.NodeNetwork
	// enforced are the local allocations whose address the applied
	// ruleset knows, so policy covers them.
	enforced map[string]netip.Addr
	kick     chan struct{}
	// For status: what the applied ruleset was compiled from, when, and
	// the last sync error.
	policies, endpoints int
	appliedAt           time.Time
	lastErr             string
	// onDenied receives the denied flows of each report period.
	onDenied func([]structs.DeniedFlow)
	// published are the local allocations' published ports.
	published map[string][]publishedPort
}

type publishedPort struct {
	structs.PublishedPort
	addr netip.Addr
}

// Host ports the worker picks for ports without a static number, as
// Nomad's default dynamic range.
const (
	minDynamicPort = 20000
	maxDynamicPort = 32000
)

func newDataplane(a *Agent, port int) (*dataplane, error) {
	key, err := wg.LoadOrCreateKey(a.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	return &dataplane{a: a, log: a.logger.Named("network"), key: key, port: port,
		changed: make(chan struct{}), applier: nft.New(), enforced: map[string]netip.Addr{},
		kick: make(chan struct{}, 1), published: map[string][]publishedPort{}}, nil
}

// publicKey is what the agent registers.
func (d *dataplane) publicKey() string {
	k := d.key.PublicKey()
	return base64.StdEncoding.EncodeToString(k[:])
}

func (d *dataplane) broadcast() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// run follows the managers' view of the dataplane and applies it.
func (d *dataplane) run(ctx context.Context) {
	results := make(chan *structs.NodeNetwork)
	go func() {
		defer close(results)
		var nn *structs.NodeNetwork
		d.a.longPoll(ctx, d.log, "network", networkPollWait, func(c *api.Client, q *api.QueryOptions) (*api.QueryMeta, error) {
			var meta *api.QueryMeta
			var err error
			nn, meta, err = c.NodeAgent().Network(ctx, q)
			return meta, err
		}, func() bool {
			select {
			case results <- nn:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case nn, ok := <-results:
			if !ok {
				return
			}
			d.mu.Lock()
			d.last = nn
			d.mu.Unlock()
		case <-d.kick:
		case <-retry.C:
		}
		err := d.sync()
		d.mu.Lock()
		d.lastErr = ""
		if err != nil {
			d.lastErr = err.Error()
		}
		d.mu.Unlock()
		if err != nil {
			d.log.Error("cannot apply the network state; retrying", "error", err)
			retry.Reset(2 * time.Second)
		}
	}
}

// sync brings the node in line with the last state the managers sent.
func (d *dataplane) sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	nn := d.last
	if nn == nil {
		return nil
	}
	if nn.Subnet == "" {
		d.log.Warn("this worker has no allocation subnet yet; allocations wait for one")
		return nil
	}
	subnet, err := netip.ParsePrefix(nn.Subnet)
	if err != nil {
		return fmt.Errorf("subnet %q from the managers: %w", nn.Subnet, err)
	}
	cidr, err := netip.ParsePrefix(nn.ClusterCIDR)
	if err != nil {
		return fmt.Errorf("cluster CIDR %q from the managers: %w", nn.ClusterCIDR, err)
	}
	if d.nets == nil || subnet != d.subnet || cidr != d.cidr {
		if err := d.up(subnet, cidr); err != nil {
			return err
		}
	}
	if err := d.mesh.SetPeers(d.peers(nn)); err != nil {
		return fmt.Errorf("wireguard peers: %w", err)
	}
	d.collect()
	return d.applyPolicy(nn)
}

// collect removes the networks of allocations no runner holds: ones that
// ended or were removed while the agent was down.
func (d *dataplane) collect() {
	for _, at := range d.nets.Attachments() {
		running, known := d.a.allocs.running(at.AllocID)
		if !known {
			return
		}
		if running {
			continue
		}
		if err := d.nets.Teardown(at.AllocID); err != nil {
			d.log.Warn("cannot remove a stale allocation network", "alloc", at.AllocID, "error", err)
			continue
		}
		d.log.Info("removed the network of an allocation that no longer runs here", "alloc", at.AllocID)
	}
}

// up creates the node's side of the network for subnet: bridge hive0 and
// the allocation store, then hive-wg.
func (d *dataplane) up(subnet, cidr netip.Prefix) error {
	if d.nets != nil {
		// A new lease: what was set up for the old subnet is gone.
		_ = d.nets.Close()
		d.nets = nil
	}
	if d.mesh != nil {
		_ = d.mesh.Down()
		d.mesh = nil
	}
	nets, err := allocnet.New(allocnet.Config{Subnet: subnet, MTU: wg.DefaultMTU,
		StateDir: filepath.Join(d.a.cfg.DataDir, "network"), NetnsDir: filepath.Join(d.a.cfg.DataDir, "netns"), Logger: d.log})
	if err != nil {
		return fmt.Errorf("allocation network: %w", err)
	}
	mesh := &wg.Mesh{}
	err = mesh.Up(wg.Config{PrivateKey: d.key, Address: subnet.Addr().Next(), ClusterCIDR: cidr,
		ListenPort: d.port, Logger: slog.New(slog.NewTextHandler(d.log.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true}), nil))})
	if err != nil {
		_ = nets.Close()
		return fmt.Errorf("wireguard: %w", err)
	}
	d.nets, d.mesh, d.subnet, d.cidr = nets, mesh, subnet, cidr
	d.log.Info("network up", "subnet", subnet, "cluster_cidr", cidr, "wireguard", mesh.Mode(), "port", d.port)
	d.broadcast()
	return nil
}

func (d *dataplane) peers(nn *structs.NodeNetwork) []wg.Peer {
	var out []wg.Peer
	for _, p := range nn.Peers {
		if p.NodeID == d.a.node.ID {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(p.PublicKey)
		if err != nil || len(raw) != wgtypes.KeyLen {
			d.log.Warn("peer has an invalid WireGuard key; skipped", "node_id", p.NodeID)
			continue
		}
		host, port, err := net.SplitHostPort(p.Endpoint)
		ap, err2 := netip.ParseAddr(host)
		pn, err3 := strconv.ParseUint(port, 10, 16)
		sn, err4 := netip.ParsePrefix(p.Subnet)
		if err := errors.Join(err, err2, err3, err4); err != nil {
			d.log.Warn("peer has an invalid endpoint or subnet; skipped", "node_id", p.NodeID, "error", err)
			continue
		}
		var k wgtypes.Key
		copy(k[:], raw)
		out = append(out, wg.Peer{PublicKey: k, Endpoint: netip.AddrPortFrom(ap, uint16(pn)), AllowedIPs: []netip.Prefix{sn}})
	}
	return out
}

// applyPolicy compiles the policies against the endpoints and writes
// table inet hive with the anti-spoofing guard for the local veths.
func (d *dataplane) applyPolicy(nn *structs.NodeNetwork) error {
	eps := make([]policy.Endpoint, 0, len(nn.Endpoints))
	local := map[string]netip.Addr{}
	for _, e := range nn.Endpoints {
		ip, err := netip.ParseAddr(e.Address)
		if err != nil {
			continue
		}
		eps = append(eps, policy.Endpoint{ID: e.AllocID, Namespace: e.Namespace, Labels: e.Labels,
			NamespaceLabels: e.NamespaceLabels, IP: ip, Quarantined: e.Quarantined})
		if e.NodeID == d.a.node.ID {
			local[e.AllocID] = ip
		}
	}
	rs, err := policy.Compile(eps, nn.Policies, nn.AdminPolicies)
	if err != nil {
		return fmt.Errorf("compile network policy: %w", err)
	}
	veths := map[string]netip.Addr{}
	for _, at := range d.nets.Attachments() {
		veths[at.HostVeth] = at.Addr
	}
	if err := d.setPorts(); err != nil {
		return err
	}
	err = d.applier.SetGuard(&nft.Guard{ClusterCIDR: d.cidr, LocalSubnet: d.subnet, WGInterface: wg.InterfaceName, Veths: veths})
	if err != nil {
		return err
	}
	if err := d.applier.Apply(rs); err != nil {
		return err
	}
	d.enforced = local
	d.policies, d.endpoints, d.appliedAt = len(nn.Policies)+len(nn.AdminPolicies), len(eps), time.Now().UTC()
	d.broadcast()
	return nil
}

// counters are the verdict counts since the agent started.
func (d *dataplane) counters() []structs.NetpolCounter {
	cur, err := d.applier.Counters()
	if err != nil {
		d.log.Warn("cannot read the verdict counters", "error", err)
	}
	out := make([]structs.NetpolCounter, 0, len(cur))
	for _, c := range cur {
		out = append(out, structs.NetpolCounter{Policy: c.Policy, Direction: c.Direction, Verdict: c.Verdict, Packets: c.Packets, Bytes: c.Bytes})
	}
	return out
}

// status reports the dataplane for the worker endpoint.
func (d *dataplane) status() (*structs.NodeNetworkStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := &structs.NodeNetworkStatus{Enabled: true, ListenPort: d.port, PublicKey: d.publicKey(),
		Peers: []structs.WireGuardPeerState{}, Allocations: []structs.AllocNetworkState{},
		Policies: d.policies, PolicyEndpoints: d.endpoints, AppliedAt: d.appliedAt, LastError: d.lastErr}
	if d.nets == nil {
		st.Counters = []structs.NetpolCounter{}
		return st, nil
	}
	st.Subnet, st.ClusterCIDR = d.subnet.String(), d.cidr.String()
	st.Counters = d.counters()
	for _, at := range d.nets.Attachments() {
		st.Allocations = append(st.Allocations, structs.AllocNetworkState{AllocID: at.AllocID, Address: at.Addr.String(),
			HostVeth: at.HostVeth, Netns: at.NetnsPath})
	}
	if d.mesh == nil {
		return st, nil
	}
	st.Mode = string(d.mesh.Mode())
	peers, err := d.mesh.Peers()
	if err != nil {
		return nil, fmt.Errorf("wireguard peers: %w", err)
	}
	for _, p := range peers {
		ps := structs.WireGuardPeerState{PublicKey: base64.StdEncoding.EncodeToString(p.PublicKey[:]),
			LastHandshake: p.LastHandshakeTime.UTC(), RxBytes: p.ReceiveBytes, TxBytes: p.TransmitBytes, AllowedIPs: []string{}}
		if p.Endpoint != nil {
			ps.Endpoint = p.Endpoint.String()
		}
		if p.LastHandshakeTime.IsZero() {
			ps.LastHandshake = time.Time{}
		}
		for _, n := range p.AllowedIPs {
			ps.AllowedIPs = append(ps.AllowedIPs, n.String())
		}
		st.Peers = append(st.Peers, ps)
	}
	return st, nil
}

// waitReady returns the allocation network manager once the node has a
// subnet.
func (d *dataplane) waitReady(ctx context.Context) (*allocnet.Manager, error) {
	for {
		d.mu.Lock()
		nets, ch := d.nets, d.changed
		d.mu.Unlock()
		if nets != nil {
			return nets, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// setup gives an allocation its network namespace and address.
func (d *dataplane) setup(ctx context.Context, allocID string) (*allocnet.Attachment, error) {
	wctx, cancel := context.WithTimeout(ctx, endpointWait)
	defer cancel()
	nets, err := d.waitReady(wctx)
	if err != nil {
		return nil, fmt.Errorf("this worker has no allocation subnet yet: %w", err)
	}
	at, err := nets.Setup(allocID)
	if err != nil {
		return nil, err
	}
	d.poke() // the guard needs the new veth
	return at, nil
}

// waitEnforced returns once the applied ruleset covers the allocation at
// addr, which happens after its address has reached the managers and come
// back as an endpoint.
func (d *dataplane) waitEnforced(ctx context.Context, allocID string, addr netip.Addr) error {
	wctx, cancel := context.WithTimeout(ctx, endpointWait)
	defer cancel()
	for {
		d.mu.Lock()
		got, ok := d.enforced[allocID]
		ch := d.changed
		d.mu.Unlock()
		if ok && got == addr {
			return nil
		}
		select {
		case <-ch:
		case <-wctx.Done():
			return fmt.Errorf("network policy for %s was not in force on this node after %s: %w", addr, endpointWait, wctx.Err())
		}
	}
}

// publish gives an allocation's ports their host ports: the static one,
// the one it had before an agent restart, or a free one of the dynamic
// range. A host port another allocation here publishes is an error.
func (d *dataplane) publish(allocID string, ports []structs.PortMapping, prev []structs.PublishedPort, addr netip.Addr) ([]structs.PublishedPort, error) {
	if len(ports) == 0 {
		return nil, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	used := map[int]string{}
	for id, ps := range d.published {
		if id == allocID {
			continue
		}
		for _, p := range ps {
			used[p.HostPort] = id
		}
	}
	had := map[string]int{}
	for _, p := range prev {
		had[p.Label] = p.HostPort
	}
	var out []structs.PublishedPort
	var local []publishedPort
	next := minDynamicPort
	for _, m := range ports {
		host := m.Static
		if host == 0 {
			host = had[m.Label]
		}
		if host == 0 || used[host] != "" && m.Static == 0 {
			for ; next <= maxDynamicPort && used[next] != ""; next++ {
			}
			if next > maxDynamicPort {
				return nil, fmt.Errorf("port %q: every port of %d-%d is published on this worker", m.Label, minDynamicPort, maxDynamicPort)
			}
			host = next
		}
		if other := used[host]; other != "" {
			return nil, fmt.Errorf("port %q: host port %d is already published on this worker by allocation %s", m.Label, host, other)
		}
		used[host] = allocID
		to := m.To
		if to == 0 {
			to = host
		}
		p := structs.PublishedPort{Label: m.Label, HostPort: host, To: to}
		out = append(out, p)
		local = append(local, publishedPort{p, addr})
	}
	d.published[allocID] = local
	return out, nil
}

// setPorts hands the published ports to the applier; d.mu is held.
func (d *dataplane) setPorts() error {
	node, err := netip.ParseAddr(d.a.cfg.Advertise)
	if err != nil {
		return fmt.Errorf("publish ports: advertise address %q: %w", d.a.cfg.Advertise, err)
	}
	var fw []nft.PortForward
	for _, ps := range d.published {
		for _, p := range ps {
			fw = append(fw, nft.PortForward{HostPort: uint16(p.HostPort), Addr: p.addr, To: uint16(p.To)})
		}
	}
	return d.applier.SetPorts(node, fw)
}

// teardown removes an allocation's network.
func (d *dataplane) teardown(allocID string) error {
	d.mu.Lock()
	nets := d.nets
	delete(d.published, allocID)
	d.mu.Unlock()
	if nets == nil {
		return nil
	}
	err := nets.Teardown(allocID)
	d.poke()
	return err
}

func (d *dataplane) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// close stops the mesh; allocations' namespaces and table inet hive stay,
// so policy keeps holding while the agent is away.
func (d *dataplane) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nets != nil {
		_ = d.nets.Close()
	}
	if d.mesh != nil && d.mesh.Mode() == wg.ModeUserspace {
		// The device lives in this process and goes with it; the
		// kernel's stays and keeps carrying traffic.
		_ = d.mesh.Down()
	}
}
