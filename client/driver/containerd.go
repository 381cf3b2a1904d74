package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
)

// Defaults for Config.
const (
	DefaultAddress     = "/run/containerd/containerd.sock"
	DefaultSnapshotter = "overlayfs"
	DefaultRuntime     = "io.containerd.runc.v2"
)

// Labels the driver puts on its containers.
const (
	labelPrefix    = "hive.driver."
	labelManaged   = labelPrefix + "managed"
	labelStartedAt = labelPrefix + "started-at"
)

// Config configures a Containerd driver.
type Config struct {
	// Address of containerd's gRPC socket; DefaultAddress when empty. Use
	// the address EnsureContainerd returns.
	Address     string
	Snapshotter string // DefaultSnapshotter when empty
	Runtime     string // DefaultRuntime when empty
	// LoggerPath is the binary containerd's shim runs to write a task's
	// logs, as `LoggerPath task-logger <spec>` (see RunLogger). Empty
	// means this process's own executable: the hive binary, whose
	// task-logger subcommand calls RunLogger.
	LoggerPath string
	Logger     hclog.Logger
}

// Containerd is the Driver backed by containerd.
type Containerd struct {
	client      *containerd.Client
	snapshotter string
	runtime     string
	loggerPath  string
	cgroups     CgroupMode
	logger      hclog.Logger

	// importMu serialises imports so a failed one can roll back exactly
	// the image names it created or moved.
	importMu sync.Mutex
}

var _ Driver = (*Containerd)(nil)

// New connects to containerd and checks that it answers and has the
// snapshotter; it does not start a daemon (EnsureContainerd does).
func New(ctx context.Context, cfg Config) (*Containerd, error) {
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	if cfg.Snapshotter == "" {
		cfg.Snapshotter = DefaultSnapshotter
	}
	if cfg.Runtime == "" {
		cfg.Runtime = DefaultRuntime
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.LoggerPath == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("driver: find own executable for the task logger: %w", err)
		}
		cfg.LoggerPath = exe
	}
	if !filepath.IsAbs(cfg.LoggerPath) {
		return nil, fmt.Errorf("driver: task logger path %q must be absolute", cfg.LoggerPath)
	}
	if fi, err := os.Stat(cfg.LoggerPath); err != nil {
		return nil, fmt.Errorf("driver: task logger: %w", err)
	} else if fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("driver: task logger %s is not executable", cfg.LoggerPath)
	}
	mode, err := DetectCgroups()
	if err != nil {
		return nil, fmt.Errorf("driver: %w", err)
	}

	client, err := containerd.New(cfg.Address,
		containerd.WithDefaultNamespace(Namespace),
		containerd.WithDefaultRuntime(cfg.Runtime),
		// Calls wait for a restarting containerd (the supervisor brings
		// it back) instead of failing fast for the length of gRPC's
		// reconnect backoff; callers bound them with their contexts.
		containerd.WithCallOpts([]grpc.CallOption{grpc.WaitForReady(true)}),
		containerd.WithTimeout(2*time.Second))
	if err != nil {
		return nil, fmt.Errorf("driver: connect to containerd at %s: %w", cfg.Address, err)
	}
	d := &Containerd{
		client:      client,
		snapshotter: cfg.Snapshotter,
		runtime:     cfg.Runtime,
		loggerPath:  cfg.LoggerPath,
		cgroups:     mode,
		logger:      cfg.Logger.Named("driver"),
	}
	if err := d.check(ctx, cfg.Address); err != nil {
		client.Close()
		return nil, err
	}
	d.logger.Debug("connected to containerd", "address", cfg.Address, "cgroups", mode, "snapshotter", cfg.Snapshotter)
	return d, nil
}

func (d *Containerd) check(ctx context.Context, addr string) error {
	if _, err := os.Stat(addr); err != nil {
		return fmt.Errorf("driver: no containerd socket: %w", err)
	}
	ctx, cancel := context.WithTimeout(d.ctx(ctx), 5*time.Second)
	defer cancel()
	v, err := d.client.Version(ctx)
	if err != nil {
		return fmt.Errorf("driver: containerd at %s does not answer: %w", addr, err)
	}
	ps, err := d.client.IntrospectionService().Plugins(ctx,
		fmt.Sprintf(`type=="io.containerd.snapshotter.v1",id==%q`, d.snapshotter))
	if err != nil {
		return fmt.Errorf("driver: list containerd %s plugins: %w", v.Version, err)
	}
	if len(ps.Plugins) == 0 {
		return fmt.Errorf("driver: containerd %s at %s has no %s snapshotter", v.Version, addr, d.snapshotter)
	}
	if ie := ps.Plugins[0].InitErr; ie != nil {
		return fmt.Errorf("driver: containerd %s at %s: snapshotter %s failed to start: %s", v.Version, addr, d.snapshotter, ie.Message)
	}
	return nil
}

// Close closes the connection; tasks keep running.
func (d *Containerd) Close() error { return d.client.Close() }

// CgroupMode says which cgroup hierarchy limits are enforced through.
func (d *Containerd) CgroupMode() CgroupMode { return d.cgroups }

// ctx puts the hive namespace on ctx (the client's default covers gRPC
// calls; some client helpers read it from the context).
func (d *Containerd) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, Namespace)
}

// cleanupCtx outlives a cancelled request so that undoing a half-done
// start still happens, but not forever.
func cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}

// notFound maps containerd's not-found to ours, keeping the message.
func notFound(err error) error {
	if errdefs.IsNotFound(err) && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
