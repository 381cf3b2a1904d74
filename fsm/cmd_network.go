package fsm

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

// Command types for the network dataplane: policies, quarantine and
// namespace labels. Worker subnets need no command of their own: they are
// leased inside the node commands (see leaseSubnet).
const (
	NetworkPolicyUpsertType      MessageType = 25
	NetworkPolicyDeleteType      MessageType = 26
	AdminNetworkPolicyUpsertType MessageType = 27
	AdminNetworkPolicyDeleteType MessageType = 28
	AllocQuarantineType          MessageType = 29
	NamespaceUpdateType          MessageType = 30
)

// NetworkPolicyUpsertRequest creates or replaces one network policy.
type NetworkPolicyUpsertRequest struct {
	Policy structs.NetworkPolicy
}

// NetworkPolicyDeleteRequest deletes one network policy.
type NetworkPolicyDeleteRequest struct {
	Namespace string
	Name      string
}

// AdminNetworkPolicyUpsertRequest creates or replaces one admin policy.
type AdminNetworkPolicyUpsertRequest struct {
	Policy structs.AdminNetworkPolicy
}

// AdminNetworkPolicyDeleteRequest deletes one admin policy.
type AdminNetworkPolicyDeleteRequest struct {
	Name string
}

// AllocQuarantineRequest quarantines an allocation (Quarantined true) or
// releases it. By is who asked, for the event.
type AllocQuarantineRequest struct {
	AllocID     string
	Quarantined bool
	By          string
	Now         time.Time
}

// NamespaceUpdateRequest changes a namespace's labels, isolation and
// description; nil fields are kept (see structs.NamespaceUpdateRequest).
type NamespaceUpdateRequest struct {
	Name   string
	Update structs.NamespaceUpdateRequest
}

func init() {
	register(NetworkPolicyUpsertType, "network policy upsert", applyNetworkPolicyUpsert)
	register(NetworkPolicyDeleteType, "network policy delete", applyNetworkPolicyDelete)
	register(AdminNetworkPolicyUpsertType, "admin network policy upsert", applyAdminNetworkPolicyUpsert)
	register(AdminNetworkPolicyDeleteType, "admin network policy delete", applyAdminNetworkPolicyDelete)
	register(AllocQuarantineType, "alloc quarantine", applyAllocQuarantine)
	register(NamespaceUpdateType, "namespace update", applyNamespaceUpdate)
}

// CheckNetworkPolicy is what the FSM requires of a network policy besides
// its own Validate: a namespace that exists and a name that is not the
// generated isolation policy's. The API runs it too, for its messages.
func CheckNetworkPolicy(r *state.Snapshot, p *structs.NetworkPolicy) error {
	if err := p.Validate(); err != nil {
		return invalid(fmt.Errorf("network policy %s/%s: %w", p.Namespace, p.Name, err))
	}
	if p.Name == structs.NamespaceIsolationPolicyName {
		return invalid(fmt.Errorf("name: %q is reserved for the policy `isolation = true` generates; choose another name", p.Name))
	}
	if r.Namespace(nil, p.Namespace) == nil {
		return invalid(fmt.Errorf("namespace: namespace %q does not exist; create it with `hive namespace create %s`", p.Namespace, p.Namespace))
	}
	return nil
}

func applyNetworkPolicyUpsert(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[NetworkPolicyUpsertRequest](buf)
	if err != nil {
		return nil, err
	}
	if err := CheckNetworkPolicy(txn.Read(), &req.Policy); err != nil {
		return nil, err
	}
	return nil, txn.UpsertNetworkPolicy(&req.Policy)
}

func applyNetworkPolicyDelete(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[NetworkPolicyDeleteRequest](buf)
	if err != nil {
		return nil, err
	}
	return nil, txn.DeleteNetworkPolicy(req.Namespace, req.Name)
}

func applyAdminNetworkPolicyUpsert(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[AdminNetworkPolicyUpsertRequest](buf)
	if err != nil {
		return nil, err
	}
	if err := req.Policy.Validate(); err != nil {
		return nil, invalid(fmt.Errorf("admin network policy %s: %w", req.Policy.Name, err))
	}
	return nil, txn.UpsertAdminNetworkPolicy(&req.Policy)
}

