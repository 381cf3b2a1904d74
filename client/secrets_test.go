package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/client/driver"
	"github.com/hivesec/hive/client/secretexec"
	"github.com/hivesec/hive/structs"
)

// fakeSecrets is a secretSource holding secrets in memory, with a state
// index that moves on every change; a query with an index waits for a
// newer one, as the managers' blocking queries do.
type fakeSecrets struct {
	mu      sync.Mutex
	index   uint64
	secrets map[string]structs.SecretValue
	changed chan struct{} // closed and replaced on every change
	err     error         // returned by every call while set
	calls   int
}

func newFakeSecrets() *fakeSecrets {
	return &fakeSecrets{index: 1, secrets: map[string]structs.SecretValue{}, changed: make(chan struct{})}
}

// set stores a new version of a secret with data.
func (f *fakeSecrets) set(name string, data map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.secrets[name].Version + 1
	f.secrets[name] = structs.SecretValue{Namespace: "default", Name: name, Version: v, Data: data}
	f.bumpLocked()
}

// remove drops a secret, as its expiry does.
func (f *fakeSecrets) remove(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.secrets, name)
	f.bumpLocked()
}

func (f *fakeSecrets) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
	f.bumpLocked()
}

func (f *fakeSecrets) bumpLocked() {
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeSecrets) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeSecrets) AllocSecrets(ctx context.Context, allocID string, index uint64, wait time.Duration) (*structs.NodeSecretsResponse, uint64, error) {
	f.mu.Lock()
	f.calls++
	for index > 0 && f.index <= index && f.err == nil {
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(wait):
		}
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, 0, f.err
	}
	resp := &structs.NodeSecretsResponse{AllocID: allocID, Secrets: map[string]structs.SecretValue{}}
	for k, v := range f.secrets {
		v.Data = maps.Clone(v.Data)
		resp.Secrets[k] = v
	}
	return resp, f.index, nil
}

// dirMounter is a secretMounter on plain directories, for tests that
// cannot or need not mount.
type dirMounter struct {
	mu       sync.Mutex
	unmounts []string
}

func (m *dirMounter) mounted(dir string) (bool, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil && fi.IsDir(), err
}

func (m *dirMounter) mount(dir string, size int64) error {
	if size < minSecretTmpfs {
		return fmt.Errorf("size %d below the minimum", size)
	}
	return os.MkdirAll(dir, 0o700)
}

func (m *dirMounter) unmount(dir string) error {
	m.mu.Lock()
	m.unmounts = append(m.unmounts, dir)
	m.mu.Unlock()
	return os.RemoveAll(dir)
}

func (m *dirMounter) unmounted() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.unmounts)
}

// secretRunnerConfig is testRunnerConfig with secret delivery on plain
// directories and a helper that passes the static check.
func secretRunnerConfig(t *testing.T, d driver.Driver, r *reports, src secretSource) (*runnerConfig, *dirMounter) {
	cfg := testRunnerConfig(t, d, r)
	m := &dirMounter{}
	cfg.secrets, cfg.mounter, cfg.helper = src, m, "/usr/local/bin/hive"
	cfg.checkHelper = func(string) error { return nil }
	return cfg, m
}

// testOwner is an owner the test can give files: 1000 as root, else the
// test's own user.
func testOwner() (int, int) {
	if os.Geteuid() == 0 {
		return 1000, 1001
	}
	return os.Getuid(), os.Getgid()
}

