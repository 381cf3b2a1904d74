// Package e2e tests Hive end to end: it builds the hive binary, makes hosts
// out of network namespaces on a Linux bridge, runs managers and workers in
// them, and drives the cluster through the CLI while it kills, pauses,
// restarts and partitions hosts.
//
// Everything the harness creates on the machine is named with a fixed prefix
// (namespaces hive-e2e-N, bridge hive-e2e-br, veths hveN, nft table
// inet hive_e2e inside the hosts) and removed when the test ends, pass or
// fail; TestMain sweeps leftovers of an interrupted run by the same prefix.
// Hosts use addresses in 198.18.0.0/24 and have no default route, so test
// traffic never leaves the machine.
//
// The tests need root, ip (iproute2) and nft (nftables); without them they
// fail, never skip, so a machine that cannot run them cannot pass.
package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hivesec/hive/structs"
)

// Time limits the harness uses. They bound waits for conditions; nothing
// asserts on how fast a condition became true.
const (
	// CLITimeout bounds one CLI call. A call against a host that lost its
	// leader may hang until the server gives up; this keeps a retry loop
	// moving.
	CLITimeout = 15 * time.Second
	// killTimeout bounds waiting for a SIGKILLed process to be reaped.
	killTimeout = 10 * time.Second
	// logTailLines is how much of each host's log a failed test prints.
	logTailLines = 120
)

// ErrStillRunning is returned by Host.Run when the command had not exited by
// its deadline; for a join that should have been refused it means the join
// was accepted and the daemon kept running.
var ErrStillRunning = errors.New("still running at deadline")

var (
	// binDir holds the built hive binary; runMain creates and removes it.
	binDir    string
	buildOnce sync.Once
	hiveBin   string
	buildErr  error

	// activeCluster guards the fixed names and addresses: two clusters at
	// once would collide on them, so the second NewCluster fails instead.
	activeCluster atomic.Bool
)

// runMain is the body of TestMain: it sweeps what an interrupted run left,
// runs the tests, and fails the run if anything the harness made survived.
func runMain(m *testing.M) int {
	if err := checkPrereqs(); err != nil {
		// Tests fail one by one in NewCluster with the same message; the
		// harness self-test still runs its non-root checks.
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
	} else if err := sweep(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: sweeping leftovers of an earlier run: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "hive-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	if checkPrereqs() == nil {
		if left, err := leftovers(); err != nil || left != "" {
			fmt.Fprintf(os.Stderr, "e2e: tests left behind %s (err %v); sweeping\n", left, err)
			_ = sweep()
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// HiveBinary returns the path of the hive binary under test, building it
// from the module root on first use. HIVE_E2E_BIN names a prebuilt binary
// instead. The build is lazy so the harness self-test runs without one.
func HiveBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("HIVE_E2E_BIN"); p != "" {
			hiveBin, buildErr = filepath.Abs(p)
			return
		}
		hiveBin, buildErr = buildHive()
	})
	if buildErr != nil {
		t.Fatalf("hive binary: %v", buildErr)
	}
	return hiveBin
}

func buildHive() (string, error) {
	if binDir == "" {
		return "", errors.New("build hive: binary dir not set (TestMain must call runMain)")
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("build hive: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("build hive: not inside the hive module (go env GOMOD is empty)")
	}
	bin := filepath.Join(binDir, "hive")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/hive")
	// Static, as `make build` makes it: workers bind-mount the binary
	// into containers to deliver env secrets (hive secret-exec).
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build hive: go build ./cmd/hive: %w\n%s", err, out)
	}
	return bin, nil
}

// Cluster is a set of hosts on one bridge plus what the CLI needs to talk to
// the Hive cluster running on them.
type Cluster struct {
	t testing.TB
	// Dir holds the hosts' data dirs and logs; removed when the test ends
	// unless it failed with HIVE_E2E_KEEP set.
	Dir   string
	Hosts []*Host

	// Set by Bootstrap from host 0's bootstrap/ directory.
	AdminToken   string
	WorkerToken  string
	ManagerToken string
	CACert       string // path of a copy of the cluster CA certificate

	// DaemonArgs, when set before Bootstrap, adds arguments to the daemon
	// command line of each host Bootstrap starts, by the role it joins as
	// (host 0 runs init as a manager). Restart repeats them.
	DaemonArgs func(h *Host, role structs.Role) []string

	mu       sync.Mutex
	api      *Host // default CLI target
	blocked  map[*Host]map[string]bool
	managers []*Host
	workers  []*Host
}

// Host is one simulated machine: a network namespace with its own address
// and hostname, a data dir, and at most one hive daemon.
type Host struct {
	Name    string // also the hostname the daemon sees
	NS      string // network namespace
	IP      string
	DataDir string
	LogPath string // daemon stdout+stderr, appended across restarts

	c  *Cluster
	mu sync.Mutex
	// bin and args are the program and arguments of the last Start, which
	// Restart repeats.
	bin  string
	args []string
	proc *process
}

