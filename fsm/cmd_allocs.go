package fsm

import (
	"fmt"
	"time"

	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

// Command types for allocations and worker nodes.
const (
	AllocCreateType       MessageType = 12
	AllocDesiredType      MessageType = 13
	AllocClientUpdateType MessageType = 14
	NodeFingerprintType   MessageType = 15
	NodeEligibilityType   MessageType = 16
)

// AllocCreateRequest stores a new allocation.
type AllocCreateRequest struct {
	Alloc structs.Allocation
}

// AllocDesiredRequest changes what managers want of allocations (stop).
type AllocDesiredRequest struct {
	IDs           []string
	DesiredStatus string
	Now           time.Time
}

// AllocClientUpdateRequest records a worker's reports on its allocations.
// NodeID is the authenticated caller: reports on other nodes' allocations
// are refused.
type AllocClientUpdateRequest struct {
	NodeID  string
	Updates []structs.AllocUpdate
	Now     time.Time
}

// NodeFingerprintRequest records what a worker offers.
type NodeFingerprintRequest struct {
	NodeID     string
	Attributes map[string]string
	Resources  structs.Resources
	Labels     map[string]string
	// WireGuardKey and WireGuardPort are the worker's mesh identity, as
	// its agent registers it (both empty: no networking).
	WireGuardKey  string
	WireGuardPort int
	Now           time.Time
}

// NodeEligibilityRequest cordons, uncordons or drains a node.
type NodeEligibilityRequest struct {
	NodeID   string
	Cordoned bool
	Draining bool
	Now      time.Time
}

func init() {
	register(AllocCreateType, "alloc create", applyAllocCreate)
	register(AllocDesiredType, "alloc desired", applyAllocDesired)
	register(AllocClientUpdateType, "alloc client update", applyAllocClientUpdate)
	register(NodeFingerprintType, "node fingerprint", applyNodeFingerprint)
	register(NodeEligibilityType, "node eligibility", applyNodeEligibility)
}

func applyAllocCreate(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[AllocCreateRequest](buf)
	if err != nil {
		return nil, err
	}
	a := req.Alloc
	r := txn.Read()
	if a.ID == "" || len(a.Tasks) == 0 {
		return nil, fmt.Errorf("allocation needs an ID and at least one task: %w", ErrInvalid)
	}
	if r.Alloc(nil, a.ID) != nil {
		return nil, fmt.Errorf("allocation %s already exists: %w", a.ID, ErrConflict)
	}
	if r.Namespace(nil, a.Namespace) == nil {
		return nil, fmt.Errorf("namespace %q does not exist: %w", a.Namespace, ErrInvalid)
	}
	n := r.Node(nil, a.NodeID)
	if n == nil || n.Role != structs.RoleWorker {
		return nil, fmt.Errorf("node %q is not a worker of this cluster: %w", a.NodeID, ErrInvalid)
	}
	return nil, txn.UpsertAlloc(&a)
}

func applyAllocDesired(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[AllocDesiredRequest](buf)
	if err != nil {
		return nil, err
	}
	if req.DesiredStatus != structs.AllocDesiredRun && req.DesiredStatus != structs.AllocDesiredStop {
		return nil, fmt.Errorf("desired status %q: %w", req.DesiredStatus, ErrInvalid)
	}
	for _, id := range req.IDs {
		if txn.Read().Alloc(nil, id) == nil {
			return nil, fmt.Errorf("allocation %s: %w", id, state.ErrNotFound)
		}
	}
	for _, id := range req.IDs {
		cp := *txn.Read().Alloc(nil, id)
		if cp.DesiredStatus == req.DesiredStatus {
			continue
		}
		cp.DesiredStatus = req.DesiredStatus
		cp.ModifyTime = req.Now
		if err := txn.UpsertAlloc(&cp); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

func validClientStatus(s string) bool {
	switch s {
	case structs.AllocPending, structs.AllocRunning, structs.AllocComplete, structs.AllocFailed:
		return true
	}
	return false
}

func applyAllocClientUpdate(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[AllocClientUpdateRequest](buf)
	if err != nil {
		return nil, err
	}
	r := txn.Read()
	for _, u := range req.Updates {
		a := r.Alloc(nil, u.ID)
		if a == nil {
			continue // deleted meanwhile; skipped below
		}
		if a.NodeID != req.NodeID {
			return nil, fmt.Errorf("allocation %s is not placed on node %s: %w", u.ID, req.NodeID, ErrForbidden)
		}
		if !validClientStatus(u.ClientStatus) {
			return nil, fmt.Errorf("client status %q: use pending, running, complete or failed: %w", u.ClientStatus, ErrInvalid)
		}
		if u.Address != "" {
			if err := checkAllocAddress(r.Node(nil, req.NodeID), u.ID, u.Address); err != nil {
				return nil, err
			}
		}
		if err := checkPublished(a, u.Published); err != nil {
			return nil, err
		}
	}
	for _, u := range req.Updates {
		a := txn.Read().Alloc(nil, u.ID)
		// Lost is final: the allocation was replaced while its node was
		// away, and a worker that comes back must not revive it.
		if a == nil || a.ClientStatus == structs.AllocLost {
			continue
		}
		cp := *a
		cp.ClientStatus = u.ClientStatus
		cp.ClientDescription = u.ClientDescription
		if u.TaskStates != nil {
			cp.TaskStates = u.TaskStates
		}
		if u.Address != "" {
			cp.Address = u.Address
		}
		if u.Published != nil {
			cp.Published = u.Published
		}
		cp.ModifyTime = req.Now
		if err := txn.UpsertAlloc(&cp); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

func applyNodeFingerprint(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[NodeFingerprintRequest](buf)
	if err != nil {
		return nil, err
	}
	n := txn.Read().Node(nil, req.NodeID)
	if n == nil {
		return nil, fmt.Errorf("node %s: %w", req.NodeID, state.ErrNotFound)
	}
	if err := checkWireGuard(txn.Read(), n.ID, req.WireGuardKey, req.WireGuardPort); err != nil {
		return nil, err
	}
	cp := *n
	cp.Attributes = req.Attributes
	cp.Resources = req.Resources
	if req.Labels != nil {
		cp.Labels = req.Labels
	}
	cp.WireGuardKey, cp.WireGuardPort = req.WireGuardKey, req.WireGuardPort
	cp.UpdatedAt = req.Now
	if cp.Status == structs.NodeStatusInitializing {
		cp.Status = structs.NodeStatusReady
		cp.StatusUpdatedAt = req.Now
	}
	// A worker that joined when the cluster CIDR was full, or before
	// subnets existed, gets one when its agent registers.
	if err := assignSubnet(txn, &cp, req.Now); err != nil {
		return nil, err
	}
	return nil, txn.UpsertNode(&cp)
}

func applyNodeEligibility(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[NodeEligibilityRequest](buf)
	if err != nil {
		return nil, err
	}
	n := txn.Read().Node(nil, req.NodeID)
	if n == nil {
		return nil, fmt.Errorf("node %s: %w", req.NodeID, state.ErrNotFound)
	}
	cp := *n
	cp.Cordoned, cp.Draining = req.Cordoned, req.Draining
	return nil, txn.UpsertNode(&cp)
}

// markAllocsLost marks every allocation of a node that could still be
// running as lost, so the scheduler replaces them.
func markAllocsLost(txn *state.Txn, nodeID, why string, now time.Time) error {
	for _, a := range txn.Read().AllocsByNode(nil, nodeID) {
		if a.Terminal() {
			continue
		}
		cp := *a
		cp.ClientStatus = structs.AllocLost
		cp.ClientDescription = why
		cp.ModifyTime = now
		if err := txn.UpsertAlloc(&cp); err != nil {
			return err
		}
		if err := txn.AddEvent(structs.Event{Time: now, Type: structs.EventAllocLost, Subject: a.ID,
			Message: fmt.Sprintf("allocation %s on node %s lost: %s", a.ID, nodeID, why)}); err != nil {
			return err
		}
	}
	return nil
}

// checkPublished checks the ports a worker says it published for a: one
// per port of the allocation's group, by label, with valid numbers.
func checkPublished(a *structs.Allocation, pub []structs.PublishedPort) error {
	if pub == nil {
		return nil
	}
	want := map[string]structs.PortMapping{}
	for _, p := range a.Ports {
		want[p.Label] = p
	}
	seen := map[string]bool{}
	for _, p := range pub {
		m, ok := want[p.Label]
		switch {
		case !ok || seen[p.Label]:
			return fmt.Errorf("allocation %s: published port %q is not one of its ports, or is given twice: %w", a.ID, p.Label, ErrInvalid)
		case p.HostPort < 1 || p.HostPort > 65535 || p.To < 1 || p.To > 65535:
			return fmt.Errorf("allocation %s: published port %q: host port %d and target %d must be 1-65535: %w", a.ID, p.Label, p.HostPort, p.To, ErrInvalid)
		case m.Static != 0 && p.HostPort != m.Static:
			return fmt.Errorf("allocation %s: port %q is static %d, not %d: %w", a.ID, p.Label, m.Static, p.HostPort, ErrInvalid)
		}
		seen[p.Label] = true
	}
	return nil
}
