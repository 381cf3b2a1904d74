package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/client"
	"github.com/hivesec/hive/client/driver"
	"github.com/hivesec/hive/client/driver/testimage"
	"github.com/hivesec/hive/identity"
	"github.com/hivesec/hive/server"
	"github.com/hivesec/hive/structs"
)

// hive dev runs a manager and a worker in one process on loopback. The
// manager has the usual ports; the worker's RPC and Serf ports are moved
// up by ten so the two never collide.
const (
	devAddr           = "127.0.0.1"
	devWorkerRPCPort  = structs.DefaultRPCPort + 10  // 7411
	devWorkerSerfPort = structs.DefaultSerfPort + 10 // 7412
	devExampleTask    = "hello"
)

// devExampleScript is what the example allocation runs.
const devExampleScript = `trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo "hello from hive #$i, uid $(id -u), $(date -u +%H:%M:%S)"; sleep 3; done`

type devFlags struct {
	dataDir           string
	example           bool
	logLevel          string
	containerdAddress string
	manager           managerFlags
}

func newDevCmd() *cobra.Command {
	var f devFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a one-machine cluster (a manager and a worker) for trying Hive out",
		Long: `Run a manager and a worker in this one process, on 127.0.0.1, with a
temporary data dir (--data-dir keeps one across runs).

The manager uses ports 7400 (API), 7401 (RPC) and 7402 (Serf); the worker's
own endpoint is on 7411 and its Serf on 7412. The worker uses the containerd
at --containerd-address, or starts its own under the data dir if none
answers (it needs the containerd and runc packages).

dev prints the admin token and writes ~/.hive/config (mode 0600) so the CLI
works at once. --example also builds a busybox image from the host's
/bin/busybox (Debian's busybox-static), imports it and runs an allocation
that prints "hello from hive" every few seconds. --audit-policy,
--audit-webhook and --root-key-rotation set up the manager as for hive init.

SIGINT or SIGTERM stops the allocations (with a temporary data dir), the
worker, its containerd and the manager, and removes the temporary data dir
and the config file it wrote.`,
		Example: `  hive dev --example
  hive alloc ls
  hive alloc logs <alloc ID> -f`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error { return runDev(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", "", "keep the cluster's state here across runs (default: a temporary dir removed on exit)")
	fl.BoolVar(&f.example, "example", false, "import a busybox test image and run an example allocation")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fl.StringVar(&f.containerdAddress, "containerd-address", driver.DefaultAddress, "containerd socket; if none answers the worker starts its own")
	f.manager.register(cmd, "")
	return cmd
}

// devCluster is what runDev started, in the order it must stop.
type devCluster struct {
	dir, mgrDir, wDir string
	temp              bool
	srv               *server.Server
	agent             *client.Agent
	api               *api.Client
	workerID          string
	token, caPath     string
	cfgPath           string
	wroteCfg          bool
	logger            hclog.Logger
}

func runDev(cmd *cobra.Command, f *devFlags) error {
	if hclog.LevelFromString(f.logLevel) == hclog.NoLevel {
		return fmt.Errorf("invalid --log-level %q: use trace, debug, info, warn or error", f.logLevel)
	}
	if err := f.manager.check(); err != nil {
		return err
	}
	if err := checkDevPorts(); err != nil {
		return err
	}
	// Signals are caught from the start, so a ^C during start-up also
	// tears down what was started.
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	d := &devCluster{cfgPath: configPath()}
	d.logger = hclog.New(&hclog.LoggerOptions{Name: "hive", Level: hclog.LevelFromString(f.logLevel), Output: cmd.ErrOrStderr()})
	if f.dataDir == "" {
		dir, err := os.MkdirTemp("", "hive-dev-")
		if err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		d.dir, d.temp = dir, true
	} else {
		dir, err := filepath.Abs(f.dataDir)
		if err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		d.dir = dir
	}
	d.mgrDir, d.wDir = filepath.Join(d.dir, "manager"), filepath.Join(d.dir, "worker")
	defer d.stop()

	if err := d.startManager(f.manager); err != nil {
		return err
	}
	if err := d.startWorker(ctx, f.containerdAddress); err != nil {
		return err
	}
	if err := writeCLIConfig(d.cfgPath, map[string]string{
		configAddress: "https://" + net.JoinHostPort(devAddr, strconv.Itoa(structs.DefaultAPIPort)),
		configToken:   d.token, configCACert: d.caPath,
	}); err != nil {
		return err
	}
	d.wroteCfg = true
	if err := d.waitWorkerReady(ctx); err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	d.printBanner(w)
	if f.example {
		id, err := d.runExample(ctx)
		if err != nil {
			return fmt.Errorf("dev --example: %w", err)
		}
		fmt.Fprintf(w, "Example allocation: %s\n  hive alloc status %s\n  hive alloc logs %s -f\n\n", id, id, id)
	}
	fmt.Fprintln(w, "Press Ctrl-C to stop.")
	select {
	case <-ctx.Done():
		d.logger.Info("shutting down")
	case <-d.srv.Done():
		return errors.New("dev: the manager stopped on its own; see the log above")
	case <-d.agent.Done():
		return errors.New("dev: the worker stopped on its own; see the log above")
	}
	return nil
}

// checkDevPorts fails early, with the port named, if another process holds
// one of the ports dev needs (another hive dev, or a manager).
func checkDevPorts() error {
	for _, p := range []int{structs.DefaultAPIPort, structs.DefaultRPCPort, structs.DefaultSerfPort, devWorkerRPCPort, devWorkerSerfPort} {
		addr := net.JoinHostPort(devAddr, strconv.Itoa(p))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("dev: port %s is taken (another hive dev or manager running?): %w", addr, err)
		}
		_ = l.Close()
	}
	for _, p := range []int{structs.DefaultSerfPort, devWorkerSerfPort} {
		addr := net.JoinHostPort(devAddr, strconv.Itoa(p))
		l, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("dev: UDP port %s is taken (another hive dev or manager running?): %w", addr, err)
		}
		_ = l.Close()
	}
	return nil
}