type process struct {
	cmd    *exec.Cmd
	done   chan struct{}
	err    error       // set before done is closed
	killed atomic.Bool // the harness stopped it on purpose
}

// NewCluster creates n hosts, each in namespace hive-e2e-<i> with address
// 198.18.0.(10+i), all on one bridge that the test process can reach at
// 198.18.0.1. Everything is removed when the test ends.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if err := checkPrereqs(); err != nil {
		t.Fatalf("%v", err)
	}
	if n < 1 || n > maxHosts {
		t.Fatalf("NewCluster: %d hosts; want 1..%d", n, maxHosts)
	}
	if !activeCluster.CompareAndSwap(false, true) {
		t.Fatalf("NewCluster: another cluster is live; the harness runs one at a time (no t.Parallel)")
	}
	// A failed teardown of an earlier test could leave our names taken.
	if err := sweep(); err != nil {
		activeCluster.Store(false)
		t.Fatalf("NewCluster: %v", err)
	}
	// Not t.TempDir: its path carries the test name, and unix sockets under
	// a data dir (containerd's) must stay within 108 bytes.
	dir, err := os.MkdirTemp("", "hive-e2e-")
	if err != nil {
		activeCluster.Store(false)
		t.Fatalf("NewCluster: %v", err)
	}
	c := &Cluster{t: t, Dir: dir, blocked: map[*Host]map[string]bool{}}
	t.Cleanup(c.teardown)

	if err := createBridge(); err != nil {
		t.Fatalf("NewCluster: %v", err)
	}
	for i := range n {
		if err := createHostNetwork(i); err != nil {
			t.Fatalf("NewCluster: %v", err)
		}
		name := "host" + strconv.Itoa(i)
		h := &Host{
			Name:    name,
			NS:      hostNS(i),
			IP:      hostIP(i),
			DataDir: filepath.Join(c.Dir, name, "data"),
			LogPath: filepath.Join(c.Dir, name+".log"),
			c:       c,
		}
		if err := os.MkdirAll(h.DataDir, 0o700); err != nil {
			t.Fatalf("NewCluster: %v", err)
		}
		c.Hosts = append(c.Hosts, h)
	}
	c.api = c.Hosts[0]
	return c
}

// teardown kills every process, deletes the namespaces and links, and on
// failure prints the end of each host's log first.
func (c *Cluster) teardown() {
	if c.t.Failed() {
		c.dumpLogs()
	}
	for _, h := range c.Hosts {
		h.stop()
	}
	if err := sweep(); err != nil {
		c.t.Errorf("teardown: %v", err)
	}
	if left, err := leftovers(); err != nil || left != "" {
		c.t.Errorf("teardown left %s (err %v)", left, err)
	}
	// The daemons are dead, so their files can go; HIVE_E2E_KEEP keeps
	// them after a failure for a closer look.
	if c.t.Failed() && os.Getenv("HIVE_E2E_KEEP") != "" {
		c.t.Logf("HIVE_E2E_KEEP: data dirs and logs kept in %s", c.Dir)
	} else if err := os.RemoveAll(c.Dir); err != nil {
		c.t.Errorf("teardown: %v", err)
	}
	activeCluster.Store(false)
}

func (c *Cluster) dumpLogs() {
	for _, h := range c.Hosts {
		lines, err := tail(h.LogPath, logTailLines)
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue // never started
		case err != nil:
			c.t.Logf("%s: reading log: %v", h.Name, err)
			continue
		}
		c.t.Logf("---- %s (%s, %s) last %d lines of %s ----\n%s",
			h.Name, h.IP, h.state(), len(lines), h.LogPath, strings.Join(lines, "\n"))
	}
}

func tail(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tail: %w", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return lines, sc.Err()
}

// Host returns host i.
func (c *Cluster) Host(i int) *Host { return c.Hosts[i] }

// Managers returns the hosts Bootstrap joined as managers, host 0 first.
func (c *Cluster) Managers() []*Host { return slices.Clone(c.managers) }

// Workers returns the hosts Bootstrap joined as workers.
func (c *Cluster) Workers() []*Host { return slices.Clone(c.workers) }

// UseAPI makes h the default target of CLI and CLIJSON.
func (c *Cluster) UseAPI(h *Host) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.api = h
}

// API is the current default CLI target.
func (c *Cluster) API() *Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.api
}

// HostByIP returns the host with address ip, or nil.
func (c *Cluster) HostByIP(ip string) *Host {
	for _, h := range c.Hosts {
		if h.IP == ip {
			return h
		}
	}
	return nil
}

// HostByNodeID returns the host whose node.json carries id, or nil.
func (c *Cluster) HostByNodeID(id string) *Host {
	for _, h := range c.Hosts {
		if info, err := h.NodeInfo(); err == nil && info.ID == id {
			return h
		}
	}
	return nil
}

// hostFor maps a node or peer seen through the API to a host: by the IP in
// its address first (what the harness assigned), else by node ID.
func (c *Cluster) hostFor(id, addr string) *Host {
	ip := addr
	if host, _, err := net.SplitHostPort(addr); err == nil {
		ip = host
	}
	if h := c.HostByIP(ip); h != nil {
		return h
	}
	return c.HostByNodeID(id)
}

