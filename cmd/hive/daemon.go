package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/hivesec/hive/audit"
	"github.com/hivesec/hive/client"
	"github.com/hivesec/hive/client/driver"
	"github.com/hivesec/hive/identity"
	"github.com/hivesec/hive/lockout"
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
	network           bool
	wireguardPort     int

	// Managers: audit and secrets.
	managerFlags
	unlockKeyFile string

	// init only.
	autolock    bool
	resetAdmin  bool
	restore     string
	clusterCIDR string
	subnetBits  int
}

// managerFlags are the manager settings init, join and dev share.
type managerFlags struct {
	auditPolicy     string
	auditWebhook    string
	rootKeyRotation time.Duration
	loginLockAfter  int
	loginLockFor    time.Duration
	loginBaseDelay  time.Duration
}

// register adds the flags; suffix ends their help (" (managers)" where
// the command may also run a worker).
func (m *managerFlags) register(cmd *cobra.Command, suffix string) {
	fl := cmd.Flags()
	fl.StringVar(&m.auditPolicy, "audit-policy", "", "HCL audit policy file saying which requests are recorded at which level (default: every request, metadata only)"+suffix)
	fl.StringVar(&m.auditWebhook, "audit-webhook", "", "also send every audit entry to this http(s) URL"+suffix)
	fl.DurationVar(&m.rootKeyRotation, "root-key-rotation", server.DefaultRootKeyRotation, "how often the leader replaces the secrets root key (0: never)"+suffix)
	def := lockout.DefaultConfig()
	fl.IntVar(&m.loginLockAfter, "login-lock-after", def.LockAfter, "failed logins (per user and per source address, within 15m) that lock it out; the first 3 are free, later ones wait --login-delay, doubling up to 30s"+suffix)
	fl.DurationVar(&m.loginLockFor, "login-lock-for", def.LockFor, "how long a login lockout lasts"+suffix)
	fl.DurationVar(&m.loginBaseDelay, "login-delay", def.BaseDelay, "wait imposed after the free failed logins, doubled on each further failure"+suffix)
}

// check validates the flags, reading the audit policy now so a mistake in
// it stops the command before anything is created.
func (m *managerFlags) check() error {
	if m.auditPolicy != "" {
		src, err := os.ReadFile(m.auditPolicy)
		if err != nil {
			return fmt.Errorf("--audit-policy: %w", err)
		}
		if _, err := audit.ParsePolicy(m.auditPolicy, src); err != nil {
			return fmt.Errorf("--audit-policy: %w", err)
		}
	}
	if m.auditWebhook != "" {
		u, err := url.Parse(m.auditWebhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			shown := "(unparsable)"
			if err == nil {
				shown = u.Redacted() // it may carry credentials
			}
			return fmt.Errorf("invalid --audit-webhook %s: use an http:// or https:// URL, such as https://siem.example.com/hive", shown)
		}
	}
	if m.loginLockAfter < 4 || m.loginLockAfter > 1000 {
		return fmt.Errorf("invalid --login-lock-after %d: use 4-1000 (the first 3 failures are free)", m.loginLockAfter)
	}
	if m.loginLockFor < time.Second || m.loginBaseDelay < time.Millisecond || m.loginBaseDelay > time.Minute {
		return fmt.Errorf("invalid --login-lock-for %s or --login-delay %s: use at least 1s and 1ms-1m", m.loginLockFor, m.loginBaseDelay)
	}
	if m.rootKeyRotation < 0 || m.rootKeyRotation > 0 && m.rootKeyRotation < time.Minute {
		return fmt.Errorf("invalid --root-key-rotation %s: use at least 1m, such as 720h, or 0 for never", m.rootKeyRotation)
	}
	return nil
}

// apply sets the flags in a manager's config.
func (m *managerFlags) apply(cfg *server.Config) {
	cfg.AuditPolicyFile, cfg.AuditWebhook = m.auditPolicy, m.auditWebhook
	cfg.Login = lockout.DefaultConfig()
	cfg.Login.LockAfter, cfg.Login.LockFor, cfg.Login.BaseDelay = m.loginLockAfter, m.loginLockFor, m.loginBaseDelay
	cfg.RootKeyRotation = m.rootKeyRotation
	if m.rootKeyRotation == 0 {
		cfg.RootKeyRotation = -1 // the server reads 0 as its default
	}
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
	fl.StringVar(&f.unlockKeyFile, "unlock-key-file", "", "file holding the unlock key of an autolocked cluster, read at start so the manager starts unlocked; keep it off the data dir's disk, e.g. on a tmpfs (managers)")
	f.managerFlags.register(cmd, " (managers)")
}

