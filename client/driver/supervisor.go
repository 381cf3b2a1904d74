package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/hashicorp/go-hclog"
)

// Options configures EnsureContainerd.
type Options struct {
	// Address to try first; DefaultAddress when empty.
	Address string
	// DataDir holds our own containerd's config, root, state, socket and
	// log (DataDir/containerd.log); required to start one.
	DataDir string
	Logger  hclog.Logger
	// Binary is the containerd executable; "containerd" on PATH when empty.
	Binary string
}

// maxSocketPath is sun_path's size minus the NUL; longer paths cannot be
// bound, and containerd's error for it is obscure.
const maxSocketPath = 107

// EnsureContainerd returns the address of a containerd to use. If one
// answers at opts.Address it is used as is and stop does nothing.
// Otherwise, as k3s does, it starts containerd as a child with a generated
// config, --root and --state under DataDir and its own socket
// DataDir/containerd.sock, waits for it to answer, restarts it whenever it
// dies, and stop terminates it (SIGTERM, then SIGKILL after 10 s).
//
// Tasks outlive the daemon: their shims are separate processes, and a
// restarted containerd reconnects to them. The child also gets SIGKILL if
// this process dies without calling stop (Pdeathsig), and a daemon left by
// an earlier run (DataDir/containerd.pid) is stopped before a new one
// starts, so one DataDir never has two daemons.
func EnsureContainerd(ctx context.Context, opts Options) (addr string, stop func(), err error) {
	if opts.Address == "" {
		opts.Address = DefaultAddress
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	log := opts.Logger.Named("containerd")
	if probe(ctx, opts.Address) == nil {
		log.Debug("using running containerd", "address", opts.Address)
		return opts.Address, func() {}, nil
	}
	if opts.Binary == "" {
		opts.Binary = "containerd"
	}
	bin, err := exec.LookPath(opts.Binary)
	if err != nil {
		return "", nil, fmt.Errorf("containerd: nothing answers at %s and no %s binary to start one (install the containerd and runc packages): %w", opts.Address, opts.Binary, err)
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return "", nil, fmt.Errorf("containerd: runc is not on PATH (install the runc package): %w", err)
	}
	if opts.DataDir == "" {
		return "", nil, fmt.Errorf("containerd: nothing answers at %s and no data dir to start our own in", opts.Address)
	}
	dir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return "", nil, fmt.Errorf("containerd: %w", err)
	}
	s := &supervisor{bin: bin, dir: dir, log: log, done: make(chan struct{}), spawn: make(chan spawnReq)}
	go s.spawner()
	s.sock = filepath.Join(dir, "containerd.sock")
	if len(s.sock) > maxSocketPath {
		return "", nil, fmt.Errorf("containerd: socket path %s is %d bytes, longer than a unix socket allows (%d); use a shorter data dir", s.sock, len(s.sock), maxSocketPath)
	}
	if err := s.writeConfig(); err != nil {
		return "", nil, err
	}
	s.stopStale()
	if err := s.start(ctx); err != nil {
		close(s.spawn)
		return "", nil, err
	}
	go s.supervise()
	return s.sock, s.stop, nil
}

