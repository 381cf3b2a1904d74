package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hivesec/hive/client/driver"
	"github.com/hivesec/hive/structs"
)

func TestRestartTracker(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		at        time.Duration // since t0
		restart   bool
		wait      time.Duration
		exhausted bool
	}
	cases := []struct {
		name   string
		policy structs.RestartPolicy
		steps  []step
	}{
		{"fail after attempts", structs.RestartPolicy{Attempts: 2, Interval: time.Minute, Delay: time.Second, Mode: structs.RestartModeFail}, []step{
			{0, true, time.Second, false},
			{2 * time.Second, true, time.Second, false},
			{4 * time.Second, false, 0, true},
		}},
		{"interval resets the count", structs.RestartPolicy{Attempts: 1, Interval: 10 * time.Second, Delay: time.Second, Mode: structs.RestartModeFail}, []step{
			{0, true, time.Second, false},
			{11 * time.Second, true, time.Second, false},
			{12 * time.Second, false, 0, true},
		}},
		{"zero attempts fail at once", structs.RestartPolicy{Attempts: 0, Interval: time.Minute, Delay: time.Second, Mode: structs.RestartModeFail}, []step{
			{0, false, 0, true},
		}},
		{"delay waits out the interval", structs.RestartPolicy{Attempts: 1, Interval: 30 * time.Second, Delay: time.Second, Mode: structs.RestartModeDelay}, []step{
			{0, true, time.Second, false},
			{5 * time.Second, true, 25 * time.Second, true},
			// A new interval begins with the next failure.
			{31 * time.Second, true, time.Second, false},
			{33 * time.Second, true, 28 * time.Second, true},
		}},
		{"delay never shorter than delay", structs.RestartPolicy{Attempts: 1, Interval: 10 * time.Second, Delay: 8 * time.Second, Mode: structs.RestartModeDelay}, []step{
			{0, true, 8 * time.Second, false},
			{9 * time.Second, true, 8 * time.Second, true},
		}},
		{"no interval never resets", structs.RestartPolicy{Attempts: 1, Delay: time.Second, Mode: structs.RestartModeFail}, []step{
			{0, true, time.Second, false},
			{time.Hour, false, 0, true},
		}},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "-"), func(t *testing.T) {
			r := restartTracker{policy: c.policy}
			for i, s := range c.steps {
				d := r.next(t0.Add(s.at))
				if d.Restart != s.restart || d.Wait != s.wait || d.Exhausted != s.exhausted {
					t.Errorf("step %d at %s: %+v, want restart=%v wait=%s exhausted=%v", i, s.at, d, s.restart, s.wait, s.exhausted)
				}
			}
		})
	}
}

func TestAllocStatus(t *testing.T) {
	tasks := []*structs.Task{{Name: "a"}, {Name: "b"}}
	now := time.Now()
	ts := func(state string, started bool, failed bool) *structs.TaskState {
		s := &structs.TaskState{State: state, Failed: failed}
		if started {
			s.StartedAt = now
		}
		return s
	}
	cases := []struct {
		a, b *structs.TaskState
		want string
	}{
		{ts(structs.TaskPending, false, false), ts(structs.TaskPending, false, false), structs.AllocPending},
		{ts(structs.TaskRunning, true, false), ts(structs.TaskPending, false, false), structs.AllocPending},
		{ts(structs.TaskRunning, true, false), ts(structs.TaskRunning, true, false), structs.AllocRunning},
		// Waiting to restart keeps the allocation running.
		{ts(structs.TaskRunning, true, false), ts(structs.TaskPending, true, false), structs.AllocRunning},
		{ts(structs.TaskDead, true, false), ts(structs.TaskRunning, true, false), structs.AllocRunning},
		{ts(structs.TaskDead, true, false), ts(structs.TaskDead, true, false), structs.AllocComplete},
		{ts(structs.TaskDead, false, false), ts(structs.TaskDead, true, false), structs.AllocComplete},
		{ts(structs.TaskDead, true, true), ts(structs.TaskRunning, true, false), structs.AllocFailed},
		{ts(structs.TaskDead, false, true), ts(structs.TaskDead, true, false), structs.AllocFailed},
	}
	for i, c := range cases {
		if got := allocStatus(tasks, map[string]*structs.TaskState{"a": c.a, "b": c.b}); got != c.want {
			t.Errorf("case %d (%s/%s): %s, want %s", i, c.a.State, c.b.State, got, c.want)
		}
	}
}

