package server

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hivesec/hive/fsm"
)

// Write batching. Concurrent writers hand their encoded commands to one
// goroutine, which packs whatever is queued into a single Raft entry. While
// up to maxInflight entries are being committed, new writes queue up and
// ride the next entry together: under load one Raft round trip and one fsync
// commit many writes; a lone writer pays no extra delay.
//
// One entry in flight at a time is deliberate: the managers share their disk
// bandwidth with nothing but each other, and a second entry in flight splits
// the writers into two smaller batches that cost an fsync each on every
// manager, which measured slower, not faster.
const (
	maxBatch     = 512
	maxInflight  = 1
	applyTimeout = 10 * time.Second

	// A batch waits at most gatherMax (and at most a quarter of the
	// previous commit) for the writers answered by the previous batch to
	// queue their next writes, and gives up once none arrived for
	// gatherGap. See gather.
	gatherMax = 500 * time.Microsecond
	gatherGap = 100 * time.Microsecond
)

type pendingWrite struct {
	data   []byte
	queued time.Time // when the write was handed to the batcher
	done   chan writeResult
}

type writeResult struct {
	value any
	index uint64
	err   error
}

// writePool recycles pendingWrites with their result channels: the batcher
// sends exactly one result per write, so once its writer has read it the
// pendingWrite is free again.
var writePool = sync.Pool{New: func() any { return &pendingWrite{done: make(chan writeResult, 1)} }}

// ErrNoLeader is returned when no leader is known.
var ErrNoLeader = errors.New("no cluster leader: the managers are electing one or a majority is unreachable; retry shortly")

// apply commits one command through Raft and returns the FSM's answer.
func (s *Server) apply(t fsm.MessageType, req any) (any, error) {
	v, _, err := s.applyIndex(t, req)
	return v, err
}

func (s *Server) applyIndex(t fsm.MessageType, req any) (any, uint64, error) {
	data, err := fsm.Encode(t, req)
	if err != nil {
		return nil, 0, err
	}
	w := writePool.Get().(*pendingWrite)
	w.data, w.queued = data, time.Now()
	select {
	case s.writes <- w:
	case <-s.ctx.Done():
		return nil, 0, errors.New("server is shutting down")
	}
	select {
	case r := <-w.done:
		w.data = nil
		writePool.Put(w)
		return r.value, r.index, r.err
	case <-s.ctx.Done():
		// The batcher may still answer; w is not reused.
		return nil, 0, errors.New("server is shutting down")
	}
}

// answered describes the batch whose writers were answered last.
type answered struct {
	mu     sync.Mutex
	writes int
	at     time.Time
	commit time.Duration // from raft.Apply to the FSM's result
}

func (a *answered) set(writes int, at time.Time, commit time.Duration) {
	a.mu.Lock()
	a.writes, a.at, a.commit = writes, at, commit
	a.mu.Unlock()
}

func (a *answered) get() (writes int, at time.Time, commit time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.writes, a.at, a.commit
}

func (s *Server) batchWrites() {
	sem := make(chan struct{}, maxInflight)
	var last answered
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var first *pendingWrite
		select {
		case first = <-s.writes:
		case <-s.ctx.Done():
			return
		}
		select {
		case sem <- struct{}{}:
		case <-s.ctx.Done():
			first.done <- writeResult{err: errors.New("server is shutting down")}
			return
		}
		batch := s.gather(first, &last, timer)
		go s.commitBatch(batch, &last, sem)
	}
}

// gather collects the writes for one Raft entry, starting with first.
//
// Everything already queued goes in. Then, if the previous batch was answered
// moments ago, its writers are probably queuing their next writes right now
// (a caller that writes in a loop does so at once). Waiting for them fills
// this entry instead of leaving the stragglers a whole commit behind, which
// under load costs far more than the wait. Writes queued before the previous
// batch was answered come from other callers and do not count. The wait ends
// as soon as as many writes arrived as that batch answered, when none arrived
// for gatherGap, or a quarter of its commit time (at most gatherMax) after it
// was answered. A lone writer never waits: it is the one write expected.
func (s *Server) gather(first *pendingWrite, last *answered, timer *time.Timer) []*pendingWrite {
	prev, answeredAt, commit := last.get()
	deadline := answeredAt.Add(min(commit/4, gatherMax))
	batch := make([]*pendingWrite, 1, max(prev, 16))
	batch[0] = first
	got := 0 // writes queued since the previous batch was answered
	take := func(w *pendingWrite) {
		batch = append(batch, w)
		if !w.queued.Before(answeredAt) {
			got++
		}
	}
	if !first.queued.Before(answeredAt) {
		got++
	}
	lastArrival := time.Now()
	for len(batch) < maxBatch {
		select {
		case w := <-s.writes:
			take(w)
			continue
		default:
		}
		if got >= prev {
			break
		}
		now := time.Now()
		wait := min(deadline.Sub(now), gatherGap-now.Sub(lastArrival))
		if wait <= 0 {
			break
		}
		timer.Reset(wait)
		select {
		case w := <-s.writes:
			timer.Stop()
			take(w)
			lastArrival = time.Now()
			// Let the other writers that are ready to run queue theirs
			// too before draining, rather than being woken once per write.
			runtime.Gosched()
		case <-timer.C:
			return batch
		}
	}
	return batch
}

// commitBatch commits batch, then frees its slot in sem and answers its
// writers.
func (s *Server) commitBatch(batch []*pendingWrite, last *answered, sem chan struct{}) {
	start := time.Now()
	results := make([]writeResult, len(batch))
	s.commitEntry(batch, results)
	// Recorded before anyone is answered, so that every write queued by an
	// answered writer is seen by the next gather as a returning writer; and
	// the slot is freed first so that the next gather is already under way
	// when they return.
	last.set(len(batch), time.Now(), time.Since(start))
	<-sem
	for i, w := range batch {
		w.done <- results[i]
	}
}

// commitEntry commits batch as one Raft entry and fills in each write's result.
func (s *Server) commitEntry(batch []*pendingWrite, results []writeResult) {
	fail := func(err error) {
		for i := range results {
			results[i] = writeResult{err: err}
		}
	}
	data := batch[0].data
	if len(batch) > 1 {
		entries := make([][]byte, len(batch))
		for i, w := range batch {
			entries[i] = w.data
		}
		var err error
		if data, err = fsm.EncodeBatch(entries); err != nil {
			fail(err)
			return
		}
	}
	f := s.raft.Apply(data, applyTimeout)
	if err := f.Error(); err != nil {
		fail(raftError(err))
		return
	}
	idx := f.Index()
	r, _ := f.Response().(fsm.Result)
	if len(batch) == 1 {
		results[0] = writeResult{value: r.Value, index: idx, err: r.Err}
		return
	}
	out, ok := r.Value.(fsm.BatchResult)
	if r.Err != nil || !ok || len(out) != len(batch) {
		fail(fmt.Errorf("batch apply failed: %v", r.Err))
		return
	}
	for i := range batch {
		results[i] = writeResult{value: out[i].Value, index: idx, err: out[i].Err}
	}
}

// raftError turns Raft's errors into ones an operator can act on.
func raftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return fmt.Errorf("%w (this manager is not the leader)", ErrNoLeader)
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w: leadership was lost before the write committed; it may or may not have been applied", ErrNoLeader)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: the write timed out waiting for a majority of managers", ErrNoLeader)
	case errors.Is(err, raft.ErrRaftShutdown):
		return errors.New("server is shutting down")
	}
	return fmt.Errorf("raft apply: %w", err)
}
