package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/structs"
)

// Job tests run real managers and simulated workers: nodes registered
// straight through Raft (a join record and a fingerprint), which never
// heartbeat nor gossip. A long heartbeat TTL keeps them ready (the
// liveness rule gives a node that just joined the benefit of the doubt for
// one TTL); tests that want a node down say so through Raft.

func startJobCluster(t testing.TB, managers int) *testCluster {
	t.Helper()
	tc := startCluster(t, managers)
	for _, s := range tc.servers {
		s.liveness.mu.Lock()
		s.liveness.ttl = time.Hour
		s.liveness.mu.Unlock()
	}
	return tc
}

// addWorker registers a simulated worker with the given resources.
func addWorker(t testing.TB, s *Server, id string, cpu, memMB int) {
	t.Helper()
	if err := registerWorker(s, id, cpu, memMB); err != nil {
		t.Fatal(err)
	}
}

func registerWorker(s *Server, id string, cpu, memMB int) error {
	var tokID string
	for _, tok := range s.fsm.State().Snapshot().JoinTokens(nil) {
		if tok.Role == structs.RoleWorker && !tok.Revoked {
			tokID = tok.ID
		}
	}
	now := time.Now().UTC()
	if _, err := s.apply(fsm.NodeRegisterType, &fsm.NodeRegisterRequest{
		TokenID: tokID, Now: now,
		Node: structs.Node{ID: id, Name: id, Role: structs.RoleWorker, Address: "198.18.0.1", Status: structs.NodeStatusInitializing, JoinedAt: now, UpdatedAt: now},
		Cert: structs.IssuedCert{Serial: "sim-" + id, NodeID: id, Role: structs.RoleWorker, NotAfter: now.Add(time.Hour), IssuedAt: now},
	}); err != nil {
		return fmt.Errorf("register %s: %w", id, err)
	}
	if _, err := s.apply(fsm.NodeFingerprintType, &fsm.NodeFingerprintRequest{
		NodeID: id, Resources: structs.Resources{CPU: cpu, MemoryMB: memMB}, Now: now,
		Attributes: map[string]string{"os.name": "linux", "arch": "amd64"},
	}); err != nil {
		return fmt.Errorf("fingerprint %s: %w", id, err)
	}
	return nil
}

func jobSpec(id, image string, count int) *structs.Job {
	return &structs.Job{
		ID:     id,
		Update: &structs.UpdateStrategy{MaxParallel: 1, MinHealthyTime: time.Second, HealthyDeadline: time.Minute},
		Groups: []*structs.TaskGroup{{Name: "web", Count: count, Tasks: []*structs.Task{{
			Name: "web", Driver: "containerd", Config: structs.TaskConfig{Image: image, Args: []string{"sleep", "1000"}},
			Resources: structs.Resources{CPU: 100, MemoryMB: 64},
		}}}},
	}
}

func postJSON(t testing.TB, c *rawCaller, tok, method, path string, in, out any) *reply {
	t.Helper()
	var body []byte
	if in != nil {
		body = mustJSON(t, in)
	}
	r := c.call(t, method, path, bearer(tok), body)
	if out != nil && r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, r.body, err)
		}
	}
	return r
}

func liveAllocs(s *Server, ns, job string) []*structs.Allocation {
	var out []*structs.Allocation
	for _, a := range s.fsm.State().Snapshot().AllocsByJob(nil, ns, job) {
		if live(a) {
			out = append(out, a)
		}
	}
	return out
}

// runner plays the worker agents: every pending allocation that should
// run is reported running (its tasks started now), every one asked to stop
// is reported complete.
type runner struct {
	s    *Server
	stop chan struct{}
	wg   sync.WaitGroup
	// fail, when set, says which allocations fail instead of running.
	mu   sync.Mutex
	fail func(*structs.Allocation) bool
}

func startRunner(t testing.TB, s *Server) *runner {
	r := &runner{s: s, stop: make(chan struct{})}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			select {
			case <-r.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			r.tick()
		}
	}()
	t.Cleanup(func() { close(r.stop); r.wg.Wait() })
	return r
}