func applyAdminNetworkPolicyDelete(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[AdminNetworkPolicyDeleteRequest](buf)
	if err != nil {
		return nil, err
	}
	return nil, txn.DeleteAdminNetworkPolicy(req.Name)
}

// applyAllocQuarantine returns whether the allocation changed: asking
// twice for the same state writes nothing and raises no second event.
func applyAllocQuarantine(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[AllocQuarantineRequest](buf)
	if err != nil {
		return nil, err
	}
	a := txn.Read().Alloc(nil, req.AllocID)
	if a == nil {
		return nil, fmt.Errorf("allocation %s: %w", req.AllocID, state.ErrNotFound)
	}
	if a.Quarantined == req.Quarantined {
		return false, nil
	}
	cp := *a
	cp.Quarantined = req.Quarantined
	cp.ModifyTime = req.Now
	if err := txn.UpsertAlloc(&cp); err != nil {
		return nil, err
	}
	ev := structs.Event{Time: req.Now, Type: structs.EventAllocQuarantined, Subject: a.ID,
		Message: fmt.Sprintf("allocation %s (namespace %s, node %s) quarantined by %s: no traffic in or out", a.ID, a.Namespace, a.NodeID, req.By),
		Meta:    map[string]string{"namespace": a.Namespace, "node": a.NodeID, "by": req.By}}
	if !req.Quarantined {
		ev.Type = structs.EventAllocUnquarantined
		ev.Message = fmt.Sprintf("allocation %s (namespace %s, node %s) released from quarantine by %s", a.ID, a.Namespace, a.NodeID, req.By)
	}
	return true, txn.AddEvent(ev)
}

// maxNamespaceDescription bounds a namespace's description, as the API does.
const maxNamespaceDescription = 1024

func applyNamespaceUpdate(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[NamespaceUpdateRequest](buf)
	if err != nil {
		return nil, err
	}
	ns := txn.Read().Namespace(nil, req.Name)
	if ns == nil {
		return nil, fmt.Errorf("namespace %q: %w", req.Name, state.ErrNotFound)
	}
	u := req.Update
	if err := structs.ValidateLabels(u.SetLabels); err != nil {
		return nil, invalid(fmt.Errorf("labels: %w", err))
	}
	for _, k := range u.RemoveLabels {
		if _, set := u.SetLabels[k]; set {
			return nil, invalid(fmt.Errorf("labels: label %s is both set and removed", k))
		}
	}
	if u.Description != nil && len(*u.Description) > maxNamespaceDescription {
		return nil, invalid(fmt.Errorf("description: %d bytes; the limit is %d", len(*u.Description), maxNamespaceDescription))
	}
	cp := *ns
	labels := make(map[string]string, len(ns.Labels)+len(u.SetLabels))
	for k, v := range ns.Labels {
		labels[k] = v
	}
	for k, v := range u.SetLabels {
		labels[k] = v
	}
	for _, k := range u.RemoveLabels {
		delete(labels, k)
	}
	cp.Labels = labels
	if len(labels) == 0 {
		cp.Labels = nil
	}
	if u.Isolation != nil {
		cp.Isolation = *u.Isolation
	}
	if u.Description != nil {
		cp.Description = *u.Description
	}
	return nil, txn.UpsertNamespace(&cp)
}