// probe checks that a containerd answers at addr.
func probe(ctx context.Context, addr string) error {
	if _, err := os.Stat(addr); err != nil {
		return err
	}
	c, err := containerd.New(addr, containerd.WithTimeout(time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = c.Version(ctx)
	return err
}

type supervisor struct {
	bin, dir, sock string
	log            hclog.Logger

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd exits
	stopping bool
	done     chan struct{} // closed when supervise returns

	spawn chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

// spawner starts every containerd from one goroutine locked to its OS
// thread. Pdeathsig fires when the *thread* that forked the child exits,
// and Go ends threads whose goroutine exits while locked (containerd's
// mount helpers do that on purpose); forking from an arbitrary thread
// could therefore SIGKILL a healthy daemon. This thread lives until stop.
func (s *supervisor) spawner() {
	runtime.LockOSThread()
	// Never unlocked: when spawn closes (after the daemon stopped) the
	// thread goes with this goroutine.
	for req := range s.spawn {
		req.errc <- req.cmd.Start()
	}
}

func (s *supervisor) configPath() string { return filepath.Join(s.dir, "containerd.toml") }
func (s *supervisor) pidPath() string    { return filepath.Join(s.dir, "containerd.pid") }

// writeConfig renders a config for containerd 1.6+ (config version 2).
// CRI is disabled: Hive drives containerd directly, and CRI would want CNI
// and a streaming port. Metrics and debug sockets are off; the opt plugin
// gets its own dir so side-by-side daemons share nothing on disk.
func (s *supervisor) writeConfig() error {
	for _, d := range []string{"root", "state", "opt"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o711); err != nil {
			return fmt.Errorf("containerd: %w", err)
		}
	}
	cfg := fmt.Sprintf(`# Generated by hive; rewritten at every start.
version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = %q

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(s.dir, "root"), filepath.Join(s.dir, "state"), s.sock, filepath.Join(s.dir, "opt"))
	if err := os.WriteFile(s.configPath(), []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("containerd: write config: %w", err)
	}
	return nil
}

// stopStale stops a containerd left running on our DataDir by an earlier
// agent that died without stop and whose Pdeathsig did not fire.
func (s *supervisor) stopStale() {
	b, err := os.ReadFile(s.pidPath())
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), s.configPath()) {
		return // gone, or the pid now belongs to something else
	}
	s.log.Warn("stopping containerd left by an earlier run", "pid", pid)
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	time.Sleep(100 * time.Millisecond)
}

func (s *supervisor) start(ctx context.Context) error {
	logf, err := os.OpenFile(filepath.Join(s.dir, "containerd.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("containerd: log: %w", err)
	}
	defer logf.Close() // the child has its own copy
	// A stale socket makes containerd fail to bind.
	_ = os.Remove(s.sock)
	cmd := exec.Command(s.bin, "--config", s.configPath(),
		"--root", filepath.Join(s.dir, "root"),
		"--state", filepath.Join(s.dir, "state"),
		"--address", s.sock)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // no terminal ^C: stop decides
		Pdeathsig: syscall.SIGKILL, // do not outlive us (as k3s)
	}
	errc := make(chan error, 1)
	s.spawn <- spawnReq{cmd, errc}
	if err := <-errc; err != nil {
		return fmt.Errorf("containerd: start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	_ = os.WriteFile(s.pidPath(), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
	s.mu.Lock()
	if s.stopping {
		// stop ran while we were starting: it cannot see this child.
		s.mu.Unlock()
		s.kill(cmd, exited)
		return errStopping
	}
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	// Wait for the socket to answer, for the daemon to die, or give up.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if probe(ctx, s.sock) == nil {
			s.log.Info("started containerd", "pid", cmd.Process.Pid, "address", s.sock)
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("containerd: exited during start (%v); see %s", cmd.ProcessState, filepath.Join(s.dir, "containerd.log"))
		case <-ctx.Done():
			s.kill(cmd, exited)
			return fmt.Errorf("containerd: waiting for %s: %w", s.sock, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill(cmd, exited)
			return fmt.Errorf("containerd: no answer on %s after 30s; see %s", s.sock, filepath.Join(s.dir, "containerd.log"))
		}
	}
}

// supervise restarts containerd when it exits without stop, backing off
// from 1 s to 30 s while it keeps dying young.
func (s *supervisor) supervise() {
	defer close(s.done)
	backoff := time.Second
	for {
		s.mu.Lock()
		cmd, exited := s.cmd, s.exited
		s.mu.Unlock()
		startedAt := time.Now()
		<-exited
		s.mu.Lock()
		stopping := s.stopping
		s.mu.Unlock()
		if stopping {
			return
		}
		if time.Since(startedAt) > time.Minute {
			backoff = time.Second
		}
		s.log.Error("containerd exited; restarting", "state", cmd.ProcessState.String(), "in", backoff)
		for {
			time.Sleep(backoff)
			backoff = min(2*backoff, 30*time.Second)
			s.mu.Lock()
			stopping := s.stopping
			s.mu.Unlock()
			if stopping {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err := s.start(ctx)
			cancel()
			if err == nil {
				break
			}
			if errors.Is(err, errStopping) {
				return
			}
			s.log.Error("containerd restart failed", "error", err)
		}
	}
}

func (s *supervisor) kill(cmd *exec.Cmd, exited chan struct{}) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (s *supervisor) stop() {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		<-s.done
		return
	}
	s.stopping = true
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	s.kill(cmd, exited)
	<-s.done
	close(s.spawn)
	_ = os.Remove(s.pidPath())
	s.log.Info("stopped containerd", "pid", cmd.Process.Pid)
}

// pidOf returns the pid of the containerd we started on dataDir, 0 if none.
func pidOf(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "containerd.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

var errStopping = errors.New("containerd: supervisor is stopping")