// registerInit adds the flags only init has.
func (f *daemonFlags) registerInit(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.autolock, "autolock", false, "keep the unseal key on no manager's disk: print it once as the unlock key, which every manager needs after a restart (hive operator unlock)")
	fl.BoolVar(&f.resetAdmin, "reset-admin", false, "start nothing: ask the manager running with --data-dir on this host to revoke every admin token and issue a new one (needs root, or the user the manager runs as)")
	fl.StringVar(&f.restore, "restore", "", "rebuild a lost cluster on this new manager from a snapshot file (hive operator snapshot save); needs --unlock-key-file with the old cluster's unseal key")
	fl.StringVar(&f.clusterCIDR, "cluster-cidr", structs.DefaultClusterCIDR, "IPv4 range the workers' allocation subnets are leased from; fixed when the cluster is created")
	fl.IntVar(&f.subnetBits, "subnet-bits", structs.DefaultSubnetBits, "prefix length of each worker's subnet of --cluster-cidr (24: 253 allocations per worker); up to 30")
}

// checkInit validates the flags only init has.
func (f *daemonFlags) checkInit(cmd *cobra.Command) error {
	if _, err := structs.ParseClusterCIDR(f.clusterCIDR, f.subnetBits); err != nil {
		return fmt.Errorf("--cluster-cidr %s --subnet-bits %d: %w", f.clusterCIDR, f.subnetBits, err)
	}
	if f.restore != "" && (cmd.Flags().Changed("cluster-cidr") || cmd.Flags().Changed("subnet-bits")) {
		return errors.New("--cluster-cidr and --subnet-bits cannot be given with --restore: the restored cluster keeps the range it was created with")
	}
	return nil
}

// registerWorker adds the flags only a worker uses.
func (f *daemonFlags) registerWorker(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.labels, "label", nil, "operator label KEY=VALUE for this worker, e.g. zone=a (repeatable; workers)")
	fl.StringVar(&f.containerdAddress, "containerd-address", driver.DefaultAddress,
		"containerd socket; if none answers there the worker starts its own containerd under the data dir (workers)")
	fl.StringVar(&f.allocDir, "alloc-dir", "", "directory for allocation files and logs (default: <data-dir>/alloc; workers)")
	fl.BoolVar(&f.network, "network", true, "give each allocation its own network namespace and address, join the WireGuard mesh and enforce network policy; --network=false runs tasks with loopback only (workers)")
	fl.IntVar(&f.wireguardPort, "wireguard-port", structs.DefaultWireGuardPort, "UDP port of this worker's WireGuard mesh endpoint; other workers must reach it at the advertise address (workers)")
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
	if f.wireguardPort < 0 || f.wireguardPort > 65535 {
		return fmt.Errorf("invalid --wireguard-port %d: use a UDP port from 1 to 65535", f.wireguardPort)
	}
	if f.heartbeatTTL <= 0 || f.downGrace <= 0 {
		return fmt.Errorf("--heartbeat-ttl (%s) and --down-grace (%s) must be positive", f.heartbeatTTL, f.downGrace)
	}
	if _, err := parseLabels(f.labels); err != nil {
		return err
	}
	return f.managerFlags.check()
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
	cfg := server.Config{
		DataDir: f.dataDir, Advertise: f.advertise, BindAddr: f.bind, Name: f.name,
		APIPort: f.apiPort, RPCPort: f.rpcPort, SerfPort: f.serfPort,
		CertLifetime: f.certLifetime, HeartbeatTTL: f.heartbeatTTL, DownGrace: f.downGrace, Logger: logger,
		Autolock: f.autolock, UnlockKeyFile: f.unlockKeyFile,
		ClusterCIDR: f.clusterCIDR, SubnetBits: f.subnetBits,
	}
	f.managerFlags.apply(&cfg)
	return cfg
}

