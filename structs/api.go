package structs

import "time"

// This file holds the JSON bodies of the HTTP API. Field names are the wire
// names; keep them stable.

// ErrorResponse is the body of every non-2xx API answer.
type ErrorResponse struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// CAResponse answers GET /v1/join/ca, the only unauthenticated read: a
// joining node checks the certificate against its token's pin before it
// sends anything else.
type CAResponse struct {
	CACertPEM string `json:"ca_pem"`
}

// JoinRequest is POSTed to /v1/join over TLS pinned to the cluster CA.
type JoinRequest struct {
	Token    string `json:"token"`
	CSRPEM   string `json:"csr_pem"`
	NodeID   string `json:"node_id,omitempty"` // set when a known node rejoins
	Name     string `json:"name"`
	Address  string `json:"address"`
	APIPort  int    `json:"api_port"`
	RPCPort  int    `json:"rpc_port"`
	SerfPort int    `json:"serf_port"`
}

// JoinResponse hands a new node what it needs to take part.
type JoinResponse struct {
	ClusterID  string   `json:"cluster_id"`
	NodeID     string   `json:"node_id"`
	Role       Role     `json:"role"`
	CertPEM    string   `json:"cert_pem"`
	CACertPEM  string   `json:"ca_pem"`
	GossipKeys [][]byte `json:"gossip_keys"` // primary first
	// UnsealKey is sent only to managers, over the CA-pinned TLS session.
	UnsealKey []byte `json:"unseal_key,omitempty"`
	// Autolock tells a joining manager to keep the unseal key in memory
	// only.
	Autolock bool        `json:"autolock,omitempty"`
	Managers []PeerAddrs `json:"managers"`
}

// PeerAddrs names a manager's endpoints.
type PeerAddrs struct {
	ID       string `json:"id"`
	APIAddr  string `json:"api_addr"`
	RPCAddr  string `json:"rpc_addr"`
	SerfAddr string `json:"serf_addr"`
}

// RenewRequest asks for a fresh certificate, authenticated by the current one.
type RenewRequest struct {
	CSRPEM string `json:"csr_pem"`
}

// RenewResponse carries the new certificate.
type RenewResponse struct {
	CertPEM string `json:"cert_pem"`
}

// GossipKeysResponse answers GET /v1/internal/gossip-keys for nodes.
type GossipKeysResponse struct {
	Keys [][]byte `json:"keys"` // primary first
}

// LeaderResponse answers GET /v1/status/leader.
type LeaderResponse struct {
	LeaderID   string `json:"leader_id"`
	LeaderAddr string `json:"leader_addr"`
}

// RaftPeer is one server in the Raft configuration.
type RaftPeer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
}

// NamespaceRequest creates a namespace.
type NamespaceRequest struct {
	Name            string `json:"name"`
	Description     string `json:"description,omitempty"`
	AllowPrivileged bool   `json:"allow_privileged,omitempty"`
	// Labels are what network policies' namespace selectors match;
	// Isolation generates a policy admitting only same-namespace traffic.
	Labels    map[string]string `json:"labels,omitempty"`
	Isolation bool              `json:"isolation,omitempty"`
}

// JoinTokenCreateRequest creates a join token. TTL is a Go duration string.
type JoinTokenCreateRequest struct {
	Role        Role   `json:"role"`
	TTL         string `json:"ttl,omitempty"`
	MaxUses     int    `json:"max_uses,omitempty"`
	Description string `json:"description,omitempty"`
}

// JoinTokenCreateResponse shows the token secret; it is never shown again.
type JoinTokenCreateResponse struct {
	Token string           `json:"token"`
	Info  JoinTokenPublic  `json:"info"`
	Old   *JoinTokenPublic `json:"rotated,omitempty"` // set by rotate
}

