package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/hashicorp/go-hclog"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/client/driver"
	"github.com/hivesec/hive/client/driver/testimage"
	"github.com/hivesec/hive/identity"
	"github.com/hivesec/hive/server"
	"github.com/hivesec/hive/structs"
)

// Addresses of the integration test: loopback IPs of their own (all of
// 127/8 is loopback on Linux) so the fixed test ports never collide with
// the server package's tests, which use 127.0.1.x.
const (
	itManagerIP = "127.0.88.1"
	itWorkerIP  = "127.0.88.2"
)

// requireRuntime fails the test, naming what is missing: it never skips.
func requireRuntime(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (containerd and runc need it)")
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin+" on PATH (apt-get install containerd runc)")
		}
	}
	if _, err := os.Stat(testimage.DefaultBusybox); err != nil {
		missing = append(missing, testimage.DefaultBusybox+" (apt-get install busybox-static)")
	}
	if len(missing) > 0 {
		t.Fatalf("the worker integration test needs: %s; scripts/install-deps.sh installs the packages", strings.Join(missing, "; "))
	}
}

func testLogger(name string) hclog.Logger {
	level := hclog.Warn
	if os.Getenv("HIVE_TEST_LOG") != "" {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: level, Output: os.Stderr})
}

// adminHTTP calls the manager API as the bootstrap admin with plain
// net/http, as a user's script would.
type adminHTTP struct {
	base, token string
	c           *http.Client
}

func (h *adminHTTP) do(ctx context.Context, method, path string, body io.Reader, out any) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, h.base+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := h.c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, b, err
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, b, fmt.Errorf("decode %s: %w", b, err)
		}
	}
	return resp.StatusCode, b, nil
}

// must calls the API and fails the test unless it answers 200.
func (h *adminHTTP) must(t *testing.T, method, path string, body io.Reader, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, b, err := h.do(ctx, method, path, body, out)
	if err != nil || code != http.StatusOK {
		t.Fatalf("%s %s: %d %s %v", method, path, code, b, err)
	}
}

func (h *adminHTTP) alloc(t *testing.T, id string) *structs.Allocation {
	t.Helper()
	var a structs.Allocation
	h.must(t, http.MethodGet, "/v1/allocation/"+id, nil, &a)
	return &a
}

func (h *adminHTTP) waitAlloc(t *testing.T, id, status string) *structs.Allocation {
	t.Helper()
	var a *structs.Allocation
	eventually(t, 60*time.Second, "allocation "+id+" "+status, func() error {
		a = h.alloc(t, id)
		if a.ClientStatus != status {
			return fmt.Errorf("status %s (%s), tasks %s", a.ClientStatus, a.ClientDescription, jsonString(a.TaskStates))
		}
		return nil
	})
	return a
}