func fileStat(t *testing.T, path string) (os.FileMode, int, int, uint64) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return os.FileMode(st.Mode) & os.ModePerm, int(st.Uid), int(st.Gid), st.Ino
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestReplaceFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "db.txt")
	uid, gid := testOwner()

	changed, existed, err := replaceFile(path, []byte("v1"), 0o440, uid, gid, false)
	if err != nil || !changed || existed {
		t.Fatalf("first write: changed %v existed %v err %v", changed, existed, err)
	}
	mode, fu, fg, ino1 := fileStat(t, path)
	if mode != 0o440 || fu != uid || fg != gid || readString(t, path) != "v1" {
		t.Errorf("file %o %d:%d %q", mode, fu, fg, readString(t, path))
	}

	// The same content, mode and owner: nothing is written.
	changed, existed, err = replaceFile(path, []byte("v1"), 0o440, uid, gid, false)
	if _, _, _, ino := fileStat(t, path); err != nil || changed || !existed || ino != ino1 {
		t.Errorf("unchanged write: changed %v existed %v err %v, inode %d → %d", changed, existed, err, ino1, ino)
	}

	// A reader of the old file keeps reading the old content: the new one
	// is a new file renamed over it, never the old one rewritten.
	old, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	changed, existed, err = replaceFile(path, []byte("version two"), 0o400, uid, gid, false)
	if err != nil || !changed || !existed {
		t.Fatalf("replace: changed %v existed %v err %v", changed, existed, err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(old); err != nil || buf.String() != "v1" {
		t.Errorf("old reader sees %q %v", buf.String(), err)
	}
	mode, _, _, ino2 := fileStat(t, path)
	if mode != 0o400 || ino2 == ino1 || readString(t, path) != "version two" {
		t.Errorf("replaced file: mode %o inode %d (was %d) content %q", mode, ino2, ino1, readString(t, path))
	}

	// A mode change alone rewrites the file but is no change of value.
	changed, _, err = replaceFile(path, []byte("version two"), 0o444, uid, gid, false)
	if mode, _, _, _ := fileStat(t, path); err != nil || changed || mode != 0o444 {
		t.Errorf("mode change: changed %v mode %o err %v", changed, mode, err)
	}

	// keepOwner keeps whoever owns the file now.
	if _, _, err := replaceFile(path, []byte("three"), 0o400, 0, 0, true); err != nil {
		t.Fatal(err)
	}
	if _, fu, fg, _ := fileStat(t, path); fu != uid || fg != gid {
		t.Errorf("keepOwner: owner %d:%d, want %d:%d", fu, fg, uid, gid)
	}

	// No temporary file is left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %v", entries)
	}
}

func secretTask(name string, secrets ...*structs.TaskSecret) *structs.Task {
	t := testTask(name, quickPolicy(0, structs.RestartModeFail))
	t.Secrets = secrets
	return t
}

