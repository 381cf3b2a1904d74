package server

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/scheduler"
	"github.com/hivesec/hive/structs"
)

// runJobSystem starts the leader's job machinery: the evaluation broker
// and its feeder, the scheduler workers, the plan applier, the deployment
// watcher, the node triggers and the safety net. It returns when ctx ends
// and every goroutine has stopped.
func (s *Server) runJobSystem(ctx context.Context) {
	b := newEvalBroker()
	p := newPlanApplier(s)
	run := []func(){
		func() { b.runDelays(ctx) },
		func() { s.feedBroker(ctx, b) },
		func() { p.run(ctx) },
		func() { s.watchDeployments(ctx) },
		func() { s.watchNodes(ctx) },
		func() { s.watchDrains(ctx) },
		func() { s.safetyNet(ctx) },
	}
	for i := range schedWorkers {
		run = append(run, func() { s.runSchedWorker(ctx, b, p, uint64(i)+1) })
	}
	done := make(chan struct{}, len(run))
	for _, f := range run {
		go func() { defer func() { done <- struct{}{} }(); f() }()
	}
	for range run {
		<-done
	}
}

func namespaceParam(r *http.Request) string {
	if ns := r.URL.Query().Get("namespace"); ns != "" {
		return ns
	}
	return structs.DefaultNamespace
}

// normalizeJob checks a submitted job and fills in defaults, so that what
// is stored is what the scheduler and the workers run.
func (s *Server) normalizeJob(r *http.Request, req *structs.JobRegisterRequest, pathID string) (*structs.Job, error) {
	j := req.Job
	if j == nil {
		return nil, badRequest("the request has no job")
	}
	ns := namespaceParam(r)
	if j.Namespace == "" {
		j.Namespace = ns
	} else if r.URL.Query().Get("namespace") != "" && j.Namespace != ns {
		return nil, badRequest("job namespace %q differs from ?namespace=%s", j.Namespace, ns)
	}
	if pathID != "" && j.ID != pathID {
		return nil, badRequest("job ID %q differs from the ID in the path (%q)", j.ID, pathID)
	}
	if err := structs.ValidateName("job", j.ID); err != nil {
		return nil, badRequest("%v", err)
	}
	nsRec := s.fsm.State().Snapshot().Namespace(nil, j.Namespace)
	if nsRec == nil {
		return nil, notFound("namespace %q not found; create it with `hive namespace create`", j.Namespace)
	}
	if j.Name == "" {
		j.Name = j.ID
	}
	switch j.Type {
	case "":
		j.Type = structs.JobTypeService
	case structs.JobTypeService, structs.JobTypeBatch:
	default:
		return nil, badRequest("job type %q: use \"service\" or \"batch\"", j.Type)
	}
	if j.Priority == 0 {
		j.Priority = 50
	}
	if j.Priority < 1 || j.Priority > 100 {
		return nil, badRequest("priority %d: use 1-100", j.Priority)
	}
	if len(j.Groups) == 0 {
		return nil, badRequest("job %q has no groups", j.ID)
	}
	if err := checkUpdate(j.Update); err != nil {
		return nil, err
	}
	if err := structs.ValidateEndpointLabels(j.Labels); err != nil {
		return nil, badRequest("job %q labels: %v", j.ID, err)
	}
	groups := map[string]bool{}
	for _, g := range j.Groups {
		if g == nil {
			return nil, badRequest("group entries cannot be null")
		}
		if err := structs.ValidateName("group", g.Name); err != nil {
			return nil, badRequest("%v", err)
		}
		if groups[g.Name] {
			return nil, badRequest("group name %q is used twice", g.Name)
		}
		groups[g.Name] = true
		if g.Count < 0 {
			return nil, badRequest("group %q: count %d cannot be negative", g.Name, g.Count)
		}
		if err := structs.ValidateEndpointLabels(g.Labels); err != nil {
			return nil, badRequest("group %q labels: %v", g.Name, err)
		}
		if err := structs.ValidatePorts(g.Ports); err != nil {
			return nil, badRequest("group %q network: %v", g.Name, err)
		}
		if len(g.Tasks) == 0 {
			return nil, badRequest("group %q has no tasks", g.Name)
		}
		if err := checkUpdate(g.Update); err != nil {
			return nil, err
		}
		if g.Restart != nil {
			if g.Restart.Attempts < 0 || g.Restart.Delay < 0 || g.Restart.Interval < 0 {
				return nil, badRequest("group %q: restart attempts, delay and interval cannot be negative", g.Name)
			}
		}
		tasks := map[string]bool{}
		for _, t := range g.Tasks {
			if t == nil {
				return nil, badRequest("task entries cannot be null")
			}
			if err := t.Validate(); err != nil {
				return nil, badRequest("group %q: %v", g.Name, err)
			}
			if tasks[t.Name] {
				return nil, badRequest("group %q: task name %q is used twice", g.Name, t.Name)
			}
			tasks[t.Name] = true
			if t.Security.Privileged && !nsRec.AllowPrivileged {
				return nil, errorf(http.StatusForbidden, "forbidden", "task %q asks for a privileged container, which namespace %q does not allow (create the namespace with --allow-privileged)", t.Name, nsRec.Name)
			}
			if t.Driver == "" || t.Driver == "docker" {
				t.Driver = "containerd"
			}
			if t.Restart == (structs.RestartPolicy{}) {
				if g.Restart != nil {
					t.Restart = *g.Restart
				} else {
					t.Restart = structs.DefaultRestartPolicy()
				}
			}
			if t.Restart.Mode == "" {
				t.Restart.Mode = structs.RestartModeFail
			}
			if t.Resources.MemoryMB == 0 {
				t.Resources.MemoryMB = 300 // Nomad's default
			}
			if t.Resources.CPU == 0 {
				t.Resources.CPU = 100
			}
		}
	}
	j.Stop = false
	j.Status, j.Version, j.SubmitTime = "", 0, time.Time{}
	j.CreateIndex, j.ModifyIndex, j.JobModifyIndex = 0, 0, 0
	return j, nil
}