func (h *adminHTTP) logs(t *testing.T, id, query string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, b, err := h.do(ctx, http.MethodGet, "/v1/allocation/"+id+"/logs?"+query, nil, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("logs of %s: %d %s %v", id, code, b, err)
	}
	return string(b)
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestWorkerIntegration runs a manager and a worker with its own containerd
// in this process: image import and listing through the manager, an
// allocation as user 1000 with a read-only rootfs, its logs through the
// manager, stopping it, then an agent restart that re-attaches to a
// running container without restarting it.
func TestWorkerIntegration(t *testing.T) {
	requireRuntime(t)
	// Short: containerd's socket path must fit in sun_path.
	root, err := os.MkdirTemp("", "hive-cl-")
	if err != nil {
		t.Fatal(err)
	}
	workerDir := filepath.Join(root, "w")
	ctrdDir := filepath.Join(workerDir, "containerd")
	var agents []*Agent
	var srv *server.Server
	t.Cleanup(func() {
		for _, a := range agents {
			a.Shutdown()
		}
		if srv != nil {
			srv.Shutdown()
		}
		if err := sweepContainerd(ctrdDir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		unmountUnder(root)
		if err := os.RemoveAll(root); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	// The manager.
	s, boot, err := server.Init(server.Config{
		DataDir: filepath.Join(root, "m"), Advertise: itManagerIP, Name: "manager",
		APIPort: 17400, RPCPort: 17401, SerfPort: 17402,
		RaftHeartbeatTimeout: 500 * time.Millisecond, RaftElectionTimeout: 500 * time.Millisecond,
		RaftLeaderLease: 400 * time.Millisecond, ReconcileInterval: 200 * time.Millisecond,
		Logger: testLogger("manager"),
	})
	if err != nil {
		t.Fatalf("init manager: %v", err)
	}
	srv = s
	eventually(t, 20*time.Second, "a leader", func() error {
		if !s.IsLeader() {
			return errors.New("not leader yet")
		}
		return nil
	})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(boot.CACertPEM)
	h := &adminHTTP{base: "https://" + s.APIAddr(), token: boot.AdminToken, c: &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: api.ManagerServerName, MinVersion: tls.VersionTLS12},
	}}}

	// The worker, with a containerd of its own: nothing answers at
	// ContainerdAddress, so the agent starts one under its data dir.
	jctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	node, certs, resp, err := identity.Join(jctx, identity.JoinParams{
		DataDir: workerDir, Addr: s.APIAddr(), Token: boot.WorkerToken, Name: "worker",
		Address: itWorkerIP, RPCPort: 17401, SerfPort: 17402,
	})
	cancel()
	if err != nil {
		t.Fatalf("join worker: %v", err)
	}
	wcfg := Config{
		DataDir: workerDir, Advertise: itWorkerIP, Name: "worker", SerfPort: 17402, RPCPort: 17401,
		ContainerdAddress: filepath.Join(ctrdDir, "containerd.sock"),
		Labels:            map[string]string{"zone": "a"},
		Logger:            testLogger("worker"),
	}
	a, err := StartJoined(wcfg, node, certs, resp)
	if err != nil {
		t.Fatalf("start worker: %v", err)
	}
	agents = append(agents, a)

	eventually(t, 30*time.Second, "the worker registered and ready", func() error {
		var n structs.NodePublic
		h.must(t, http.MethodGet, "/v1/node/"+node.ID, nil, &n)
		if n.Status != structs.NodeStatusReady || n.Attributes[AttrCPUCores] == "" || n.Resources.MemoryMB == 0 || n.Labels["zone"] != "a" {
			return fmt.Errorf("node %s", jsonString(n))
		}
		return nil
	})

	t.Run("Images", func(t *testing.T) {
		var buf bytes.Buffer
		info, err := testimage.Build(&buf, testimage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var imported []structs.ImageInfo
		h.must(t, http.MethodPost, "/v1/node/"+node.ID+"/images", &buf, &imported)
		if len(imported) != 1 || imported[0].Name != testimage.DefaultRef || imported[0].Digest != info.ManifestDigest {
			t.Fatalf("imported %+v, want %s at %s", imported, testimage.DefaultRef, info.ManifestDigest)
		}
		var listed []structs.ImageInfo
		h.must(t, http.MethodGet, "/v1/node/"+node.ID+"/images", nil, &listed)
		if len(listed) != 1 || listed[0] != imported[0] {
			t.Errorf("listed %+v, want %+v", listed, imported)
		}
		code, body, err := h.do(t.Context(), http.MethodPost, "/v1/node/"+node.ID+"/images", strings.NewReader(strings.Repeat("not a tar archive ", 64)), nil)
		var e structs.ErrorResponse
		_ = json.Unmarshal(body, &e)
		if err != nil || code != http.StatusBadRequest || e.Code != "bad_archive" || !strings.Contains(e.Error, "bad image archive") {
			t.Errorf("bad archive: %d %s %v", code, body, err)
		}
	})

	createAlloc := func(t *testing.T, script string) *structs.Allocation {
		t.Helper()
		req := structs.AllocCreateRequest{Namespace: structs.DefaultNamespace, NodeID: node.ID, Tasks: []*structs.Task{{
			Name: "main", Config: structs.TaskConfig{Image: testimage.DefaultRef, Command: "sh", Args: []string{"-c", script}},
			User: "1000", Resources: structs.Resources{CPU: 100, MemoryMB: 32},
			Security: structs.SecurityContext{ReadOnlyRootfs: true},
			Restart:  structs.RestartPolicy{Attempts: 0, Interval: time.Minute, Delay: time.Second, Mode: structs.RestartModeFail},
		}}}
		b, _ := json.Marshal(req)
		var a structs.Allocation
		h.must(t, http.MethodPost, "/v1/allocations", bytes.NewReader(b), &a)
		return &a
	}
	gone := func(t *testing.T, d driver.Driver, id string) {
		t.Helper()
		eventually(t, 30*time.Second, "container "+id+" removed", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := d.InspectTask(ctx, id)
			if !errors.Is(err, driver.ErrNotFound) {
				return fmt.Errorf("still there: %+v %v", st, err)
			}
			return nil
		})
	}

	t.Run("RunLogsStop", func(t *testing.T) {
		al := createAlloc(t, "trap 'exit 0' TERM; echo hello; id -u; touch /probe 2>/dev/null || echo read-only; sleep 30 & wait")
		got := h.waitAlloc(t, al.ID, structs.AllocRunning)
		ts := got.TaskStates["main"]
		if ts == nil || ts.State != structs.TaskRunning || ts.StartedAt.IsZero() || !strings.HasPrefix(ts.ImageDigest, "sha256:") {
			t.Errorf("task state %s", jsonString(ts))
		}
		var out string
		eventually(t, 20*time.Second, "logs through the manager", func() error {
			out = h.logs(t, al.ID, "task=main")
			if out != "hello\n1000\nread-only\n" {
				return fmt.Errorf("logs %q", out)
			}
			return nil
		})
		if tail := h.logs(t, al.ID, "tail=1"); tail != "read-only\n" {
			t.Errorf("tail=1: %q", tail)
		}
		// Follow: the stream stays open and delivers what is there.
		fctx, fcancel := context.WithTimeout(context.Background(), 20*time.Second)
		req, _ := http.NewRequestWithContext(fctx, http.MethodGet, h.base+"/v1/allocation/"+al.ID+"/logs?follow=true&tail=2", nil)
		req.Header.Set("Authorization", "Bearer "+h.token)
		resp, err := h.c.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("follow: %v %v", resp, err)
		}
		buf := make([]byte, 64)
		n, _ := io.ReadAtLeast(resp.Body, buf, len("1000\nread-only\n"))
		fcancel()
		resp.Body.Close()
		if string(buf[:n]) != "1000\nread-only\n" {
			t.Errorf("follow read %q", buf[:n])
		}
		code, body, _ := h.do(t.Context(), http.MethodGet, "/v1/allocation/"+al.ID+"/logs?task=nope", nil, nil)
		if code != http.StatusBadRequest {
			t.Errorf("logs of an unknown task: %d %s", code, body)
		}

		h.must(t, http.MethodPost, "/v1/allocation/"+al.ID+"/stop", nil, nil)
		done := h.waitAlloc(t, al.ID, structs.AllocComplete)
		if ts := done.TaskStates["main"]; ts.State != structs.TaskDead || ts.Failed || ts.ExitCode != 0 || ts.FinishedAt.IsZero() {
			t.Errorf("stopped task %s", jsonString(ts))
		}
		gone(t, a.driver, taskID(al.ID, "main"))
		// Logs outlive the container.
		if out := h.logs(t, al.ID, ""); !strings.HasPrefix(out, "hello\n") {
			t.Errorf("logs after stop: %q", out)
		}
	})

	t.Run("StartErrorFailsCleanly", func(t *testing.T) {
		req := structs.AllocCreateRequest{Namespace: structs.DefaultNamespace, NodeID: node.ID, Tasks: []*structs.Task{{
			Name: "main", Config: structs.TaskConfig{Image: "registry.invalid/hive/nope:1", Command: "true"},
			Resources: structs.Resources{MemoryMB: 32},
		}}}
		b, _ := json.Marshal(req)
		var al structs.Allocation
		h.must(t, http.MethodPost, "/v1/allocations", bytes.NewReader(b), &al)
		got := h.waitAlloc(t, al.ID, structs.AllocFailed)
		if ts := got.TaskStates["main"]; ts.State != structs.TaskDead || !ts.Failed || !strings.Contains(ts.LastError, "registry.invalid/hive/nope:1") {
			t.Errorf("task state %s", jsonString(ts))
		}
		gone(t, a.driver, taskID(al.ID, "main"))
	})

	t.Run("RestartReattaches", func(t *testing.T) {
		al := createAlloc(t, "trap 'exit 0' TERM; echo started; sleep 300 & wait")
		h.waitAlloc(t, al.ID, structs.AllocRunning)
		id := taskID(al.ID, "main")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		before, err := a.driver.InspectTask(ctx, id)
		cancel()
		if err != nil || before.State != driver.StateRunning || before.PID == 0 {
			t.Fatalf("before restart: %+v %v", before, err)
		}

		a.Shutdown()
		// The container outlives the agent and its containerd.
		if err := syscall.Kill(int(before.PID), 0); err != nil {
			t.Fatalf("task pid %d gone after the agent stopped: %v", before.PID, err)
		}
		a2, err := Open(wcfg)
		if err != nil {
			t.Fatalf("restart worker: %v", err)
		}
		agents = append(agents, a2)
		eventually(t, 30*time.Second, "the new agent to re-attach", func() error {
			ar := a2.allocs.runner(al.ID)
			if ar == nil {
				return errors.New("no runner yet")
			}
			if st, _ := ar.snapshot(); st != structs.AllocRunning {
				return fmt.Errorf("runner status %s", st)
			}
			return nil
		})
		ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
		after, err := a2.driver.InspectTask(ctx, id)
		cancel()
		if err != nil || after.State != driver.StateRunning || after.PID != before.PID || !after.StartedAt.Equal(before.StartedAt) {
			t.Fatalf("after restart: %+v (before %+v) %v: the task was restarted", after, before, err)
		}
		got := h.alloc(t, al.ID)
		if ts := got.TaskStates["main"]; got.ClientStatus != structs.AllocRunning || ts.Restarts != 0 || ts.State != structs.TaskRunning {
			t.Errorf("after restart: %s %s", got.ClientStatus, jsonString(ts))
		}
		if out := h.logs(t, al.ID, ""); out != "started\n" {
			t.Errorf("logs %q: the task ran more than once", out)
		}

		// The re-attached task is still under control.
		h.must(t, http.MethodPost, "/v1/allocation/"+al.ID+"/stop", nil, nil)
		h.waitAlloc(t, al.ID, structs.AllocComplete)
		gone(t, a2.driver, id)
	})
}

