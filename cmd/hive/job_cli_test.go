package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hivesec/hive/structs"
)

// Fixtures for the job commands.
var (
	yes, no = true, false

	fxJobV1 = &structs.Job{
		ID: "web", Name: "web", Namespace: "default", Type: structs.JobTypeService, Status: structs.JobStatusRunning,
		Version: 1, SubmitTime: t0,
		Groups: []*structs.TaskGroup{{Name: "web", Count: 3, Tasks: []*structs.Task{{
			Name: "main", Driver: "containerd", User: "1000",
			Config:    structs.TaskConfig{Image: "docker.io/hive/busybox:test", Command: "sh", Args: []string{"-c", "sleep 1000"}},
			Env:       map[string]string{"COLOR": "blue"},
			Resources: structs.Resources{CPU: 100, MemoryMB: 32},
		}}}},
	}
	fxJobV2 = func() *structs.Job {
		j := *fxJobV1
		g := *j.Groups[0]
		task := *g.Tasks[0]
		task.Env = map[string]string{"COLOR": "green", "NEW": "1"}
		task.Config.Image = "docker.io/hive/busybox:v2"
		g.Tasks = []*structs.Task{&task}
		g.Count = 4
		j.Groups = []*structs.TaskGroup{&g}
		j.Version, j.SubmitTime = 2, t0.Add(time.Hour)
		return &j
	}()
	fxBigJob = &structs.Job{
		ID: "big", Namespace: "default", Type: structs.JobTypeService, Status: structs.JobStatusPending,
		Groups: []*structs.TaskGroup{{Name: "huge", Count: 1, Tasks: []*structs.Task{{
			Name: "main", Config: structs.TaskConfig{Image: "x"}, Resources: structs.Resources{MemoryMB: 1 << 20},
		}}}},
	}
	fxBigFailure = map[string]*structs.AllocMetric{"huge": {
		NodesEvaluated: 2, NodesFiltered: 1, NodesExhausted: 1,
		ConstraintFiltered: map[string]int{"${attr.kernel.name} = windows": 1},
		DimensionExhausted: map[string]int{"memory": 1},
	}}
	fxDeployment = &structs.Deployment{
		ID: "dep-1", Namespace: "default", JobID: "web", JobVersion: 2, Status: structs.DeploymentRunning,
		Groups: map[string]*structs.DeploymentState{"web": {DesiredTotal: 4, PlacedAllocs: 1}},
	}
	fxJobAllocs = []*structs.Allocation{
		{ID: "a-old", Name: "web.web[0]", JobID: "web", Namespace: "default", NodeID: "n-2", JobVersion: 1,
			DesiredStatus: structs.AllocDesiredStop, ClientStatus: structs.AllocComplete, Healthy: &yes, CreateIndex: 10, CreateTime: t0},
		{ID: "a-new", Name: "web.web[0]", JobID: "web", Namespace: "default", NodeID: "n-5", JobVersion: 2, DeploymentID: "dep-1",
			DesiredStatus: structs.AllocDesiredRun, ClientStatus: structs.AllocRunning, CreateIndex: 20, CreateTime: t0.Add(time.Hour)},
		{ID: "a-bad", Name: "web.web[1]", JobID: "web", Namespace: "default", NodeID: "n-5", JobVersion: 2, DeploymentID: "dep-1",
			DesiredStatus: structs.AllocDesiredRun, ClientStatus: structs.AllocFailed, Healthy: &no, CreateIndex: 21, CreateTime: t0.Add(time.Hour)},
	}
	fxEvalDone = &structs.Evaluation{ID: "eval-1", Namespace: "default", JobID: "web", Type: structs.JobTypeService, Priority: 50,
		TriggeredBy: structs.EvalTriggerJobRegister, Status: structs.EvalStatusComplete, DeploymentID: "dep-1", CreateIndex: 15, ModifyIndex: 16,
		QueuedAllocations: map[string]int{"web": 0}, CreateTime: t0}
	fxEvalBlocked = &structs.Evaluation{ID: "eval-big", Namespace: "default", JobID: "big", Type: structs.JobTypeService,
		TriggeredBy: structs.EvalTriggerJobRegister, Status: structs.EvalStatusComplete, BlockedEval: "eval-big-2",
		FailedTGAllocs: fxBigFailure, QueuedAllocations: map[string]int{"huge": 1}, CreateIndex: 30, ModifyIndex: 31}
	fxEvalBlocked2 = &structs.Evaluation{ID: "eval-big-2", Namespace: "default", JobID: "big", Status: structs.EvalStatusBlocked,
		TriggeredBy: structs.EvalTriggerQueuedAllocs, PreviousEval: "eval-big", FailedTGAllocs: fxBigFailure, CreateIndex: 31}
	fxStubs = []structs.JobListStub{
		{ID: "web", Namespace: "default", Type: "service", Status: "running", Version: 2,
			Groups: map[string]*structs.GroupSummary{"web": {Desired: 4, Running: 1, Failed: 1, Complete: 1}}},
		{ID: "big", Namespace: "default", Type: "service", Status: "pending", Version: 0,
			Groups: map[string]*structs.GroupSummary{"huge": {Desired: 1}}, Blocked: fxBigFailure},
	}
)

