// Package client is the worker agent. For now it holds the node's cluster
// membership: join, gossip, certificate renewal. Running workloads comes
// with the worker issue.
package client

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/serf/serf"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/gossip"
	"github.com/hivesec/hive/identity"
	"github.com/hivesec/hive/structs"
)

// Config configures a worker.
type Config struct {
	DataDir   string
	Advertise string
	BindAddr  string
	Name      string
	SerfPort  int
	Logger    hclog.Logger
}

// Agent is a running worker.
type Agent struct {
	cfg    Config
	logger hclog.Logger
	node   *identity.Node
	certs  *identity.Certs
	serf   *serf.Serf

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

func (c *Config) setDefaults() error {
	if c.DataDir == "" {
		return errors.New("a data dir is required (--data-dir)")
	}
	if c.Advertise == "" {
		return errors.New("an advertise address is required (--advertise)")
	}
	if c.BindAddr == "" {
		c.BindAddr = c.Advertise
	}
	if c.SerfPort == 0 {
		c.SerfPort = structs.DefaultSerfPort
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return nil
}

// StartJoined starts a worker that has just joined (see identity.Join).
func StartJoined(cfg Config, node *identity.Node, certs *identity.Certs, resp *structs.JoinResponse) (*Agent, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if resp.Role != structs.RoleWorker {
		return nil, fmt.Errorf("join: expected a worker token, got a %s token", resp.Role)
	}
	return start(cfg, node, certs, resp.GossipKeys)
}

// Open resumes a worker from its data dir.
func Open(cfg Config) (*Agent, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	node, err := identity.Load(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	certs, err := identity.LoadCerts(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if certs.Expired(time.Now()) {
		return nil, fmt.Errorf("this worker's certificate expired at %s while it was offline; rejoin with `hive join --token <worker token>` and the same data dir to keep its node ID", certs.Leaf().NotAfter.UTC().Format(time.RFC3339))
	}
	node.Address, node.SerfPort = cfg.Advertise, cfg.SerfPort
	a := &Agent{cfg: cfg, logger: cfg.Logger, node: node, certs: certs}
	// The gossip key is never stored on a worker: it asks a manager for it,
	// authenticated by its certificate.
	var keys *structs.GossipKeysResponse
	err = a.withManager(func(c *api.Client) error {
		var err error
		keys, err = c.Nodes().GossipKeys()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fetch gossip keys: %w", err)
	}
	return start(cfg, node, certs, keys.Keys)
}

func start(cfg Config, node *identity.Node, certs *identity.Certs, keys [][]byte) (*Agent, error) {
	ctx, cancel := context.WithCancel(context.Background())
	a := &Agent{cfg: cfg, logger: cfg.Logger, node: node, certs: certs, ctx: ctx, cancel: cancel}
	sf, err := gossip.Start(gossip.Config{
		NodeID: node.ID, Role: structs.RoleWorker, BindAddr: cfg.BindAddr, Advertise: cfg.Advertise,
		Port: cfg.SerfPort, Keys: keys, SnapshotPath: filepath.Join(cfg.DataDir, "serf", "local.snapshot"),
		Logger: cfg.Logger.Named("serf"),
	})
	if err != nil {
		cancel()
		return nil, err
	}
	a.serf = sf
	var addrs []string
	for _, m := range node.Managers {
		addrs = append(addrs, m.SerfAddr)
	}
	gossip.JoinAny(ctx, sf, addrs, a.logger)
	r := &identity.Renewer{Certs: certs, Logger: a.logger.Named("renew"), Renew: func(ctx context.Context, csr []byte) ([]byte, error) {
		var out []byte
		err := a.withManager(func(c *api.Client) error {
			resp, err := c.Nodes().Renew(csr)
			if err == nil {
				out = []byte(resp.CertPEM)
			}
			return err
		})
		return out, err
	}}
	a.wg.Add(1)
	go func() { defer a.wg.Done(); r.Run(ctx) }()
	return a, nil
}

// withManager calls fn with a client for each known manager until one
// answers without a transport error.
func (a *Agent) withManager(fn func(*api.Client) error) error {
	var last error
	for _, m := range a.node.Managers {
		c, err := api.NewClient(&api.Config{Address: m.APIAddr, CACertPEM: a.certs.CAPEM, ClientCert: a.certs.Current(), Timeout: 10 * time.Second})
		if err != nil {
			return err
		}
		err = fn(c)
		var apiErr *api.Error
		if err == nil || errors.As(err, &apiErr) {
			return err
		}
		last = err
	}
	if last == nil {
		last = errors.New("no managers known; rejoin with a join token")
	}
	return last
}

// NodeID is this worker's node ID.
func (a *Agent) NodeID() string { return a.node.ID }

// Done is closed when the agent stops.
func (a *Agent) Done() <-chan struct{} { return a.ctx.Done() }

// Shutdown leaves the gossip pool gracefully and stops the agent.
func (a *Agent) Shutdown() {
	a.once.Do(func() {
		a.cancel()
		if a.serf != nil {
			_ = a.serf.Shutdown()
		}
		a.wg.Wait()
	})
}
