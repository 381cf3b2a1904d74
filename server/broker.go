package server

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

// evalBroker hands pending evaluations to the scheduler workers on the
// leader. It is a view of the evals table, not a second source of truth:
// the feeder enqueues every pending evaluation it finds in state, and an
// evaluation leaves the broker when a worker has written its outcome. A new
// leader therefore rebuilds it from state.
//
// At most one evaluation per job is being scheduled at a time, so a job's
// plans never race each other; the others of that job wait their turn.
// Evaluations with a WaitUntil in the future (delayed reschedules) wait in
// a timer heap.
type evalBroker struct {
	mu      sync.Mutex
	known   map[string]bool   // IDs held in any queue or in flight
	done    map[string]uint64 // ID → index of the write that finished it
	ready   []*structs.Evaluation
	perJob  map[jobKey][]*structs.Evaluation
	running map[jobKey]string
	delayed delayHeap
	wake    chan struct{} // signalled when ready grows
	timerC  chan struct{} // signalled when a new earliest delay arrives
}

type jobKey struct{ ns, id string }

func newEvalBroker() *evalBroker {
	return &evalBroker{
		known: map[string]bool{}, done: map[string]uint64{},
		perJob: map[jobKey][]*structs.Evaluation{}, running: map[jobKey]string{},
		wake: make(chan struct{}, 1), timerC: make(chan struct{}, 1),
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// enqueue adds a pending evaluation unless it is already held or was
// finished by a write newer than the state the caller read it from.
func (b *evalBroker) enqueue(e *structs.Evaluation, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.known[e.ID] {
		return
	}
	if idx, ok := b.done[e.ID]; ok && e.ModifyIndex < idx {
		return // a stale snapshot: this evaluation was finished since
	}
	b.known[e.ID] = true
	if e.WaitUntil.After(now) {
		heap.Push(&b.delayed, e)
		signal(b.timerC)
		return
	}
	b.makeReadyLocked(e)
}

func (b *evalBroker) makeReadyLocked(e *structs.Evaluation) {
	k := jobKey{e.Namespace, e.JobID}
	if _, busy := b.running[k]; busy || len(b.perJob[k]) > 0 {
		b.perJob[k] = append(b.perJob[k], e)
		return
	}
	b.running[k] = e.ID // reserved: the job's turn goes to this one
	b.ready = append(b.ready, e)
	signal(b.wake)
}

// dequeue blocks until an evaluation is ready or ctx ends.
func (b *evalBroker) dequeue(ctx context.Context) (*structs.Evaluation, error) {
	for {
		b.mu.Lock()
		if len(b.ready) > 0 {
			e := b.ready[0]
			b.ready[0] = nil
			b.ready = b.ready[1:]
			if len(b.ready) > 0 {
				signal(b.wake) // let another worker take the next one
			}
			b.mu.Unlock()
			return e, nil
		}
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-b.wake:
		}
	}
}

// finish releases an evaluation. doneIndex is the index of the write that
// recorded its outcome (0 when it was not written: it then stays pending
// in state and the feeder brings it back).
func (b *evalBroker) finish(e *structs.Evaluation, doneIndex uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.known, e.ID)
	if doneIndex > 0 {
		b.done[e.ID] = doneIndex
	}
	k := jobKey{e.Namespace, e.JobID}
	if b.running[k] == e.ID {
		delete(b.running, k)
	}
	if q := b.perJob[k]; len(q) > 0 {
		next := q[0]
		if len(q) == 1 {
			delete(b.perJob, k)
		} else {
			b.perJob[k] = q[1:]
		}
		b.running[k] = next.ID
		b.ready = append(b.ready, next)
		signal(b.wake)
	}
}

// forgetDone drops finish records that state at index already reflects.
func (b *evalBroker) forgetDone(index uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, idx := range b.done {
		if idx <= index {
			delete(b.done, id)
		}
	}
}

// runDelays moves delayed evaluations to ready when their time comes.
func (b *evalBroker) runDelays(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		b.mu.Lock()
		now := time.Now()
		for len(b.delayed) > 0 && !b.delayed[0].WaitUntil.After(now) {
			b.makeReadyLocked(heap.Pop(&b.delayed).(*structs.Evaluation))
		}
		wait := time.Hour
		if len(b.delayed) > 0 {
			wait = b.delayed[0].WaitUntil.Sub(now)
		}
		b.mu.Unlock()
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.timerC:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
	}
}

// feedBroker enqueues every pending evaluation in state, waking on each
// change of the pending set. This is how evaluations written by any path
// (job register, node triggers, follow-ups, unblocking) reach the workers.
func (s *Server) feedBroker(ctx context.Context, b *evalBroker) {
	for {
		store := s.fsm.State()
		snap := store.Snapshot()
		ws := memdb.NewWatchSet()
		ws.Add(store.AbandonCh())
		now := time.Now()
		for _, e := range snap.EvalsByStatus(ws, structs.EvalStatusPending) {
			b.enqueue(e, now)
		}
		b.forgetDone(snap.Index(state.TableEvals))
		if err := ws.WatchCtx(ctx); err != nil && ctx.Err() != nil {
			return
		}
	}
}

type delayHeap []*structs.Evaluation

func (h delayHeap) Len() int           { return len(h) }
func (h delayHeap) Less(i, j int) bool { return h[i].WaitUntil.Before(h[j].WaitUntil) }
func (h delayHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)        { *h = append(*h, x.(*structs.Evaluation)) }
func (h *delayHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
