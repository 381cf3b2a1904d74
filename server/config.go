package server

import (
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hivesec/hive/lockout"
	"github.com/hivesec/hive/structs"
)

// Config configures a manager.
type Config struct {
	DataDir   string
	Advertise string // IP other nodes reach this one at
	// BindAddr is the IP listeners bind to; empty means Advertise.
	BindAddr string
	Name     string
	APIPort  int
	RPCPort  int
	SerfPort int

	// CertLifetime is the lifetime of node certificates this manager signs.
	CertLifetime time.Duration

	// Raft timing; zero values take hashicorp/raft's defaults. Tests and
	// benchmarks on loopback shorten them.
	RaftHeartbeatTimeout time.Duration
	RaftElectionTimeout  time.Duration
	RaftLeaderLease      time.Duration

	// HeartbeatTTL is how long a worker may go without a heartbeat before
	// it is unknown; DownGrace how long it may stay unknown before it is
	// down and its allocations are lost.
	HeartbeatTTL time.Duration
	DownGrace    time.Duration

	// ReconcileInterval is how often the leader reconciles Serf members with
	// Raft peers and node status, besides reacting to Serf events.
	ReconcileInterval time.Duration

	// AuditPolicyFile is an HCL audit policy; empty records every request
	// at the metadata level. AuditWebhook, if set, also receives every
	// entry.
	AuditPolicyFile string
	AuditWebhook    string

	// Autolock (at init) keeps the unseal key off every manager's disk:
	// `hive init --autolock` prints it once as the unlock key, and a
	// restarted manager serves no secrets and signs no certificates until
	// it is given the key (`hive operator unlock`, or UnlockKeyFile at
	// start, e.g. on a tmpfs).
	Autolock      bool
	UnlockKeyFile string

	// Login throttles and locks out failed password logins; zero fields
	// take lockout.DefaultConfig's.
	Login lockout.Config

	// RootKeyRotation is how often the leader rotates the secrets root
	// key on its own (default 30 days; negative: never).
	RootKeyRotation time.Duration

	// ClusterCIDR (at init) is the range workers' allocation subnets are
	// leased from, in subnets of SubnetBits prefix length; empty and zero
	// take structs.DefaultClusterCIDR and DefaultSubnetBits.
	ClusterCIDR string
	SubnetBits  int

	Logger hclog.Logger
}

// Liveness defaults: a worker missing heartbeats for 10 s is unknown, and
// down 10 s later.
const (
	DefaultHeartbeatTTL = 10 * time.Second
	DefaultDownGrace    = 10 * time.Second
)

// DefaultCertLifetime is the lifetime of node certificates.
const DefaultCertLifetime = 7 * 24 * time.Hour

// DefaultRootKeyRotation is the automatic root-key rotation period.
const DefaultRootKeyRotation = 30 * 24 * time.Hour

func (c *Config) setDefaults() error {
	if c.RootKeyRotation == 0 {
		c.RootKeyRotation = DefaultRootKeyRotation
	}
	if c.DataDir == "" {
		return fmt.Errorf("a data dir is required (--data-dir)")
	}
	ip := net.ParseIP(c.Advertise)
	if ip == nil {
		return fmt.Errorf("invalid advertise address %q: give this node's IP address (--advertise)", c.Advertise)
	}
	if ip.IsUnspecified() {
		return fmt.Errorf("advertise address %s is unspecified: give an address other nodes can reach", c.Advertise)
	}
	if c.BindAddr == "" {
		c.BindAddr = c.Advertise
	}
	if c.APIPort == 0 {
		c.APIPort = structs.DefaultAPIPort
	}
	if c.RPCPort == 0 {
		c.RPCPort = structs.DefaultRPCPort
	}
	if c.SerfPort == 0 {
		c.SerfPort = structs.DefaultSerfPort
	}
	for _, p := range []int{c.APIPort, c.RPCPort, c.SerfPort} {
		if p < 1 || p > 65535 {
			return fmt.Errorf("invalid port %d: use 1-65535", p)
		}
	}
	if c.CertLifetime == 0 {
		c.CertLifetime = DefaultCertLifetime
	}
	if c.CertLifetime < time.Second {
		return fmt.Errorf("certificate lifetime %s is too short: use at least 1s", c.CertLifetime)
	}
	if c.HeartbeatTTL == 0 {
		c.HeartbeatTTL = DefaultHeartbeatTTL
	}
	if c.DownGrace == 0 {
		c.DownGrace = DefaultDownGrace
	}
	if c.HeartbeatTTL < 0 || c.DownGrace < 0 {
		return fmt.Errorf("heartbeat TTL and down grace period cannot be negative")
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = 2 * time.Second
	}
	if c.ClusterCIDR == "" {
		c.ClusterCIDR = structs.DefaultClusterCIDR
	}
	if c.SubnetBits == 0 {
		c.SubnetBits = structs.DefaultSubnetBits
	}
	if _, err := structs.ParseClusterCIDR(c.ClusterCIDR, c.SubnetBits); err != nil {
		return err
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return nil
}
