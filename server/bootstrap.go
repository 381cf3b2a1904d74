package server

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/hivesec/hive/api"

	"github.com/hivesec/hive/crypto/keyring"
	"github.com/hivesec/hive/crypto/pki"
	"github.com/hivesec/hive/crypto/token"
	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/gossip"
	"github.com/hivesec/hive/identity"
	"github.com/hivesec/hive/structs"
)

// Bootstrap holds the secrets `hive init` shows once.
type Bootstrap struct {
	ClusterID    string
	AdminToken   string
	WorkerToken  string
	ManagerToken string
	CACertPEM    []byte
	// Dir is where the same secrets were written (mode 0600).
	Dir string
	// UnlockKey is the unseal key of an autolocked cluster, shown once and
	// written nowhere.
	UnlockKey string
}

// Bootstrap file names under <data-dir>/bootstrap.
const (
	BootstrapDir      = "bootstrap"
	AdminTokenFile    = "admin.token"
	WorkerTokenFile   = "worker.token"
	ManagerTokenFile  = "manager.token"
	BootstrapCAFile   = "ca.pem"
	bootstrapWaitTime = 30 * time.Second
)

// Init creates a new cluster with this node as its first manager, or resumes
// the node if the data dir already holds one (then Bootstrap is nil).
func Init(cfg Config) (*Server, *Bootstrap, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, nil, err
	}
	if _, err := identity.Load(cfg.DataDir); err == nil {
		s, err := Open(cfg)
		return s, nil, err
	} else if !errors.Is(err, identity.ErrNoIdentity) {
		return nil, nil, err
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, raftDir)); err == nil {
		return nil, nil, fmt.Errorf("data dir %s holds an interrupted init (raft state but no node identity); remove it and run hive init again", cfg.DataDir)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create data dir: %w", err)
	}
	now := time.Now().UTC()
	clusterID, nodeID := uuid.NewString(), uuid.NewString()
	ca, err := pki.NewCA(clusterID, now)
	if err != nil {
		return nil, nil, err
	}
	unsealKey, err := keyring.NewKey()
	if err != nil {
		return nil, nil, err
	}
	if !cfg.Autolock {
		if err := keyring.WriteKeyFile(UnsealKeyPath(cfg.DataDir), unsealKey); err != nil {
			return nil, nil, err
		}
	}
	key, err := pki.NewKey()
	if err != nil {
		return nil, nil, err
	}
	csr, err := pki.NewCSR(key, cfg.Name)
	if err != nil {
		return nil, nil, err
	}
	certPEM, cert, err := ca.SignCSR(csr, nodeID, structs.RoleManager, []net.IP{net.ParseIP(cfg.Advertise)}, cfg.CertLifetime, now)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	certs, err := identity.SaveCerts(cfg.DataDir, certPEM, keyPEM, ca.CertPEM)
	if err != nil {
		return nil, nil, err
	}
	caKeyDER, err := ca.KeyDER()
	if err != nil {
		return nil, nil, err
	}
	caSealed, err := keyring.Seal(unsealKey, caKeyDER, caKeyAAD(clusterID))
	if err != nil {
		return nil, nil, err
	}
	gossipKey := make([]byte, gossip.KeySize)
	if _, err := rand.Read(gossipKey); err != nil {
		return nil, nil, err
	}
	gossipSealed, err := sealGossipKeys(unsealKey, clusterID, [][]byte{gossipKey})
	if err != nil {
		return nil, nil, err
	}
	workerTok, workerSecret, err := makeJoinToken(ca.Pin(), structs.RoleWorker, 0, 0, "default worker join token", true, now)
	if err != nil {
		return nil, nil, err
	}
	managerTok, managerSecret, err := makeJoinToken(ca.Pin(), structs.RoleManager, 0, 0, "default manager join token", true, now)
	if err != nil {
		return nil, nil, err
	}
	adminSecret, err := token.New("admin")
	if err != nil {
		return nil, nil, err
	}
	var acc [8]byte
	if _, err := rand.Read(acc[:]); err != nil {
		return nil, nil, err
	}
	admin := structs.ACLToken{
		AccessorID: hex.EncodeToString(acc[:]), Name: "bootstrap admin", Kind: structs.ACLTokenKindManagement,
		SecretHash: hex.EncodeToString(token.Hash(adminSecret)), CreatedAt: now,
	}
	node := &identity.Node{
		ID: nodeID, Role: structs.RoleManager, ClusterID: clusterID, Name: cfg.Name,
		Address: cfg.Advertise, APIPort: cfg.APIPort, RPCPort: cfg.RPCPort, SerfPort: cfg.SerfPort,
	}
	s, err := newServer(cfg, node, certs, unsealKey, true, [][]byte{gossipKey})
	if err != nil {
		return nil, nil, err
	}
	if err := s.waitLeader(bootstrapWaitTime); err != nil {
		s.Shutdown()
		return nil, nil, err
	}
	req := &fsm.ClusterBootstrapRequest{
		Cluster: structs.ClusterConfig{ClusterID: clusterID, CACertPEM: ca.CertPEM, CAKeySealed: caSealed, GossipKeysSealed: gossipSealed, Autolock: cfg.Autolock,
			ClusterCIDR: cfg.ClusterCIDR, SubnetBits: cfg.SubnetBits, CreatedAt: now},
		Node: structs.Node{
			ID: nodeID, Name: cfg.Name, Role: structs.RoleManager, Address: cfg.Advertise,
			APIPort: cfg.APIPort, RPCPort: cfg.RPCPort, SerfPort: cfg.SerfPort, Status: structs.NodeStatusReady,
			CertSerial: pki.SerialHex(cert), CertExpiry: cert.NotAfter, JoinedAt: now, UpdatedAt: now,
		},
		Cert:       structs.IssuedCert{Serial: pki.SerialHex(cert), NodeID: nodeID, Role: structs.RoleManager, NotAfter: cert.NotAfter, IssuedAt: now},
		JoinTokens: []structs.JoinToken{*workerTok, *managerTok},
		ACLTokens:  []structs.ACLToken{admin},
		Now:        now,
	}
	if _, err := s.apply(fsm.ClusterBootstrapType, req); err != nil {
		s.Shutdown()
		return nil, nil, fmt.Errorf("bootstrap cluster state: %w", err)
	}
	b := &Bootstrap{
		ClusterID: clusterID, AdminToken: adminSecret, CACertPEM: ca.CertPEM,
		WorkerToken:  workerSecret,
		ManagerToken: managerSecret,
		Dir:          filepath.Join(cfg.DataDir, BootstrapDir),
	}
	if cfg.Autolock {
		b.UnlockKey = EncodeUnlockKey(unsealKey)
	}
	if err := b.write(); err != nil {
		s.Shutdown()
		return nil, nil, err
	}
	// The identity is written last: its presence means init completed.
	if err := node.Save(cfg.DataDir); err != nil {
		s.Shutdown()
		return nil, nil, err
	}
	s.startRenewer()
	return s, b, nil
}