func TestDriverConfig(t *testing.T) {
	a := testAlloc("0b6f7c2e-8f7a-4a43-9d1c-1f8e5e0c8d2a")
	task := &structs.Task{Name: "web", Config: structs.TaskConfig{Image: "busybox", Command: "sh", Args: []string{"-c", "x"}, Entrypoint: []string{"/bin/env"}},
		Env: map[string]string{"A": "1", "HIVE_TASK_NAME": "override"}, User: "1000:1000",
		Resources: structs.Resources{CPU: 500, MemoryMB: 64},
		Security:  structs.SecurityContext{ReadOnlyRootfs: true, CapAdd: []string{"NET_BIND_SERVICE"}, CapDrop: []string{"CHOWN"}, Privileged: true},
		Labels:    map[string]string{"team": "x", "hive.alloc": "spoofed"}}
	c := driverConfig(a, task, "/var/hive/allocs", "node-1")
	if c.ID != a.ID+"-web" || c.Name != "web" || c.Image != "busybox" || c.Command != "sh" || !slices.Equal(c.Args, []string{"-c", "x"}) || !slices.Equal(c.Entrypoint, []string{"/bin/env"}) {
		t.Errorf("process: %+v", c)
	}
	if c.User != "1000:1000" || !c.ReadOnlyRootfs || !slices.Equal(c.CapAdd, []string{"NET_BIND_SERVICE"}) || !slices.Equal(c.CapDrop, []string{"CHOWN"}) || !c.Privileged || !c.AllowPrivileged {
		t.Errorf("security: %+v", c)
	}
	if c.CPUShares != 512 || c.MemoryBytes != 64<<20 {
		t.Errorf("resources: shares %d memory %d", c.CPUShares, c.MemoryBytes)
	}
	if c.LogDir != "/var/hive/allocs/"+a.ID+"/web/logs" {
		t.Errorf("log dir %s", c.LogDir)
	}
	if c.Labels[LabelAlloc] != a.ID || c.Labels[LabelTask] != "web" || c.Labels[LabelNamespace] != "default" || c.Labels[LabelNode] != "node-1" || c.Labels["team"] != "x" {
		t.Errorf("labels %v", c.Labels)
	}
	if c.Env["A"] != "1" || c.Env["HIVE_ALLOC_ID"] != a.ID || c.Env["HIVE_TASK_NAME"] != "override" {
		t.Errorf("env %v", c.Env)
	}
	for mhz, want := range map[int]uint64{0: 2, 1: 2, 100: 102, 1000: 1024, 1 << 30: 262144} {
		if got := cpuShares(mhz); got != want {
			t.Errorf("cpuShares(%d) = %d, want %d", mhz, got, want)
		}
	}
	// Names that would make an invalid or too long containerd ID.
	for _, name := range []string{"a--b", strings.Repeat("x", 63)} {
		id := taskID(a.ID, name)
		if !strings.HasPrefix(id, a.ID+"-t") || len(id) > 76 || id != taskID(a.ID, name) {
			t.Errorf("taskID(%q) = %q", name, id)
		}
	}
}

func quickPolicy(attempts int, mode string) structs.RestartPolicy {
	return structs.RestartPolicy{Attempts: attempts, Interval: time.Minute, Delay: 10 * time.Millisecond, Mode: mode}
}

func TestRunnerRunsToComplete(t *testing.T) {
	d, r := newFakeDriver(), newReports()
	d.addImage("busybox", "sha256:local")
	cfg := testRunnerConfig(t, d, r)
	a := testAlloc("a1", testTask("one", quickPolicy(0, structs.RestartModeFail)), testTask("two", quickPolicy(0, structs.RestartModeFail)))
	ar := newAllocRunner(t.Context(), cfg, a)
	ar.run(nil)
	u := waitStatus(t, r, "a1", structs.AllocRunning)
	for _, name := range []string{"one", "two"} {
		ts := u.TaskStates[name]
		if ts.State != structs.TaskRunning || ts.StartedAt.IsZero() || ts.ImageDigest != "sha256:local" {
			t.Errorf("task %s: %+v", name, ts)
		}
	}
	if d.startCount() != 2 {
		t.Errorf("%d starts, want 2", d.startCount())
	}
	d.exit("a1-one", 0)
	time.Sleep(50 * time.Millisecond)
	if u, _ := r.get("a1"); u.ClientStatus != structs.AllocRunning || u.TaskStates["one"].State != structs.TaskDead {
		t.Errorf("after one task finished: %+v %+v", u, u.TaskStates["one"])
	}
	d.exit("a1-two", 0)
	u = waitStatus(t, r, "a1", structs.AllocComplete)
	if ts := u.TaskStates["two"]; ts.Failed || ts.ExitCode != 0 || ts.FinishedAt.IsZero() {
		t.Errorf("task two: %+v", ts)
	}
	<-ar.done
	if d.has("a1-one") || d.has("a1-two") {
		t.Error("containers left after the tasks finished")
	}
	if got := r.statuses("a1"); !slices.Equal(got, []string{structs.AllocPending, structs.AllocRunning, structs.AllocComplete}) {
		t.Errorf("status sequence %v", got)
	}
}

