package scheduler

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hivesec/hive/structs"
)

// The property test schedules random jobs on random clusters and checks
// the plans, applied as the leader would, against a naive oracle:
//
//  1. no node is oversubscribed (CPU, memory);
//  2. every allocation's node is schedulable and satisfies the job's
//     datacenters and every constraint;
//  3. distinct_hosts holds (job- and group-level);
//  4. the count is met when the cluster has room — counted per node as
//     min(free CPU / ask, free memory / ask), which any greedy placement
//     of identical allocations achieves — and when it is not met the plan
//     says why (FailedTGAllocs) and the evaluation is blocked;
//  5. an even spread ends within one of even when every value of the
//     attribute has room for its share.

func propertyCluster(r *rand.Rand) []*structs.Node {
	n := 3 + r.IntN(40)
	nodes := make([]*structs.Node, n)
	for i := range nodes {
		node := &structs.Node{
			ID: fmt.Sprintf("n%02d", i), Name: fmt.Sprintf("host%02d", i), Role: structs.RoleWorker, Status: structs.NodeStatusReady,
			Labels:     map[string]string{"datacenter": "dc" + strconv.Itoa(1+r.IntN(3)), "rack": "r" + strconv.Itoa(r.IntN(5))},
			Attributes: map[string]string{"kernel.version": kernels[r.IntN(len(kernels))]},
			Resources:  structs.Resources{CPU: 500 + r.IntN(3500), MemoryMB: 512 + r.IntN(7680)},
		}
		switch r.IntN(20) {
		case 0:
			node.Cordoned = true
		case 1:
			node.Draining = true
		case 2:
			node.Status = structs.NodeStatusDown
		case 3:
			node.Role = structs.RoleManager
		}
		nodes[i] = node
	}
	return nodes
}

func propertyJob(r *rand.Rand, id string, nodes []*structs.Node) *structs.Job {
	job := &structs.Job{ID: id, Namespace: "default", Type: structs.JobTypeService}
	if r.IntN(3) == 0 {
		job.Datacenters = []string{"dc" + strconv.Itoa(1+r.IntN(3))}
		if r.IntN(2) == 0 {
			job.Datacenters = append(job.Datacenters, "dc"+strconv.Itoa(1+r.IntN(3)))
		}
	}
	pool := []*structs.Constraint{
		{LTarget: "${node.datacenter}", Operand: "=", RTarget: "dc" + strconv.Itoa(1+r.IntN(3))},
		{LTarget: "${meta.rack}", Operand: "!=", RTarget: "r" + strconv.Itoa(r.IntN(5))},
		{LTarget: "${meta.rack}", Operand: "regexp", RTarget: "^r[0-2]$"},
		{LTarget: "${attr.kernel.version}", Operand: "version", RTarget: ">= 5.10"},
		{LTarget: "${node.unique.name}", Operand: "!=", RTarget: nodes[r.IntN(len(nodes))].Name},
	}
	if r.IntN(2) == 0 {
		job.Constraints = append(job.Constraints, pool[r.IntN(len(pool))])
	}
	if r.IntN(5) == 0 {
		job.Constraints = append(job.Constraints, &structs.Constraint{Operand: structs.ConstraintDistinctHosts})
	}
	groups := 1 + r.IntN(2)
	for g := 0; g < groups; g++ {
		tg := &structs.TaskGroup{
			Name: "g" + strconv.Itoa(g), Count: 1 + r.IntN(25),
			Tasks: []*structs.Task{{Name: "t", Config: structs.TaskConfig{Image: "img"},
				Resources: structs.Resources{CPU: 50 + r.IntN(700), MemoryMB: 32 + r.IntN(1000)}}},
		}
		if r.IntN(2) == 0 {
			tg.Constraints = append(tg.Constraints, pool[r.IntN(len(pool))])
		}
		if r.IntN(5) == 0 {
			tg.Constraints = append(tg.Constraints, &structs.Constraint{Operand: structs.ConstraintDistinctHosts})
		}
		if r.IntN(3) == 0 {
			attr := []string{"${node.datacenter}", "${meta.rack}"}[r.IntN(2)]
			tg.Spreads = []*structs.Spread{{Attribute: attr, Weight: 100}}
		}
		job.Groups = append(job.Groups, tg)
	}
	return job
}