// leaseSubnet picks the subnet for worker nodeID: the lowest subnet of the
// cluster CIDR that no other node holds. It reads only the replicated
// state, so every manager picks the same one. A subnet is held for as long
// as its node exists: removing the node is what frees it. ok is false when
// every subnet is taken; why then says so for the event.
func leaseSubnet(r *state.Snapshot, nodeID string) (subnet string, ok bool, why string) {
	cidr, bits := netip.MustParsePrefix(structs.DefaultClusterCIDR), structs.DefaultSubnetBits
	if c := r.Cluster(nil); c != nil {
		cidr, bits = c.Network()
	}
	used := map[netip.Prefix]bool{}
	for _, n := range r.Nodes(nil) {
		if n.ID == nodeID || n.Subnet == "" {
			continue
		}
		if p, err := netip.ParsePrefix(n.Subnet); err == nil {
			used[p.Masked()] = true
		}
	}
	// Subnets are tried in address order; the loop ends at the first free
	// one, so it runs at most len(used)+1 times.
	base := binary.BigEndian.Uint32(cidr.Addr().AsSlice())
	total := uint64(1) << (bits - cidr.Bits())
	step := uint64(1) << (32 - bits)
	for i := uint64(0); i < total; i++ {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], base+uint32(i*step))
		p := netip.PrefixFrom(netip.AddrFrom4(a), bits)
		if !used[p] {
			return p.String(), true, ""
		}
	}
	return "", false, fmt.Sprintf("cluster CIDR %s has no free /%d subnet left (all %d are held by other nodes); remove nodes that are gone with `hive node remove`", cidr, bits, total)
}

// assignSubnet gives worker n a subnet when it has none, and records an
// event when there is none to give: the node still joins, but cannot run
// networked allocations until a subnet frees up and it registers again.
func assignSubnet(txn *state.Txn, n *structs.Node, now time.Time) error {
	if n.Role != structs.RoleWorker || n.Subnet != "" {
		return nil
	}
	subnet, ok, why := leaseSubnet(txn.Read(), n.ID)
	if ok {
		n.Subnet = subnet
		return nil
	}
	return txn.AddEvent(structs.Event{Time: now, Type: structs.EventNodeNoSubnet, Subject: n.ID,
		Message: fmt.Sprintf("worker %s has no allocation subnet: %s", n.ID, why)})
}

// checkWireGuard validates the mesh identity a worker registers: a key of
// the right shape with a port, or neither, and a key no other node holds
// (two peers with one key would steal each other's traffic).
func checkWireGuard(r *state.Snapshot, nodeID, key string, port int) error {
	if key == "" {
		if port != 0 {
			return invalid(fmt.Errorf("wireguard_port: %d given without wireguard_key", port))
		}
		return nil
	}
	if err := structs.ValidateWireGuardKey(key); err != nil {
		return invalid(fmt.Errorf("wireguard_key: %w", err))
	}
	if port < 1 || port > 65535 {
		return invalid(fmt.Errorf("wireguard_port: %d is out of range 1-65535", port))
	}
	for _, n := range r.Nodes(nil) {
		if n.ID != nodeID && n.WireGuardKey == key {
			return fmt.Errorf("wireguard_key: node %s already registered this WireGuard key; if that node is gone, remove it with `hive node remove %s`: %w", n.ID, n.ID, ErrConflict)
		}
	}
	return nil
}

// checkAllocAddress checks an address a worker reports for an allocation
// on node n: an IPv4 address inside n's subnet, other than the subnet's
// network and broadcast addresses and its first address, which is the
// node's own (the bridge gateway).
func checkAllocAddress(n *structs.Node, allocID, addr string) error {
	if n == nil || n.Subnet == "" {
		return invalid(fmt.Errorf("address: allocation %s reports address %s, but its node has no subnet", allocID, addr))
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil || !ip.Is4() {
		return invalid(fmt.Errorf("address: allocation %s: %q is not an IPv4 address", allocID, addr))
	}
	subnet, err := netip.ParsePrefix(n.Subnet)
	if err != nil {
		return invalid(fmt.Errorf("address: node %s has an unreadable subnet %q", n.ID, n.Subnet))
	}
	if !subnet.Contains(ip) {
		return invalid(fmt.Errorf("address: allocation %s: %s is outside its node's subnet %s", allocID, ip, subnet))
	}
	last := binary.BigEndian.Uint32(subnet.Addr().AsSlice()) | (1<<(32-subnet.Bits()) - 1)
	if ip == subnet.Addr() || binary.BigEndian.Uint32(ip.AsSlice()) == last {
		return invalid(fmt.Errorf("address: allocation %s: %s is the network or broadcast address of subnet %s", allocID, ip, subnet))
	}
	if ip == subnet.Addr().Next() {
		return invalid(fmt.Errorf("address: allocation %s: %s is the gateway of subnet %s, the node's own address", allocID, ip, subnet))
	}
	return nil
}
