package state

import (
	"sort"

	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/structs"
)

// UpsertDeployment inserts or replaces a deployment.
func (t *Txn) UpsertDeployment(d *structs.Deployment) error {
	cp := *d
	if old := t.Read().Deployment(nil, d.ID); old != nil {
		cp.CreateIndex = old.CreateIndex
	} else {
		cp.CreateIndex = t.index
	}
	cp.ModifyIndex = t.index
	return t.insert(TableDeployments, &cp)
}

// Deployment returns one deployment or nil.
func (s *Snapshot) Deployment(ws memdb.WatchSet, id string) *structs.Deployment {
	o := s.first(ws, TableDeployments, "id", id)
	if o == nil {
		return nil
	}
	return o.(*structs.Deployment)
}

// Deployments lists every deployment by ID.
func (s *Snapshot) Deployments(ws memdb.WatchSet) []*structs.Deployment {
	return list[structs.Deployment](s, ws, TableDeployments, "id")
}

// DeploymentsByJob lists a job's deployments, oldest first.
func (s *Snapshot) DeploymentsByJob(ws memdb.WatchSet, ns, jobID string) []*structs.Deployment {
	out := list[structs.Deployment](s, ws, TableDeployments, "job", ns, jobID)
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreateIndex < out[j].CreateIndex })
	return out
}

// LatestDeployment returns a job's newest deployment, or nil.
func (s *Snapshot) LatestDeployment(ws memdb.WatchSet, ns, jobID string) *structs.Deployment {
	ds := s.DeploymentsByJob(ws, ns, jobID)
	if len(ds) == 0 {
		return nil
	}
	return ds[len(ds)-1]
}