func (d *devCluster) startManager(m managerFlags) error {
	cfg := server.Config{
		DataDir: d.mgrDir, Advertise: devAddr, Name: "dev-manager",
		APIPort: structs.DefaultAPIPort, RPCPort: structs.DefaultRPCPort, SerfPort: structs.DefaultSerfPort,
		Logger: d.logger.Named("manager"),
	}
	m.apply(&cfg)
	_, err := identity.Load(d.mgrDir)
	switch {
	case err == nil:
		if d.srv, err = server.Open(cfg); err != nil {
			return fmt.Errorf("dev: resume manager in %s: %w", d.mgrDir, err)
		}
	case errors.Is(err, identity.ErrNoIdentity):
		if err := os.MkdirAll(d.mgrDir, 0o700); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		if d.srv, _, err = server.Init(cfg); err != nil {
			return fmt.Errorf("dev: start manager: %w", err)
		}
	default:
		return fmt.Errorf("dev: %w", err)
	}
	boot := filepath.Join(d.mgrDir, server.BootstrapDir)
	tok, err := os.ReadFile(filepath.Join(boot, server.AdminTokenFile))
	if err != nil {
		return fmt.Errorf("dev: admin token: %w", err)
	}
	d.token, d.caPath = strings.TrimSpace(string(tok)), filepath.Join(boot, "ca.pem")
	d.api, err = api.NewClient(&api.Config{
		Address: net.JoinHostPort(devAddr, strconv.Itoa(structs.DefaultAPIPort)), Token: d.token, CACertFile: d.caPath, Timeout: 30 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	return nil
}

func (d *devCluster) startWorker(ctx context.Context, containerdAddr string) error {
	cfg := client.Config{
		DataDir: d.wDir, Advertise: devAddr, Name: "dev-worker",
		SerfPort: devWorkerSerfPort, RPCPort: devWorkerRPCPort,
		ContainerdAddress: containerdAddr, Labels: map[string]string{"dev": "true"},
		Logger: d.logger.Named("worker"),
	}
	_, err := identity.Load(d.wDir)
	switch {
	case err == nil:
		if d.agent, err = client.Open(cfg); err != nil {
			return fmt.Errorf("dev: resume worker in %s: %w", d.wDir, err)
		}
	case errors.Is(err, identity.ErrNoIdentity):
		wtok, err := os.ReadFile(filepath.Join(d.mgrDir, server.BootstrapDir, server.WorkerTokenFile))
		if err != nil {
			return fmt.Errorf("dev: worker token: %w", err)
		}
		if err := os.MkdirAll(d.wDir, 0o700); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		p := identity.JoinParams{
			DataDir: d.wDir, Addr: net.JoinHostPort(devAddr, strconv.Itoa(structs.DefaultAPIPort)),
			Token: strings.TrimSpace(string(wtok)), Name: cfg.Name, Address: devAddr,
			RPCPort: devWorkerRPCPort, SerfPort: devWorkerSerfPort,
		}
		// The manager may still be electing itself; retry for a while.
		var node *identity.Node
		var certs *identity.Certs
		var resp *structs.JoinResponse
		err = retry(ctx, time.Minute, func() error {
			jctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			var err error
			node, certs, resp, err = identity.Join(jctx, p)
			return err
		})
		if err != nil {
			return fmt.Errorf("dev: worker join: %w", err)
		}
		if d.agent, err = client.StartJoined(cfg, node, certs, resp); err != nil {
			return fmt.Errorf("dev: start worker: %w", err)
		}
	default:
		return fmt.Errorf("dev: %w", err)
	}
	d.workerID = d.agent.NodeID()
	return nil
}

// retry calls fn until it succeeds, ctx ends or timeout passes.
func retry(ctx context.Context, timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		var stop *retryStop
		if err == nil || errors.As(err, &stop) {
			return err
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted: %w", err)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func (d *devCluster) waitWorkerReady(ctx context.Context) error {
	return retry(ctx, 2*time.Minute, func() error {
		n, _, err := d.api.Nodes().Info(d.workerID, nil)
		if err != nil {
			return fmt.Errorf("dev: waiting for the worker: %w", err)
		}
		if n.Status != structs.NodeStatusReady {
			return fmt.Errorf("dev: the worker is %q, not ready yet", n.Status)
		}
		return nil
	})
}

func (d *devCluster) printBanner(w io.Writer) {
	keep := "removed on exit"
	if !d.temp {
		keep = "kept"
	}
	fmt.Fprintf(w, `
Hive dev cluster is up: a manager and a worker on %s.
  Data dir:    %s (%s)
  Admin token: %s
  Worker node: %s

The CLI is configured in %s; try:
  hive node ls
  hive alloc run --node %s --image IMAGE -- COMMAND ARGS...

`, devAddr, d.dir, keep, d.token, d.workerID, d.cfgPath, d.workerID)
}

// runExample builds the busybox test image, imports it onto the worker and
// places an allocation that prints a greeting every few seconds, as a
// restricted task: uid 1000, read-only rootfs, 32 MiB.
func (d *devCluster) runExample(ctx context.Context) (string, error) {
	tmp, err := os.CreateTemp("", "hive-busybox-*.tar")
	if err != nil {
		return "", err
	}
	path := tmp.Name()
	tmp.Close()
	defer os.Remove(path)
	if _, err := testimage.WriteFile(path, testimage.Options{}); err != nil {
		return "", err
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	imgs, err := d.api.Images().Import(d.workerID, f)
	f.Close()
	if err != nil {
		return "", fmt.Errorf("import %s: %w", testimage.DefaultRef, err)
	}
	for _, im := range imgs {
		d.logger.Info("imported example image", "name", im.Name, "digest", im.Digest)
	}
	a, err := d.api.Allocations().Create(structs.AllocCreateRequest{
		Namespace: structs.DefaultNamespace, NodeID: d.workerID,
		Tasks: []*structs.Task{{
			Name:      devExampleTask,
			Config:    structs.TaskConfig{Image: testimage.DefaultRef, Command: "sh", Args: []string{"-c", devExampleScript}},
			User:      "1000",
			Resources: structs.Resources{MemoryMB: 32},
			Security:  structs.SecurityContext{ReadOnlyRootfs: true},
		}},
	})
	if err != nil {
		return "", err
	}
	// Wait until the worker reports the allocation running (or failed), so
	// the logs the user asks for next are there.
	err = retry(ctx, time.Minute, func() error {
		cur, _, err := d.api.Allocations().Info(a.ID, nil)
		if err != nil {
			return err
		}
		switch {
		case cur.ClientStatus == structs.AllocRunning:
			return nil
		case cur.Terminal():
			return &retryStop{fmt.Errorf("allocation %s is %s: %s", a.ID, cur.ClientStatus, allocProblem(cur))}
		}
		return fmt.Errorf("allocation %s is %s, not running", a.ID, cur.ClientStatus)
	})
	var rs *retryStop
	if errors.As(err, &rs) {
		return "", rs.err
	}
	if err != nil {
		return "", err
	}
	return a.ID, nil
}

// retryStop is returned from a retry condition that can no longer succeed
// (it is not retried, as its message is already final).
type retryStop struct{ err error }

func (r *retryStop) Error() string { return r.err.Error() }

// allocProblem is the most specific explanation an allocation carries.
func allocProblem(a *structs.Allocation) string {
	for _, ts := range a.TaskStates {
		if ts != nil && ts.LastError != "" {
			return ts.LastError
		}
	}
	return orDash(a.ClientDescription)
}

// stop tears down in reverse order of start. With a temporary data dir it
// first stops every allocation, so no container outlives the dir.
func (d *devCluster) stop() {
	if d.temp && d.api != nil && d.agent != nil {
		d.stopAllocs()
	}
	if d.agent != nil {
		d.agent.Shutdown()
	}
	if d.srv != nil {
		d.srv.Shutdown()
	}
	if d.temp && d.wroteCfg {
		// Only our own file: another dev may have replaced it since.
		if kv, err := readCLIConfig(d.cfgPath); err == nil && kv[configToken] == d.token {
			_ = os.Remove(d.cfgPath)
		}
	}
	if d.temp && d.dir != "" {
		unmountUnder(d.dir)
		if err := os.RemoveAll(d.dir); err != nil {
			d.logger.Warn("could not remove the temporary data dir", "dir", d.dir, "error", err)
		}
	}
}

func (d *devCluster) stopAllocs() {
	list, _, err := d.api.Allocations().List(nil, nil)
	if err != nil {
		d.logger.Warn("listing allocations to stop them", "error", err)
		return
	}
	var live []string
	for _, a := range list {
		if a.Terminal() {
			continue
		}
		if a.DesiredStatus != structs.AllocDesiredStop {
			if _, err := d.api.Allocations().Stop(a.ID); err != nil {
				d.logger.Warn("stopping allocation", "alloc", a.ID, "error", err)
				continue
			}
		}
		live = append(live, a.ID)
	}
	if len(live) == 0 {
		return
	}
	d.logger.Info("stopping allocations", "count", len(live))
	_ = retry(context.Background(), 30*time.Second, func() error {
		for _, id := range live {
			a, _, err := d.api.Allocations().Info(id, nil)
			if err != nil {
				return err
			}
			if !a.Terminal() {
				return fmt.Errorf("allocation %s is still %s", id, a.ClientStatus)
			}
		}
		return nil
	})
}

// unmountUnder lazily unmounts whatever containerd left mounted below dir
// (a task's rootfs), deepest first, so the dir can be removed.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mps []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mps = append(mps, f[4])
		}
	}
	for i := len(mps) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mps[i], syscall.MNT_DETACH)
	}
}
