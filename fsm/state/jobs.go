package state

import (
	"fmt"
	"slices"

	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/structs"
)

// MaxJobVersions bounds the history kept per job; older versions are
// pruned when a new one is written.
const MaxJobVersions = 10

// UpsertJob inserts or replaces a job and records its version in the
// history (a version already recorded is replaced: a re-register without a
// spec change keeps its number).
func (t *Txn) UpsertJob(j *structs.Job) error {
	cp := *j
	if old := t.Read().Job(nil, j.Namespace, j.ID); old != nil {
		cp.CreateIndex = old.CreateIndex
		if old.Version != j.Version {
			cp.JobModifyIndex = t.index
		}
	} else {
		cp.CreateIndex = t.index
		cp.JobModifyIndex = t.index
	}
	cp.ModifyIndex = t.index
	if err := t.insert(TableJobs, &cp); err != nil {
		return err
	}
	ver := cp
	if err := t.insert(TableJobVersions, &ver); err != nil {
		return err
	}
	return t.pruneJobVersions(j.Namespace, j.ID)
}

func (t *Txn) pruneJobVersions(ns, id string) error {
	vs := t.Read().JobVersions(nil, ns, id) // newest first
	if len(vs) <= MaxJobVersions {
		return nil
	}
	for _, v := range vs[MaxJobVersions:] {
		if err := t.remove(TableJobVersions, v); err != nil {
			return fmt.Errorf("prune version %d of job %s: %w", v.Version, id, err)
		}
	}
	return nil
}

// DeleteJob removes a job and its version history.
func (t *Txn) DeleteJob(ns, id string) error {
	j := t.Read().Job(nil, ns, id)
	if j == nil {
		return fmt.Errorf("job %s/%s: %w", ns, id, ErrNotFound)
	}
	if err := t.remove(TableJobs, j); err != nil {
		return fmt.Errorf("delete job %s: %w", id, err)
	}
	if err := t.bump(TableJobs); err != nil {
		return err
	}
	for _, v := range t.Read().JobVersions(nil, ns, id) {
		if err := t.remove(TableJobVersions, v); err != nil {
			return fmt.Errorf("delete version %d of job %s: %w", v.Version, id, err)
		}
	}
	return t.bump(TableJobVersions)
}

// Job returns one job or nil.
func (s *Snapshot) Job(ws memdb.WatchSet, ns, id string) *structs.Job {
	o := s.first(ws, TableJobs, "id", ns, id)
	if o == nil {
		return nil
	}
	return o.(*structs.Job)
}

// Jobs lists every job, by namespace then ID.
func (s *Snapshot) Jobs(ws memdb.WatchSet) []*structs.Job {
	return list[structs.Job](s, ws, TableJobs, "id")
}

// JobsByNamespace lists the jobs of one namespace.
func (s *Snapshot) JobsByNamespace(ws memdb.WatchSet, ns string) []*structs.Job {
	var out []*structs.Job
	for _, j := range list[structs.Job](s, ws, TableJobs, "id_prefix", ns, "") {
		if j.Namespace == ns {
			out = append(out, j)
		}
	}
	return out
}

// JobVersions lists the kept versions of a job, newest first.
func (s *Snapshot) JobVersions(ws memdb.WatchSet, ns, id string) []*structs.Job {
	var out []*structs.Job
	// The prefix of the last string field has no terminator, so "web"
	// also matches "web2": filter on the exact ID.
	for _, j := range list[structs.Job](s, ws, TableJobVersions, "id_prefix", ns, id) {
		if j.ID == id && j.Namespace == ns {
			out = append(out, j)
		}
	}
	slices.Reverse(out)
	return out
}

// JobVersion returns one kept version of a job, or nil.
func (s *Snapshot) JobVersion(ws memdb.WatchSet, ns, id string, version uint64) *structs.Job {
	o := s.first(ws, TableJobVersions, "id", ns, id, version)
	if o == nil {
		return nil
	}
	return o.(*structs.Job)
}

// AllocsByJob lists the allocations of one job.
func (s *Snapshot) AllocsByJob(ws memdb.WatchSet, ns, jobID string) []*structs.Allocation {
	return list[structs.Allocation](s, ws, TableAllocs, "job", ns, jobID)
}