func TestWriteTaskSecrets(t *testing.T) {
	dir := t.TempDir()
	uid, gid := testOwner()
	task := secretTask("web",
		&structs.TaskSecret{Label: "db", Name: "db", Key: "password", File: "db.txt", Mode: 0o440, UID: uid, GID: gid, Env: "DB_PASSWORD", ChangeMode: structs.SecretChangeRestart},
		&structs.TaskSecret{Label: "tls", Name: "tls", Key: "key", File: "tls/api.key", Mode: 0o400, ChangeMode: structs.SecretChangeSignal, ChangeSignal: "SIGHUP"},
		&structs.TaskSecret{Label: "flags", Name: "flags", Key: "json", Env: "FLAGS", ChangeMode: structs.SecretChangeNoop})
	resp := func(db, tls, flags string) *structs.NodeSecretsResponse {
		r := &structs.NodeSecretsResponse{Secrets: map[string]structs.SecretValue{}}
		if db != "" {
			r.Secrets["db"] = structs.SecretValue{Name: "db", Data: map[string]string{"password": db}}
		}
		if tls != "" {
			r.Secrets["tls"] = structs.SecretValue{Name: "tls", Data: map[string]string{"key": tls}}
		}
		if flags != "" {
			r.Secrets["flags"] = structs.SecretValue{Name: "flags", Data: map[string]string{"json": flags}}
		}
		return r
	}

	ch, err := writeTaskSecrets(dir, task, resp("pw1\n", "KEY1", `{"a":1}`), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.changed) != 0 || ch.restart || len(ch.signals) != 0 {
		t.Errorf("first delivery counted as a change: %+v", ch)
	}
	files := secretFilesDir(dir, "web")
	if got := readString(t, filepath.Join(files, "db.txt")); got != "pw1\n" {
		t.Errorf("db.txt %q", got)
	}
	if mode, fu, fg, _ := fileStat(t, filepath.Join(files, "db.txt")); mode != 0o440 || fu != uid || fg != gid {
		t.Errorf("db.txt %o %d:%d", mode, fu, fg)
	}
	if mode, fu, _, _ := fileStat(t, filepath.Join(files, "tls", "api.key")); mode != 0o400 || fu != os.Getuid() {
		t.Errorf("tls/api.key %o uid %d", mode, fu)
	}
	envFile := filepath.Join(secretEnvDir(dir, "web"), secretEnvFileName)
	if mode, _, _, _ := fileStat(t, envFile); mode != 0o400 {
		t.Errorf("env file mode %o", mode)
	}
	entries, err := secretexec.ParseEnv([]byte(readString(t, envFile)))
	if err != nil || !slices.Equal(entries, []string{"DB_PASSWORD=pw1\n", `FLAGS={"a":1}`}) {
		t.Errorf("env file %q %v", entries, err)
	}
	// The files dir holds the files only: the env file is elsewhere.
	if _, err := os.Stat(filepath.Join(files, secretEnvFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("env file visible under /run/secrets: %v", err)
	}

	// Nothing new: no change.
	if ch, err := writeTaskSecrets(dir, task, resp("pw1\n", "KEY1", `{"a":1}`), true); err != nil || len(ch.changed) != 0 {
		t.Errorf("same values: %+v %v", ch, err)
	}

	// New values: each secret's change mode.
	ch, err = writeTaskSecrets(dir, task, resp("pw2", "KEY1", `{"a":1}`), true)
	if err != nil || !slices.Equal(ch.changed, []string{"db"}) || !ch.restart || len(ch.signals) != 0 {
		t.Errorf("db changed: %+v %v", ch, err)
	}
	ch, err = writeTaskSecrets(dir, task, resp("pw2", "KEY2", `{"a":1}`), true)
	if err != nil || !slices.Equal(ch.changed, []string{"tls"}) || ch.restart || !slices.Equal(ch.signals, []string{"SIGHUP"}) {
		t.Errorf("tls changed: %+v %v", ch, err)
	}
	ch, err = writeTaskSecrets(dir, task, resp("pw2", "KEY2", `{"a":2}`), true)
	if err != nil || !slices.Equal(ch.changed, []string{"flags"}) || ch.restart || len(ch.signals) != 0 {
		t.Errorf("flags changed: %+v %v", ch, err)
	}

	// Expired: the file and the variable go, nothing restarts.
	ch, err = writeTaskSecrets(dir, task, resp("", "KEY2", `{"a":2}`), true)
	if err != nil || len(ch.changed) != 0 || ch.restart || !slices.Equal(ch.removed, []string{"db"}) {
		t.Errorf("db expired: %+v %v", ch, err)
	}
	if _, err := os.Stat(filepath.Join(files, "db.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("expired secret's file still there: %v", err)
	}
	if entries, _ := secretexec.ParseEnv([]byte(readString(t, envFile))); !slices.Equal(entries, []string{`FLAGS={"a":2}`}) {
		t.Errorf("env after expiry %q", entries)
	}
	// Back again: a change (the task had lost it).
	ch, err = writeTaskSecrets(dir, task, resp("pw3", "KEY2", `{"a":2}`), true)
	if err != nil || !slices.Equal(ch.changed, []string{"db"}) || !ch.restart {
		t.Errorf("db back: %+v %v", ch, err)
	}

	// A value an environment cannot carry fails the env file, not the files.
	if _, err := writeTaskSecrets(dir, task, resp("pw\x00", "KEY2", `{"a":2}`), true); err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("NUL in an env value: %v", err)
	}
}

func TestAddSecretMounts(t *testing.T) {
	fileOnly := secretTask("f", &structs.TaskSecret{Label: "a", Name: "a", Key: "k", File: "a"})
	envOnly := secretTask("e", &structs.TaskSecret{Label: "a", Name: "a", Key: "k", Env: "A"})
	both := secretTask("b", &structs.TaskSecret{Label: "a", Name: "a", Key: "k", File: "a", Env: "A"})
	dir := "/var/hive/allocs/x/_secrets"

	var cfg driver.TaskConfig
	addSecretMounts(&cfg, fileOnly, dir, "/usr/bin/hive")
	if !slices.Equal(cfg.Mounts, []driver.Mount{{Source: dir + "/files/f", Destination: "/run/secrets", ReadOnly: true}}) || cfg.ExecWrapper != nil || cfg.OwnedByUser != nil {
		t.Errorf("file only: %+v", cfg)
	}
	cfg = driver.TaskConfig{}
	addSecretMounts(&cfg, envOnly, dir, "/usr/bin/hive")
	want := []driver.Mount{
		{Source: dir + "/env/e", Destination: "/run/hive-secret-env", ReadOnly: true},
		{Source: "/usr/bin/hive", Destination: "/run/hive/hive", ReadOnly: true},
	}
	if !slices.Equal(cfg.Mounts, want) || !slices.Equal(cfg.OwnedByUser, []string{dir + "/env/e/env"}) ||
		!slices.Equal(cfg.ExecWrapper, []string{"/run/hive/hive", "secret-exec", "--env-file", "/run/hive-secret-env/env", "--"}) {
		t.Errorf("env only: %+v", cfg)
	}
	cfg = driver.TaskConfig{}
	addSecretMounts(&cfg, both, dir, "/usr/bin/hive")
	if len(cfg.Mounts) != 3 || cfg.Mounts[0].Destination != "/run/secrets" || len(cfg.ExecWrapper) == 0 {
		t.Errorf("both: %+v", cfg)
	}
}

func TestValidateTaskSecrets(t *testing.T) {
	good := &structs.TaskSecret{Label: "a", Name: "a", Key: "k", File: "x/y", Mode: 0o400, Env: "A", ChangeMode: structs.SecretChangeSignal, ChangeSignal: "SIGUSR1"}
	if err := validateTaskSecrets(secretTask("t", good)); err != nil {
		t.Errorf("good: %v", err)
	}
	for name, mod := range map[string]func(s *structs.TaskSecret){
		"absolute file":  func(s *structs.TaskSecret) { s.File = "/etc/shadow" },
		"escaping file":  func(s *structs.TaskSecret) { s.File = "../../etc/shadow" },
		"unclean file":   func(s *structs.TaskSecret) { s.File = "a/./b" },
		"setuid mode":    func(s *structs.TaskSecret) { s.Mode = 0o4755 },
		"bad env":        func(s *structs.TaskSecret) { s.Env = "A=B" },
		"no delivery":    func(s *structs.TaskSecret) { s.File, s.Env = "", "" },
		"unknown signal": func(s *structs.TaskSecret) { s.ChangeSignal = "SIGNOPE" },
		"unknown mode":   func(s *structs.TaskSecret) { s.ChangeMode = "reload" },
		"no key":         func(s *structs.TaskSecret) { s.Key = "" },
	} {
		s := *good
		mod(&s)
		if err := validateTaskSecrets(secretTask("t", &s)); err == nil {
			t.Errorf("%s: passed", name)
		}
	}
	dup := secretTask("t", good, good)
	if err := validateTaskSecrets(dup); err == nil {
		t.Error("duplicate file passed")
	}
}

// TestSecretsChangeModes runs an allocation whose tasks take secrets with
// each change mode through the runner with the fake driver: delivery
// before start, no value in what the driver is given, restart, signal
// and noop on a new version, and an expired secret removed without a
// restart; stopping removes the tmpfs.
func TestSecretsChangeModes(t *testing.T) {
	d, r, src := newFakeDriver(), newReports(), newFakeSecrets()
	d.addImage("busybox", "sha256:x")
	cfg, mnt := secretRunnerConfig(t, d, r, src)
	src.set("db", map[string]string{"password": "hunter2-v1"})
	src.set("tls", map[string]string{"key": "tls-key-v1"})
	src.set("flags", map[string]string{"json": "flags-v1"})

	a := testAlloc("sec1",
		secretTask("restarter", &structs.TaskSecret{Label: "db", Name: "db", Key: "password", File: "db.txt", Mode: 0o400, Env: "DB_PASSWORD", ChangeMode: structs.SecretChangeRestart}),
		secretTask("signalled", &structs.TaskSecret{Label: "tls", Name: "tls", Key: "key", File: "tls.key", Mode: 0o400, ChangeMode: structs.SecretChangeSignal, ChangeSignal: "SIGHUP"}),
		secretTask("ignorer", &structs.TaskSecret{Label: "flags", Name: "flags", Key: "json", File: "flags.json", Mode: 0o444, ChangeMode: structs.SecretChangeNoop}),
		testTask("plain", quickPolicy(0, structs.RestartModeFail)))
	ar := newAllocRunner(t.Context(), cfg, a)
	ar.run(nil)
	waitStatus(t, r, "sec1", structs.AllocRunning)

	dir := secretsDir(cfg.allocDir, "sec1")
	files := func(task string) string { return secretFilesDir(dir, task) }
	if got := readString(t, filepath.Join(files("restarter"), "db.txt")); got != "hunter2-v1" {
		t.Errorf("db.txt %q", got)
	}
	// The driver was given paths, never values.
	d.mu.Lock()
	starts := slices.Clone(d.starts)
	d.mu.Unlock()
	for _, c := range starts {
		b, _ := json.Marshal(c)
		for _, v := range []string{"hunter2", "tls-key", "flags-v1"} {
			if strings.Contains(string(b), v) {
				t.Errorf("task config of %s holds a secret value: %s", c.ID, b)
			}
		}
		switch c.ID {
		case "sec1-restarter":
			if len(c.ExecWrapper) == 0 || c.ExecWrapper[0] != "/run/hive/hive" || len(c.Mounts) != 3 {
				t.Errorf("restarter config: %+v", c)
			}
		case "sec1-plain":
			if len(c.Mounts) != 0 || c.ExecWrapper != nil {
				t.Errorf("a task without secrets got secret mounts: %+v", c)
			}
		}
	}
	startsOf := func(id string) int { return len(d.startedWith(id)) }

	// A new version of each.
	src.set("tls", map[string]string{"key": "tls-key-v2"})
	eventually(t, 5*time.Second, "SIGHUP to the signalled task", func() error {
		if got := d.signalled("sec1-signalled"); !slices.Equal(got, []string{"SIGHUP"}) {
			return fmt.Errorf("signals %v", got)
		}
		return nil
	})
	if got := readString(t, filepath.Join(files("signalled"), "tls.key")); got != "tls-key-v2" {
		t.Errorf("tls.key %q", got)
	}
	src.set("flags", map[string]string{"json": "flags-v2"})
	eventually(t, 5*time.Second, "flags replaced", func() error {
		if got := readString(t, filepath.Join(files("ignorer"), "flags.json")); got != "flags-v2" {
			return fmt.Errorf("flags.json %q", got)
		}
		return nil
	})
	src.set("db", map[string]string{"password": "hunter2-v2"})
	eventually(t, 5*time.Second, "the restarter restarted", func() error {
		u, _ := r.get("sec1")
		if ts := u.TaskStates["restarter"]; startsOf("sec1-restarter") != 2 || ts.State != structs.TaskRunning || ts.Restarts != 1 {
			return fmt.Errorf("%d starts, state %+v", startsOf("sec1-restarter"), ts)
		}
		return nil
	})
	if !d.stopped("sec1-restarter") {
		t.Error("the restarter was not stopped before its restart")
	}
	for _, id := range []string{"sec1-signalled", "sec1-ignorer", "sec1-plain"} {
		if n := startsOf(id); n != 1 || d.stopped(id) {
			t.Errorf("%s: %d starts, stopped %v: only the restart mode restarts", id, n, d.stopped(id))
		}
	}
	if got := d.signalled("sec1-ignorer"); len(got) != 0 {
		t.Errorf("the noop task got signals %v", got)
	}
	// The restart was not a failure: the policy (0 attempts) is untouched.
	if u, _ := r.get("sec1"); u.ClientStatus != structs.AllocRunning {
		t.Errorf("after the restart: %s", u.ClientStatus)
	}

	// The tls secret expires: its file goes, the task keeps running.
	src.remove("tls")
	eventually(t, 5*time.Second, "the expired secret's file removed", func() error {
		if _, err := os.Stat(filepath.Join(files("signalled"), "tls.key")); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("tls.key: %v", err)
		}
		u, _ := r.get("sec1")
		if ts := u.TaskStates["signalled"]; !strings.Contains(ts.LastError, "tls expired or were deleted") {
			return fmt.Errorf("state %+v", ts)
		}
		return nil
	})
	if n := startsOf("sec1-signalled"); n != 1 || d.stopped("sec1-signalled") || len(d.signalled("sec1-signalled")) != 1 {
		t.Errorf("expiry restarted or signalled the task: %d starts, signals %v", n, d.signalled("sec1-signalled"))
	}

	ar.stop("test over")
	waitStatus(t, r, "sec1", structs.AllocComplete)
	<-ar.done
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) || !slices.Equal(mnt.unmounted(), []string{dir}) {
		t.Errorf("after stop: %v, unmounts %v", err, mnt.unmounted())
	}
}

