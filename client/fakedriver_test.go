package client

import (
	"context"
	"fmt"
	"io"
	"maps"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/hivesec/hive/client/driver"
	"github.com/hivesec/hive/structs"
)

// fakeDriver is an in-memory driver.Driver for unit tests. Tasks run until
// the test calls exit (or StopTask); StartErr, when set, fails StartTask.
type fakeDriver struct {
	mu       sync.Mutex
	tasks    map[string]*fakeTask
	images   map[string]driver.ImageInfo
	starts   []driver.TaskConfig
	pulls    []string
	stops    []string
	destroys []string
	signals  []string // "<id> <signal>"
	nextPID  uint32
	// StartErr returns an error for a start, or nil to start.
	StartErr func(cfg driver.TaskConfig) error
	// PullErr fails pulls; nil pulls succeed with a made-up digest.
	PullErr error
	// StopExitCode is the code a stopped task exits with.
	StopExitCode uint32
}

type fakeTask struct {
	status  driver.TaskStatus
	cfg     driver.TaskConfig
	waiters []chan driver.TaskStatus
}

var _ driver.Driver = (*fakeDriver)(nil)

func newFakeDriver() *fakeDriver {
	return &fakeDriver{tasks: map[string]*fakeTask{}, images: map[string]driver.ImageInfo{}, nextPID: 100, StopExitCode: 143}
}

func (f *fakeDriver) addImage(ref, digest string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name, _ := driver.NormalizeRef(ref)
	f.images[name] = driver.ImageInfo{Name: name, Digest: digest, Size: 1000}
}

func (f *fakeDriver) ImportImage(context.Context, io.Reader) ([]driver.ImageInfo, error) {
	return nil, fmt.Errorf("fake: %w", driver.ErrBadArchive)
}

func (f *fakeDriver) PullImage(_ context.Context, ref string) (driver.ImageInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pulls = append(f.pulls, ref)
	if f.PullErr != nil {
		return driver.ImageInfo{}, f.PullErr
	}
	name, _ := driver.NormalizeRef(ref)
	dgst := "sha256:pulled"
	if _, d, ok := strings.Cut(name, "@"); ok {
		dgst = d // pulled by digest
	}
	info := driver.ImageInfo{Name: name, Digest: dgst, Size: 1}
	f.images[name] = info
	return info, nil
}

func (f *fakeDriver) ListImages(context.Context) ([]driver.ImageInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []driver.ImageInfo
	for _, i := range f.images {
		out = append(out, i)
	}
	return out, nil
}

func (f *fakeDriver) StartTask(_ context.Context, cfg driver.TaskConfig) (driver.TaskStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.StartErr != nil {
		if err := f.StartErr(cfg); err != nil {
			return driver.TaskStatus{}, fmt.Errorf("start task %s: %w", cfg.ID, err)
		}
	}
	if _, ok := f.tasks[cfg.ID]; ok {
		return driver.TaskStatus{}, fmt.Errorf("start task %s: %w", cfg.ID, driver.ErrAlreadyExists)
	}
	if cfg.ImageDigest != "" {
		// As the real driver: run the image with that digest, and keep a
		// record of it under name@digest so a retag does not lose it.
		var found *driver.ImageInfo
		for _, img := range f.images {
			if img.Digest == cfg.ImageDigest {
				found = &img
				break
			}
		}
		if found == nil {
			return driver.TaskStatus{}, fmt.Errorf("start task %s: no image with digest %s: %w", cfg.ID, cfg.ImageDigest, driver.ErrNotFound)
		}
		name, _ := driver.NormalizeRef(cfg.Image)
		name, _, _ = strings.Cut(name, "@")
		if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
			name = name[:i]
		}
		pin := name + "@" + cfg.ImageDigest
		f.images[pin] = driver.ImageInfo{Name: pin, Digest: cfg.ImageDigest, Size: found.Size}
	}
	f.nextPID++
	st := driver.TaskStatus{ID: cfg.ID, State: driver.StateRunning, PID: f.nextPID, StartedAt: time.Now(), Labels: maps.Clone(cfg.Labels)}
	f.tasks[cfg.ID] = &fakeTask{status: st, cfg: cfg}
	f.starts = append(f.starts, cfg)
	return st, nil
}

func (f *fakeDriver) WaitTask(ctx context.Context, id string) (<-chan driver.TaskStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tasks[id]
	if !ok {
		return nil, fmt.Errorf("wait task %s: %w", id, driver.ErrNotFound)
	}
	out := make(chan driver.TaskStatus, 1)
	if t.status.State == driver.StateExited {
		out <- t.status
		close(out)
		return out, nil
	}
	inner := make(chan driver.TaskStatus, 1)
	t.waiters = append(t.waiters, inner)
	go func() {
		defer close(out)
		select {
		case st := <-inner:
			out <- st
		case <-ctx.Done():
			out <- driver.TaskStatus{ID: id, State: driver.StateUnknown, Err: ctx.Err().Error()}
		}
	}()
	return out, nil
}

