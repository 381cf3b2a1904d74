package scheduler

import (
	"math/rand/v2"
	"reflect"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/hivesec/hive/structs"
)

type harness struct {
	t   *testing.T
	st  *MemState
	now time.Time
	ids func() string
	n   int
}

func newHarness(t *testing.T, nodes ...*structs.Node) *harness {
	st := NewMemState()
	st.UpsertNodes(nodes)
	return &harness{t: t, st: st, now: time.Unix(1700000000, 0), ids: counterIDs()}
}

func (h *harness) schedule(jobID string) *Result {
	h.t.Helper()
	h.n++
	eval := &structs.Evaluation{ID: "eval-" + strconv.Itoa(h.n), Namespace: "default", JobID: jobID, Type: structs.JobTypeService}
	res, err := Schedule(h.st, eval, Options{Now: h.now, Rand: rand.New(rand.NewPCG(7, uint64(h.n))), NewID: h.ids})
	if err != nil {
		h.t.Fatal(err)
	}
	return res
}

// run schedules and applies the plan, as the leader would.
func (h *harness) run(jobID string) *Result {
	h.t.Helper()
	res := h.schedule(jobID)
	h.st.ApplyPlan(res.Plan)
	return res
}

// running marks every pending allocation of the job running, its tasks
// started now, as a worker reports it.
func (h *harness) running(jobID string) {
	for _, a := range h.st.AllocsByJob("default", jobID) {
		if a.ClientStatus == structs.AllocPending && a.DesiredStatus == structs.AllocDesiredRun {
			cp := *a
			cp.ClientStatus = structs.AllocRunning
			cp.TaskStates = map[string]*structs.TaskState{}
			for _, t := range a.Tasks {
				cp.TaskStates[t.Name] = &structs.TaskState{State: structs.TaskRunning, StartedAt: h.now}
			}
			h.st.UpsertAllocs(&cp)
		}
	}
}

func (h *harness) live(jobID string) []*structs.Allocation {
	var out []*structs.Allocation
	for _, a := range h.st.AllocsByJob("default", jobID) {
		if live(a) {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func names(as []*structs.Allocation) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Name)
	}
	sort.Strings(out)
	return out
}

