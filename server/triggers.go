package server

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

// What makes the scheduler look at a job again, besides the API:
//   - a node goes down or is removed: its allocations are lost (the FSM
//     marks them) and each job that had one gets a node-update evaluation;
//   - a node starts draining: each job with live allocations there gets a
//     node-drain evaluation;
//   - capacity may have appeared (a node became schedulable or grew,
//     allocations stopped or ended): blocked evaluations go back to pending;
//   - a worker reports an allocation failed: an alloc-failure evaluation;
//   - a periodic safety net: a job whose live allocations do not match its
//     counts, or that has lost or failed allocations not yet replaced, and
//     whose state changed since its last evaluation, gets one.

// safetyNetInterval is how often the leader looks for jobs nobody is
// scheduling although they need it.
const safetyNetInterval = 5 * time.Second

func newEval(ns, jobID, trigger string, job *structs.Job, now time.Time) *structs.Evaluation {
	e := &structs.Evaluation{
		ID: uuid.NewString(), Namespace: ns, JobID: jobID, TriggeredBy: trigger,
		Status: structs.EvalStatusPending, CreateTime: now, ModifyTime: now,
		Type: structs.JobTypeService, Priority: 50,
	}
	if job != nil {
		e.Type, e.Priority = job.Type, job.Priority
	}
	return e
}

// createEvals writes one evaluation per job in jobs (skipping jobs that
// already have one pending).
func (s *Server) createEvals(snap *state.Snapshot, jobs map[jobKey]bool, trigger, nodeID string) error {
	if len(jobs) == 0 {
		return nil
	}
	now := time.Now().UTC()
	var evals []*structs.Evaluation
	for k := range jobs {
		if hasPendingEval(snap, k.ns, k.id) {
			continue
		}
		e := newEval(k.ns, k.id, trigger, snap.Job(nil, k.ns, k.id), now)
		e.NodeID = nodeID
		evals = append(evals, e)
	}
	if len(evals) == 0 {
		return nil
	}
	_, err := s.apply(fsm.EvalUpsertType, &fsm.EvalUpsertRequest{Evals: evals})
	return err
}

func hasPendingEval(snap *state.Snapshot, ns, jobID string) bool {
	for _, e := range snap.EvalsByJob(nil, ns, jobID) {
		if e.Status == structs.EvalStatusPending {
			return true
		}
	}
	return false
}

// unblockEvals sets every blocked evaluation back to pending, because
// capacity may have appeared. Cheap when nothing is blocked.
func (s *Server) unblockEvals(why string) {
	blocked := s.fsm.State().Snapshot().EvalsByStatus(nil, structs.EvalStatusBlocked)
	if len(blocked) == 0 {
		return
	}
	now := time.Now().UTC()
	evals := make([]*structs.Evaluation, len(blocked))
	for i, e := range blocked {
		cp := *e
		cp.Status = structs.EvalStatusPending
		cp.StatusDescription = "unblocked: " + why
		cp.ModifyTime = now
		evals[i] = &cp
	}
	if _, err := s.apply(fsm.EvalUpsertType, &fsm.EvalUpsertRequest{Evals: evals}); err != nil {
		s.logger.Warn("unblock evaluations", "error", err)
	}
}

// afterAllocUpdate reacts to a worker's reports: failed allocations get
// their job an alloc-failure evaluation, and any allocation that ended may
// have freed room for blocked ones.
func (s *Server) afterAllocUpdate(updates []structs.AllocUpdate) {
	snap := s.fsm.State().Snapshot()
	failed := map[jobKey]bool{}
	ended := false
	for _, u := range updates {
		switch u.ClientStatus {
		case structs.AllocFailed:
			if a := snap.Alloc(nil, u.ID); a != nil && a.JobID != "" {
				failed[jobKey{a.Namespace, a.JobID}] = true
			}
			ended = true
		case structs.AllocComplete:
			ended = true
		}
	}
	if err := s.createEvals(snap, failed, structs.EvalTriggerAllocFailure, ""); err != nil {
		s.logger.Warn("create alloc-failure evaluations", "error", err)
	}
	if ended {
		s.unblockEvals("allocations ended")
	}
}

// watchNodes turns node changes into evaluations, on the leader.
func (s *Server) watchNodes(ctx context.Context) {
	prev := map[string]*structs.Node{}
	first := true
	for {
		store := s.fsm.State()
		snap := store.Snapshot()
		ws := memdb.NewWatchSet()
		ws.Add(store.AbandonCh())
		cur := map[string]*structs.Node{}
		for _, n := range snap.Nodes(ws) {
			cur[n.ID] = n
		}
		if !first {
			s.nodeTransitions(snap, prev, cur)
		}
		first = false
		prev = cur
		if err := ws.WatchCtx(ctx); err != nil && ctx.Err() != nil {
			return
		}
	}
}