// exit ends a running task with code.
func (f *fakeDriver) exit(id string, code uint32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.exitLocked(id, code)
}

func (f *fakeDriver) exitLocked(id string, code uint32) bool {
	t, ok := f.tasks[id]
	if !ok || t.status.State != driver.StateRunning {
		return false
	}
	t.status.State, t.status.ExitCode, t.status.ExitedAt = driver.StateExited, code, time.Now()
	for _, w := range t.waiters {
		w <- t.status
	}
	t.waiters = nil
	return true
}

func (f *fakeDriver) SignalTask(_ context.Context, id string, sig syscall.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tasks[id]
	if !ok {
		return fmt.Errorf("signal task %s: %w", id, driver.ErrNotFound)
	}
	if t.status.State == driver.StateRunning {
		f.signals = append(f.signals, id+" "+unix.SignalName(sig))
	}
	return nil
}

// signalled lists the signals sent to id, by name.
func (f *fakeDriver) signalled(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.signals {
		if tid, sig, _ := strings.Cut(s, " "); tid == id {
			out = append(out, sig)
		}
	}
	return out
}

func (f *fakeDriver) StopTask(_ context.Context, id string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops = append(f.stops, id)
	if _, ok := f.tasks[id]; !ok {
		return fmt.Errorf("stop task %s: %w", id, driver.ErrNotFound)
	}
	f.exitLocked(id, f.StopExitCode)
	return nil
}

func (f *fakeDriver) DestroyTask(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.destroys = append(f.destroys, id)
	f.exitLocked(id, 137)
	delete(f.tasks, id)
	return nil
}

func (f *fakeDriver) InspectTask(_ context.Context, id string) (driver.TaskStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tasks[id]
	if !ok {
		return driver.TaskStatus{}, fmt.Errorf("inspect task %s: %w", id, driver.ErrNotFound)
	}
	return t.status, nil
}

func (f *fakeDriver) ListTasks(context.Context) ([]driver.TaskStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []driver.TaskStatus
	for _, t := range f.tasks {
		out = append(out, t.status)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// put adds a container as if left by an earlier agent.
func (f *fakeDriver) put(st driver.TaskStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tasks[st.ID] = &fakeTask{status: st}
}

func (f *fakeDriver) startCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.starts)
}

func (f *fakeDriver) has(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.tasks[id]
	return ok
}

func (f *fakeDriver) stopped(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.stops {
		if s == id {
			return true
		}
	}
	return false
}

// reports collects what runners report; latest per allocation.
type reports struct {
	mu     sync.Mutex
	all    []structs.AllocUpdate
	latest map[string]structs.AllocUpdate
}

func newReports() *reports { return &reports{latest: map[string]structs.AllocUpdate{}} }

func (r *reports) push(u structs.AllocUpdate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, u)
	r.latest[u.ID] = u
}

func (r *reports) get(id string) (structs.AllocUpdate, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	u, ok := r.latest[id]
	return u, ok
}

// statuses lists the distinct client statuses reported for id, in order.
func (r *reports) statuses(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, u := range r.all {
		if u.ID == id && (len(out) == 0 || out[len(out)-1] != u.ClientStatus) {
			out = append(out, u.ClientStatus)
		}
	}
	return out
}

// testRunnerConfig wires a fake driver and a report collector.
func testRunnerConfig(t *testing.T, d driver.Driver, r *reports) *runnerConfig {
	return &runnerConfig{
		driver: d, allocDir: t.TempDir(), nodeID: "node-1", killTimeout: time.Second,
		logger: hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Warn}),
		report: r.push, now: time.Now,
	}
}

func testAlloc(id string, tasks ...*structs.Task) *structs.Allocation {
	return &structs.Allocation{ID: id, Namespace: "default", NodeID: "node-1", Group: "g", Tasks: tasks,
		DesiredStatus: structs.AllocDesiredRun, ClientStatus: structs.AllocPending}
}

func testTask(name string, p structs.RestartPolicy) *structs.Task {
	return &structs.Task{Name: name, Driver: "containerd", Config: structs.TaskConfig{Image: "busybox", Command: "sh"},
		Resources: structs.Resources{CPU: 100, MemoryMB: 64}, Restart: p}
}

// eventually polls cond until it holds or fails the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitStatus waits until the latest report on id has the client status.
func waitStatus(t *testing.T, r *reports, id, status string) structs.AllocUpdate {
	t.Helper()
	var u structs.AllocUpdate
	eventually(t, 5*time.Second, "alloc "+id+" "+status, func() error {
		var ok bool
		u, ok = r.get(id)
		if !ok || u.ClientStatus != status {
			return fmt.Errorf("latest report %+v", u)
		}
		return nil
	})
	return u
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// startedWith lists the image digests the task id was started with, in order.
func (f *fakeDriver) startedWith(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.starts {
		if c.ID == id {
			out = append(out, c.ImageDigest)
		}
	}
	return out
}