// ---- processes ----

// Start runs `hive args...` as the host's daemon, in its namespace and with
// its hostname, logging to LogPath. The test fails if a daemon is already
// running on the host.
func (h *Host) Start(args ...string) {
	h.c.t.Helper()
	h.startBinary(HiveBinary(h.c.t), args...)
}

// testClusterCIDR is the overlay of every e2e cluster: inside the test
// range 198.18.0.0/15, apart from the hosts' 198.18.x addresses.
const testClusterCIDR = "198.19.0.0/16"

// Init starts `hive init` for a new cluster on this host.
func (h *Host) Init(extra ...string) {
	h.c.t.Helper()
	// Every cluster's overlay is inside the test range (see network_test.go).
	h.Start(append([]string{"init", "--data-dir", h.DataDir, "--advertise", h.IP, "--log-level", "debug", "--cluster-cidr", testClusterCIDR}, extra...)...)
}

// Join starts `hive join` against the manager API at addr with token.
func (h *Host) Join(addr, token string, extra ...string) {
	h.c.t.Helper()
	h.Start(h.JoinArgs(addr, token, append([]string{"--log-level", "debug"}, extra...)...)...)
}

// JoinArgs are the arguments of `hive join` for this host, without a log
// level, for Run: a one-shot join whose stderr the test reads.
func (h *Host) JoinArgs(addr, token string, extra ...string) []string {
	return append([]string{"join", addr, "--token", token, "--data-dir", h.DataDir, "--advertise", h.IP}, extra...)
}

// wrap turns a command into the argv of one that runs inside the host: its
// network namespace, a private UTS namespace whose hostname is the host's
// name (so nodes do not all see the test machine's hostname), and a private
// mount namespace with the host's own sysfs (/sys/class/net shows the
// host's interfaces) but the machine's cgroup hierarchies, which runc needs
// to enforce limits. (`ip netns exec` remounts /sys and so hides
// /sys/fs/cgroup; this does what it does and puts the cgroups back.) Mounts
// made inside, containerd's among them, stay inside and vanish with the
// host's last process. Every step execs the next, so the PID the harness
// holds is the final program's.
func (h *Host) wrap(bin string, args ...string) []string {
	return append([]string{"nsenter", "--net=/run/netns/" + h.NS, "--",
		"unshare", "--uts", "--mount", "--propagation", "slave", "--",
		"/bin/sh", "-c", hostShell, h.Name, bin}, args...)
}

// hostShell sets up the host's mount namespace and hostname, then execs
// the command; $0 is the host name.
const hostShell = `set -e
d=/run/hive-e2e-cgroup
mkdir -p "$d"
mount --rbind /sys/fs/cgroup "$d"
umount -l /sys
mount -t sysfs sysfs /sys
mount --move "$d" /sys/fs/cgroup
hostname "$0"
exec "$@"`