func checkUpdate(u *structs.UpdateStrategy) error {
	if u == nil {
		return nil
	}
	if u.MaxParallel < 0 || u.MinHealthyTime < 0 || u.HealthyDeadline < 0 || u.Canary < 0 {
		return badRequest("update: max_parallel, min_healthy_time, healthy_deadline and canary cannot be negative")
	}
	return nil
}

func (s *Server) handleJobRegister(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	var req structs.JobRegisterRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	j, err := s.normalizeJob(r, &req, "")
	if err != nil {
		return nil, err
	}
	return s.registerJob(j, structs.EvalTriggerJobRegister)
}

func (s *Server) registerJob(j *structs.Job, trigger string) (*structs.JobRegisterResponse, error) {
	now := time.Now().UTC()
	e := newEval(j.Namespace, j.ID, trigger, j, now)
	v, err := s.apply(fsm.JobRegisterType, &fsm.JobRegisterRequest{Job: j, Eval: e, Now: now})
	if err != nil {
		return nil, err
	}
	res, _ := v.(fsm.JobRegisterResult)
	return &structs.JobRegisterResponse{EvalID: e.ID, JobVersion: res.Version}, nil
}

func (s *Server) handleJobPlan(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	var req structs.JobRegisterRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	j, err := s.normalizeJob(r, &req, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	snap := s.fsm.State().Snapshot()
	prev := snap.Job(nil, j.Namespace, j.ID)
	j.Version = fsm.NextJobVersion(prev, j)
	j.Status = structs.JobStatusPending
	if prev != nil {
		j.CreateIndex, j.ModifyIndex, j.JobModifyIndex = prev.CreateIndex, prev.ModifyIndex, prev.JobModifyIndex
		if prev.Version == j.Version {
			j.SubmitTime = prev.SubmitTime
		}
	}
	st := newSchedState(snap)
	st.job = j
	now := time.Now().UTC()
	e := newEval(j.Namespace, j.ID, structs.EvalTriggerJobRegister, j, now)
	res, err := scheduler.Schedule(st, e, scheduler.Options{Now: now, Rand: rand.New(rand.NewPCG(uint64(now.UnixNano()), 1)), NewID: newObjectID})
	if err != nil {
		return nil, errorf(http.StatusInternalServerError, "internal", "scheduler: %v", err)
	}
	out := &structs.JobPlanResponse{JobVersion: j.Version, Groups: map[string]*structs.GroupPlan{}}
	for _, g := range j.Groups {
		out.Groups[g.Name] = &structs.GroupPlan{}
	}
	group := func(name string) *structs.GroupPlan {
		if out.Groups[name] == nil {
			out.Groups[name] = &structs.GroupPlan{}
		}
		return out.Groups[name]
	}
	touched := map[string]bool{}
	stopped := map[string]bool{}
	canaries := map[string]int{}
	if p := res.Plan; p != nil {
		out.FailedTGAllocs = p.FailedTGAllocs
		for _, allocs := range p.NodeUpdate {
			for _, a := range allocs {
				stopped[a.ID] = true
				touched[a.ID] = true
			}
		}
		destructive := map[string]bool{}
		for _, allocs := range p.NodeAllocation {
			for _, a := range allocs {
				touched[a.ID] = true
				if a.Canary {
					canaries[a.Group]++
				}
				switch {
				case snap.Alloc(nil, a.ID) != nil:
					group(a.Group).InPlace++
				case a.PreviousAllocation != "" && stopped[a.PreviousAllocation]:
					group(a.Group).Destructive++
					destructive[a.PreviousAllocation] = true
				default:
					group(a.Group).Place++
				}
			}
		}
		for _, allocs := range p.NodeUpdate {
			for _, a := range allocs {
				if !destructive[a.ID] {
					group(a.Group).Stop++
				}
			}
		}
	}
	for _, a := range snap.AllocsByJob(nil, j.Namespace, j.ID) {
		if live(a) && !touched[a.ID] {
			group(a.Group).Ignore++
		}
	}
	// The plan's counts have no canary column: say it in words.
	if d := res.Plan.Deployment; d != nil {
		for _, name := range slices.Sorted(maps.Keys(d.Groups)) {
			st := d.Groups[name]
			if !st.NeedsPromotion() {
				continue
			}
			then := fmt.Sprintf("`hive job promote %s`", j.ID)
			if st.AutoPromote {
				then = "every canary being healthy (auto_promote)"
			}
			out.Warnings = append(out.Warnings, fmt.Sprintf("group %q: %d of %d canaries placed (counted in PLACE) beside the current allocations; the rest of the update waits for %s",
				name, canaries[name], st.DesiredCanaries, then))
		}
	}
	return out, nil
}

func (s *Server) jobFromPath(snap *state.Snapshot, ws memdb.WatchSet, r *http.Request) (*structs.Job, error) {
	ns, id := namespaceParam(r), r.PathValue("id")
	j := snap.Job(ws, ns, id)
	if j == nil {
		return nil, notFound("job %q not found in namespace %q; list jobs with `hive job status`", id, ns)
	}
	return j, nil
}

// jobStatus derives a job's status from its allocations: dead when stopped
// (or a finished batch job) with nothing running, running when something
// runs, pending otherwise.
func jobStatus(j *structs.Job, allocs []*structs.Allocation) string {
	running, alive := false, false
	for _, a := range allocs {
		if !a.Terminal() && a.DesiredStatus == structs.AllocDesiredRun {
			alive = true
			if a.ClientStatus == structs.AllocRunning {
				running = true
			}
		}
	}
	switch {
	case running:
		return structs.JobStatusRunning
	case j.Stop && !alive:
		return structs.JobStatusDead
	case j.Type == structs.JobTypeBatch && !alive && len(allocs) > 0:
		return structs.JobStatusDead
	}
	return structs.JobStatusPending
}

func jobStub(snap *state.Snapshot, ws memdb.WatchSet, j *structs.Job) structs.JobListStub {
	allocs := snap.AllocsByJob(ws, j.Namespace, j.ID)
	stub := structs.JobListStub{
		ID: j.ID, Namespace: j.Namespace, Type: j.Type, Status: jobStatus(j, allocs),
		Version: j.Version, Stop: j.Stop, Groups: map[string]*structs.GroupSummary{},
	}
	for _, g := range j.Groups {
		stub.Groups[g.Name] = &structs.GroupSummary{Desired: g.Count}
		if j.Stop {
			stub.Groups[g.Name].Desired = 0
		}
	}
	for _, a := range allocs {
		gs := stub.Groups[a.Group]
		if gs == nil {
			gs = &structs.GroupSummary{}
			stub.Groups[a.Group] = gs
		}
		switch a.ClientStatus {
		case structs.AllocPending:
			gs.Pending++
		case structs.AllocRunning:
			gs.Running++
		case structs.AllocComplete:
			gs.Complete++
		case structs.AllocFailed:
			gs.Failed++
		case structs.AllocLost:
			gs.Lost++
		}
	}
	evals := snap.EvalsByJob(ws, j.Namespace, j.ID)
	for i := len(evals) - 1; i >= 0; i-- {
		if evals[i].Status == structs.EvalStatusBlocked && len(evals[i].FailedTGAllocs) > 0 {
			stub.Blocked = evals[i].FailedTGAllocs
			break
		}
	}
	return stub
}

func (s *Server) handleJobs(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	ns := namespaceParam(r)
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		out := []structs.JobListStub{}
		for _, j := range snap.JobsByNamespace(ws, ns) {
			out = append(out, jobStub(snap, ws, j))
		}
		return out, maxIndex(snap, state.TableJobs, state.TableAllocs, state.TableEvals), nil
	})
}

