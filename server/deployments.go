package server

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

// The deployment watcher runs on the leader and judges the allocations of
// running deployments: healthy once every task has run for the update's
// min_healthy_time, unhealthy if the allocation failed or was lost first or
// missed its healthy_deadline. Progress gets the job a rolling-update
// evaluation so the scheduler places the next batch; an unhealthy
// allocation fails the deployment (and, with auto_revert, registers the
// job's last stable version); all wanted allocations healthy completes it.
//
// A group with canaries waits for promotion before the scheduler replaces
// anything: the deployment is not complete while it waits, and with
// auto_promote the watcher promotes it once every canary is healthy.

const deploymentWatchInterval = time.Second

func (s *Server) watchDeployments(ctx context.Context) {
	t := time.NewTicker(deploymentWatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		snap := s.fsm.State().Snapshot()
		now := time.Now().UTC()
		for _, d := range snap.Deployments(nil) {
			if d.Status != structs.DeploymentRunning {
				continue
			}
			if err := s.checkDeployment(snap, d, now); err != nil {
				s.logger.Warn("deployment watcher", "deployment", d.ID, "job", d.JobID, "error", err)
			}
		}
	}
}

// updateStrategy is the strategy of group g of job, with defaults.
func updateStrategy(job *structs.Job, group string) *structs.UpdateStrategy {
	u := structs.DefaultUpdateStrategy()
	if job != nil {
		if job.Update != nil {
			u = job.Update
		}
		if g := job.LookupGroup(group); g != nil && g.Update != nil {
			u = g.Update
		}
	}
	return u
}

// allocHealth judges one allocation at now: healthy, unhealthy (with a
// reason) or not yet (ok false).
func allocHealth(a *structs.Allocation, u *structs.UpdateStrategy, now time.Time) (healthy bool, why string, ok bool) {
	switch a.ClientStatus {
	case structs.AllocFailed, structs.AllocLost:
		return false, fmt.Sprintf("allocation %s %s before it became healthy", a.ID, a.ClientStatus), true
	case structs.AllocComplete:
		return false, fmt.Sprintf("allocation %s exited before it became healthy", a.ID), true
	}
	if a.ClientStatus == structs.AllocRunning && len(a.Tasks) > 0 {
		since := time.Time{}
		all := true
		for _, t := range a.Tasks {
			ts := a.TaskStates[t.Name]
			if ts == nil || ts.State != structs.TaskRunning || ts.StartedAt.IsZero() {
				all = false
				break
			}
			if ts.StartedAt.After(since) {
				since = ts.StartedAt
			}
		}
		if all && !now.Before(since.Add(u.MinHealthyTime)) {
			return true, "", true
		}
	}
	if u.HealthyDeadline > 0 && !a.CreateTime.IsZero() && now.After(a.CreateTime.Add(u.HealthyDeadline)) {
		return false, fmt.Sprintf("allocation %s was not healthy within the healthy deadline of %s", a.ID, u.HealthyDeadline), true
	}
	return false, "", false
}

