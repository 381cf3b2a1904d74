package server

import (
	"sync"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/hivesec/hive/structs"
)

// liveness decides node status on the leader from two signals: Serf's
// failure detector (every node) and heartbeats through the API (workers).
// Heartbeat times live only in the leader's memory, as in Nomad: a new
// leader gives every worker a fresh TTL rather than trusting old times.
type liveness struct {
	ttl   time.Duration // a worker that has not heartbeated for ttl is unknown
	grace time.Duration // an unknown node becomes down after grace

	mu    sync.Mutex
	last  map[string]time.Time
	since time.Time // when this manager became leader
}

func newLiveness(ttl, grace time.Duration) *liveness {
	return &liveness{ttl: ttl, grace: grace, last: map[string]time.Time{}}
}

// reset starts a leadership term.
func (l *liveness) reset(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last = map[string]time.Time{}
	l.since = now
}

// heartbeat records a worker's heartbeat.
func (l *liveness) heartbeat(nodeID string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last[nodeID] = now
}

func (l *liveness) lastHeartbeat(nodeID string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[nodeID]; ok {
		return t
	}
	return l.since
}

// next is the status node n should have now. A node goes ready → unknown
// when Serf calls it failed or its heartbeats stop, and unknown → down once
// it has stayed unknown for the grace period (StatusUpdatedAt is when its
// status last changed). Any node that is healthy again is ready.
func (l *liveness) next(n *structs.Node, members map[string]serf.Member, now time.Time) string {
	if n.Status == structs.NodeStatusInitializing {
		return n.Status // only the agent's registration makes it ready
	}
	m, known := members[n.ID]
	healthy := known && m.Status == serf.StatusAlive
	if n.Role == structs.RoleWorker && now.Sub(l.lastHeartbeat(n.ID)) > l.ttl {
		healthy = false
	}
	if !known && now.Sub(n.JoinedAt) < l.ttl {
		healthy = true // just joined; Serf has not seen it yet
	}
	switch {
	case healthy:
		return structs.NodeStatusReady
	case n.Status == structs.NodeStatusReady:
		return structs.NodeStatusUnknown
	case n.Status == structs.NodeStatusUnknown && now.Sub(statusSince(n)) >= l.grace:
		return structs.NodeStatusDown
	}
	return n.Status
}

func statusSince(n *structs.Node) time.Time {
	if n.StatusUpdatedAt.IsZero() {
		return n.UpdatedAt
	}
	return n.StatusUpdatedAt
}
