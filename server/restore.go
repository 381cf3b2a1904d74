package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/hivesec/hive/crypto/keyring"
	"github.com/hivesec/hive/crypto/pki"
	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/identity"
	"github.com/hivesec/hive/snapshot"
	"github.com/hivesec/hive/structs"
)

// Disaster recovery: a fresh manager rebuilds a lost cluster from a
// snapshot file. The snapshot holds the CA key, the gossip keyring and the
// secrets root keys only sealed by the old cluster's unseal key, which is
// in no snapshot: without it a snapshot is useless to whoever holds it, and
// the restore refuses. With it, the new manager becomes a member of the
// same cluster (same ID, same CA, same tokens and secrets) and the first of
// its new managers; the old managers are removed and their certificates
// revoked, while the old workers stay listed (they rejoin with a token).

// ErrUnsealKeyRequired is returned for a restore without the unseal key.
var ErrUnsealKeyRequired = errors.New("restoring a snapshot into a new cluster needs the unseal key of the cluster it came from (its unlock key, or the contents of a manager's keystore/unseal.key): give it with --unlock-key-file")

// InitFromSnapshot starts a new first manager in cfg.DataDir holding the
// state of the snapshot file at path, whose keys unsealKey must open.
func InitFromSnapshot(cfg Config, path string, unsealKey []byte) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if _, err := identity.Load(cfg.DataDir); err == nil {
		return nil, fmt.Errorf("data dir %s already holds a node; restore into an empty data dir", cfg.DataDir)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, raftDir)); err == nil {
		return nil, fmt.Errorf("data dir %s holds raft state; restore into an empty data dir", cfg.DataDir)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open snapshot: %w", err)
	}
	defer f.Close()
	a, err := snapshot.Open(f)
	if err != nil {
		return nil, fmt.Errorf("snapshot refused: %w", err)
	}
	_, cluster, err := a.Counts()
	if err != nil {
		return nil, fmt.Errorf("snapshot refused: %w", err)
	}
	if cluster == nil {
		return nil, errors.New("snapshot refused: it holds no cluster configuration")
	}
	if len(unsealKey) == 0 {
		return nil, ErrUnsealKeyRequired
	}
	keyDER, err := keyring.Open(unsealKey, cluster.CAKeySealed, caKeyAAD(cluster.ClusterID))
	if err != nil {
		return nil, fmt.Errorf("that is not the unseal key of cluster %s, whose snapshot this is: %w", cluster.ClusterID, err)
	}
	ca, err := pki.LoadCA(cluster.CACertPEM, keyDER)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if !cluster.Autolock {
		if err := keyring.WriteKeyFile(UnsealKeyPath(cfg.DataDir), unsealKey); err != nil {
			return nil, err
		}
	}
	now := time.Now().UTC()
	nodeID := uuid.NewString()
	key, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	csr, err := pki.NewCSR(key, cfg.Name)
	if err != nil {
		return nil, err
	}
	certPEM, cert, err := ca.SignCSR(csr, nodeID, structs.RoleManager, []net.IP{net.ParseIP(cfg.Advertise)}, cfg.CertLifetime, now)
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return nil, err
	}
	certs, err := identity.SaveCerts(cfg.DataDir, certPEM, keyPEM, ca.CertPEM)
	if err != nil {
		return nil, err
	}
	node := &identity.Node{
		ID: nodeID, Role: structs.RoleManager, ClusterID: cluster.ClusterID, Name: cfg.Name,
		Address: cfg.Advertise, APIPort: cfg.APIPort, RPCPort: cfg.RPCPort, SerfPort: cfg.SerfPort,
	}
	s, err := newServer(cfg, node, certs, unsealKey, true, nil)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Server, error) {
		s.Shutdown()
		return nil, err
	}
	if err := s.waitLeader(bootstrapWaitTime); err != nil {
		return fail(err)
	}
	if err := s.raft.Restore(&a.Meta, a.Data(), time.Minute); err != nil {
		return fail(fmt.Errorf("restore: %w", err))
	}
	// Register this manager with the restored state's manager join token,
	// as a joining manager would be.
	var tokID string
	for _, t := range s.fsm.State().Snapshot().JoinTokens(nil) {
		if t.Role == structs.RoleManager && t.Usable(now) == nil {
			tokID = t.ID
			if t.Default {
				break
			}
		}
	}
	if tokID == "" {
		return fail(errors.New("the snapshot has no usable manager join token to register this manager with"))
	}
	reg := &fsm.NodeRegisterRequest{TokenID: tokID, Now: now,
		Node: structs.Node{ID: nodeID, Name: cfg.Name, Role: structs.RoleManager, Address: cfg.Advertise,
			APIPort: cfg.APIPort, RPCPort: cfg.RPCPort, SerfPort: cfg.SerfPort, Status: structs.NodeStatusReady,
			CertSerial: pki.SerialHex(cert), CertExpiry: cert.NotAfter, JoinedAt: now, UpdatedAt: now},
		Cert: structs.IssuedCert{Serial: pki.SerialHex(cert), NodeID: nodeID, Role: structs.RoleManager, NotAfter: cert.NotAfter, IssuedAt: now},
	}
	if _, err := s.apply(fsm.NodeRegisterType, reg); err != nil {
		return fail(fmt.Errorf("register this manager: %w", err))
	}
	// The old managers are gone (or must be treated as gone): remove them
	// and revoke their certificates, so that one still running can never
	// gossip its way back into this cluster's Raft configuration.
	for _, n := range s.fsm.State().Snapshot().Nodes(nil) {
		if n.Role != structs.RoleManager || n.ID == nodeID {
			continue
		}
		if _, err := s.apply(fsm.NodeRemoveType, &fsm.NodeRemoveRequest{NodeID: n.ID, Now: now}); err != nil {
			return fail(fmt.Errorf("remove old manager %s: %w", n.ID, err))
		}
	}
	s.raiseEvent(now, structs.EventSnapshotRestored, a.Meta.ID, fmt.Sprintf("cluster %s rebuilt from snapshot %s (index %d) on new manager %s", cluster.ClusterID, a.Meta.ID, a.Meta.Index, nodeID))
	if err := node.Save(cfg.DataDir); err != nil {
		return fail(err)
	}
	s.startRenewer()
	return s, nil
}
