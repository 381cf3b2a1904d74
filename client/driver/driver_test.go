package driver

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hivesec/hive/client/driver/testimage"
)

func TestImportAndListImages(t *testing.T) {
	ctx := context.Background()
	// Importing the same archive again is idempotent.
	var buf bytes.Buffer
	if _, err := testimage.Build(&buf, testimage.Options{}); err != nil {
		t.Fatal(err)
	}
	got, err := testDriver.ImportImage(ctx, &buf)
	if err != nil {
		t.Fatalf("ImportImage: %v", err)
	}
	if len(got) != 1 || got[0].Name != testimage.DefaultRef || got[0].Digest != testImage.ManifestDigest || got[0].Size <= 0 {
		t.Fatalf("ImportImage = %+v, want %s at %s with a size", got, testimage.DefaultRef, testImage.ManifestDigest)
	}

	// A Docker archive (manifest.json, RepoTags) under another name.
	buf.Reset()
	if _, err := testimage.Build(&buf, testimage.Options{Format: testimage.Docker, Ref: "hive.test/docker/busybox:1"}); err != nil {
		t.Fatal(err)
	}
	dgot, err := testDriver.ImportImage(ctx, &buf)
	if err != nil {
		t.Fatalf("ImportImage(docker archive): %v", err)
	}
	if len(dgot) != 1 || dgot[0].Name != "hive.test/docker/busybox:1" || !strings.HasPrefix(dgot[0].Digest, "sha256:") {
		t.Fatalf("ImportImage(docker archive) = %+v", dgot)
	}

	list, err := testDriver.ListImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]ImageInfo{}
	for _, img := range list {
		found[img.Name] = img
	}
	if img := found[testimage.DefaultRef]; img.Digest != testImage.ManifestDigest || img.Size <= 0 {
		t.Errorf("ListImages: %s = %+v, want digest %s and a size", testimage.DefaultRef, img, testImage.ManifestDigest)
	}
	if img := found["hive.test/docker/busybox:1"]; img.Digest != dgot[0].Digest || img.Size != dgot[0].Size {
		t.Errorf("ListImages: docker image = %+v, want %+v", img, dgot[0])
	}
	t.Logf("images: %+v", list)
}

