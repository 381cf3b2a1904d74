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

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

// Fixtures for the worker commands: allocations, images, eligibility.
var (
	fxAllocRunning = &structs.Allocation{
		ID: "6f1e2d3c-0000-4000-8000-000000000001", Namespace: "default", NodeID: "n-2", Group: "default",
		Tasks:         []*structs.Task{{Name: "main", Driver: "containerd", Config: structs.TaskConfig{Image: "docker.io/hive/busybox:test"}}},
		DesiredStatus: structs.AllocDesiredRun, ClientStatus: structs.AllocRunning,
		TaskStates: map[string]*structs.TaskState{"main": {
			State: structs.TaskRunning, StartedAt: t0, ImageDigest: "sha256:1111",
		}},
		CreateTime: t0, ModifyTime: t0, CreateIndex: 10, ModifyIndex: 12,
	}
	fxAllocFailed = &structs.Allocation{
		ID: "6f1e9999-0000-4000-8000-000000000002", Namespace: "web", NodeID: "n-2", Group: "default",
		Tasks:         []*structs.Task{{Name: "app", Config: structs.TaskConfig{Image: "nope:latest"}}},
		DesiredStatus: structs.AllocDesiredRun, ClientStatus: structs.AllocFailed, ClientDescription: "task app failed",
		TaskStates: map[string]*structs.TaskState{"app": {
			State: structs.TaskDead, Failed: true, ExitCode: 0, LastError: `image "nope:latest": not found`,
			FinishedAt: t0.Add(time.Second),
		}},
		CreateTime: t0.Add(time.Minute), ModifyTime: t0.Add(time.Minute),
	}
	fxImages = []structs.ImageInfo{
		{Name: "docker.io/hive/busybox:test", Digest: "sha256:aaaa", Size: 1024 * 1024 * 3 / 2},
		{Name: "docker.io/library/alpine:3", Digest: "sha256:bbbb", Size: 512},
	}
	fxNodeImages = []structs.NodeImages{
		{NodeID: "n-2", Images: fxImages},
		{NodeID: "n-5", Error: "cannot reach worker n-5: connection refused"},
	}
)