func (r *runner) tick() {
	byNode := map[string][]structs.AllocUpdate{}
	now := time.Now().UTC()
	r.mu.Lock()
	fail := r.fail
	r.mu.Unlock()
	for _, a := range r.s.fsm.State().Snapshot().Allocs(nil) {
		switch {
		case a.Terminal():
		case a.DesiredStatus == structs.AllocDesiredStop:
			byNode[a.NodeID] = append(byNode[a.NodeID], structs.AllocUpdate{ID: a.ID, ClientStatus: structs.AllocComplete})
		case a.ClientStatus == structs.AllocPending && fail != nil && fail(a):
			byNode[a.NodeID] = append(byNode[a.NodeID], structs.AllocUpdate{ID: a.ID, ClientStatus: structs.AllocFailed, ClientDescription: "exit 1"})
		case a.ClientStatus == structs.AllocPending:
			ts := map[string]*structs.TaskState{}
			for _, task := range a.Tasks {
				ts[task.Name] = &structs.TaskState{State: structs.TaskRunning, StartedAt: now}
			}
			byNode[a.NodeID] = append(byNode[a.NodeID], structs.AllocUpdate{ID: a.ID, ClientStatus: structs.AllocRunning, TaskStates: ts})
		}
	}
	for node, ups := range byNode {
		if _, err := r.s.apply(fsm.AllocClientUpdateType, &fsm.AllocClientUpdateRequest{NodeID: node, Updates: ups, Now: now}); err == nil {
			r.s.afterAllocUpdate(ups)
		}
	}
}

func TestJobRegisterPlacesAllocations(t *testing.T) {
	tc := startJobCluster(t, 1)
	s := tc.leader(t)
	for i := range 3 {
		addWorker(t, s, fmt.Sprintf("w%d", i), 1000, 1024)
	}
	c := newRawCaller(t, s.APIAddr(), tc.boot.CACertPEM, nil, true)
	var resp structs.JobRegisterResponse
	if r := postJSON(t, c, tc.boot.AdminToken, "POST", "/v1/jobs", structs.JobRegisterRequest{Job: jobSpec("web", "busybox:1", 6)}, &resp); r.status != http.StatusOK {
		t.Fatalf("register: %s", r)
	}
	waitFor(t, 10*time.Second, "6 allocations", func() error {
		if n := len(liveAllocs(s, "default", "web")); n != 6 {
			return fmt.Errorf("%d live allocations", n)
		}
		return nil
	})
	nodes := map[string]int{}
	for _, a := range liveAllocs(s, "default", "web") {
		nodes[a.NodeID]++
		if a.EvalID == "" || a.Name == "" || len(a.Tasks) != 1 || a.Resources.MemoryMB != 64 || a.Tasks[0].Restart.Mode == "" {
			t.Errorf("allocation misses scheduler fields: %+v", a)
		}
	}
	if len(nodes) < 2 {
		t.Errorf("allocations on %d node(s): %v", len(nodes), nodes)
	}
	waitFor(t, 5*time.Second, "evaluation complete", func() error {
		var e structs.Evaluation
		postJSON(t, c, tc.boot.AdminToken, "GET", "/v1/evaluation/"+resp.EvalID, nil, &e)
		if e.Status != structs.EvalStatusComplete {
			return fmt.Errorf("eval status %q", e.Status)
		}
		return nil
	})
	var stubs []structs.JobListStub
	postJSON(t, c, tc.boot.AdminToken, "GET", "/v1/jobs", nil, &stubs)
	if len(stubs) != 1 || stubs[0].Groups["web"].Desired != 6 || stubs[0].Groups["web"].Pending != 6 {
		t.Fatalf("job list: %s", mustJSON(t, stubs))
	}

	// Scale down, then stop: the allocations are stopped.
	postJSON(t, c, tc.boot.AdminToken, "POST", "/v1/jobs", structs.JobRegisterRequest{Job: jobSpec("web", "busybox:1", 2)}, nil)
	waitFor(t, 10*time.Second, "2 allocations", func() error {
		if n := len(liveAllocs(s, "default", "web")); n != 2 {
			return fmt.Errorf("%d live allocations", n)
		}
		return nil
	})
	if r := postJSON(t, c, tc.boot.AdminToken, "DELETE", "/v1/job/web", nil, &resp); r.status != http.StatusOK {
		t.Fatalf("stop: %s", r)
	}
	waitFor(t, 10*time.Second, "no allocations", func() error {
		if n := len(liveAllocs(s, "default", "web")); n != 0 {
			return fmt.Errorf("%d live allocations", n)
		}
		return nil
	})
	var versions []*structs.Job
	postJSON(t, c, tc.boot.AdminToken, "GET", "/v1/job/web/versions", nil, &versions)
	if len(versions) != 3 || !versions[0].Stop || versions[0].Version != 2 {
		t.Fatalf("versions after stop: %d, newest %+v", len(versions), versions[0])
	}
}

