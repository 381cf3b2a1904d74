package acl

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/hivesec/hive/structs"
)

// A large, realistic cluster: 10,000 users, 300 groups (each user in up to
// two), 50 namespaces, 1,000 custom roles of 1-4 rules (mostly global or
// one namespace, some named), 20,000 bindings (mostly one user in one
// namespace; some groups, some global, some built-in roles).
const (
	benchUsers      = 10000
	benchGroups     = 300
	benchNamespaces = 50
	benchRoles      = 1000
	benchBindings   = 20000
)

type benchWorld struct {
	roles    []*structs.ACLRole
	bindings []*structs.ACLBinding
	requests []request
}

func newBenchWorld() *benchWorld {
	r := rand.New(rand.NewPCG(7, 8))
	ns := func() string { return fmt.Sprintf("ns-%02d", r.IntN(benchNamespaces)) }
	objName := func() string { return fmt.Sprintf("app-%02d", r.IntN(20)) }
	workload := []string{"job", "alloc", "alloc/logs", "deployment", "evaluation", "secret", "secret/value", "netpol", "serviceaccount", "image", "event"}

	w := &benchWorld{}
	for i := range benchRoles {
		role := &structs.ACLRole{Name: fmt.Sprintf("role-%04d", i)}
		for n := 1 + r.IntN(4); n > 0; n-- {
			var rule structs.ACLRule
			switch x := r.IntN(100); {
			case x < 45:
				rule.Scope = "global"
			case x < 80:
				rule.Scope = "namespace:" + ns()
			case x < 85:
				rule.Scope = "namespace:*"
			default:
				kind := pick(r, []string{"job", "alloc", "secret"})
				name := objName()
				if r.IntN(3) == 0 {
					name = "*"
				}
				rule.Scope = kind + ":" + ns() + "/" + name
				rule.Resources = family(kind)[:1+r.IntN(len(family(kind)))]
			}
			if rule.Resources == nil {
				for k := 1 + r.IntN(3); k > 0; k-- {
					rule.Resources = append(rule.Resources, pick(r, workload))
				}
			}
			acts := structs.ACLResources[rule.Resources[0]]
			for k := 1 + r.IntN(len(acts)); k > 0; k-- {
				rule.Actions = append(rule.Actions, pick(r, acts))
			}
			role.Rules = append(role.Rules, rule)
		}
		w.roles = append(w.roles, role)
	}

	userGroups := make([][]string, benchUsers)
	for u := range userGroups {
		for n := r.IntN(3); n > 0; n-- {
			userGroups[u] = append(userGroups[u], fmt.Sprintf("group:g-%03d", r.IntN(benchGroups)))
		}
	}
	for i := range benchBindings {
		b := &structs.ACLBinding{Name: fmt.Sprintf("b-%05d", i), Role: w.roles[r.IntN(benchRoles)].Name}
		if r.IntN(20) == 0 {
			b.Role = pick(r, []string{RoleDeveloper, RoleViewer, RoleViewer, RoleAdmin})
		}
		switch x := r.IntN(100); {
		case x < 70:
			b.Subjects = []string{fmt.Sprintf("user:u-%05d", r.IntN(benchUsers))}
		case x < 90:
			b.Subjects = []string{fmt.Sprintf("group:g-%03d", r.IntN(benchGroups))}
		default:
			for n := 2 + r.IntN(2); n > 0; n-- {
				s := fmt.Sprintf("user:u-%05d", r.IntN(benchUsers))
				if !slices.Contains(b.Subjects, s) {
					b.Subjects = append(b.Subjects, s)
				}
			}
		}
		if r.IntN(10) < 7 {
			b.Namespace = ns()
		}
		w.bindings = append(w.bindings, b)
	}

	// Requests as an API server makes them: a user and its groups, mostly
	// reads and lists of workloads, in a namespace, about one object half
	// the time.
	common := []pairName{{"job", "read"}, {"job", "list"}, {"alloc", "read"}, {"alloc", "list"}, {"job", "update"},
		{"alloc/logs", "read"}, {"secret", "read"}, {"deployment", "read"}, {"event", "list"}}
	for range 1 << 16 {
		u := r.IntN(benchUsers)
		q := request{subjects: append([]string{fmt.Sprintf("user:u-%05d", u)}, userGroups[u]...)}
		p := pick(r, pairNames)
		if r.IntN(4) != 0 {
			p = pick(r, common)
		}
		q.resource, q.action = p.resource, p.action
		q.namespace = ns()
		if r.IntN(20) == 0 {
			q.namespace = ""
		}
		if r.IntN(2) == 0 {
			q.name = objName()
		}
		w.requests = append(w.requests, q)
	}
	return w
}

// BenchmarkAuthorize measures decisions against the large world above.
// Every eighth decision is timed alone for the p99 latency; decisions/s
// counts all of them over the whole run (the timing included).
func BenchmarkAuthorize(b *testing.B) {
	w := newBenchWorld()
	a, err := Compile(w.roles, w.bindings)
	if err != nil {
		b.Fatal(err)
	}
	const sampleEvery = 8
	samples := make([]time.Duration, 1<<17)
	var n, allowed, sampled int
	mask := len(w.requests) - 1
	start := time.Now()
	for b.Loop() {
		q := &w.requests[n&mask]
		var d Decision
		if n%sampleEvery == 0 {
			t0 := time.Now()
			d = a.Authorize(q.subjects, q.resource, q.action, q.namespace, q.name)
			samples[sampled%len(samples)] = time.Since(t0)
			sampled++
		} else {
			d = a.Authorize(q.subjects, q.resource, q.action, q.namespace, q.name)
		}
		if d.Allowed {
			allowed++
		}
		n++
	}
	elapsed := time.Since(start)
	samples = samples[:min(sampled, len(samples))]
	slices.Sort(samples)
	if len(samples) > 0 {
		b.ReportMetric(float64(samples[len(samples)*99/100].Nanoseconds()), "p99-ns")
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "decisions/s")
	b.ReportMetric(100*float64(allowed)/float64(n), "%allowed")
}

// BenchmarkCompile measures building the Authorizer for the large world
// (what a change to roles or bindings costs) and the heap it holds.
func BenchmarkCompile(b *testing.B) {
	w := newBenchWorld()
	var a *Authorizer
	var before, after runtime.MemStats
	for b.Loop() {
		a = nil
		runtime.GC()
		runtime.ReadMemStats(&before)
		var err error
		if a, err = Compile(w.roles, w.bindings); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
	runtime.KeepAlive(a)
}