func (b *Bootstrap) write() error {
	for name, v := range map[string][]byte{
		AdminTokenFile:   []byte(b.AdminToken + "\n"),
		WorkerTokenFile:  []byte(b.WorkerToken + "\n"),
		ManagerTokenFile: []byte(b.ManagerToken + "\n"),
		BootstrapCAFile:  b.CACertPEM,
	} {
		if err := identity.WriteFileAtomic(filepath.Join(b.Dir, name), v, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Open resumes a manager from its data dir.
func Open(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	node, err := identity.Load(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if node.Role != structs.RoleManager {
		return nil, fmt.Errorf("data dir %s belongs to a %s, not a manager", cfg.DataDir, node.Role)
	}
	certs, err := identity.LoadCerts(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	unsealKey, err := loadUnsealKey(cfg)
	if err != nil {
		return nil, err
	}
	if certs.Expired(time.Now()) {
		return nil, fmt.Errorf("this manager's certificate expired at %s while it was offline; rejoin with `hive join --token <manager token>` and the same data dir to keep its node ID", certs.Leaf().NotAfter.UTC().Format(time.RFC3339))
	}
	// The advertised address may change between runs; the flags win.
	node.Address, node.APIPort, node.RPCPort, node.SerfPort = cfg.Advertise, cfg.APIPort, cfg.RPCPort, cfg.SerfPort
	if cfg.Name != "" {
		node.Name = cfg.Name
	}
	s, err := newServer(cfg, node, certs, unsealKey, false, nil)
	if err != nil {
		return nil, err
	}
	s.startRenewer()
	return s, nil
}

// StartJoined starts a manager that has just joined (see identity.Join):
// it keeps the unseal key it was given and joins gossip with the keys from
// the join answer.
func StartJoined(cfg Config, node *identity.Node, certs *identity.Certs, resp *structs.JoinResponse) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if resp.Role != structs.RoleManager {
		return nil, fmt.Errorf("join: the token is for %s nodes, not managers", resp.Role)
	}
	if len(resp.UnsealKey) != keyring.KeySize {
		return nil, fmt.Errorf("join: the leader sent no usable unseal key")
	}
	if !resp.Autolock {
		if err := keyring.WriteKeyFile(UnsealKeyPath(cfg.DataDir), resp.UnsealKey); err != nil {
			return nil, err
		}
	}
	s, err := newServer(cfg, node, certs, resp.UnsealKey, false, resp.GossipKeys)
	if err != nil {
		return nil, err
	}
	s.startRenewer()
	return s, nil
}

func (s *Server) waitLeader(timeout time.Duration) error {
	deadline := time.After(timeout)
	for !s.IsLeader() {
		select {
		case <-deadline:
			return fmt.Errorf("raft did not elect this node leader within %s", timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// startRenewer renews this manager's certificate through the API like any
// node, so the leader records the new serial in Raft.
func (s *Server) startRenewer() {
	r := &identity.Renewer{
		Certs:  s.certs,
		Logger: s.logger.Named("renew"),
		Renew: func(ctx context.Context, csr []byte) ([]byte, error) {
			c, err := api.NewClient(&api.Config{Address: s.node.APIAddr(), CACertPEM: s.certs.CAPEM, ClientCert: s.certs.Current()})
			if err != nil {
				return nil, err
			}
			resp, err := c.Nodes().Renew(csr)
			if err != nil {
				return nil, err
			}
			return []byte(resp.CertPEM), nil
		},
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); r.Run(s.ctx) }()
}

// loadUnsealKey finds a resuming manager's unseal key: its keystore file,
// else the unlock key file it was started with. With neither (an
// autolocked cluster) the manager starts locked and waits for
// `hive operator unlock`.
func loadUnsealKey(cfg Config) ([]byte, error) {
	key, err := keyring.ReadKeyFile(UnsealKeyPath(cfg.DataDir))
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("manager unseal key: %w", err)
	}
	if cfg.UnlockKeyFile == "" {
		cfg.Logger.Warn("no unseal key on disk: this manager is locked; it serves no secrets and signs no certificates until `hive operator unlock`")
		return nil, nil
	}
	raw, err := os.ReadFile(cfg.UnlockKeyFile)
	if err != nil {
		return nil, fmt.Errorf("reading unlock key file: %w", err)
	}
	return DecodeUnlockKey(strings.TrimSpace(string(raw)))
}

// unlockPrefix marks an unlock key, so a pasted one is recognised.
const unlockPrefix = "HIVEUNLOCK1-"

// EncodeUnlockKey renders an unseal key for an operator to keep.
func EncodeUnlockKey(key []byte) string {
	return unlockPrefix + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(key)
}

// DecodeUnlockKey parses an unlock key.
func DecodeUnlockKey(s string) ([]byte, error) {
	body, ok := strings.CutPrefix(strings.TrimSpace(s), unlockPrefix)
	if !ok {
		return nil, fmt.Errorf("an unlock key starts with %s", unlockPrefix)
	}
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(body)
	if err != nil || len(key) != keyring.KeySize {
		return nil, fmt.Errorf("the unlock key is malformed: it should be %s followed by %d base32 characters", unlockPrefix, base32.StdEncoding.WithPadding(base32.NoPadding).EncodedLen(keyring.KeySize))
	}
	return key, nil
}
