package server

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hivesec/hive/fsm"
)

// Write batching. Concurrent writers hand their encoded commands to one
// goroutine, which packs whatever is queued into a single Raft entry. While
// up to maxInflight entries are being committed, new writes queue up and
// ride the next entry together: under load one Raft round trip and one fsync
// commit many writes; a lone writer pays no extra delay.
const (
	maxBatch     = 512
	maxInflight  = 1
	applyTimeout = 10 * time.Second
)

type pendingWrite struct {
	data []byte
	done chan writeResult
}

type writeResult struct {
	value any
	index uint64
	err   error
}

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
	w := &pendingWrite{data: data, done: make(chan writeResult, 1)}
	select {
	case s.writes <- w:
	case <-s.ctx.Done():
		return nil, 0, errors.New("server is shutting down")
	}
	select {
	case r := <-w.done:
		return r.value, r.index, r.err
	case <-s.ctx.Done():
		return nil, 0, errors.New("server is shutting down")
	}
}

func (s *Server) batchWrites() {
	sem := make(chan struct{}, maxInflight)
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
		batch := []*pendingWrite{first}
		// Writers woken by the previous commit are re-queuing right now;
		// yielding a few times lets them land in this batch instead of
		// the next one, without a timer that would delay a lone writer.
		for idle := 0; len(batch) < maxBatch && idle < 8; {
			select {
			case w := <-s.writes:
				batch = append(batch, w)
				idle = 0
			default:
				idle++
				runtime.Gosched()
			}
		}
		go func() {
			defer func() { <-sem }()
			s.commitBatch(batch)
		}()
	}
}

func (s *Server) commitBatch(batch []*pendingWrite) {
	fail := func(err error) {
		for _, w := range batch {
			w.done <- writeResult{err: err}
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
	resp := f.Response()
	idx := f.Index()
	if len(batch) == 1 {
		r, _ := resp.(fsm.Result)
		batch[0].done <- writeResult{value: r.Value, index: idx, err: r.Err}
		return
	}
	r, _ := resp.(fsm.Result)
	results, ok := r.Value.(fsm.BatchResult)
	if r.Err != nil || !ok || len(results) != len(batch) {
		fail(fmt.Errorf("batch apply failed: %v", r.Err))
		return
	}
	for i, w := range batch {
		w.done <- writeResult{value: results[i].Value, index: idx, err: results[i].Err}
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
