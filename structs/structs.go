// Package structs is Hive's domain model: the records replicated through Raft,
// the requests and responses of the HTTP API, and their validation. It does no
// I/O and depends on nothing else in Hive, so every other package can share it.
package structs

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"time"
)

// Role says what a node does in the cluster. A join token decides it.
type Role string

const (
	// RoleManager nodes are Raft voters, serve the API and schedule work.
	RoleManager Role = "manager"
	// RoleWorker nodes run workloads.
	RoleWorker Role = "worker"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleManager || r == RoleWorker }

// Node status values. The leader derives them from Serf membership and,
// for workers, from heartbeats: a node that misses them is unknown (its
// workloads are left alone), and down once a grace period passes (its
// allocations are then lost and replaced).
const (
	// NodeStatusInitializing is a worker that joined but whose agent has
	// not registered yet: nothing may be placed on it or asked of it.
	NodeStatusInitializing = "initializing"
	NodeStatusReady        = "ready"
	NodeStatusUnknown      = "unknown"
	NodeStatusDown         = "down"
)

// Default ports.
const (
	DefaultAPIPort  = 7400
	DefaultRPCPort  = 7401
	DefaultSerfPort = 7402
	// DefaultWireGuardPort is the UDP port of the workers' mesh.
	DefaultWireGuardPort = 51820
)

// DefaultNamespace exists in every cluster and cannot be deleted.
const DefaultNamespace = "default"

// Node is one machine in the cluster, manager or worker.
type Node struct {
	ID         string
	Name       string
	Role       Role
	Address    string // advertised IP
	APIPort    int
	RPCPort    int
	SerfPort   int
	Status     string
	CertSerial string    // serial (hex) of the newest certificate issued
	CertExpiry time.Time // expiry of that certificate
	Labels     map[string]string
	JoinedAt   time.Time
	UpdatedAt  time.Time

	// Attributes are the worker's fingerprint (cpu.cores, cpu.mhz,
	// memory.mb, kernel.version, os.name, os.version, arch, hostname).
	Attributes map[string]string
	// Resources the worker offers to allocations.
	Resources Resources
	// Cordoned nodes take no new allocations; draining ones also move
	// theirs away.
	Cordoned bool
	Draining bool
	// StatusUpdatedAt is when Status last changed.
	StatusUpdatedAt time.Time

	// Subnet is the allocation subnet (CIDR) the cluster leased this
	// worker from the cluster CIDR; the FSM assigns it when the worker
	// joins and frees it when the node is removed.
	Subnet string
	// WireGuardKey is the worker's WireGuard public key (base64) and
	// WireGuardPort its UDP port, registered by its agent. The private key
	// never leaves the worker.
	WireGuardKey  string
	WireGuardPort int

	CreateIndex uint64
	ModifyIndex uint64
}

// Schedulable reports whether new allocations may be placed on the node.
func (n *Node) Schedulable() bool {
	return n.Role == RoleWorker && n.Status == NodeStatusReady && !n.Cordoned && !n.Draining
}

// APIAddr is the node's HTTPS API address (managers only serve it).
func (n *Node) APIAddr() string { return joinHostPort(n.Address, n.APIPort) }

// RPCAddr is the node's Raft and node-to-node mTLS address.
func (n *Node) RPCAddr() string { return joinHostPort(n.Address, n.RPCPort) }

// SerfAddr is the node's gossip address.
func (n *Node) SerfAddr() string { return joinHostPort(n.Address, n.SerfPort) }

// IssuedCert records a certificate the cluster CA signed for a node, so that
// removing the node can put every live certificate of it on the deny list.
type IssuedCert struct {
	Serial    string // hex
	NodeID    string
	Role      Role
	NotAfter  time.Time
	IssuedAt  time.Time
	Revoked   bool
	RevokedAt time.Time

	CreateIndex uint64
	ModifyIndex uint64
}

// Namespace scopes jobs, secrets and policies.
type Namespace struct {
	Name        string
	Description string
	CreatedAt   time.Time
	// AllowPrivileged lets tasks of this namespace ask for privileged
	// containers; off by default.
	AllowPrivileged bool
	// Labels are what network policies' namespace selectors match.
	Labels map[string]string
	// Isolation makes the namespace's allocations accept traffic only
	// from the same namespace (a generated network policy).
	Isolation bool

	CreateIndex uint64
	ModifyIndex uint64
}

