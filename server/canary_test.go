package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hivesec/hive/structs"
)

// canarySpec is jobSpec with one canary per update.
func canarySpec(image string, autoPromote, autoRevert bool) *structs.Job {
	j := jobSpec("web", image, 3)
	j.Update.Canary, j.Update.AutoPromote, j.Update.AutoRevert = 1, autoPromote, autoRevert
	return j
}

// canaryCluster runs web (3 × busybox:1, one canary per update) on three
// simulated workers until its first deployment succeeds.
func canaryCluster(t *testing.T, autoPromote, autoRevert bool) (*testCluster, *Server, *runner, *rawCaller) {
	tc := startJobCluster(t, 1)
	s := tc.leader(t)
	for i := range 3 {
		addWorker(t, s, fmt.Sprintf("w%d", i), 1000, 1024)
	}
	run := startRunner(t, s)
	c := newRawCaller(t, s.APIAddr(), tc.boot.CACertPEM, nil, true)
	if r := postJSON(t, c, tc.boot.AdminToken, "POST", "/v1/jobs", structs.JobRegisterRequest{Job: canarySpec("busybox:1", autoPromote, autoRevert)}, nil); r.status != http.StatusOK {
		t.Fatalf("register: %s", r)
	}
	waitDeployment(t, s, 0, structs.DeploymentSuccessful)
	return tc, s, run, c
}

// waitDeployment waits for the latest deployment of web to be of version v
// and in status.
func waitDeployment(t *testing.T, s *Server, v uint64, status string) *structs.Deployment {
	t.Helper()
	var d *structs.Deployment
	waitFor(t, 30*time.Second, fmt.Sprintf("deployment of version %d %s", v, status), func() error {
		d = s.fsm.State().Snapshot().LatestDeployment(nil, "default", "web")
		if d == nil || d.JobVersion != v || d.Status != status {
			return fmt.Errorf("deployment %+v", d)
		}
		return nil
	})
	return d
}

// byVersion counts web's live allocations per job version, and its canaries.
func byVersion(s *Server) (map[uint64]int, []*structs.Allocation) {
	out := map[uint64]int{}
	var canaries []*structs.Allocation
	for _, a := range liveAllocs(s, "default", "web") {
		out[a.JobVersion]++
		if a.Canary {
			canaries = append(canaries, a)
		}
	}
	return out, canaries
}

func TestCanaryPromote(t *testing.T) {
	tc, s, _, c := canaryCluster(t, false, false)
	tok := tc.boot.AdminToken
	wantError(t, "promote without canaries", c.call(t, "POST", "/v1/job/web/promote", bearer(tok), nil), http.StatusBadRequest, "")
	wantError(t, "promote a missing job", c.call(t, "POST", "/v1/job/nope/promote", bearer(tok), nil), http.StatusNotFound, "")

	var resp structs.JobRegisterResponse
	postJSON(t, c, tok, "POST", "/v1/jobs", structs.JobRegisterRequest{Job: canarySpec("busybox:2", false, false)}, &resp)
	if resp.JobVersion != 1 {
		t.Fatalf("job version %d after an image change, want 1", resp.JobVersion)
	}
	// One healthy canary beside the three allocations of version 0, and
	// the deployment says it waits.
	waitFor(t, 20*time.Second, "a healthy canary waiting for promotion", func() error {
		v, canaries := byVersion(s)
		d := s.fsm.State().Snapshot().LatestDeployment(nil, "default", "web")
		if v[0] != 3 || v[1] != 1 || len(canaries) != 1 || canaries[0].Healthy == nil || !*canaries[0].Healthy {
			return fmt.Errorf("live by version %v, %d canaries", v, len(canaries))
		}
		if st := d.Groups["web"]; d.JobVersion != 1 || st.DesiredCanaries != 1 || len(st.PlacedCanaries) != 1 || st.Promoted ||
			!strings.Contains(d.StatusDescription, "requires promotion") {
			return fmt.Errorf("deployment %s %q %+v", d.Status, d.StatusDescription, st)
		}
		return nil
	})
	// It goes no further on its own.
	time.Sleep(2 * time.Second)
	if v, _ := byVersion(s); v[0] != 3 || v[1] != 1 {
		t.Fatalf("moved on without promotion: live by version %v", v)
	}
	if d := s.fsm.State().Snapshot().LatestDeployment(nil, "default", "web"); d.Status != structs.DeploymentRunning {
		t.Fatalf("deployment %s before promotion", d.Status)
	}

	var presp structs.JobRegisterResponse
	if r := postJSON(t, c, tok, "POST", "/v1/job/web/promote", nil, &presp); r.status != http.StatusOK || presp.EvalID == "" {
		t.Fatalf("promote: %s", r)
	}
	maxUnhealthy := 0
	waitFor(t, 40*time.Second, "three allocations of version 1 and the deployment successful", func() error {
		v, _ := byVersion(s)
		unhealthy := 0
		for _, a := range liveAllocs(s, "default", "web") {
			if a.JobVersion == 1 && (a.Healthy == nil || !*a.Healthy) {
				unhealthy++
			}
		}
		maxUnhealthy = max(maxUnhealthy, unhealthy)
		d := s.fsm.State().Snapshot().LatestDeployment(nil, "default", "web")
		if v[1] != 3 || len(v) != 1 || d.Status != structs.DeploymentSuccessful {
			return fmt.Errorf("live by version %v; deployment %s", v, d.Status)
		}
		if !d.Groups["web"].Promoted {
			return fmt.Errorf("deployment not marked promoted: %+v", d.Groups["web"])
		}
		return nil
	})
	if maxUnhealthy > 1 {
		t.Errorf("saw %d new allocations not yet healthy at once; max_parallel is 1", maxUnhealthy)
	}
	wantError(t, "promote a finished deployment", c.call(t, "POST", "/v1/job/web/promote", bearer(tok), nil), http.StatusBadRequest, "")
}

