package client

import (
	"slices"
	"testing"
	"time"

	"github.com/hivesec/hive/client/driver"
	"github.com/hivesec/hive/structs"
)

func container(alloc, task, node, state string) driver.TaskStatus {
	return driver.TaskStatus{ID: taskID(alloc, task), State: state, PID: 4242, StartedAt: time.Now().Add(-time.Hour),
		Labels: map[string]string{LabelAlloc: alloc, LabelTask: task, LabelNode: node}}
}

func TestPlanReattach(t *testing.T) {
	run := testAlloc("run", testTask("a", quickPolicy(0, "")), testTask("b", quickPolicy(0, "")))
	stopped := testAlloc("stopped", testTask("a", quickPolicy(0, "")))
	stopped.DesiredStatus = structs.AllocDesiredStop
	done := testAlloc("done", testTask("a", quickPolicy(0, "")))
	done.ClientStatus = structs.AllocComplete
	cs := []driver.TaskStatus{
		container("run", "a", "node-1", driver.StateRunning),
		container("run", "b", "node-1", driver.StateExited),
		container("run", "gone-task", "node-1", driver.StateRunning),
		container("stopped", "a", "node-1", driver.StateRunning),
		container("done", "a", "node-1", driver.StateExited),
		container("unknown", "a", "node-1", driver.StateRunning),
		container("other-node", "a", "node-2", driver.StateRunning),
		{ID: "no-labels", State: driver.StateRunning, Labels: map[string]string{LabelNode: "node-1"}},
	}
	p := planReattach("node-1", []*structs.Allocation{run, stopped, done}, cs)
	slices.Sort(p.destroy)
	want := []string{"done-a", "no-labels", "run-gone-task", "stopped-a", "unknown-a"}
	if !slices.Equal(p.destroy, want) {
		t.Errorf("destroy %v, want %v", p.destroy, want)
	}
	if len(p.restore) != 1 || len(p.restore["run"]) != 2 || p.restore["run"]["a"].State != driver.StateRunning || p.restore["run"]["b"].State != driver.StateExited {
		t.Errorf("restore %+v", p.restore)
	}
}

// TestReattach runs the agent-start path: a running task is attached, not
// restarted; an exited one goes through the restart policy; a task the
// managers record as dead stays dead; leftovers of stopped or unknown
// allocations are removed, other nodes' containers are not touched.
func TestReattach(t *testing.T) {
	d, r := newFakeDriver(), newReports()
	d.addImage("busybox", "sha256:x")
	cfg := testRunnerConfig(t, d, r)
	m := newAllocManager(t.Context(), cfg)

	started := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	a := testAlloc("alloc", testTask("running", quickPolicy(1, structs.RestartModeFail)),
		testTask("crashed", quickPolicy(1, structs.RestartModeFail)),
		testTask("finished", quickPolicy(1, structs.RestartModeFail)),
		testTask("missing", quickPolicy(1, structs.RestartModeFail)))
	a.ClientStatus = structs.AllocRunning
	a.TaskStates = map[string]*structs.TaskState{
		"running":  {State: structs.TaskRunning, StartedAt: started, Restarts: 1},
		"crashed":  {State: structs.TaskRunning, StartedAt: started},
		"finished": {State: structs.TaskDead, StartedAt: started, FinishedAt: started.Add(time.Minute)},
		"missing":  {State: structs.TaskRunning, StartedAt: started},
	}
	stopped := testAlloc("stopped", testTask("t", quickPolicy(0, "")))
	stopped.DesiredStatus, stopped.ClientStatus = structs.AllocDesiredStop, structs.AllocRunning

	run := container("alloc", "running", "node-1", driver.StateRunning)
	run.StartedAt = started
	d.put(run)
	crashed := container("alloc", "crashed", "node-1", driver.StateExited)
	crashed.ExitCode = 2
	d.put(crashed)
	d.put(container("stopped", "t", "node-1", driver.StateRunning))
	d.put(container("forgotten", "t", "node-1", driver.StateRunning))
	d.put(container("theirs", "t", "node-2", driver.StateRunning))

	allocs := []*structs.Allocation{a, stopped}
	restore, err := m.reattach(t.Context(), allocs)
	if err != nil {
		t.Fatal(err)
	}
	m.reconcile(allocs, restore)

	u := waitStatus(t, r, "alloc", structs.AllocRunning)
	eventually(t, 5*time.Second, "crashed restarted and missing started", func() error {
		u, _ = r.get("alloc")
		if u.TaskStates["crashed"].State != structs.TaskRunning || u.TaskStates["crashed"].Restarts != 1 || u.TaskStates["missing"].State != structs.TaskRunning {
			return errorf("%+v / %+v", u.TaskStates["crashed"], u.TaskStates["missing"])
		}
		return nil
	})
	if ts := u.TaskStates["running"]; ts.State != structs.TaskRunning || !ts.StartedAt.Equal(started) || ts.Restarts != 1 {
		t.Errorf("re-attached task: %+v", ts)
	}
	if st, err := d.InspectTask(t.Context(), "alloc-running"); err != nil || st.PID != 4242 {
		t.Errorf("re-attached container replaced: %+v %v", st, err)
	}
	if ts := u.TaskStates["crashed"]; ts.Restarts != 1 || ts.LastError == "" {
		t.Errorf("crashed task: %+v", ts)
	}
	if ts := u.TaskStates["finished"]; ts.State != structs.TaskDead || ts.Failed {
		t.Errorf("finished task: %+v", ts)
	}
	for _, cfg := range d.starts {
		if cfg.ID == "alloc-running" || cfg.ID == "alloc-finished" {
			t.Errorf("started %s again", cfg.ID)
		}
	}
	if d.startCount() != 2 {
		t.Errorf("%d starts, want 2 (crashed, missing)", d.startCount())
	}
	if d.has("stopped-t") || d.has("forgotten-t") {
		t.Error("leftovers of stopped or unknown allocations were not removed")
	}
	if !d.has("theirs-t") {
		t.Error("another node's container was removed")
	}
	// The allocation stopped while the agent was away is reported done.
	if u := waitStatus(t, r, "stopped", structs.AllocComplete); u.TaskStates["t"].State != structs.TaskDead {
		t.Errorf("stopped alloc report %+v", u)
	}

	// The re-attached task's exit is seen.
	d.exit("alloc-running", 0)
	eventually(t, 5*time.Second, "the re-attached task's exit", func() error {
		u, _ := r.get("alloc")
		if ts := u.TaskStates["running"]; ts.State != structs.TaskDead {
			return errorf("%+v", ts)
		}
		return nil
	})
}