func TestImportBadArchive(t *testing.T) {
	ctx := context.Background()
	var good bytes.Buffer
	// Its own layer, so "missing blob" is not served by the test image's.
	if _, err := testimage.Build(&good, testimage.Options{Ref: "hive.test/bad/never:1", Files: map[string]string{"etc/bad": t.Name()}}); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"garbage":   []byte("this is not a tar archive at all, not even close...................................."),
		"empty tar": emptyTar(),
		// Cut after the index: the blobs it points to are missing.
		"truncated":    good.Bytes()[:len(good.Bytes())*2/3],
		"missing blob": dropEntry(t, good.Bytes(), func(name string) bool { return strings.HasPrefix(name, "blobs/sha256/") && isLayer(good.Bytes(), name) }),
		"no name": rewriteEntry(t, good.Bytes(), "index.json", func(b []byte) []byte {
			return bytes.Replace(b, []byte("org.opencontainers.image.ref.name"), []byte("org.example.other"), 1)
		}),
	}
	before, err := testDriver.ListImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range cases {
		t.Run(strings.ReplaceAll(name, " ", "-"), func(t *testing.T) {
			imgs, err := testDriver.ImportImage(ctx, bytes.NewReader(data))
			if err == nil {
				t.Fatalf("ImportImage succeeded: %+v", imgs)
			}
			if !errors.Is(err, ErrBadArchive) {
				t.Errorf("error %v does not wrap ErrBadArchive", err)
			}
			t.Logf("error: %v", err)
			after, err := testDriver.ListImages(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("images changed:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

func TestPullNonexistent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := testDriver.PullImage(ctx, "registry.invalid/hive/nope:1")
	if err == nil {
		t.Fatal("pull of a non-existent registry succeeded")
	}
	if !strings.Contains(err.Error(), "registry.invalid/hive/nope:1") {
		t.Errorf("error does not name the image: %v", err)
	}
	t.Logf("error: %v", err)
	if _, err := testDriver.PullImage(ctx, "Not A Ref"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad reference: %v, want ErrInvalidConfig", err)
	}
	imgs, _ := testDriver.ListImages(ctx)
	for _, img := range imgs {
		if strings.Contains(img.Name, "registry.invalid") {
			t.Errorf("failed pull left image %+v", img)
		}
	}
}

func TestRunAsUserReadOnly(t *testing.T) {
	cfg := taskConfig(t, "id -u; echo hi; echo err >&2")
	cfg.User = "1000"
	cfg.ReadOnlyRootfs = true
	start(t, testDriver, cfg)
	st := waitExit(t, testDriver, cfg.ID, 30*time.Second)
	if st.ExitCode != 0 {
		t.Errorf("exit code %d, want 0; stderr: %s", st.ExitCode, readLogs(t, cfg, "stderr"))
	}
	if st.StartedAt.IsZero() || st.ExitedAt.Before(st.StartedAt) {
		t.Errorf("times: started %v exited %v", st.StartedAt, st.ExitedAt)
	}
	if out := waitLogs(t, cfg, "stdout", "hi\n"); out != "1000\nhi\n" {
		t.Errorf("stdout = %q, want %q", out, "1000\nhi\n")
	}
	if errOut := waitLogs(t, cfg, "stderr", "err\n"); errOut != "err\n" {
		t.Errorf("stderr = %q, want %q", errOut, "err\n")
	}
	in, err := testDriver.InspectTask(context.Background(), cfg.ID)
	if err != nil || in.State != StateExited || in.ExitCode != 0 || in.Labels["hive.alloc"] != cfg.ID {
		t.Errorf("InspectTask = %+v, %v", in, err)
	}
}

// securityScript prints one key=value per check, then DONE, then waits.
const securityScript = `
if touch /probe 2>/dev/null; then echo rootfs=writable; else echo rootfs=readonly; fi
echo uid=$(id -u) gid=$(id -g)
grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t' | sed 's/:/=/'
echo memlimit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)
if cat /proc/kcore >/dev/null 2>&1; then echo kcore=readable; else echo kcore=masked; fi
if echo 1 > /proc/sys/kernel/domainname 2>/dev/null; then echo procsys=writable; else echo procsys=readonly; fi
echo DONE
sleep 120
`

func parseKV(out string) map[string]string {
	kv := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		for _, f := range strings.Fields(line) {
			if k, v, ok := strings.Cut(f, "="); ok {
				kv[k] = v
			}
		}
	}
	return kv
}

func TestSecurityContext(t *testing.T) {
	cfg := taskConfig(t, securityScript)
	cfg.User = "1000:1000"
	cfg.ReadOnlyRootfs = true
	cfg.CPUShares = 512
	cfg.CPUQuotaMicros = 50000
	cfg.PidsLimit = 64
	st := start(t, testDriver, cfg)
	kv := parseKV(waitLogs(t, cfg, "stdout", "DONE"))
	want := map[string]string{
		"rootfs":     "readonly",
		"uid":        "1000",
		"gid":        "1000",
		"CapEff":     "0000000000000000",
		"CapPrm":     "0000000000000000",
		"CapBnd":     "0000000000000000",
		"NoNewPrivs": "1",
		"Seccomp":    "2",
		"memlimit":   strconv.Itoa(64 << 20),
		"kcore":      "masked",
		"procsys":    "readonly",
	}
	for k, v := range want {
		if kv[k] != v {
			t.Errorf("inside the task %s = %q, want %q", k, kv[k], v)
		}
	}

	// From the host: the task's cgroup carries the limits.
	file, err := MemoryLimitFile(testDriver.CgroupMode(), st.PID)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(file); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(64<<20) {
		t.Errorf("host %s = %q, %v; want %d", file, b, err, 64<<20)
	}
	if testDriver.CgroupMode() != CgroupsV2 {
		cpuDir := filepath.Join("/sys/fs/cgroup/cpu", Namespace, cfg.ID)
		for f, want := range map[string]string{"cpu.shares": "512", "cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000"} {
			if b, err := os.ReadFile(filepath.Join(cpuDir, f)); err != nil || strings.TrimSpace(string(b)) != want {
				t.Errorf("host %s/%s = %q, %v; want %s", cpuDir, f, b, err, want)
			}
		}
		if b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/pids", Namespace, cfg.ID, "pids.max")); err != nil || strings.TrimSpace(string(b)) != "64" {
			t.Errorf("pids.max = %q, %v; want 64", b, err)
		}
	}
	t.Logf("cgroups %s, memory limit file %s", testDriver.CgroupMode(), file)
}

func TestCapAdd(t *testing.T) {
	cfg := taskConfig(t, `grep -E '^CapEff:' /proc/self/status | tr -d '\t' | sed 's/:/=/'; echo DONE`)
	cfg.CapAdd = []string{"net_bind_service", "CAP_KILL"}
	start(t, testDriver, cfg)
	kv := parseKV(waitLogs(t, cfg, "stdout", "DONE"))
	// CAP_KILL is bit 5, CAP_NET_BIND_SERVICE bit 10.
	if want := fmt.Sprintf("%016x", 1<<5|1<<10); kv["CapEff"] != want {
		t.Errorf("CapEff = %q, want %s", kv["CapEff"], want)
	}
}

func TestPrivilegedAllowed(t *testing.T) {
	cfg := taskConfig(t, `grep -E '^(CapEff|Seccomp):' /proc/self/status | tr -d '\t' | sed 's/:/=/'; echo DONE`)
	cfg.Privileged, cfg.AllowPrivileged = true, true
	start(t, testDriver, cfg)
	kv := parseKV(waitLogs(t, cfg, "stdout", "DONE"))
	if kv["CapEff"] == "0000000000000000" || kv["Seccomp"] != "0" {
		t.Errorf("privileged task: CapEff %s Seccomp %s, want all caps and no seccomp", kv["CapEff"], kv["Seccomp"])
	}
}

func TestRefusalsLeaveNothing(t *testing.T) {
	ctx := context.Background()
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mutate func(*TaskConfig)
		want   error
	}{
		{"privileged", func(c *TaskConfig) { c.Privileged = true }, ErrPrivilegedNotAllowed},
		{"memory-below-4mib", func(c *TaskConfig) { c.MemoryBytes = 4<<20 - 1 }, ErrInvalidConfig},
		{"no-memory-limit", func(c *TaskConfig) { c.MemoryBytes = 0 }, ErrInvalidConfig},
		{"missing-image", func(c *TaskConfig) { c.Image = "docker.io/hive/does-not-exist:1" }, ErrNotFound},
		{"unknown-cap", func(c *TaskConfig) { c.CapAdd = []string{"CAP_FLY"} }, ErrInvalidConfig},
		{"log-dir-is-a-file", func(c *TaskConfig) { c.LogDir = notDir }, nil},
		// These get past containerd's container create and fail in runc,
		// so the rollback of container and snapshot is what is tested.
		{"missing-mount-source", func(c *TaskConfig) {
			c.Mounts = []Mount{{Source: "/nonexistent/hive-test", Destination: "/data", ReadOnly: true}}
		}, nil},
		{"missing-binary", func(c *TaskConfig) { c.Command = "/bin/nonexistent" }, nil},
		{"bad-user", func(c *TaskConfig) { c.User = "nosuchuser" }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := taskConfig(t, "echo should not run")
			tc.mutate(&cfg)
			t.Cleanup(func() { _ = testDriver.DestroyTask(ctx, cfg.ID) })
			st, err := testDriver.StartTask(ctx, cfg)
			if err == nil {
				t.Fatalf("StartTask succeeded: %+v", st)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), cfg.ID) {
				t.Errorf("error does not name the task: %v", err)
			}
			t.Logf("error: %v", err)
			assertGone(t, testDriver, cfg.ID)
		})
	}
}