func TestCanaryAutoPromote(t *testing.T) {
	tc, s, _, c := canaryCluster(t, true, false)
	postJSON(t, c, tc.boot.AdminToken, "POST", "/v1/jobs", structs.JobRegisterRequest{Job: canarySpec("busybox:2", true, false)}, nil)
	sawCanaryAlone := false
	waitFor(t, 40*time.Second, "three allocations of version 1 and the deployment successful", func() error {
		v, canaries := byVersion(s)
		if v[0] == 3 && v[1] == 1 && len(canaries) == 1 {
			sawCanaryAlone = true
		}
		d := s.fsm.State().Snapshot().LatestDeployment(nil, "default", "web")
		if v[1] != 3 || len(v) != 1 || d.JobVersion != 1 || d.Status != structs.DeploymentSuccessful {
			return fmt.Errorf("live by version %v; deployment %s", v, d.Status)
		}
		if st := d.Groups["web"]; !st.Promoted || st.DesiredCanaries != 1 || len(st.PlacedCanaries) != 1 {
			return fmt.Errorf("deployment group %+v", st)
		}
		return nil
	})
	if !sawCanaryAlone {
		t.Log("the canary phase passed between two looks (deployment state says it happened)")
	}
}

func TestCanaryFailureAutoReverts(t *testing.T) {
	tc, s, run, c := canaryCluster(t, false, true)
	run.mu.Lock()
	run.fail = func(a *structs.Allocation) bool { return a.Tasks[0].Config.Image == "busybox:bad" }
	run.mu.Unlock()
	postJSON(t, c, tc.boot.AdminToken, "POST", "/v1/jobs", structs.JobRegisterRequest{Job: canarySpec("busybox:bad", false, true)}, nil)
	d := waitDeployment(t, s, 1, structs.DeploymentFailed)
	if st := d.Groups["web"]; st.DesiredCanaries != 1 || st.Promoted {
		t.Fatalf("failed deployment group %+v", st)
	}
	waitFor(t, 20*time.Second, "the job reverted to busybox:1, the canary gone", func() error {
		j := s.fsm.State().Snapshot().Job(nil, "default", "web")
		live := liveAllocs(s, "default", "web")
		if j.Version != 2 || j.Groups[0].Tasks[0].Config.Image != "busybox:1" || len(live) != 3 {
			return fmt.Errorf("job version %d, %d live", j.Version, len(live))
		}
		for _, a := range live {
			if a.Tasks[0].Config.Image != "busybox:1" || a.Canary {
				return fmt.Errorf("allocation %s runs %s (canary %v)", a.ID, a.Tasks[0].Config.Image, a.Canary)
			}
		}
		return nil
	})
}
