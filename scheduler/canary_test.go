package scheduler

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hivesec/hive/structs"
)

// canaryJob is webJob at version v, running image, with a canary strategy.
func canaryJob(v uint64, count, canary int, image string) *structs.Job {
	j := webJob(count)
	j.Version = v
	j.Update = &structs.UpdateStrategy{MaxParallel: 1, MinHealthyTime: time.Second, HealthyDeadline: time.Minute, Canary: canary}
	j.Groups[0].Tasks[0].Config.Image = image
	return j
}

type canaryEnv struct {
	h *harness
}

// judge plays the deployment watcher: every live allocation of the latest
// deployment not judged yet is running and gets verdict v.
func (e canaryEnv) judge(v bool) {
	d := e.h.st.LatestDeployment("default", "web")
	e.h.running("web")
	for _, a := range e.h.live("web") {
		if d != nil && a.DeploymentID == d.ID && a.Healthy == nil {
			cp := *a
			cp.Healthy = &v
			e.h.st.UpsertAllocs(&cp)
		}
	}
}

// setDeployment changes the latest deployment as the watcher or `hive job
// promote` would.
func (e canaryEnv) setDeployment(f func(d *structs.Deployment)) {
	d := copyDeployment(e.h.st.LatestDeployment("default", "web"))
	f(d)
	e.h.st.UpsertDeployment(d)
}

func (e canaryEnv) promote() {
	e.setDeployment(func(d *structs.Deployment) {
		for _, st := range d.Groups {
			st.Promoted = true
		}
	})
}

func (e canaryEnv) versions() map[uint64]int {
	out := map[uint64]int{}
	for _, a := range e.h.live("web") {
		out[a.JobVersion]++
	}
	return out
}