// JoinTokenPublic is a join token without its secret hash.
type JoinTokenPublic struct {
	ID          string    `json:"id"`
	Role        Role      `json:"role"`
	Description string    `json:"description,omitempty"`
	Default     bool      `json:"default"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	MaxUses     int       `json:"max_uses"`
	Uses        int       `json:"uses"`
	Revoked     bool      `json:"revoked"`
}

// Public strips the secret hash.
func (t *JoinToken) Public() JoinTokenPublic {
	return JoinTokenPublic{
		ID: t.ID, Role: t.Role, Description: t.Description, Default: t.Default,
		CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, MaxUses: t.MaxUses,
		Uses: t.Uses, Revoked: t.Revoked,
	}
}

// NodePublic is the API view of a node.
type NodePublic struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Role       Role              `json:"role"`
	Address    string            `json:"address"`
	Status     string            `json:"status"`
	Leader     bool              `json:"leader,omitempty"`
	CertExpiry time.Time         `json:"cert_expiry"`
	Labels     map[string]string `json:"labels,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	Resources  Resources         `json:"resources"`
	Cordoned   bool              `json:"cordoned"`
	Draining   bool              `json:"draining"`
	JoinedAt   time.Time         `json:"joined_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
	// Subnet is the worker's allocation subnet; WireGuardKey (public) and
	// WireGuardPort its mesh identity, once its agent registered one.
	Subnet        string `json:"subnet,omitempty"`
	WireGuardKey  string `json:"wireguard_key,omitempty"`
	WireGuardPort int    `json:"wireguard_port,omitempty"`
}

// Public is the API view of n.
func (n *Node) Public() NodePublic {
	return NodePublic{
		ID: n.ID, Name: n.Name, Role: n.Role, Address: n.Address, Status: n.Status,
		CertExpiry: n.CertExpiry, Labels: n.Labels, Attributes: n.Attributes, Resources: n.Resources,
		Cordoned: n.Cordoned, Draining: n.Draining, JoinedAt: n.JoinedAt, UpdatedAt: n.UpdatedAt,
		Subnet: n.Subnet, WireGuardKey: n.WireGuardKey, WireGuardPort: n.WireGuardPort,
	}
}

// SnapshotInfo describes a snapshot file (hive operator snapshot inspect).
type SnapshotInfo struct {
	ID     string         `json:"id"`
	Index  uint64         `json:"index"`
	Term   uint64         `json:"term"`
	Size   int64          `json:"size"`
	Tables map[string]int `json:"tables"`
}

// AllocCreateRequest places an allocation on a named node (admins, until
// the scheduler places them from jobs).
type AllocCreateRequest struct {
	Namespace string  `json:"namespace"`
	NodeID    string  `json:"node_id"`
	JobID     string  `json:"job_id,omitempty"`
	Group     string  `json:"group,omitempty"`
	Tasks     []*Task `json:"tasks"`
}

// NodeRegisterRequest is the worker's fingerprint, sent at start.
type NodeRegisterRequest struct {
	Attributes map[string]string `json:"attributes"`
	Resources  Resources         `json:"resources"`
	Labels     map[string]string `json:"labels,omitempty"`
	// WireGuardKey (base64 public key) and WireGuardPort are the worker's
	// mesh identity; empty when the agent runs without networking.
	WireGuardKey  string `json:"wireguard_key,omitempty"`
	WireGuardPort int    `json:"wireguard_port,omitempty"`
}

// HeartbeatResponse tells a worker when to heartbeat next.
type HeartbeatResponse struct {
	TTL time.Duration `json:"ttl"`
}

// AllocUpdate is a worker's report on one of its allocations.
type AllocUpdate struct {
	ID                string                `json:"id"`
	ClientStatus      string                `json:"client_status"`
	ClientDescription string                `json:"client_description,omitempty"`
	TaskStates        map[string]*TaskState `json:"task_states,omitempty"`
	// Address is the allocation's IP in its node's subnet, once its
	// network is set up (empty: unchanged).
	Address string `json:"address,omitempty"`
	// Published are the allocation's published ports (nil: unchanged).
	Published []PublishedPort `json:"published,omitempty"`
}

// AllocUpdateRequest carries a worker's reports in one write.
type AllocUpdateRequest struct {
	Updates []AllocUpdate `json:"updates"`
}

// ImageInfo describes an image on a worker.
type ImageInfo struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// NodeImages lists the images of one worker.
type NodeImages struct {
	NodeID string      `json:"node_id"`
	Images []ImageInfo `json:"images"`
	Error  string      `json:"error,omitempty"`
}

// JobRegisterRequest submits a job (parsed from HCL by the CLI with the
// jobspec package).
type JobRegisterRequest struct {
	Job *Job `json:"job"`
}

// JobRegisterResponse answers a job submission or revert.
type JobRegisterResponse struct {
	EvalID     string   `json:"eval_id"`
	JobVersion uint64   `json:"job_version"`
	Warnings   []string `json:"warnings,omitempty"`
}

// JobPlanResponse is a dry run of a submission: what the scheduler would do.
type JobPlanResponse struct {
	JobVersion     uint64                  `json:"job_version"`
	Groups         map[string]*GroupPlan   `json:"groups"`
	FailedTGAllocs map[string]*AllocMetric `json:"failed_tg_allocs,omitempty"`
	Warnings       []string                `json:"warnings,omitempty"`
}

// GroupPlan counts one group's planned changes.
type GroupPlan struct {
	Place       int `json:"place"`
	InPlace     int `json:"in_place"`
	Destructive int `json:"destructive"`
	Stop        int `json:"stop"`
	Ignore      int `json:"ignore"`
}

// JobListStub is one line of `hive job status`.
type JobListStub struct {
	ID        string                   `json:"id"`
	Namespace string                   `json:"namespace"`
	Type      string                   `json:"type"`
	Status    string                   `json:"status"`
	Version   uint64                   `json:"version"`
	Stop      bool                     `json:"stop"`
	Groups    map[string]*GroupSummary `json:"groups"`
	// Blocked explains, per group, why allocations wait for capacity.
	Blocked map[string]*AllocMetric `json:"blocked,omitempty"`
}

// GroupSummary counts a group's allocations by client status.
type GroupSummary struct {
	Desired  int `json:"desired"`
	Pending  int `json:"pending"`
	Running  int `json:"running"`
	Complete int `json:"complete"`
	Failed   int `json:"failed"`
	Lost     int `json:"lost"`
}

// JobRevertRequest reverts a job to an earlier version.
type JobRevertRequest struct {
	Version uint64 `json:"version"`
}