// jobFile points the job parser at job for the test and returns a path,
// recording what the command passed to the parser.
func jobFile(t *testing.T, job *structs.Job, gotVars *map[string]string, gotFiles *[]string) string {
	t.Helper()
	old := parseJobFile
	t.Cleanup(func() { parseJobFile = old })
	path := filepath.Join(t.TempDir(), job.ID+".hcl")
	parseJobFile = func(p string, vars map[string]string, files []string) (*structs.Job, error) {
		if p != path {
			t.Errorf("parser called with %q, want %q", p, path)
		}
		if gotVars != nil {
			*gotVars = vars
		}
		if gotFiles != nil {
			*gotFiles = files
		}
		cp := *job
		return &cp, nil
	}
	return path
}

// serveJobs answers the job, evaluation and deployment routes. Evaluation
// eval-1 is pending on its first read; deployment dep-1 moves on a step at
// every read until it is successful; dep-fail fails.
func (f *fakeAPI) serveJobs(r *http.Request, body []byte, reply func(int, any)) bool {
	key := r.Method + " " + r.URL.Path
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[key]++
	n := f.calls[key]
	f.mu.Unlock()
	notFound := func(what string) { reply(404, structs.ErrorResponse{Error: what + " not found", Code: "not_found"}) }
	if ns := r.URL.Query().Get("namespace"); strings.HasPrefix(r.URL.Path, "/v1/job") && ns != "default" && ns != "web" {
		reply(400, structs.ErrorResponse{Error: "namespace query parameter missing or unknown: " + ns, Code: "bad_request"})
		return true
	}
	switch key {
	case "POST /v1/jobs":
		var req structs.JobRegisterRequest
		if err := json.Unmarshal(body, &req); err != nil || req.Job == nil {
			reply(400, structs.ErrorResponse{Error: "bad job", Code: "bad_request"})
			return true
		}
		switch req.Job.ID {
		case "big":
			reply(200, structs.JobRegisterResponse{EvalID: "eval-big", JobVersion: 0})
		case "failing":
			reply(200, structs.JobRegisterResponse{EvalID: "eval-fail", JobVersion: 7})
		case "batchy":
			reply(200, structs.JobRegisterResponse{EvalID: "eval-batch", JobVersion: 0})
		default:
			reply(200, structs.JobRegisterResponse{EvalID: "eval-1", JobVersion: 2, Warnings: []string{"group web: no update block; using max_parallel 1"}})
		}
	case "POST /v1/job/web/plan":
		reply(200, structs.JobPlanResponse{JobVersion: 2, Groups: map[string]*structs.GroupPlan{"web": {Place: 1, Destructive: 3}}})
	case "POST /v1/job/big/plan":
		reply(200, structs.JobPlanResponse{JobVersion: 0, Groups: map[string]*structs.GroupPlan{"huge": {Place: 1}}, FailedTGAllocs: fxBigFailure})
	case "GET /v1/evaluation/eval-1":
		if n == 1 {
			ev := *fxEvalDone
			ev.Status, ev.DeploymentID = structs.EvalStatusPending, ""
			reply(200, &ev)
			return true
		}
		reply(200, fxEvalDone)
	case "GET /v1/evaluation/eval-big":
		reply(200, fxEvalBlocked)
	case "GET /v1/evaluation/eval-fail":
		reply(200, &structs.Evaluation{ID: "eval-fail", JobID: "failing", Status: structs.EvalStatusComplete, DeploymentID: "dep-fail", CreateIndex: 40})
	case "GET /v1/evaluation/eval-batch":
		reply(200, &structs.Evaluation{ID: "eval-batch", JobID: "batchy", Status: structs.EvalStatusComplete, CreateIndex: 50})
	case "GET /v1/deployment/dep-1":
		d := *fxDeployment
		s := *d.Groups["web"]
		s.PlacedAllocs = min(n, 4)
		s.HealthyAllocs = min(n-1, 4)
		if s.HealthyAllocs == 4 {
			d.Status, d.StatusDescription = structs.DeploymentSuccessful, "deployment completed successfully"
		}
		d.Groups = map[string]*structs.DeploymentState{"web": &s}
		reply(200, &d)
	case "GET /v1/deployment/dep-fail":
		reply(200, &structs.Deployment{ID: "dep-fail", JobID: "failing", JobVersion: 7, Status: structs.DeploymentFailed,
			StatusDescription: "failed due to unhealthy allocations; rolled back to job version 6",
			Groups:            map[string]*structs.DeploymentState{"app": {DesiredTotal: 2, PlacedAllocs: 1, UnhealthyAllocs: 1}}})
	case "GET /v1/job/web/evaluations":
		reply(200, []*structs.Evaluation{fxEvalDone})
	case "GET /v1/job/failing/evaluations", "GET /v1/job/batchy/evaluations":
		reply(200, []*structs.Evaluation{})
	case "GET /v1/job/big/evaluations":
		reply(200, []*structs.Evaluation{fxEvalBlocked, fxEvalBlocked2})
	case "GET /v1/jobs":
		reply(200, fxStubs)
	case "GET /v1/job/web":
		reply(200, fxJobV2)
	case "GET /v1/job/big":
		reply(200, fxBigJob)
	case "GET /v1/job/batchy":
		reply(200, &structs.Job{ID: "batchy", Type: structs.JobTypeBatch})
	case "GET /v1/job/web/versions":
		reply(200, []*structs.Job{fxJobV2, fxJobV1})
	case "GET /v1/job/big/versions":
		reply(200, []*structs.Job{fxBigJob})
	case "GET /v1/job/web/deployment":
		reply(200, fxDeployment)
	case "GET /v1/job/big/deployment", "GET /v1/job/batchy/deployment":
		notFound("deployment")
	case "GET /v1/job/web/allocations":
		reply(200, fxJobAllocs)
	case "GET /v1/job/big/allocations":
		reply(200, []*structs.Allocation{})
	case "GET /v1/job/batchy/allocations":
		reply(200, []*structs.Allocation{{ID: "b1", JobID: "batchy", DesiredStatus: structs.AllocDesiredRun}})
	case "DELETE /v1/job/web":
		reply(200, structs.JobRegisterResponse{EvalID: "eval-stop", JobVersion: 2})
	case "POST /v1/job/web/revert":
		var req structs.JobRevertRequest
		_ = json.Unmarshal(body, &req)
		if req.Version != 1 {
			reply(400, structs.ErrorResponse{Error: "job web has no version 9", Code: "bad_request"})
			return true
		}
		reply(200, structs.JobRegisterResponse{EvalID: "eval-1", JobVersion: 2})
	case "GET /v1/job/nope", "GET /v1/evaluation/nope":
		notFound(strings.TrimPrefix(r.URL.Path, "/v1/"))
	default:
		return false
	}
	return true
}