// JoinToken lets a node join the cluster with a given role. Only the SHA-256
// of its secret is stored; the secret is shown once, when it is created.
type JoinToken struct {
	ID          string // public, short; names the token in lists and events
	Role        Role
	SecretHash  []byte // sha256 of the secret part
	Description string
	Default     bool // the token `hive join-token rotate ROLE` replaces
	CreatedAt   time.Time
	ExpiresAt   time.Time // zero: no expiry
	MaxUses     int       // 0: unlimited
	Uses        int
	Revoked     bool
	RevokedAt   time.Time

	CreateIndex uint64
	ModifyIndex uint64
}

// Usable says why a token cannot be used at now, or nil if it can.
func (t *JoinToken) Usable(now time.Time) error {
	switch {
	case t.Revoked:
		return fmt.Errorf("join token %s was revoked", t.ID)
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return fmt.Errorf("join token %s expired at %s", t.ID, t.ExpiresAt.UTC().Format(time.RFC3339))
	case t.MaxUses > 0 && t.Uses >= t.MaxUses:
		return fmt.Errorf("join token %s has been used %d of %d times", t.ID, t.Uses, t.MaxUses)
	}
	return nil
}

// ACLToken authenticates an API caller. Only the SHA-256 of the secret is
// stored. Kind is management (the bootstrap admin token), session, api or
// sa (see TokenKindSession and the others).
type ACLToken struct {
	AccessorID string
	Name       string
	Kind       string
	SecretHash string // hex sha256 of the token
	// Subject is who the token acts as: "user:<name>" or
	// "sa:<namespace>/<name>"; empty for management and role tokens.
	Subject string
	// Role, when set, is all the token holds: that role, globally or in
	// Namespace, instead of its subject's permissions.
	Role      string
	Namespace string
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: no expiry

	CreateIndex uint64
	ModifyIndex uint64
}

// ACLTokenKindManagement grants every permission.
const ACLTokenKindManagement = "management"

// ClusterConfig is the singleton record created by `hive init`.
type ClusterConfig struct {
	ClusterID string
	CACertPEM []byte
	// CAKeySealed is the CA private key sealed by the unseal key, which never
	// enters Raft, so any manager holding the unseal key can sign.
	CAKeySealed []byte
	// GossipKeysSealed is the Serf keyring (primary first) sealed likewise.
	GossipKeysSealed []byte
	// Autolock: managers keep the unseal key in memory only.
	Autolock bool
	// UnsealKeyID names the unseal key the sealed fields need (a hash
	// prefix; empty for the key the cluster was created with).
	UnsealKeyID string
	// ClusterCIDR is the range workers' allocation subnets are leased
	// from (DefaultClusterCIDR unless `hive init --cluster-cidr`), cut
	// into subnets of SubnetBits prefix length.
	ClusterCIDR string
	SubnetBits  int
	CreatedAt   time.Time

	CreateIndex uint64
	ModifyIndex uint64
}

// Event records something an operator may want to see later: token uses,
// node removals, key rotations.
type Event struct {
	Index   uint64 // Raft index of the write that raised it; unique with Seq
	Seq     int
	Time    time.Time
	Type    string
	Subject string
	Message string
	Meta    map[string]string
}

// Event types.
const (
	EventJoinTokenUsed    = "join-token-used"
	EventJoinTokenRevoked = "join-token-revoked"
	EventJoinTokenCreated = "join-token-created"
	EventNodeJoined       = "node-joined"
	EventNodeRemoved      = "node-removed"
	EventCertRenewed      = "cert-renewed"
	EventGossipRotated    = "gossip-key-rotated"
	EventSnapshotRestored = "snapshot-restored"
	EventNodeStatus       = "node-status"
	EventAllocLost        = "alloc-lost"
	// Secrets: an expired secret stops being delivered; a user-supplied
	// secret past its rotation period is due; a generated one was
	// regenerated; the root key was rotated on its schedule.
	EventSecretExpired     = "secret-expired"
	EventSecretRotationDue = "secret-rotation-due"
	EventSecretRotated     = "secret-rotated"
	EventRootKeyRotated    = "root-key-rotated"
	EventUnsealRotated     = "unseal-key-rotated"
	// Networking: a worker joined but the cluster CIDR has no free subnet
	// left for it; an allocation was quarantined or released.
	EventNodeNoSubnet       = "node-no-subnet"
	EventAllocQuarantined   = "alloc-quarantined"
	EventAllocUnquarantined = "alloc-unquarantined"
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidateName checks a DNS-label style name (namespaces and the like).
func ValidateName(kind, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("invalid %s name %q: use 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit", kind, name)
	}
	return nil
}

func joinHostPort(host string, port int) string {
	if host == "" || port == 0 {
		return ""
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}