// clientConfig is the worker's config. RPCPort is the worker's own mTLS
// endpoint, which managers call for logs and images.
func (f *daemonFlags) clientConfig(logger hclog.Logger) client.Config {
	labels, _ := parseLabels(f.labels) // checked in check
	return client.Config{
		DataDir: f.dataDir, Advertise: f.advertise, BindAddr: f.bind, Name: f.name,
		SerfPort: f.serfPort, RPCPort: f.rpcPort,
		ContainerdAddress: f.containerdAddress, Labels: labels, AllocDir: f.allocDir,
		Network: f.network, WireGuardPort: f.wireguardPort, Logger: logger,
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
no new node ID. The process runs in the foreground until SIGINT or SIGTERM.

With --autolock the unseal key, which wraps the CA key and the secrets root
keys, is written to no disk. init prints it once as the unlock key, and
every manager that restarts stays locked (no secrets served, no
certificates signed) until it gets the key from ` + "`hive operator unlock`" + `
or from --unlock-key-file at start. Autolock is decided when the cluster is
created.

Each worker is leased a subnet of --cluster-cidr (default ` + structs.DefaultClusterCIDR + `) of
prefix length --subnet-bits (default /` + fmt.Sprint(structs.DefaultSubnetBits) + `) when it joins, and its allocations
get their addresses from it; a removed worker's subnet is reused. The range
must not overlap the hosts' own networks, and is fixed when the cluster is
created.

hive init --reset-admin --data-dir DIR starts nothing: it asks the manager
running with that data dir on this host, through its local socket
DIR/admin.sock (mode 0600: root or the manager's user only), to revoke every
admin token and issue a new one, which it prints alone on standard output.
It is the way back in when every admin credential is lost.`,
		Example: `  hive init --data-dir /var/lib/hive --advertise 198.18.0.10
  export HIVE_ADDR=https://198.18.0.10:7400
  export HIVE_CACERT=/var/lib/hive/bootstrap/ca.pem
  export HIVE_TOKEN=$(cat /var/lib/hive/bootstrap/admin.token)
  hive node ls

  hive init --data-dir /var/lib/hive --advertise 198.18.0.10 --autolock \
      --audit-policy /etc/hive/audit.hcl --root-key-rotation 720h
  hive init --data-dir /var/lib/hive --advertise 198.18.0.10 --unlock-key-file /run/hive/unlock.key
  hive init --data-dir /var/lib/hive --advertise 198.18.0.10 --cluster-cidr 10.200.0.0/16 --subnet-bits 26

  sudo hive init --reset-admin --data-dir /var/lib/hive > admin.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.resetAdmin {
				return runResetAdmin(cmd, f.dataDir)
			}
			if err := f.check(); err != nil {
				return err
			}
			if err := f.checkInit(cmd); err != nil {
				return err
			}
			logger := f.logger(cmd.ErrOrStderr())
			if f.restore != "" {
				return runRestore(cmd, &f, logger)
			}
			s, boot, err := server.Init(f.serverConfig(logger))
			if err != nil {
				return err
			}
			if boot != nil {
				printBootstrap(cmd.OutOrStdout(), boot, f.advertise, f.apiPort)
				if boot.UnlockKey != "" {
					printUnlockKey(cmd.OutOrStdout(), cmd.ErrOrStderr(), boot.UnlockKey)
				}
			} else {
				logger.Info("resumed manager", "node_id", s.NodeID())
				if f.autolock {
					logger.Warn("--autolock only applies when init creates a cluster; this data dir holds one, whose autolock setting was fixed then")
				}
				if cmd.Flags().Changed("cluster-cidr") || cmd.Flags().Changed("subnet-bits") {
					logger.Warn("--cluster-cidr and --subnet-bits only apply when init creates a cluster; this data dir holds one, whose range was fixed then")
				}
			}
			return runUntilSignal(logger, s.Done(), s.Shutdown)
		},
	}
	f.register(cmd)
	f.registerInit(cmd)
	return cmd
}