// requestsWith returns the "METHOD /path?query" of every request to path.
func (f *fakeAPI) requestsWith(path string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for i, r := range f.requests {
		if strings.HasSuffix(r, " "+path) {
			out = append(out, r+"?"+f.queries[i])
		}
	}
	return out
}

func TestJobRunFollowsDeployment(t *testing.T) {
	f := env(t)
	var vars map[string]string
	var files []string
	path := jobFile(t, fxJobV2, &vars, &files)
	out, errs := mustRun(t, "job", "run", "-var", "image=docker.io/hive/busybox:v2", "-var=count=4", "--var", "x=a=b", "-var-file", "prod.vars", path)
	if want := map[string]string{"image": "docker.io/hive/busybox:v2", "count": "4", "x": "a=b"}; !reflect.DeepEqual(vars, want) {
		t.Errorf("vars %v, want %v", vars, want)
	}
	if !reflect.DeepEqual(files, []string{"prod.vars"}) {
		t.Errorf("var files %v", files)
	}
	if errs != "" {
		t.Errorf("stderr %q", errs)
	}
	for _, want := range []string{
		`==> Job "web" submitted as version 2; evaluation eval-1`,
		"Warning: group web: no update block",
		"==> Evaluation eval-1 complete (triggered by job-register)",
		"==> Monitoring deployment dep-1 (job version 2)",
		"running    web: desired 4 placed 1 healthy 0 unhealthy 0",
		"running    web: desired 4 placed 3 healthy 2 unhealthy 0",
		"successful web: desired 4 placed 4 healthy 4 unhealthy 0",
		"==> Deployment dep-1 successful: deployment completed successfully",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The job went up as parsed; progress came from blocking queries.
	_, _, _ = f.last()
	var sent structs.JobRegisterRequest
	for i, r := range f.requests {
		if r == "POST /v1/jobs" {
			if err := json.Unmarshal([]byte(f.bodies[i]), &sent); err != nil {
				t.Fatal(err)
			}
			if f.queries[i] != "namespace=default" {
				t.Errorf("register query %q", f.queries[i])
			}
		}
	}
	if sent.Job == nil || sent.Job.ID != "web" || sent.Job.Groups[0].Tasks[0].Config.Image != "docker.io/hive/busybox:v2" {
		t.Errorf("sent %+v", sent.Job)
	}
	evals := f.requestsWith("/v1/evaluation/eval-1")
	if len(evals) != 2 || evals[0] != "GET /v1/evaluation/eval-1?" || !strings.Contains(evals[1], "index=99") || !strings.Contains(evals[1], "wait=5s") {
		t.Errorf("evaluation reads %q: want a plain read, then a blocking one", evals)
	}
	deps := f.requestsWith("/v1/deployment/dep-1")
	if len(deps) < 3 || !strings.Contains(deps[2], "index=99") {
		t.Errorf("deployment reads %q: want blocking queries", deps)
	}

	// -o json: the progress goes to stderr, the final state to stdout.
	out, errs = mustRun(t, "job", "run", path, "-o", "json")
	var res jobRunOutput
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("JSON %v:\n%s", err, out)
	}
	if res.JobID != "web" || res.EvalID != "eval-1" || res.JobVersion != 2 || res.Evaluation == nil || res.Deployment == nil ||
		res.Deployment.Status != structs.DeploymentSuccessful || res.Error != "" {
		t.Errorf("JSON result %+v", res)
	}
	if !strings.Contains(errs, "Monitoring deployment dep-1") {
		t.Errorf("progress not on stderr: %q", errs)
	}
}

