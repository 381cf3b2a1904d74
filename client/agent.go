// Package client is the worker agent: it joins the cluster (gossip,
// certificate renewal), fingerprints and registers the node, heartbeats,
// watches the allocations placed on it and runs them as containers through
// the driver (client/driver), re-attaching to running containers after a
// restart, and serves managers the node's logs and images over mTLS.
package client

import (
	"context"
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
	"github.com/hashicorp/serf/serf"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/client/driver"
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
	// RPCPort is the worker's own mTLS endpoint (logs, images), called by
	// managers only. Zero means the port the node joined with, else
	// structs.DefaultRPCPort. Managers call the port recorded at join.
	RPCPort int
	// ContainerdAddress is containerd's socket; default
	// driver.DefaultAddress. If nothing answers there the agent starts its
	// own containerd under <DataDir>/containerd and stops it on Shutdown.
	ContainerdAddress string
	// Labels are operator labels reported with the fingerprint.
	Labels map[string]string
	// AllocDir holds each allocation's files (logs); default
	// <DataDir>/allocs.
	AllocDir string
	// Network turns on the dataplane: a network namespace and address
	// per allocation, the WireGuard mesh to the other workers and network
	// policy in table inet hive (`hive agent` turns it on unless
	// --network=false). Off, tasks get containerd's default: loopback only.
	Network bool
	// WireGuardPort is the mesh's UDP port; default
	// structs.DefaultWireGuardPort.
	WireGuardPort int
	Logger        hclog.Logger
}

// Agent is a running worker.
type Agent struct {
	cfg    Config
	logger hclog.Logger
	node   *identity.Node
	certs  *identity.Certs
	serf   *serf.Serf

	driver         driver.Driver
	closeDriver    func()
	stopContainerd func()
	allocs         *allocManager
	updates        *updater
	net            *dataplane
	httpSrv        *http.Server
	clientsMu      sync.Mutex
	clients        map[string]cachedClient

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
	if c.ContainerdAddress == "" {
		c.ContainerdAddress = driver.DefaultAddress
	}
	if c.AllocDir == "" {
		c.AllocDir = filepath.Join(c.DataDir, "allocs")
	}
	abs, err := filepath.Abs(c.AllocDir)
	if err != nil {
		return fmt.Errorf("alloc dir: %w", err)
	}
	c.AllocDir = abs
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

// Open resumes a worker from its data dir. Containers that kept running
// while the agent was down are re-attached, not restarted.
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
	a := &Agent{cfg: cfg, logger: cfg.Logger, node: node, certs: certs, clients: map[string]cachedClient{}}
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

func start(cfg Config, node *identity.Node, certs *identity.Certs, keys [][]byte) (_ *Agent, err error) {
	if cfg.RPCPort == 0 {
		cfg.RPCPort = node.RPCPort
	}
	if cfg.RPCPort == 0 {
		cfg.RPCPort = structs.DefaultRPCPort
	}
	log := cfg.Logger
	if node.RPCPort != 0 && node.RPCPort != cfg.RPCPort {
		log.Warn("the RPC port differs from the one this node joined with; managers will call the joined port for logs and images",
			"rpc_port", cfg.RPCPort, "joined_rpc_port", node.RPCPort)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Agent{cfg: cfg, logger: log, node: node, certs: certs, ctx: ctx, cancel: cancel,
		clients: map[string]cachedClient{}}
	// Undo what was started if a later step fails.
	defer func() {
		if err != nil {
			a.Shutdown()
		}
	}()
	if err := os.MkdirAll(cfg.AllocDir, 0o711); err != nil {
		return nil, fmt.Errorf("create alloc dir: %w", err)
	}

	sctx, scancel := context.WithTimeout(ctx, time.Minute)
	addr, stop, err := driver.EnsureContainerd(sctx, driver.Options{
		Address: cfg.ContainerdAddress, DataDir: filepath.Join(cfg.DataDir, "containerd"), Logger: log,
	})
	if err != nil {
		scancel()
		return nil, err
	}
	a.stopContainerd = stop
	d, err := driver.New(sctx, driver.Config{Address: addr, Logger: log})
	scancel()
	if err != nil {
		return nil, err
	}
	a.driver, a.closeDriver = d, func() { _ = d.Close() }

	if err := a.listen(); err != nil {
		return nil, err
	}

	sf, err := gossip.Start(gossip.Config{
		NodeID: node.ID, Role: structs.RoleWorker, BindAddr: cfg.BindAddr, Advertise: cfg.Advertise,
		Port: cfg.SerfPort, RPCPort: cfg.RPCPort, Keys: keys, SnapshotPath: filepath.Join(cfg.DataDir, "serf", "local.snapshot"),
		Logger: log.Named("serf"),
	})
	if err != nil {
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
	a.goRun(r.Run)

	if cfg.Network {
		port := cfg.WireGuardPort
		if port == 0 {
			port = structs.DefaultWireGuardPort
		}
		if a.net, err = newDataplane(a, port); err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
		a.net.onDenied = a.reportDenied
	}
	a.updates = newUpdater(func(ctx context.Context, ups []structs.AllocUpdate) error {
		return a.withManagerCtx(ctx, func(c *api.Client) error { return c.NodeAgent().UpdateAllocs(ctx, ups) })
	}, log.Named("updates"))
	a.allocs = newAllocManager(ctx, &runnerConfig{
		driver: a.driver, allocDir: cfg.AllocDir, nodeID: node.ID, logger: log.Named("alloc"),
		killTimeout: defaultKillTimeout, report: a.updates.push, now: time.Now,
		secrets: managerSecrets{a}, mounter: tmpfsMounter{}, helper: selfPath(log),
	})
	if a.net != nil {
		a.allocs.cfg.network = a.net
		a.goRun(a.net.run)
		a.goRun(a.net.runDenyLog)
	}
	a.goRun(a.updates.run)
	a.goRun(a.registerAndHeartbeat)
	a.goRun(a.watchAllocs)
	log.Info("worker agent started", "node_id", node.ID, "rpc", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.RPCPort)), "containerd", addr)
	return a, nil
}

// reportDenied hands denied flows to the managers as security events,
// once: they are a sample, and the next period brings fresh ones.
func (a *Agent) reportDenied(flows []structs.DeniedFlow) {
	a.goRun(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := a.withManagerCtx(ctx, func(c *api.Client) error { return c.NodeAgent().ReportDenied(ctx, flows) })
		if err != nil && ctx.Err() == nil {
			a.logger.Warn("cannot report denied flows to the managers", "flows", len(flows), "error", err)
		}
	})
}