// serveWorker answers the allocation, image and eligibility routes.
func (f *fakeAPI) serveWorker(w http.ResponseWriter, r *http.Request, body []byte, reply func(int, any)) bool {
	allocs := map[string]*structs.Allocation{fxAllocRunning.ID: fxAllocRunning, fxAllocFailed.ID: fxAllocFailed}
	path := r.URL.Path
	switch {
	case r.Method == "POST" && path == "/v1/allocations":
		var req structs.AllocCreateRequest
		if err := json.Unmarshal(body, &req); err != nil {
			reply(400, structs.ErrorResponse{Error: err.Error(), Code: "bad_request"})
			return true
		}
		for _, t := range req.Tasks {
			if t.Resources.MemoryMB != 0 && t.Resources.MemoryMB < structs.MinMemoryMB {
				reply(400, structs.ErrorResponse{Error: "task \"main\": memory 2 MiB is below the minimum of 4 MiB", Code: "bad_request"})
				return true
			}
		}
		reply(200, &structs.Allocation{ID: "new-alloc-id", Namespace: req.Namespace, NodeID: req.NodeID, Tasks: req.Tasks, ClientStatus: structs.AllocPending})
	case r.Method == "GET" && path == "/v1/allocations":
		list := []*structs.Allocation{fxAllocFailed, fxAllocRunning}
		if ns := r.URL.Query().Get("namespace"); ns != "" {
			list = nil
			for _, a := range []*structs.Allocation{fxAllocFailed, fxAllocRunning} {
				if a.Namespace == ns {
					list = append(list, a)
				}
			}
		}
		reply(200, list)
	case r.Method == "GET" && strings.HasPrefix(path, "/v1/allocation/") && strings.HasSuffix(path, "/logs"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/v1/allocation/"), "/logs")
		if allocs[id] == nil {
			reply(404, structs.ErrorResponse{Error: "allocation not found", Code: "not_found"})
			return true
		}
		w.Header().Set("Content-Type", "text/plain")
		q := r.URL.Query()
		_, _ = w.Write([]byte(q.Get("stream") + " of " + q.Get("task") + " tail=" + q.Get("tail") + " follow=" + q.Get("follow") + "\nhello from hive\n"))
	case r.Method == "POST" && strings.HasPrefix(path, "/v1/allocation/") && strings.HasSuffix(path, "/stop"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/v1/allocation/"), "/stop")
		a := allocs[id]
		if a == nil {
			reply(404, structs.ErrorResponse{Error: "allocation not found", Code: "not_found"})
			return true
		}
		stopped := *a
		stopped.DesiredStatus = structs.AllocDesiredStop
		reply(200, &stopped)
	case r.Method == "GET" && strings.HasPrefix(path, "/v1/allocation/"):
		a := allocs[strings.TrimPrefix(path, "/v1/allocation/")]
		if a == nil {
			reply(404, structs.ErrorResponse{Error: "allocation \"" + strings.TrimPrefix(path, "/v1/allocation/") + "\" not found; list them with `hive alloc ls`", Code: "not_found"})
			return true
		}
		reply(200, a)
	case r.Method == "POST" && (path == "/v1/node/n-2/drain" || path == "/v1/node/n-2/cordon" || path == "/v1/node/n-2/uncordon"):
		n := fxNodes[0]
		n.Draining = strings.HasSuffix(path, "/drain")
		n.Cordoned = n.Draining || strings.HasSuffix(path, "/cordon")
		reply(200, n)
	case r.Method == "POST" && path == "/v1/node/n-1/drain":
		reply(400, structs.ErrorResponse{Error: "node n-1 is a manager; only workers run allocations", Code: "bad_request"})
	case r.Method == "GET" && path == "/v1/images":
		reply(200, fxNodeImages)
	case r.Method == "GET" && path == "/v1/node/n-2/images":
		reply(200, fxImages)
	case r.Method == "POST" && (path == "/v1/node/n-2/images" || path == "/v1/node/n-3/images"):
		if r.Header.Get("Content-Type") != "application/x-tar" {
			reply(415, structs.ErrorResponse{Error: "want a tar", Code: "bad_request"})
			return true
		}
		if strings.HasPrefix(string(body), "bad") || path == "/v1/node/n-3/images" {
			reply(400, structs.ErrorResponse{Error: "bad image archive: no index.json or manifest.json", Code: "bad_request"})
			return true
		}
		reply(200, fxImages[:1])
	default:
		return false
	}
	return true
}

func TestAllocRun(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "alloc", "run", "--node", "n-2", "--image", "docker.io/hive/busybox:test",
		"--user", "1000", "--read-only-rootfs", "--memory", "64", "--cpu", "200", "--cap-add", "NET_BIND_SERVICE",
		"--env", "A=1", "--env", "B=x=y", "--name", "web", "--", "sh", "-c", "echo hi; sleep 1")
	if out != "new-alloc-id\n" {
		t.Errorf("stdout %q, want only the ID", out)
	}
	req, _, body := f.last()
	if req != "POST /v1/allocations" {
		t.Fatalf("request %q", req)
	}
	var sent structs.AllocCreateRequest
	if err := json.Unmarshal([]byte(body), &sent); err != nil {
		t.Fatal(err)
	}
	want := structs.AllocCreateRequest{Namespace: "default", NodeID: "n-2", Tasks: []*structs.Task{{
		Name: "web", Driver: "containerd",
		Config:    structs.TaskConfig{Image: "docker.io/hive/busybox:test", Command: "sh", Args: []string{"-c", "echo hi; sleep 1"}},
		Env:       map[string]string{"A": "1", "B": "x=y"},
		User:      "1000",
		Resources: structs.Resources{CPU: 200, MemoryMB: 64},
		Security:  structs.SecurityContext{ReadOnlyRootfs: true, CapAdd: []string{"NET_BIND_SERVICE"}},
	}}}
	if !reflect.DeepEqual(sent, want) {
		t.Errorf("sent\n%+v\nwant\n%+v", *sent.Tasks[0], *want.Tasks[0])
	}

	// Restart flags start from the defaults; privileged and -n pass through.
	mustRun(t, "alloc", "run", "--node", "n-2", "-n", "web", "--image", "x", "--privileged", "--restart-attempts", "0", "--restart-delay", "1s")
	_, _, body = f.last()
	sent = structs.AllocCreateRequest{}
	if err := json.Unmarshal([]byte(body), &sent); err != nil {
		t.Fatal(err)
	}
	wantRestart := structs.DefaultRestartPolicy()
	wantRestart.Attempts, wantRestart.Delay = 0, time.Second
	if tk := sent.Tasks[0]; sent.Namespace != "web" || !tk.Security.Privileged || tk.Restart != wantRestart || tk.Config.Command != "" {
		t.Errorf("sent %+v task %+v", sent, *tk)
	}

	out, _ = mustRun(t, "alloc", "run", "--node", "n-2", "--image", "x", "-o", "json")
	var a structs.Allocation
	if err := json.Unmarshal([]byte(out), &a); err != nil || a.ID != "new-alloc-id" {
		t.Errorf("JSON %q %v", out, err)
	}

	// The server's refusal comes back as the error, exit 1.
	_, errs, code := hive(t, "alloc", "run", "--node", "n-2", "--image", "x", "--memory", "2")
	if code != 1 || !strings.Contains(errs, "placing allocation on node n-2: task \"main\": memory 2 MiB is below the minimum of 4 MiB (HTTP 400)") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

func TestAllocListStatusStopLogs(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "alloc", "ls")
	checkAligned(t, out, []string{"ID", "NODE", "NAMESPACE", "TASKS", "DESIRED", "STATUS", "CREATED"})
	ls := lines(out)
	if len(ls) != 3 || !strings.HasPrefix(ls[1], fxAllocRunning.ID) || !strings.Contains(ls[2], "failed") {
		t.Errorf("want the older allocation first:\n%s", out)
	}
	mustRun(t, "alloc", "ls", "--node", "n-2", "-n", "web")
	f.mu.Lock()
	q := f.queries[len(f.queries)-1]
	f.mu.Unlock()
	if q != "namespace=web&node=n-2" {
		t.Errorf("filters sent as %q", q)
	}
	out, _ = mustRun(t, "alloc", "ls", "-o", "json")
	var list []*structs.Allocation
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 || !reflect.DeepEqual(list[1], fxAllocRunning) {
		t.Errorf("JSON %v %s", err, out)
	}

	out, _ = mustRun(t, "alloc", "status", fxAllocRunning.ID)
	for _, want := range []string{"Status        running", "Desired       run", "main   running", "2030-01-02T03:04:05Z", "docker.io/hive/busybox:test (sha256:1111)"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	// A unique prefix works; the failed task's exit code and error show.
	out, _ = mustRun(t, "alloc", "status", "6f1e99")
	for _, want := range []string{"Status        failed", "app    dead    true", `app: image "nope:latest": not found`, "Last errors"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if row := lines(out); !strings.Contains(strings.Join(row, "\n"), "0           -         2030-01-02T03:04:06Z") {
		t.Errorf("exit code 0 and finish time expected:\n%s", out)
	}
	_, errs, code := hive(t, "alloc", "status", "6f1e")
	if code != 1 || !strings.Contains(errs, `"6f1e" matches 2 allocations`) {
		t.Errorf("ambiguous prefix: exit %d %q", code, errs)
	}
	_, errs, code = hive(t, "alloc", "status", "zzzz")
	if code != 1 || !strings.Contains(errs, `allocation "zzzz" not found`) {
		t.Errorf("unknown: exit %d %q", code, errs)
	}
	out, _ = mustRun(t, "alloc", "status", fxAllocFailed.ID, "-o", "json")
	var got structs.Allocation
	if err := json.Unmarshal([]byte(out), &got); err != nil || !reflect.DeepEqual(&got, fxAllocFailed) {
		t.Errorf("JSON %v %s", err, out)
	}

	out, _ = mustRun(t, "alloc", "stop", "6f1e2")
	if req, _, _ := f.last(); req != "POST /v1/allocation/"+fxAllocRunning.ID+"/stop" || !strings.Contains(out, "Stopping allocation "+fxAllocRunning.ID) {
		t.Errorf("stop: %q %q", req, out)
	}

	out, _ = mustRun(t, "alloc", "logs", fxAllocRunning.ID)
	if out != "stdout of  tail= follow=\nhello from hive\n" {
		t.Errorf("logs %q", out)
	}
	out, _ = mustRun(t, "alloc", "logs", fxAllocRunning.ID, "main", "-f", "--stderr", "--tail", "5")
	if out != "stderr of main tail=5 follow=true\nhello from hive\n" {
		t.Errorf("logs %q", out)
	}
}

func TestNodeEligibility(t *testing.T) {
	f := env(t)
	for op, want := range map[string]string{"drain": "draining", "cordon": "cordoned", "uncordon": "eligible"} {
		out, _ := mustRun(t, "node", op, "n-2")
		if req, _, _ := f.last(); req != "POST /v1/node/n-2/"+op || out != "Node n-2 is "+want+".\n" {
			t.Errorf("%s: %q %q", op, req, out)
		}
	}
	_, errs, code := hive(t, "node", "drain", "n-1")
	if code != 1 || !strings.Contains(errs, "drain node n-1: node n-1 is a manager") {
		t.Errorf("exit %d %q", code, errs)
	}
}

func TestNodeStatusWorker(t *testing.T) {
	env(t)
	// n-1 is the fixture manager: no worker rows.
	out, _ := mustRun(t, "node", "status", "n-1")
	if strings.Contains(out, "Resources") || strings.Contains(out, "Attributes") {
		t.Errorf("manager shows worker rows:\n%s", out)
	}
	n := structs.NodePublic{ID: "n-9", Role: structs.RoleWorker, Status: structs.NodeStatusReady, Cordoned: true,
		Labels: map[string]string{"zone": "b"}, Attributes: map[string]string{"os.name": "debian", "cpu.cores": "2"},
		Resources: structs.Resources{CPU: 4000, MemoryMB: 2048}}
	var b strings.Builder
	if err := printJSON(&b, n); err != nil {
		t.Fatal(err)
	}
	// Through the real command: a fake server for this one node.
	srv := serveJSON(t, "/v1/node/n-9", n)
	out, _ = mustRun(t, "--address", srv, "node", "status", "n-9")
	for _, want := range []string{"Eligibility    cordoned", "Resources      cpu 4000 MHz, memory 2048 MiB", "Labels         zone=b", "Attributes\n  cpu.cores   2\n  os.name     debian\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
}

func TestImages(t *testing.T) {
	f := env(t)
	archive := filepath.Join(t.TempDir(), "img.tar")
	if err := os.WriteFile(archive, []byte("good tar bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := mustRun(t, "image", "import", archive, "--node", "n-2")
	if req, _, body := f.last(); req != "POST /v1/node/n-2/images" || body != "good tar bytes" {
		t.Errorf("import sent %q %q", req, body)
	}
	if out != "node n-2: imported docker.io/hive/busybox:test sha256:aaaa (1.5 MiB)\n" {
		t.Errorf("import out %q", out)
	}
	bad := filepath.Join(t.TempDir(), "bad.tar")
	if err := os.WriteFile(bad, []byte("bad bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errs, code := hive(t, "image", "import", bad, "--node", "n-2")
	if code != 1 || !strings.Contains(errs, "importing "+bad+" onto node n-2: bad image archive") {
		t.Errorf("bad archive: exit %d %q", code, errs)
	}

	// --all: only ready workers, each reported; one failure fails the run.
	f.mu.Lock()
	f.nodes = []structs.NodePublic{
		{ID: "n-1", Role: structs.RoleManager, Status: structs.NodeStatusReady},
		{ID: "n-2", Role: structs.RoleWorker, Status: structs.NodeStatusReady},
		{ID: "n-3", Role: structs.RoleWorker, Status: structs.NodeStatusReady},
		{ID: "n-4", Role: structs.RoleWorker, Status: structs.NodeStatusDown},
	}
	f.mu.Unlock()
	before := f.count()
	out, errs, code = hive(t, "image", "import", archive, "--all")
	if code != 1 || !strings.Contains(out, "node n-2: imported") || !strings.Contains(errs, "node n-3: import failed: bad image archive") ||
		!strings.Contains(errs, "failed on 1 of 2 workers: n-3") {
		t.Errorf("--all: exit %d out %q err %q", code, out, errs)
	}
	f.mu.Lock()
	reqs := append([]string(nil), f.requests[before:]...)
	f.mu.Unlock()
	if want := []string{"GET /v1/nodes", "POST /v1/node/n-2/images", "POST /v1/node/n-3/images"}; !reflect.DeepEqual(reqs, want) {
		t.Errorf("--all requests %q, want %q", reqs, want)
	}

	for _, args := range [][]string{
		{"image", "import", archive},
		{"image", "import", archive, "--node", "n-2", "--all"},
	} {
		_, errs, code := hive(t, args...)
		if code != 1 || !strings.Contains(errs, "either --node ID or --all") {
			t.Errorf("%v: exit %d %q", args, code, errs)
		}
	}
	_, errs, code = hive(t, "image", "import", filepath.Join(t.TempDir(), "none.tar"), "--node", "n-2")
	if code != 1 || !strings.Contains(errs, "image archive: ") {
		t.Errorf("missing file: %q", errs)
	}

	out, errs, code = hive(t, "image", "ls")
	checkAligned(t, out, []string{"NODE", "NAME", "DIGEST", "SIZE"})
	if code != 1 || len(lines(out)) != 3 || !strings.Contains(out, "512 B") || !strings.Contains(errs, "node n-5: cannot reach worker n-5") {
		t.Errorf("ls: exit %d\n%s\n%s", code, out, errs)
	}
	out, _ = mustRun(t, "image", "ls", "-o", "json")
	var got []structs.NodeImages
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 2 || !reflect.DeepEqual(got[0].Images, fxImages) || got[1].Images == nil {
		t.Errorf("JSON %v %s", err, out)
	}
	out, _ = mustRun(t, "image", "ls", "--node", "n-2")
	if req, _, _ := f.last(); req != "GET /v1/node/n-2/images" || len(lines(out)) != 3 {
		t.Errorf("ls --node: %q\n%s", req, out)
	}
}

func TestNamespaceAllowPrivileged(t *testing.T) {
	f := env(t)
	mustRun(t, "ns", "create", "team-a", "--allow-privileged")
	if _, _, body := f.last(); body != `{"name":"team-a","allow_privileged":true}` {
		t.Errorf("body %q", body)
	}
	out, _ := mustRun(t, "ns", "status", "web")
	if !strings.Contains(out, "Privileged     refused") {
		t.Errorf("status:\n%s", out)
	}
}

func TestWorkerArgValidation(t *testing.T) {
	f := env(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"alloc", "run", "--image", "x"}, "--node is required"},
		{[]string{"alloc", "run", "--node", "n"}, "--image is required"},
		{[]string{"alloc", "run", "--node", "n", "--image", "x", "--env", "NOEQUALS"}, `invalid --env "NOEQUALS"`},
		{[]string{"alloc", "run", "--node", "n", "--image", "x", "-n", "Bad_NS"}, `invalid namespace name "Bad_NS"`},
		{[]string{"alloc", "run", "--node", "n", "--image", "x", "-o", "yaml"}, `invalid output format "yaml"`},
		{[]string{"alloc", "status"}, "hive alloc status takes ID"},
		{[]string{"alloc", "logs"}, "hive alloc logs takes ALLOC [TASK], got 0"},
		{[]string{"alloc", "logs", "a", "b", "c"}, "got 3"},
		{[]string{"alloc", "logs", "a", "--tail", "-1"}, "invalid --tail -1"},
		{[]string{"alloc", "ls", "-o", "xml"}, `invalid output format "xml"`},
		{[]string{"image", "ls", "extra"}, "hive image ls takes no arguments"},
		{[]string{"node", "cordon"}, "hive node cordon takes ID"},
		{[]string{"join", "127.0.0.1", "--data-dir", "/nonexistent", "--advertise", "127.0.0.1", "--label", "novalue"}, `invalid --label "novalue"`},
		{[]string{"join", "127.0.0.1", "--data-dir", "/nonexistent", "--advertise", "127.0.0.1", "--label", "a=1", "--label", "a=2"}, "--label a is given twice"},
		{[]string{"init", "--data-dir", "/nonexistent", "--advertise", "127.0.0.1", "--heartbeat-ttl", "0s"}, "--heartbeat-ttl (0s) and --down-grace (10s) must be positive"},
		{[]string{"dev", "--log-level", "loud"}, `invalid --log-level "loud"`},
	}
	for _, tc := range cases {
		out, errs, code := hive(t, tc.args...)
		if code != 1 || !strings.HasPrefix(errs, "Error: ") || !strings.Contains(errs, tc.want) {
			t.Errorf("hive %s: exit %d, stderr %q, want %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
		if out != "" {
			t.Errorf("hive %s: stdout %q, want none", strings.Join(tc.args, " "), out)
		}
	}
	if n := f.count(); n != 0 {
		t.Errorf("invalid commands made %d API calls", n)
	}
}

func TestParseLabels(t *testing.T) {
	got, err := parseLabels([]string{"zone=a", "rack = 4", "empty=", "x=a=b"})
	want := map[string]string{"zone": "a", "rack": " 4", "empty": "", "x": "a=b"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("%v %v", got, err)
	}
	if m, err := parseLabels(nil); m != nil || err != nil {
		t.Errorf("nil: %v %v", m, err)
	}
}

func TestDaemonFlagsReachConfigs(t *testing.T) {
	root := newRootCmd()
	join, _, err := root.Find([]string{"join"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"label", "containerd-address", "heartbeat-ttl", "down-grace", "alloc-dir"} {
		if join.Flags().Lookup(name) == nil {
			t.Errorf("join lacks --%s", name)
		}
	}
	initCmd, _, _ := root.Find([]string{"init"})
	for _, name := range []string{"heartbeat-ttl", "down-grace"} {
		if initCmd.Flags().Lookup(name) == nil {
			t.Errorf("init lacks --%s", name)
		}
	}
	if initCmd.Flags().Lookup("label") != nil {
		t.Error("init (a manager) should not take --label")
	}
	f := daemonFlags{dataDir: "/d", advertise: "10.0.0.4", rpcPort: 7401, serfPort: 7402,
		labels: []string{"zone=a"}, containerdAddress: "/x.sock", allocDir: "/allocs",
		heartbeatTTL: 3 * time.Second, downGrace: 4 * time.Second}
	cc := f.clientConfig(nil)
	if cc.RPCPort != 7401 || cc.ContainerdAddress != "/x.sock" || cc.AllocDir != "/allocs" || !reflect.DeepEqual(cc.Labels, map[string]string{"zone": "a"}) {
		t.Errorf("client config %+v", cc)
	}
	sc := f.serverConfig(nil)
	if sc.HeartbeatTTL != 3*time.Second || sc.DownGrace != 4*time.Second {
		t.Errorf("server config %+v", sc)
	}
}

// TestCLIConfigFile checks the priority flags > env > ~/.hive/config, and
// the file's format and mode.
func TestCLIConfigFile(t *testing.T) {
	f := env(t)
	addr, ca := os.Getenv(api.EnvAddress), os.Getenv(api.EnvCACert)
	cfg := filepath.Join(t.TempDir(), "sub", "config")
	t.Setenv(envConfig, cfg)
	if err := writeCLIConfig(cfg, map[string]string{configAddress: addr, configToken: "hive_file", configCACert: ca}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(cfg); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config mode: %v %v", st.Mode(), err)
	}
	// Only the file: every setting comes from it.
	t.Setenv(api.EnvAddress, "")
	t.Setenv(api.EnvCACert, "")
	mustRun(t, "node", "ls")
	if _, auth, _ := f.last(); auth != "Bearer hive_file" {
		t.Errorf("file token: %q", auth)
	}
	// The environment beats the file, flags beat both.
	t.Setenv(api.EnvToken, "hive_env")
	mustRun(t, "node", "ls")
	if _, auth, _ := f.last(); auth != "Bearer hive_env" {
		t.Errorf("env token: %q", auth)
	}
	mustRun(t, "--token", "hive_flag", "node", "ls")
	if _, auth, _ := f.last(); auth != "Bearer hive_flag" {
		t.Errorf("flag token: %q", auth)
	}
	t.Setenv(api.EnvAddress, "127.0.0.1:1")
	if _, _, code := hive(t, "node", "ls"); code != 1 {
		t.Error("HIVE_ADDR must beat the file's address")
	}

	// A broken file is an error that names it.
	if err := os.WriteFile(cfg, []byte("# comment\n\naddress=x\ntokn=y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errs, code := hive(t, "node", "ls")
	if code != 1 || !strings.Contains(errs, cfg+`:4: unknown key "tokn"`) {
		t.Errorf("bad file: %q", errs)
	}
	kv, err := readCLIConfig(filepath.Join(t.TempDir(), "missing"))
	if err != nil || len(kv) != 0 {
		t.Errorf("missing file: %v %v", kv, err)
	}
}

// serveJSON starts a second fake API (same CA as env's) answering path
// with v, and returns its address.
func serveJSON(t *testing.T, path string, v any) string {
	t.Helper()
	return startFake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			w.WriteHeader(404)
			_ = json.NewEncoder(w).Encode(structs.ErrorResponse{Error: "no route", Code: "not_found"})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}))
}