func (s *Server) checkDeployment(snap *state.Snapshot, d *structs.Deployment, now time.Time) error {
	job := snap.Job(nil, d.Namespace, d.JobID)
	req := &fsm.DeploymentUpdateRequest{DeploymentID: d.ID, AllocHealth: map[string]bool{}, Now: now}
	if job == nil || job.Version != d.JobVersion || job.Stop {
		req.Status, req.StatusDescription = structs.DeploymentCancelled, "the job changed or was stopped"
		_, err := s.apply(fsm.DeploymentUpdateType, req)
		return err
	}
	healthy := map[string]int{}
	canaries := map[string]int{} // healthy canaries that still run
	var failure string
	progress := false
	for _, a := range snap.AllocsByJob(nil, d.Namespace, d.JobID) {
		if a.DeploymentID != d.ID {
			continue
		}
		if a.Healthy != nil {
			if *a.Healthy {
				healthy[a.Group]++
				if a.Canary && a.DesiredStatus == structs.AllocDesiredRun && !a.Terminal() {
					canaries[a.Group]++
				}
			}
			continue
		}
		if a.DesiredStatus != structs.AllocDesiredRun {
			continue // stopped by the scheduler: not this deployment's to judge
		}
		h, why, ok := allocHealth(a, updateStrategy(job, a.Group), now)
		if !ok {
			continue
		}
		req.AllocHealth[a.ID] = h
		if h {
			healthy[a.Group]++
			if a.Canary {
				canaries[a.Group]++
			}
			progress = true
		} else if failure == "" {
			failure = why
		}
	}
	done := true
	autoRevert := false
	// waiting: some group is in its canary phase; ready: every such group
	// has all its canaries healthy; auto: every such group auto-promotes.
	waiting, ready, auto := false, true, true
	for g, st := range d.Groups {
		if healthy[g] < st.DesiredTotal || st.NeedsPromotion() {
			done = false
		}
		autoRevert = autoRevert || st.AutoRevert
		if st.NeedsPromotion() {
			waiting = true
			ready = ready && canaries[g] >= st.DesiredCanaries
			auto = auto && st.AutoPromote
		}
	}
	const manual = "Deployment is running but requires promotion: every canary is healthy (hive job promote)"
	switch {
	case failure != "":
		req.Status, req.StatusDescription = structs.DeploymentFailed, "failed: "+failure
	case done:
		req.Status, req.StatusDescription = structs.DeploymentSuccessful, "all allocations are healthy"
	case waiting && ready && auto:
		req.Promote = true
		req.Status, req.StatusDescription = structs.DeploymentRunning, "Deployment is running: canaries promoted automatically"
		req.Eval = newEval(d.Namespace, d.JobID, structs.EvalTriggerPromotion, job, now)
		req.Eval.DeploymentID = d.ID
	case waiting && ready && d.StatusDescription != manual:
		req.Status, req.StatusDescription = structs.DeploymentRunning, manual
	case progress:
		req.Eval = newEval(d.Namespace, d.JobID, structs.EvalTriggerRollingUpdate, job, now)
		req.Eval.DeploymentID = d.ID
	}
	if len(req.AllocHealth) == 0 && req.Status == "" && req.Eval == nil && !req.Promote {
		return nil
	}
	if _, err := s.apply(fsm.DeploymentUpdateType, req); err != nil {
		return err
	}
	if req.Status == structs.DeploymentFailed && autoRevert {
		return s.autoRevert(d, job, now)
	}
	return nil
}

// autoRevert registers the newest version of the job that deployed
// successfully (or, without one, the version before the failed one).
func (s *Server) autoRevert(d *structs.Deployment, job *structs.Job, now time.Time) error {
	snap := s.fsm.State().Snapshot()
	var stable *structs.Job
	ds := snap.DeploymentsByJob(nil, d.Namespace, d.JobID)
	for i := len(ds) - 1; i >= 0 && stable == nil; i-- {
		if ds[i].Status == structs.DeploymentSuccessful && ds[i].JobVersion < d.JobVersion {
			stable = snap.JobVersion(nil, d.Namespace, d.JobID, ds[i].JobVersion)
		}
	}
	if stable == nil && d.JobVersion > 0 {
		stable = snap.JobVersion(nil, d.Namespace, d.JobID, d.JobVersion-1)
	}
	if stable == nil {
		s.logger.Warn("deployment failed and no earlier version to revert to", "job", d.JobID, "deployment", d.ID)
		return nil
	}
	cp := *stable
	e := newEval(d.Namespace, d.JobID, structs.EvalTriggerJobRegister, &cp, now)
	e.ID = uuid.NewString()
	s.logger.Info("auto-reverting job", "job", d.JobID, "from", d.JobVersion, "to", stable.Version)
	_, err := s.apply(fsm.JobRegisterType, &fsm.JobRegisterRequest{Job: &cp, Eval: e, Now: now})
	return err
}
