package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Names and addresses of everything the harness creates on the machine. They
// all carry a prefix so that a sweep can find leftovers of an interrupted run
// without touching anything else; interface names must stay within the
// kernel's 15-character limit.
const (
	nsPrefix   = "hive-e2e-"   // network namespaces: hive-e2e-0, hive-e2e-1, ...
	bridgeName = "hive-e2e-br" // the hosts' shared L2 segment, in the root namespace
	vethPrefix = "hve"         // root-side veth ends: hve0, hve1, ...
	nftTable   = "hive_e2e"    // "inet hive_e2e", only ever inside host namespaces

	// The hosts live in 198.18.0.0/24, inside the benchmarking range
	// 198.18.0.0/15 that no real network routes, so a stray packet cannot
	// reach anything outside this machine. Hosts get no default route.
	subnetPrefix = "198.18.0."
	subnetBits   = 24
	bridgeIP     = subnetPrefix + "1"
	firstHostIP  = 10
	maxHosts     = 50
)

// cmdTimeout bounds every ip/nft invocation; they are local and fast, so a
// hang means something is wrong and should fail the test rather than stall it.
const cmdTimeout = 30 * time.Second

// run executes a setup command and returns its combined output. Errors carry
// the command line and output so a failing setup step explains itself.
func run(name string, args ...string) (string, error) {
	return runStdin(nil, name, args...)
}

func runStdin(stdin []byte, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// checkPrereqs says what the harness is missing on this machine, or nil.
// Tests call it through NewCluster and fail (never skip) when it errors, so
// a CI machine without the tools cannot pass by running nothing.
func checkPrereqs(extra ...string) error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces and nftables need CAP_NET_ADMIN)")
	}
	tools := append([]string{"ip", "nft", "nsenter", "unshare", "hostname", "mount"}, extra...)
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, fmt.Sprintf("%q in PATH (run scripts/install-deps.sh)", tool))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("e2e prerequisites missing: %s", strings.Join(missing, "; "))
	}
	return nil
}

// hostNS and hostVeth name the namespace and root-side veth of host i.
func hostNS(i int) string   { return nsPrefix + strconv.Itoa(i) }
func hostVeth(i int) string { return vethPrefix + strconv.Itoa(i) }
func hostIP(i int) string   { return subnetPrefix + strconv.Itoa(firstHostIP+i) }

// createBridge makes the shared bridge with the root namespace's address on
// it, so the CLI and Go clients in the test process reach every host.
func createBridge() error {
	steps := [][]string{
		{"link", "add", bridgeName, "type", "bridge"},
		{"addr", "add", fmt.Sprintf("%s/%d", bridgeIP, subnetBits), "dev", bridgeName},
		{"link", "set", bridgeName, "up"},
	}
	for _, s := range steps {
		if _, err := run("ip", s...); err != nil {
			return fmt.Errorf("create bridge %s: %w", bridgeName, err)
		}
	}
	disableIPv6(bridgeName)
	return nil
}

// createHostNetwork makes host i's namespace and wires it to the bridge with
// a veth pair whose inner end is eth0.
func createHostNetwork(i int) error {
	ns, veth := hostNS(i), hostVeth(i)
	steps := [][]string{
		{"netns", "add", ns},
		{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"link", "set", veth, "master", bridgeName},
		{"link", "set", veth, "up"},
		// No IPv6 inside: the hosts speak IPv4 only, and this keeps router
		// solicitations and DAD chatter off the bridge.
		{"netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"},
		{"-n", ns, "addr", "add", fmt.Sprintf("%s/%d", hostIP(i), subnetBits), "dev", "eth0"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if _, err := run("ip", s...); err != nil {
			return fmt.Errorf("create host %s: %w", ns, err)
		}
	}
	disableIPv6(veth)
	return nil
}

// disableIPv6 is best effort: it only trims link-local noise, so a kernel
// without IPv6 is fine.
func disableIPv6(link string) {
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+link+"/disable_ipv6", []byte("1"), 0o644)
}

