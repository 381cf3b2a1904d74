package server

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/structs"
)

// BenchmarkClusterWrites measures committed writes per second through a
// 3-manager cluster on loopback (Raft over mutual TLS, boltdb with fsync on
// every manager). Each write is a namespace upsert committed by a majority
// before the writer sees success. The writers call the leader's write path
// directly, so the figure is the replication pipeline's, not HTTP's.
func BenchmarkClusterWrites(b *testing.B) {
	tc := startCluster(b, 3)
	leader := tc.leader(b)
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			var next atomic.Int64
			var failed atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						ns := structs.Namespace{Name: fmt.Sprintf("bench-%d-%d", writers, i)}
						if _, err := leader.apply(fsm.NamespaceUpsertType, &fsm.NamespaceUpsertRequest{Namespace: ns}); err != nil {
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d writes failed", n)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
		})
	}
}
