package scheduler

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hivesec/hive/structs"
)

var kernels = []string{"4.19.0-25-amd64", "5.10.0-21-amd64", "6.1.0-9-amd64"}

// c1mNodes makes n simulated workers: half in dc1, half in dc2, three
// kernel versions, ten racks, 32 cores and 128 GiB each.
func c1mNodes(n int) []*structs.Node {
	nodes := make([]*structs.Node, n)
	for i := range nodes {
		nodes[i] = &structs.Node{
			ID: fmt.Sprintf("node-%05d", i), Name: fmt.Sprintf("worker-%05d", i),
			Role: structs.RoleWorker, Status: structs.NodeStatusReady,
			Labels: map[string]string{"datacenter": "dc" + strconv.Itoa(1+i%2), "rack": "r" + strconv.Itoa(i%10)},
			Attributes: map[string]string{
				"kernel.version": kernels[i%3], "arch": "amd64", "os.name": "debian", "cpu.cores": "32",
			},
			Resources: structs.Resources{CPU: 32 * 2500, MemoryMB: 128 * 1024},
		}
	}
	return nodes
}

// c1mJob is job i: count allocations of one 100 MHz / 128 MiB task, in one
// or both datacenters, with one constraint that varies by job.
func c1mJob(i, count int) *structs.Job {
	job := &structs.Job{
		ID: fmt.Sprintf("job-%04d", i), Namespace: "default", Type: structs.JobTypeService, Priority: 50,
		Groups: []*structs.TaskGroup{{
			Name: "web", Count: count,
			Tasks: []*structs.Task{{Name: "app", Driver: "containerd",
				Config: structs.TaskConfig{Image: "registry.local/app:1"}, Resources: structs.Resources{CPU: 100, MemoryMB: 128}}},
		}},
	}
	switch i % 3 {
	case 0:
		job.Datacenters = []string{"dc1"}
	case 1:
		job.Datacenters = []string{"dc2"}
	default:
		job.Datacenters = []string{"dc1", "dc2"}
	}
	switch i % 4 {
	case 0:
		job.Constraints = []*structs.Constraint{{LTarget: "${attr.kernel.version}", Operand: structs.ConstraintVersion, RTarget: ">= 5.10"}}
	case 1:
		job.Constraints = []*structs.Constraint{{LTarget: "${meta.rack}", Operand: structs.ConstraintNotEqual, RTarget: "r3"}}
	case 2:
		job.Constraints = []*structs.Constraint{{LTarget: "${attr.arch}", Operand: structs.ConstraintEqual, RTarget: "amd64"}}
	default:
		job.Constraints = []*structs.Constraint{{LTarget: "${meta.rack}", Operand: structs.ConstraintRegex, RTarget: "^r[0-7]$"}}
	}
	return job
}

// counterIDs makes short unique IDs cheaply, as a benchmark can afford to.
func counterIDs() func() string {
	var n uint64
	return func() string {
		n++
		return strconv.FormatUint(n, 36)
	}
}

// BenchmarkC1M is Nomad's C1M shape in-process: 1,000 jobs × 1,000
// allocations onto 5,000 nodes (100 jobs with -short), one evaluation per
// job, each plan applied to the state before the next evaluation as the
// leader would.
func BenchmarkC1M(b *testing.B) {
	const nodesN, count = 5000, 1000
	jobsN := 1000
	if testing.Short() {
		jobsN = 100
	}
	nodes := c1mNodes(nodesN)
	total := 0
	var elapsed, cpu time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for iter := 0; iter < b.N; iter++ {
		b.StopTimer()
		st := NewMemState()
		st.UpsertNodes(nodes)
		jobs := make([]*structs.Job, jobsN)
		for i := range jobs {
			jobs[i] = c1mJob(i, count)
			st.UpsertJob(jobs[i])
		}
		opts := Options{Now: time.Unix(1700000000, 0), Rand: rand.New(rand.NewPCG(1, uint64(iter))), NewID: counterIDs()}
		b.StartTimer()
		start, cpu0 := time.Now(), cpuTime()
		for i, job := range jobs {
			eval := &structs.Evaluation{ID: "eval-" + strconv.Itoa(i), Namespace: job.Namespace, JobID: job.ID,
				Type: job.Type, Priority: job.Priority, TriggeredBy: structs.EvalTriggerJobRegister}
			res, err := Schedule(st, eval, opts)
			if err != nil {
				b.Fatal(err)
			}
			if res.Blocked {
				b.Fatalf("job %s blocked: %s", job.ID, res.Description)
			}
			st.ApplyPlan(res.Plan)
			total += count
		}
		elapsed += time.Since(start)
		cpu += cpuTime() - cpu0
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "placements/s")
	// CPU time of the whole process (all threads, GC included): on a
	// shared machine wall time also measures the neighbours.
	b.ReportMetric(float64(total)/cpu.Seconds(), "placements/cpu-s")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