func (h *Host) startBinary(bin string, args ...string) {
	t := h.c.t
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.proc != nil && !isDone(h.proc.done) {
		t.Fatalf("%s: Start: a daemon is already running (pid %d)", h.Name, h.proc.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(h.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("%s: Start: %v", h.Name, err)
	}
	defer logf.Close() // the child holds its own copy
	fmt.Fprintf(logf, "==== %s harness: start %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))

	argv := h.wrap(bin, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = processEnv(nil)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group, so signals reach anything the daemon forks.
		Setpgid: true,
		// If the test binary dies without cleanup, the daemon dies with it;
		// TestMain's sweep removes the namespaces on the next run.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: Start: %v", h.Name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
		if f, err := os.OpenFile(h.LogPath, os.O_WRONLY|os.O_APPEND, 0); err == nil {
			fmt.Fprintf(f, "==== %s harness: exited: %v (killed by harness: %v)\n", time.Now().Format(time.RFC3339Nano), p.err, p.killed.Load())
			f.Close()
		}
	}()
	h.proc = p
	h.bin, h.args = bin, slices.Clone(args)
	waitExec(p, bin)
}

// waitExec waits briefly until the wrapper chain (ip, unshare, sh) has
// exec'ed into bin, so the PID is the daemon's own when Start returns. A
// signal sent earlier could hit sh while it waits on a vforked hostname,
// which SIGSTOP would leave in uninterruptible sleep instead of stopped.
func waitExec(p *process, bin string) {
	comm := filepath.Base(bin)
	if len(comm) > 15 { // the kernel truncates comm to 15 bytes
		comm = comm[:15]
	}
	path := fmt.Sprintf("/proc/%d/comm", p.cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !isDone(p.done); {
		if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == comm {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func isDone(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Running reports whether the host's daemon is alive (paused counts).
func (h *Host) Running() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.proc != nil && !isDone(h.proc.done)
}

// CheckRunning returns an error if the daemon exited without the harness
// stopping it: a crash, or a refusal to start. WaitFor treats it as final.
func (h *Host) CheckRunning() error {
	h.mu.Lock()
	p := h.proc
	h.mu.Unlock()
	if p == nil || !isDone(p.done) || p.killed.Load() {
		return nil
	}
	return Permanent(fmt.Errorf("%s: hive %s exited: %v (see %s)", h.Name, strings.Join(h.args, " "), p.err, h.LogPath))
}

func (h *Host) state() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.proc == nil:
		return "never started"
	case !isDone(h.proc.done):
		return fmt.Sprintf("running, pid %d", h.proc.cmd.Process.Pid)
	default:
		return fmt.Sprintf("exited: %v", h.proc.err)
	}
}

// Kill SIGKILLs the daemon and everything else in the host, like pulling
// the plug, and waits until the daemon is reaped. A stopped host is a no-op.
func (h *Host) Kill() {
	h.c.t.Helper()
	if err := h.stop(); err != nil {
		h.c.t.Fatalf("%s: Kill: %v", h.Name, err)
	}
}

func (h *Host) stop() error {
	h.mu.Lock()
	p := h.proc
	h.mu.Unlock()
	var errs []error
	if p != nil && !isDone(p.done) {
		p.killed.Store(true)
		// The group first, so forks die with the daemon; a stopped
		// (paused) process dies on SIGKILL too.
		if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill process group %d: %w", p.cmd.Process.Pid, err))
		}
		select {
		case <-p.done:
		case <-time.After(killTimeout):
			errs = append(errs, fmt.Errorf("pid %d not reaped %v after SIGKILL", p.cmd.Process.Pid, killTimeout))
		}
	}
	// Anything that left the process group (a supervised containerd that
	// called setsid, say) is still in the namespace.
	if err := killNetns(h.NS); err != nil {
		errs = append(errs, err)
	}
	// Containers are not: each has its own network namespace. A host that
	// is pulled loses them too.
	if err := killContainers(h.DataDir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// KillAgent SIGKILLs only the daemon process, not its process group or
// anything else in the host: containerd shims, and with them the
// containers, keep running. (A containerd the agent started as its child
// gets SIGKILL from the kernel too, through its parent-death signal; the
// shims do not.) Relaunch starts the daemon again without touching them.
func (h *Host) KillAgent() {
	t := h.c.t
	t.Helper()
	h.mu.Lock()
	p := h.proc
	h.mu.Unlock()
	if p == nil || isDone(p.done) {
		t.Fatalf("%s: KillAgent: no daemon running", h.Name)
	}
	p.killed.Store(true)
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("%s: KillAgent: %v", h.Name, err)
	}
	select {
	case <-p.done:
	case <-time.After(killTimeout):
		t.Fatalf("%s: KillAgent: pid %d not reaped %v after SIGKILL", h.Name, p.cmd.Process.Pid, killTimeout)
	}
}

// Relaunch starts the daemon again with the arguments of the last Start,
// after KillAgent: unlike Restart it kills nothing first, so whatever the
// old daemon left running in the host (containers, shims) is still there.
func (h *Host) Relaunch() {
	t := h.c.t
	t.Helper()
	h.mu.Lock()
	bin, args, p := h.bin, slices.Clone(h.args), h.proc
	h.mu.Unlock()
	if p == nil {
		t.Fatalf("%s: Relaunch: never started", h.Name)
	}
	h.startBinary(bin, args...)
}

// Pid is the daemon's process ID, 0 when none runs.
func (h *Host) Pid() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.proc == nil || isDone(h.proc.done) {
		return 0
	}
	return h.proc.cmd.Process.Pid
}

// ContainerdSocket is where a worker started with WorkerArgs has its own
// containerd: nothing answers there before the agent starts one.
func (h *Host) ContainerdSocket() string {
	return filepath.Join(h.DataDir, "containerd", "containerd.sock")
}

// WorkerArgs are the daemon arguments that give a worker host its own
// containerd (the DESIGN's "each worker with its own containerd").
func (h *Host) WorkerArgs() []string {
	return []string{"--containerd-address", h.ContainerdSocket()}
}

// Pause freezes the daemon with SIGSTOP: its sockets stay open but it
// answers nothing, like a hung machine.
func (h *Host) Pause() { h.signal("Pause", syscall.SIGSTOP) }

// Resume continues a paused daemon with SIGCONT.
func (h *Host) Resume() { h.signal("Resume", syscall.SIGCONT) }

func (h *Host) signal(op string, sig syscall.Signal) {
	t := h.c.t
	t.Helper()
	h.mu.Lock()
	p := h.proc
	h.mu.Unlock()
	if p == nil || isDone(p.done) {
		t.Fatalf("%s: %s: no daemon running", h.Name, op)
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil {
		t.Fatalf("%s: %s: signal %v to process group %d: %v", h.Name, op, sig, p.cmd.Process.Pid, err)
	}
}

// Restart starts the daemon again with the arguments of the last Start,
// killing it first if it still runs. The data dir is kept, so the node
// resumes.
func (h *Host) Restart() {
	t := h.c.t
	t.Helper()
	h.mu.Lock()
	bin, args, p := h.bin, slices.Clone(h.args), h.proc
	h.mu.Unlock()
	if p == nil {
		t.Fatalf("%s: Restart: never started", h.Name)
	}
	h.Kill()
	h.startBinary(bin, args...)
}

// ResetData kills the daemon and empties the data dir, so the host can join
// again as a brand-new node.
func (h *Host) ResetData() {
	t := h.c.t
	t.Helper()
	h.Kill()
	if err := os.RemoveAll(h.DataDir); err != nil {
		t.Fatalf("%s: ResetData: %v", h.Name, err)
	}
	if err := os.MkdirAll(h.DataDir, 0o700); err != nil {
		t.Fatalf("%s: ResetData: %v", h.Name, err)
	}
}

// Run runs `hive args...` inside the host to completion and returns its
// output, for commands expected to exit (a join that must be refused). If
// it still runs after timeout it is killed and the error wraps
// ErrStillRunning. Output is also appended to the host's log.
func (h *Host) Run(timeout time.Duration, args ...string) (stdout, stderr string, err error) {
	return h.runBinary(HiveBinary(h.c.t), timeout, args...)
}

func (h *Host) runBinary(bin string, timeout time.Duration, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := h.wrap(bin, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = processEnv(nil)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out, errb strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &errb
	runErr := cmd.Run()
	if ctx.Err() != nil {
		runErr = fmt.Errorf("%s: hive %s: %w after %v", h.Name, strings.Join(args, " "), ErrStillRunning, timeout)
	} else if runErr != nil {
		runErr = fmt.Errorf("%s: hive %s: %w", h.Name, strings.Join(args, " "), runErr)
	}
	if f, err := os.OpenFile(h.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		fmt.Fprintf(f, "==== %s harness: ran %s %s: %v\n--- stdout\n%s--- stderr\n%s----\n",
			time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "), runErr, out.String(), errb.String())
		f.Close()
	}
	return out.String(), errb.String(), runErr
}

// processEnv is the environment for hive processes: the test's own, minus
// anything that could redirect traffic (proxies) or leak settings (HIVE_*),
// plus extra.
func processEnv(extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		uk := strings.ToUpper(k)
		if strings.HasPrefix(uk, "HIVE_") || strings.HasSuffix(uk, "_PROXY") {
			continue
		}
		env = append(env, kv)
	}
	// Belt and braces: even a proxy variable set later is bypassed.
	env = append(env, "NO_PROXY=*", "no_proxy=*")
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// ---- node identity ----

// NodeInfo is the part of a node's data dir the tests read.
type NodeInfo struct {
	ID   string       `json:"id"`
	Role structs.Role `json:"role"`
}

// NodeInfo reads DataDir/node.json, written once the node has joined.
func (h *Host) NodeInfo() (NodeInfo, error) {
	var info NodeInfo
	b, err := os.ReadFile(filepath.Join(h.DataDir, "node.json"))
	if err != nil {
		return info, fmt.Errorf("%s: node identity: %w", h.Name, err)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("%s: node identity: parse node.json: %w", h.Name, err)
	}
	if info.ID == "" {
		return info, fmt.Errorf("%s: node identity: node.json has no id", h.Name)
	}
	return info, nil
}

// NodeID returns the node's ID or fails the test.
func (h *Host) NodeID() string {
	h.c.t.Helper()
	info, err := h.NodeInfo()
	if err != nil {
		h.c.t.Fatalf("%v", err)
	}
	return info.ID
}

// APIAddr is the host's API address, IP:7400.
func (h *Host) APIAddr() string {
	return net.JoinHostPort(h.IP, strconv.Itoa(structs.DefaultAPIPort))
}

// URL is the host's API base URL.
func (h *Host) URL() string { return "https://" + h.APIAddr() }

// TLSClient returns an HTTPS client that presents the node's own mTLS
// identity (DataDir/tls) and trusts only the cluster CA, to call the API as
// that node would.
func (h *Host) TLSClient() (*http.Client, error) {
	dir := filepath.Join(h.DataDir, "tls")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key"))
	if err != nil {
		return nil, fmt.Errorf("%s: node certificate: %w", h.Name, err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, fmt.Errorf("%s: node CA: %w", h.Name, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: node CA: no certificate in %s", h.Name, filepath.Join(dir, "ca.pem"))
	}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:             nil, // never a proxy: only the test hosts are targets
			TLSClientConfig:   &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true, // every call is a fresh handshake, so revocation shows at once
		},
	}, nil
}

// ---- network faults ----

// Partition drops all traffic between every host of a and every host of b,
// both ways, with nftables rules inside the hosts. Partitions add up; Heal
// removes them all. The test process (198.18.0.1) still reaches every host,
// so the CLI can talk to both sides.
func (c *Cluster) Partition(a, b []*Host) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	block := func(from, to []*Host) {
		for _, x := range from {
			if c.blocked[x] == nil {
				c.blocked[x] = map[string]bool{}
			}
			for _, y := range to {
				if x == y {
					c.t.Fatalf("Partition: %s is on both sides", x.Name)
				}
				c.blocked[x][y.IP] = true
			}
		}
	}
	block(a, b)
	block(b, a)
	for _, h := range append(slices.Clone(a), b...) {
		if err := applyNft(h.NS, nftScript(sortedKeys(c.blocked[h]))); err != nil {
			c.t.Fatalf("Partition: %v", err)
		}
	}
	c.t.Logf("partition: %v | %v", names(a), names(b))
}

// Heal removes every partition.
func (c *Cluster) Heal() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.blocked)
	for _, h := range c.Hosts {
		if err := applyNft(h.NS, nftScript(nil)); err != nil {
			c.t.Fatalf("Heal: %v", err)
		}
	}
	c.t.Logf("partitions healed")
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func names(hs []*Host) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Name
	}
	return out
}

// ---- CLI ----

// CLI runs the hive CLI from the test process against the default API host
// (see UseAPI) with the admin token and cluster CA.
func (c *Cluster) CLI(args ...string) (stdout, stderr string, err error) {
	return c.CLIOn(c.API(), args...)
}

// CLIOn runs the hive CLI against h's API. A non-zero exit is an error that
// carries stderr.
func (c *Cluster) CLIOn(h *Host, args ...string) (stdout, stderr string, err error) {
	return c.CLIWithin(h, CLITimeout, args...)
}

// CLIWithin is CLIOn with its own time limit, for commands that follow a
// deployment and so outlast CLITimeout.
func (c *Cluster) CLIWithin(h *Host, timeout time.Duration, args ...string) (stdout, stderr string, err error) {
	return c.runCLI(h, timeout, map[string]string{"HIVE_TOKEN": c.AdminToken}, "", args...)
}

// runCLI runs the hive binary on the test machine against h's API with
// the cluster CA, the variables in env added, and stdin when not empty.
func (c *Cluster) runCLI(h *Host, timeout time.Duration, env map[string]string, stdin string, args ...string) (stdout, stderr string, err error) {
	bin := HiveBinary(c.t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	vars := map[string]string{"HIVE_ADDR": h.URL(), "HIVE_CACERT": c.CACert}
	for k, v := range env {
		vars[k] = v
	}
	cmd.Env = processEnv(vars)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	cmd.WaitDelay = 5 * time.Second
	var out, errb strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &errb
	runErr := cmd.Run()
	if ctx.Err() != nil {
		runErr = fmt.Errorf("hive %s (on %s): no answer within %v", strings.Join(args, " "), h.Name, timeout)
	} else if runErr != nil {
		runErr = fmt.Errorf("hive %s (on %s): %w: %s", strings.Join(args, " "), h.Name, runErr, strings.TrimSpace(errb.String()))
	}
	return out.String(), errb.String(), runErr
}

// MustCLI runs the CLI against the default host and fails the test on error.
func (c *Cluster) MustCLI(args ...string) string {
	c.t.Helper()
	out, _, err := c.CLI(args...)
	if err != nil {
		c.t.Fatalf("%v", err)
	}
	return out
}

// CLIJSON runs the CLI against the default host and decodes its JSON output
// into v. It adds "-o json" unless args already choose an output format.
func (c *Cluster) CLIJSON(v any, args ...string) error {
	return c.CLIJSONOn(c.API(), v, args...)
}

// CLIJSONOn is CLIJSON against h.
func (c *Cluster) CLIJSONOn(h *Host, v any, args ...string) error {
	if !slices.Contains(args, "-o") && !slices.Contains(args, "--output") {
		args = append(slices.Clone(args), "-o", "json")
	}
	out, _, err := c.CLIOn(h, args...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("hive %s (on %s): decode JSON output: %w: %q", strings.Join(args, " "), h.Name, err, truncate(out, 400))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Peers is `hive operator raft peers` as seen by h.
func (c *Cluster) Peers(h *Host) ([]structs.RaftPeer, error) {
	var peers []structs.RaftPeer
	err := c.CLIJSONOn(h, &peers, "operator", "raft", "peers")
	return peers, err
}

// Nodes is `hive node ls` as answered by h.
func (c *Cluster) Nodes(h *Host) ([]structs.NodePublic, error) {
	var nodes []structs.NodePublic
	err := c.CLIJSONOn(h, &nodes, "node", "ls")
	return nodes, err
}

// Namespaces is the set of namespace names h reports.
func (c *Cluster) Namespaces(h *Host) (map[string]bool, error) {
	var nss []structs.Namespace
	if err := c.CLIJSONOn(h, &nss, "namespace", "ls"); err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(nss))
	for _, ns := range nss {
		set[ns.Name] = true
	}
	return set, nil
}

// Leader asks h for the Raft peers and returns the host of the single
// leader among them; zero or several leaders is an error.
func (c *Cluster) Leader(h *Host) (*Host, error) {
	peers, err := c.Peers(h)
	if err != nil {
		return nil, err
	}
	var leaders []structs.RaftPeer
	for _, p := range peers {
		if p.Leader {
			leaders = append(leaders, p)
		}
	}
	if len(leaders) != 1 {
		return nil, fmt.Errorf("%s sees %d leaders among peers %+v; want 1", h.Name, len(leaders), peers)
	}
	lh := c.hostFor(leaders[0].ID, leaders[0].Address)
	if lh == nil {
		return nil, fmt.Errorf("%s: leader %s at %s is none of the harness's hosts", h.Name, leaders[0].ID, leaders[0].Address)
	}
	return lh, nil
}

// ---- bootstrap ----

// Bootstrap builds a Hive cluster on the hosts: host 0 runs `hive init`,
// hosts 1..managers-1 join as managers one at a time (each waited for as a
// Raft voter) and the next workers hosts join as workers; it returns once
// every node is listed alive. It sets the tokens and CA for the CLI.
func (c *Cluster) Bootstrap(managers, workers int) {
	t := c.t
	t.Helper()
	if managers < 1 || managers+workers > len(c.Hosts) {
		t.Fatalf("Bootstrap(%d, %d) on %d hosts", managers, workers, len(c.Hosts))
	}
	start := time.Now()
	extra := func(h *Host, role structs.Role) []string {
		if c.DaemonArgs == nil {
			return nil
		}
		return c.DaemonArgs(h, role)
	}
	h0 := c.Hosts[0]
	h0.Init(extra(h0, structs.RoleManager)...)
	boot := filepath.Join(h0.DataDir, "bootstrap")
	WaitFor(t, 60*time.Second, "host0 to write bootstrap/ (tokens and CA)", func() error {
		if err := h0.CheckRunning(); err != nil {
			return err
		}
		for _, f := range []string{"admin.token", "worker.token", "manager.token", "ca.pem"} {
			if _, err := os.Stat(filepath.Join(boot, f)); err != nil {
				return err
			}
		}
		return nil
	})
	c.AdminToken = readToken(t, filepath.Join(boot, "admin.token"))
	c.WorkerToken = readToken(t, filepath.Join(boot, "worker.token"))
	c.ManagerToken = readToken(t, filepath.Join(boot, "manager.token"))
	ca, err := os.ReadFile(filepath.Join(boot, "ca.pem"))
	if err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	// A copy, so the CLI keeps working whatever happens to host0's files.
	c.CACert = filepath.Join(c.Dir, "ca.pem")
	if err := os.WriteFile(c.CACert, ca, 0o644); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	c.managers, c.workers = []*Host{h0}, nil
	c.waitVoters(h0, c.managers)

	for _, h := range c.Hosts[1:managers] {
		h.Join(h0.APIAddr(), c.ManagerToken, extra(h, structs.RoleManager)...)
		c.managers = append(c.managers, h)
		c.waitRole(h, structs.RoleManager)
		c.waitVoters(h0, c.managers)
	}
	for _, h := range c.Hosts[managers : managers+workers] {
		h.Join(h0.APIAddr(), c.WorkerToken, extra(h, structs.RoleWorker)...)
		c.workers = append(c.workers, h)
	}
	for _, h := range c.workers {
		c.waitRole(h, structs.RoleWorker)
	}
	all := append(c.Managers(), c.workers...)
	WaitFor(t, 60*time.Second, fmt.Sprintf("%d nodes alive in node ls", len(all)), func() error {
		if err := c.CheckRunning(); err != nil {
			return err
		}
		return c.nodesAlive(h0, all)
	})
	t.Logf("bootstrap: %d managers, %d workers up in %v", managers, workers, time.Since(start).Round(time.Millisecond))
}

func readToken(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read token: %v", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		t.Fatalf("read token: %s is empty", path)
	}
	return tok
}

// CheckRunning returns a permanent error if any started daemon has exited
// on its own.
func (c *Cluster) CheckRunning() error {
	for _, h := range c.Hosts {
		if err := h.CheckRunning(); err != nil {
			return err
		}
	}
	return nil
}

// waitRole waits for h to write node.json with the given role.
func (c *Cluster) waitRole(h *Host, role structs.Role) {
	c.t.Helper()
	WaitFor(c.t, 90*time.Second, fmt.Sprintf("%s to join as %s", h.Name, role), func() error {
		if err := h.CheckRunning(); err != nil {
			return err
		}
		info, err := h.NodeInfo()
		if err != nil {
			return err
		}
		if info.Role != role {
			return Permanent(fmt.Errorf("%s joined as %q, want %q", h.Name, info.Role, role))
		}
		return nil
	})
}

// waitVoters waits until h reports exactly the managers as Raft voters with
// one leader among them.
func (c *Cluster) waitVoters(h *Host, managers []*Host) {
	c.t.Helper()
	WaitFor(c.t, 90*time.Second, fmt.Sprintf("%d raft voters with a leader", len(managers)), func() error {
		if err := c.CheckRunning(); err != nil {
			return err
		}
		return c.checkVoters(h, managers)
	})
}

// checkVoters checks h's view of Raft: the voters are exactly managers and
// exactly one of them leads.
func (c *Cluster) checkVoters(h *Host, managers []*Host) error {
	peers, err := c.Peers(h)
	if err != nil {
		return err
	}
	want := map[*Host]bool{}
	for _, m := range managers {
		want[m] = true
	}
	leaders := 0
	got := map[*Host]bool{}
	for _, p := range peers {
		ph := c.hostFor(p.ID, p.Address)
		if ph == nil {
			return fmt.Errorf("peer %s at %s is none of the harness's hosts", p.ID, p.Address)
		}
		if !p.Voter {
			return fmt.Errorf("peer %s (%s) is not a voter yet", ph.Name, p.Address)
		}
		got[ph] = true
		if p.Leader {
			leaders++
		}
	}
	if len(got) != len(want) || len(peers) != len(want) {
		return fmt.Errorf("%s lists peers %+v; want voters %v", h.Name, peers, names(managers))
	}
	for m := range want {
		if !got[m] {
			return fmt.Errorf("%s lists peers %+v; %s missing", h.Name, peers, m.Name)
		}
	}
	if leaders != 1 {
		return fmt.Errorf("%s lists %d leaders among %+v; want 1", h.Name, leaders, peers)
	}
	return nil
}

// nodesAlive checks that h lists exactly hosts as nodes, all alive.
func (c *Cluster) nodesAlive(h *Host, hosts []*Host) error {
	nodes, err := c.Nodes(h)
	if err != nil {
		return err
	}
	if len(nodes) != len(hosts) {
		return fmt.Errorf("node ls on %s lists %d nodes, want %d: %+v", h.Name, len(nodes), len(hosts), nodes)
	}
	for _, n := range nodes {
		nh := c.hostFor(n.ID, n.Address)
		if nh == nil || !slices.Contains(hosts, nh) {
			return fmt.Errorf("node ls on %s lists unexpected node %+v", h.Name, n)
		}
		if n.Status != structs.NodeStatusReady {
			return fmt.Errorf("node %s (%s) is %q, want %q", n.ID, nh.Name, n.Status, structs.NodeStatusReady)
		}
	}
	return nil
}

// ---- waiting ----

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks an error that WaitFor must not wait out: the condition
// can no longer become true (a daemon crashed, say), so fail now.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// WaitFor is the package's WaitFor that also gives up at once when a daemon
// of the cluster has crashed, instead of waiting out the timeout.
func (c *Cluster) WaitFor(timeout time.Duration, desc string, cond func() error) {
	c.t.Helper()
	WaitFor(c.t, timeout, desc, func() error {
		if err := c.CheckRunning(); err != nil {
			return err
		}
		return cond()
	})
}

// WaitFor polls cond until it returns nil, failing the test with desc and
// the last error if timeout passes first or cond returns a Permanent error.
// It bounds waiting for a state; it is not a performance assertion.
func WaitFor(t testing.TB, timeout time.Duration, desc string, cond func() error) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("waiting for %s: %v", desc, err)
	}
}

// Poll is WaitFor without the test: it returns nil once cond does, or an
// error carrying cond's last error.
func Poll(timeout time.Duration, cond func() error) error {
	const interval = 200 * time.Millisecond
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return fmt.Errorf("gave up after %v: %w", time.Since(start).Round(time.Millisecond), perm.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v: last error: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}

// ---- CLI as other identities ----

// CLIEnv runs the hive CLI from the test process against h's API with the
// cluster CA, like CLIOn, but without the admin token: env supplies the
// identity (HIVE_CONFIG naming a file that `hive login` wrote, or
// HIVE_TOKEN), and stdin, when not empty, is fed to standard input
// (passwords for --password-stdin). A non-zero exit is an error that wraps
// the *exec.ExitError and carries stderr.
func (c *Cluster) CLIEnv(h *Host, env map[string]string, stdin string, args ...string) (stdout, stderr string, err error) {
	return c.runCLI(h, CLITimeout, env, stdin, args...)
}

// RunEnv is Run with extra environment and standard input: `hive args...`
// runs inside the host (so its calls come from the host's address) with
// env added and stdin, when not empty, on standard input. stdin is not
// copied to the host's log, since it usually holds a password.
func (h *Host) RunEnv(timeout time.Duration, env map[string]string, stdin string, args ...string) (stdout, stderr string, err error) {
	bin := HiveBinary(h.c.t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := h.wrap(bin, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = processEnv(env)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out, errb strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &errb
	runErr := cmd.Run()
	if ctx.Err() != nil {
		runErr = fmt.Errorf("%s: hive %s: %w after %v", h.Name, strings.Join(args, " "), ErrStillRunning, timeout)
	} else if runErr != nil {
		runErr = fmt.Errorf("%s: hive %s: %w: %s", h.Name, strings.Join(args, " "), runErr, strings.TrimSpace(errb.String()))
	}
	if f, err := os.OpenFile(h.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		fmt.Fprintf(f, "==== %s harness: ran %s %s: %v\n--- stdout\n%s--- stderr\n%s----\n",
			time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "), runErr, out.String(), errb.String())
		f.Close()
	}
	return out.String(), errb.String(), runErr
}