// TestCanary walks deployments with canaries through the reconciler, one
// evaluation per step, starting from version 0 (3 allocations of img:1,
// healthy, deployment successful) and version 1 (img:2) just registered.
func TestCanary(t *testing.T) {
	healthy := func(e canaryEnv) { e.judge(true) }
	unhealthy := func(e canaryEnv) { e.judge(false) }
	promote := func(e canaryEnv) { e.promote() }
	fail := func(e canaryEnv) {
		e.setDeployment(func(d *structs.Deployment) { d.Status = structs.DeploymentFailed })
	}
	register := func(j *structs.Job) func(canaryEnv) { return func(e canaryEnv) { e.h.st.UpsertJob(j) } }
	canaryLost := func(e canaryEnv) {
		for _, a := range e.h.live("web") {
			if a.Canary {
				cp := *a
				cp.ClientStatus = structs.AllocLost
				e.h.st.UpsertAllocs(&cp)
			}
		}
	}

	type step struct {
		name     string
		before   []func(canaryEnv)
		canaries int            // canaries placed by this evaluation
		others   int            // other placements
		stops    map[string]int // stop descriptions → count
		versions map[uint64]int // live allocations by job version after it
		// check looks at the latest deployment after the step.
		check func(d *structs.Deployment) error
	}
	desired := func(n int, promoted bool) func(d *structs.Deployment) error {
		return func(d *structs.Deployment) error {
			st := d.Groups["app"]
			if st == nil || st.DesiredCanaries != n || st.Promoted != promoted || len(st.PlacedCanaries) < n {
				return fmt.Errorf("group state %+v, want %d canaries, promoted %v", st, n, promoted)
			}
			return nil
		}
	}
	cases := []struct {
		name   string
		job    *structs.Job // version 1
		steps  []step
		finish map[uint64]int
	}{{
		name: "promoted by hand, then rolled max_parallel at a time",
		job:  canaryJob(1, 3, 1, "img:2"),
		steps: []step{
			{name: "first evaluation places the canary and nothing else", canaries: 1,
				versions: map[uint64]int{0: 3, 1: 1}, check: desired(1, false)},
			{name: "canary pending: nothing moves", versions: map[uint64]int{0: 3, 1: 1}},
			{name: "canary healthy, not promoted: nothing moves", before: []func(canaryEnv){healthy},
				versions: map[uint64]int{0: 3, 1: 1}, check: desired(1, false)},
			{name: "promoted: the canary replaces web.app[0], the next one rolls", before: []func(canaryEnv){promote},
				others: 1, stops: map[string]int{descByCanary: 1, descUpdated: 1}, versions: map[uint64]int{0: 1, 1: 2}, check: desired(1, true)},
			{name: "replacement not healthy yet: nothing moves", versions: map[uint64]int{0: 1, 1: 2}},
			{name: "replacement healthy: the last one rolls", before: []func(canaryEnv){healthy},
				others: 1, stops: map[string]int{descUpdated: 1}, versions: map[uint64]int{1: 3}},
			{name: "done", before: []func(canaryEnv){healthy}, versions: map[uint64]int{1: 3}},
		},
	}, {
		name: "two canaries replace two allocations at promotion",
		job:  canaryJob(1, 3, 2, "img:2"),
		steps: []step{
			{name: "two canaries", canaries: 2, versions: map[uint64]int{0: 3, 1: 2}, check: desired(2, false)},
			{name: "promoted", before: []func(canaryEnv){healthy, promote},
				others: 1, stops: map[string]int{descByCanary: 2, descUpdated: 1}, versions: map[uint64]int{1: 3}},
		},
	}, {
		name: "more canaries than count: capped at count",
		job:  canaryJob(1, 3, 5, "img:2"),
		steps: []step{
			{name: "three canaries", canaries: 3, versions: map[uint64]int{0: 3, 1: 3}, check: desired(3, false)},
			{name: "promoted: nothing left to roll", before: []func(canaryEnv){healthy, promote},
				stops: map[string]int{descByCanary: 3}, versions: map[uint64]int{1: 3}},
		},
	}, {
		name: "unhealthy canary: no more placements, then its failed deployment's canary stops",
		job:  canaryJob(1, 3, 1, "img:2"),
		steps: []step{
			{name: "canary", canaries: 1, versions: map[uint64]int{0: 3, 1: 1}},
			{name: "canary unhealthy: nothing replaces it, nothing rolls", before: []func(canaryEnv){unhealthy},
				versions: map[uint64]int{0: 3, 1: 1}},
			{name: "deployment failed: the canary stops, the old version stays", before: []func(canaryEnv){fail},
				stops: map[string]int{descCanaryStale: 1}, versions: map[uint64]int{0: 3}},
			{name: "stable", versions: map[uint64]int{0: 3}},
		},
	}, {
		name: "auto-revert after a failed canary: canary stops, old allocations updated in place",
		job:  canaryJob(1, 3, 1, "img:2"),
		steps: []step{
			{name: "canary", canaries: 1, versions: map[uint64]int{0: 3, 1: 1}},
			{name: "failed and reverted to img:1 as version 2", before: []func(canaryEnv){unhealthy, fail, register(canaryJob(2, 3, 1, "img:1"))},
				others: 3, stops: map[string]int{descCanaryStale: 1}, versions: map[uint64]int{2: 3}},
		},
	}, {
		name: "scale up during the canary phase: new deployment, new canary, the scale-up waits for promotion",
		job:  canaryJob(1, 3, 1, "img:2"),
		steps: []step{
			{name: "canary", canaries: 1, versions: map[uint64]int{0: 3, 1: 1}},
			{name: "version 2 asks for 5: the unpromoted canary stops, a new one is placed", before: []func(canaryEnv){healthy, register(canaryJob(2, 5, 1, "img:2"))},
				canaries: 1, stops: map[string]int{descCanaryStale: 1}, versions: map[uint64]int{0: 3, 2: 1}, check: desired(1, false)},
			{name: "promoted: two more placed, one rolled", before: []func(canaryEnv){healthy, promote},
				others: 3, stops: map[string]int{descByCanary: 1, descUpdated: 1}, versions: map[uint64]int{0: 1, 2: 4}},
		},
		finish: map[uint64]int{2: 5},
	}, {
		name: "scale down during the canary phase: old allocations stop, canaries are kept apart",
		job:  canaryJob(1, 3, 1, "img:2"),
		steps: []step{
			{name: "canary", canaries: 1, versions: map[uint64]int{0: 3, 1: 1}},
			{name: "version 2 asks for 2 of img:2", before: []func(canaryEnv){register(canaryJob(2, 2, 1, "img:2"))},
				canaries: 1, stops: map[string]int{descCanaryStale: 1, descScaleDown: 1}, versions: map[uint64]int{0: 2, 2: 1}},
			{name: "promoted", before: []func(canaryEnv){healthy, promote},
				others: 1, stops: map[string]int{descByCanary: 1, descUpdated: 1}, versions: map[uint64]int{2: 2}},
		},
	}, {
		name: "lost canary is replaced by another canary",
		job:  canaryJob(1, 3, 1, "img:2"),
		steps: []step{
			{name: "canary", canaries: 1, versions: map[uint64]int{0: 3, 1: 1}},
			{name: "lost after it was healthy", before: []func(canaryEnv){healthy, canaryLost},
				canaries: 1, stops: map[string]int{descLost: 1}, versions: map[uint64]int{0: 3, 1: 1}, check: desired(1, false)},
		},
	}, {
		name: "meta change only: no canaries, updated in place",
		job: func() *structs.Job {
			j := canaryJob(1, 3, 1, "img:1")
			j.Meta = map[string]string{"owner": "ops"}
			return j
		}(),
		steps: []step{
			{name: "in place", others: 3, versions: map[uint64]int{1: 3}},
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, threeNodes()...)
			h.st.UpsertJob(canaryJob(0, 3, tc.job.Update.Canary, "img:1"))
			res := h.run("web")
			if res.Plan.Deployment == nil || res.Plan.Deployment.Groups["app"].DesiredCanaries != 0 {
				t.Fatalf("a first version places without canaries: %+v", res.Plan.Deployment)
			}
			e := canaryEnv{h: h}
			e.judge(true)
			e.setDeployment(func(d *structs.Deployment) { d.Status = structs.DeploymentSuccessful })
			h.st.UpsertJob(tc.job)

			for _, s := range tc.steps {
				for _, f := range s.before {
					f(e)
				}
				res := h.run("web")
				canaries, others := 0, 0
				for _, a := range planAllocs(res.Plan, res.Plan.NodeAllocation) {
					if a.Canary {
						canaries++
						if a.DeploymentID == "" || a.PreviousAllocation != "" || a.JobVersion != h.st.Job("default", "web").Version {
							t.Fatalf("%s: canary %+v", s.name, a)
						}
					} else {
						others++
					}
				}
				stops := map[string]int{}
				for _, a := range planAllocs(res.Plan, res.Plan.NodeUpdate) {
					stops[a.DesiredDescription]++
				}
				if canaries != s.canaries || others != s.others || !mapsEqual(stops, s.stops) {
					t.Fatalf("%s: placed %d canaries and %d others, stopped %v; want %d, %d, %v: %s",
						s.name, canaries, others, stops, s.canaries, s.others, s.stops, res.Description)
				}
				if s.versions != nil && !mapsEqual(e.versions(), s.versions) {
					t.Fatalf("%s: live by version %v, want %v", s.name, e.versions(), s.versions)
				}
				if s.check != nil {
					if err := s.check(h.st.LatestDeployment("default", "web")); err != nil {
						t.Fatalf("%s: %v", s.name, err)
					}
				}
			}
			if tc.finish != nil {
				for range 10 {
					e.judge(true)
					h.run("web")
				}
				if got := e.versions(); !mapsEqual(got, tc.finish) {
					t.Fatalf("finished with %v, want %v", got, tc.finish)
				}
			}
			// Names stay unique among live allocations.
			var seen []string
			for _, a := range h.live("web") {
				if slices.Contains(seen, a.Name) && !a.Canary {
					t.Fatalf("two live allocations named %s", a.Name)
				}
				seen = append(seen, a.Name)
			}
		})
	}
}

