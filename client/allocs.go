package client

import (
	"context"
	"sync"
	"time"

	"github.com/hivesec/hive/client/driver"
	"github.com/hivesec/hive/structs"
)

// allocManager keeps one runner per allocation this node runs and brings
// them in line with what the managers want.
type allocManager struct {
	ctx context.Context
	cfg *runnerConfig

	mu      sync.Mutex
	runners map[string]*allocRunner
	// stoppedUnrun: allocations stopped while no runner had them (the
	// agent was down); reported complete once.
	stoppedUnrun map[string]bool
	// reconciled is set once the first list of allocations was applied,
	// after which an allocation without a runner is not coming back.
	reconciled bool
}

// running reports whether the agent has a runner for allocation id that
// has not finished, and whether the first reconcile happened (before it,
// the answer means nothing).
func (m *allocManager) running(id string) (running, known bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ar := m.runners[id]
	return ar != nil && !ar.finished(), m.reconciled
}

func newAllocManager(ctx context.Context, cfg *runnerConfig) *allocManager {
	return &allocManager{ctx: ctx, cfg: cfg, runners: map[string]*allocRunner{}, stoppedUnrun: map[string]bool{}}
}

// reattachPlan is what to do with the containers found at agent start.
type reattachPlan struct {
	// restore: containers to hand to the runners of allocations that
	// should run, by allocation ID and task name.
	restore map[string]map[string]driver.TaskStatus
	// destroy: containers of allocations that are gone, stopped or
	// finished, or of tasks the allocation does not have.
	destroy []string
}

// planReattach decides, from the allocations the managers placed here and
// the containers containerd has, which containers to re-attach to and
// which to remove. Containers of other nodes (an agent sharing this
// containerd) are left alone.
func planReattach(nodeID string, allocs []*structs.Allocation, containers []driver.TaskStatus) reattachPlan {
	byID := map[string]*structs.Allocation{}
	for _, a := range allocs {
		byID[a.ID] = a
	}
	p := reattachPlan{restore: map[string]map[string]driver.TaskStatus{}}
	for _, c := range containers {
		if c.Labels[LabelNode] != nodeID {
			continue
		}
		a := byID[c.Labels[LabelAlloc]]
		if a == nil || a.DesiredStatus != structs.AllocDesiredRun || a.Terminal() {
			p.destroy = append(p.destroy, c.ID)
			continue
		}
		var task *structs.Task
		for _, t := range a.Tasks {
			if t.Name == c.Labels[LabelTask] {
				task = t
			}
		}
		if task == nil || taskID(a.ID, task.Name) != c.ID {
			p.destroy = append(p.destroy, c.ID)
			continue
		}
		if p.restore[a.ID] == nil {
			p.restore[a.ID] = map[string]driver.TaskStatus{}
		}
		p.restore[a.ID][task.Name] = c
	}
	return p
}

// reattach lists this node's containers (retrying until containerd
// answers or ctx ends) and applies planReattach; it returns what the first
// reconcile hands to new runners.
func (m *allocManager) reattach(ctx context.Context, allocs []*structs.Allocation) (map[string]map[string]driver.TaskStatus, error) {
	backoff := time.Second
	var cs []driver.TaskStatus
	for {
		lctx, cancel := context.WithTimeout(ctx, listTimeout)
		var err error
		cs, err = m.cfg.driver.ListTasks(lctx)
		cancel()
		if err == nil {
			break
		}
		m.cfg.logger.Warn("list containers for re-attach failed; retrying", "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
	p := planReattach(m.cfg.nodeID, allocs, cs)
	for _, id := range p.destroy {
		m.cfg.logger.Info("removing container of a stopped or unknown allocation", "container", id)
		dctx, cancel := context.WithTimeout(ctx, destroyTimeout)
		if err := m.cfg.driver.DestroyTask(dctx, id); err != nil {
			m.cfg.logger.Warn("remove leftover container", "container", id, "error", err)
		}
		cancel()
	}
	if m.cfg.mounter != nil {
		// The secret tmpfs of allocations that ended while no agent ran.
		keep := map[string]bool{}
		for _, a := range allocs {
			if a.DesiredStatus == structs.AllocDesiredRun && !a.Terminal() {
				keep[a.ID] = true
			}
		}
		sweepSecrets(m.cfg.allocDir, keep, m.cfg.mounter, m.cfg.logger)
	}
	return p.restore, nil
}

// reconcile brings runners in line with allocs, the node's allocations as
// the managers see them. restore (only on the first call) holds containers
// to re-attach.
func (m *allocManager) reconcile(allocs []*structs.Allocation, restore map[string]map[string]driver.TaskStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer func() { m.reconciled = true }()
	seen := map[string]bool{}
	for _, a := range allocs {
		seen[a.ID] = true
		if ar, ok := m.runners[a.ID]; ok {
			switch {
			case a.ClientStatus == structs.AllocLost && !ar.finished():
				// This node was down long enough for the managers to
				// give the allocation up (and the scheduler to replace
				// it): stop the copy here, as Nomad does.
				ar.markLost()
				ar.stop("the managers marked the allocation lost")
			case a.DesiredStatus == structs.AllocDesiredStop:
				ar.stop("stopped by request")
			}
			continue
		}
		switch {
		case a.DesiredStatus == structs.AllocDesiredRun && !a.Terminal():
			ar := newAllocRunner(m.ctx, m.cfg, a)
			m.runners[a.ID] = ar
			m.cfg.logger.Info("starting allocation", "alloc", a.ID, "tasks", len(a.Tasks), "reattach", len(restore[a.ID]))
			ar.run(restore[a.ID])
		case a.DesiredStatus == structs.AllocDesiredStop && !a.Terminal() && !m.stoppedUnrun[a.ID]:
			// Stopped while this agent was down: nothing runs it (its
			// containers went in reattach); say so.
			m.stoppedUnrun[a.ID] = true
			m.reportStopped(a)
		}
	}
	for id, ar := range m.runners {
		if !seen[id] {
			// The managers forgot it (garbage-collected): stop and forget.
			ar.stop("allocation no longer exists")
			if ar.finished() {
				delete(m.runners, id)
			}
		}
	}
	for id := range m.stoppedUnrun {
		if !seen[id] {
			delete(m.stoppedUnrun, id)
		}
	}
}

// reportStopped reports an allocation that no runner ran as complete with
// every unfinished task dead.
func (m *allocManager) reportStopped(a *structs.Allocation) {
	now := m.cfg.now().UTC()
	states := map[string]*structs.TaskState{}
	for _, t := range a.Tasks {
		ts := &structs.TaskState{State: structs.TaskDead, FinishedAt: now}
		if prev := a.TaskStates[t.Name]; prev != nil {
			cp := *prev
			ts = &cp
			if ts.State != structs.TaskDead {
				ts.State, ts.FinishedAt = structs.TaskDead, now
			}
		}
		states[t.Name] = ts
	}
	m.cfg.report(structs.AllocUpdate{ID: a.ID, ClientStatus: allocStatus(a.Tasks, states),
		ClientDescription: "stopped by request", TaskStates: states})
}

// runner returns the runner of an allocation, nil if none.
func (m *allocManager) runner(id string) *allocRunner {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runners[id]
}

// wait blocks until every runner has returned (after the agent's context
// ends) or ctx ends.
func (m *allocManager) wait(ctx context.Context) {
	m.mu.Lock()
	var rs []*allocRunner
	for _, ar := range m.runners {
		rs = append(rs, ar)
	}
	m.mu.Unlock()
	for _, ar := range rs {
		select {
		case <-ar.done:
		case <-ctx.Done():
			return
		}
	}
}