func maxIndex(snap *state.Snapshot, tables ...string) uint64 {
	var m uint64
	for _, t := range tables {
		m = max(m, snap.Index(t))
	}
	return m
}

func (s *Server) handleJob(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		j, err := s.jobFromPath(snap, ws, r)
		if err != nil {
			return nil, 0, err
		}
		cp := *j
		cp.Status = jobStatus(j, snap.AllocsByJob(ws, j.Namespace, j.ID))
		return &cp, maxIndex(snap, state.TableJobs, state.TableAllocs), nil
	})
}

func (s *Server) handleJobVersions(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		j, err := s.jobFromPath(snap, ws, r)
		if err != nil {
			return nil, 0, err
		}
		return snap.JobVersions(ws, j.Namespace, j.ID), snap.Index(state.TableJobVersions), nil
	})
}

func (s *Server) handleJobRevert(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	var req structs.JobRevertRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	snap := s.fsm.State().Snapshot()
	j, err := s.jobFromPath(snap, nil, r)
	if err != nil {
		return nil, err
	}
	if req.Version == j.Version {
		return nil, badRequest("job %q is already at version %d", j.ID, j.Version)
	}
	old := snap.JobVersion(nil, j.Namespace, j.ID, req.Version)
	if old == nil {
		return nil, notFound("job %q has no version %d; list versions with `hive job history %s`", j.ID, req.Version, j.ID)
	}
	cp := *old
	cp.Stop = false
	return s.registerJob(&cp, structs.EvalTriggerJobRegister)
}

// handleJobPromote ends the canary phase of the job's running deployment:
// the scheduler then rolls the rest of the update, the canaries counting as
// updated. As in Nomad, every canary must be healthy first.
func (s *Server) handleJobPromote(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	snap := s.fsm.State().Snapshot()
	j, err := s.jobFromPath(snap, nil, r)
	if err != nil {
		return nil, err
	}
	d := snap.LatestDeployment(nil, j.Namespace, j.ID)
	if d == nil || d.Status != structs.DeploymentRunning || d.JobVersion != j.Version {
		return nil, badRequest("job %q has no running deployment to promote; see `hive job status %s`", j.ID, j.ID)
	}
	waiting := 0
	for _, name := range slices.Sorted(maps.Keys(d.Groups)) {
		st := d.Groups[name]
		if !st.NeedsPromotion() {
			continue
		}
		waiting++
		n := 0
		for _, id := range st.PlacedCanaries {
			if a := snap.Alloc(nil, id); a != nil && live(a) && a.Healthy != nil && *a.Healthy {
				n++
			}
		}
		if n < st.DesiredCanaries {
			return nil, badRequest("group %q of job %q has %d of %d canaries healthy: promote once they all are (see `hive job status %s`)",
				name, j.ID, n, st.DesiredCanaries, j.ID)
		}
	}
	if waiting == 0 {
		return nil, badRequest("deployment %s of job %q has no canaries waiting for promotion", d.ID, j.ID)
	}
	now := time.Now().UTC()
	e := newEval(j.Namespace, j.ID, structs.EvalTriggerPromotion, j, now)
	e.DeploymentID = d.ID
	if _, err := s.apply(fsm.DeploymentUpdateType, &fsm.DeploymentUpdateRequest{
		DeploymentID: d.ID, Promote: true, Eval: e, Now: now,
		Status: structs.DeploymentRunning, StatusDescription: "Deployment is running: canaries promoted",
	}); err != nil {
		return nil, err
	}
	return &structs.JobRegisterResponse{EvalID: e.ID, JobVersion: j.Version}, nil
}

