package server

import (
	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/scheduler"
	"github.com/hivesec/hive/structs"
)

// schedState adapts a state store snapshot to the scheduler's read-only
// State. One is made per scheduling attempt, over a fresh snapshot.
type schedState struct {
	snap  *state.Snapshot
	nodes []*structs.Node // read once: the scheduler asks for them often
	// job, when set, replaces the stored job of the same namespace and ID
	// (a plan dry run schedules the proposed version).
	job *structs.Job
}

var _ scheduler.State = (*schedState)(nil)

func newSchedState(snap *state.Snapshot) *schedState { return &schedState{snap: snap} }

func (s *schedState) Nodes() []*structs.Node {
	if s.nodes == nil {
		s.nodes = s.snap.Nodes(nil)
	}
	return s.nodes
}

func (s *schedState) Node(id string) *structs.Node { return s.snap.Node(nil, id) }

func (s *schedState) Job(ns, id string) *structs.Job {
	if s.job != nil && s.job.Namespace == ns && s.job.ID == id {
		return s.job
	}
	return s.snap.Job(nil, ns, id)
}

func (s *schedState) AllocsByJob(ns, jobID string) []*structs.Allocation {
	return s.snap.AllocsByJob(nil, ns, jobID)
}

func (s *schedState) AllocsByNode(nodeID string) []*structs.Allocation {
	return s.snap.AllocsByNode(nil, nodeID)
}

func (s *schedState) LatestDeployment(ns, jobID string) *structs.Deployment {
	return s.snap.LatestDeployment(nil, ns, jobID)
}
