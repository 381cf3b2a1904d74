package structs

import "time"

// NodeNetworkStatus is what a worker's dataplane is doing, as its agent
// reports it (`hive node network NODE`): the lease it runs, the WireGuard
// peers configured on hive-wg, and the allocations it gave a network.
// Nothing secret: public keys only.
type NodeNetworkStatus struct {
	Enabled     bool                 `json:"enabled"`
	Subnet      string               `json:"subnet,omitempty"`
	ClusterCIDR string               `json:"cluster_cidr,omitempty"`
	Mode        string               `json:"mode,omitempty"` // "kernel" or "userspace" WireGuard
	ListenPort  int                  `json:"listen_port,omitempty"`
	PublicKey   string               `json:"public_key,omitempty"`
	Peers       []WireGuardPeerState `json:"peers"`
	Allocations []AllocNetworkState  `json:"allocations"`
	// PolicyEndpoints and Policies are what the applied ruleset was
	// compiled from; AppliedAt is when it was last written.
	PolicyEndpoints int       `json:"policy_endpoints"`
	Policies        int       `json:"policies"`
	AppliedAt       time.Time `json:"applied_at,omitzero"`
	LastError       string    `json:"last_error,omitempty"`
	// Counters are the node's verdict counts since the agent started,
	// per policy ("namespace/name", "admin:NAME" or "quarantine"),
	// direction and verdict: new flows accepted or dropped for the
	// allocations the policy selects.
	Counters []NetpolCounter `json:"counters"`
}

// NetpolCounter is one policy's verdict count on one node.
type NetpolCounter struct {
	Policy    string `json:"policy"`
	Direction string `json:"direction,omitempty"`
	Verdict   string `json:"verdict"`
	Packets   uint64 `json:"packets"`
	Bytes     uint64 `json:"bytes"`
}

// WireGuardPeerState is one peer of hive-wg as the device holds it.
type WireGuardPeerState struct {
	PublicKey     string    `json:"public_key"`
	Endpoint      string    `json:"endpoint"`
	AllowedIPs    []string  `json:"allowed_ips"`
	LastHandshake time.Time `json:"last_handshake,omitzero"`
	RxBytes       int64     `json:"rx_bytes"`
	TxBytes       int64     `json:"tx_bytes"`
}

// AllocNetworkState is one allocation's network on its worker.
type AllocNetworkState struct {
	AllocID  string `json:"alloc_id"`
	Address  string `json:"address"`
	HostVeth string `json:"host_veth"`
	Netns    string `json:"netns"`
}

// DeniedFlow is a flow network policy denied on a worker, as the worker
// reports it: the kernel logs a rate-limited sample of denials and the
// agent folds repeats within a few seconds into one with a packet count.
type DeniedFlow struct {
	Direction string   `json:"direction,omitempty"` // "ingress" or "egress"; empty for quarantine
	Policies  []string `json:"policies"`            // the policies that decided: "ns/name", "admin:NAME" or "quarantine"
	Src       string   `json:"src"`
	Dst       string   `json:"dst"`
	Protocol  uint8    `json:"protocol"`
	Port      uint16   `json:"port,omitempty"`
	Packets   int      `json:"packets"`
	// Audit: only audit-mode policies would deny the flow; it passed.
	Audit bool `json:"audit,omitempty"`
}

// DeniedFlowReport is what a worker sends to POST /v1/node/denied-flows.
type DeniedFlowReport struct {
	Flows []DeniedFlow `json:"flows"`
}
