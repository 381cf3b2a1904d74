package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"golang.org/x/sys/unix"

	"github.com/hivesec/hive/client/driver"
	"github.com/hivesec/hive/client/driver/testimage"
	"github.com/hivesec/hive/structs"
)

// TestSecretsIntegration delivers secrets to real containers through
// containerd, with a fake secret source instead of a manager: a task reads
// its file under /run/secrets and its variable (set by secret-exec, the
// wrapper bind-mounted from a statically built helper); a new version
// replaces the file in the running container and signals it; another
// restarts a task, which then sees the new variable. No value is in the
// OCI spec, in containerd's files or on the worker's disk outside the
// tmpfs, which is gone once the allocation stops.
func TestSecretsIntegration(t *testing.T) {
	requireRuntime(t)
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the secrets integration test builds its static secret-exec helper and needs go on PATH: %v", err)
	}
	// Short: containerd's socket path must fit in sun_path.
	root, err := os.MkdirTemp("", "hive-sec-")
	if err != nil {
		t.Fatal(err)
	}
	ctrdDir := filepath.Join(root, "ctrd")
	allocDir := filepath.Join(root, "allocs")
	t.Cleanup(func() {
		if err := sweepContainerd(ctrdDir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		unmountUnder(root)
		if err := os.RemoveAll(root); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	helper := filepath.Join(root, "hive")
	build := exec.Command("go", "build", "-o", helper, "./testdata/secretexec")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the secret-exec helper: %v\n%s", err, out)
	}
	if err := checkStatic(helper); err != nil {
		t.Fatalf("the helper built with CGO_ENABLED=0: %v", err)
	}

	ctx := context.Background()
	logger := testLogger("secrets")
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	addr, stop, err := driver.EnsureContainerd(sctx, driver.Options{Address: filepath.Join(ctrdDir, "containerd.sock"), DataDir: ctrdDir, Logger: logger})
	cancel()
	if err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	t.Cleanup(stop) // runs before the sweep, which starts it again
	d, err := driver.New(ctx, driver.Config{Address: addr, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	var img bytes.Buffer
	if _, err := testimage.Build(&img, testimage.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ImportImage(ctx, &img); err != nil {
		t.Fatal(err)
	}

	// Values unlike anything else, so finding one anywhere is a leak.
	value := func(what string) string {
		b := make([]byte, 12)
		rand.Read(b)
		return what + "-" + hex.EncodeToString(b)
	}
	apiV1, apiV2, dbV1, dbV2 := value("api1"), value("api2"), value("db1"), value("db2")
	src := newFakeSecrets()
	src.set("api", map[string]string{"token": apiV1})
	src.set("db", map[string]string{"password": dbV1, "user": "app"})

	r := newReports()
	cfg := &runnerConfig{
		driver: d, allocDir: allocDir, nodeID: "node-sec", logger: logger,
		killTimeout: 2 * time.Second, report: r.push, now: time.Now,
		secrets: src, mounter: tmpfsMounter{}, helper: helper,
	}
	policy := structs.RestartPolicy{Attempts: 0, Interval: time.Minute, Delay: time.Second, Mode: structs.RestartModeFail}
	task := func(name, script string, secrets ...*structs.TaskSecret) *structs.Task {
		return &structs.Task{Name: name, Config: structs.TaskConfig{Image: testimage.DefaultRef, Command: "sh", Args: []string{"-c", script}},
			User: "1000", Resources: structs.Resources{CPU: 100, MemoryMB: 32},
			Security: structs.SecurityContext{ReadOnlyRootfs: true}, Restart: policy, Secrets: secrets}
	}
	alloc := &structs.Allocation{ID: "5ec7e7a1-0000-4000-8000-000000000001", Namespace: "default", NodeID: "node-sec", Group: "g",
		DesiredStatus: structs.AllocDesiredRun, ClientStatus: structs.AllocPending, Tasks: []*structs.Task{
			task("files", `trap 'echo "hup file=$(cat /run/secrets/api/token)"' HUP; trap 'exit 0' TERM
echo "start file=$(cat /run/secrets/api/token) env=${API_TOKEN:-unset}"
ls -ln /run/secrets/api | grep token | awk '{print "perm=" $1, "owner=" $3 ":" $4}'
while :; do sleep 0.1; done`,
				&structs.TaskSecret{Label: "api", Name: "api", Key: "token", File: "api/token", Mode: 0o400, UID: 1000, GID: 1000,
					ChangeMode: structs.SecretChangeSignal, ChangeSignal: "SIGHUP"}),
			task("envtask", `trap 'exit 0' TERM
echo "env=$DB_PASSWORD file=$(cat /run/secrets/db.txt) user=$DB_USER"
sleep 300 & wait`,
				&structs.TaskSecret{Label: "db", Name: "db", Key: "password", File: "db.txt", Mode: 0o400, UID: 1000, Env: "DB_PASSWORD",
					ChangeMode: structs.SecretChangeRestart},
				&structs.TaskSecret{Label: "user", Name: "db", Key: "user", Env: "DB_USER", ChangeMode: structs.SecretChangeNoop}),
		}}
	ar := newAllocRunner(ctx, cfg, alloc)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			ar.stop("test over")
			<-ar.done
		}
	})
	ar.run(nil)

	logsOf := func(task string) string {
		files, err := driver.LogFiles(taskLogDir(allocDir, alloc.ID, task), task, "stdout")
		if err != nil {
			return ""
		}
		var b strings.Builder
		for _, f := range files {
			data, _ := os.ReadFile(f)
			b.Write(data)
		}
		return b.String()
	}
	waitLog := func(task, want string) {
		t.Helper()
		eventually(t, 60*time.Second, task+" to log "+want, func() error {
			if out := logsOf(task); !strings.Contains(out, want) {
				u, _ := r.get(alloc.ID)
				stderr, _ := driver.LogFiles(taskLogDir(allocDir, alloc.ID, task), task, "stderr")
				var errOut []byte
				for _, f := range stderr {
					b, _ := os.ReadFile(f)
					errOut = append(errOut, b...)
				}
				return fmt.Errorf("stdout %q stderr %q states %s", out, errOut, jsonString(u.TaskStates))
			}
			return nil
		})
	}
	waitLog("files", "start file="+apiV1+" env=unset\n")
	waitLog("files", "perm=-r-------- owner=1000:1000\n")
	waitLog("envtask", "env="+dbV1+" file="+dbV1+" user=app\n")
	waitStatus(t, r, alloc.ID, structs.AllocRunning)

	dir := secretsDir(allocDir, alloc.ID)
	if ok, err := (tmpfsMounter{}).mounted(dir); !ok || err != nil {
		t.Fatalf("%s is not a tmpfs mount: %v", dir, err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		t.Fatal(err)
	}
	if want := int64(unix.ST_NODEV | unix.ST_NOSUID | unix.ST_NOEXEC); sfs.Flags&want != want {
		t.Errorf("tmpfs flags %#x lack nodev,nosuid,noexec", sfs.Flags)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("tmpfs root: %v %v", fi.Mode(), err)
	}

	// The specs: the wrapper, no values.
	cc, err := containerd.New(addr, containerd.WithDefaultNamespace(driver.Namespace))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	nctx := namespaces.WithNamespace(ctx, driver.Namespace)
	for _, name := range []string{"files", "envtask"} {
		c, err := cc.LoadContainer(nctx, taskID(alloc.ID, name))
		if err != nil {
			t.Fatal(err)
		}
		spec, err := c.Spec(nctx)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(spec)
		for _, v := range []string{apiV1, dbV1} {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("the OCI spec of %s holds a secret value", name)
			}
		}
		args := spec.Process.Args
		if name == "envtask" && (len(args) < 5 || !slices.Equal(args[:5], []string{helperMountPath, "secret-exec", "--env-file", "/run/hive-secret-env/env", "--"})) {
			t.Errorf("envtask args %q: not wrapped", args)
		}
		if name == "files" && args[0] != "sh" {
			t.Errorf("files args %q: wrapped without env secrets", args)
		}
	}
	noLeaks := func(values ...string) {
		t.Helper()
		assertNotIn(t, ctrdDir, nil, values...)
		// The worker's disk: everything under the alloc dir but the tmpfs
		// and the task logs (which hold what the tasks echoed).
		assertNotIn(t, allocDir, func(p string) bool {
			return p == dir || filepath.Base(p) == "logs"
		}, values...)
	}
	noLeaks(apiV1, dbV1)

	pidOf := func(task string) uint32 {
		st, err := d.InspectTask(ctx, taskID(alloc.ID, task))
		if err != nil {
			t.Fatal(err)
		}
		return st.PID
	}
	filesPID, envPID := pidOf("files"), pidOf("envtask")

	// A new version of api: the file is replaced under the running task,
	// which gets SIGHUP and reads it.
	src.set("api", map[string]string{"token": apiV2})
	waitLog("files", "hup file="+apiV2+"\n")
	if pid := pidOf("files"); pid != filesPID {
		t.Errorf("the signalled task was restarted: pid %d → %d", filesPID, pid)
	}

	// A new version of db: the task restarts and sees the new variable.
	src.set("db", map[string]string{"password": dbV2, "user": "app"})
	waitLog("envtask", "env="+dbV2+" file="+dbV2+" user=app\n")
	eventually(t, 30*time.Second, "the restart recorded", func() error {
		u, _ := r.get(alloc.ID)
		if ts := u.TaskStates["envtask"]; ts.Restarts != 1 || ts.State != structs.TaskRunning || ts.Failed {
			return fmt.Errorf("%s", jsonString(ts))
		}
		return nil
	})
	if pid := pidOf("envtask"); pid == envPID {
		t.Error("the env task kept its pid: not restarted")
	}
	if pid := pidOf("files"); pid != filesPID {
		t.Error("the files task was restarted by the other task's secret")
	}
	noLeaks(apiV1, apiV2, dbV1, dbV2)

	// Stop: the tmpfs goes.
	ar.stop("test over")
	stopped = true
	select {
	case <-ar.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the allocation did not stop")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after stop: %v", dir, err)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), dir) {
		t.Errorf("%s still mounted after stop", dir)
	}
}

// assertNotIn fails if any regular file under dir (skip says which paths
// to leave out) contains one of values.
func assertNotIn(t *testing.T, dir string, skip func(string) bool, values ...string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) || os.IsPermission(err) {
				return nil // gone meanwhile, or a mount we cannot enter
			}
			return err
		}
		if skip != nil && skip(p) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil // removed meanwhile
		}
		for _, v := range values {
			if bytes.Contains(data, []byte(v)) {
				t.Errorf("%s holds a secret value", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("walk %s: %v", dir, err)
	}
}
