package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/client/driver/testimage"
	"github.com/hivesec/hive/structs"
)

// Acceptance tests for the worker: allocations run in containers through
// each worker's own containerd, with a restricted security context, logs,
// re-attachment after an agent restart, and node loss. Every worker host
// runs its own containerd (the agent starts one under its data dir, as
// nothing answers at --containerd-address there); the harness kills those
// daemons and their containers with the host.

var (
	imageOnce sync.Once
	imagePath string
	imageInfo testimage.Info
	imageErr  error
)

// testImage builds the busybox OCI archive once per run, from Debian's
// busybox-static, into the harness's binary dir (removed at exit).
func testImage(t *testing.T) (string, testimage.Info) {
	t.Helper()
	imageOnce.Do(func() {
		if binDir == "" {
			imageErr = fmt.Errorf("binary dir not set (TestMain must call runMain)")
			return
		}
		imagePath = filepath.Join(binDir, "busybox-oci.tar")
		imageInfo, imageErr = testimage.WriteFile(imagePath, testimage.Options{})
	})
	if imageErr != nil {
		t.Fatalf("test image: %v", imageErr)
	}
	return imagePath, imageInfo
}

// newWorkerCluster is 1 manager (host 0, with mgrArgs) and n workers, each
// with its own containerd and a zone label, and the busybox image imported
// onto every worker with `hive image import --node`.
func newWorkerCluster(t *testing.T, workers int, mgrArgs ...string) *Cluster {
	t.Helper()
	if err := checkPrereqs("containerd", "runc", "ctr"); err != nil {
		t.Fatalf("%v (the containerd package ships ctr)", err)
	}
	img, info := testImage(t) // fails now, not later, without busybox-static
	c := NewCluster(t, 1+workers)
	c.DaemonArgs = func(h *Host, role structs.Role) []string {
		if role == structs.RoleWorker {
			return append(h.WorkerArgs(), "--label", "zone="+h.Name)
		}
		return mgrArgs
	}
	c.Bootstrap(1, workers)
	for _, w := range c.Workers() {
		waitRegistered(t, c, w)
		// The worker's own endpoint may open a moment after it registers.
		var out string
		c.WaitFor(30*time.Second, "image import onto "+w.Name, func() error {
			var err error
			out, _, err = c.CLI("image", "import", img, "--node", w.NodeID())
			return err
		})
		if !strings.Contains(out, testimage.DefaultRef) || !strings.Contains(out, info.ManifestDigest) {
			t.Fatalf("image import on %s: %q lacks %s %s", w.Name, out, testimage.DefaultRef, info.ManifestDigest)
		}
	}
	return c
}

// waitRegistered waits until w's agent has registered its fingerprint
// (node status carries attributes) and the node is ready. A node is listed
// ready as soon as it joins, before its agent has containerd running.
func waitRegistered(t *testing.T, c *Cluster, w *Host) {
	t.Helper()
	start := time.Now()
	c.WaitFor(90*time.Second, w.Name+" to register its fingerprint", func() error {
		var n structs.NodePublic
		if err := c.CLIJSON(&n, "node", "status", w.NodeID()); err != nil {
			return err
		}
		if len(n.Attributes) == 0 || n.Status != structs.NodeStatusReady {
			return fmt.Errorf("node is %s with %d attributes", n.Status, len(n.Attributes))
		}
		return nil
	})
	t.Logf("%s registered %v after bootstrap", w.Name, time.Since(start).Round(time.Millisecond))
}

// ctr runs containerd's CLI against h's own containerd, namespace hive.
func (h *Host) ctr(args ...string) (string, error) {
	return run("ctr", append([]string{"--address", h.ContainerdSocket(), "--namespace", "hive"}, args...)...)
}

// ctrIDs lists the IDs ctr prints with -q (containers, images, tasks...).
func (h *Host) ctrIDs(args ...string) []string {
	h.c.t.Helper()
	out, err := h.ctr(append(args, "-q")...)
	if err != nil {
		h.c.t.Fatalf("%s: %v", h.Name, err)
	}
	return strings.Fields(out)
}