func TestRunnerRestartThenFail(t *testing.T) {
	d, r := newFakeDriver(), newReports()
	d.addImage("busybox", "sha256:local")
	cfg := testRunnerConfig(t, d, r)
	a := testAlloc("a2", testTask("flaky", quickPolicy(2, structs.RestartModeFail)), testTask("sidecar", quickPolicy(0, structs.RestartModeFail)))
	ar := newAllocRunner(t.Context(), cfg, a)
	ar.run(nil)
	waitStatus(t, r, "a2", structs.AllocRunning)
	for i := 1; i <= 3; i++ {
		eventually(t, 5*time.Second, "flaky running", func() error {
			if !d.exit("a2-flaky", 3) {
				return errors.New("not running")
			}
			return nil
		})
		if i < 3 {
			eventually(t, 5*time.Second, "restart", func() error {
				u, _ := r.get("a2")
				if ts := u.TaskStates["flaky"]; ts.Restarts != i || ts.State != structs.TaskRunning {
					return fmt.Errorf("%+v", ts)
				}
				return nil
			})
		}
	}
	u := waitStatus(t, r, "a2", structs.AllocFailed)
	ts := u.TaskStates["flaky"]
	if !ts.Failed || ts.State != structs.TaskDead || ts.Restarts != 2 || ts.ExitCode != 3 || !strings.Contains(ts.LastError, "exited with code 3") {
		t.Errorf("flaky: %+v", ts)
	}
	<-ar.done
	u, _ = r.get("a2")
	if sc := u.TaskStates["sidecar"]; sc.State != structs.TaskDead || sc.Failed {
		t.Errorf("sidecar should be stopped, not failed: %+v", sc)
	}
	if !d.stopped("a2-sidecar") || d.has("a2-sidecar") || d.has("a2-flaky") {
		t.Error("the sibling was not stopped and removed")
	}
	if !strings.Contains(u.ClientDescription, "task flaky failed") {
		t.Errorf("description %q", u.ClientDescription)
	}
	if d.startCount() != 4 {
		t.Errorf("%d starts, want 4 (flaky 3, sidecar 1)", d.startCount())
	}
}

func TestRunnerDelayMode(t *testing.T) {
	d, r := newFakeDriver(), newReports()
	d.addImage("busybox", "sha256:local")
	cfg := testRunnerConfig(t, d, r)
	p := structs.RestartPolicy{Attempts: 1, Interval: 300 * time.Millisecond, Delay: 10 * time.Millisecond, Mode: structs.RestartModeDelay}
	a := testAlloc("a3", testTask("t", p))
	ar := newAllocRunner(t.Context(), cfg, a)
	ar.run(nil)
	waitStatus(t, r, "a3", structs.AllocRunning)
	start := time.Now()
	d.exit("a3-t", 1)
	eventually(t, 5*time.Second, "first restart", func() error {
		if d.startCount() != 2 || !d.exit("a3-t", 1) {
			return errors.New("not restarted yet")
		}
		return nil
	})
	// The attempt is used up: the next start waits for the interval.
	eventually(t, 5*time.Second, "restart after the interval", func() error {
		if d.startCount() != 3 {
			return fmt.Errorf("%d starts", d.startCount())
		}
		return nil
	})
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Errorf("restarted after %s, before the interval ended", el)
	}
	u, _ := r.get("a3")
	if ts := u.TaskStates["t"]; ts.Failed || ts.Restarts != 2 {
		t.Errorf("task: %+v", ts)
	}
	ar.stop("test over")
	waitStatus(t, r, "a3", structs.AllocComplete)
}

func TestRunnerStartErrors(t *testing.T) {
	cases := map[string]struct {
		setup func(d *fakeDriver)
		want  string
	}{
		"image missing": {func(d *fakeDriver) {
			d.PullErr = fmt.Errorf("pull image docker.io/library/busybox:latest: %w", driver.ErrNotFound)
		}, "could not be pulled"},
		"refused config": {func(d *fakeDriver) {
			d.addImage("busybox", "sha256:x")
			d.StartErr = func(driver.TaskConfig) error { return fmt.Errorf("%w: memory too small", driver.ErrInvalidConfig) }
		}, "memory too small"},
		"privileged": {func(d *fakeDriver) {
			d.addImage("busybox", "sha256:x")
			d.StartErr = func(driver.TaskConfig) error { return driver.ErrPrivilegedNotAllowed }
		}, "privileged"},
	}
	for name, c := range cases {
		t.Run(strings.ReplaceAll(name, " ", "-"), func(t *testing.T) {
			d, r := newFakeDriver(), newReports()
			c.setup(d)
			cfg := testRunnerConfig(t, d, r)
			// Restarts would not help: the failure must be immediate.
			a := testAlloc("a4", testTask("t", quickPolicy(5, structs.RestartModeFail)))
			ar := newAllocRunner(t.Context(), cfg, a)
			ar.run(nil)
			u := waitStatus(t, r, "a4", structs.AllocFailed)
			ts := u.TaskStates["t"]
			if ts.State != structs.TaskDead || !ts.Failed || ts.Restarts != 0 || !strings.Contains(ts.LastError, c.want) {
				t.Errorf("task: %+v", ts)
			}
			<-ar.done
			if d.has("a4-t") {
				t.Error("container left behind")
			}
		})
	}
}

