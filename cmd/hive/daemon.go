package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/hivesec/hive/client"
	"github.com/hivesec/hive/client/driver"
	"github.com/hivesec/hive/identity"
	"github.com/hivesec/hive/server"
	"github.com/hivesec/hive/structs"
)

// daemonFlags are shared by init and join.
type daemonFlags struct {
	dataDir      string
	advertise    string
	bind         string
	name         string
	apiPort      int
	rpcPort      int
	serfPort     int
	logLevel     string
	logJSON      bool
	certLifetime time.Duration

	// Managers: worker liveness.
	heartbeatTTL time.Duration
	downGrace    time.Duration

	// Workers.
	labels            []string
	containerdAddress string
	allocDir          string
}

func (f *daemonFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", "", "directory for this node's state (Raft log, certificates, keys); required")
	fl.StringVar(&f.advertise, "advertise", "", "IP address other nodes reach this node at; required")
	fl.StringVar(&f.bind, "bind", "", "IP address to listen on (default: the advertise address)")
	fl.StringVar(&f.name, "name", "", "node name shown in listings (default: the host name)")
	fl.IntVar(&f.apiPort, "api-port", structs.DefaultAPIPort, "HTTPS API port (managers)")
	fl.IntVar(&f.rpcPort, "rpc-port", structs.DefaultRPCPort, "Raft and node-to-node mTLS port (managers)")
	fl.IntVar(&f.serfPort, "serf-port", structs.DefaultSerfPort, "Serf gossip port, TCP and UDP")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fl.BoolVar(&f.logJSON, "log-json", false, "write logs as JSON lines")
	fl.DurationVar(&f.certLifetime, "cert-lifetime", server.DefaultCertLifetime, "lifetime of node certificates this manager signs")
	fl.DurationVar(&f.heartbeatTTL, "heartbeat-ttl", server.DefaultHeartbeatTTL, "a worker that misses heartbeats this long is unknown (managers)")
	fl.DurationVar(&f.downGrace, "down-grace", server.DefaultDownGrace, "an unknown worker is down, and its allocations lost, after this much longer (managers)")
}

// registerWorker adds the flags only a worker uses.
func (f *daemonFlags) registerWorker(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.labels, "label", nil, "operator label KEY=VALUE for this worker, e.g. zone=a (repeatable; workers)")
	fl.StringVar(&f.containerdAddress, "containerd-address", driver.DefaultAddress,
		"containerd socket; if none answers there the worker starts its own containerd under the data dir (workers)")
	fl.StringVar(&f.allocDir, "alloc-dir", "", "directory for allocation files and logs (default: <data-dir>/alloc; workers)")
}

func (f *daemonFlags) check() error {
	if f.dataDir == "" {
		return errors.New("--data-dir is required: the directory where this node keeps its state")
	}
	if f.advertise == "" {
		return errors.New("--advertise is required: the IP address other nodes reach this node at")
	}
	if f.name == "" {
		f.name, _ = os.Hostname()
	}
	if f.certLifetime < time.Minute {
		return fmt.Errorf("--cert-lifetime %s is too short: use at least 1m (renewal happens at 50-80%% of it)", f.certLifetime)
	}
	if hclog.LevelFromString(f.logLevel) == hclog.NoLevel {
		return fmt.Errorf("invalid --log-level %q: use trace, debug, info, warn or error", f.logLevel)
	}
	if f.heartbeatTTL <= 0 || f.downGrace <= 0 {
		return fmt.Errorf("--heartbeat-ttl (%s) and --down-grace (%s) must be positive", f.heartbeatTTL, f.downGrace)
	}
	if _, err := parseLabels(f.labels); err != nil {
		return err
	}
	return nil
}

// parseLabels turns repeated --label KEY=VALUE flags into a map.
func parseLabels(in []string) (map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(in))
	for _, kv := range in {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || len(k) > 128 {
			return nil, fmt.Errorf("invalid --label %q: use KEY=VALUE with a key of 1-128 characters", kv)
		}
		if old, dup := out[k]; dup && old != v {
			return nil, fmt.Errorf("--label %s is given twice, as %q and %q", k, old, v)
		}
		out[k] = v
	}
	return out, nil
}