func TestStartTwiceRefused(t *testing.T) {
	cfg := taskConfig(t, "sleep 60")
	st := start(t, testDriver, cfg)
	_, err := testDriver.StartTask(context.Background(), cfg)
	if !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second start: %v, want ErrAlreadyExists", err)
	}
	// The failed second start must not have touched the first.
	in, err := testDriver.InspectTask(context.Background(), cfg.ID)
	if err != nil || in.State != StateRunning || in.PID != st.PID {
		t.Fatalf("after refused second start: %+v, %v", in, err)
	}
}

func TestStopAndDestroy(t *testing.T) {
	ctx := context.Background()
	t.Run("sigterm", func(t *testing.T) {
		cfg := taskConfig(t, `trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 1 & wait $!; done`)
		start(t, testDriver, cfg)
		waitLogs(t, cfg, "stdout", "ready")
		ch, err := testDriver.WaitTask(ctx, cfg.ID)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if err := testDriver.StopTask(ctx, cfg.ID, 10*time.Second); err != nil {
			t.Fatalf("StopTask: %v", err)
		}
		if d := time.Since(t0); d > 5*time.Second {
			t.Errorf("stop took %v: SIGTERM was not honoured", d)
		}
		if st := <-ch; st.State != StateExited || st.ExitCode != 3 {
			t.Errorf("exit %+v, want code 3 from the TERM trap", st)
		}
		waitLogs(t, cfg, "stdout", "got TERM")
		// Stopping an exited task is fine.
		if err := testDriver.StopTask(ctx, cfg.ID, time.Second); err != nil {
			t.Errorf("second StopTask: %v", err)
		}
	})
	t.Run("sigkill", func(t *testing.T) {
		// PID 1 without a handler ignores SIGTERM: only SIGKILL ends it.
		cfg := taskConfig(t, "sleep 300")
		start(t, testDriver, cfg)
		t0 := time.Now()
		if err := testDriver.StopTask(ctx, cfg.ID, 500*time.Millisecond); err != nil {
			t.Fatalf("StopTask: %v", err)
		}
		if d := time.Since(t0); d < 500*time.Millisecond {
			t.Errorf("stopped after %v, before the timeout", d)
		}
		st, err := testDriver.InspectTask(ctx, cfg.ID)
		if err != nil || st.State != StateExited || st.ExitCode != 128+9 {
			t.Errorf("InspectTask = %+v, %v; want exited with 137", st, err)
		}
		if err := testDriver.DestroyTask(ctx, cfg.ID); err != nil {
			t.Fatalf("DestroyTask: %v", err)
		}
		assertGone(t, testDriver, cfg.ID)
		if err := testDriver.DestroyTask(ctx, cfg.ID); err != nil {
			t.Errorf("second DestroyTask: %v", err)
		}
		if _, err := testDriver.InspectTask(ctx, cfg.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("InspectTask after destroy: %v, want ErrNotFound", err)
		}
	})
	t.Run("destroy-running", func(t *testing.T) {
		cfg := taskConfig(t, "sleep 300")
		start(t, testDriver, cfg)
		if err := testDriver.DestroyTask(ctx, cfg.ID); err != nil {
			t.Fatalf("DestroyTask: %v", err)
		}
		assertGone(t, testDriver, cfg.ID)
	})
}