// runRestore is `hive init --restore SNAPSHOT --unlock-key-file KEY`: a
// new first manager holding the snapshot's cluster.
func runRestore(cmd *cobra.Command, f *daemonFlags, logger hclog.Logger) error {
	if f.unlockKeyFile == "" {
		return server.ErrUnsealKeyRequired
	}
	raw, err := os.ReadFile(f.unlockKeyFile)
	if err != nil {
		return fmt.Errorf("reading --unlock-key-file: %w", err)
	}
	// Either form: an unlock key, or a manager's raw keystore/unseal.key.
	key, err := server.DecodeUnlockKey(string(raw))
	if err != nil {
		if len(raw) != 32 {
			return fmt.Errorf("--unlock-key-file: %w (or give the 32-byte keystore/unseal.key of one of its managers)", err)
		}
		key = raw
	}
	cfg := f.serverConfig(logger)
	cfg.UnlockKeyFile = ""
	s, err := server.InitFromSnapshot(cfg, f.restore, key)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Cluster restored from %s on new manager %s.\nIts tokens, users and secrets are those of the snapshot; remove the old managers with `hive node remove` and join new ones with the snapshot's manager join token.\n", f.restore, s.NodeID())
	return runUntilSignal(logger, s.Done(), s.Shutdown)
}

// printUnlockKey shows an autolocked cluster's unlock key, the one time it
// exists outside the managers' memory.
func printUnlockKey(stdout, stderr io.Writer, key string) {
	fmt.Fprintf(stdout, "\nUnlock key (autolock): %s\n", key)
	fmt.Fprint(stderr, `
Warning: the unlock key is shown only this once and is written to no file.
Every manager of this cluster that restarts stays locked (it serves no
secrets and signs no certificates) until it is given this key with
`+"`hive operator unlock`"+` or --unlock-key-file. Store it safely now, apart from
the managers' disks: if it is lost, a restarted manager can never be
unlocked, and once every manager has restarted the cluster's secrets and CA
key are gone for good.
`)
}

// resetAdminTimeout bounds --reset-admin: the manager asks the leader.
const resetAdminTimeout = time.Minute

// runResetAdmin is `hive init --reset-admin --data-dir DIR`: it talks to
// the running manager's local admin socket and starts nothing.
func runResetAdmin(cmd *cobra.Command, dataDir string) error {
	// Any daemon flag given with it suggests a mix-up with starting a
	// manager; the global API flags play no part and are let pass.
	set := cmd.Flags().NFlag()
	for _, name := range []string{"reset-admin", "data-dir", "address", "token", "ca-cert"} {
		if cmd.Flags().Changed(name) {
			set--
		}
	}
	if set > 0 {
		return errors.New("--reset-admin starts nothing and takes only --data-dir: drop the other flags")
	}
	if dataDir == "" {
		return errors.New("--reset-admin needs --data-dir: the data dir of a manager running on this host")
	}
	if _, err := os.Stat(dataDir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--reset-admin: there is no data dir %s; give the --data-dir of a manager running on this host", dataDir)
	}
	sock := server.AdminSocketPath(dataDir)
	if _, err := os.Stat(sock); errors.Is(err, os.ErrNotExist) {
		msg := fmt.Sprintf("--reset-admin: no manager is running with data dir %s (there is no admin socket %s); start the manager with that --data-dir, then run --reset-admin again on the same host", dataDir, sock)
		if _, err := os.Stat(server.AdminSocketPath(filepath.Join(dataDir, "manager"))); err == nil {
			msg += fmt.Sprintf("; for `hive dev` the manager's data dir is %s", filepath.Join(dataDir, "manager"))
		}
		return errors.New(msg)
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, resetAdminTimeout)
	defer cancel()
	resp, err := server.ResetAdmin(ctx, dataDir)
	if err != nil {
		return fmt.Errorf("--reset-admin: %w", err)
	}
	if _, err := fmt.Fprintln(cmd.OutOrStdout(), resp.Secret); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Revoked %d admin token(s), including the bootstrap token in %s if it was still valid.\n", resp.Revoked, filepath.Join(dataDir, server.BootstrapDir, server.AdminTokenFile))
	fmt.Fprintln(cmd.ErrOrStderr(), "Warning: the new admin token is shown only this once; store it securely now. It is a management token: it may do anything.")
	return nil
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
the worker's own mTLS endpoint, which managers call for logs and images.

A manager joining an autolocked cluster gets the unseal key from the leader
and keeps it in memory only: after a restart it is locked until
` + "`hive operator unlock`" + `, or until it reads --unlock-key-file at start.`,
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