func TestJobRunDetachAndBatch(t *testing.T) {
	f := env(t)
	path := jobFile(t, fxJobV2, nil, nil)
	before := f.count()
	out, _ := mustRun(t, "job", "run", "-detach", "-o", "json", path)
	var res jobRunOutput
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.EvalID != "eval-1" || res.Evaluation != nil {
		t.Errorf("JSON %+v %v", res, err)
	}
	if n := f.count() - before; n != 1 {
		t.Errorf("--detach made %d requests, want only the submission", n)
	}

	path = jobFile(t, &structs.Job{ID: "batchy", Type: structs.JobTypeBatch}, nil, nil)
	out, _ = mustRun(t, "job", "run", path)
	if !strings.Contains(out, "No deployment for version 0") || !strings.Contains(out, "1 allocation(s) of it are placed") {
		t.Errorf("batch job:\n%s", out)
	}
}

func TestJobRunFailures(t *testing.T) {
	env(t)
	// The deployment fails: exit 1 with its description.
	path := jobFile(t, &structs.Job{ID: "failing", Type: structs.JobTypeService}, nil, nil)
	out, errs, code := hive(t, "job", "run", path)
	if code != 1 || !strings.Contains(errs, "Error: deployment dep-fail failed: failed due to unhealthy allocations; rolled back to job version 6") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	if !strings.Contains(out, "failed     app: desired 2 placed 1 healthy 0 unhealthy 1") {
		t.Errorf("progress:\n%s", out)
	}

	// Placement is blocked: exit 1 with the scheduler's reasons.
	path = jobFile(t, fxBigJob, nil, nil)
	out, errs, code = hive(t, "job", "run", path)
	if code != 1 || !strings.Contains(errs, `Error: placement blocked: group "huge": 2 node(s) evaluated: 1 filtered out, 1 without enough free resources, constraint "${attr.kernel.name} = windows" filtered 1 node(s), memory exhausted on 1 node(s)`) {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{`Group "huge": 1 allocation(s) cannot be placed`, "* memory exhausted on 1 node(s)", "Evaluation eval-big-2 waits for capacity"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// With -o json the JSON is still printed, with the error in it.
	out, _, code = hive(t, "job", "run", path, "-o", "json")
	var res jobRunOutput
	if err := json.Unmarshal([]byte(out), &res); code != 1 || err != nil || !strings.HasPrefix(res.Error, "placement blocked") || res.Evaluation == nil {
		t.Errorf("exit %d, JSON %+v %v", code, res, err)
	}

	// Usage and parse errors.
	_, errs, code = hive(t, "job", "run")
	if code != 1 || !strings.Contains(errs, "job run takes FILE, got 0 argument(s)") {
		t.Errorf("no file: exit %d %q", code, errs)
	}
	_, errs, code = hive(t, "job", "run", path, "-var", "novalue")
	if code != 1 || !strings.Contains(errs, `invalid -var "novalue": use KEY=VALUE`) {
		t.Errorf("bad var: exit %d %q", code, errs)
	}
	_, errs, code = hive(t, "job", "run", path, "--bogus")
	if code != 1 || !strings.Contains(errs, "unknown flag: --bogus") {
		t.Errorf("unknown flag: exit %d %q", code, errs)
	}
	out, _, code = hive(t, "job", "run", "-h")
	if code != 0 || !strings.Contains(out, "--var-file") || !strings.Contains(out, "--detach") {
		t.Errorf("help: exit %d\n%s", code, out)
	}
	parseJobFile = func(string, map[string]string, []string) (*structs.Job, error) {
		return nil, &os.PathError{Op: "open", Path: "web.hcl:3,5-9", Err: os.ErrInvalid}
	}
	_, errs, code = hive(t, "job", "run", "web.hcl")
	if code != 1 || !strings.Contains(errs, "web.hcl:3,5-9") {
		t.Errorf("parse error: exit %d %q", code, errs)
	}
}

func TestJobPlan(t *testing.T) {
	f := env(t)
	path := jobFile(t, fxJobV2, nil, nil)
	out, _ := mustRun(t, "job", "plan", path)
	if req, _, _ := f.last(); req != "POST /v1/job/web/plan" {
		t.Errorf("request %q", req)
	}
	checkAligned(t, strings.Join(lines(out)[2:4], "\n"), []string{"GROUP", "PLACE", "IN-PLACE", "DESTRUCTIVE", "STOP", "UNCHANGED"})
	for _, want := range []string{`Job "web" (namespace default) would become version 2`, "All allocations can be placed."} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if got := strings.Fields(lines(out)[3]); !reflect.DeepEqual(got, []string{"web", "1", "0", "3", "0", "0"}) {
		t.Errorf("row %q", got)
	}

	path = jobFile(t, fxBigJob, nil, nil)
	out, errs, code := hive(t, "job", "plan", path)
	if code != 1 || !strings.Contains(errs, "could not place every allocation") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{
		"Placement failures",
		`Group "huge": 1 allocation(s) cannot be placed`,
		"* 2 node(s) evaluated: 1 filtered out, 1 without enough free resources",
		`* constraint "${attr.kernel.name} = windows" filtered 1 node(s)`,
		"* memory exhausted on 1 node(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	out, _, code = hive(t, "job", "plan", path, "-o", "json")
	var p structs.JobPlanResponse
	if err := json.Unmarshal([]byte(out), &p); code != 1 || err != nil || !reflect.DeepEqual(p.FailedTGAllocs, fxBigFailure) {
		t.Errorf("exit %d JSON %+v %v", code, p, err)
	}
}

func TestJobStatus(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "job", "status")
	checkAligned(t, strings.Join(lines(out)[:3], "\n"), []string{"ID", "TYPE", "STATUS", "VERSION", "RUNNING", "DESIRED", "BLOCKED"})
	if got := strings.Fields(lines(out)[1]); !reflect.DeepEqual(got, []string{"big", "service", "pending", "0", "0", "1", "yes"}) {
		t.Errorf("row %q", got)
	}
	if !strings.Contains(out, `big: group "huge": 2 node(s) evaluated`) {
		t.Errorf("list lacks the blocked reason:\n%s", out)
	}
	mustRun(t, "job", "status", "-n", "web")
	if q := f.queries[len(f.queries)-1]; q != "namespace=web" {
		t.Errorf("namespace query %q", q)
	}
	out, _ = mustRun(t, "job", "status", "-o", "json")
	var stubs []structs.JobListStub
	if err := json.Unmarshal([]byte(out), &stubs); err != nil || !reflect.DeepEqual(stubs, fxStubs) {
		t.Errorf("JSON %v", err)
	}

	out, _ = mustRun(t, "job", "status", "web")
	for _, want := range []string{
		"ID          web",
		"Version     2",
		"2         2030-01-02T04:04:05Z   false   group web: count 3 → 4 (+3 more)",
		"Latest deployment dep-1 (job version 2): running",
		"a-bad   web.web[1]   n-5    2         run       failed     unhealthy",
		"a-old   web.web[0]   n-2    1         stop      complete   healthy",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "a-bad") > strings.Index(out, "a-old") {
		t.Errorf("newest allocations first:\n%s", out)
	}
	if strings.Contains(out, "Placement blocked") {
		t.Errorf("web is not blocked:\n%s", out)
	}

	out, _ = mustRun(t, "job", "status", "big")
	for _, want := range []string{"No deployment.", "Placement blocked", `Group "huge": 1 allocation(s) cannot be placed`, "memory exhausted on 1 node(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("status of big lacks %q:\n%s", want, out)
		}
	}
	out, _ = mustRun(t, "job", "status", "big", "-o", "json")
	var st jobStatusOutput
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Job.ID != "big" || st.Deployment != nil || !reflect.DeepEqual(st.Blocked, fxBigFailure) || st.Allocations == nil {
		t.Errorf("JSON %+v %v", st, err)
	}

	_, errs, code := hive(t, "job", "status", "nope")
	if code != 1 || !strings.Contains(errs, "reading job nope: job/nope not found (HTTP 404)") {
		t.Errorf("exit %d %q", code, errs)
	}
	_, errs, code = hive(t, "job", "status", "a", "b")
	if code != 1 || !strings.Contains(errs, "at most one JOB") {
		t.Errorf("exit %d %q", code, errs)
	}
}

func TestJobStopHistoryRevert(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "job", "stop", "web")
	if r := f.requestsWith("/v1/job/web"); len(r) != 1 || r[0] != "DELETE /v1/job/web?namespace=default" {
		t.Errorf("requests %q", r)
	}
	if !strings.Contains(out, `Stopping job "web"; evaluation eval-stop`) {
		t.Errorf("stop: %q", out)
	}
	out, _ = mustRun(t, "job", "stop", "web", "--purge", "-o", "json")
	if r := f.requestsWith("/v1/job/web"); r[1] != "DELETE /v1/job/web?namespace=default&purge=true" {
		t.Errorf("requests %q", r)
	}
	var resp structs.JobRegisterResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.EvalID != "eval-stop" {
		t.Errorf("JSON %+v %v", resp, err)
	}

	out, _ = mustRun(t, "job", "history", "web")
	for _, want := range []string{
		"Version     2",
		"group web: count 3 → 4",
		"task web.main: image docker.io/hive/busybox:test → docker.io/hive/busybox:v2",
		`task web.main: env COLOR "blue" → "green"`,
		`task web.main: env NEW="1" added`,
		"Version     1",
		"(first version kept)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("history lacks %q:\n%s", want, out)
		}
	}
	out, _ = mustRun(t, "job", "history", "web", "-o", "json")
	var versions []*structs.Job
	if err := json.Unmarshal([]byte(out), &versions); err != nil || len(versions) != 2 || versions[0].Version != 2 {
		t.Errorf("JSON %v", err)
	}

	out, _ = mustRun(t, "job", "revert", "web", "1")
	var body string
	for i, r := range f.requests {
		if r == "POST /v1/job/web/revert" {
			body = f.bodies[i]
		}
	}
	if body != `{"version":1}` {
		t.Errorf("revert body %q", body)
	}
	if !strings.Contains(out, `Job "web" reverted to version 1 as version 2`) || !strings.Contains(out, "Deployment dep-1 successful") {
		t.Errorf("revert:\n%s", out)
	}
	_, errs, code := hive(t, "job", "revert", "web", "9")
	if code != 1 || !strings.Contains(errs, "reverting job web to version 9: job web has no version 9 (HTTP 400)") {
		t.Errorf("exit %d %q", code, errs)
	}
	_, errs, code = hive(t, "job", "revert", "web", "v1")
	if code != 1 || !strings.Contains(errs, `invalid VERSION "v1"`) {
		t.Errorf("exit %d %q", code, errs)
	}
}