// ctrTasks maps each task on h's containerd to its PID and status.
func (h *Host) ctrTasks() map[string][2]string {
	h.c.t.Helper()
	out, err := h.ctr("tasks", "ls")
	if err != nil {
		h.c.t.Fatalf("%s: %v", h.Name, err)
	}
	m := map[string][2]string{}
	for _, l := range strings.Split(out, "\n")[1:] { // TASK PID STATUS
		if f := strings.Fields(l); len(f) == 3 {
			m[f[0]] = [2]string{f[1], f[2]}
		}
	}
	return m
}

// allocContainers are h's containers whose ID names allocation id.
func (h *Host) allocContainers(id string) []string {
	var out []string
	for _, c := range h.ctrIDs("containers", "ls") {
		if strings.HasPrefix(c, id) {
			out = append(out, c)
		}
	}
	return out
}

func runAlloc(t *testing.T, c *Cluster, args ...string) string {
	t.Helper()
	id := strings.TrimSpace(c.MustCLI(append([]string{"alloc", "run"}, args...)...))
	if len(id) != 36 {
		t.Fatalf("alloc run printed %q, want an allocation ID", id)
	}
	return id
}

func allocStatus(c *Cluster, id string) (*structs.Allocation, error) {
	var a structs.Allocation
	if err := c.CLIJSON(&a, "alloc", "status", id); err != nil {
		return nil, err
	}
	return &a, nil
}

// waitAllocStatus waits until the worker reports the allocation in status
// want; a terminal status other than want ends the wait at once.
func waitAllocStatus(t *testing.T, c *Cluster, id, want string, timeout time.Duration) *structs.Allocation {
	t.Helper()
	var last *structs.Allocation
	c.WaitFor(timeout, fmt.Sprintf("allocation %s to be %s", id, want), func() error {
		a, err := allocStatus(c, id)
		if err != nil {
			return err
		}
		last = a
		if a.ClientStatus == want {
			return nil
		}
		if a.Terminal() {
			return Permanent(fmt.Errorf("allocation is %s (%s; tasks %s)", a.ClientStatus, a.ClientDescription, taskStates(a)))
		}
		return fmt.Errorf("allocation is %s (tasks %s)", a.ClientStatus, taskStates(a))
	})
	return last
}

func taskStates(a *structs.Allocation) string {
	var parts []string
	for name, ts := range a.TaskStates {
		if ts != nil {
			parts = append(parts, fmt.Sprintf("%s=%s restarts=%d exit=%d error=%q", name, ts.State, ts.Restarts, ts.ExitCode, ts.LastError))
		}
	}
	sort.Strings(parts)
	return "[" + strings.Join(parts, "; ") + "]"
}

// waitLogs waits until `hive alloc logs` shows want and returns the logs.
func waitLogs(t *testing.T, c *Cluster, id, want string, extra ...string) string {
	t.Helper()
	var out string
	c.WaitFor(30*time.Second, fmt.Sprintf("logs of %s to show %q", id, want), func() error {
		var err error
		out, _, err = c.CLI(append([]string{"alloc", "logs", id}, extra...)...)
		if err != nil {
			return err
		}
		if !strings.Contains(out, want) {
			return fmt.Errorf("logs so far: %q", truncate(out, 300))
		}
		return nil
	})
	return out
}

func parseKV(out string) map[string]string {
	kv := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		for _, f := range strings.Fields(line) {
			if k, v, ok := strings.Cut(f, "="); ok {
				kv[k] = v
			}
		}
	}
	return kv
}

// securityProbe prints what the task can see of its restrictions, then
// stays up. The memory limit is read inside the container's own cgroup
// (v1 first, as on these machines, else v2).
const securityProbe = `trap 'exit 0' TERM
if touch /probe 2>/dev/null; then echo rootfs=writable; else echo rootfs=readonly; fi
echo uid=$(id -u) gid=$(id -g)
grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t' | sed 's/:/=/'
echo memlimit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)
echo PROBE-DONE
while :; do sleep 1; done`