func (s *Server) nodeTransitions(snap *state.Snapshot, prev, cur map[string]*structs.Node) {
	capacity := false
	for id, old := range prev {
		n := cur[id]
		switch {
		case n == nil, n.Status == structs.NodeStatusDown && old.Status != structs.NodeStatusDown:
			s.evalJobsOnNode(snap, id, structs.EvalTriggerNodeUpdate, false)
		case n.Draining && !old.Draining:
			s.evalJobsOnNode(snap, id, structs.EvalTriggerNodeDrain, true)
		}
		if n != nil && n.Schedulable() && (!old.Schedulable() ||
			n.Resources.CPU > old.Resources.CPU || n.Resources.MemoryMB > old.Resources.MemoryMB) {
			capacity = true
		}
	}
	for id, n := range cur {
		if prev[id] == nil && n.Schedulable() {
			capacity = true
		}
	}
	if capacity {
		s.unblockEvals("a node with capacity became available")
	}
}

// evalJobsOnNode creates an evaluation for every job with allocations on
// a node that need the scheduler: live ones when draining, lost ones not
// yet replaced when the node is gone.
func (s *Server) evalJobsOnNode(snap *state.Snapshot, nodeID, trigger string, draining bool) {
	jobs := map[jobKey]bool{}
	for _, a := range snap.AllocsByNode(nil, nodeID) {
		if a.JobID == "" || a.DesiredStatus != structs.AllocDesiredRun || a.NextAllocation != "" {
			continue
		}
		if draining && a.Terminal() {
			continue
		}
		jobs[jobKey{a.Namespace, a.JobID}] = true
	}
	if err := s.createEvals(snap, jobs, trigger, nodeID); err != nil {
		s.logger.Warn("create node evaluations", "node", nodeID, "trigger", trigger, "error", err)
	}
}

// drainInterval is how often the leader moves draining nodes along.
const drainInterval = time.Second

// watchDrains keeps draining nodes emptying: the scheduler migrates at most
// max_parallel allocations of a group per evaluation, so a job with live
// allocations on a draining node gets another node-drain evaluation each
// time its allocations changed since its last one (a replacement started).
func (s *Server) watchDrains(ctx context.Context) {
	t := time.NewTicker(drainInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		snap := s.fsm.State().Snapshot()
		for _, n := range snap.Nodes(nil) {
			if !n.Draining {
				continue
			}
			jobs := map[jobKey]bool{}
			for _, a := range snap.AllocsByNode(nil, n.ID) {
				if a.JobID == "" || !live(a) {
					continue
				}
				k := jobKey{a.Namespace, a.JobID}
				if !jobs[k] && jobChangedSinceEval(snap, k) {
					jobs[k] = true
				}
			}
			if err := s.createEvals(snap, jobs, structs.EvalTriggerNodeDrain, n.ID); err != nil {
				s.logger.Warn("drain evaluations", "node", n.ID, "error", err)
			}
		}
	}
}

// jobChangedSinceEval reports whether a job or its allocations changed
// after its last evaluation finished, and none is pending or blocked.
func jobChangedSinceEval(snap *state.Snapshot, k jobKey) bool {
	var lastDone uint64
	for _, e := range snap.EvalsByJob(nil, k.ns, k.id) {
		if !state.EvalTerminal(e) {
			return false
		}
		lastDone = max(lastDone, e.ModifyIndex)
	}
	changed := uint64(0)
	if j := snap.Job(nil, k.ns, k.id); j != nil {
		changed = j.ModifyIndex
	}
	for _, a := range snap.AllocsByJob(nil, k.ns, k.id) {
		changed = max(changed, a.ModifyIndex)
	}
	return changed > lastDone
}

// safetyNet periodically creates evaluations for jobs that need one and
// have none, so a trigger lost to a leader change cannot strand a job.
func (s *Server) safetyNet(ctx context.Context) {
	t := time.NewTicker(safetyNetInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		snap := s.fsm.State().Snapshot()
		need := map[jobKey]bool{}
		for _, j := range snap.Jobs(nil) {
			if jobNeedsEval(snap, j) {
				need[jobKey{j.Namespace, j.ID}] = true
			}
		}
		if err := s.createEvals(snap, need, structs.EvalTriggerQueuedAllocs, ""); err != nil {
			s.logger.Warn("safety net evaluations", "error", err)
		}
	}
}

func jobNeedsEval(snap *state.Snapshot, j *structs.Job) bool {
	evals := snap.EvalsByJob(nil, j.Namespace, j.ID)
	var lastDone uint64
	for _, e := range evals {
		if !state.EvalTerminal(e) {
			return false // pending or blocked: someone is on it
		}
		lastDone = max(lastDone, e.ModifyIndex)
	}
	changed := j.ModifyIndex
	liveByGroup := map[string]int{}
	unreplaced := false
	for _, a := range snap.AllocsByJob(nil, j.Namespace, j.ID) {
		changed = max(changed, a.ModifyIndex)
		if live(a) || (j.Type == structs.JobTypeBatch && a.ClientStatus == structs.AllocComplete) {
			liveByGroup[a.Group]++
		} else if a.DesiredStatus == structs.AllocDesiredRun && a.NextAllocation == "" &&
			(a.ClientStatus == structs.AllocLost || a.ClientStatus == structs.AllocFailed) {
			unreplaced = true
		}
	}
	if lastDone > changed {
		return false // the scheduler already saw this state
	}
	mismatch := false
	for _, g := range j.Groups {
		want := g.Count
		if j.Stop {
			want = 0
		}
		if liveByGroup[g.Name] != want {
			mismatch = true
		}
	}
	return mismatch || unreplaced
}