func TestEvalStatus(t *testing.T) {
	env(t)
	out, _ := mustRun(t, "eval", "status", "eval-big")
	for _, want := range []string{
		"ID              eval-big",
		"Status          complete",
		"Blocked Eval    eval-big-2",
		"huge    1",
		`Group "huge": 1 allocation(s) cannot be placed`,
		`* constraint "${attr.kernel.name} = windows" filtered 1 node(s)`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("eval status lacks %q:\n%s", want, out)
		}
	}
	out, _ = mustRun(t, "eval", "status", "eval-big", "-o", "json")
	var ev structs.Evaluation
	if err := json.Unmarshal([]byte(out), &ev); err != nil || !reflect.DeepEqual(&ev, fxEvalBlocked) {
		t.Errorf("JSON %+v %v", ev, err)
	}
	_, errs, code := hive(t, "eval", "status", "nope")
	if code != 1 || !strings.Contains(errs, "reading evaluation nope: evaluation/nope not found (HTTP 404)") {
		t.Errorf("exit %d %q", code, errs)
	}
}

func TestMetricLinesNoNodes(t *testing.T) {
	got := metricLines(&structs.AllocMetric{})
	if len(got) != 1 || !strings.Contains(got[0], "no worker node was eligible") {
		t.Errorf("%q", got)
	}
	// Ties sort by name; larger counts first.
	got = metricLines(&structs.AllocMetric{NodesEvaluated: 5, NodesFiltered: 5,
		ConstraintFiltered: map[string]int{"b": 2, "a": 2, "c": 3}})
	if !reflect.DeepEqual(got[1:], []string{`constraint "c" filtered 3 node(s)`, `constraint "a" filtered 2 node(s)`, `constraint "b" filtered 2 node(s)`}) {
		t.Errorf("%q", got)
	}
}