// oracleConstraint is a deliberately naive evaluator for the pool above.
func oracleConstraint(c *structs.Constraint, n *structs.Node) bool {
	val := func(t string) string {
		switch {
		case t == "${node.datacenter}":
			return n.Labels["datacenter"]
		case t == "${node.unique.name}":
			return n.Name
		case strings.HasPrefix(t, "${meta."):
			return n.Labels[strings.TrimSuffix(strings.TrimPrefix(t, "${meta."), "}")]
		case strings.HasPrefix(t, "${attr."):
			return n.Attributes[strings.TrimSuffix(strings.TrimPrefix(t, "${attr."), "}")]
		}
		return t
	}
	l := val(c.LTarget)
	switch c.Operand {
	case "=":
		return l == c.RTarget
	case "!=":
		return l != c.RTarget
	case "regexp":
		return regexp.MustCompile(c.RTarget).MatchString(l)
	case "version": // only ">= major.minor"
		want := strings.Split(strings.TrimPrefix(c.RTarget, ">= "), ".")
		have := strings.Split(strings.SplitN(l, "-", 2)[0], ".")
		for i := range want {
			w, _ := strconv.Atoi(want[i])
			h, _ := strconv.Atoi(have[i])
			if h != w {
				return h > w
			}
		}
		return true
	case structs.ConstraintDistinctHosts:
		return true
	}
	panic("oracle: operand " + c.Operand)
}

func oracleFeasible(job *structs.Job, tg *structs.TaskGroup, n *structs.Node) bool {
	if !n.Schedulable() {
		return false
	}
	if len(job.Datacenters) > 0 {
		ok := false
		for _, dc := range job.Datacenters {
			ok = ok || dc == n.Labels["datacenter"]
		}
		if !ok {
			return false
		}
	}
	for _, c := range append(append([]*structs.Constraint(nil), job.Constraints...), tg.Constraints...) {
		if !oracleConstraint(c, n) {
			return false
		}
	}
	return true
}

func hasDistinct(cs []*structs.Constraint) bool {
	for _, c := range cs {
		if c.Operand == structs.ConstraintDistinctHosts {
			return true
		}
	}
	return false
}

// freeSlots is how many allocations of tg fit on n given its live allocations.
func freeSlots(st *MemState, tg *structs.TaskGroup, n *structs.Node, distinct bool) int {
	var used structs.Resources
	for _, a := range st.AllocsByNode(n.ID) {
		if live(a) {
			used.CPU += a.Resources.CPU
			used.MemoryMB += a.Resources.MemoryMB
		}
	}
	ask := tg.Resources()
	s := min((n.Resources.CPU-used.CPU)/ask.CPU, (n.Resources.MemoryMB-used.MemoryMB)/ask.MemoryMB)
	if distinct {
		s = min(s, 1)
	}
	return max(s, 0)
}

