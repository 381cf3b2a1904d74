package fsm

import (
	"errors"
	"fmt"
	"time"

	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

// Command types. Never renumber: they are in every Raft log on disk.
const (
	ClusterBootstrapType MessageType = 1
	NodeRegisterType     MessageType = 2
	NodeStatusType       MessageType = 3
	NodeRemoveType       MessageType = 4
	CertIssuedType       MessageType = 5
	NamespaceUpsertType  MessageType = 6
	NamespaceDeleteType  MessageType = 7
	JoinTokenWriteType   MessageType = 8
	ACLTokenUpsertType   MessageType = 9
	GossipKeysType       MessageType = 10
	EventType            MessageType = 11
	// batchType wraps many commands in one entry so concurrent writers share
	// a single Raft round trip and fsync.
	batchType MessageType = 100
)

// Errors a command returns when the leader's pre-checks raced with another
// write; the server maps them to 4xx answers.
var (
	ErrConflict  = errors.New("conflict")
	ErrInvalid   = errors.New("invalid request")
	ErrForbidden = errors.New("forbidden")
)

// ClusterBootstrapRequest creates the cluster in one entry.
type ClusterBootstrapRequest struct {
	Cluster    structs.ClusterConfig
	Node       structs.Node
	Cert       structs.IssuedCert
	JoinTokens []structs.JoinToken
	ACLTokens  []structs.ACLToken
	Now        time.Time
}

// NodeRegisterRequest records a join: the token use, the node and its
// certificate. Re-checking the token here makes use limits exact even when
// two joins race.
type NodeRegisterRequest struct {
	TokenID string
	Node    structs.Node
	Cert    structs.IssuedCert
	Now     time.Time
}

// NodeStatusRequest updates node liveness, as seen by the leader's Serf.
type NodeStatusRequest struct {
	Updates []NodeStatusUpdate
	Now     time.Time
}

// NodeStatusUpdate is one node's new status.
type NodeStatusUpdate struct {
	NodeID string
	Status string
}

// NodeRemoveRequest removes a node and revokes every certificate issued to it.
type NodeRemoveRequest struct {
	NodeID string
	Now    time.Time
}

// CertIssuedRequest records a renewed certificate.
type CertIssuedRequest struct {
	Cert structs.IssuedCert
	Now  time.Time
}

// NamespaceUpsertRequest creates a namespace; Create refuses an existing one.
type NamespaceUpsertRequest struct {
	Namespace structs.Namespace
	Create    bool
}

// NamespaceDeleteRequest deletes a namespace.
type NamespaceDeleteRequest struct {
	Name string
}

// JoinTokenWriteRequest creates and revokes join tokens atomically (rotate
// is both).
type JoinTokenWriteRequest struct {
	Create []structs.JoinToken
	Revoke []string
	Now    time.Time
}

// ACLTokenUpsertRequest stores API tokens.
type ACLTokenUpsertRequest struct {
	Tokens []structs.ACLToken
}

// GossipKeysRequest replaces the sealed Serf keyring.
type GossipKeysRequest struct {
	Sealed []byte
	Now    time.Time
}

// EventRequest appends an event.
type EventRequest struct {
	Event structs.Event
}

func init() {
	register(ClusterBootstrapType, "cluster bootstrap", applyClusterBootstrap)
	register(NodeRegisterType, "node register", applyNodeRegister)
	register(NodeStatusType, "node status", applyNodeStatus)
	register(NodeRemoveType, "node remove", applyNodeRemove)
	register(CertIssuedType, "cert issued", applyCertIssued)
	register(NamespaceUpsertType, "namespace upsert", applyNamespaceUpsert)
	register(NamespaceDeleteType, "namespace delete", applyNamespaceDelete)
	register(JoinTokenWriteType, "join token write", applyJoinTokenWrite)
	register(ACLTokenUpsertType, "acl token upsert", applyACLTokenUpsert)
	register(GossipKeysType, "gossip keys", applyGossipKeys)
	register(EventType, "event", applyEvent)
}

func applyClusterBootstrap(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[ClusterBootstrapRequest](buf)
	if err != nil {
		return nil, err
	}
	if txn.Read().Cluster(nil) != nil {
		return nil, fmt.Errorf("cluster already bootstrapped: %w", ErrConflict)
	}
	if err := checkNodeAndCert(&req.Node, &req.Cert); err != nil {
		return nil, err
	}
	for i := range req.JoinTokens {
		if err := checkJoinToken(&req.JoinTokens[i]); err != nil {
			return nil, err
		}
	}
	if err := checkACLTokens(req.ACLTokens); err != nil {
		return nil, err
	}
	// Empty means the defaults (clusters made before the dataplane), so
	// only a recorded range is checked.
	if c := req.Cluster; c.ClusterCIDR != "" || c.SubnetBits != 0 {
		if _, err := structs.ParseClusterCIDR(c.ClusterCIDR, c.SubnetBits); err != nil {
			return nil, invalid(err)
		}
	}
	if err := txn.PutCluster(&req.Cluster); err != nil {
		return nil, err
	}
	if err := txn.UpsertNamespace(&structs.Namespace{Name: structs.DefaultNamespace, Description: "Default namespace", CreatedAt: req.Now}); err != nil {
		return nil, err
	}
	if err := txn.UpsertNode(&req.Node); err != nil {
		return nil, err
	}
	if err := txn.PutIssuedCert(&req.Cert); err != nil {
		return nil, err
	}
	for i := range req.JoinTokens {
		if err := txn.UpsertJoinToken(&req.JoinTokens[i]); err != nil {
			return nil, err
		}
	}
	for i := range req.ACLTokens {
		if err := txn.UpsertACLToken(&req.ACLTokens[i]); err != nil {
			return nil, err
		}
	}
	return nil, txn.AddEvent(structs.Event{Time: req.Now, Type: structs.EventNodeJoined, Subject: req.Node.ID, Message: "cluster created"})
}

func applyNodeRegister(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[NodeRegisterRequest](buf)
	if err != nil {
		return nil, err
	}
	r := txn.Read()
	tok := r.JoinToken(nil, req.TokenID)
	if tok == nil {
		return nil, fmt.Errorf("join token %s does not exist: %w", req.TokenID, ErrInvalid)
	}
	if err := tok.Usable(req.Now); err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	if tok.Role != req.Node.Role {
		return nil, fmt.Errorf("join token %s is for %s nodes: %w", tok.ID, tok.Role, ErrInvalid)
	}
	if err := checkNodeAndCert(&req.Node, &req.Cert); err != nil {
		return nil, err
	}
	used := *tok
	used.Uses++
	if err := txn.UpsertJoinToken(&used); err != nil {
		return nil, err
	}
	node := req.Node
	// The subnet and the mesh identity are the cluster's to give and the
	// agent's to register, never the joiner's to claim; a rejoining node
	// keeps its own, so its allocations and peers stay as they were.
	node.Subnet, node.WireGuardKey, node.WireGuardPort = "", "", 0
	if old := r.Node(nil, node.ID); old != nil {
		node.JoinedAt = old.JoinedAt
		if node.Labels == nil {
			node.Labels = old.Labels
		}
		if old.Role == node.Role {
			node.Subnet, node.WireGuardKey, node.WireGuardPort = old.Subnet, old.WireGuardKey, old.WireGuardPort
		}
	}
	if err := assignSubnet(txn, &node, req.Now); err != nil {
		return nil, err
	}
	if err := txn.UpsertNode(&node); err != nil {
		return nil, err
	}
	if err := txn.PutIssuedCert(&req.Cert); err != nil {
		return nil, err
	}
	meta := map[string]string{"token": tok.ID, "node": node.ID, "role": string(node.Role), "address": node.Address}
	if err := txn.AddEvent(structs.Event{Time: req.Now, Type: structs.EventJoinTokenUsed, Subject: tok.ID,
		Message: fmt.Sprintf("join token %s used by node %s (%s)", tok.ID, node.ID, node.Address), Meta: meta}); err != nil {
		return nil, err
	}
	return nil, txn.AddEvent(structs.Event{Time: req.Now, Type: structs.EventNodeJoined, Subject: node.ID,
		Message: fmt.Sprintf("%s %s joined from %s", node.Role, node.ID, node.Address), Meta: meta})
}

func applyNodeStatus(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[NodeStatusRequest](buf)
	if err != nil {
		return nil, err
	}
	for _, u := range req.Updates {
		n := txn.Read().Node(nil, u.NodeID)
		if n == nil || n.Status == u.Status {
			continue // removed meanwhile, or nothing to change
		}
		cp := *n
		cp.Status = u.Status
		cp.UpdatedAt = req.Now
		cp.StatusUpdatedAt = req.Now
		if err := txn.UpsertNode(&cp); err != nil {
			return nil, err
		}
		if err := txn.AddEvent(structs.Event{Time: req.Now, Type: structs.EventNodeStatus, Subject: n.ID,
			Message: fmt.Sprintf("%s %s is %s (was %s)", n.Role, n.ID, u.Status, n.Status)}); err != nil {
			return nil, err
		}
		if u.Status == structs.NodeStatusDown {
			if err := markAllocsLost(txn, n.ID, "node is down", req.Now); err != nil {
				return nil, err
			}
		}
	}
	return nil, nil
}

func applyNodeRemove(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[NodeRemoveRequest](buf)
	if err != nil {
		return nil, err
	}
	n := txn.Read().Node(nil, req.NodeID)
	if n == nil {
		return nil, fmt.Errorf("node %s does not exist: %w", req.NodeID, state.ErrNotFound)
	}
	if err := txn.DeleteNode(req.NodeID); err != nil {
		return nil, err
	}
	if err := markAllocsLost(txn, req.NodeID, "node was removed", req.Now); err != nil {
		return nil, err
	}
	var revoked int
	for _, c := range txn.Read().IssuedCertsByNode(nil, req.NodeID) {
		if c.Revoked {
			continue
		}
		cp := *c
		cp.Revoked = true
		cp.RevokedAt = req.Now
		if err := txn.PutIssuedCert(&cp); err != nil {
			return nil, err
		}
		revoked++
	}
	if err := txn.PruneIssuedCerts(req.Now); err != nil {
		return nil, err
	}
	return revoked, txn.AddEvent(structs.Event{Time: req.Now, Type: structs.EventNodeRemoved, Subject: n.ID,
		Message: fmt.Sprintf("%s %s removed; %d certificate(s) revoked", n.Role, n.ID, revoked)})
}

func applyCertIssued(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[CertIssuedRequest](buf)
	if err != nil {
		return nil, err
	}
	n := txn.Read().Node(nil, req.Cert.NodeID)
	if n == nil {
		return nil, fmt.Errorf("node %s does not exist: %w", req.Cert.NodeID, state.ErrNotFound)
	}
	if err := txn.PutIssuedCert(&req.Cert); err != nil {
		return nil, err
	}
	cp := *n
	cp.CertSerial = req.Cert.Serial
	cp.CertExpiry = req.Cert.NotAfter
	cp.UpdatedAt = req.Now
	if err := txn.UpsertNode(&cp); err != nil {
		return nil, err
	}
	return nil, txn.AddEvent(structs.Event{Time: req.Now, Type: structs.EventCertRenewed, Subject: n.ID,
		Message: fmt.Sprintf("certificate renewed for %s, valid until %s", n.ID, req.Cert.NotAfter.UTC().Format(time.RFC3339))})
}

func applyNamespaceUpsert(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[NamespaceUpsertRequest](buf)
	if err != nil {
		return nil, err
	}
	if err := structs.ValidateName("namespace", req.Namespace.Name); err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	if err := structs.ValidateLabels(req.Namespace.Labels); err != nil {
		return nil, invalid(fmt.Errorf("labels: %w", err))
	}
	if req.Create && txn.Read().Namespace(nil, req.Namespace.Name) != nil {
		return nil, fmt.Errorf("namespace %q already exists: %w", req.Namespace.Name, ErrConflict)
	}
	return nil, txn.UpsertNamespace(&req.Namespace)
}

func applyNamespaceDelete(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[NamespaceDeleteRequest](buf)
	if err != nil {
		return nil, err
	}
	if req.Name == structs.DefaultNamespace {
		return nil, fmt.Errorf("the %q namespace cannot be deleted: %w", structs.DefaultNamespace, ErrInvalid)
	}
	r := txn.Read()
	if r.Namespace(nil, req.Name) == nil {
		return nil, fmt.Errorf("namespace %s: %w", req.Name, state.ErrNotFound)
	}
	// Its network policies go with it, as in Kubernetes: a namespace made
	// again later under the same name must not inherit them.
	for _, p := range r.NetworkPolicies(nil, req.Name) {
		if err := txn.DeleteNetworkPolicy(p.Namespace, p.Name); err != nil {
			return nil, err
		}
	}
	return nil, txn.DeleteNamespace(req.Name)
}

func applyJoinTokenWrite(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[JoinTokenWriteRequest](buf)
	if err != nil {
		return nil, err
	}
	for _, id := range req.Revoke {
		if txn.Read().JoinToken(nil, id) == nil {
			return nil, fmt.Errorf("join token %s does not exist: %w", id, state.ErrNotFound)
		}
	}
	for i := range req.Create {
		tok := &req.Create[i]
		if err := checkJoinToken(tok); err != nil {
			return nil, err
		}
		if txn.Read().JoinToken(nil, tok.ID) != nil {
			return nil, fmt.Errorf("join token %s already exists: %w", tok.ID, ErrConflict)
		}
	}
	for _, id := range req.Revoke {
		tok := txn.Read().JoinToken(nil, id)
		if tok.Revoked {
			continue
		}
		cp := *tok
		cp.Revoked = true
		cp.RevokedAt = req.Now
		cp.Default = false
		if err := txn.UpsertJoinToken(&cp); err != nil {
			return nil, err
		}
		if err := txn.AddEvent(structs.Event{Time: req.Now, Type: structs.EventJoinTokenRevoked, Subject: id,
			Message: fmt.Sprintf("%s join token %s revoked", tok.Role, id)}); err != nil {
			return nil, err
		}
	}
	for i := range req.Create {
		tok := &req.Create[i]
		if err := txn.UpsertJoinToken(tok); err != nil {
			return nil, err
		}
		if err := txn.AddEvent(structs.Event{Time: req.Now, Type: structs.EventJoinTokenCreated, Subject: tok.ID,
			Message: fmt.Sprintf("%s join token %s created", tok.Role, tok.ID)}); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

func applyACLTokenUpsert(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[ACLTokenUpsertRequest](buf)
	if err != nil {
		return nil, err
	}
	if err := checkACLTokens(req.Tokens); err != nil {
		return nil, err
	}
	for i := range req.Tokens {
		if err := txn.UpsertACLToken(&req.Tokens[i]); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

func applyGossipKeys(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[GossipKeysRequest](buf)
	if err != nil {
		return nil, err
	}
	c := txn.Read().Cluster(nil)
	if c == nil {
		return nil, fmt.Errorf("cluster not bootstrapped: %w", ErrInvalid)
	}
	cp := *c
	cp.GossipKeysSealed = req.Sealed
	if err := txn.PutCluster(&cp); err != nil {
		return nil, err
	}
	return nil, txn.AddEvent(structs.Event{Time: req.Now, Type: structs.EventGossipRotated, Message: "gossip encryption key rotated"})
}

func applyEvent(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[EventRequest](buf)
	if err != nil {
		return nil, err
	}
	return nil, txn.AddEvent(req.Event)
}

// The checks below catch, before anything is written, the records memdb
// would refuse half-way through a command (a missing indexed field). Inside a
// batch there is no abort to undo the writes made before such a failure.

func checkNodeAndCert(n *structs.Node, c *structs.IssuedCert) error {
	switch {
	case n.ID == "":
		return fmt.Errorf("node has no ID: %w", ErrInvalid)
	case !n.Role.Valid():
		return fmt.Errorf("node %s role %q: %w", n.ID, n.Role, ErrInvalid)
	case c.Serial == "" || c.NodeID == "":
		return fmt.Errorf("certificate of node %s has no serial or node ID: %w", n.ID, ErrInvalid)
	}
	return nil
}

func checkJoinToken(tok *structs.JoinToken) error {
	if tok.ID == "" {
		return fmt.Errorf("join token has no ID: %w", ErrInvalid)
	}
	if !tok.Role.Valid() {
		return fmt.Errorf("join token role %q: %w", tok.Role, ErrInvalid)
	}
	return nil
}

func checkACLTokens(toks []structs.ACLToken) error {
	for i := range toks {
		if toks[i].AccessorID == "" || toks[i].SecretHash == "" {
			return fmt.Errorf("ACL token %d has no accessor ID or secret hash: %w", i, ErrInvalid)
		}
	}
	return nil
}
