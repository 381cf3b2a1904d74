package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

// BenchmarkEndToEndPlacements measures placements per second committed
// through a 3-manager Raft cluster: jobs are registered through the leader's
// write path, the leader's evaluation broker, scheduler workers and plan
// applier place them on simulated workers registered in state. Each
// iteration places HIVE_BENCH_ALLOCS allocations (default 100,000) in jobs
// of 1,000 onto HIVE_BENCH_NODES nodes (default 1,000). Run with
// -benchtime=1x. Reports placements/s, the peak RSS of the process (three
// managers share it) and the heap per allocation per state store.
func BenchmarkEndToEndPlacements(b *testing.B) {
	total := envInt("HIVE_BENCH_ALLOCS", 100_000)
	nodes := envInt("HIVE_BENCH_NODES", 1_000)
	const perJob = 1000
	tc := startJobCluster(b, 3)
	s := tc.leader(b)
	var wg sync.WaitGroup
	errs := make(chan error, nodes)
	sem := make(chan struct{}, 64)
	for i := range nodes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := registerWorker(s, fmt.Sprintf("sim-%05d", i), 64_000, 64_000); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	heap0 := heapInUse()
	b.ResetTimer()
	placed := 0
	var elapsed, cpu time.Duration
	for it := 0; it < b.N; it++ {
		start, cpu0 := time.Now(), cpuTime()
		jobs := total / perJob
		evals := make([]string, 0, jobs)
		for j := range jobs {
			job := jobSpec(fmt.Sprintf("bench-%d-%d", it, j), "busybox:1", perJob)
			job.Update = nil
			j2, err := s.normalizeJob(benchRequest(), &structs.JobRegisterRequest{Job: job}, "")
			if err != nil {
				b.Fatal(err)
			}
			resp, err := s.registerJob(j2, structs.EvalTriggerJobRegister)
			if err != nil {
				b.Fatal(err)
			}
			evals = append(evals, resp.EvalID)
		}
		// Wait on the evaluations, a few lookups, rather than counting
		// the allocations table, a walk that would take CPU from the
		// cluster being measured; the count is checked once at the end.
		want := placed + jobs*perJob
		deadline := time.Now().Add(5 * time.Minute)
		for len(evals) > 0 {
			snap := s.fsm.State().Snapshot()
			for len(evals) > 0 {
				e := snap.Eval(nil, evals[0])
				if e == nil || e.Status == structs.EvalStatusPending {
					break
				}
				if e.Status != structs.EvalStatusComplete {
					b.Fatalf("evaluation %s is %s: %s", e.ID, e.Status, e.StatusDescription)
				}
				evals = evals[1:]
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d evaluations still pending after 5 minutes", len(evals))
			}
			if len(evals) > 0 {
				time.Sleep(10 * time.Millisecond)
			}
		}
		if n := s.fsm.State().Snapshot().Counts()[state.TableAllocs]; n != want {
			b.Fatalf("%d allocations placed, want %d", n, want)
		}
		elapsed += time.Since(start)
		cpu += cpuTime() - cpu0
		placed = want
	}
	b.StopTimer()
	b.ReportMetric(float64(placed)/elapsed.Seconds(), "placements/s")
	// Cores busy while placing: near the machine's count means the rate
	// is bound by CPU, below it by waiting (Raft round trips, fsync).
	b.ReportMetric(cpu.Seconds()/elapsed.Seconds(), "cores")
	// Let followers catch up so each of the three stores holds them all.
	waitFor(b, time.Minute, "followers caught up", func() error {
		for _, f := range tc.servers {
			if n := f.fsm.State().Snapshot().Counts()[state.TableAllocs]; n < placed {
				return fmt.Errorf("%d allocations on %s", n, f.node.ID)
			}
		}
		return nil
	})
	heap1 := heapInUse()
	b.ReportMetric(float64(heap1-heap0)/float64(placed*len(tc.servers)), "heapB/alloc/store")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peakRSS-MiB")
}

func benchRequest() *http.Request {
	return httptest.NewRequest("POST", "/v1/jobs", nil)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// cpuTime is the CPU time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS is VmHWM of this process in bytes.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