// TestSecretsWaitForMissing: a task whose secret does not exist yet waits
// (saying so) and starts once it does.
func TestSecretsWaitForMissing(t *testing.T) {
	d, r, src := newFakeDriver(), newReports(), newFakeSecrets()
	d.addImage("busybox", "sha256:x")
	cfg, _ := secretRunnerConfig(t, d, r, src)
	a := testAlloc("sec2", secretTask("t", &structs.TaskSecret{Label: "db", Name: "db", Key: "password", Env: "DB", ChangeMode: structs.SecretChangeRestart}))
	ar := newAllocRunner(t.Context(), cfg, a)
	ar.run(nil)
	eventually(t, 5*time.Second, "the task to say what it waits for", func() error {
		u, _ := r.get("sec2")
		if ts := u.TaskStates["t"]; ts == nil || ts.State != structs.TaskPending || !strings.Contains(ts.LastError, "db (key password)") {
			return fmt.Errorf("%+v", ts)
		}
		return nil
	})
	// Present, but without the key: still waiting.
	src.set("db", map[string]string{"user": "app"})
	time.Sleep(50 * time.Millisecond)
	if d.startCount() != 0 {
		t.Fatal("started without its secret")
	}
	src.set("db", map[string]string{"user": "app", "password": "pw"})
	u := waitStatus(t, r, "sec2", structs.AllocRunning)
	if ts := u.TaskStates["t"]; ts.LastError != "" {
		t.Errorf("LastError kept after the secrets came: %q", ts.LastError)
	}
	ar.stop("test over")
	<-ar.done
}