func planAllocs(p *structs.Plan, m map[string][]*structs.Allocation) []*structs.Allocation {
	var out []*structs.Allocation
	for _, as := range m {
		out = append(out, as...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func webJob(count int) *structs.Job {
	return &structs.Job{
		ID: "web", Namespace: "default", Type: structs.JobTypeService, Priority: 50,
		Groups: []*structs.TaskGroup{{
			Name: "app", Count: count,
			Tasks: []*structs.Task{{Name: "t", Driver: "containerd", Config: structs.TaskConfig{Image: "img:1"},
				Resources: structs.Resources{CPU: 100, MemoryMB: 100}}},
		}},
	}
}

func threeNodes() []*structs.Node {
	return []*structs.Node{testNode("n1", "dc1", 1000, 1000), testNode("n2", "dc1", 1000, 1000), testNode("n3", "dc1", 1000, 1000)}
}

func TestPlaceAndScale(t *testing.T) {
	h := newHarness(t, threeNodes()...)
	job := webJob(3)
	h.st.UpsertJob(job)
	res := h.run("web")
	if got := names(planAllocs(res.Plan, res.Plan.NodeAllocation)); !reflect.DeepEqual(got, []string{"web.app[0]", "web.app[1]", "web.app[2]"}) {
		t.Fatalf("placed %v", got)
	}
	if res.Blocked || res.Plan.Queued["app"] != 0 {
		t.Fatalf("blocked %v queued %v", res.Blocked, res.Plan.Queued)
	}
	// Nothing to do the second time.
	if res := h.run("web"); !res.Plan.IsNoOp() {
		t.Fatalf("second run not a no-op: %s", res.Description)
	}

	// Scale down: highest indexes stop first.
	job = webJob(1)
	job.Version = 1
	h.st.UpsertJob(job)
	res = h.run("web")
	if got := names(planAllocs(res.Plan, res.Plan.NodeUpdate)); !reflect.DeepEqual(got, []string{"web.app[1]", "web.app[2]"}) {
		t.Fatalf("stopped %v", got)
	}

	// Scale up: the lowest free indexes are reused.
	job = webJob(3)
	job.Version = 2
	h.st.UpsertJob(job)
	res = h.run("web")
	if got := names(planAllocs(res.Plan, res.Plan.NodeAllocation)); !reflect.DeepEqual(got, []string{"web.app[0]", "web.app[1]", "web.app[2]"}) {
		t.Fatalf("placed %v (web.app[0] in place, 1 and 2 new)", got)
	}
	if got := names(h.live("web")); len(got) != 3 {
		t.Fatalf("live %v", got)
	}
}

func TestStopJob(t *testing.T) {
	for _, purge := range []bool{false, true} {
		h := newHarness(t, threeNodes()...)
		job := webJob(2)
		h.st.UpsertJob(job)
		h.run("web")
		if purge {
			h.st.DeleteJob("default", "web")
		} else {
			stopped := *job
			stopped.Stop = true
			h.st.UpsertJob(&stopped)
		}
		res := h.run("web")
		if n := len(planAllocs(res.Plan, res.Plan.NodeUpdate)); n != 2 || len(h.live("web")) != 0 {
			t.Fatalf("purge=%v: stopped %d, live %d", purge, n, len(h.live("web")))
		}
	}
}

func TestInPlaceUpdate(t *testing.T) {
	h := newHarness(t, threeNodes()...)
	h.st.UpsertJob(webJob(2))
	h.run("web")
	before := h.live("web")
	job := webJob(2)
	job.Version, job.Meta = 1, map[string]string{"owner": "ops"}
	h.st.UpsertJob(job)
	res := h.run("web")
	if len(res.Plan.NodeUpdate) != 0 || res.Plan.Deployment != nil {
		t.Fatalf("meta change stopped allocations or made a deployment: %s", res.Description)
	}
	after := h.live("web")
	for i := range after {
		if after[i].ID != before[i].ID || after[i].NodeID != before[i].NodeID || after[i].JobVersion != 1 {
			t.Fatalf("not updated in place: %+v", after[i])
		}
	}
}

func TestRollingUpdateMaxParallel(t *testing.T) {
	h := newHarness(t, threeNodes()...)
	job := webJob(3)
	job.Update = &structs.UpdateStrategy{MaxParallel: 1, MinHealthyTime: time.Second}
	h.st.UpsertJob(job)
	res := h.run("web")
	if res.Plan.Deployment == nil || res.Plan.Deployment.Groups["app"].PlacedAllocs != 3 {
		t.Fatalf("initial deployment %+v", res.Plan.Deployment)
	}
	h.running("web")

	v1 := webJob(3)
	v1.Version, v1.Update = 1, job.Update
	v1.Groups[0].Tasks[0].Config.Image = "img:2"
	h.st.UpsertJob(v1)
	var order []string
	for round := 0; round < 5 && len(order) < 3; round++ {
		res := h.run("web")
		placed := planAllocs(res.Plan, res.Plan.NodeAllocation)
		stopped := planAllocs(res.Plan, res.Plan.NodeUpdate)
		if len(placed) > 1 || len(stopped) != len(placed) {
			t.Fatalf("round %d: placed %d, stopped %d; max_parallel is 1", round, len(placed), len(stopped))
		}
		for _, a := range placed {
			order = append(order, a.Name)
			if a.JobVersion != 1 || a.DeploymentID == "" || a.PreviousAllocation != stopped[0].ID {
				t.Fatalf("replacement %+v", a)
			}
		}
		// Not healthy yet: nothing more moves.
		if res := h.run("web"); !res.Plan.IsNoOp() {
			t.Fatalf("round %d: progressed before health: %s", round, res.Description)
		}
		// The deployment watcher marks the new allocation healthy.
		for _, a := range h.live("web") {
			if a.JobVersion == 1 && a.Healthy == nil {
				cp := *a
				ok := true
				cp.Healthy, cp.ClientStatus = &ok, structs.AllocRunning
				h.st.UpsertAllocs(&cp)
			}
		}
	}
	if !reflect.DeepEqual(order, []string{"web.app[0]", "web.app[1]", "web.app[2]"}) {
		t.Fatalf("update order %v", order)
	}
	for _, a := range h.live("web") {
		if a.JobVersion != 1 {
			t.Fatalf("left on old version: %s", a.Name)
		}
	}
}

func TestLostAllocReplaced(t *testing.T) {
	h := newHarness(t, threeNodes()...)
	h.st.UpsertJob(webJob(3))
	h.run("web")
	victim := h.live("web")[0]
	down := *h.st.Node(victim.NodeID)
	down.Status = structs.NodeStatusDown
	h.st.UpsertNode(&down)
	res := h.run("web")
	stops := planAllocs(res.Plan, res.Plan.NodeUpdate)
	if len(stops) != 1 || stops[0].ID != victim.ID || stops[0].ClientStatus != structs.AllocLost {
		t.Fatalf("stops %+v", stops)
	}
	placed := planAllocs(res.Plan, res.Plan.NodeAllocation)
	if len(placed) != 1 || placed[0].Name != victim.Name || placed[0].PreviousAllocation != victim.ID || placed[0].NodeID == down.ID {
		t.Fatalf("replacement %+v", placed)
	}
}

func TestRescheduleFailed(t *testing.T) {
	h := newHarness(t, threeNodes()...)
	job := webJob(1)
	job.Groups[0].Reschedule = &structs.ReschedulePolicy{Attempts: 2, Interval: time.Hour, Delay: 30 * time.Second, DelayFunction: "constant"}
	h.st.UpsertJob(job)
	h.run("web")
	a := h.live("web")[0]
	failed := *a
	failed.ClientStatus, failed.ModifyTime = structs.AllocFailed, h.now
	h.st.UpsertAllocs(&failed)

	// Delay not over: a follow-up evaluation, nothing placed.
	res := h.run("web")
	if len(res.Plan.NodeAllocation) != 0 || len(res.FollowUps) != 1 || !res.FollowUps[0].WaitUntil.Equal(h.now.Add(30*time.Second)) {
		t.Fatalf("follow-ups %+v, plan %s", res.FollowUps, res.Description)
	}

	// Delay over: replaced, lineage carried, the failed one points at it.
	h.now = h.now.Add(31 * time.Second)
	res = h.run("web")
	placed := planAllocs(res.Plan, res.Plan.NodeAllocation)
	if len(placed) != 1 || placed[0].PreviousAllocation != a.ID || len(placed[0].RescheduleTimes) != 1 || placed[0].Name != a.Name {
		t.Fatalf("replacement %+v", placed)
	}
	if placed[0].NodeID == a.NodeID {
		t.Errorf("rescheduled onto the node it failed on while others were free")
	}
	if stops := planAllocs(res.Plan, res.Plan.NodeUpdate); len(stops) != 1 || stops[0].NextAllocation != placed[0].ID {
		t.Fatalf("failed alloc not linked: %+v", stops)
	}

	// Fail twice more: the second attempt is the last.
	for i, want := range []int{1, 0} {
		cur := h.live("web")[0]
		f := *cur
		f.ClientStatus, f.ModifyTime = structs.AllocFailed, h.now
		h.st.UpsertAllocs(&f)
		h.now = h.now.Add(time.Minute)
		res = h.run("web")
		if got := len(planAllocs(res.Plan, res.Plan.NodeAllocation)); got != want {
			t.Fatalf("failure %d: placed %d, want %d", i+2, got, want)
		}
	}
}

func TestDrainMigratesMaxParallel(t *testing.T) {
	h := newHarness(t, threeNodes()...)
	job := webJob(3)
	job.Constraints = []*structs.Constraint{{LTarget: "${node.unique.id}", Operand: "!=", RTarget: "n3"}}
	h.st.UpsertJob(job)
	h.run("web")
	h.running("web")
	// Put everything on n1 for the test: drain it.
	n1 := *h.st.Node("n1")
	n1.Draining = true
	h.st.UpsertNode(&n1)
	onN1 := 0
	for _, a := range h.live("web") {
		if a.NodeID == "n1" {
			onN1++
		}
	}
	if onN1 == 0 {
		t.Fatal("test setup: nothing on n1")
	}
	moved := 0
	for round := 0; round < 10 && moved < onN1; round++ {
		res := h.run("web")
		placed := planAllocs(res.Plan, res.Plan.NodeAllocation)
		if len(placed) > 1 {
			t.Fatalf("migrated %d at once, max_parallel 1", len(placed))
		}
		for _, a := range placed {
			if a.NodeID == "n1" || a.NodeID == "n3" {
				t.Fatalf("migrated onto %s", a.NodeID)
			}
		}
		moved += len(placed)
		if res := h.run("web"); onN1 > moved && len(res.Plan.NodeAllocation) != 0 {
			t.Fatalf("next migration before the replacement runs")
		}
		h.running("web")
		if res := h.run("web"); onN1 > moved && len(res.Plan.NodeAllocation) != 0 {
			t.Fatalf("next migration before the replacement is healthy")
		}
		// No deployment judges the replacement: healthy once up for the
		// default min_healthy_time.
		h.now = h.now.Add(structs.DefaultUpdateStrategy().MinHealthyTime)
	}
	for _, a := range h.live("web") {
		if a.NodeID == "n1" {
			t.Fatalf("still on the draining node: %s", a.Name)
		}
	}
	if len(h.live("web")) != 3 {
		t.Fatalf("live %d", len(h.live("web")))
	}
}

// TestDrainMaxParallelAcrossEvaluations reproduces the e2e drain: a worker
// with both allocations of a group (max_parallel 1, min_healthy_time 2s)
// drains. A migration stays in flight until its replacement is healthy,
// also once the allocation it replaced has finished stopping, so each
// evaluation in between migrates nothing.
func TestDrainMaxParallelAcrossEvaluations(t *testing.T) {
	type env struct {
		h   *harness
		job *structs.Job
	}
	// replacements are the live allocations placed by migrations.
	replacements := func(e env) []*structs.Allocation {
		var out []*structs.Allocation
		for _, a := range e.h.live("web") {
			if a.PreviousAllocation != "" {
				out = append(out, a)
			}
		}
		return out
	}
	// oldStopped: the migrated allocations finish stopping on n1.
	oldStopped := func(e env) {
		for _, a := range e.h.st.AllocsByJob("default", "web") {
			if a.DesiredStatus == structs.AllocDesiredStop && !a.Terminal() {
				cp := *a
				cp.ClientStatus = structs.AllocComplete
				e.h.st.UpsertAllocs(&cp)
			}
		}
	}
	setHealth := func(v bool) func(env) {
		return func(e env) {
			for _, a := range replacements(e) {
				if a.Healthy == nil {
					cp := *a
					cp.Healthy = &v
					e.h.st.UpsertAllocs(&cp)
				}
			}
		}
	}
	running := func(e env) { e.h.running("web") }
	after := func(d time.Duration) func(env) { return func(e env) { e.h.now = e.h.now.Add(d) } }
	// A deployment of the job's version still running (drain during a
	// rollout): the watcher judges the replacements.
	deploymentRunning := func(e env) {
		d := *e.h.st.LatestDeployment("default", "web")
		d.Status = structs.DeploymentRunning
		e.h.st.UpsertDeployment(&d)
	}

	type step struct {
		name    string
		before  []func(env)
		migrate int // migrations this evaluation must make
		// drainFollowUp: a drain evaluation due this long after now.
		drainFollowUp time.Duration
	}
	cases := []struct {
		name    string
		setup   []func(env)
		steps   []step
		drained bool // n1 empty at the end
	}{{
		// As in the e2e run: the job's deployment finished before the drain.
		name: "e2e sequence",
		steps: []step{
			{name: "eval 1: drain starts", migrate: 1},
			{name: "eval 2: old complete, replacement running, Healthy nil", before: []func(env){oldStopped, running}, migrate: 0, drainFollowUp: 2 * time.Second},
			{name: "eval 3: replacement healthy", before: []func(env){setHealth(true)}, migrate: 1},
			{name: "second replacement pending, old still stopping", migrate: 0},
			{name: "second replacement healthy", before: []func(env){oldStopped, running, setHealth(true)}, migrate: 0},
		},
		drained: true,
	}, {
		// Drain during a rollout: the watcher judges the replacements, so
		// time alone does not make them healthy.
		name:  "running deployment: the watcher's verdict is awaited",
		setup: []func(env){deploymentRunning},
		steps: []step{
			{name: "drain starts", migrate: 1},
			{name: "replacement pending, old still stopping", migrate: 0},
			{name: "old complete, replacement running a minute, Healthy nil", before: []func(env){oldStopped, running, after(time.Minute)}, migrate: 0},
			{name: "replacement healthy", before: []func(env){setHealth(true)}, migrate: 1},
			{name: "second replacement running, Healthy nil", before: []func(env){oldStopped, running}, migrate: 0},
			{name: "second replacement healthy", before: []func(env){setHealth(true)}, migrate: 0},
		},
		drained: true,
	}, {
		name:  "unhealthy replacement holds the drain",
		setup: []func(env){deploymentRunning},
		steps: []step{
			{name: "drain starts", migrate: 1},
			{name: "replacement unhealthy", before: []func(env){oldStopped, running, setHealth(false), after(time.Minute)}, migrate: 0},
		},
	}, {
		// No watcher judges a replacement outside a running deployment:
		// the scheduler does, after min_healthy_time, and asks to be run
		// again then.
		name: "finished deployment: healthy after min_healthy_time",
		steps: []step{
			{name: "drain starts", migrate: 1},
			{name: "old complete, replacement pending", before: []func(env){oldStopped}, migrate: 0},
			{name: "replacement running 1s", before: []func(env){running, after(time.Second)}, migrate: 0, drainFollowUp: time.Second},
			{name: "replacement up min_healthy_time", before: []func(env){after(time.Second)}, migrate: 1},
			{name: "second replacement just started", before: []func(env){oldStopped, running}, migrate: 0},
			{name: "second replacement up min_healthy_time", before: []func(env){after(2 * time.Second)}, migrate: 0},
		},
		drained: true,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Both allocations on n1: place with n1 alone, then add room.
			h := newHarness(t, testNode("n1", "dc1", 1000, 1000))
			job := webJob(2)
			job.Update = &structs.UpdateStrategy{MaxParallel: 1, MinHealthyTime: 2 * time.Second, HealthyDeadline: 5 * time.Minute}
			h.st.UpsertJob(job)
			h.run("web")
			h.running("web")
			ok := true
			for _, a := range h.live("web") {
				cp := *a
				cp.Healthy = &ok
				h.st.UpsertAllocs(&cp)
			}
			d := *h.st.LatestDeployment("default", "web")
			d.Status = structs.DeploymentSuccessful
			h.st.UpsertDeployment(&d)
			e := env{h: h, job: job}
			for _, f := range tc.setup {
				f(e)
			}
			h.st.UpsertNodes([]*structs.Node{testNode("n2", "dc1", 1000, 1000), testNode("n3", "dc1", 1000, 1000)})
			n1 := *h.st.Node("n1")
			n1.Draining = true
			h.st.UpsertNode(&n1)

			for _, s := range tc.steps {
				for _, f := range s.before {
					f(e)
				}
				res := h.run("web")
				placed := planAllocs(res.Plan, res.Plan.NodeAllocation)
				stopped := planAllocs(res.Plan, res.Plan.NodeUpdate)
				if len(placed) != s.migrate || len(stopped) != s.migrate {
					t.Fatalf("%s: placed %d, stopped %d, want %d migration(s): %s", s.name, len(placed), len(stopped), s.migrate, res.Description)
				}
				for i, a := range placed {
					if a.NodeID == "n1" || a.PreviousAllocation != stopped[i].ID || stopped[i].NodeID != "n1" ||
						stopped[i].DesiredDescription != descMigrated {
						t.Fatalf("%s: migration %+v of %+v", s.name, a, stopped[i])
					}
				}
				var follow []time.Time
				for _, f := range res.FollowUps {
					if f.TriggeredBy == structs.EvalTriggerNodeDrain {
						follow = append(follow, f.WaitUntil)
					}
				}
				if s.drainFollowUp == 0 && len(follow) != 0 ||
					s.drainFollowUp != 0 && (len(follow) != 1 || !follow[0].Equal(h.now.Add(s.drainFollowUp))) {
					t.Fatalf("%s: drain follow-ups %v, want one in %v", s.name, follow, s.drainFollowUp)
				}
			}
			onN1 := 0
			for _, a := range h.live("web") {
				if a.NodeID == "n1" {
					onN1++
				}
			}
			if n := len(h.live("web")); n != 2 || tc.drained != (onN1 == 0) {
				t.Fatalf("live %d, %d on the draining node", n, onN1)
			}
		})
	}
}

func TestBlockedReportsWhy(t *testing.T) {
	// A manager is not a candidate: neither evaluated nor filtered.
	mgr := testNode("m1", "dc1", 10000, 10000)
	mgr.Role = structs.RoleManager
	h := newHarness(t, testNode("n1", "dc1", 250, 10000), testNode("n2", "dc2", 10000, 10000), mgr)
	job := webJob(3)
	job.Datacenters = []string{"dc1"}
	h.st.UpsertJob(job)
	res := h.run("web")
	if !res.Blocked || res.Plan.Queued["app"] != 1 {
		t.Fatalf("blocked %v queued %v", res.Blocked, res.Plan.Queued)
	}
	m := res.Plan.FailedTGAllocs["app"]
	if m == nil || m.ConstraintFiltered["datacenter"] != 1 || m.DimensionExhausted["cpu"] != 1 || m.NodesEvaluated != 2 ||
		m.NodesFiltered != 1 || len(m.ConstraintFiltered) != 1 {
		t.Fatalf("metric %+v", m)
	}
	for _, a := range planAllocs(res.Plan, res.Plan.NodeAllocation) {
		if a.NodeID == "m1" || a.Metrics.NodesEvaluated > 2 {
			t.Fatalf("placement %s on %s evaluated %d nodes", a.Name, a.NodeID, a.Metrics.NodesEvaluated)
		}
	}
	var blocked *structs.Evaluation
	for _, e := range res.FollowUps {
		if e.Status == structs.EvalStatusBlocked {
			blocked = e
		}
	}
	if blocked == nil || blocked.QueuedAllocations["app"] != 1 || blocked.FailedTGAllocs["app"] == nil {
		t.Fatalf("blocked eval %+v", blocked)
	}
}

func TestDeterministic(t *testing.T) {
	plan := func() []string {
		h := newHarness(t, c1mNodes(50)...)
		h.st.UpsertJob(c1mJob(2, 40))
		res := h.schedule("job-0002")
		var out []string
		for _, a := range planAllocs(res.Plan, res.Plan.NodeAllocation) {
			out = append(out, a.Name+"@"+a.NodeID)
		}
		return out
	}
	if a, b := plan(), plan(); !reflect.DeepEqual(a, b) || len(a) != 40 {
		t.Fatalf("plans differ or short: %d %d", len(a), len(b))
	}
}
