// Package server is the manager agent: Raft over mutual TLS, Serf
// membership, the leader's reconcile loops and the HTTPS API.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/hashicorp/serf/serf"
	"go.etcd.io/bbolt"

	"github.com/hivesec/hive/audit"
	"github.com/hivesec/hive/crypto/keyring"
	"github.com/hivesec/hive/crypto/pki"
	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/identity"
	"github.com/hivesec/hive/lockout"
)

// Paths under the data dir.
const (
	raftDir       = "raft"
	keystoreDir   = "keystore"
	unsealKeyFile = "unseal.key"
	serfSnapshot  = "serf/local.snapshot"
)

// UnsealKeyPath is where a manager keeps the cluster unseal key.
func UnsealKeyPath(dataDir string) string {
	return filepath.Join(dataDir, keystoreDir, unsealKeyFile)
}

// Server is a running manager.
type Server struct {
	cfg    Config
	logger hclog.Logger
	node   *identity.Node
	certs  *identity.Certs

	fsm       *fsm.FSM
	raft      *raft.Raft
	boltStore *raftboltdb.BoltStore
	transport *raft.NetworkTransport
	notifyCh  chan bool

	serfMu     sync.RWMutex
	serf       *serf.Serf
	serfEvents chan serf.Event
	reconcileC chan struct{}

	rpcLn       net.Listener
	mux         *rpcMux
	apiLn       net.Listener
	apiSrv      *http.Server
	internalSrv *http.Server
	forwarder   *http.Client
	internalTLS *tls.Config

	writes chan *pendingWrite

	liveness *liveness

	caMu    sync.Mutex
	ca      *pki.CA
	caIndex uint64

	// Authorization, login throttling, audit and metrics.
	authzCache  authzCache
	logins      *lockout.Limiter
	auditLog    *audit.Writer
	auditPolicy *audit.Policy
	metrics     *metrics

	// Secrets: unwrapped root keys, and the rotator's wake-up.
	roots   rootKeys
	rotateC chan struct{}

	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	shutOnce sync.Once
}

// newServer starts a manager with an identity already on disk (or in hand).
// gossipKeys may be nil: the server then waits for its replicated state to
// carry the sealed keyring before it joins Serf.
func newServer(cfg Config, node *identity.Node, certs *identity.Certs, unsealKey []byte, bootstrap bool, gossipKeys [][]byte) (*Server, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, logger: cfg.Logger, node: node, certs: certs,
		fsm:        fsm.New(cfg.Logger),
		serfEvents: make(chan serf.Event, 256),
		reconcileC: make(chan struct{}, 1),
		writes:     make(chan *pendingWrite, 4096),
		notifyCh:   make(chan bool, 16),
		liveness:   newLiveness(cfg.HeartbeatTTL, cfg.DownGrace),
		logins:     lockout.New(cfg.Login, nil),
		metrics:    newMetrics(),
		rotateC:    make(chan struct{}, 1),
		ctx:        ctx, cancel: cancel,
	}
	if unsealKey != nil {
		s.roots.setUnseal(unsealKey)
	}
	s.metrics.reg.MustRegister(newNetpolCollector(s))
	var err error
	if s.auditLog, s.auditPolicy, err = openAudit(cfg); err != nil {
		cancel()
		return nil, err
	}
	s.internalTLS = pki.InternalClientTLS(certs.Pool, certs.GetClientCertificate, s.verifyPeer)
	if err := s.setupRPC(); err != nil {
		s.Shutdown()
		return nil, err
	}
	if err := s.setupRaft(bootstrap); err != nil {
		s.Shutdown()
		return nil, err
	}
	if err := s.setupAPI(); err != nil {
		s.Shutdown()
		return nil, err
	}
	if err := s.startAdminSocket(); err != nil {
		s.Shutdown()
		return nil, err
	}
	s.wg.Add(4)
	go func() { defer s.wg.Done(); s.watchUnseal() }()
	go func() { defer s.wg.Done(); s.batchWrites() }()
	go func() { defer s.wg.Done(); s.monitorLeadership() }()
	go func() { defer s.wg.Done(); s.startSerfWhenReady(gossipKeys) }()
	return s, nil
}