// TestSecretsTransientErrorsRetry: a manager that cannot answer delays
// the start; one that refuses the node fails the allocation.
func TestSecretsErrors(t *testing.T) {
	t.Run("transient", func(t *testing.T) {
		d, r, src := newFakeDriver(), newReports(), newFakeSecrets()
		d.addImage("busybox", "sha256:x")
		cfg, _ := secretRunnerConfig(t, d, r, src)
		src.set("db", map[string]string{"password": "pw"})
		src.setErr(errors.New("no manager answers"))
		ar := newAllocRunner(t.Context(), cfg, testAlloc("sec3", secretTask("t", &structs.TaskSecret{Label: "db", Name: "db", Key: "password", File: "db"})))
		ar.run(nil)
		eventually(t, 5*time.Second, "the error shown", func() error {
			u, _ := r.get("sec3")
			if ts := u.TaskStates["t"]; ts == nil || !strings.Contains(ts.LastError, "no manager answers") {
				return fmt.Errorf("%+v", ts)
			}
			return nil
		})
		src.setErr(nil)
		waitStatus(t, r, "sec3", structs.AllocRunning)
		ar.stop("test over")
		<-ar.done
	})
	t.Run("forbidden", func(t *testing.T) {
		d, r, src := newFakeDriver(), newReports(), newFakeSecrets()
		d.addImage("busybox", "sha256:x")
		cfg, _ := secretRunnerConfig(t, d, r, src)
		grace := forbiddenGrace
		forbiddenGrace = 300 * time.Millisecond
		t.Cleanup(func() { forbiddenGrace = grace })
		src.setErr(fmt.Errorf("%w: allocation on another node (HTTP 403)", errSecretsForbidden))
		ar := newAllocRunner(t.Context(), cfg, testAlloc("sec4", secretTask("t", &structs.TaskSecret{Label: "db", Name: "db", Key: "password", File: "db"})))
		start := time.Now()
		ar.run(nil)
		u := waitStatus(t, r, "sec4", structs.AllocFailed)
		if el := time.Since(start); el < forbiddenGrace || src.callCount() < 2 {
			t.Errorf("failed after %s and %d calls: a refusal is retried for %s first", el, src.callCount(), forbiddenGrace)
		}
		if ts := u.TaskStates["t"]; !ts.Failed || !strings.Contains(ts.LastError, "refused this node") {
			t.Errorf("%+v", ts)
		}
		<-ar.done
		if d.startCount() != 0 {
			t.Error("started without its secrets")
		}
	})
	t.Run("dynamic helper", func(t *testing.T) {
		d, r, src := newFakeDriver(), newReports(), newFakeSecrets()
		d.addImage("busybox", "sha256:x")
		cfg, _ := secretRunnerConfig(t, d, r, src)
		cfg.checkHelper = func(p string) error { return fmt.Errorf("%s is dynamically linked", p) }
		src.set("db", map[string]string{"password": "pw"})
		ar := newAllocRunner(t.Context(), cfg, testAlloc("sec5",
			secretTask("env", &structs.TaskSecret{Label: "db", Name: "db", Key: "password", Env: "DB"})))
		ar.run(nil)
		u := waitStatus(t, r, "sec5", structs.AllocFailed)
		if ts := u.TaskStates["env"]; !ts.Failed || ts.Restarts != 0 || !strings.Contains(ts.LastError, "dynamically linked") {
			t.Errorf("%+v", ts)
		}
		<-ar.done
	})
}

