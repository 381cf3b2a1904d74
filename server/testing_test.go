package server

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/identity"
)

// Test servers listen on 127.0.1.N (all of 127/8 is loopback on Linux), each
// on the same ports, so tests never race for free ports. N grows across the
// package so a lingering socket from one test cannot hit the next.
var nextHost atomic.Int32

func nextIP() string {
	n := nextHost.Add(1)
	return fmt.Sprintf("127.0.%d.%d", 1+n/250, 1+n%250)
}

func testConfig(t testing.TB) Config {
	t.Helper()
	level := hclog.Warn
	if os.Getenv("HIVE_TEST_LOG") != "" {
		level = hclog.Debug
	}
	cfg := Config{
		DataDir: t.TempDir(), Advertise: nextIP(), Name: t.Name(),
		APIPort: 17400, RPCPort: 17401, SerfPort: 17402,
		RaftHeartbeatTimeout: 500 * time.Millisecond, RaftElectionTimeout: 500 * time.Millisecond,
		RaftLeaderLease: 400 * time.Millisecond, ReconcileInterval: 200 * time.Millisecond,
		Logger: hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: level, Output: os.Stderr}),
	}
	if _, bench := t.(*testing.B); bench {
		// Benchmarks measure the production Raft timing, and a saturated
		// 2-core machine must not trip shortened leases.
		cfg.RaftHeartbeatTimeout, cfg.RaftElectionTimeout, cfg.RaftLeaderLease = 0, 0, 0
	}
	return cfg
}

// testCluster is n managers started in-process plus the bootstrap secrets.
type testCluster struct {
	servers []*Server
	boot    *Bootstrap
}

func startCluster(t testing.TB, n int) *testCluster {
	t.Helper()
	s, boot, err := Init(testConfig(t))
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	tc := &testCluster{servers: []*Server{s}, boot: boot}
	t.Cleanup(func() {
		for _, s := range tc.servers {
			s.Shutdown()
		}
	})
	for i := 1; i < n; i++ {
		tc.join(t, boot.ManagerToken)
	}
	waitFor(t, 20*time.Second, "all managers are raft voters", func() error {
		f := s.raft.GetConfiguration()
		if err := f.Error(); err != nil {
			return err
		}
		if got := len(f.Configuration().Servers); got != n {
			return fmt.Errorf("%d voters, want %d", got, n)
		}
		return nil
	})
	return tc
}

func (tc *testCluster) join(t testing.TB, tok string) *Server {
	t.Helper()
	cfg := testConfig(t)
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	node, certs, resp, err := identity.Join(context.Background(), identity.JoinParams{
		DataDir: cfg.DataDir, Addr: tc.servers[0].APIAddr(), Token: tok, Name: cfg.Name,
		Address: cfg.Advertise, APIPort: cfg.APIPort, RPCPort: cfg.RPCPort, SerfPort: cfg.SerfPort,
	})
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	s, err := StartJoined(cfg, node, certs, resp)
	if err != nil {
		t.Fatalf("start joined manager: %v", err)
	}
	tc.servers = append(tc.servers, s)
	return s
}

func (tc *testCluster) leader(t testing.TB) *Server {
	t.Helper()
	var l *Server
	waitFor(t, 10*time.Second, "a leader", func() error {
		for _, s := range tc.servers {
			if s.IsLeader() {
				l = s
				return nil
			}
		}
		return fmt.Errorf("no leader")
	})
	return l
}

// adminClient is an API client for s with the bootstrap admin token.
func (tc *testCluster) adminClient(t testing.TB, s *Server) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: s.APIAddr(), Token: tc.boot.AdminToken, CACertPEM: tc.boot.CACertPEM})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