// selfPath is the hive binary's own path, bind-mounted into containers
// that take secrets as environment variables; "" when it cannot be found
// (such tasks then fail with the reason).
func selfPath(log hclog.Logger) string {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		log.Warn("cannot find the hive binary; tasks with env secrets will fail", "error", err)
		return ""
	}
	return exe
}

func (a *Agent) goRun(fn func(context.Context)) {
	a.wg.Add(1)
	go func() { defer a.wg.Done(); fn(a.ctx) }()
}

// NodeID is this worker's node ID.
func (a *Agent) NodeID() string { return a.node.ID }

// Done is closed when the agent stops.
func (a *Agent) Done() <-chan struct{} { return a.ctx.Done() }

// Shutdown stops the agent: it leaves gossip, stops watching and
// reporting, and stops the containerd it started, but leaves containers
// running; the next start re-attaches to them.
func (a *Agent) Shutdown() {
	a.once.Do(func() {
		a.cancel()
		if a.httpSrv != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := a.httpSrv.Shutdown(sctx); err != nil {
				_ = a.httpSrv.Close()
			}
			cancel()
		}
		if a.serf != nil {
			_ = a.serf.Shutdown()
		}
		a.wg.Wait()
		if a.allocs != nil {
			wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			a.allocs.wait(wctx)
			cancel()
		}
		if a.net != nil {
			a.net.close()
		}
		if a.closeDriver != nil {
			a.closeDriver()
		}
		if a.stopContainerd != nil {
			a.stopContainerd()
		}
		a.logger.Info("worker agent stopped")
	})
}
