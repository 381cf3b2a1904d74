package server

import (
	"context"

	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/scheduler"
	"github.com/hivesec/hive/structs"
)

// Scheduler workers: each takes an evaluation from the broker, runs the
// scheduler on a fresh snapshot, hands the plan to the plan applier and
// records the outcome. A plan the applier partly refused is scheduled
// again on newer state, a few times at most.
const (
	schedWorkers     = 2
	maxPlanAttempts  = 5
	maxEvalAttempts  = 3
	evalRetryBackoff = 200 * time.Millisecond
)

func (s *Server) runSchedWorker(ctx context.Context, b *evalBroker, p *planApplier, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	attempts := map[string]int{}
	for {
		e, err := b.dequeue(ctx)
		if err != nil {
			return
		}
		idx, err := s.processEval(ctx, e, p, rng)
		if err != nil && ctx.Err() == nil {
			attempts[e.ID]++
			s.logger.Warn("evaluation failed", "eval", e.ID, "job", e.JobID, "attempt", attempts[e.ID], "error", err)
			if attempts[e.ID] >= maxEvalAttempts {
				failed := *e
				failed.Status = structs.EvalStatusFailed
				failed.StatusDescription = fmt.Sprintf("scheduling failed %d times: %v", attempts[e.ID], err)
				failed.ModifyTime = time.Now().UTC()
				_, idx, _ = s.applyIndex(fsm.EvalUpsertType, &fsm.EvalUpsertRequest{Evals: []*structs.Evaluation{&failed}})
				delete(attempts, e.ID)
			} else {
				time.Sleep(evalRetryBackoff)
			}
		} else {
			delete(attempts, e.ID)
		}
		b.finish(e, idx)
	}
}

// processEval schedules one evaluation and returns the index of the write
// that recorded its outcome.
func (s *Server) processEval(ctx context.Context, e *structs.Evaluation, p *planApplier, rng *rand.Rand) (uint64, error) {
	var res *scheduler.Result
	for attempt := 1; ; attempt++ {
		store := s.fsm.State()
		snap := store.Snapshot()
		cur := snap.Eval(nil, e.ID)
		if cur == nil || cur.Status != structs.EvalStatusPending {
			return 0, nil // canceled or finished elsewhere
		}
		var err error
		res, err = scheduler.Schedule(newTableSchedState(store, snap, &p.tables), cur, scheduler.Options{Now: time.Now().UTC(), Rand: rng, NewID: newObjectID})
		if err != nil {
			return 0, err
		}
		if res.Plan == nil || res.Plan.IsNoOp() {
			break
		}
		pr := p.submit(ctx, res.Plan)
		if pr.err != nil {
			return 0, fmt.Errorf("apply plan: %w", pr.err)
		}
		if len(pr.rejected) == 0 {
			break
		}
		if attempt >= maxPlanAttempts {
			return 0, fmt.Errorf("plan refused on %d node(s) after %d attempts (the cluster changed under it)", len(pr.rejected), attempt)
		}
	}
	now := time.Now().UTC()
	done := *e
	done.Status = structs.EvalStatusComplete
	done.StatusDescription = res.Description
	done.ModifyTime = now
	done.FailedTGAllocs, done.QueuedAllocations = nil, nil
	if res.Plan != nil {
		done.FailedTGAllocs = res.Plan.FailedTGAllocs
		done.QueuedAllocations = res.Plan.Queued
	}
	if res.Blocked {
		done.Status = structs.EvalStatusBlocked
		if done.StatusDescription == "" {
			done.StatusDescription = "waiting for capacity"
		}
	}
	evals := []*structs.Evaluation{&done}
	for _, f := range res.FollowUps {
		if f == nil {
			continue
		}
		cp := *f
		if cp.ID == "" {
			cp.ID = uuid.NewString()
		}
		if cp.Status == "" {
			cp.Status = structs.EvalStatusPending
		}
		if cp.Namespace == "" {
			cp.Namespace, cp.JobID = e.Namespace, e.JobID
		}
		if cp.CreateTime.IsZero() {
			cp.CreateTime = now
		}
		cp.PreviousEval = e.ID
		evals = append(evals, &cp)
	}
	_, idx, err := s.applyIndex(fsm.EvalUpsertType, &fsm.EvalUpsertRequest{Evals: evals})
	if err != nil {
		return 0, fmt.Errorf("record evaluation outcome: %w", err)
	}
	return idx, nil
}

// newObjectID makes the IDs of allocations, evaluations and deployments
// the scheduler creates: version 7 UUIDs, time-ordered and monotonic within
// the process, with 62 random bits. Consecutive placements then land next
// to each other in the state store's radix trees, so a plan of a thousand
// inserts copies a few paths instead of a thousand (about a third of the
// FSM's cost with random IDs). These IDs name objects; they grant nothing,
// so the creation time they reveal is no loss.
func newObjectID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// The random source failed: a random v4 ID fails the same way,
		// so this only says so louder.
		panic(fmt.Sprintf("server: no randomness for an ID: %v", err))
	}
	return id.String()
}