// TestCanaryStateNotShared: the scheduler appends the canaries it places to
// a copy of the stored deployment, never to the stored one.
func TestCanaryStateNotShared(t *testing.T) {
	h := newHarness(t, threeNodes()...)
	h.st.UpsertJob(canaryJob(0, 3, 2, "img:1"))
	h.run("web")
	e := canaryEnv{h: h}
	e.judge(true)
	h.st.UpsertJob(canaryJob(1, 3, 2, "img:2"))
	h.run("web")
	d := h.st.LatestDeployment("default", "web")
	st := d.Groups["app"]
	st.PlacedCanaries = append(make([]string, 0, 8), st.PlacedCanaries[:1]...) // room to append into
	before := slices.Clone(st.PlacedCanaries)
	// One canary lost: the next evaluation places another.
	for _, a := range h.live("web") {
		if a.Canary && a.ID != before[0] {
			cp := *a
			cp.DesiredStatus = structs.AllocDesiredStop
			h.st.UpsertAllocs(&cp)
		}
	}
	res := h.schedule("web")
	if res.Plan.Deployment == nil || len(res.Plan.Deployment.Groups["app"].PlacedCanaries) != 2 {
		t.Fatalf("plan deployment %+v", res.Plan.Deployment)
	}
	if !slices.Equal(st.PlacedCanaries, before) || st.PlacedCanaries[:cap(st.PlacedCanaries)][1] != "" {
		t.Fatalf("stored deployment changed: %v", st.PlacedCanaries[:cap(st.PlacedCanaries)])
	}
}

func mapsEqual[K comparable](a, b map[K]int) bool {
	n := 0
	for k, v := range a {
		if v != 0 {
			n++
			if b[k] != v {
				return false
			}
		}
	}
	for _, v := range b {
		if v != 0 {
			n--
		}
	}
	return n == 0
}