func (f *daemonFlags) logger(w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name: "hive", Level: hclog.LevelFromString(f.logLevel), Output: w, JSONFormat: f.logJSON,
	})
}

func (f *daemonFlags) serverConfig(logger hclog.Logger) server.Config {
	return server.Config{
		DataDir: f.dataDir, Advertise: f.advertise, BindAddr: f.bind, Name: f.name,
		APIPort: f.apiPort, RPCPort: f.rpcPort, SerfPort: f.serfPort,
		CertLifetime: f.certLifetime, HeartbeatTTL: f.heartbeatTTL, DownGrace: f.downGrace, Logger: logger,
	}
}

// clientConfig is the worker's config. RPCPort is the worker's own mTLS
// endpoint, which managers call for logs and images.
func (f *daemonFlags) clientConfig(logger hclog.Logger) client.Config {
	labels, _ := parseLabels(f.labels) // checked in check
	return client.Config{
		DataDir: f.dataDir, Advertise: f.advertise, BindAddr: f.bind, Name: f.name,
		SerfPort: f.serfPort, RPCPort: f.rpcPort,
		ContainerdAddress: f.containerdAddress, Labels: labels, AllocDir: f.allocDir,
		Logger: logger,
	}
}

func newInitCmd() *cobra.Command {
	var f daemonFlags
	cmd := &cobra.Command{
		Use:   "init --data-dir DIR --advertise IP",
		Short: "Create a new cluster with this node as its first manager, and run it",
		Long: `Create a new Hive cluster and run this node as its first manager.

On the first start, init creates the cluster CA, this node's certificate, a
worker join token, a manager join token and a first admin token. It prints the
tokens once and writes them (mode 0600) to DIR/bootstrap/, next to the CA
certificate DIR/bootstrap/ca.pem that CLI users point HIVE_CACERT at.

Running init again with the same data dir resumes the node: no new cluster,
no new node ID. The process runs in the foreground until SIGINT or SIGTERM.`,
		Example: `  hive init --data-dir /var/lib/hive --advertise 198.18.0.10
  export HIVE_ADDR=https://198.18.0.10:7400
  export HIVE_CACERT=/var/lib/hive/bootstrap/ca.pem
  export HIVE_TOKEN=$(cat /var/lib/hive/bootstrap/admin.token)
  hive node ls`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			logger := f.logger(cmd.ErrOrStderr())
			s, boot, err := server.Init(f.serverConfig(logger))
			if err != nil {
				return err
			}
			if boot != nil {
				printBootstrap(cmd.OutOrStdout(), boot, f.advertise, f.apiPort)
			} else {
				logger.Info("resumed manager", "node_id", s.NodeID())
			}
			return runUntilSignal(logger, s.Done(), s.Shutdown)
		},
	}
	f.register(cmd)
	return cmd
}

func printBootstrap(w io.Writer, b *server.Bootstrap, advertise string, apiPort int) {
	fmt.Fprintf(w, `Cluster %s created. These secrets are shown once; copies (mode 0600) are in %s.

  Admin token:         %s
  Worker join token:   %s
  Manager join token:  %s

Use the CLI:
  export HIVE_ADDR=https://%s:%d
  export HIVE_CACERT=%s/ca.pem
  export HIVE_TOKEN=$(cat %s/admin.token)

Add nodes:
  hive join %s:%d --token <join token> --data-dir DIR --advertise IP
`, b.ClusterID, b.Dir, b.AdminToken, b.WorkerToken, b.ManagerToken,
		advertise, apiPort, b.Dir, b.Dir, advertise, apiPort)
}