func TestRollingUpdate(t *testing.T) {
	tc := startJobCluster(t, 1)
	s := tc.leader(t)
	for i := range 3 {
		addWorker(t, s, fmt.Sprintf("w%d", i), 1000, 1024)
	}
	startRunner(t, s)
	c := newRawCaller(t, s.APIAddr(), tc.boot.CACertPEM, nil, true)
	postJSON(t, c, tc.boot.AdminToken, "POST", "/v1/jobs", structs.JobRegisterRequest{Job: jobSpec("web", "busybox:1", 3)}, nil)
	waitFor(t, 20*time.Second, "3 running allocations", func() error {
		n := 0
		for _, a := range liveAllocs(s, "default", "web") {
			if a.ClientStatus == structs.AllocRunning {
				n++
			}
		}
		if n != 3 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})
	var resp structs.JobRegisterResponse
	postJSON(t, c, tc.boot.AdminToken, "POST", "/v1/jobs", structs.JobRegisterRequest{Job: jobSpec("web", "busybox:2", 3)}, &resp)
	if resp.JobVersion != 1 {
		t.Fatalf("job version %d after an image change, want 1", resp.JobVersion)
	}
	maxUnhealthy := 0
	waitFor(t, 40*time.Second, "all allocations on version 1 and the deployment successful", func() error {
		snap := s.fsm.State().Snapshot()
		unhealthy, v1 := 0, 0
		for _, a := range liveAllocs(s, "default", "web") {
			if a.JobVersion == 1 {
				v1++
				if a.Healthy == nil || !*a.Healthy {
					unhealthy++
				}
			}
		}
		maxUnhealthy = max(maxUnhealthy, unhealthy)
		d := snap.LatestDeployment(nil, "default", "web")
		if v1 != 3 || len(liveAllocs(s, "default", "web")) != 3 || d == nil || d.Status != structs.DeploymentSuccessful {
			st := "none"
			if d != nil {
				st = d.Status
			}
			return fmt.Errorf("%d live on version 1; deployment %s", v1, st)
		}
		return nil
	})
	if maxUnhealthy > 1 {
		t.Errorf("saw %d new allocations not yet healthy at once; max_parallel is 1", maxUnhealthy)
	}
}

