package server

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"

	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/gossip"
	"github.com/hivesec/hive/structs"
)

// monitorLeadership runs the leader loop while this manager leads.
func (s *Server) monitorLeadership() {
	var stop func()
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for {
		select {
		case <-s.ctx.Done():
			return
		case isLeader := <-s.notifyCh:
			switch {
			case isLeader && stop == nil:
				s.logger.Info("acquired leadership")
				stop = s.runLeaderLoop()
			case !isLeader && stop != nil:
				s.logger.Info("lost leadership")
				stop()
				stop = nil
			}
		}
	}
}

// runLeaderLoop starts the leader loop and returns a function that stops it
// and waits for it to finish.
func (s *Server) runLeaderLoop() func() {
	ctx, cancel := context.WithCancel(s.ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.leaderLoop(ctx) }()
	return func() { cancel(); <-done }
}

// leaderLoop keeps Raft peers and node status in line with Serf.
func (s *Server) leaderLoop(ctx context.Context) {
	// A barrier makes sure this leader's FSM has applied everything
	// committed before it, so reconcile acts on current state.
	if err := s.raft.Barrier(30 * time.Second).Error(); err != nil {
		s.logger.Warn("leader barrier failed", "error", err)
	}
	s.liveness.reset(time.Now().UTC())
	jobsDone := make(chan struct{})
	go func() { defer close(jobsDone); s.runJobSystem(ctx) }()
	defer func() { <-jobsDone }()
	rotDone := make(chan struct{})
	go func() { defer close(rotDone); s.runRotator(ctx.Done()) }()
	defer func() { <-rotDone }()
	t := time.NewTicker(s.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		s.reconcile()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.reconcileC:
		}
	}
}

// reconcile adds managers that joined Serf as Raft voters and records node
// liveness. Only nodes present in the state store count: a removed node
// that keeps gossiping is never re-added.
func (s *Server) reconcile() {
	if !s.IsLeader() {
		return
	}
	snap := s.fsm.State().Snapshot()
	future := s.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		s.logger.Warn("reconcile: read raft configuration", "error", err)
		return
	}
	inRaft := map[raft.ServerID]raft.Server{}
	for _, srv := range future.Configuration().Servers {
		inRaft[srv.ID] = srv
	}
	sf := s.getSerf()
	if sf == nil {
		return
	}
	members := map[string]serf.Member{}
	for _, m := range sf.Members() {
		members[m.Name] = m
	}
	for _, m := range members {
		n := snap.Node(nil, m.Name)
		if n == nil || n.Role != structs.RoleManager || m.Status != serf.StatusAlive || m.Tags[gossip.TagRole] != string(structs.RoleManager) {
			continue
		}
		if _, ok := inRaft[raft.ServerID(n.ID)]; ok {
			continue
		}
		if p, err := strconv.Atoi(m.Tags[gossip.TagRPCPort]); err != nil || p == 0 {
			continue
		}
		addr := net.JoinHostPort(m.Addr.String(), m.Tags[gossip.TagRPCPort])
		s.logger.Info("adding manager as raft voter", "id", n.ID, "addr", addr)
		if err := s.raft.AddVoter(raft.ServerID(n.ID), raft.ServerAddress(addr), 0, 10*time.Second).Error(); err != nil {
			s.logger.Warn("add raft voter failed", "id", n.ID, "error", err)
		}
	}
	now := time.Now().UTC()
	var updates []fsm.NodeStatusUpdate
	for _, n := range snap.Nodes(nil) {
		if st := s.liveness.next(n, members, now); st != n.Status {
			updates = append(updates, fsm.NodeStatusUpdate{NodeID: n.ID, Status: st})
		}
	}
	if len(updates) > 0 {
		if _, err := s.apply(fsm.NodeStatusType, &fsm.NodeStatusRequest{Updates: updates, Now: now}); err != nil {
			s.logger.Warn("reconcile: update node status", "error", err)
		}
	}
}
