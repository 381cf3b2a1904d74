package client

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hivesec/hive/client/driver"
	"github.com/hivesec/hive/structs"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// TestRunnerRestartUsesPinnedDigest: the first start resolves the tag and
// records its digest; a restart after the tag moved runs the recorded one.
func TestRunnerRestartUsesPinnedDigest(t *testing.T) {
	d, r := newFakeDriver(), newReports()
	d.addImage("busybox", digestA)
	cfg := testRunnerConfig(t, d, r)
	ar := newAllocRunner(t.Context(), cfg, testAlloc("p1", testTask("t", quickPolicy(2, structs.RestartModeFail))))
	ar.run(nil)
	u := waitStatus(t, r, "p1", structs.AllocRunning)
	if got := u.TaskStates["t"].ImageDigest; got != digestA {
		t.Fatalf("recorded digest %q, want %s", got, digestA)
	}

	d.addImage("busybox", digestB) // retagged
	d.exit("p1-t", 1)
	eventually(t, 5*time.Second, "restart", func() error {
		u, _ := r.get("p1")
		if ts := u.TaskStates["t"]; ts.Restarts != 1 || ts.State != structs.TaskRunning {
			return errorf("%+v", ts)
		}
		return nil
	})
	if got := d.startedWith("p1-t"); !slices.Equal(got, []string{digestA, digestA}) {
		t.Errorf("started with %v, want the pinned %s twice", got, digestA)
	}
	if u, _ := r.get("p1"); u.TaskStates["t"].ImageDigest != digestA {
		t.Errorf("recorded digest after restart %q", u.TaskStates["t"].ImageDigest)
	}
	ar.stop("done")
	<-ar.done
}

// TestReattachUsesPinnedDigest: after an agent restart the digests the
// managers hold pin the tasks' next starts: an exited task restarts on it,
// a missing one starts on it (pulled by digest, since only the retagged
// name is here); a task that never started resolves the tag.
func TestReattachUsesPinnedDigest(t *testing.T) {
	d, r := newFakeDriver(), newReports()
	d.addImage("busybox", digestB) // the tag moved while the agent was away
	cfg := testRunnerConfig(t, d, r)
	m := newAllocManager(t.Context(), cfg)

	started := time.Now().Add(-time.Hour).UTC()
	a := testAlloc("alloc", testTask("crashed", quickPolicy(1, structs.RestartModeFail)),
		testTask("missing", quickPolicy(1, structs.RestartModeFail)),
		testTask("fresh", quickPolicy(1, structs.RestartModeFail)))
	a.ClientStatus = structs.AllocRunning
	a.TaskStates = map[string]*structs.TaskState{
		"crashed": {State: structs.TaskRunning, StartedAt: started, ImageDigest: digestA},
		"missing": {State: structs.TaskRunning, StartedAt: started, ImageDigest: digestA},
		"fresh":   {State: structs.TaskPending},
	}
	crashed := container("alloc", "crashed", "node-1", driver.StateExited)
	crashed.ExitCode = 2
	d.put(crashed)

	allocs := []*structs.Allocation{a}
	restore, err := m.reattach(t.Context(), allocs)
	if err != nil {
		t.Fatal(err)
	}
	m.reconcile(allocs, restore)
	eventually(t, 5*time.Second, "all tasks running", func() error {
		u, _ := r.get("alloc")
		for _, n := range []string{"crashed", "missing", "fresh"} {
			if ts := u.TaskStates[n]; ts == nil || ts.State != structs.TaskRunning {
				return errorf("%s: %+v", n, ts)
			}
		}
		return nil
	})
	for task, want := range map[string]string{"crashed": digestA, "missing": digestA, "fresh": digestB} {
		if got := d.startedWith(taskID("alloc", task)); !slices.Equal(got, []string{want}) {
			t.Errorf("%s started with %v, want %s", task, got, want)
		}
		if u, _ := r.get("alloc"); u.TaskStates[task].ImageDigest != want {
			t.Errorf("%s recorded %q, want %s", task, u.TaskStates[task].ImageDigest, want)
		}
	}
	d.mu.Lock()
	pulls := slices.Clone(d.pulls)
	d.mu.Unlock()
	if want := "docker.io/library/busybox@" + digestA; !slices.Contains(pulls, want) {
		t.Errorf("pulls %v, want %s", pulls, want)
	}
}

// TestPinnedDigestGone: a pinned image that is nowhere and cannot be
// pulled fails the task with an error naming the image and the digest.
func TestPinnedDigestGone(t *testing.T) {
	d, r := newFakeDriver(), newReports()
	d.addImage("busybox", digestB)
	d.PullErr = errorf("pull: %w", driver.ErrNotFound)
	cfg := testRunnerConfig(t, d, r)
	a := testAlloc("p3", testTask("t", quickPolicy(2, structs.RestartModeFail)))
	a.TaskStates = map[string]*structs.TaskState{"t": {State: structs.TaskRunning, StartedAt: time.Now().Add(-time.Hour), ImageDigest: digestA}}
	ar := newAllocRunner(t.Context(), cfg, a)
	ar.run(nil)
	u := waitStatus(t, r, "p3", structs.AllocFailed)
	ts := u.TaskStates["t"]
	for _, want := range []string{"docker.io/library/busybox", digestA} {
		if !strings.Contains(ts.LastError, want) {
			t.Errorf("error %q does not name %s", ts.LastError, want)
		}
	}
	if d.startCount() != 0 {
		t.Errorf("%d starts, want none", d.startCount())
	}
	<-ar.done
}