// TestReattach simulates an agent restart: a new Driver (new connection,
// no shared memory) finds the running task, unrestarted, and can wait on it.
func TestReattach(t *testing.T) {
	ctx := context.Background()
	cfg := taskConfig(t, `echo started; i=0; while :; do i=$((i+1)); echo tick $i; sleep 1 & wait $!; done`)
	st := start(t, testDriver, cfg)
	waitLogs(t, cfg, "stdout", "tick 1\n")

	d2, err := New(ctx, Config{Address: testAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	tasks, err := d2.ListTasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var found *TaskStatus
	for i := range tasks {
		if tasks[i].ID == cfg.ID {
			found = &tasks[i]
		}
	}
	if found == nil {
		t.Fatalf("ListTasks on a new driver does not list %s: %+v", cfg.ID, tasks)
	}
	if found.State != StateRunning || found.PID != st.PID || !found.StartedAt.Equal(st.StartedAt) ||
		found.Labels["hive.alloc"] != cfg.ID || found.Labels["hive.task"] != "main" {
		t.Fatalf("re-attached %+v, want running pid %d started %v with labels", found, st.PID, st.StartedAt)
	}
	in, err := d2.InspectTask(ctx, cfg.ID)
	if err != nil || in.PID != st.PID || in.State != StateRunning {
		t.Fatalf("InspectTask on new driver = %+v, %v", in, err)
	}
	// Logging went on without the first driver's help.
	waitLogs(t, cfg, "stdout", "tick 3\n")
	if out := readLogs(t, cfg, "stdout"); strings.Count(out, "started") != 1 {
		t.Errorf("task was restarted: %q", out)
	}

	ch, err := d2.WaitTask(ctx, cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(int(st.PID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case ex := <-ch:
		if ex.State != StateExited || ex.ExitCode != 137 || ex.PID != st.PID {
			t.Errorf("new driver's WaitTask = %+v, want exited 137", ex)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("new driver's WaitTask did not report the exit")
	}
}

// TestContainerdRestart kills our containerd: the supervisor restarts it,
// the task keeps running under its shim, and a wait begun before the crash
// still reports the exit.
func TestContainerdRestart(t *testing.T) {
	ctx := context.Background()
	cfg := taskConfig(t, `echo up; while :; do sleep 1 & wait $!; done`)
	st := start(t, testDriver, cfg)
	waitLogs(t, cfg, "stdout", "up")
	ch, err := testDriver.WaitTask(ctx, cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	old := pidOf(testDataDir)
	if old == 0 {
		t.Fatal("no containerd pid file: did EnsureContainerd start our own?")
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p := pidOf(testDataDir); p != old && p != 0 && probe(ctx, testAddr) == nil {
			t.Logf("containerd restarted: pid %d -> %d", old, p)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("containerd was not restarted within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	in, err := testDriver.InspectTask(ctx, cfg.ID)
	if err != nil || in.State != StateRunning || in.PID != st.PID {
		t.Fatalf("after containerd restart: %+v, %v; want running pid %d", in, err, st.PID)
	}
	if err := testDriver.StopTask(ctx, cfg.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case ex := <-ch:
		if ex.State != StateExited {
			t.Errorf("wait across restart = %+v", ex)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("wait begun before the containerd restart never fired")
	}
}

func TestLogRotation(t *testing.T) {
	// 200 lines of 50 bytes = 10000 bytes into 1 KiB files, keep 3.
	cfg := taskConfig(t, `i=0; while [ $i -lt 200 ]; do printf 'line %03d 0123456789012345678901234567890123456789\n' $i; i=$((i+1)); done; echo END >&2`)
	cfg.LogMaxBytes = 1024
	cfg.LogMaxFiles = 3
	start(t, testDriver, cfg)
	waitExit(t, testDriver, cfg.ID, 30*time.Second)
	waitLogs(t, cfg, "stderr", "END")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(readLogs(t, cfg, "stdout"), "line 199") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	files, err := LogFiles(cfg.LogDir, cfg.Name, "stdout")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("%d stdout files, want 3: %v", len(files), files)
	}
	// 10000 bytes at 1024 per file: indexes 0..9, keep 7, 8, 9.
	for i, f := range files {
		if want := fmt.Sprintf("main.stdout.%d", 7+i); filepath.Base(f) != want {
			t.Errorf("file %d is %s, want %s", i, filepath.Base(f), want)
		}
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 1024 || (i < 2 && fi.Size() != 1024) {
			t.Errorf("%s is %d bytes", f, fi.Size())
		}
		if fi.Mode().Perm() != 0o640 {
			t.Errorf("%s mode %v, want 0640", f, fi.Mode())
		}
	}
	out := readLogs(t, cfg, "stdout")
	if !strings.HasSuffix(out, "line 199 0123456789012345678901234567890123456789\n") || len(out) != 3*1024-(10240-10000) {
		t.Errorf("kept %d bytes ending %q", len(out), out[max(0, len(out)-60):])
	}
}

func TestEnsureContainerdSideBySide(t *testing.T) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "hive-drv2-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	t0 := time.Now()
	addr, stop, err := EnsureContainerd(ctx, Options{Address: filepath.Join(dir, "nothing.sock"), DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second containerd answered after %v", time.Since(t0))
	defer stop()
	if addr == testAddr || probe(ctx, addr) != nil || probe(ctx, testAddr) != nil {
		t.Fatalf("side by side: %s and %s should both answer", addr, testAddr)
	}
	// A second EnsureContainerd on the same address reuses it.
	addr2, stop2, err := EnsureContainerd(ctx, Options{Address: addr, DataDir: dir})
	if err != nil || addr2 != addr {
		t.Fatalf("reuse: %s, %v", addr2, err)
	}
	stop2() // a no-op: it did not start this one
	if probe(ctx, addr) != nil {
		t.Fatal("stop of a reused containerd stopped it")
	}
	pid := pidOf(dir)
	stop()
	if probe(ctx, addr) == nil {
		t.Fatal("containerd still answers after stop")
	}
	if pid == 0 || syscall.Kill(pid, 0) == nil {
		t.Fatalf("containerd pid %d still alive after stop", pid)
	}
}

func TestEnsureContainerdMissingBinary(t *testing.T) {
	dir := t.TempDir()
	_, _, err := EnsureContainerd(context.Background(), Options{Address: filepath.Join(dir, "x.sock"), DataDir: dir, Binary: "hive-no-such-containerd"})
	if err == nil || !strings.Contains(err.Error(), "hive-no-such-containerd") {
		t.Fatalf("err = %v, want one naming the missing binary", err)
	}
}

func BenchmarkStartTask(b *testing.B) {
	ctx := context.Background()
	cfg := taskConfig(b, "sleep 300")
	base := cfg.ID
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cfg.ID = fmt.Sprintf("%s-%d", base, i)
		b.StartTimer()
		if _, err := testDriver.StartTask(ctx, cfg); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := testDriver.DestroyTask(ctx, cfg.ID); err != nil {
			b.Fatal(err)
		}
	}
}

func emptyTar() []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.Close()
	return buf.Bytes()
}

// rewriteTar copies an archive, letting f drop (nil) or change entries.
func rewriteTar(t *testing.T, in []byte, f func(name string, data []byte) []byte) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(in))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		var data bytes.Buffer
		if _, err := data.ReadFrom(tr); err != nil {
			t.Fatal(err)
		}
		out := f(h.Name, data.Bytes())
		if out == nil && h.Typeflag == tar.TypeReg {
			continue
		}
		h.Size = int64(len(out))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(out)
	}
	tw.Close()
	return buf.Bytes()
}

func dropEntry(t *testing.T, in []byte, drop func(string) bool) []byte {
	return rewriteTar(t, in, func(name string, data []byte) []byte {
		if drop(name) {
			return nil
		}
		return data
	})
}

func rewriteEntry(t *testing.T, in []byte, target string, f func([]byte) []byte) []byte {
	return rewriteTar(t, in, func(name string, data []byte) []byte {
		if name == target {
			return f(data)
		}
		return data
	})
}

// isLayer: the biggest blob is the layer.
func isLayer(archive []byte, name string) bool {
	tr := tar.NewReader(bytes.NewReader(archive))
	var biggest string
	var size int64
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Size > size {
			biggest, size = h.Name, h.Size
		}
	}
	return name == biggest
}
