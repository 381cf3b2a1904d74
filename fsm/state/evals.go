package state

import (
	"fmt"
	"sort"

	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/structs"
)

// MaxTerminalEvalsPerJob bounds the finished evaluations kept per job; the
// oldest are pruned when a new one is written.
const MaxTerminalEvalsPerJob = 20

// UpsertEval inserts or replaces an evaluation.
func (t *Txn) UpsertEval(e *structs.Evaluation) error {
	cp := *e
	if old := t.Read().Eval(nil, e.ID); old != nil {
		cp.CreateIndex = old.CreateIndex
	} else {
		cp.CreateIndex = t.index
	}
	cp.ModifyIndex = t.index
	if err := t.insert(TableEvals, &cp); err != nil {
		return err
	}
	if !EvalTerminal(&cp) {
		return nil
	}
	return t.pruneEvals(e.Namespace, e.JobID)
}

func (t *Txn) pruneEvals(ns, jobID string) error {
	var done []*structs.Evaluation
	for _, e := range t.Read().EvalsByJob(nil, ns, jobID) {
		if EvalTerminal(e) {
			done = append(done, e)
		}
	}
	if len(done) <= MaxTerminalEvalsPerJob {
		return nil
	}
	sort.Slice(done, func(i, j int) bool { return done[i].ModifyIndex < done[j].ModifyIndex })
	for _, e := range done[:len(done)-MaxTerminalEvalsPerJob] {
		if err := t.remove(TableEvals, e); err != nil {
			return fmt.Errorf("prune evaluation %s: %w", e.ID, err)
		}
	}
	return nil
}

// EvalTerminal reports whether an evaluation will not be scheduled again.
func EvalTerminal(e *structs.Evaluation) bool {
	switch e.Status {
	case structs.EvalStatusComplete, structs.EvalStatusFailed, structs.EvalStatusCanceled:
		return true
	}
	return false
}

// Eval returns one evaluation or nil.
func (s *Snapshot) Eval(ws memdb.WatchSet, id string) *structs.Evaluation {
	o := s.first(ws, TableEvals, "id", id)
	if o == nil {
		return nil
	}
	return o.(*structs.Evaluation)
}

// Evals lists every evaluation by ID.
func (s *Snapshot) Evals(ws memdb.WatchSet) []*structs.Evaluation {
	return list[structs.Evaluation](s, ws, TableEvals, "id")
}

// EvalsByJob lists the evaluations of one job, oldest first.
func (s *Snapshot) EvalsByJob(ws memdb.WatchSet, ns, jobID string) []*structs.Evaluation {
	out := list[structs.Evaluation](s, ws, TableEvals, "job", ns, jobID)
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreateIndex < out[j].CreateIndex })
	return out
}

// EvalsByStatus lists the evaluations with one status.
func (s *Snapshot) EvalsByStatus(ws memdb.WatchSet, status string) []*structs.Evaluation {
	return list[structs.Evaluation](s, ws, TableEvals, "status", status)
}
