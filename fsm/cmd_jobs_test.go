package fsm

import (
	"errors"
	"testing"
	"time"

	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

func testJob(ns, id, image string, count int) *structs.Job {
	return &structs.Job{
		ID: id, Name: id, Namespace: ns, Type: structs.JobTypeService, Priority: 50,
		Update: &structs.UpdateStrategy{MaxParallel: 1, MinHealthyTime: time.Second, HealthyDeadline: time.Minute},
		Groups: []*structs.TaskGroup{{Name: "web", Count: count, Tasks: []*structs.Task{{
			Name: "web", Driver: "containerd", Config: structs.TaskConfig{Image: image},
			Resources: structs.Resources{CPU: 100, MemoryMB: 64}, Restart: structs.DefaultRestartPolicy(),
		}}}},
	}
}

func testEval(id, ns, job string) *structs.Evaluation {
	return &structs.Evaluation{ID: id, Namespace: ns, JobID: job, Status: structs.EvalStatusPending, TriggeredBy: structs.EvalTriggerJobRegister, CreateTime: t0}
}

// populateJobs fills the job, version, evaluation and deployment tables
// (team-a must exist, worker w2 too).
func populateJobs(t testing.TB, f *FSM, next func() uint64) {
	t.Helper()
	mustApply(t, f, next(), JobRegisterType, &JobRegisterRequest{Job: testJob("team-a", "web", "busybox:1", 1), Eval: testEval("e1", "team-a", "web"), Now: t0})
	mustApply(t, f, next(), JobRegisterType, &JobRegisterRequest{Job: testJob("team-a", "web", "busybox:2", 1), Eval: testEval("e2", "team-a", "web"), Now: t0})
	job := f.State().Snapshot().Job(nil, "team-a", "web")
	d := &structs.Deployment{ID: "d1", Namespace: "team-a", JobID: "web", JobVersion: job.Version, Status: structs.DeploymentRunning,
		Groups: map[string]*structs.DeploymentState{"web": {DesiredTotal: 1, PlacedAllocs: 1, AutoRevert: true}}}
	done := *testEval("e2", "team-a", "web")
	done.Status = structs.EvalStatusComplete
	mustApply(t, f, next(), PlanApplyType, &PlanApplyRequest{EvalID: "e2", Now: t0, Deployment: d, EvalUpdates: []*structs.Evaluation{&done},
		Allocs: []*structs.Allocation{{
			ID: "j1", Namespace: "team-a", NodeID: "w2", JobID: "web", Group: "web", Name: "web.web[0]", EvalID: "e2",
			JobVersion: job.Version, DeploymentID: "d1", Tasks: job.Groups[0].Tasks, Resources: job.Groups[0].Resources(),
		}}})
	mustApply(t, f, next(), DeploymentUpdateType, &DeploymentUpdateRequest{DeploymentID: "d1", AllocHealth: map[string]bool{"j1": true},
		Status: structs.DeploymentSuccessful, StatusDescription: "all healthy", Now: t0})
	blocked := *testEval("e3", "team-a", "web")
	blocked.Status = structs.EvalStatusBlocked
	blocked.FailedTGAllocs = map[string]*structs.AllocMetric{"web": {NodesEvaluated: 2, NodesExhausted: 1, DimensionExhausted: map[string]int{"memory": 1}}}
	mustApply(t, f, next(), EvalUpsertType, &EvalUpsertRequest{Evals: []*structs.Evaluation{&blocked}})
}

func TestJobRegisterVersions(t *testing.T) {
	f := bootstrapped(t, workerToken("wk"))
	idx := uint64(1)
	next := func() uint64 { idx++; return idx }
	reg := func(j *structs.Job) uint64 {
		t.Helper()
		res := mustApply(t, f, next(), JobRegisterType, &JobRegisterRequest{Job: j, Now: t0})
		return res.Value.(JobRegisterResult).Version
	}
	if v := reg(testJob("default", "web", "a", 1)); v != 0 {
		t.Fatalf("first version %d, want 0", v)
	}
	if v := reg(testJob("default", "web", "a", 1)); v != 0 {
		t.Fatalf("unchanged re-register gave version %d, want 0", v)
	}
	if v := reg(testJob("default", "web", "b", 1)); v != 1 {
		t.Fatalf("changed image gave version %d, want 1", v)
	}
	for i := 0; i < state.MaxJobVersions+3; i++ {
		reg(testJob("default", "web", "img", i+2))
	}
	snap := f.State().Snapshot()
	vs := snap.JobVersions(nil, "default", "web")
	if len(vs) != state.MaxJobVersions {
		t.Fatalf("%d versions kept, want %d", len(vs), state.MaxJobVersions)
	}
	if vs[0].Version != snap.Job(nil, "default", "web").Version || vs[0].Version <= vs[1].Version {
		t.Fatalf("versions not newest first: %d, %d", vs[0].Version, vs[1].Version)
	}
	// A job whose ID is a prefix of another's has its own history.
	reg(testJob("default", "we", "a", 1))
	if n := len(f.State().Snapshot().JobVersions(nil, "default", "we")); n != 1 {
		t.Fatalf("job we has %d versions, want 1", n)
	}

	// Stop makes a new version; purge deletes job and history.
	res := mustApply(t, f, next(), JobDeregisterType, &JobDeregisterRequest{Namespace: "default", ID: "web", Eval: testEval("s1", "default", "web"), Now: t0})
	stopped := f.State().Snapshot().Job(nil, "default", "web")
	if !stopped.Stop || res.Value.(JobRegisterResult).Version != stopped.Version {
		t.Fatalf("stop: job %+v, result %+v", stopped, res.Value)
	}
	mustApply(t, f, next(), JobDeregisterType, &JobDeregisterRequest{Namespace: "default", ID: "web", Purge: true, Eval: testEval("s2", "default", "web"), Now: t0})
	snap = f.State().Snapshot()
	if snap.Job(nil, "default", "web") != nil || len(snap.JobVersions(nil, "default", "web")) != 0 {
		t.Fatal("purge left the job or its versions")
	}
	if snap.Eval(nil, "s2") == nil {
		t.Fatal("purge did not store its evaluation")
	}
}

func TestPlanApplyLinksReplacementsAndKeepsClientState(t *testing.T) {
	f := populated(t)
	idx := uint64(100)
	next := func() uint64 { idx++; return idx }
	mustApply(t, f, next(), AllocClientUpdateType, &AllocClientUpdateRequest{NodeID: "w2", Now: t0, Updates: []structs.AllocUpdate{{ID: "j1", ClientStatus: structs.AllocFailed}}})
	old := f.State().Snapshot().Alloc(nil, "j1")
	inPlace := *old
	inPlace.ClientStatus = structs.AllocPending // stale view of the scheduler
	inPlace.JobVersion = 99
	repl := *old
	repl.ID, repl.PreviousAllocation, repl.ClientStatus, repl.TaskStates = "j2", "j1", "", nil
	mustApply(t, f, next(), PlanApplyType, &PlanApplyRequest{EvalID: "e3", Now: t0, Allocs: []*structs.Allocation{&inPlace, &repl}})
	snap := f.State().Snapshot()
	if a := snap.Alloc(nil, "j1"); a.ClientStatus != structs.AllocFailed || a.JobVersion != 99 || a.NextAllocation != "j2" {
		t.Fatalf("j1 after plan: status %s version %d next %q", a.ClientStatus, a.JobVersion, a.NextAllocation)
	}
	if a := snap.Alloc(nil, "j2"); a.ClientStatus != structs.AllocPending || a.DesiredStatus != structs.AllocDesiredRun {
		t.Fatalf("j2 after plan: %s/%s", a.ClientStatus, a.DesiredStatus)
	}
	if n := len(snap.AllocsByJob(nil, "team-a", "web")); n != 2 {
		t.Fatalf("%d allocations of job web, want 2", n)
	}
	// The deployment kept its health count though the plan's copy had none.
	mustApply(t, f, next(), PlanApplyType, &PlanApplyRequest{EvalID: "e3", Now: t0, Deployment: &structs.Deployment{
		ID: "d1", Namespace: "team-a", JobID: "web", Status: structs.DeploymentRunning, Groups: map[string]*structs.DeploymentState{"web": {DesiredTotal: 1}},
	}})
	d := f.State().Snapshot().Deployment(nil, "d1")
	if d.Groups["web"].HealthyAllocs != 1 || d.Status != structs.DeploymentSuccessful {
		t.Fatalf("deployment after plan: %+v %s", d.Groups["web"], d.Status)
	}
}

// TestDeploymentPromote: a promotion marks the groups with canaries, and a
// plan computed before it neither undoes it nor forgets canaries.
func TestDeploymentPromote(t *testing.T) {
	f := populated(t)
	idx := uint64(100)
	next := func() uint64 { idx++; return idx }
	job := f.State().Snapshot().Job(nil, "team-a", "web")
	d := &structs.Deployment{ID: "d2", Namespace: "team-a", JobID: "web", JobVersion: job.Version, Status: structs.DeploymentRunning,
		Groups: map[string]*structs.DeploymentState{
			"web":   {DesiredTotal: 1, DesiredCanaries: 1, PlacedCanaries: []string{"c1"}},
			"other": {DesiredTotal: 1},
		}}
	mustApply(t, f, next(), PlanApplyType, &PlanApplyRequest{EvalID: "e3", Now: t0, Deployment: d})
	e := testEval("p1", "team-a", "web")
	e.TriggeredBy = structs.EvalTriggerPromotion
	mustApply(t, f, next(), DeploymentUpdateType, &DeploymentUpdateRequest{DeploymentID: "d2", Promote: true, Eval: e, Now: t0})
	got := f.State().Snapshot().Deployment(nil, "d2")
	if !got.Groups["web"].Promoted || got.Groups["other"].Promoted || f.State().Snapshot().Eval(nil, "p1") == nil {
		t.Fatalf("after promote: %+v %+v", got.Groups["web"], got.Groups["other"])
	}
	// The stale plan knew one canary and no promotion; another placed c2.
	stale := *d
	stale.Groups = map[string]*structs.DeploymentState{
		"web":   {DesiredTotal: 1, DesiredCanaries: 1, PlacedCanaries: []string{"c1", "c2"}},
		"other": {DesiredTotal: 1},
	}
	mustApply(t, f, next(), PlanApplyType, &PlanApplyRequest{EvalID: "e3", Now: t0, Deployment: &stale})
	got = f.State().Snapshot().Deployment(nil, "d2")
	if st := got.Groups["web"]; !st.Promoted || len(st.PlacedCanaries) != 2 || st.PlacedCanaries[1] != "c2" {
		t.Fatalf("after a stale plan: %+v", st)
	}
	// A finished deployment is not promoted.
	mustApply(t, f, next(), DeploymentUpdateType, &DeploymentUpdateRequest{DeploymentID: "d1", Promote: true, Now: t0})
	for g, st := range f.State().Snapshot().Deployment(nil, "d1").Groups {
		if st.Promoted {
			t.Fatalf("finished deployment's group %s promoted", g)
		}
	}
}

func TestJobCommandsRefuseBadInput(t *testing.T) {
	cases := []struct {
		name string
		typ  MessageType
		body any
		want error
	}{
		{"job without namespace", JobRegisterType, &JobRegisterRequest{Job: testJob("", "x", "a", 1)}, ErrInvalid},
		{"job in missing namespace", JobRegisterType, &JobRegisterRequest{Job: testJob("nope", "x", "a", 1)}, ErrInvalid},
		{"negative count", JobRegisterType, &JobRegisterRequest{Job: testJob("team-a", "x", "a", -1)}, ErrInvalid},
		{"eval without job", JobRegisterType, &JobRegisterRequest{Job: testJob("team-a", "x", "a", 1), Eval: &structs.Evaluation{ID: "e", Namespace: "team-a", Status: "pending"}}, ErrInvalid},
		{"deregister missing job", JobDeregisterType, &JobDeregisterRequest{Namespace: "team-a", ID: "nope"}, state.ErrNotFound},
		{"eval bad status", EvalUpsertType, &EvalUpsertRequest{Evals: []*structs.Evaluation{{ID: "e", Namespace: "team-a", JobID: "web", Status: "weird"}}}, ErrInvalid},
		{"plan stops missing alloc", PlanApplyType, &PlanApplyRequest{Stops: []*structs.Allocation{{ID: "nope"}}}, state.ErrNotFound},
		{"plan on a manager", PlanApplyType, &PlanApplyRequest{Allocs: []*structs.Allocation{{ID: "x", Namespace: "team-a", JobID: "web", NodeID: "mgr-node", Tasks: []*structs.Task{{Name: "t"}}}}}, ErrInvalid},
		{"plan on missing node", PlanApplyType, &PlanApplyRequest{Allocs: []*structs.Allocation{{ID: "x", Namespace: "team-a", JobID: "web", NodeID: "nope", Tasks: []*structs.Task{{Name: "t"}}}}}, ErrInvalid},
		{"deployment missing", DeploymentUpdateType, &DeploymentUpdateRequest{DeploymentID: "nope"}, state.ErrNotFound},
		{"deployment health of missing alloc", DeploymentUpdateType, &DeploymentUpdateRequest{DeploymentID: "d1", AllocHealth: map[string]bool{"nope": true}}, state.ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := populated(t)
			before := dump(t, f.State())
			res := apply(t, f, 1000, tc.typ, tc.body)
			if !errors.Is(res.Err, tc.want) {
				t.Fatalf("error %v, want %v", res.Err, tc.want)
			}
			requireSameState(t, before, dump(t, f.State()))
		})
	}
}