func newJoinCmd() *cobra.Command {
	var f daemonFlags
	var token string
	cmd := &cobra.Command{
		Use:   "join ADDR --token TOKEN --data-dir DIR --advertise IP",
		Short: "Join a cluster as a manager or worker (the token decides), and run the node",
		Long: `Join the cluster whose manager API is at ADDR (host or host:port, port 7400
by default) and run this node.

The token decides the role: a manager token makes this node a Raft voter, a
worker token a worker. Before sending anything, join checks that the CA the
manager shows matches the CA pin inside the token, and refuses to continue if
it does not.

Running join again with the same data dir resumes the node; the token is then
only needed if the node's certificate expired while it was offline (the node
keeps its ID).

A worker runs its allocations through containerd at --containerd-address; if
nothing answers there and the containerd binary is installed, it starts its
own containerd under the data dir and stops it on exit. --rpc-port is then
the worker's own mTLS endpoint, which managers call for logs and images.`,
		Example: `  hive join 198.18.0.10 --token "$(cat worker.token)" --data-dir /var/lib/hive --advertise 198.18.0.11 \
      --label zone=a --containerd-address /run/containerd/containerd.sock`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			logger := f.logger(cmd.ErrOrStderr())
			run, err := startJoined(cmd.Context(), &f, args[0], token, logger)
			if err != nil {
				return err
			}
			return run()
		},
	}
	f.register(cmd)
	f.registerWorker(cmd)
	cmd.Flags().StringVar(&token, "token", os.Getenv("HIVE_JOIN_TOKEN"), "join token (HIVE1-...); env HIVE_JOIN_TOKEN")
	return cmd
}

// startJoined resumes or joins, starts the right agent, and returns the
// function that runs it until a signal.
func startJoined(ctx context.Context, f *daemonFlags, addr, token string, logger hclog.Logger) (func() error, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	existing, err := identity.Load(f.dataDir)
	if err != nil && !errors.Is(err, identity.ErrNoIdentity) {
		return nil, err
	}
	if existing != nil {
		certs, err := identity.LoadCerts(f.dataDir)
		if err != nil {
			return nil, err
		}
		if !certs.Expired(time.Now()) {
			logger.Info("resuming node", "node_id", existing.ID, "role", existing.Role)
			return resume(f, existing.Role, logger)
		}
		if token == "" {
			return nil, fmt.Errorf("this node's certificate expired at %s; pass --token with a %s join token to rejoin (the node keeps its ID)", certs.Leaf().NotAfter.UTC().Format(time.RFC3339), existing.Role)
		}
		logger.Warn("certificate expired; rejoining with the token", "node_id", existing.ID)
	} else if token == "" {
		return nil, errors.New("--token is required to join: use the worker or manager token from the first manager's bootstrap dir, or create one with `hive join-token create`")
	}
	jctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	p := identity.JoinParams{
		DataDir: f.dataDir, Addr: addr, Token: token, Name: f.name, Address: f.advertise,
		APIPort: f.apiPort, RPCPort: f.rpcPort, SerfPort: f.serfPort,
	}
	if existing != nil {
		p.NodeID = existing.ID
	}
	node, certs, resp, err := identity.Join(jctx, p)
	if err != nil {
		return nil, err
	}
	if existing != nil && existing.Role != resp.Role {
		return nil, fmt.Errorf("this data dir holds a %s but the token is for a %s", existing.Role, resp.Role)
	}
	logger.Info("joined cluster", "node_id", node.ID, "role", node.Role, "cluster", node.ClusterID)
	if resp.Role == structs.RoleManager {
		s, err := server.StartJoined(f.serverConfig(logger), node, certs, resp)
		if err != nil {
			return nil, err
		}
		return func() error { return runUntilSignal(logger, s.Done(), s.Shutdown) }, nil
	}
	a, err := client.StartJoined(f.clientConfig(logger), node, certs, resp)
	if err != nil {
		return nil, err
	}
	return func() error { return runUntilSignal(logger, a.Done(), a.Shutdown) }, nil
}

func resume(f *daemonFlags, role structs.Role, logger hclog.Logger) (func() error, error) {
	if role == structs.RoleManager {
		s, err := server.Open(f.serverConfig(logger))
		if err != nil {
			return nil, err
		}
		return func() error { return runUntilSignal(logger, s.Done(), s.Shutdown) }, nil
	}
	a, err := client.Open(f.clientConfig(logger))
	if err != nil {
		return nil, err
	}
	return func() error { return runUntilSignal(logger, a.Done(), a.Shutdown) }, nil
}

// runUntilSignal waits for SIGINT/SIGTERM (or the agent stopping on its
// own) and shuts down.
func runUntilSignal(logger hclog.Logger, done <-chan struct{}, shutdown func()) error {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case s := <-sig:
		logger.Info("shutting down", "signal", s.String())
	case <-done:
	}
	shutdown()
	return nil
}