func TestNodeDownReplacesAllocations(t *testing.T) {
	tc := startJobCluster(t, 1)
	s := tc.leader(t)
	addWorker(t, s, "w0", 1000, 1024)
	c := newRawCaller(t, s.APIAddr(), tc.boot.CACertPEM, nil, true)
	postJSON(t, c, tc.boot.AdminToken, "POST", "/v1/jobs", structs.JobRegisterRequest{Job: jobSpec("web", "busybox:1", 2)}, nil)
	waitFor(t, 10*time.Second, "2 allocations on w0", func() error {
		if n := len(liveAllocs(s, "default", "web")); n != 2 {
			return fmt.Errorf("%d live allocations", n)
		}
		return nil
	})
	addWorker(t, s, "w1", 1000, 1024)
	// Cordon first so the simulated node, which the liveness rules would
	// call ready again, takes nothing back.
	if _, err := s.apply(fsm.NodeEligibilityType, &fsm.NodeEligibilityRequest{NodeID: "w0", Cordoned: true, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.apply(fsm.NodeStatusType, &fsm.NodeStatusRequest{Updates: []fsm.NodeStatusUpdate{{NodeID: "w0", Status: structs.NodeStatusDown}}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "replacements on w1", func() error {
		live := liveAllocs(s, "default", "web")
		for _, a := range live {
			if a.NodeID != "w1" || a.PreviousAllocation == "" {
				return fmt.Errorf("allocation %s on %s (previous %q)", a.ID, a.NodeID, a.PreviousAllocation)
			}
		}
		if len(live) != 2 {
			return fmt.Errorf("%d live", len(live))
		}
		return nil
	})
	for _, a := range s.fsm.State().Snapshot().AllocsByNode(nil, "w0") {
		if a.ClientStatus != structs.AllocLost || a.NextAllocation == "" {
			t.Errorf("allocation on the down node: %s, next %q", a.ClientStatus, a.NextAllocation)
		}
	}
}

func TestDrainMovesAllocations(t *testing.T) {
	tc := startJobCluster(t, 1)
	s := tc.leader(t)
	addWorker(t, s, "w0", 1000, 1024)
	startRunner(t, s)
	c := newRawCaller(t, s.APIAddr(), tc.boot.CACertPEM, nil, true)
	postJSON(t, c, tc.boot.AdminToken, "POST", "/v1/jobs", structs.JobRegisterRequest{Job: jobSpec("web", "busybox:1", 2)}, nil)
	waitFor(t, 10*time.Second, "2 allocations", func() error {
		if n := len(liveAllocs(s, "default", "web")); n != 2 {
			return fmt.Errorf("%d live allocations", n)
		}
		return nil
	})
	addWorker(t, s, "w1", 1000, 1024)
	if r := c.call(t, "POST", "/v1/node/w0/drain", bearer(tc.boot.AdminToken), nil); r.status != http.StatusOK {
		t.Fatalf("drain: %s", r)
	}
	waitFor(t, 20*time.Second, "allocations moved to w1", func() error {
		live := liveAllocs(s, "default", "web")
		for _, a := range live {
			if a.NodeID != "w1" {
				var evs []string
				for _, e := range s.fsm.State().Snapshot().EvalsByJob(nil, "default", "web") {
					evs = append(evs, e.TriggeredBy+"/"+e.Status+"/"+e.StatusDescription)
				}
				return fmt.Errorf("allocation %s still on %s (%s, healthy %v); evals %v", a.ID, a.NodeID, a.ClientStatus, a.Healthy, evs)
			}
		}
		if len(live) != 2 {
			return fmt.Errorf("%d live", len(live))
		}
		return nil
	})
}

func TestBlockedJobUnblocksWhenCapacityAppears(t *testing.T) {
	tc := startJobCluster(t, 1)
	s := tc.leader(t)
	addWorker(t, s, "small", 1000, 128)
	c := newRawCaller(t, s.APIAddr(), tc.boot.CACertPEM, nil, true)
	job := jobSpec("big", "busybox:1", 1)
	job.Groups[0].Tasks[0].Resources.MemoryMB = 512
	postJSON(t, c, tc.boot.AdminToken, "POST", "/v1/jobs", structs.JobRegisterRequest{Job: job}, nil)
	waitFor(t, 10*time.Second, "a blocked evaluation with a reason", func() error {
		var stubs []structs.JobListStub
		postJSON(t, c, tc.boot.AdminToken, "GET", "/v1/jobs", nil, &stubs)
		if len(stubs) != 1 || stubs[0].Blocked["web"] == nil {
			return fmt.Errorf("job list %s", mustJSON(t, stubs))
		}
		return nil
	})
	// Plan shows the same reason without changing anything.
	before := stateIndex(s)
	var plan structs.JobPlanResponse
	if r := postJSON(t, c, tc.boot.AdminToken, "POST", "/v1/job/big/plan", structs.JobRegisterRequest{Job: job}, &plan); r.status != http.StatusOK {
		t.Fatalf("plan: %s", r)
	}
	if plan.FailedTGAllocs["web"] == nil || plan.JobVersion != 0 {
		t.Errorf("plan of an unplaceable job: %s", mustJSON(t, plan))
	}
	if after := stateIndex(s); after != before {
		t.Errorf("plan changed the state index from %d to %d", before, after)
	}
	addWorker(t, s, "large", 2000, 2048)
	waitFor(t, 10*time.Second, "the job placed on the new node", func() error {
		live := liveAllocs(s, "default", "big")
		if len(live) != 1 || live[0].NodeID != "large" {
			return fmt.Errorf("%d live", len(live))
		}
		return nil
	})
}

func TestJobPlanChangesNothing(t *testing.T) {
	tc := startJobCluster(t, 1)
	s := tc.leader(t)
	addWorker(t, s, "w0", 1000, 1024)
	c := newRawCaller(t, s.APIAddr(), tc.boot.CACertPEM, nil, true)
	before := stateIndex(s)
	var plan structs.JobPlanResponse
	if r := postJSON(t, c, tc.boot.AdminToken, "POST", "/v1/job/web/plan", structs.JobRegisterRequest{Job: jobSpec("web", "busybox:1", 3)}, &plan); r.status != http.StatusOK {
		t.Fatalf("plan: %s", r)
	}
	if g := plan.Groups["web"]; g == nil || g.Place != 3 {
		t.Errorf("plan: %s", mustJSON(t, plan))
	}
	if after := stateIndex(s); after != before {
		t.Errorf("plan changed the state index from %d to %d", before, after)
	}
	if r := c.call(t, "GET", "/v1/job/web", bearer(tc.boot.AdminToken), nil); r.status != http.StatusNotFound {
		t.Errorf("job after plan: %s", r)
	}
}

func TestJobBadInputs(t *testing.T) {
	tc := startJobCluster(t, 1)
	s := tc.leader(t)
	addWorker(t, s, "w0", 1000, 1024)
	c := newRawCaller(t, s.APIAddr(), tc.boot.CACertPEM, nil, true)
	tok := tc.boot.AdminToken
	postJSON(t, c, tok, "POST", "/v1/jobs", structs.JobRegisterRequest{Job: jobSpec("web", "busybox:1", 1)}, nil)
	waitFor(t, 10*time.Second, "job placed", func() error {
		if len(liveAllocs(s, "default", "web")) != 1 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	mod := func(f func(j *structs.Job)) []byte {
		j := jobSpec("bad", "busybox:1", 1)
		f(j)
		return mustJSON(t, structs.JobRegisterRequest{Job: j})
	}
	cases := []struct {
		name, method, path string
		body               []byte
		status             int
	}{
		{"no body", "POST", "/v1/jobs", nil, 400},
		{"no job", "POST", "/v1/jobs", []byte(`{}`), 400},
		{"unknown field", "POST", "/v1/jobs", []byte(`{"job":{"ID":"x"},"extra":1}`), 400},
		{"bad job ID", "POST", "/v1/jobs", mod(func(j *structs.Job) { j.ID = "Bad ID" }), 400},
		{"negative count", "POST", "/v1/jobs", mod(func(j *structs.Job) { j.Groups[0].Count = -1 }), 400},
		{"no image", "POST", "/v1/jobs", mod(func(j *structs.Job) { j.Groups[0].Tasks[0].Config.Image = "" }), 400},
		{"no groups", "POST", "/v1/jobs", mod(func(j *structs.Job) { j.Groups = nil }), 400},
		{"duplicate group", "POST", "/v1/jobs", mod(func(j *structs.Job) { j.Groups = append(j.Groups, j.Groups[0]) }), 400},
		{"bad type", "POST", "/v1/jobs", mod(func(j *structs.Job) { j.Type = "system" }), 400},
		{"privileged", "POST", "/v1/jobs", mod(func(j *structs.Job) { j.Groups[0].Tasks[0].Security.Privileged = true }), 403},
		{"missing namespace", "POST", "/v1/jobs?namespace=nope", mod(func(j *structs.Job) {}), 404},
		{"namespace mismatch", "POST", "/v1/jobs?namespace=default", mod(func(j *structs.Job) { j.Namespace = "other" }), 400},
		{"plan path mismatch", "POST", "/v1/job/other/plan", mod(func(j *structs.Job) {}), 400},
		{"revert missing version", "POST", "/v1/job/web/revert", []byte(`{"version":7}`), 404},
		{"revert to current", "POST", "/v1/job/web/revert", []byte(`{"version":0}`), 400},
		{"revert missing job", "POST", "/v1/job/nope/revert", []byte(`{"version":0}`), 404},
		{"stop missing job", "DELETE", "/v1/job/nope", nil, 404},
		{"bad purge", "DELETE", "/v1/job/web?purge=maybe", nil, 400},
		{"missing job", "GET", "/v1/job/nope", nil, 404},
		{"missing eval", "GET", "/v1/evaluation/" + uuid.NewString(), nil, 404},
		{"missing deployment", "GET", "/v1/deployment/" + uuid.NewString(), nil, 404},
	}
	for _, tc := range cases {
		before := stateIndex(s)
		r := c.call(t, tc.method, tc.path, bearer(tok), tc.body)
		wantError(t, tc.name, r, tc.status, "")
		if after := stateIndex(s); after != before {
			t.Errorf("%s: state index moved from %d to %d", tc.name, before, after)
		}
	}
}