func TestRunnerTransientStartErrorRestarts(t *testing.T) {
	d, r := newFakeDriver(), newReports()
	d.addImage("busybox", "sha256:x")
	fails := 1
	d.StartErr = func(driver.TaskConfig) error {
		if fails > 0 {
			fails--
			return context.DeadlineExceeded
		}
		return nil
	}
	cfg := testRunnerConfig(t, d, r)
	a := testAlloc("a5", testTask("t", quickPolicy(2, structs.RestartModeFail)))
	ar := newAllocRunner(t.Context(), cfg, a)
	ar.run(nil)
	u := waitStatus(t, r, "a5", structs.AllocRunning)
	if ts := u.TaskStates["t"]; ts.Restarts != 1 || !strings.Contains(ts.LastError, "deadline") {
		t.Errorf("task: %+v", ts)
	}
	ar.stop("done")
	<-ar.done
}

func TestRunnerStop(t *testing.T) {
	d, r := newFakeDriver(), newReports()
	d.addImage("busybox", "sha256:x")
	cfg := testRunnerConfig(t, d, r)
	m := newAllocManager(t.Context(), cfg)
	a := testAlloc("a6", testTask("t", quickPolicy(0, structs.RestartModeFail)))
	m.reconcile([]*structs.Allocation{a}, nil)
	waitStatus(t, r, "a6", structs.AllocRunning)
	stopped := *a
	stopped.DesiredStatus = structs.AllocDesiredStop
	m.reconcile([]*structs.Allocation{&stopped}, nil)
	u := waitStatus(t, r, "a6", structs.AllocComplete)
	if ts := u.TaskStates["t"]; ts.State != structs.TaskDead || ts.Failed || ts.ExitCode != 143 {
		t.Errorf("task: %+v", ts)
	}
	if !d.stopped("a6-t") || d.has("a6-t") {
		t.Error("container not stopped and removed")
	}
	// A repeated answer does not start it again.
	m.reconcile([]*structs.Allocation{&stopped}, nil)
	m.reconcile([]*structs.Allocation{a}, nil)
	time.Sleep(30 * time.Millisecond)
	if d.startCount() != 1 {
		t.Errorf("%d starts, want 1", d.startCount())
	}
}

func TestRunnerShutdownLeavesContainers(t *testing.T) {
	d, r := newFakeDriver(), newReports()
	d.addImage("busybox", "sha256:x")
	cfg := testRunnerConfig(t, d, r)
	ctx, cancel := context.WithCancel(t.Context())
	m := newAllocManager(ctx, cfg)
	m.reconcile([]*structs.Allocation{testAlloc("a7", testTask("t", quickPolicy(0, structs.RestartModeFail)))}, nil)
	waitStatus(t, r, "a7", structs.AllocRunning)
	cancel()
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	m.wait(wctx)
	if wctx.Err() != nil {
		t.Fatal("runners did not return after shutdown")
	}
	if !d.has("a7-t") || d.stopped("a7-t") {
		t.Error("shutdown touched the container")
	}
	if u, _ := r.get("a7"); u.ClientStatus != structs.AllocRunning {
		t.Errorf("shutdown reported %s", u.ClientStatus)
	}
}

func TestRunnerLostStopsQuietly(t *testing.T) {
	d, r := newFakeDriver(), newReports()
	d.addImage("busybox", "sha256:x")
	cfg := testRunnerConfig(t, d, r)
	m := newAllocManager(t.Context(), cfg)
	a := testAlloc("a8", testTask("t", quickPolicy(0, structs.RestartModeFail)))
	m.reconcile([]*structs.Allocation{a}, nil)
	waitStatus(t, r, "a8", structs.AllocRunning)
	n := len(r.statuses("a8"))
	lost := *a
	lost.ClientStatus = structs.AllocLost
	m.reconcile([]*structs.Allocation{&lost}, nil)
	<-m.runner("a8").done
	if d.has("a8-t") || !d.stopped("a8-t") {
		t.Error("the lost allocation's container still runs")
	}
	if got := r.statuses("a8"); len(got) != n {
		t.Errorf("reported %v after the allocation was lost", got)
	}
}