// listNetns returns the harness's namespaces present on the machine.
func listNetns() ([]string, error) {
	out, err := run("ip", "netns", "list")
	if err != nil {
		return nil, fmt.Errorf("list network namespaces: %w", err)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		// Lines look like "hive-e2e-0 (id: 3)" or just "hive-e2e-0".
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], nsPrefix) {
			names = append(names, f[0])
		}
	}
	sort.Strings(names)
	return names, nil
}

// listLinks returns the harness's links in the root namespace.
func listLinks() ([]string, error) {
	out, err := run("ip", "-o", "link", "show")
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		// "12: hve0@if2: <BROADCAST,...> ..." - the name ends at '@' or ':'.
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(f[1], ":")
		if at := strings.IndexByte(name, '@'); at >= 0 {
			name = name[:at]
		}
		if isHarnessLink(name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// isHarnessLink matches the bridge and veths "hve<digits>" exactly, so an
// unrelated interface that merely starts with "hve" is never deleted.
func isHarnessLink(name string) bool {
	if name == bridgeName {
		return true
	}
	rest, ok := strings.CutPrefix(name, vethPrefix)
	if !ok || rest == "" {
		return false
	}
	_, err := strconv.Atoi(rest)
	return err == nil
}

// netnsPids lists the processes running in a namespace.
func netnsPids(ns string) ([]int, error) {
	out, err := run("ip", "netns", "pids", ns)
	if err != nil {
		return nil, fmt.Errorf("list processes in %s: %w", ns, err)
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killNetns SIGKILLs every process in ns and waits briefly for them to go,
// so the namespace's interfaces are released when it is deleted.
func killNetns(ns string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, err := netnsPids(ns)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v in %s survive SIGKILL", pids, ns)
		}
		for _, pid := range pids {
			// ESRCH just means it already went.
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sweep removes every namespace and link the harness may have left behind,
// whether from this run or an interrupted earlier one. It keeps going after
// an error so one stuck object does not shield the others, and reports all.
func sweep() error {
	var errs []string
	names, err := listNetns()
	if err != nil {
		errs = append(errs, err.Error())
	}
	for _, ns := range names {
		if err := killNetns(ns); err != nil {
			errs = append(errs, err.Error())
		}
		if _, err := run("ip", "netns", "delete", ns); err != nil {
			errs = append(errs, fmt.Sprintf("delete netns %s: %v", ns, err))
		}
	}
	// Containers live in network namespaces of their own, so killing the
	// hosts' processes leaves them running; find them through the task
	// state of every worker's containerd under our data dirs.
	for _, dir := range hostDataDirs() {
		if err := killContainers(dir); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for _, mp := range harnessMounts() {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Sprintf("unmount %s: %v", mp, err))
		}
	}
	links, err := listLinks()
	if err != nil {
		errs = append(errs, err.Error())
	}
	for _, l := range links {
		// Deleting a namespace destroys its veth pair asynchronously, so the
		// root end may vanish between the listing and here: not an error.
		if out, err := run("ip", "link", "delete", l); err != nil && !strings.Contains(out, "Cannot find device") {
			errs = append(errs, fmt.Sprintf("delete link %s: %v", l, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("sweep: %s", strings.Join(errs, "; "))
	}
	return nil
}

// leftovers describes harness objects still present, or "" if none.
func leftovers() (string, error) {
	names, err := listNetns()
	if err != nil {
		return "", err
	}
	links, err := listLinks()
	if err != nil {
		return "", err
	}
	var ctrs []string
	for _, dir := range hostDataDirs() {
		inits, err := containerInits(dir)
		if err != nil {
			return "", err
		}
		for _, ci := range inits {
			ctrs = append(ctrs, fmt.Sprintf("%s (pid %d)", ci.id, ci.pid))
		}
	}
	mounts := harnessMounts()
	if len(names) == 0 && len(links) == 0 && len(ctrs) == 0 && len(mounts) == 0 {
		return "", nil
	}
	return fmt.Sprintf("netns %v, links %v, containers %v, mounts %v", names, links, ctrs, mounts), nil
}

// dataDirPattern matches every host data dir of this and earlier runs
// (NewCluster makes them as <tmp>/hive-e2e-XXXX/hostN/data).
func dataDirPattern() string {
	return filepath.Join(os.TempDir(), nsPrefix+"*", "host*", "data")
}

func hostDataDirs() []string {
	dirs, _ := filepath.Glob(dataDirPattern())
	return dirs
}

// containerInit is a container's init process, found through its
// containerd's task state.
type containerInit struct {
	id  string
	pid int
}

// containerInits lists the live containers a worker's own containerd
// (under dataDir/containerd) started: runc's shim keeps each task's bundle,
// with the pid of its init, at
// state/io.containerd.runtime.v2.task/<namespace>/<id>/init.pid. A pid counts
// only while its cgroup still names the container, so a recycled pid is
// never touched.
func containerInits(dataDir string) ([]containerInit, error) {
	paths, err := filepath.Glob(filepath.Join(dataDir, "containerd", "state", "io.containerd.runtime.v2.task", "*", "*", "init.pid"))
	if err != nil {
		return nil, err
	}
	var out []containerInit
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the task went while we looked
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		id := filepath.Base(filepath.Dir(p))
		if containerAlive(pid, id) {
			out = append(out, containerInit{id: id, pid: pid})
		}
	}
	return out, nil
}

// containerAlive: pid runs (a zombie does not count) in a cgroup that names
// container id.
func containerAlive(pid int, id string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S ..." - the state follows the last ')'.
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	return err == nil && strings.Contains(string(cg), "/"+id)
}

// killContainers SIGKILLs the init of every container of dataDir's
// containerd (which ends its PID namespace, so the whole container) and
// waits for them to go.
func killContainers(dataDir string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		inits, err := containerInits(dataDir)
		if err != nil {
			return fmt.Errorf("containers under %s: %w", dataDir, err)
		}
		if len(inits) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containers %v under %s survive SIGKILL", inits, dataDir)
		}
		for _, ci := range inits {
			_ = syscall.Kill(ci.pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// harnessMounts lists mount points in this mount namespace under the
// harness's temporary dirs. The workers' containerd mounts in the private
// mount namespace each host has (see Host.wrap), so none are expected; this
// catches one that leaked anyway.
func harnessMounts() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	prefix := filepath.Join(os.TempDir(), nsPrefix)
	var mps []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], prefix) {
			mps = append(mps, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mps))) // deepest first
	return mps
}

// nftScript renders the partition table for one host: every packet to or
// from a blocked address is dropped in both directions. The table is
// declared, deleted and re-created in one nft transaction, so an update
// replaces the old rules atomically and an empty block list removes them.
func nftScript(blocked []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {}\ndelete table inet %s\n", nftTable, nftTable)
	if len(blocked) == 0 {
		return b.String()
	}
	set := strings.Join(blocked, ", ")
	fmt.Fprintf(&b, "table inet %s {\n", nftTable)
	fmt.Fprintf(&b, "\tchain input {\n\t\ttype filter hook input priority -10; policy accept;\n\t\tip saddr { %s } drop\n\t}\n", set)
	fmt.Fprintf(&b, "\tchain output {\n\t\ttype filter hook output priority -10; policy accept;\n\t\tip daddr { %s } drop\n\t}\n", set)
	b.WriteString("}\n")
	return b.String()
}

// applyNft loads script into ns's nftables.
func applyNft(ns, script string) error {
	if _, err := runStdin([]byte(script), "ip", "netns", "exec", ns, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("nftables in %s: %w", ns, err)
	}
	return nil
}
