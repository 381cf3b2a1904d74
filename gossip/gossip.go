// Package gossip starts a node's Serf agent with Hive's tags and an
// encrypted keyring. Managers and workers join the same pool.
package gossip

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/hivesec/hive/structs"
)

// Serf tags every member carries.
const (
	TagRole    = "role"
	TagAPIPort = "api_port"
	TagRPCPort = "rpc_port"
)

// Config describes the local member.
type Config struct {
	NodeID    string
	Role      structs.Role
	BindAddr  string
	Advertise string
	Port      int
	APIPort   int
	RPCPort   int
	// Keys is the keyring, primary key first; every key is 32 bytes.
	Keys         [][]byte
	SnapshotPath string
	EventCh      chan serf.Event
	Logger       hclog.Logger
}

// KeySize is the gossip key length (AES-256).
const KeySize = 32

// Start creates the Serf agent. It does not join anyone yet.
func Start(c Config) (*serf.Serf, error) {
	if len(c.Keys) == 0 {
		return nil, fmt.Errorf("gossip: no encryption key; gossip is never sent in the clear")
	}
	for i, k := range c.Keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("gossip: key %d is %d bytes, want %d", i, len(k), KeySize)
		}
	}
	kr, err := memberlist.NewKeyring(c.Keys[1:], c.Keys[0])
	if err != nil {
		return nil, fmt.Errorf("gossip: keyring: %w", err)
	}
	conf := serf.DefaultConfig()
	conf.Init()
	conf.NodeName = c.NodeID
	conf.Tags = map[string]string{
		TagRole:    string(c.Role),
		TagAPIPort: strconv.Itoa(c.APIPort),
		TagRPCPort: strconv.Itoa(c.RPCPort),
	}
	conf.EventCh = c.EventCh
	conf.SnapshotPath = c.SnapshotPath
	conf.RejoinAfterLeave = true
	// A failed node is reaped from the member list after a day, like Nomad.
	conf.ReconnectTimeout = 24 * time.Hour
	conf.TombstoneTimeout = 24 * time.Hour
	logw := c.Logger.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true})
	conf.LogOutput = logw
	ml := memberlist.DefaultLANConfig()
	ml.Name = c.NodeID
	ml.BindAddr = c.BindAddr
	ml.BindPort = c.Port
	ml.AdvertiseAddr = c.Advertise
	ml.AdvertisePort = c.Port
	ml.Keyring = kr
	ml.GossipVerifyIncoming = true
	ml.GossipVerifyOutgoing = true
	ml.LogOutput = logw
	conf.MemberlistConfig = ml
	if c.SnapshotPath != "" {
		if err := os.MkdirAll(filepath.Dir(c.SnapshotPath), 0o700); err != nil {
			return nil, fmt.Errorf("gossip: create snapshot dir: %w", err)
		}
	}
	sf, err := serf.Create(conf)
	if err != nil {
		return nil, fmt.Errorf("gossip: start serf on %s:%d: %w", c.BindAddr, c.Port, err)
	}
	return sf, nil
}

// JoinAny keeps trying to join one of addrs in the background until it
// succeeds or ctx ends. A node that already knows members from its snapshot
// is fine without it; the retry covers a cold start of the whole cluster.
func JoinAny(ctx context.Context, sf *serf.Serf, addrs []string, logger hclog.Logger) {
	if len(addrs) == 0 {
		return
	}
	go func() {
		backoff := 500 * time.Millisecond
		for {
			n, err := sf.Join(addrs, true)
			if n > 0 {
				logger.Debug("joined gossip pool", "contacted", n)
				return
			}
			logger.Debug("gossip join failed; retrying", "addrs", addrs, "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 15*time.Second)
		}
	}()
}