// tickScript logs one start line, then a tick a second.
const tickScript = `trap 'exit 0' TERM; echo "started pid $$"; i=0; while :; do i=$((i+1)); echo tick $i; sleep 1; done`

// TestWorkerRunLogsStop: 1 manager + 2 workers with their own containerd.
// The busybox image, imported with `hive image import`, runs as a
// restricted allocation: from inside, uid is the configured user, / is
// read-only, CapEff is 0 and the memory cgroup shows the limit, all read
// through `hive alloc logs`; `hive alloc stop` removes the container. Then
// a missing image, a bad archive, a privileged task in a restricted
// namespace and a 2 MiB memory limit each fail clearly and leave nothing
// half-created on the worker.
func TestWorkerRunLogsStop(t *testing.T) {
	c := newWorkerCluster(t, 2)
	w1, w2 := c.Workers()[0], c.Workers()[1]
	_, info := testImage(t)
	ref := testimage.DefaultRef

	// --- image ls: both workers hold the image, same digest.
	var imgs []structs.NodeImages
	if err := c.CLIJSON(&imgs, "image", "ls"); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*Host{w1, w2} {
		found := false
		for _, ni := range imgs {
			if ni.NodeID != w.NodeID() {
				continue
			}
			for _, im := range ni.Images {
				found = found || im.Name == ref && im.Digest == info.ManifestDigest && im.Size > 0
			}
		}
		if !found {
			t.Errorf("image ls: %s lacks %s@%s: %+v", w.Name, ref, info.ManifestDigest, imgs)
		}
	}

	// --- node status shows the fingerprint and the label.
	var node structs.NodePublic
	if err := c.CLIJSON(&node, "node", "status", w1.NodeID()); err != nil {
		t.Fatal(err)
	}
	if node.Labels["zone"] != w1.Name || node.Resources.CPU <= 0 || node.Resources.MemoryMB <= 0 || len(node.Attributes) == 0 {
		t.Errorf("node status of %s: labels %v resources %+v attributes %v", w1.Name, node.Labels, node.Resources, node.Attributes)
	}

	// --- a restricted allocation runs; its logs show the restrictions.
	start := time.Now()
	id := runAlloc(t, c, "--node", w1.NodeID(), "--image", ref, "--name", "probe", "--user", "1000",
		"--read-only-rootfs", "--memory", "64", "--", "sh", "-c", securityProbe)
	a := waitAllocStatus(t, c, id, structs.AllocRunning, 60*time.Second)
	t.Logf("allocation %s running on %s after %v", id, w1.Name, time.Since(start).Round(time.Millisecond))
	if ts := a.TaskStates["probe"]; ts == nil || ts.StartedAt.IsZero() || ts.ImageDigest != info.ManifestDigest {
		t.Errorf("task state %+v: want a start time and image digest %s", ts, info.ManifestDigest)
	}
	logs := waitLogs(t, c, id, "PROBE-DONE")
	kv := parseKV(logs)
	for k, want := range map[string]string{
		"uid":        "1000",
		"rootfs":     "readonly",
		"CapEff":     "0000000000000000",
		"CapBnd":     "0000000000000000",
		"NoNewPrivs": "1",
		"Seccomp":    "2",
		"memlimit":   strconv.Itoa(64 << 20),
	} {
		if kv[k] != want {
			t.Errorf("inside the container %s = %q, want %q (logs %q)", k, kv[k], want, logs)
		}
	}
	// Same through the task name, --tail and the (empty) stderr stream.
	if out := c.MustCLI("alloc", "logs", id, "probe", "--tail", "1"); out != "PROBE-DONE\n" {
		t.Errorf("logs --tail 1 = %q", out)
	}
	if out := c.MustCLI("alloc", "logs", id, "--stderr"); out != "" {
		t.Errorf("stderr = %q, want empty", out)
	}
	if got := w1.allocContainers(id); len(got) != 1 {
		t.Fatalf("%s's containerd has containers %v for %s, want 1", w1.Name, got, id)
	}
	if got := w2.allocContainers(id); len(got) != 0 {
		t.Errorf("%s's containerd has containers %v for an allocation of %s", w2.Name, got, w1.Name)
	}
	var listed []*structs.Allocation
	if err := c.CLIJSON(&listed, "alloc", "ls", "--node", w1.NodeID()); err != nil || len(listed) != 1 || listed[0].ID != id {
		t.Errorf("alloc ls --node %s = %v, %v", w1.Name, listed, err)
	}

	// --- stop: the allocation completes and its container is gone.
	c.MustCLI("alloc", "stop", id)
	stopped := time.Now()
	c.WaitFor(30*time.Second, "the stopped allocation to be terminal and its container gone", func() error {
		a, err := allocStatus(c, id)
		if err != nil {
			return err
		}
		if !a.Terminal() || a.DesiredStatus != structs.AllocDesiredStop {
			return fmt.Errorf("allocation is %s/%s", a.DesiredStatus, a.ClientStatus)
		}
		if got := w1.allocContainers(id); len(got) > 0 {
			return fmt.Errorf("containers %v still on %s", got, w1.Name)
		}
		return nil
	})
	t.Logf("alloc stop → container gone: %v", time.Since(stopped).Round(time.Millisecond))
	if a, _ := allocStatus(c, id); a.ClientStatus != structs.AllocComplete || a.TaskStates["probe"].State != structs.TaskDead || a.TaskStates["probe"].FinishedAt.IsZero() {
		t.Errorf("stopped allocation: %s %s", a.ClientStatus, taskStates(a))
	}

	// --- refusals: each is clear, and leaves nothing on the worker.
	imagesBefore := w2.ctrIDs("images", "ls")
	allocsBefore := allocCount(t, c)

	// A reference nobody can pull: the allocation fails with the reason.
	missing := runAlloc(t, c, "--node", w2.NodeID(), "--image", "docker.io/hive/no-such-image:1", "--restart-attempts", "0", "--", "true")
	fa := waitAllocStatus(t, c, missing, structs.AllocFailed, 90*time.Second)
	if ts := fa.TaskStates["main"]; ts == nil || !strings.Contains(ts.LastError, "no-such-image") {
		t.Errorf("missing image: task state %s, want a LastError naming the image", taskStates(fa))
	} else {
		t.Logf("missing image: %s", ts.LastError)
	}
	if out := c.MustCLI("alloc", "status", missing); !strings.Contains(out, "no-such-image") || !strings.Contains(out, "failed") {
		t.Errorf("alloc status of the failed allocation:\n%s", out)
	}
	allocsBefore++

	// A file that is no image archive.
	bad := filepath.Join(c.Dir, "bad.tar")
	if err := os.WriteFile(bad, []byte("this is not an image archive\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := c.CLI("image", "import", bad, "--node", w2.NodeID())
	if err == nil || !strings.Contains(stderr, "Error: importing "+bad) || !strings.Contains(strings.ToLower(stderr), "archive") {
		t.Errorf("bad archive: err %v, stderr %q", err, stderr)
	} else {
		t.Logf("bad archive: %s", strings.TrimSpace(stderr))
	}

	// Privileged in a namespace that does not allow it.
	c.MustCLI("namespace", "create", "restricted")
	_, stderr, err = c.CLI("alloc", "run", "-n", "restricted", "--node", w2.NodeID(), "--image", ref, "--privileged", "--", "true")
	if err == nil || !strings.Contains(stderr, "privileged") || !strings.Contains(stderr, "--allow-privileged") {
		t.Errorf("privileged in a restricted namespace: err %v, stderr %q", err, stderr)
	}
	var inNS []*structs.Allocation
	if err := c.CLIJSON(&inNS, "alloc", "ls", "-n", "restricted"); err != nil || len(inNS) != 0 {
		t.Errorf("the refused privileged task left allocations %v (%v)", inNS, err)
	}

	// A memory limit runc cannot start under.
	_, stderr, err = c.CLI("alloc", "run", "--node", w2.NodeID(), "--image", ref, "--memory", "2", "--", "true")
	if err == nil || !strings.Contains(stderr, "below the minimum of 4 MiB") {
		t.Errorf("--memory 2: err %v, stderr %q", err, stderr)
	}
	if n := allocCount(t, c); n != allocsBefore {
		t.Errorf("refused requests created allocations: %d, want %d", n, allocsBefore)
	}
	if got := w2.ctrIDs("containers", "ls"); len(got) != 0 {
		t.Errorf("%s keeps containers %v after only failed requests", w2.Name, got)
	}
	if got := w2.ctrIDs("images", "ls"); !slices.Equal(got, imagesBefore) {
		t.Errorf("%s's images changed from %v to %v", w2.Name, imagesBefore, got)
	}
	if out, err := w2.ctr("snapshots", "ls"); err != nil || strings.Contains(out, "Active") {
		t.Errorf("%s has active snapshots (half-created containers): %s %v", w2.Name, out, err)
	}

	// The same privileged task runs in a namespace that allows it, with
	// capabilities this time.
	c.MustCLI("namespace", "create", "trusted", "--allow-privileged")
	priv := runAlloc(t, c, "-n", "trusted", "--node", w2.NodeID(), "--image", ref, "--privileged", "--",
		"sh", "-c", `trap 'exit 0' TERM; grep -E '^CapEff:' /proc/self/status | tr -d '\t' | sed 's/:/=/'; echo PRIV-DONE; while :; do sleep 1; done`)
	waitAllocStatus(t, c, priv, structs.AllocRunning, 60*time.Second)
	if kv := parseKV(waitLogs(t, c, priv, "PRIV-DONE")); kv["CapEff"] == "" || kv["CapEff"] == "0000000000000000" {
		t.Errorf("privileged task has CapEff %q", kv["CapEff"])
	}
	c.MustCLI("alloc", "stop", priv)
	c.WaitFor(30*time.Second, "the privileged allocation's container to go", func() error {
		if got := w2.allocContainers(priv); len(got) > 0 {
			return fmt.Errorf("containers %v", got)
		}
		return nil
	})
}

func allocCount(t *testing.T, c *Cluster) int {
	t.Helper()
	var list []*structs.Allocation
	if err := c.CLIJSON(&list, "alloc", "ls"); err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// TestWorkerAgentRestartAndHostLoss: kill -9 a worker agent (not its
// containers): the container keeps running; the restarted agent re-attaches
// without restarting it (same PID, same start time, one start line). Then
// kill a whole worker host: its node goes unknown, then down, and its
// allocation is lost; the time from kill to down is printed.
func TestWorkerAgentRestartAndHostLoss(t *testing.T) {
	const ttl, grace = 3 * time.Second, 3 * time.Second
	c := newWorkerCluster(t, 2, "--heartbeat-ttl", ttl.String(), "--down-grace", grace.String())
	w1, w2 := c.Workers()[0], c.Workers()[1]
	ref := testimage.DefaultRef

	id1 := runAlloc(t, c, "--node", w1.NodeID(), "--image", ref, "--name", "ticker", "--memory", "32", "--", "sh", "-c", tickScript)
	id2 := runAlloc(t, c, "--node", w2.NodeID(), "--image", ref, "--name", "ticker", "--memory", "32", "--", "sh", "-c", tickScript)
	before := waitAllocStatus(t, c, id1, structs.AllocRunning, 60*time.Second)
	waitAllocStatus(t, c, id2, structs.AllocRunning, 60*time.Second)
	waitLogs(t, c, id1, "tick 2\n")
	ctrs := w1.allocContainers(id1)
	if len(ctrs) != 1 {
		t.Fatalf("%s: containers %v for %s", w1.Name, ctrs, id1)
	}
	pidBefore := w1.ctrTasks()[ctrs[0]][0]

	// --- cordon and uncordon a worker: eligibility only.
	c.MustCLI("node", "cordon", w1.NodeID())
	var n structs.NodePublic
	if err := c.CLIJSON(&n, "node", "status", w1.NodeID()); err != nil || !n.Cordoned || n.Draining {
		t.Errorf("after cordon: %+v %v", n, err)
	}
	c.MustCLI("node", "uncordon", w1.NodeID())
	if err := c.CLIJSON(&n, "node", "status", w1.NodeID()); err != nil || n.Cordoned {
		t.Errorf("after uncordon: %+v %v", n, err)
	}

	// --- kill -9 the agent only: the container keeps running.
	containerdPid := readPid(filepath.Join(w1.DataDir, "containerd", "containerd.pid"))
	killed := time.Now()
	w1.KillAgent()
	inits, err := containerInits(w1.DataDir)
	if err != nil || len(inits) != 1 {
		t.Fatalf("after killing the agent: containers %v (%v), want the one task still running", inits, err)
	}
	time.Sleep(time.Second)
	if inits2, _ := containerInits(w1.DataDir); len(inits2) != 1 || inits2[0].pid != inits[0].pid {
		t.Fatalf("the container did not survive the agent: %v", inits2)
	}
	t.Logf("agent killed; 1 s later the container (init pid %d) still runs; the agent's containerd (pid %d) alive: %v",
		inits[0].pid, containerdPid, containerdPid > 0 && processAlive(containerdPid))

	// --- restart the agent: it re-attaches, nothing restarts.
	w1.Relaunch()
	c.WaitFor(60*time.Second, "the restarted worker to be ready and report its allocation running", func() error {
		var n structs.NodePublic
		if err := c.CLIJSON(&n, "node", "status", w1.NodeID()); err != nil {
			return err
		}
		if n.Status != structs.NodeStatusReady {
			return fmt.Errorf("node is %s", n.Status)
		}
		a, err := allocStatus(c, id1)
		if err != nil {
			return err
		}
		if a.ClientStatus != structs.AllocRunning {
			return fmt.Errorf("allocation is %s", a.ClientStatus)
		}
		// The restarted agent's first report moves ModifyIndex on.
		if a.ModifyIndex == before.ModifyIndex && time.Since(killed) < 10*time.Second {
			return fmt.Errorf("no report from the restarted agent yet")
		}
		return nil
	})
	t.Logf("agent kill → re-attached and ready: %v", time.Since(killed).Round(time.Millisecond))
	after, err := allocStatus(c, id1)
	if err != nil {
		t.Fatal(err)
	}
	bts, ats := before.TaskStates["ticker"], after.TaskStates["ticker"]
	if ats == nil || !ats.StartedAt.Equal(bts.StartedAt) || ats.Restarts != 0 || ats.State != structs.TaskRunning {
		t.Errorf("task state before the agent restart %+v, after %+v: want the same start, no restarts", bts, ats)
	}
	if got := w1.ctrTasks()[ctrs[0]]; got[0] != pidBefore || got[1] != "RUNNING" {
		t.Errorf("task after re-attach: pid %s status %s, want pid %s running", got[0], got[1], pidBefore)
	}
	// Logging never depended on the agent: the ticks go on, from one start.
	logs := waitLogs(t, c, id1, "tick 8\n")
	if n := strings.Count(logs, "started pid"); n != 1 {
		t.Errorf("the task started %d times:\n%s", n, logs)
	}

	// --- pull the plug on worker 2 (agent, containerd and containers).
	killed = time.Now()
	w2.Kill()
	var unknownAfter, downAfter time.Duration
	c.WaitFor(60*time.Second, w2.Name+" to be down", func() error {
		var n structs.NodePublic
		if err := c.CLIJSON(&n, "node", "status", w2.NodeID()); err != nil {
			return err
		}
		switch n.Status {
		case structs.NodeStatusUnknown:
			if unknownAfter == 0 {
				unknownAfter = time.Since(killed)
			}
		case structs.NodeStatusDown:
			downAfter = time.Since(killed)
			return nil
		}
		return fmt.Errorf("node is %s", n.Status)
	})
	if unknownAfter == 0 {
		t.Errorf("%s went down without being seen unknown first", w2.Name)
	}
	fmt.Printf("worker kill → node down: %v (unknown after %v; --heartbeat-ttl %v --down-grace %v)\n",
		downAfter.Round(10*time.Millisecond), unknownAfter.Round(10*time.Millisecond), ttl, grace)
	waitAllocStatus(t, c, id2, structs.AllocLost, 30*time.Second)
	// The other worker's allocation is untouched.
	if a, err := allocStatus(c, id1); err != nil || a.ClientStatus != structs.AllocRunning {
		t.Errorf("%s's allocation after %s died: %v %v", w1.Name, w2.Name, a, err)
	}
	_, stderr, err := c.CLI("alloc", "run", "--node", w2.NodeID(), "--image", ref, "--", "true")
	if err == nil || !strings.Contains(stderr, "is down") {
		t.Errorf("placing on a down node: err %v, stderr %q", err, stderr)
	}
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func processAlive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// TestWorkerAllocStartLatency measures, over 20 allocations of the local
// busybox image placed one after the other, the time from the allocation
// being committed (POST /v1/allocations returned) to the worker reporting
// it running, seen through a blocking query. It prints the median for
// BENCHMARKS.md (target under 1 s) and fails only if the median is above
// 5 s, which would mean something is broken rather than slow.
func TestWorkerAllocStartLatency(t *testing.T) {
	const n = 20
	c := newWorkerCluster(t, 1)
	w := c.Workers()[0]
	cl, err := api.NewClient(&api.Config{Address: c.Host(0).URL(), Token: c.AdminToken, CACertFile: c.CACert, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var times []time.Duration
	var ids []string
	for i := range n {
		a, err := cl.Allocations().Create(structs.AllocCreateRequest{
			Namespace: structs.DefaultNamespace, NodeID: w.NodeID(),
			Tasks: []*structs.Task{{
				Name:      "sleeper",
				Config:    structs.TaskConfig{Image: testimage.DefaultRef, Command: "sh", Args: []string{"-c", "trap 'exit 0' TERM; while :; do sleep 1; done"}},
				Resources: structs.Resources{MemoryMB: 16},
			}},
		})
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		committed := time.Now()
		ids = append(ids, a.ID)
		idx := a.ModifyIndex
		for {
			cur, meta, err := cl.Allocations().Info(a.ID, &api.QueryOptions{WaitIndex: idx, WaitTime: 10 * time.Second})
			if err != nil {
				t.Fatalf("allocation %d: %v", i, err)
			}
			if cur.ClientStatus == structs.AllocRunning {
				times = append(times, time.Since(committed))
				break
			}
			if cur.Terminal() || time.Since(committed) > time.Minute {
				t.Fatalf("allocation %d is %s after %v: %s", i, cur.ClientStatus, time.Since(committed), taskStates(cur))
			}
			idx = meta.LastIndex
		}
	}
	sorted := slices.Clone(times)
	slices.Sort(sorted)
	median := (sorted[n/2-1] + sorted[n/2]) / 2
	fmt.Printf("alloc committed → running (local image, %d allocations one at a time): median %v, min %v, p90 %v, max %v\n",
		n, median.Round(time.Millisecond), sorted[0].Round(time.Millisecond), sorted[n*9/10-1].Round(time.Millisecond), sorted[n-1].Round(time.Millisecond))
	if median > 5*time.Second {
		t.Errorf("median start latency %v: something is wrong (target under 1 s)", median)
	}
	if got := len(w.ctrTasks()); got != n {
		t.Errorf("%s runs %d tasks, want %d", w.Name, got, n)
	}
	for _, id := range ids {
		if _, err := cl.Allocations().Stop(id); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitFor(60*time.Second, "every container to be removed", func() error {
		if got := w.ctrIDs("containers", "ls"); len(got) > 0 {
			return fmt.Errorf("%d containers left", len(got))
		}
		return nil
	})
}
