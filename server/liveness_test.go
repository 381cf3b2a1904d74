package server

import (
	"net"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/hivesec/hive/structs"
)

func TestLivenessNext(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ttl, grace := 10*time.Second, 10*time.Second
	alive := map[string]serf.Member{"w": {Name: "w", Addr: net.IPv4(198, 18, 0, 2), Status: serf.StatusAlive}}
	failed := map[string]serf.Member{"w": {Name: "w", Addr: net.IPv4(198, 18, 0, 2), Status: serf.StatusFailed}}
	node := func(role structs.Role, status string, since time.Time) *structs.Node {
		return &structs.Node{ID: "w", Role: role, Status: status, StatusUpdatedAt: since, JoinedAt: t0.Add(-time.Hour)}
	}
	cases := []struct {
		name      string
		n         *structs.Node
		members   map[string]serf.Member
		heartbeat time.Duration // since t0; negative: none this term
		now       time.Duration
		want      string
	}{
		{"healthy worker stays ready", node(structs.RoleWorker, structs.NodeStatusReady, t0), alive, 5 * time.Second, 12 * time.Second, structs.NodeStatusReady},
		{"missed heartbeats make a worker unknown", node(structs.RoleWorker, structs.NodeStatusReady, t0), alive, 0, 11 * time.Second, structs.NodeStatusUnknown},
		{"serf failure makes a worker unknown", node(structs.RoleWorker, structs.NodeStatusReady, t0), failed, 5 * time.Second, 6 * time.Second, structs.NodeStatusUnknown},
		{"unknown within grace stays unknown", node(structs.RoleWorker, structs.NodeStatusUnknown, t0.Add(5*time.Second)), failed, 0, 14 * time.Second, structs.NodeStatusUnknown},
		{"unknown past grace is down", node(structs.RoleWorker, structs.NodeStatusUnknown, t0.Add(5*time.Second)), failed, 0, 15 * time.Second, structs.NodeStatusDown},
		{"down node that heartbeats again is ready", node(structs.RoleWorker, structs.NodeStatusDown, t0), alive, 20 * time.Second, 21 * time.Second, structs.NodeStatusReady},
		{"managers need no heartbeat", node(structs.RoleManager, structs.NodeStatusReady, t0), alive, -1, time.Hour, structs.NodeStatusReady},
		{"manager gone from serf goes unknown", node(structs.RoleManager, structs.NodeStatusReady, t0), map[string]serf.Member{}, -1, time.Hour, structs.NodeStatusUnknown},
		{"initializing waits for registration", node(structs.RoleWorker, structs.NodeStatusInitializing, t0), failed, -1, time.Hour, structs.NodeStatusInitializing},
		{"a new leader grants a fresh TTL", node(structs.RoleWorker, structs.NodeStatusReady, t0), alive, -1, 9 * time.Second, structs.NodeStatusReady},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLiveness(ttl, grace)
			l.reset(t0)
			if tc.heartbeat >= 0 {
				l.heartbeat("w", t0.Add(tc.heartbeat))
			}
			if got := l.next(tc.n, tc.members, t0.Add(tc.now)); got != tc.want {
				t.Errorf("next = %q, want %q", got, tc.want)
			}
		})
	}
}