// TestSecretsShutdownAndReattach: an agent shutdown leaves the tmpfs for
// the next agent, which re-attaches to the running task without waiting
// for a manager, then refreshes the secrets and applies a change made
// while it was down.
func TestSecretsShutdownAndReattach(t *testing.T) {
	d, r, src := newFakeDriver(), newReports(), newFakeSecrets()
	d.addImage("busybox", "sha256:x")
	cfg, mnt := secretRunnerConfig(t, d, r, src)
	src.set("db", map[string]string{"password": "v1"})
	a := testAlloc("sec6", secretTask("t", &structs.TaskSecret{Label: "db", Name: "db", Key: "password", File: "db.txt", Mode: 0o400, ChangeMode: structs.SecretChangeRestart}))
	ctx, cancel := context.WithCancel(t.Context())
	m := newAllocManager(ctx, cfg)
	m.reconcile([]*structs.Allocation{a}, nil)
	waitStatus(t, r, "sec6", structs.AllocRunning)
	cancel()
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	m.wait(wctx)
	wcancel()
	dir := secretsDir(cfg.allocDir, "sec6")
	if _, err := os.Stat(filepath.Join(dir, readyMarker)); err != nil || len(mnt.unmounted()) != 0 {
		t.Fatalf("shutdown removed the secrets: %v, unmounts %v", err, mnt.unmounted())
	}

	// While no agent runs, a new version; no manager answers at first.
	src.set("db", map[string]string{"password": "v2"})
	src.setErr(errors.New("no manager answers"))
	ru := a
	ru.ClientStatus = structs.AllocRunning
	m2 := newAllocManager(t.Context(), cfg)
	restore, err := m2.reattach(t.Context(), []*structs.Allocation{ru})
	if err != nil {
		t.Fatal(err)
	}
	m2.reconcile([]*structs.Allocation{ru}, restore)
	eventually(t, 5*time.Second, "re-attached without the managers", func() error {
		if st, _ := m2.runner("sec6").snapshot(); st != structs.AllocRunning {
			return fmt.Errorf("status %s", st)
		}
		return nil
	})
	if d.startCount() != 1 {
		t.Fatalf("%d starts: the task was started again instead of re-attached", d.startCount())
	}
	src.setErr(nil)
	eventually(t, 5*time.Second, "the change applied", func() error {
		if got := readString(t, filepath.Join(secretFilesDir(dir, "t"), "db.txt")); got != "v2" || d.startCount() != 2 {
			return fmt.Errorf("db.txt %q, %d starts", got, d.startCount())
		}
		return nil
	})
	m2.runner("sec6").stop("test over")
	<-m2.runner("sec6").done
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("secrets left after stop: %v", err)
	}
}

