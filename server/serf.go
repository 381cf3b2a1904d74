package server

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/hivesec/hive/crypto/keyring"
	"github.com/hivesec/hive/gossip"
)

// startSerfWhenReady joins the gossip pool once the keyring is known. A
// restarted manager reads it from its replicated state, which fills in as
// soon as Raft catches up, so it never keeps the key on disk in the clear.
func (s *Server) startSerfWhenReady(keys [][]byte) {
	for keys == nil {
		var err error
		keys, err = s.gossipKeys()
		if err == nil {
			break
		}
		s.logger.Debug("waiting for replicated state before joining gossip", "reason", err)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
	sf, err := gossip.Start(gossip.Config{
		NodeID: s.node.ID, Role: s.node.Role, BindAddr: s.cfg.BindAddr, Advertise: s.cfg.Advertise,
		Port: s.cfg.SerfPort, APIPort: s.cfg.APIPort, RPCPort: s.cfg.RPCPort,
		Keys: keys, SnapshotPath: filepath.Join(s.cfg.DataDir, serfSnapshot),
		EventCh: s.serfEvents, Logger: s.logger.Named("serf"),
	})
	if err != nil {
		s.logger.Error("cannot start gossip; membership and failure detection are off", "error", err)
		return
	}
	s.serfMu.Lock()
	s.serf = sf
	s.serfMu.Unlock()
	var addrs []string
	for _, m := range s.node.Managers {
		if m.ID != s.node.ID && m.SerfAddr != "" {
			addrs = append(addrs, m.SerfAddr)
		}
	}
	for _, n := range s.fsm.State().Snapshot().Nodes(nil) {
		if n.ID != s.node.ID && n.Role == "manager" {
			addrs = append(addrs, n.SerfAddr())
		}
	}
	gossip.JoinAny(s.ctx, sf, addrs, s.logger)
	for {
		select {
		case <-s.ctx.Done():
			return
		case ev := <-s.serfEvents:
			if _, ok := ev.(serf.MemberEvent); ok {
				s.triggerReconcile()
			}
		}
	}
}

func (s *Server) getSerf() *serf.Serf {
	s.serfMu.RLock()
	defer s.serfMu.RUnlock()
	return s.serf
}

// gossipKeys unseals the Serf keyring from the replicated cluster config.
func (s *Server) gossipKeys() ([][]byte, error) {
	c := s.fsm.State().Snapshot().Cluster(nil)
	if c == nil {
		return nil, fmt.Errorf("cluster config not replicated yet")
	}
	unseal := s.roots.unsealKey()
	if unseal == nil {
		return nil, ErrKeyringSealed
	}
	plain, err := keyring.Open(unseal, c.GossipKeysSealed, gossipKeyAAD(c.ClusterID))
	if err != nil {
		return nil, fmt.Errorf("unseal gossip keys: %w", err)
	}
	var keys [][]byte
	if err := json.Unmarshal(plain, &keys); err != nil {
		return nil, fmt.Errorf("decode gossip keys: %w", err)
	}
	return keys, nil
}

func sealGossipKeys(unsealKey []byte, clusterID string, keys [][]byte) ([]byte, error) {
	plain, err := json.Marshal(keys)
	if err != nil {
		return nil, fmt.Errorf("encode gossip keys: %w", err)
	}
	return keyring.Seal(unsealKey, plain, gossipKeyAAD(clusterID))
}

func (s *Server) triggerReconcile() {
	select {
	case s.reconcileC <- struct{}{}:
	default:
	}
}

// encodeKey is the form Serf's key manager takes keys in.
func encodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }
