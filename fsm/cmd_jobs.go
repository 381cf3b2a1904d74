package fsm

import (
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

// Command types for jobs, evaluations, plans and deployments.
const (
	JobRegisterType      MessageType = 17
	JobDeregisterType    MessageType = 18
	EvalUpsertType       MessageType = 19
	PlanApplyType        MessageType = 20
	DeploymentUpdateType MessageType = 21
)

// JobRegisterRequest stores a job (a new version when its spec changed) and
// the evaluation that makes the scheduler act on it.
type JobRegisterRequest struct {
	Job  *structs.Job
	Eval *structs.Evaluation
	Now  time.Time
}

// JobRegisterResult is the value a JobRegister command returns.
type JobRegisterResult struct {
	Version uint64
}

// JobDeregisterRequest stops a job (Stop = true, a new version) or, with
// Purge, deletes it and its history. Eval makes the scheduler stop its
// allocations.
type JobDeregisterRequest struct {
	Namespace string
	ID        string
	Purge     bool
	Eval      *structs.Evaluation
	Now       time.Time
}

// EvalUpsertRequest creates or updates evaluations.
type EvalUpsertRequest struct {
	Evals []*structs.Evaluation
}

// PlanApplyRequest commits the part of a scheduler plan the leader's plan
// applier accepted.
type PlanApplyRequest struct {
	EvalID string
	// Stops are desired-status changes of existing allocations.
	Stops []*structs.Allocation
	// Allocs are new allocations and in-place updates of existing ones.
	// An allocation of a job sent without Tasks runs its group's tasks of
	// the job version it names: the plan applier leaves them out so that a
	// thousand placements of one group do not carry a thousand copies of
	// the same tasks through Raft, and every store shares one copy.
	Allocs []*structs.Allocation
	// Placed are more allocations, in compact form (see CompactAllocs).
	// Entries written before it existed decode with none.
	Placed      []*PlacedGroup
	Deployment  *structs.Deployment
	EvalUpdates []*structs.Evaluation
	Now         time.Time
}

// DeploymentUpdateRequest records the deployment watcher's findings:
// allocation health, and a new deployment status when it changed.
type DeploymentUpdateRequest struct {
	DeploymentID      string
	Status            string // empty: unchanged
	StatusDescription string
	AllocHealth       map[string]bool
	// Promote ends the canary phase of every group that has one (`hive job
	// promote`, or the watcher for auto_promote). The caller checks that
	// the canaries are healthy; a deployment no longer running is left as
	// it is.
	Promote bool
	// Eval, when set, is created in the same entry (a rolling-update
	// evaluation to place the next batch).
	Eval *structs.Evaluation
	Now  time.Time
}

func init() {
	register(JobRegisterType, "job register", applyJobRegister)
	register(JobDeregisterType, "job deregister", applyJobDeregister)
	register(EvalUpsertType, "eval upsert", applyEvalUpsert)
	register(PlanApplyType, "plan apply", applyPlanApply)
	register(DeploymentUpdateType, "deployment update", applyDeploymentUpdate)
}

// JobSpecChanged reports whether next differs from prev in anything but the
// fields the cluster maintains (version, status, indexes, submit time). A
// change makes a new job version.
func JobSpecChanged(prev, next *structs.Job) bool {
	if prev == nil {
		return true
	}
	a, b := *prev, *next
	for _, j := range []*structs.Job{&a, &b} {
		j.Version, j.Status, j.SubmitTime = 0, "", time.Time{}
		j.CreateIndex, j.ModifyIndex, j.JobModifyIndex = 0, 0, 0
	}
	return !reflect.DeepEqual(a, b)
}

// NextJobVersion is the version next gets when registered over prev.
func NextJobVersion(prev, next *structs.Job) uint64 {
	switch {
	case prev == nil:
		return 0
	case JobSpecChanged(prev, next):
		return prev.Version + 1
	}
	return prev.Version
}

func checkJob(j *structs.Job) error {
	switch {
	case j == nil:
		return fmt.Errorf("no job given: %w", ErrInvalid)
	case j.ID == "" || j.Namespace == "":
		return fmt.Errorf("job needs an ID and a namespace: %w", ErrInvalid)
	}
	for _, g := range j.Groups {
		if g == nil || g.Count < 0 {
			return fmt.Errorf("job %s: groups must be set and counts non-negative: %w", j.ID, ErrInvalid)
		}
	}
	return nil
}

func checkEval(e *structs.Evaluation) error {
	switch {
	case e == nil:
		return fmt.Errorf("no evaluation given: %w", ErrInvalid)
	case e.ID == "" || e.Namespace == "" || e.JobID == "":
		return fmt.Errorf("evaluation needs an ID, a namespace and a job ID: %w", ErrInvalid)
	}
	switch e.Status {
	case structs.EvalStatusPending, structs.EvalStatusComplete, structs.EvalStatusFailed,
		structs.EvalStatusBlocked, structs.EvalStatusCanceled:
	default:
		return fmt.Errorf("evaluation %s status %q: %w", e.ID, e.Status, ErrInvalid)
	}
	return nil
}

func applyJobRegister(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[JobRegisterRequest](buf)
	if err != nil {
		return nil, err
	}
	if err := checkJob(req.Job); err != nil {
		return nil, err
	}
	if req.Eval != nil {
		if err := checkEval(req.Eval); err != nil {
			return nil, err
		}
	}
	r := txn.Read()
	if r.Namespace(nil, req.Job.Namespace) == nil {
		return nil, fmt.Errorf("namespace %q does not exist: %w", req.Job.Namespace, ErrInvalid)
	}
	prev := r.Job(nil, req.Job.Namespace, req.Job.ID)
	j := *req.Job
	j.Version = NextJobVersion(prev, &j)
	if prev != nil && j.Version == prev.Version {
		j.SubmitTime = prev.SubmitTime
	} else {
		j.SubmitTime = req.Now
	}
	j.Status = structs.JobStatusPending
	if prev != nil && prev.Version == j.Version {
		j.Status = prev.Status
	}
	if err := txn.UpsertJob(&j); err != nil {
		return nil, err
	}
	if req.Eval != nil {
		if err := txn.UpsertEval(req.Eval); err != nil {
			return nil, err
		}
	}
	return JobRegisterResult{Version: j.Version}, nil
}

func applyJobDeregister(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[JobDeregisterRequest](buf)
	if err != nil {
		return nil, err
	}
	if req.Eval != nil {
		if err := checkEval(req.Eval); err != nil {
			return nil, err
		}
	}
	j := txn.Read().Job(nil, req.Namespace, req.ID)
	if j == nil {
		return nil, fmt.Errorf("job %s/%s: %w", req.Namespace, req.ID, state.ErrNotFound)
	}
	version := j.Version
	if req.Purge {
		if err := txn.DeleteJob(req.Namespace, req.ID); err != nil {
			return nil, err
		}
	} else if !j.Stop {
		cp := *j
		cp.Stop = true
		cp.Version = j.Version + 1
		cp.SubmitTime = req.Now
		if err := txn.UpsertJob(&cp); err != nil {
			return nil, err
		}
		version = cp.Version
	}
	if req.Eval != nil {
		if err := txn.UpsertEval(req.Eval); err != nil {
			return nil, err
		}
	}
	return JobRegisterResult{Version: version}, nil
}

func applyEvalUpsert(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[EvalUpsertRequest](buf)
	if err != nil {
		return nil, err
	}
	for _, e := range req.Evals {
		if err := checkEval(e); err != nil {
			return nil, err
		}
	}
	for _, e := range req.Evals {
		if err := txn.UpsertEval(e); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// groupTasks finds the tasks of an allocation's group in the job version
// it names, remembering the last answer: a plan's allocations are mostly of
// one group.
type groupTasks struct {
	r              *state.Snapshot
	ns, job, group string
	version        uint64
	tasks          []*structs.Task
}

func (g *groupTasks) of(a *structs.Allocation) []*structs.Task {
	if g.tasks != nil && a.Namespace == g.ns && a.JobID == g.job && a.Group == g.group && a.JobVersion == g.version {
		return g.tasks
	}
	j := g.r.JobVersion(nil, a.Namespace, a.JobID, a.JobVersion)
	if j == nil {
		return nil
	}
	tg := j.LookupGroup(a.Group)
	if tg == nil || len(tg.Tasks) == 0 {
		return nil
	}
	g.ns, g.job, g.group, g.version, g.tasks = a.Namespace, a.JobID, a.Group, a.JobVersion, tg.Tasks
	return g.tasks
}

func applyPlanApply(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[PlanApplyRequest](buf)
	if err != nil {
		return nil, err
	}
	for _, g := range req.Placed {
		if g == nil {
			return nil, fmt.Errorf("plan has an empty placed group: %w", ErrInvalid)
		}
		more, err := g.Expand()
		if err != nil {
			return nil, err
		}
		req.Allocs = append(req.Allocs, more...)
	}
	r := txn.Read()
	for _, a := range req.Stops {
		if a == nil || r.Alloc(nil, a.ID) == nil {
			return nil, fmt.Errorf("plan stops an allocation that does not exist: %w", state.ErrNotFound)
		}
	}
	nodes := map[string]bool{}
	tasks := groupTasks{r: r}
	for _, a := range req.Allocs {
		if a == nil || a.ID == "" || a.Namespace == "" || a.JobID == "" {
			return nil, fmt.Errorf("plan places an allocation without an ID, namespace or job: %w", ErrInvalid)
		}
		if len(a.Tasks) == 0 && tasks.of(a) == nil {
			return nil, fmt.Errorf("plan places allocation %s without tasks, and version %d of job %s/%s has no group %q: %w",
				a.ID, a.JobVersion, a.Namespace, a.JobID, a.Group, ErrInvalid)
		}
		if !nodes[a.NodeID] {
			n := r.Node(nil, a.NodeID)
			if n == nil || n.Role != structs.RoleWorker {
				return nil, fmt.Errorf("plan places allocation %s on %q, not a worker of this cluster: %w", a.ID, a.NodeID, ErrInvalid)
			}
			nodes[a.NodeID] = true
		}
	}
	if d := req.Deployment; d != nil && (d.ID == "" || d.Namespace == "" || d.JobID == "") {
		return nil, fmt.Errorf("plan deployment needs an ID, namespace and job: %w", ErrInvalid)
	}
	for _, e := range req.EvalUpdates {
		if err := checkEval(e); err != nil {
			return nil, err
		}
	}

	for _, s := range req.Stops {
		cp := *txn.Read().Alloc(nil, s.ID)
		cp.DesiredStatus = s.DesiredStatus
		if cp.DesiredStatus == "" {
			cp.DesiredStatus = structs.AllocDesiredStop
		}
		cp.DesiredDescription = s.DesiredDescription
		cp.ModifyTime = req.Now
		if err := txn.UpsertAlloc(&cp); err != nil {
			return nil, err
		}
	}
	for _, a := range req.Allocs {
		// req was decoded for this apply alone: its allocations are
		// stored as they are, not copied.
		cp := a
		if len(cp.Tasks) == 0 {
			cp.Tasks = tasks.of(a)
		}
		old := txn.Read().Alloc(nil, a.ID)
		if old != nil {
			// An in-place update: the plan was computed on an older
			// snapshot, so what the worker reported since is kept.
			cp.ClientStatus, cp.ClientDescription = old.ClientStatus, old.ClientDescription
			cp.TaskStates, cp.Address, cp.NextAllocation = old.TaskStates, old.Address, old.NextAllocation
			cp.Published = old.Published
			// Quarantine is an operator's decision, never the
			// scheduler's: a plan made before it must not lift it.
			cp.Quarantined = old.Quarantined
			cp.CreateTime = old.CreateTime
		} else {
			if cp.ClientStatus == "" {
				cp.ClientStatus = structs.AllocPending
			}
			if cp.CreateTime.IsZero() {
				cp.CreateTime = req.Now
			}
		}
		if cp.DesiredStatus == "" {
			cp.DesiredStatus = structs.AllocDesiredRun
		}
		cp.ModifyTime = req.Now
		if err := txn.PutAlloc(cp, old); err != nil {
			return nil, err
		}
		// Link the replaced allocation to its replacement, so nothing
		// replaces it a second time.
		if cp.PreviousAllocation != "" {
			if prev := txn.Read().Alloc(nil, cp.PreviousAllocation); prev != nil && prev.NextAllocation != cp.ID {
				pc := *prev
				pc.NextAllocation = cp.ID
				if err := txn.UpsertAlloc(&pc); err != nil {
					return nil, err
				}
			}
		}
	}
	if d := req.Deployment; d != nil {
		cp := *d
		if old := txn.Read().Deployment(nil, d.ID); old != nil {
			// Health is the watcher's to count; a finished deployment
			// does not start running again.
			cp.Groups = mergeHealth(cp.Groups, old.Groups)
			if old.Status != structs.DeploymentRunning {
				cp.Status, cp.StatusDescription = old.Status, old.StatusDescription
			}
			cp.CreateTime = old.CreateTime
		} else if cp.CreateTime.IsZero() {
			cp.CreateTime = req.Now
		}
		cp.ModifyTime = req.Now
		if err := txn.UpsertDeployment(&cp); err != nil {
			return nil, err
		}
	}
	for _, e := range req.EvalUpdates {
		if err := txn.UpsertEval(e); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

func mergeHealth(next, old map[string]*structs.DeploymentState) map[string]*structs.DeploymentState {
	out := make(map[string]*structs.DeploymentState, len(next))
	for g, st := range next {
		if st == nil {
			continue
		}
		cp := *st
		if o := old[g]; o != nil {
			cp.HealthyAllocs, cp.UnhealthyAllocs = o.HealthyAllocs, o.UnhealthyAllocs
			// A plan computed before a promotion does not undo it, nor
			// forget canaries another plan placed.
			cp.Promoted = cp.Promoted || o.Promoted
			cp.PlacedCanaries = unionIDs(o.PlacedCanaries, cp.PlacedCanaries)
		}
		out[g] = &cp
	}
	return out
}

// unionIDs is a followed by the IDs of b not in a.
func unionIDs(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, id := range b {
		if !slices.Contains(a, id) {
			out = append(out, id)
		}
	}
	return out
}

func validDeploymentStatus(s string) bool {
	switch s {
	case "", structs.DeploymentRunning, structs.DeploymentSuccessful, structs.DeploymentFailed, structs.DeploymentCancelled:
		return true
	}
	return false
}

func applyDeploymentUpdate(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[DeploymentUpdateRequest](buf)
	if err != nil {
		return nil, err
	}
	r := txn.Read()
	d := r.Deployment(nil, req.DeploymentID)
	if d == nil {
		return nil, fmt.Errorf("deployment %s: %w", req.DeploymentID, state.ErrNotFound)
	}
	if !validDeploymentStatus(req.Status) {
		return nil, fmt.Errorf("deployment status %q: %w", req.Status, ErrInvalid)
	}
	for id := range req.AllocHealth {
		if r.Alloc(nil, id) == nil {
			return nil, fmt.Errorf("allocation %s: %w", id, state.ErrNotFound)
		}
	}
	if req.Eval != nil {
		if err := checkEval(req.Eval); err != nil {
			return nil, err
		}
	}

	cp := *d
	cp.Groups = make(map[string]*structs.DeploymentState, len(d.Groups))
	for g, st := range d.Groups {
		c := *st
		cp.Groups[g] = &c
	}
	for id, healthy := range req.AllocHealth {
		a := *txn.Read().Alloc(nil, id)
		if a.Healthy != nil && *a.Healthy == healthy {
			continue
		}
		if st := cp.Groups[a.Group]; st != nil && a.DeploymentID == d.ID {
			if a.Healthy != nil { // judged before, now the other way
				if *a.Healthy {
					st.HealthyAllocs--
				} else {
					st.UnhealthyAllocs--
				}
			}
			if healthy {
				st.HealthyAllocs++
			} else {
				st.UnhealthyAllocs++
			}
		}
		h := healthy
		a.Healthy = &h
		a.ModifyTime = req.Now
		if err := txn.UpsertAlloc(&a); err != nil {
			return nil, err
		}
	}
	if req.Status != "" && d.Status == structs.DeploymentRunning {
		cp.Status, cp.StatusDescription = req.Status, req.StatusDescription
	}
	if req.Promote && d.Status == structs.DeploymentRunning {
		for _, st := range cp.Groups {
			if st.DesiredCanaries > 0 {
				st.Promoted = true
			}
		}
	}
	cp.ModifyTime = req.Now
	if err := txn.UpsertDeployment(&cp); err != nil {
		return nil, err
	}
	if req.Eval != nil {
		if err := txn.UpsertEval(req.Eval); err != nil {
			return nil, err
		}
	}
	return nil, nil
}