func (s *Server) setupRPC() error {
	addr := net.JoinHostPort(s.cfg.BindAddr, strconv.Itoa(s.cfg.RPCPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for raft and rpc on %s: %w", addr, err)
	}
	s.rpcLn = ln
	adv := &net.TCPAddr{IP: net.ParseIP(s.cfg.Advertise), Port: s.cfg.RPCPort}
	s.mux = &rpcMux{
		ln:        ln,
		serverTLS: pki.InternalServerTLS(s.certs.Pool, s.certs.GetCertificate, s.verifyPeer),
		raft:      newChanListener(adv),
		http:      newChanListener(adv),
		logger:    s.logger.Named("rpc"),
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.mux.serve() }()
	return nil
}

func (s *Server) setupRaft(bootstrap bool) error {
	dir := filepath.Join(s.cfg.DataDir, raftDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create raft dir: %w", err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(dir, "raft.db"),
		// The freelist is rebuilt when the file is opened, so not syncing it
		// on every commit is safe and halves the pages each fsync writes
		// (Consul runs the same setting).
		BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
	})
	if err != nil {
		return fmt.Errorf("open raft log store: %w", err)
	}
	s.boltStore = store
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, s.logger.Named("raft"))
	if err != nil {
		return fmt.Errorf("open raft snapshot store: %w", err)
	}
	layer := &raftLayer{chanListener: s.mux.raft, clientTLS: s.internalTLS}
	s.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: layer, MaxPool: 3, Timeout: 10 * time.Second, Logger: s.logger.Named("raft-net"),
	})
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.node.ID)
	rc.Logger = s.logger.Named("raft")
	rc.NotifyCh = s.notifyCh
	// Raft's own batching: applies queued while a disk write runs go into
	// the next write together (one fsync for many entries).
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	if s.cfg.RaftHeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = s.cfg.RaftHeartbeatTimeout
	}
	if s.cfg.RaftElectionTimeout > 0 {
		rc.ElectionTimeout = s.cfg.RaftElectionTimeout
	}
	if s.cfg.RaftLeaderLease > 0 {
		rc.LeaderLeaseTimeout = s.cfg.RaftLeaderLease
	}
	if bootstrap {
		has, err := raft.HasExistingState(store, store, snaps)
		if err != nil {
			return fmt.Errorf("check raft state: %w", err)
		}
		if !has {
			cfg := raft.Configuration{Servers: []raft.Server{{
				Suffrage: raft.Voter, ID: rc.LocalID, Address: raft.ServerAddress(s.node.RPCAddr()),
			}}}
			if err := raft.BootstrapCluster(rc, store, store, snaps, s.transport, cfg); err != nil {
				return fmt.Errorf("bootstrap raft: %w", err)
			}
		}
	}
	// Recent entries stay in memory: the leader reads each new entry back
	// to send it to every follower, and a follower reads each committed
	// entry back to apply it. Without the cache every such read is a bolt
	// read transaction and a msgpack decode (Consul and Nomad cache the same
	// way). The cache is write-through: it holds only entries already stored.
	const raftLogCacheSize = 512
	logs, err := raft.NewLogCache(raftLogCacheSize, store)
	if err != nil {
		return fmt.Errorf("create raft log cache: %w", err)
	}
	r, err := raft.NewRaft(rc, s.fsm, logs, store, snaps, s.transport)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	s.raft = r
	return nil
}

// Shutdown stops the manager; it is safe to call more than once.
func (s *Server) Shutdown() {
	s.shutOnce.Do(func() {
		s.cancel()
		s.serfMu.RLock()
		sf := s.serf
		s.serfMu.RUnlock()
		if sf != nil {
			_ = sf.Shutdown()
		}
		if s.apiSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = s.apiSrv.Shutdown(ctx)
			cancel()
		}
		if s.internalSrv != nil {
			_ = s.internalSrv.Close()
		}
		if s.raft != nil {
			_ = s.raft.Shutdown().Error()
		}
		if s.transport != nil {
			_ = s.transport.Close()
		}
		if s.rpcLn != nil {
			_ = s.rpcLn.Close()
		}
		if s.mux != nil {
			_ = s.mux.raft.Close()
			_ = s.mux.http.Close()
		}
		if s.auditLog != nil {
			if err := s.auditLog.Close(); err != nil {
				s.logger.Error("closing audit log", "error", err)
			}
		}
		if s.boltStore != nil {
			_ = s.boltStore.Close()
		}
		s.wg.Wait()
	})
}

// Done is closed when the server shuts down.
func (s *Server) Done() <-chan struct{} { return s.ctx.Done() }

// NodeID is this manager's node ID.
func (s *Server) NodeID() string { return s.node.ID }

// IsLeader reports whether this manager leads the Raft cluster.
func (s *Server) IsLeader() bool { return s.raft.State() == raft.Leader }

// APIAddr is the address the API listens on (useful with port 0 in tests).
func (s *Server) APIAddr() string { return s.apiLn.Addr().String() }

// verifyPeer runs on every TLS handshake, on every port: it refuses
// certificates on the deny list.
func (s *Server) verifyPeer(cert *x509.Certificate) error {
	serial := pki.SerialHex(cert)
	rec := s.fsm.State().Snapshot().IssuedCert(nil, serial)
	if rec != nil && rec.Revoked {
		return fmt.Errorf("certificate %s of node %s was revoked at %s (the node was removed; rejoin it with a join token)", serial, rec.NodeID, rec.RevokedAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// unsealCA returns the CA with its private key, unsealing it from the
// replicated cluster config when that changed.
func (s *Server) unsealCA() (*pki.CA, error) {
	c := s.fsm.State().Snapshot().Cluster(nil)
	if c == nil {
		return nil, errors.New("cluster is not initialised yet")
	}
	s.caMu.Lock()
	defer s.caMu.Unlock()
	if s.ca != nil && s.caIndex == c.ModifyIndex {
		return s.ca, nil
	}
	unseal := s.roots.unsealKey()
	if unseal == nil {
		return nil, ErrKeyringSealed
	}
	keyDER, err := keyring.Open(unseal, c.CAKeySealed, caKeyAAD(c.ClusterID))
	if err != nil {
		return nil, fmt.Errorf("unseal CA key: %w", err)
	}
	ca, err := pki.LoadCA(c.CACertPEM, keyDER)
	if err != nil {
		return nil, err
	}
	s.ca, s.caIndex = ca, c.ModifyIndex
	return ca, nil
}

func caKeyAAD(clusterID string) []byte     { return []byte("hive/ca-key/" + clusterID) }
func gossipKeyAAD(clusterID string) []byte { return []byte("hive/gossip-keys/" + clusterID) }