func TestSweepSecrets(t *testing.T) {
	allocDir := t.TempDir()
	for _, id := range []string{"keep", "gone"} {
		if err := os.MkdirAll(secretsDir(allocDir, id), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(taskLogDir(allocDir, "nosecrets", "t"), 0o700); err != nil {
		t.Fatal(err)
	}
	m := &dirMounter{}
	sweepSecrets(allocDir, map[string]bool{"keep": true}, m, testLogger(t.Name()))
	if got := m.unmounted(); !slices.Equal(got, []string{secretsDir(allocDir, "gone")}) {
		t.Errorf("unmounted %v", got)
	}
	if _, err := os.Stat(secretsDir(allocDir, "keep")); err != nil {
		t.Error(err)
	}
}

// elfFile writes a minimal 64-bit little-endian ELF executable header
// with one program header of type ptype.
func elfFile(t *testing.T, ptype uint32, interp string) string {
	t.Helper()
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	binary.Write(&b, le, uint16(2))             // e_type EXEC
	binary.Write(&b, le, uint16(62))            // e_machine x86-64
	binary.Write(&b, le, uint32(1))             // e_version
	binary.Write(&b, le, uint64(0))             // e_entry
	binary.Write(&b, le, uint64(64))            // e_phoff
	binary.Write(&b, le, uint64(0))             // e_shoff
	binary.Write(&b, le, uint32(0))             // e_flags
	binary.Write(&b, le, uint16(64))            // e_ehsize
	binary.Write(&b, le, uint16(56))            // e_phentsize
	binary.Write(&b, le, uint16(1))             // e_phnum
	binary.Write(&b, le, uint16(64))            // e_shentsize
	binary.Write(&b, le, uint16(0))             // e_shnum
	binary.Write(&b, le, uint16(0))             // e_shstrndx
	binary.Write(&b, le, ptype)                 // p_type
	binary.Write(&b, le, uint32(4))             // p_flags
	binary.Write(&b, le, uint64(120))           // p_offset
	binary.Write(&b, le, uint64(0))             // p_vaddr
	binary.Write(&b, le, uint64(0))             // p_paddr
	binary.Write(&b, le, uint64(len(interp)+1)) // p_filesz
	binary.Write(&b, le, uint64(len(interp)+1)) // p_memsz
	binary.Write(&b, le, uint64(1))             // p_align
	b.WriteString(interp)
	b.WriteByte(0)
	p := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(p, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckStatic(t *testing.T) {
	const ptLoad, ptInterp = 1, 3
	if err := checkStatic(elfFile(t, ptLoad, "")); err != nil {
		t.Errorf("static: %v", err)
	}
	err := checkStatic(elfFile(t, ptInterp, "/lib64/ld-linux-x86-64.so.2"))
	if err == nil || !strings.Contains(err.Error(), "dynamically linked (it needs /lib64/ld-linux-x86-64.so.2)") || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("dynamic: %v", err)
	}
	script := filepath.Join(t.TempDir(), "script")
	os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755)
	if err := checkStatic(script); err == nil || !strings.Contains(err.Error(), "not an ELF executable") {
		t.Errorf("script: %v", err)
	}
	if err := checkStatic(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file passed")
	}
}

// TestNodeAgentSecrets checks the API call the agent's secret source
// makes: path, query, index and the 403 that fails an allocation.
func TestNodeAgentSecrets(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.RequestURI())
		mu.Unlock()
		if r.URL.Path != "/v1/node/secrets" {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("alloc") == "elsewhere" {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"error":"allocation elsewhere is not on this node","code":"forbidden"}`))
			return
		}
		w.Header().Set(api.IndexHeader, "42")
		json.NewEncoder(w).Encode(structs.NodeSecretsResponse{AllocID: r.URL.Query().Get("alloc"),
			Secrets: map[string]structs.SecretValue{"db": {Name: "db", Version: 3, Data: map[string]string{"password": "pw"}}}})
	}))
	caPEM, cert := managerCert(t)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	c, err := api.NewClient(&api.Config{Address: srv.URL, CACertPEM: caPEM, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	resp, meta, err := c.NodeAgent().Secrets(t.Context(), "a/1", &api.QueryOptions{WaitIndex: 7, WaitTime: 2 * time.Second})
	if err != nil || meta.LastIndex != 42 || resp.AllocID != "a/1" || resp.Secrets["db"].Data["password"] != "pw" || resp.Secrets["db"].Version != 3 {
		t.Fatalf("Secrets: %+v %+v %v", resp, meta, err)
	}
	if _, _, err := c.NodeAgent().Secrets(t.Context(), "x", nil); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.NodeAgent().Secrets(t.Context(), "elsewhere", nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusForbidden {
		t.Errorf("forbidden: %v", err)
	}
	if _, _, err := c.NodeAgent().Secrets(t.Context(), " ", nil); err == nil {
		t.Error("empty allocation ID passed")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"/v1/node/secrets?alloc=a%2F1&index=7&wait=2s", "/v1/node/secrets?alloc=x", "/v1/node/secrets?alloc=elsewhere"}
	if !slices.Equal(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
}

// managerCert makes a self-signed certificate for the name API clients
// verify, and returns it with its PEM.
func managerCert(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{api.ManagerServerName}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return pemCert, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestTmpfsMounter mounts a real tmpfs: root only, like the integration
// tests, and it fails rather than skips without root.
func TestTmpfsMounter(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("TestTmpfsMounter needs root to mount a tmpfs")
	}
	m := tmpfsMounter{}
	parent := t.TempDir()
	dir := filepath.Join(parent, secretsDirName)
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	if ok, err := m.mounted(dir); ok || err != nil {
		t.Fatalf("mounted before mount: %v %v", ok, err)
	}
	// A leftover plain directory is replaced, not mounted over with its
	// content hidden underneath.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "stale"), []byte("x"), 0o600)
	if err := m.mount(dir, minSecretTmpfs); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.mounted(dir); !ok || err != nil {
		t.Fatalf("not mounted: %v", err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	want := int64(unix.ST_NODEV | unix.ST_NOSUID | unix.ST_NOEXEC)
	if fs.Type != unix.TMPFS_MAGIC || fs.Flags&want != want || fs.Blocks*uint64(fs.Bsize) != minSecretTmpfs {
		t.Errorf("statfs: type %#x flags %#x size %d", fs.Type, fs.Flags, fs.Blocks*uint64(fs.Bsize))
	}
	if mode, uid, _, _ := fileStat(t, dir); mode != 0o700 || uid != 0 {
		t.Errorf("root of the tmpfs: mode %o uid %d", mode, uid)
	}
	if _, err := os.Stat(filepath.Join(dir, "stale")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the leftover's content shows: %v", err)
	}
	// Mounting again keeps what is there (an agent restart).
	os.WriteFile(filepath.Join(dir, "kept"), []byte("x"), 0o600)
	if err := m.mount(dir, minSecretTmpfs); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kept")); err != nil {
		t.Errorf("a second mount lost the content: %v", err)
	}
	// An open file does not keep it: the unmount detaches.
	f, err := os.Open(filepath.Join(dir, "kept"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := m.unmount(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after unmount: %v", err)
	}
	if err := m.unmount(dir); err != nil {
		t.Errorf("unmounting twice: %v", err)
	}
	// A mount point of another kind is refused.
	if _, err := m.mounted("/proc"); err == nil {
		t.Error("/proc passed as a secret tmpfs")
	}
}
