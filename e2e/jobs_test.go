package e2e

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/client/driver/testimage"
	"github.com/hivesec/hive/structs"
)

// Acceptance tests for jobs and the scheduler (issue 4), on 1 manager and 2
// workers with their own containerd:
//
//  1. a 3-count service job runs across both workers;
//  2. `job run` of a changed image rolls the allocations one at a time,
//     never with more than one old allocation stopped before its
//     replacement is healthy (observed by polling, order printed);
//  3. `node drain` empties a worker;
//  4. killing a worker host moves its allocations to the other within the
//     node-down time plus one scheduling round (time printed);
//  5. a job that cannot fit shows a clear reason in `job plan` and in
//     `job status`.

// imageV2Ref is the test image under a second name with one extra file,
// so a job moving to it is a real image change (another digest).
const imageV2Ref = "docker.io/hive/busybox:v2"

const (
	jobTTL   = 3 * time.Second // --heartbeat-ttl
	jobGrace = 3 * time.Second // --down-grace
)

func jobFile(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// jobAPI is a Go client for the test's own polling, which must be faster
// than one CLI process per look.
func jobAPI(t *testing.T, c *Cluster) *api.Client {
	t.Helper()
	cl, err := api.NewClient(&api.Config{Address: c.Host(0).URL(), Token: c.AdminToken, CACertFile: c.CACert, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// live returns the allocations of job that should be running: desired run
// and not terminal.
func live(allocs []*structs.Allocation) []*structs.Allocation {
	var out []*structs.Allocation
	for _, a := range allocs {
		if a.DesiredStatus == structs.AllocDesiredRun && !a.Terminal() {
			out = append(out, a)
		}
	}
	return out
}

// perNode counts running allocations of version v (any when v < 0) by host.
func perNode(c *Cluster, allocs []*structs.Allocation, v int64) map[string]int {
	m := map[string]int{}
	for _, a := range live(allocs) {
		if a.ClientStatus != structs.AllocRunning || v >= 0 && a.JobVersion != uint64(v) {
			continue
		}
		name := a.NodeID
		if h := c.HostByNodeID(a.NodeID); h != nil {
			name = h.Name
		}
		m[name]++
	}
	return m
}

// waitRunning waits until job has want running allocations, of version v
// when v >= 0, placed as cond accepts; it returns them.
func waitRunning(t *testing.T, c *Cluster, cl *api.Client, job string, want int, v int64, timeout time.Duration, cond func(map[string]int) error) []*structs.Allocation {
	t.Helper()
	var last []*structs.Allocation
	c.WaitFor(timeout, fmt.Sprintf("%d running allocations of %s", want, job), func() error {
		allocs, _, err := cl.Jobs().Allocations("", job, nil)
		if err != nil {
			return err
		}
		last = allocs
		n := 0
		for _, k := range perNode(c, allocs, v) {
			n += k
		}
		if l := len(live(allocs)); n != want || l != want {
			return fmt.Errorf("%d running (version %d), %d live, want %d: %v", n, v, l, want, perNode(c, allocs, -1))
		}
		if cond != nil {
			return cond(perNode(c, allocs, v))
		}
		return nil
	})
	return last
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func TestJobsRunUpdateDrainReschedule(t *testing.T) {
	c := newWorkerCluster(t, 2, "--heartbeat-ttl", jobTTL.String(), "--down-grace", jobGrace.String())
	w1, w2 := c.Workers()[0], c.Workers()[1]
	cl := jobAPI(t, c)
	mgr := c.Host(0)

	// The second image: same busybox, one more file, another digest.
	v2Path := filepath.Join(c.Dir, "busybox-v2.tar")
	v2Info, err := testimage.WriteFile(v2Path, testimage.Options{Ref: imageV2Ref, Files: map[string]string{"etc/hive-release": "2\n"}})
	if err != nil {
		t.Fatalf("second test image: %v", err)
	}
	if out := c.MustCLI("image", "import", v2Path, "--all"); strings.Count(out, imageV2Ref) < 2 {
		t.Fatalf("image import --all of %s did not reach both workers:\n%s", imageV2Ref, out)
	}

	// ---- 1. a 3-count service job across both workers.
	web := jobFile(t, "web.hcl")
	start := time.Now()
	out, stderr, err := c.CLIWithin(mgr, 2*time.Minute, "job", "run", web)
	if err != nil {
		t.Fatalf("job run web.hcl: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
	}
	t.Logf("job run web.hcl (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
	for _, want := range []string{"Monitoring deployment", "healthy 3", "successful"} {
		if !strings.Contains(out, want) {
			t.Errorf("job run output lacks %q", want)
		}
	}
	var st struct {
		Job         *structs.Job          `json:"job"`
		Deployment  *structs.Deployment   `json:"deployment"`
		Allocations []*structs.Allocation `json:"allocations"`
	}
	if err := c.CLIJSON(&st, "job", "status", "web"); err != nil {
		t.Fatal(err)
	}
	v1 := int64(st.Job.Version)
	if st.Deployment == nil || st.Deployment.Status != structs.DeploymentSuccessful || st.Deployment.JobVersion != uint64(v1) {
		t.Errorf("job status: deployment %+v, want successful for version %d", st.Deployment, v1)
	}
	allocs := waitRunning(t, c, cl, "web", 3, v1, 10*time.Second, func(m map[string]int) error {
		if m[w1.Name] == 0 || m[w2.Name] == 0 {
			return fmt.Errorf("not on both workers: %v", m)
		}
		return nil
	})
	fmt.Printf("job web v%d: 3 allocations running on %v after %v\n", v1, perNode(c, allocs, v1), time.Since(start).Round(time.Millisecond))
	// Through the CLI too: the table, and alloc status's scheduler fields.
	out = c.MustCLI("job", "status", "web")
	if !strings.Contains(out, "successful") || strings.Count(out, " running ") < 3 {
		t.Errorf("job status web:\n%s", out)
	}
	a0 := live(allocs)[0]
	out = c.MustCLI("alloc", "status", a0.ID)
	for _, want := range []string{"Job           web", "Deployment    " + st.Deployment.ID, "Health        healthy"} {
		if !strings.Contains(out, want) {
			t.Errorf("alloc status %s lacks %q:\n%s", a0.ID, want, out)
		}
	}
	if logs := waitLogs(t, c, a0.ID, "up\n"); !strings.Contains(logs, "up") {
		t.Errorf("logs of %s: %q", a0.ID, logs)
	}

	// ---- 5. jobs that cannot fit: a clear reason in plan and status.
	checkUnplaceable(t, c, "huge.hcl", "huge", "memory exhausted on 2 node(s)")
	checkUnplaceable(t, c, "nowhere.hcl", "nowhere", `constraint "${meta.zone} = atlantis" filtered 2 node(s)`)

	// ---- 2. a changed image rolls one allocation at a time.
	v2 := rollingUpdate(t, c, cl, web, v1, v2Info.ManifestDigest)

	// ---- 3. drain: w1 empties onto w2.
	drainStart := time.Now()
	onW1, existing := map[string]bool{}, map[string]bool{}
	before, _, err := cl.Jobs().Allocations("", "web", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range before {
		existing[a.ID] = true
	}
	for _, a := range live(before) {
		if a.NodeID == w1.NodeID() {
			onW1[a.ID] = true
		}
	}
	drained := make(chan cliResult, 1)
	go func() {
		out, stderr, err := c.CLI("node", "drain", w1.NodeID())
		if err == nil {
			err = Poll(90*time.Second, func() error {
				allocs, _, err := cl.Jobs().Allocations("", "web", nil)
				if err != nil {
					return err
				}
				if m := perNode(c, allocs, v2); m[w1.Name] != 0 || m[w2.Name] != 3 {
					return fmt.Errorf("running %v", m)
				}
				return nil
			})
		}
		drained <- cliResult{out, stderr, err}
	}()
	_, drainEvents, drainInFlight, dres := observeAllocs(t, c, cl, drainStart, drained,
		func(a *structs.Allocation) bool { return onW1[a.ID] }, func(a *structs.Allocation) bool { return !existing[a.ID] })
	if dres.err != nil {
		t.Fatalf("drain of %s: %v", w1.Name, dres.err)
	}
	fmt.Printf("node drain %s (%d allocations on it), observed order:\n  %s\n", w1.Name, len(onW1), strings.Join(drainEvents, "\n  "))
	if drainInFlight > 1 {
		// The issue asks drain to respect max_parallel; reported, not
		// failed: the acceptance line only asks that the node empties.
		t.Logf("NOTE: drain had %d allocations of %s stopped before replacements were healthy (max_parallel 1)", drainInFlight, w1.Name)
	}
	c.WaitFor(30*time.Second, w1.Name+" to have no containers", func() error {
		if got := w1.ctrIDs("containers", "ls"); len(got) > 0 {
			return fmt.Errorf("containers %v", got)
		}
		return nil
	})
	fmt.Printf("node drain %s → all 3 allocations running on %s, its containers gone: %v\n", w1.Name, w2.Name, time.Since(drainStart).Round(time.Millisecond))
	c.MustCLI("node", "uncordon", w1.NodeID())

	// ---- 4. kill w2: its allocations come back on w1.
	killed := time.Now()
	w2.Kill()
	var downAfter time.Duration
	var mu sync.Mutex
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() { // the node's own status, to split the total
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(100 * time.Millisecond):
			}
			n, _, err := cl.Nodes().Info(w2.NodeID(), nil)
			if err == nil && n.Status == structs.NodeStatusDown {
				mu.Lock()
				downAfter = time.Since(killed)
				mu.Unlock()
				return
			}
		}
	}()
	waitRunning(t, c, cl, "web", 3, v2, 90*time.Second, func(m map[string]int) error {
		if m[w1.Name] != 3 {
			return fmt.Errorf("%v", m)
		}
		return nil
	})
	moved := time.Since(killed)
	close(stopWatch)
	<-watched
	mu.Lock()
	down := downAfter
	mu.Unlock()
	fmt.Printf("worker %s killed → node down after %v; its allocations running on %s after %v (%v after down; --heartbeat-ttl %v --down-grace %v)\n",
		w2.Name, down.Round(10*time.Millisecond), w1.Name, moved.Round(10*time.Millisecond), (moved - down).Round(10*time.Millisecond), jobTTL, jobGrace)
	if down == 0 {
		t.Errorf("replacements ran before %s was seen down", w2.Name)
	}
	// Down time plus one scheduling round, plus the worker starting the
	// containers: anything near the bound is fine; far beyond is a bug.
	if moved-down > 15*time.Second {
		t.Errorf("replacements took %v after the node went down", moved-down)
	}
	final, _, err := cl.Jobs().Allocations("", "web", nil)
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, a := range final {
		if a.NodeID == w2.NodeID() && a.ClientStatus == structs.AllocLost {
			lost++
		}
	}
	if lost == 0 {
		t.Errorf("no allocation of %s was marked lost", w2.Name)
	}

	// ---- history, then stop and purge: the containers go.
	out = c.MustCLI("job", "history", "web")
	if !strings.Contains(out, "image docker.io/hive/busybox:test → "+imageV2Ref) {
		t.Errorf("job history web:\n%s", out)
	}
	c.MustCLI("job", "stop", "web", "--purge")
	c.WaitFor(60*time.Second, "the stopped job's containers to go", func() error {
		if got := w1.ctrIDs("containers", "ls"); len(got) > 0 {
			return fmt.Errorf("containers %v on %s", got, w1.Name)
		}
		return nil
	})
	if _, stderr, err := c.CLI("job", "status", "web"); err == nil || !strings.Contains(stderr, "not found") {
		t.Errorf("purged job: err %v stderr %q", err, stderr)
	}
}

// checkUnplaceable plans and submits a job that cannot be placed and checks
// that plan, run and status all say why; then purges it.
func checkUnplaceable(t *testing.T, c *Cluster, file, id, reason string) {
	t.Helper()
	path := jobFile(t, file)
	out, stderr, err := c.CLI("job", "plan", path)
	if exitCode(err) != 1 || !strings.Contains(out, "Placement failures") || !strings.Contains(out, reason) {
		t.Errorf("job plan %s: exit %d (%v), want 1 and %q\nstdout:\n%s\nstderr:\n%s", file, exitCode(err), err, reason, out, stderr)
	}
	t.Logf("job plan %s:\n%s", file, out)
	out, stderr, err = c.CLIWithin(c.API(), time.Minute, "job", "run", path)
	if exitCode(err) != 1 || !strings.Contains(stderr, "placement blocked") || !strings.Contains(stderr, reason) {
		t.Errorf("job run %s: exit %d (%v), want 1 with %q\nstdout:\n%s\nstderr:\n%s", file, exitCode(err), err, reason, out, stderr)
	}
	out = c.MustCLI("job", "status", id)
	if !strings.Contains(out, "Placement blocked") || !strings.Contains(out, reason) {
		t.Errorf("job status %s lacks the reason %q:\n%s", id, reason, out)
	}
	t.Logf("job status %s:\n%s", id, out)
	list := c.MustCLI("job", "status")
	if !strings.Contains(list, id+": group") {
		t.Errorf("job list lacks the blocked reason of %s:\n%s", id, list)
	}
	c.MustCLI("job", "stop", id, "--purge")
}

type cliResult struct {
	out, stderr string
	err         error
}

// observeAllocs polls the allocations of job web every 100 ms until done
// delivers, noting each change in order. An allocation isOld calls old is
// "in flight" from the moment it is told to stop until an allocation isNew
// calls new becomes healthy; maxInFlight is the most seen at once.
func observeAllocs(t *testing.T, c *Cluster, cl *api.Client, start time.Time, done <-chan cliResult, isOld, isNew func(*structs.Allocation) bool) (seen map[string]allocView, events []string, maxInFlight int, res cliResult) {
	t.Helper()
	seen = map[string]allocView{}
	note := func(format string, args ...any) {
		events = append(events, fmt.Sprintf("%6.2fs  ", time.Since(start).Seconds())+fmt.Sprintf(format, args...))
	}
	hostName := func(id string) string {
		if h := c.HostByNodeID(id); h != nil {
			return h.Name
		}
		return id
	}
	finished := false
	for !finished {
		select {
		case res = <-done:
			finished = true
		case <-time.After(100 * time.Millisecond):
		}
		allocs, _, err := cl.Jobs().Allocations("", "web", nil)
		if err != nil {
			t.Logf("polling allocations: %v", err)
			continue
		}
		stoppedOld, healthyNew := 0, 0
		for _, a := range allocs {
			v := allocView{name: a.Name, node: hostName(a.NodeID), status: a.ClientStatus, version: a.JobVersion,
				stopping: a.DesiredStatus == structs.AllocDesiredStop || a.Terminal(), healthy: a.Healthy != nil && *a.Healthy}
			old, known := seen[a.ID]
			switch {
			case !known && v.stopping:
				note("%s v%d on %s (%s) stopping (%s)", a.Name, a.JobVersion, v.node, a.ClientStatus, orDash(a.DesiredDescription))
			case !known:
				note("%s v%d placed on %s (%s)", a.Name, a.JobVersion, v.node, a.ClientStatus)
			case old.stopping != v.stopping:
				note("%s v%d on %s stopping (%s)", a.Name, a.JobVersion, v.node, orDash(a.DesiredDescription))
			case old.status != v.status:
				note("%s v%d on %s %s", a.Name, a.JobVersion, v.node, a.ClientStatus)
			}
			if known && !old.healthy && v.healthy {
				note("%s v%d on %s healthy", a.Name, a.JobVersion, v.node)
			}
			seen[a.ID] = v
			if isOld(a) && v.stopping {
				stoppedOld++
			}
			if isNew(a) && v.healthy && !v.stopping {
				healthyNew++
			}
		}
		if inFlight := stoppedOld - healthyNew; inFlight > maxInFlight {
			maxInFlight = inFlight
			if inFlight > 1 {
				note("MORE THAN max_parallel: %d old allocations stopped, %d new healthy", stoppedOld, healthyNew)
			}
		}
		if time.Since(start) > 4*time.Minute {
			t.Fatalf("still going after 4 minutes:\n%s", strings.Join(events, "\n"))
		}
	}
	return seen, events, maxInFlight, res
}

// allocView is what the rolling-update observer keeps of an allocation.
type allocView struct {
	name, node, status string
	version            uint64
	stopping, healthy  bool
}

// rollingUpdate runs web.hcl with the v2 image and a new release while
// polling the job's allocations, and checks max_parallel = 1: at no moment
// are more old allocations stopped than new ones are healthy, plus one. It
// prints the observed order and returns the new version.
func rollingUpdate(t *testing.T, c *Cluster, cl *api.Client, web string, v1 int64, digest string) int64 {
	t.Helper()
	done := make(chan cliResult, 1)
	start := time.Now()
	go func() {
		out, stderr, err := c.CLIWithin(c.API(), 3*time.Minute, "job", "run", "-var", "image="+imageV2Ref, "-var", "release=2", web)
		done <- cliResult{out, stderr, err}
	}()

	isOld := func(a *structs.Allocation) bool { return int64(a.JobVersion) == v1 }
	isNew := func(a *structs.Allocation) bool { return int64(a.JobVersion) > v1 }
	seen, events, maxInFlight, res := observeAllocs(t, c, cl, start, done, isOld, isNew)
	fmt.Printf("rolling update to %s (max_parallel 1, min_healthy_time 2s), observed order:\n  %s\n", imageV2Ref, strings.Join(events, "\n  "))
	if res.err != nil {
		t.Fatalf("job run (v2): %v\nstdout:\n%s\nstderr:\n%s", res.err, res.out, res.stderr)
	}
	t.Logf("job run (v2) took %v:\n%s", time.Since(start).Round(time.Millisecond), res.out)
	if maxInFlight > 1 {
		t.Errorf("max_parallel 1 violated: up to %d old allocations were stopped before their replacements were healthy", maxInFlight)
	}
	if maxInFlight == 0 {
		t.Errorf("no old allocation was ever seen stopping: the update was not observed")
	}
	var st struct {
		Job         *structs.Job          `json:"job"`
		Allocations []*structs.Allocation `json:"allocations"`
	}
	if err := c.CLIJSON(&st, "job", "status", "web"); err != nil {
		t.Fatal(err)
	}
	v2 := int64(st.Job.Version)
	if v2 <= v1 {
		t.Fatalf("job version %d after the update, want > %d", v2, v1)
	}
	allocs := waitRunning(t, c, cl, "web", 3, v2, 30*time.Second, nil)
	for _, a := range live(allocs) {
		ts := a.TaskStates["main"]
		if ts == nil || ts.ImageDigest != digest || a.Tasks[0].Env["RELEASE"] != "2" {
			t.Errorf("allocation %s after the update: task state %+v env %v, want image %s and RELEASE=2", a.ID, ts, a.Tasks[0].Env, digest)
		}
	}
	// Every old allocation was replaced once: 3 stops, 3 placements.
	olds, news := 0, 0
	var names []string
	for _, v := range seen {
		if int64(v.version) == v1 {
			olds++
		} else {
			news++
			names = append(names, v.name)
		}
	}
	sort.Strings(names)
	if olds != 3 || news != 3 {
		t.Errorf("saw %d old and %d new allocations (%v), want 3 and 3", olds, news, names)
	}
	return v2
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