func TestSchedulerProperties(t *testing.T) {
	iterations := 400
	if testing.Short() {
		iterations = 100
	}
	checkedCount, checkedSpread, checkedBlocked := 0, 0, 0
	for seed := 0; seed < iterations; seed++ {
		r := rand.New(rand.NewPCG(uint64(seed), 99))
		nodes := propertyCluster(r)
		workers := 0
		for _, n := range nodes {
			if n.Role == structs.RoleWorker {
				workers++
			}
		}
		st := NewMemState()
		st.UpsertNodes(nodes)
		ids := counterIDs()
		for j := 0; j < 1+r.IntN(4); j++ {
			job := propertyJob(r, "job"+strconv.Itoa(j), nodes)
			st.UpsertJob(job)
			tg0 := job.Groups[0]
			distinct0 := hasDistinct(job.Constraints) || hasDistinct(tg0.Constraints)
			slots, valueSlots := 0, map[string]int{}
			for _, n := range nodes {
				if oracleFeasible(job, tg0, n) {
					s := freeSlots(st, tg0, n, distinct0)
					slots += s
					if len(tg0.Spreads) > 0 {
						v, _ := resolveTarget(tg0.Spreads[0].Attribute, n)
						valueSlots[v] += s
					}
				}
			}
			eval := &structs.Evaluation{ID: fmt.Sprintf("e%d-%d", seed, j), Namespace: "default", JobID: job.ID}
			res, err := Schedule(st, eval, Options{Now: time.Unix(1, 0), Rand: rand.New(rand.NewPCG(uint64(seed), uint64(j))), NewID: ids})
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			st.ApplyPlan(res.Plan)
			where := fmt.Sprintf("seed %d job %d", seed, j)

			// 1. no oversubscription
			for _, n := range nodes {
				var used structs.Resources
				for _, a := range st.AllocsByNode(n.ID) {
					if live(a) {
						used.CPU += a.Resources.CPU
						used.MemoryMB += a.Resources.MemoryMB
					}
				}
				if used.CPU > n.Resources.CPU || used.MemoryMB > n.Resources.MemoryMB {
					t.Fatalf("%s: node %s oversubscribed: %+v of %+v", where, n.ID, used, n.Resources)
				}
			}
			perGroup := map[string]int{}
			jobOnNode, groupOnNode := map[string]int{}, map[string]int{}
			for _, a := range st.AllocsByJob("default", job.ID) {
				if !live(a) {
					continue
				}
				tg := job.LookupGroup(a.Group)
				n := st.Node(a.NodeID)
				// 2. constraints
				if !oracleFeasible(job, tg, n) {
					t.Fatalf("%s: %s placed on infeasible node %s", where, a.Name, n.ID)
				}
				perGroup[a.Group]++
				jobOnNode[a.NodeID]++
				groupOnNode[a.Group+"/"+a.NodeID]++
				// 3. distinct_hosts
				if hasDistinct(job.Constraints) && jobOnNode[a.NodeID] > 1 {
					t.Fatalf("%s: job-level distinct_hosts broken on %s", where, a.NodeID)
				}
				if hasDistinct(tg.Constraints) && groupOnNode[a.Group+"/"+a.NodeID] > 1 {
					t.Fatalf("%s: group distinct_hosts broken on %s", where, a.NodeID)
				}
			}
			// 4. count met when there is room; otherwise a reason
			for _, tg := range job.Groups {
				if missing := tg.Count - perGroup[tg.Name]; missing > 0 {
					m := res.Plan.FailedTGAllocs[tg.Name]
					if !res.Blocked || m == nil || res.Plan.Queued[tg.Name] != missing {
						t.Fatalf("%s: %s short by %d without a reason (blocked %v, metric %+v, queued %v)", where, tg.Name, missing, res.Blocked, m, res.Plan.Queued)
					}
					// Workers only: managers are not candidates at all.
					if m.NodesEvaluated != workers || m.NodesFiltered+m.NodesExhausted == 0 {
						t.Fatalf("%s: unhelpful metric %+v (%d workers)", where, m, workers)
					}
					if n := m.ConstraintFiltered["node is not a worker"]; n != 0 {
						t.Fatalf("%s: %d manager(s) reported as filtered: %+v", where, n, m)
					}
					checkedBlocked++
				}
			}
			if slots >= tg0.Count {
				checkedCount++
				if perGroup[tg0.Name] != tg0.Count {
					t.Fatalf("%s: placed %d of %d with %d free slots", where, perGroup[tg0.Name], tg0.Count, slots)
				}
			}
			// 5. spread within one of even
			if len(tg0.Spreads) > 0 && len(valueSlots) > 0 {
				share := (tg0.Count + len(valueSlots) - 1) / len(valueSlots)
				room := true
				for _, s := range valueSlots {
					room = room && s >= share
				}
				if room {
					checkedSpread++
					counts := map[string]int{}
					for v := range valueSlots {
						counts[v] = 0
					}
					for _, a := range st.AllocsByJob("default", job.ID) {
						if live(a) && a.Group == tg0.Name {
							v, _ := resolveTarget(tg0.Spreads[0].Attribute, st.Node(a.NodeID))
							counts[v]++
						}
					}
					lo, hi := tg0.Count, 0
					for _, c := range counts {
						lo, hi = min(lo, c), max(hi, c)
					}
					if hi-lo > 1 {
						t.Fatalf("%s: spread over %s uneven: %v", where, tg0.Spreads[0].Attribute, counts)
					}
				}
			}
		}
	}
	t.Logf("checked: count met %d times, spread %d, blocked with reason %d", checkedCount, checkedSpread, checkedBlocked)
	if checkedCount == 0 || checkedSpread == 0 || checkedBlocked == 0 {
		t.Fatal("the generator no longer exercises every invariant")
	}
}