// sweepContainerd removes everything in the hive namespace of the
// containerd under dir (starting it again if the agent stopped it), then
// stops it: a failed test leaves no containers, shims or daemons behind.
func sweepContainerd(dir string) error {
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addr, stop, err := driver.EnsureContainerd(ctx, driver.Options{Address: filepath.Join(dir, "containerd.sock"), DataDir: dir})
	if err != nil {
		return err
	}
	defer stop()
	c, err := containerd.New(addr, containerd.WithDefaultNamespace(driver.Namespace))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx = namespaces.WithNamespace(ctx, driver.Namespace)
	cs, err := c.Containers(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, ctr := range cs {
		if t, err := ctr.Task(ctx, nil); err == nil {
			if _, err := t.Delete(ctx, containerd.WithProcessKill); err != nil {
				errs = append(errs, err)
			}
		}
		if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
			errs = append(errs, err)
		}
	}
	if len(cs) > 0 {
		errs = append(errs, fmt.Errorf("%d containers were left behind", len(cs)))
	}
	imgs, err := c.ImageService().List(ctx)
	if err != nil {
		return err
	}
	for _, img := range imgs {
		if err := c.ImageService().Delete(ctx, img.Name, images.SynchronousDelete()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.NamespaceService().Delete(ctx, driver.Namespace); err != nil && !errdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete namespace: %w", err))
	}
	return errors.Join(errs...)
}

// unmountUnder unmounts anything still mounted below dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mps []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mps = append(mps, f[4])
		}
	}
	for i := len(mps) - 1; i >= 0; i-- {
		_ = exec.Command("umount", "-l", mps[i]).Run()
	}
}