func TestNomadFlags(t *testing.T) {
	got := nomadFlags([]string{"-var", "a=1", "-var=b=2", "-var-file", "f", "-detach", "-o", "json", "--", "-var"})
	want := []string{"--var", "a=1", "--var=b=2", "--var-file", "f", "--detach", "-o", "json", "--", "-var"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%q, want %q", got, want)
	}
}

func TestAllocStatusJobFields(t *testing.T) {
	env(t)
	a := *fxAllocRunning
	a.JobID, a.Name, a.JobVersion, a.DeploymentID, a.Healthy = "web", "web.web[0]", 2, "dep-1", &yes
	a.EvalID, a.PreviousAllocation, a.DesiredDescription = "eval-1", "a-old", "alloc is being updated"
	var b strings.Builder
	if err := printAllocStatus(&b, &a); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Job           web", "Name          web.web[0]", "Version       2", "Deployment    dep-1",
		"Health        healthy", "Replaces      a-old", "Replaced By   -", "Reason        alloc is being updated"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("alloc status lacks %q:\n%s", want, b.String())
		}
	}
}

// TestJobPlanRealParser runs the real jobspec parser: -var reaches the job
// that is sent.
func TestJobPlanRealParser(t *testing.T) {
	f := env(t)
	path := filepath.Join(t.TempDir(), "web.hcl")
	src := `variable "image" {
  type    = string
  default = "docker.io/hive/busybox:test"
}

job "web" {
  group "web" {
    count = 2
    task "main" {
      driver = "containerd"
      config {
        image = var.image
      }
    }
  }
}
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "job", "plan", "-var", "image=docker.io/hive/busybox:v2", path)
	_, _, body := f.last()
	var req structs.JobRegisterRequest
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	if req.Job == nil || req.Job.ID != "web" || req.Job.Namespace != "default" || req.Job.Groups[0].Tasks[0].Config.Image != "docker.io/hive/busybox:v2" {
		t.Errorf("sent %+v", req.Job)
	}
	// A parse error carries file:line:col.
	if err := os.WriteFile(path, []byte("job \"web\" {\n  grup \"x\" {}\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errs, code := hive(t, "job", "plan", path)
	if code != 1 || !strings.Contains(errs, path+":2:") {
		t.Errorf("exit %d, stderr %q: want %s:2:col", code, errs, path)
	}
}
