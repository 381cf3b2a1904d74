package server

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hivesec/hive/structs"
)

// BenchmarkSecretsAPI measures secret create and reveal through the HTTPS
// API of a 3-manager cluster (TLS, token authentication, RBAC, audit log,
// envelope encryption; creates commit through Raft with fsync on every
// manager), with 32 concurrent clients. It also measures the re-wrap rate
// of a root-key rotation over the secrets created. Run with -benchtime Nx.
func BenchmarkSecretsAPI(b *testing.B) {
	tc := startCluster(b, 3)
	s := tc.leader(b)
	const clients = 32
	callers := make([]*rawCaller, clients)
	for i := range callers {
		callers[i] = newRawCaller(b, s.APIAddr(), tc.boot.CACertPEM, nil, true)
	}
	admin := bearer(tc.boot.AdminToken)
	run := func(b *testing.B, name string, do func(c *rawCaller, i int64) *reply) {
		b.Run(name, func(b *testing.B) {
			var next, failed atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for w := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						if r := do(callers[w], i); r.status != http.StatusOK {
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d of %d requests failed", n, b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "secrets/s")
		})
	}
	// Names are unique across the runs the framework makes of each
	// sub-benchmark.
	var created atomic.Int64
	run(b, "create", func(c *rawCaller, _ int64) *reply {
		i := created.Add(1)
		body := mustJSON(b, structs.SecretRequest{Data: map[string]string{"password": fmt.Sprintf("value-%d", i)}})
		return c.call(b, "POST", fmt.Sprintf("/v1/secret/bench-%d?namespace=default", i), admin, body)
	})
	n := created.Load()
	run(b, "reveal", func(c *rawCaller, i int64) *reply {
		return c.call(b, "GET", fmt.Sprintf("/v1/secret/bench-%d/value?namespace=default", 1+i%n), admin, nil)
	})
}

// BenchmarkKeyringRotation measures the re-wrap rate of a root-key
// rotation over HIVE_BENCH_SECRETS secrets (default 10,000) on a 3-manager
// cluster: from the rotate call until the old key is deleted, every data
// key re-wrapped and committed through Raft in batches.
func BenchmarkKeyringRotation(b *testing.B) {
	n := envInt("HIVE_BENCH_SECRETS", 10_000)
	tc := startCluster(b, 3)
	s := tc.leader(b)
	for i := range n {
		if _, err := s.putVersion("default", fmt.Sprintf("r%06d", i), nil, nil, map[string]string{"v": "value"}, time.Now().UTC()); err != nil {
			b.Fatal(err)
		}
	}
	c := newRawCaller(b, s.APIAddr(), tc.boot.CACertPEM, nil, true)
	b.ResetTimer()
	var total time.Duration
	for range b.N {
		old := s.fsm.State().Snapshot().RootKeys(nil)
		start := time.Now()
		if r := c.call(b, "POST", "/v1/operator/keyring/rotate", bearer(tc.boot.AdminToken), nil); r.status != http.StatusOK {
			b.Fatal(r)
		}
		for {
			gone := true
			for _, k := range old {
				if s.fsm.State().Snapshot().RootKey(nil, k.ID) != nil {
					gone = false
				}
			}
			if gone {
				break
			}
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "rewrapped/s")
}