func (s *Server) handleJobDeregister(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	purge := false
	if v := r.URL.Query().Get("purge"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, badRequest("purge %q: use true or false", v)
		}
		purge = b
	}
	snap := s.fsm.State().Snapshot()
	j, err := s.jobFromPath(snap, nil, r)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	e := newEval(j.Namespace, j.ID, structs.EvalTriggerJobDeregister, j, now)
	v, err := s.apply(fsm.JobDeregisterType, &fsm.JobDeregisterRequest{Namespace: j.Namespace, ID: j.ID, Purge: purge, Eval: e, Now: now})
	if err != nil {
		return nil, err
	}
	res, _ := v.(fsm.JobRegisterResult)
	return &structs.JobRegisterResponse{EvalID: e.ID, JobVersion: res.Version}, nil
}

func (s *Server) handleJobAllocs(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	ns, id := namespaceParam(r), r.PathValue("id")
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		out := []*structs.Allocation{}
		out = append(out, snap.AllocsByJob(ws, ns, id)...)
		if len(out) == 0 && snap.Job(ws, ns, id) == nil {
			return nil, 0, notFound("job %q not found in namespace %q", id, ns)
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].CreateIndex < out[j].CreateIndex })
		return out, snap.Index(state.TableAllocs), nil
	})
}

func (s *Server) handleJobEvals(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	ns, id := namespaceParam(r), r.PathValue("id")
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		out := []*structs.Evaluation{}
		out = append(out, snap.EvalsByJob(ws, ns, id)...)
		if len(out) == 0 && snap.Job(ws, ns, id) == nil {
			return nil, 0, notFound("job %q not found in namespace %q", id, ns)
		}
		return out, snap.Index(state.TableEvals), nil
	})
}

func (s *Server) handleJobDeployment(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	ns, id := namespaceParam(r), r.PathValue("id")
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		d := snap.LatestDeployment(ws, ns, id)
		if d == nil {
			return nil, 0, notFound("job %q in namespace %q has no deployment", id, ns)
		}
		return d, snap.Index(state.TableDeployments), nil
	})
}

func (s *Server) handleEval(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	id := r.PathValue("id")
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		e := snap.Eval(ws, id)
		if e == nil {
			return nil, 0, notFound("evaluation %q not found", id)
		}
		return e, snap.Index(state.TableEvals), nil
	})
}

func (s *Server) handleDeployment(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	id := r.PathValue("id")
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		d := snap.Deployment(ws, id)
		if d == nil {
			return nil, 0, notFound("deployment %q not found", id)
		}
		return d, snap.Index(state.TableDeployments), nil
	})
}
