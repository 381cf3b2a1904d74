package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/hashicorp/go-hclog"

	"github.com/hivesec/hive/client/driver/testimage"
)

// The tests share one private containerd, started by EnsureContainerd under
// a temp dir, and one Driver. TestMain also serves as the task logger: the
// shim runs this test binary as `driver.test task-logger SPEC`.
var (
	testDataDir string
	testAddr    string
	testDriver  *Containerd
	testImage   testimage.Info
)

func TestMain(m *testing.M) {
	if IsLoggerInvocation(os.Args) {
		if err := RunLogger(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(run(m))
}

// prerequisites fails loudly, naming what is missing: these tests never skip.
func prerequisites() error {
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
		return fmt.Errorf("client/driver tests need: %s; scripts/install-deps.sh installs the packages", strings.Join(missing, "; "))
	}
	return nil
}

func run(m *testing.M) (code int) {
	if err := prerequisites(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	// Short: the socket path must fit in sun_path.
	dir, err := os.MkdirTemp("", "hive-drv-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	testDataDir = dir
	ctx := context.Background()
	logger := hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Warn, Output: os.Stderr})
	sock := filepath.Join(dir, "containerd.sock")
	addr, stop, err := EnsureContainerd(ctx, Options{Address: sock, DataDir: dir, Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.RemoveAll(dir)
		return 1
	}
	testAddr = addr
	defer func() {
		if err := sweep(addr); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: cleanup:", err)
			code = 1
		}
		stop()
		unmountUnder(dir)
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
		}
	}()

	testDriver, err = New(ctx, Config{Address: addr, Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer testDriver.Close()
	var buf bytes.Buffer
	testImage, err = testimage.Build(&buf, testimage.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	if _, err := testDriver.ImportImage(ctx, &buf); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: import test image:", err)
		return 1
	}
	return m.Run()
}

// sweep deletes everything in the hive namespace: tasks, containers (with
// their snapshots), images, then the namespace itself.
func sweep(addr string) error {
	c, err := containerd.New(addr, containerd.WithDefaultNamespace(Namespace))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), Namespace), time.Minute)
	defer cancel()
	cs, err := c.Containers(ctx)
	if err != nil {
		return err
	}
	var errs []string
	for _, ctr := range cs {
		if t, err := ctr.Task(ctx, nil); err == nil {
			if _, err := t.Delete(ctx, containerd.WithProcessKill); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
			errs = append(errs, err.Error())
		}
	}
	imgs, err := c.ImageService().List(ctx)
	if err != nil {
		return err
	}
	for _, img := range imgs {
		if err := c.ImageService().Delete(ctx, img.Name, images.SynchronousDelete()); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if err := c.NamespaceService().Delete(ctx, Namespace); err != nil && !errdefs.IsNotFound(err) {
		errs = append(errs, "delete namespace: "+err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// unmountUnder unmounts anything still mounted below dir (a rootfs left
// by a failed test), deepest first, so RemoveAll can work.
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

var nonID = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// taskConfig is a restricted task running script in the test image.
func taskConfig(t testing.TB, script string) TaskConfig {
	t.Helper()
	id := strings.ToLower(strings.Trim(nonID.ReplaceAllString(t.Name(), "-"), "-"))
	if len(id) > 60 {
		id = id[len(id)-60:]
	}
	return TaskConfig{
		ID:          id,
		Name:        "main",
		Image:       testimage.DefaultRef,
		Command:     "sh",
		Args:        []string{"-c", script},
		MemoryBytes: 64 << 20,
		LogDir:      t.TempDir(),
		Labels:      map[string]string{"hive.alloc": id, "hive.task": "main"},
	}
}

// start starts cfg and destroys it when the test ends, pass or fail.
func start(t testing.TB, d *Containerd, cfg TaskConfig) TaskStatus {
	t.Helper()
	t.Cleanup(func() {
		if err := d.DestroyTask(context.Background(), cfg.ID); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	st, err := d.StartTask(context.Background(), cfg)
	if err != nil {
		t.Fatalf("StartTask: %v", err)
	}
	if st.State != StateRunning || st.PID == 0 {
		t.Fatalf("StartTask returned %+v, want running with a pid", st)
	}
	return st
}

func waitExit(t *testing.T, d *Containerd, id string, timeout time.Duration) TaskStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ch, err := d.WaitTask(ctx, id)
	if err != nil {
		t.Fatalf("WaitTask: %v", err)
	}
	st := <-ch
	if st.State != StateExited {
		t.Fatalf("WaitTask: %+v, want exited", st)
	}
	return st
}

func readLogs(t *testing.T, cfg TaskConfig, stream string) string {
	t.Helper()
	files, err := LogFiles(cfg.LogDir, cfg.Name, stream)
	if err != nil {
		t.Fatalf("LogFiles: %v", err)
	}
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			// Rotated out between the listing and the read, as the
			// logger keeps writing: what it held is gone by design.
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// waitLogs polls until the stream contains want: the logger writes
// asynchronously, so the exit can be reported before the last line lands.
func waitLogs(t *testing.T, cfg TaskConfig, stream, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := readLogs(t, cfg, stream)
		if strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never contained %q; it has:\n%s\nstderr:\n%s", stream, want, got, readLogs(t, cfg, "stderr"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertGone checks that nothing of task id is left in containerd.
func assertGone(t *testing.T, d *Containerd, id string) {
	t.Helper()
	ctx := d.ctx(context.Background())
	if _, err := d.client.ContainerService().Get(ctx, id); !errdefs.IsNotFound(err) {
		t.Errorf("container %s still exists (err %v)", id, err)
	}
	if _, err := d.client.SnapshotService(d.snapshotter).Stat(ctx, id); !errdefs.IsNotFound(err) {
		t.Errorf("snapshot %s still exists (err %v)", id, err)
	}
	tasks, err := d.ListTasks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range tasks {
		if st.ID == id {
			t.Errorf("ListTasks still lists %s: %+v", id, st)
		}
	}
}
