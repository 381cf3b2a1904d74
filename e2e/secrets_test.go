package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/client/driver/testimage"
	"github.com/hivesec/hive/structs"
)

// Acceptance tests for secrets and the keyring.
//
// TestSecrets, on 3 managers and 1 worker with its own containerd:
//
//  1. secret default/db-password (password=V1) reaches the tasks of the
//     job in testdata/secrets.hcl as a read-only file on a tmpfs and as an
//     environment variable; the tasks print SHA-256 digests of what they
//     see, never the value, so the value itself must be nowhere on disk;
//  2. `secret update` to V2: the file changes in both running containers;
//     the task with change_mode restart restarts and sees V2 in its
//     environment too, the one with change_mode noop keeps running; a
//     task with an env secret also runs in a 32 MiB memory limit
//     (testdata/secrets-small.hcl), wrapper included;
//  3. the worker's certificate gets its own allocation's secrets but a 403
//     for an allocation that is not on it (so does another node's), and
//     the manager's audit log records the denials;
//  4. V1 and V2 are in no file under the cluster's dir: every manager's and
//     the worker's data dir (Raft, state, audit, the worker's containerd
//     root and state, task logs), the daemons' own logs and a snapshot
//     saved with `operator snapshot save`;
//  5. 1,000 secrets, readers revealing them on every manager without
//     pause, and a root key rotation: no read fails, the rotation ends
//     with one key and nothing pending on every manager, the old key is
//     gone, every secret still reveals its value, the audit log (kept at
//     level request-response) holds only redacted reveals, and the job's
//     tasks are not restarted by the re-wrap (times printed).
//
// TestSecretsAutolock, on 3 managers of a cluster made with --autolock: a
// restarted follower is locked (reveals refused with 503) until it gets
// the unlock key; a wrong key is refused; no manager's data dir holds the
// key.
//
// The steps build on each other, so they are not subtests.

const (
	secretsJob   = "secrets"
	secretBulkN  = 1000
	secretBulkNS = structs.DefaultNamespace
)

func TestSecrets(t *testing.T) {
	began := time.Now()
	c := newSecretsCluster(t)
	managers, w := c.Managers(), c.Workers()[0]
	mgr := c.Host(0)
	cl := jobAPI(t, c)

	v1 := "hive-e2e-secret-v1-" + rand.Text()
	v2 := "hive-e2e-secret-v2-" + rand.Text()
	h1, h2 := sha256Hex(v1), sha256Hex(v2)

	// ---- 1. the job gets V1 as a file and as an environment variable.
	c.MustCLI("secret", "create", "default/db-password", "--from-literal", "password="+v1)
	start := time.Now()
	if out, stderr, err := c.CLIWithin(mgr, 2*time.Minute, "job", "run", "--detach", jobFile(t, "secrets.hcl")); err != nil {
		t.Fatalf("job run secrets.hcl: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
	}
	allocs := waitRunning(t, c, cl, secretsJob, 1, -1, 2*time.Minute, nil)
	alloc := live(allocs)[0]
	if alloc.NodeID != w.NodeID() {
		t.Fatalf("allocation %s is on node %s, want the worker %s", alloc.ID, alloc.NodeID, w.NodeID())
	}
	app := waitTaskLog(t, c, alloc.ID, "app", func(l taskLog) error {
		return l.lastIs(map[string]string{"file": h1, "env": h1, "mode": "400:1000"})
	})
	watcher := waitTaskLog(t, c, alloc.ID, "watcher", func(l taskLog) error {
		return l.lastIs(map[string]string{"file": h1, "mode": "444:0"})
	})
	reportMetric(t, "job run → both tasks print the digest of V1 (file and env)", time.Since(start))
	if app.starts != 1 || watcher.starts != 1 {
		t.Errorf("before the update: app started %d times, watcher %d; want once each", app.starts, watcher.starts)
	}
	if err := checkSecretTmpfs(w, alloc.ID); err != nil {
		t.Errorf("secret tmpfs: %v", err)
	}
	before, err := allocStatus(c, alloc.ID)
	if err != nil {
		t.Fatal(err)
	}
	appBefore, watcherBefore := *before.TaskStates["app"], *before.TaskStates["watcher"]

	// ---- 2. update to V2: files change; app restarts, watcher does not.
	updated := time.Now()
	c.MustCLI("secret", "update", "default/db-password", "--from-literal", "password="+v2)
	var watcherAt, appAt time.Duration
	c.WaitFor(90*time.Second, "both tasks to see V2 (app restarted, watcher's file replaced)", func() error {
		var errs []error
		if watcherAt == 0 {
			l, err := readTaskLog(c, alloc.ID, "watcher")
			if err == nil {
				err = l.lastIs(map[string]string{"file": h2, "mode": "444:0"})
			}
			if err == nil {
				watcherAt = time.Since(updated)
			}
			errs = append(errs, err)
		}
		if appAt == 0 {
			l, err := readTaskLog(c, alloc.ID, "app")
			if err == nil && l.starts < 2 {
				err = fmt.Errorf("app: started %d time(s) so far; last line %v", l.starts, l.last())
			}
			if err == nil {
				err = l.lastIs(map[string]string{"file": h2, "env": h2, "mode": "400:1000"})
			}
			if err == nil {
				appAt = time.Since(updated)
			}
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	reportMetric(t, "secret update → noop task's file shows V2", watcherAt)
	reportMetric(t, "secret update → restart task restarted with V2 in file and env", appAt)
	app, err = readTaskLog(c, alloc.ID, "app")
	if err != nil {
		t.Fatal(err)
	}
	if app.starts != 2 {
		t.Errorf("app started %d times, want 2 (once, then once for the update)", app.starts)
	}
	for _, l := range app.sinceStart {
		if l["file"] != h2 || l["env"] != h2 {
			t.Errorf("app after its restart printed %v; want the digest of V2 (%s) for file and env", l, h2)
			break
		}
	}
	watcher, err = readTaskLog(c, alloc.ID, "watcher")
	if err != nil {
		t.Fatal(err)
	}
	if watcher.starts != 1 {
		t.Errorf("watcher (change_mode noop) started %d times, want once", watcher.starts)
	}
	// The worker reports task states asynchronously: the restarted task
	// may print before its new start reaches the managers.
	var after *structs.Allocation
	c.WaitFor(30*time.Second, "the app task's restart reported", func() error {
		a, err := allocStatus(c, alloc.ID)
		if err != nil {
			return err
		}
		after = a
		if st := a.TaskStates["app"]; st == nil || st.State != structs.TaskRunning || !st.StartedAt.After(appBefore.StartedAt) {
			return fmt.Errorf("app task not yet reported running after its restart")
		}
		return nil
	})
	appAfter, watcherAfter := after.TaskStates["app"], after.TaskStates["watcher"]
	if appAfter.Restarts != appBefore.Restarts+1 || !appAfter.StartedAt.After(appBefore.StartedAt) || appAfter.State != structs.TaskRunning {
		t.Errorf("app after the update: %s restarts %d started %v; before: restarts %d started %v; want one more restart and a later start",
			appAfter.State, appAfter.Restarts, appAfter.StartedAt, appBefore.Restarts, appBefore.StartedAt)
	}
	if watcherAfter.Restarts != watcherBefore.Restarts || !watcherAfter.StartedAt.Equal(watcherBefore.StartedAt) || watcherAfter.State != structs.TaskRunning {
		t.Errorf("watcher after the update: %s restarts %d started %v; before: restarts %d started %v; want it untouched",
			watcherAfter.State, watcherAfter.Restarts, watcherAfter.StartedAt, watcherBefore.Restarts, watcherBefore.StartedAt)
	}
	t.Logf("after the update: app %s restarts=%d, watcher %s restarts=%d", appAfter.State, appAfter.Restarts, watcherAfter.State, watcherAfter.Restarts)

	// An env secret in a task with a 32 MiB limit: the wrapper that sets
	// it must fit in the task's memory too.
	checkSmallEnvSecret(t, c, cl, h2)

	// ---- 3. the node authorizer: a worker reads only its own allocations'
	// secrets.
	checkNodeSecretsAuthorizer(t, c, mgr, w, managers[1], alloc.ID, v2)

	// ---- 4. neither value is in any file.
	snap1 := filepath.Join(c.Dir, "secrets-1.snap")
	c.MustCLI("operator", "snapshot", "save", snap1)
	scanNoLeaks(t, c, snap1, map[string]string{"V1": v1, "V2": v2}, map[string]string{"the digest of V2 (printed by the tasks)": h2})

	// ---- 5. 1,000 secrets, readers on every manager, a root key rotation.
	bulk := rotateUnderLoad(t, c, managers)

	// The rotation re-wrapped db-password's data keys but not its values:
	// the worker must not have restarted anything. Its watch sees the
	// rewrap as a change of the secrets table within a second or so.
	time.Sleep(3 * time.Second)
	final, err := allocStatus(c, alloc.ID)
	if err != nil {
		t.Fatal(err)
	}
	for name, ts := range final.TaskStates {
		if prev := after.TaskStates[name]; ts.Restarts != prev.Restarts || !ts.StartedAt.Equal(prev.StartedAt) {
			t.Errorf("task %s restarted during the key rotation: restarts %d → %d, started %v → %v", name, prev.Restarts, ts.Restarts, prev.StartedAt, ts.StartedAt)
		}
	}
	if l, err := readTaskLog(c, alloc.ID, "app"); err != nil || l.lastIs(map[string]string{"file": h2, "env": h2}) != nil {
		t.Errorf("app after the rotation: %v %v", l.last(), err)
	}

	// Again, with some of the bulk values, after all that traffic.
	snap2 := filepath.Join(c.Dir, "secrets-2.snap")
	c.MustCLI("operator", "snapshot", "save", snap2)
	needles := map[string]string{"V1": v1, "V2": v2}
	for i := 0; i < secretBulkN; i += secretBulkN / 20 {
		needles[bulkName(i)+"'s value"] = bulk[i]
	}
	scanNoLeaks(t, c, snap2, needles, nil)

	c.MustCLI("job", "stop", secretsJob, "--purge")
	c.WaitFor(60*time.Second, "the job's containers and secret tmpfs to go", func() error {
		if got := w.allocContainers(alloc.ID); len(got) > 0 {
			return fmt.Errorf("containers %v", got)
		}
		if mounted, err := secretTmpfsMounted(w, alloc.ID); err != nil || mounted {
			return fmt.Errorf("tmpfs still mounted (%v)", err)
		}
		return nil
	})
	reportMetric(t, "TestSecrets total", time.Since(began))
}

// checkSmallEnvSecret runs testdata/secrets-small.hcl, one task with an
// environment secret and a 32 MiB memory limit, and checks that it prints
// the digest want of the secret's value; then purges the job. A failure is
// reported, not fatal, so the steps after it still run.
func checkSmallEnvSecret(t *testing.T, c *Cluster, cl *api.Client, want string) {
	t.Helper()
	const job = "secrets-small"
	start := time.Now()
	if out, stderr, err := c.CLIWithin(c.Host(0), 2*time.Minute, "job", "run", "--detach", jobFile(t, "secrets-small.hcl")); err != nil {
		t.Fatalf("job run secrets-small.hcl: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
	}
	var allocID string
	err := Poll(90*time.Second, func() error {
		if err := c.CheckRunning(); err != nil {
			return err
		}
		if allocID == "" {
			allocs, _, err := cl.Jobs().Allocations("", job, nil)
			if err != nil {
				return err
			}
			if len(allocs) != 1 {
				return fmt.Errorf("%d allocations", len(allocs))
			}
			allocID = allocs[0].ID
		}
		a, err := allocStatus(c, allocID)
		if err != nil {
			return err
		}
		if ts := a.TaskStates["tight"]; ts != nil && (ts.Restarts > 0 || ts.Failed || ts.ExitCode != 0) || a.Terminal() {
			return Permanent(fmt.Errorf("the task did not stay up: %s", taskStates(a)))
		}
		l, err := readTaskLog(c, allocID, "tight")
		if err != nil {
			return err
		}
		return l.lastIs(map[string]string{"env": want})
	})
	if err != nil {
		stderr, _, _ := c.CLI("alloc", "logs", allocID, "tight", "--stderr")
		t.Errorf("a task with an env secret and memory = 32 (MiB) does not run: %v; task stderr %q. "+
			"(The hive secret-exec wrapper runs in the task's memory cgroup before it execs the command; if the kernel log shows "+
			"\"Memory cgroup out of memory: Killed process ... (hive)\", the wrapper itself does not fit.)", err, truncate(stderr, 300))
	} else {
		reportMetric(t, "job run → 32 MiB task with an env secret prints its digest", time.Since(start))
	}
	c.MustCLI("job", "stop", job, "--purge")
}

// newSecretsCluster is 3 managers, auditing at level request-response,
// and 1 worker (host 3) with its own containerd and the busybox image
// imported.
func newSecretsCluster(t *testing.T) *Cluster {
	t.Helper()
	if err := checkPrereqs("containerd", "runc", "ctr"); err != nil {
		t.Fatalf("%v (the containerd package ships ctr)", err)
	}
	img, info := testImage(t)
	c := NewCluster(t, 4)
	// The managers audit every request with its (redacted) request and
	// response bodies, so that the leak scan also covers the most a
	// manager ever writes to its audit log.
	policy := filepath.Join(c.Dir, "audit-policy.hcl")
	if err := os.WriteFile(policy, []byte("rule {\n  level = \"request-response\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.DaemonArgs = func(h *Host, role structs.Role) []string {
		if role == structs.RoleWorker {
			return append(h.WorkerArgs(), "--label", "zone="+h.Name)
		}
		return []string{"--audit-policy", policy}
	}
	c.Bootstrap(3, 1)
	w := c.Workers()[0]
	waitRegistered(t, c, w)
	var out string
	c.WaitFor(30*time.Second, "image import onto "+w.Name, func() error {
		var err error
		out, _, err = c.CLI("image", "import", img, "--node", w.NodeID())
		return err
	})
	if !strings.Contains(out, testimage.DefaultRef) || !strings.Contains(out, info.ManifestDigest) {
		t.Fatalf("image import on %s: %q lacks %s %s", w.Name, out, testimage.DefaultRef, info.ManifestDigest)
	}
	return c
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// taskLog is what a task of secrets.hcl printed: how often it started
// ("started pid N" lines) and the key=value fields of each line it
// printed since its last start.
type taskLog struct {
	task       string
	starts     int
	sinceStart []map[string]string
}

func (l taskLog) last() map[string]string {
	if len(l.sinceStart) == 0 {
		return nil
	}
	return l.sinceStart[len(l.sinceStart)-1]
}

// lastIs checks the fields of the last line since the last start.
func (l taskLog) lastIs(want map[string]string) error {
	last := l.last()
	if last == nil {
		return fmt.Errorf("%s: no line since its start %d", l.task, l.starts)
	}
	for k, v := range want {
		if last[k] != v {
			return fmt.Errorf("%s: last line has %s=%q, want %q (line %v)", l.task, k, last[k], v, last)
		}
	}
	return nil
}

func readTaskLog(c *Cluster, allocID, task string) (taskLog, error) {
	l := taskLog{task: task}
	out, _, err := c.CLI("alloc", "logs", allocID, task)
	if err != nil {
		return l, err
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "started pid ") {
			l.starts++
			l.sinceStart = nil
			continue
		}
		kv := map[string]string{}
		for _, f := range strings.Fields(line) {
			if k, v, ok := strings.Cut(f, "="); ok {
				kv[k] = v
			}
		}
		if len(kv) > 0 {
			l.sinceStart = append(l.sinceStart, kv)
		}
	}
	return l, nil
}

func waitTaskLog(t *testing.T, c *Cluster, allocID, task string, cond func(taskLog) error) taskLog {
	t.Helper()
	var l taskLog
	c.WaitFor(60*time.Second, fmt.Sprintf("task %s of %s to print the expected digests", task, allocID), func() error {
		var err error
		if l, err = readTaskLog(c, allocID, task); err != nil {
			return err
		}
		return cond(l)
	})
	return l
}

// secretTmpfsMounted reports whether the allocation's secrets directory
// is a tmpfs in the worker agent's mount namespace (each host has its own,
// so the test process does not see the mount).
func secretTmpfsMounted(w *Host, allocID string) (bool, error) {
	pid := w.Pid()
	if pid == 0 {
		return false, fmt.Errorf("%s: no agent running", w.Name)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return false, err
	}
	dir := filepath.Join(w.DataDir, "allocs", allocID, "_secrets")
	for _, line := range strings.Split(string(b), "\n") {
		// "id parent maj:min root mountpoint opts ... - fstype source superopts"
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 5 || sep < 0 || sep+1 >= len(f) || f[4] != dir {
			continue
		}
		if f[sep+1] != "tmpfs" {
			return false, fmt.Errorf("%s is a %s mount, not tmpfs", dir, f[sep+1])
		}
		return true, nil
	}
	return false, nil
}

func checkSecretTmpfs(w *Host, allocID string) error {
	ok, err := secretTmpfsMounted(w, allocID)
	if err == nil && !ok {
		err = fmt.Errorf("no tmpfs at %s in %s's mount namespace", filepath.Join(w.DataDir, "allocs", allocID, "_secrets"), w.Name)
	}
	return err
}

// ---- the node authorizer ----

// secretAuditEntry is the part of an audit entry the secret tests read.
type secretAuditEntry struct {
	Subject  string          `json:"subject"`
	Path     string          `json:"path"`
	Name     string          `json:"name"`
	Decision string          `json:"decision"`
	Status   int             `json:"status"`
	Event    string          `json:"event"`
	Reason   string          `json:"reason"`
	Response json.RawMessage `json:"response"`
}

// readSecretAudit parses every complete line of h's audit files.
func readSecretAudit(h *Host) ([]secretAuditEntry, error) {
	dir := filepath.Join(h.DataDir, "audit")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []secretAuditEntry
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			b = b[:i+1] // a line being written has no newline yet
		} else {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var a secretAuditEntry
			if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
				return nil, fmt.Errorf("%s: %s: a line is not JSON: %w", h.Name, e.Name(), err)
			}
			out = append(out, a)
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// waitSecretAudit waits until h's audit log has an entry match accepts.
func waitSecretAudit(t *testing.T, c *Cluster, h *Host, desc string, match func(secretAuditEntry) bool) secretAuditEntry {
	t.Helper()
	var found secretAuditEntry
	c.WaitFor(15*time.Second, h.Name+"'s audit log to record "+desc, func() error {
		entries, err := readSecretAudit(h)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if match(e) {
				found = e
				return nil
			}
		}
		return fmt.Errorf("not among %d entries", len(entries))
	})
	return found
}

// nodeSecrets calls GET /v1/node/secrets?alloc=id on h as client's node.
func nodeSecrets(client *http.Client, h *Host, allocID string) (int, *structs.NodeSecretsResponse, string, error) {
	resp, err := client.Get(h.URL() + "/v1/node/secrets?alloc=" + allocID)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, string(body), nil
	}
	var out structs.NodeSecretsResponse
	if err := json.Unmarshal(body, &out); err != nil {
		return resp.StatusCode, nil, "", fmt.Errorf("decode node secrets: %w", err)
	}
	return resp.StatusCode, &out, "", nil
}

// checkNodeSecretsAuthorizer: with its certificate the worker gets its own
// allocation's secret (control) but 403 for a made-up allocation; another
// node (a manager, other) gets 403 for the worker's real allocation. mgr
// answers every call and records the denials.
func checkNodeSecretsAuthorizer(t *testing.T, c *Cluster, mgr, w, other *Host, allocID, want string) {
	t.Helper()
	wc, err := w.TLSClient()
	if err != nil {
		t.Fatalf("worker identity: %v", err)
	}
	oc, err := other.TLSClient()
	if err != nil {
		t.Fatalf("%s identity: %v", other.Name, err)
	}
	code, resp, body, err := nodeSecrets(wc, mgr, allocID)
	if err != nil || code != http.StatusOK {
		t.Fatalf("worker reading its own allocation's secrets on %s: status %d %s %v; want 200", mgr.Name, code, body, err)
	}
	if got := resp.Secrets["db-password"].Data["password"]; got != want {
		t.Errorf("worker's own allocation: db-password/password is not the current value (%d bytes)", len(got))
	}

	fake := "00000000-0000-4000-8000-" + hex.EncodeToString([]byte(rand.Text())[:6])
	code, _, body, err = nodeSecrets(wc, mgr, fake)
	if err != nil || code != http.StatusForbidden {
		t.Errorf("worker reading the secrets of made-up allocation %s: status %d %s %v; want 403", fake, code, body, err)
	} else {
		t.Logf("worker, made-up allocation: %d %s", code, strings.TrimSpace(body))
	}
	code, _, body, err = nodeSecrets(oc, mgr, allocID)
	if err != nil || code != http.StatusForbidden {
		t.Errorf("%s (another node) reading the worker's allocation's secrets: status %d %s %v; want 403", other.Name, code, body, err)
	} else {
		t.Logf("%s's certificate, the worker's allocation: %d %s", other.Name, code, strings.TrimSpace(body))
	}

	denied := func(node, alloc string) func(secretAuditEntry) bool {
		return func(e secretAuditEntry) bool {
			return e.Event == "secret-read" && e.Decision == "deny" && e.Status == http.StatusForbidden &&
				e.Path == "/v1/node/secrets" && e.Name == alloc && strings.Contains(e.Subject, node)
		}
	}
	e := waitSecretAudit(t, c, mgr, "the worker's denied read of "+fake, denied(w.NodeID(), fake))
	t.Logf("audit: %+v", e)
	e = waitSecretAudit(t, c, mgr, other.Name+"'s denied read of "+allocID, denied(other.NodeID(), allocID))
	t.Logf("audit: %+v", e)
	waitSecretAudit(t, c, mgr, "the worker's allowed read of "+allocID, func(e secretAuditEntry) bool {
		return e.Event == "secret-read" && e.Decision == "allow" && e.Name == allocID && strings.Contains(e.Subject, w.NodeID())
	})
}

// ---- leaks ----

// scanNoLeaks looks for each value of needles (name → value) in every
// regular file under the cluster's dir (every host's data dir and daemon
// log, and snap), and fails the test naming each file that holds one.
// expect are values that must be found (in task logs, say): they show
// the scan reads the files that matter.
func scanNoLeaks(t *testing.T, c *Cluster, snap string, needles, expect map[string]string) {
	t.Helper()
	start := time.Now()
	if _, err := os.Stat(snap); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	all := map[string][]byte{}
	for k, v := range needles {
		all[k] = []byte(v)
	}
	for k, v := range expect {
		all[k] = []byte(v)
	}
	hits, scanned, size, err := grepTree(c.Dir, all)
	if err != nil {
		t.Fatalf("scanning %s: %v", c.Dir, err)
	}
	for name := range needles {
		for _, f := range hits[name] {
			t.Errorf("%s found in %s", name, f)
		}
	}
	for name := range expect {
		if len(hits[name]) == 0 {
			t.Errorf("%s found in no file: the scan misses what it should see", name)
		}
	}
	// The scan must have covered what holds the secrets: each manager's
	// Raft store, the worker's containerd, the snapshot.
	var must []string
	for _, m := range c.Managers() {
		must = append(must, filepath.Join(m.DataDir, "raft", "raft.db"))
	}
	for _, w := range c.Workers() {
		must = append(must, filepath.Join(w.DataDir, "containerd")+string(filepath.Separator))
	}
	must = append(must, snap)
	for _, p := range must {
		if !slices.ContainsFunc(scanned, func(s string) bool { return s == p || strings.HasPrefix(s, p) }) {
			t.Errorf("the scan read nothing at %s", p)
		}
	}
	raftSnaps := 0
	for _, s := range scanned {
		if strings.Contains(s, string(filepath.Separator)+"snapshots"+string(filepath.Separator)) {
			raftSnaps++
		}
	}
	t.Logf("leak scan: %d needles in %d files (%d MiB, %d under raft snapshot dirs) in %v",
		len(needles), len(scanned), size>>20, raftSnaps, time.Since(start).Round(time.Millisecond))
}

// grepTree reads every regular file under root and returns, per needle,
// the files holding it; also every file it read and the bytes read.
// Sockets, FIFOs (containerd's) and devices are skipped; a file that goes
// while the walk runs is no error.
func grepTree(root string, needles map[string][]byte) (map[string][]string, []string, int64, error) {
	hits := map[string][]string{}
	var scanned []string
	var size int64
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		scanned = append(scanned, path)
		size += int64(len(b))
		for name, n := range needles {
			if bytes.Contains(b, n) {
				hits[name] = append(hits[name], path)
			}
		}
		return nil
	})
	return hits, scanned, size, err
}

// ---- key rotation under load ----

func bulkName(i int) string { return fmt.Sprintf("bulk-%04d", i) }

// rotateUnderLoad creates secretBulkN secrets, starts a reader per
// manager revealing random ones without pause, rotates the root key and
// waits until every manager shows one key and nothing pending. No read
// may fail, and afterwards every secret reveals its value on every
// manager. It returns the values.
func rotateUnderLoad(t *testing.T, c *Cluster, managers []*Host) []string {
	t.Helper()
	clients := map[*Host]*api.Client{}
	for _, m := range managers {
		cl, err := api.NewClient(&api.Config{Address: m.URL(), Token: c.AdminToken, CACertFile: c.CACert, Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		clients[m] = cl
	}
	values := make([]string, secretBulkN)
	for i := range values {
		values[i] = fmt.Sprintf("bulk-%d-%s", i, rand.Text())
	}

	// Create them, 16 calls at a time, through host0 (which forwards to
	// the leader when it is not).
	start := time.Now()
	errs := forEachConcurrently(secretBulkN, 16, func(i int) error {
		_, err := clients[managers[0]].Secrets().Create(secretBulkNS, bulkName(i), structs.SecretRequest{Data: map[string]string{"value": values[i]}})
		return err
	})
	if len(errs) > 0 {
		t.Fatalf("creating %d secrets: %d failed, first: %v", secretBulkN, len(errs), errs[0])
	}
	reportMetric(t, fmt.Sprintf("create %d secrets (16 API calls at a time)", secretBulkN), time.Since(start))

	// Every manager holds them all before the readers start, so that a
	// lagging follower's 404 is not counted as a failed read.
	var old structs.RootKeyInfo
	var total int
	c.WaitFor(60*time.Second, "every manager to hold every secret version under one root key", func() error {
		total = -1
		for _, m := range managers {
			st, err := clients[m].Operator().KeyringStatus()
			if err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
			if len(st.Keys) != 1 || st.Keys[0].State != structs.RootKeyActive || st.Pending != 0 {
				return fmt.Errorf("%s: keyring %+v", m.Name, st)
			}
			if st.Keys[0].Versions < secretBulkN {
				return fmt.Errorf("%s: %d versions so far", m.Name, st.Keys[0].Versions)
			}
			if total >= 0 && (st.Keys[0].Versions != total || st.Keys[0].ID != old.ID) {
				return fmt.Errorf("%s: key %s wraps %d versions; %s: key %s wraps %d", m.Name, st.Keys[0].ID, st.Keys[0].Versions, managers[0].Name, old.ID, total)
			}
			old, total = st.Keys[0], st.Keys[0].Versions
		}
		return nil
	})
	t.Logf("root key %s wraps %d secret versions on every manager", old.ID, total)

	// Readers: one per manager, revealing random secrets without pause.
	type readerStats struct {
		reads, fails atomic.Int64
		mu           sync.Mutex
		firstErrs    []string
	}
	stats := map[*Host]*readerStats{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, m := range managers {
		st := &readerStats{}
		stats[m] = st
		cl := clients[m]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := mrand.IntN(secretBulkN)
				v, err := cl.Secrets().Value(secretBulkNS, bulkName(i), 0)
				switch {
				case err == nil && v.Data["value"] == values[i]:
					st.reads.Add(1)
					continue
				case err == nil:
					err = fmt.Errorf("%s revealed a wrong value (%d bytes)", bulkName(i), len(v.Data["value"]))
				}
				st.fails.Add(1)
				st.mu.Lock()
				if len(st.firstErrs) < 5 {
					st.firstErrs = append(st.firstErrs, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
				}
				st.mu.Unlock()
			}
		}()
	}
	stopReaders := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopReaders()
	c.WaitFor(30*time.Second, "every reader to have revealed secrets", func() error {
		for _, m := range managers {
			if n := stats[m].reads.Load() + stats[m].fails.Load(); n < 20 {
				return fmt.Errorf("%s: %d reads", m.Name, n)
			}
		}
		return nil
	})
	readsBefore := map[*Host]int64{}
	for _, m := range managers {
		readsBefore[m] = stats[m].reads.Load()
	}

	rotated := time.Now()
	out := c.MustCLI("operator", "keyring", "rotate")
	t.Logf("keyring rotate: %s", strings.TrimSpace(out))
	var newKey string
	done := map[*Host]time.Duration{}
	readsAtDone := map[*Host]int64{}
	var lastSeen map[*Host]string
	c.WaitFor(5*time.Minute, "every manager to show one root key and nothing pending", func() error {
		lastSeen = map[*Host]string{}
		for _, m := range managers {
			if _, ok := done[m]; ok {
				continue
			}
			st, err := clients[m].Operator().KeyringStatus()
			if err != nil {
				lastSeen[m] = err.Error()
				continue
			}
			lastSeen[m] = fmt.Sprintf("%d keys, %d pending", len(st.Keys), st.Pending)
			if len(st.Keys) == 1 && st.Pending == 0 && st.Keys[0].ID != old.ID && st.Keys[0].State == structs.RootKeyActive {
				if newKey != "" && newKey != st.Keys[0].ID {
					return Permanent(fmt.Errorf("%s's one key is %s; another manager's is %s", m.Name, st.Keys[0].ID, newKey))
				}
				newKey = st.Keys[0].ID
				done[m] = time.Since(rotated)
				readsAtDone[m] = stats[m].reads.Load()
			}
		}
		if len(done) < len(managers) {
			return fmt.Errorf("not done: %v", lastSeen)
		}
		return nil
	})
	slowest := time.Duration(0)
	for _, m := range managers {
		t.Logf("%s: rotation finished (one key %s, 0 pending) %v after the rotate command", m.Name, newKey, done[m].Round(time.Millisecond))
		slowest = max(slowest, done[m])
	}
	reportMetric(t, fmt.Sprintf("keyring rotate → %d versions re-wrapped and the old key gone on every manager", total), slowest)

	// A moment more of reads on the finished state, then stop.
	time.Sleep(time.Second)
	stopReaders()
	for _, m := range managers {
		st := stats[m]
		t.Logf("%s: %d reveals while its rotation ran, %d more in the second after, %d in all; %d failed",
			m.Name, readsAtDone[m]-readsBefore[m], st.reads.Load()-readsAtDone[m], st.reads.Load(), st.fails.Load())
		if st.fails.Load() > 0 {
			t.Errorf("%s: %d reveals failed during the rotation; first: %s", m.Name, st.fails.Load(), strings.Join(st.firstErrs, "; "))
		}
		if st.reads.Load() == readsBefore[m] {
			t.Errorf("%s: no reveal completed during or after the rotation", m.Name)
		}
	}

	// Every secret reveals its value on every manager, and no version
	// names the old key.
	start = time.Now()
	for _, m := range managers {
		errs := forEachConcurrently(secretBulkN, 8, func(i int) error {
			v, err := clients[m].Secrets().Value(secretBulkNS, bulkName(i), 0)
			if err != nil {
				return fmt.Errorf("%s: %w", bulkName(i), err)
			}
			if v.Data["value"] != values[i] {
				return fmt.Errorf("%s: wrong value", bulkName(i))
			}
			return nil
		})
		if len(errs) > 0 {
			t.Errorf("%s: %d of %d secrets do not reveal their value after the rotation; first: %v", m.Name, len(errs), secretBulkN, errs[0])
		}
	}
	t.Logf("all %d secrets revealed on %d managers after the rotation in %v", secretBulkN, len(managers), time.Since(start).Round(time.Millisecond))
	for _, name := range []string{"db-password", bulkName(0), bulkName(secretBulkN - 1)} {
		info, _, err := clients[managers[0]].Secrets().Info(structs.DefaultNamespace, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range info.Versions {
			if v.RootKeyID != newKey {
				t.Errorf("%s version %d is wrapped by %q after the rotation, want %s", name, v.Version, v.RootKeyID, newKey)
			}
		}
	}
	// The audit policy keeps response bodies: the reveals' entries are
	// there, their values redacted (the leak scan checks none slipped).
	for _, m := range managers {
		e := waitSecretAudit(t, c, m, "a reveal with its redacted response", func(e secretAuditEntry) bool {
			return e.Event == "secret-read" && strings.HasPrefix(e.Path, "/v1/secret/bulk-") && len(e.Response) > 0
		})
		if !bytes.Contains(e.Response, []byte("[redacted]")) {
			t.Errorf("%s: audit entry of a reveal keeps a response without redaction: %s", m.Name, truncate(string(e.Response), 200))
		}
	}
	return values
}

// forEachConcurrently runs fn(0..n-1) on par goroutines and returns the
// errors.
func forEachConcurrently(n, par int, fn func(i int) error) []error {
	idx := make(chan int)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				if err := fn(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		idx <- i
	}
	close(idx)
	wg.Wait()
	return errs
}

// ---- autolock ----

var unlockKeyRE = regexp.MustCompile(`Unlock key \(autolock\): (HIVEUNLOCK1-[A-Z2-7]+)`)

// TestSecretsAutolock: a cluster made with `hive init --autolock`, three
// managers. A restarted follower is locked: it refuses to reveal secrets
// (503) until `hive operator unlock` gives it the key that init printed; a
// wrong key is refused and audited. No manager's data dir holds the key.
func TestSecretsAutolock(t *testing.T) {
	began := time.Now()
	c := NewCluster(t, 4) // host3 stays empty until the disaster recovery
	c.DaemonArgs = func(h *Host, role structs.Role) []string {
		if h == c.Host(0) {
			return []string{"--autolock"}
		}
		return nil
	}
	c.Bootstrap(3, 0)
	managers := c.Managers()

	// init printed the key once, on its standard output: the host's log.
	var key string
	c.WaitFor(15*time.Second, "init to print the unlock key", func() error {
		b, err := os.ReadFile(c.Host(0).LogPath)
		if err != nil {
			return err
		}
		m := unlockKeyRE.FindAllSubmatch(b, -1)
		if len(m) != 1 {
			return fmt.Errorf("%d unlock keys in %s", len(m), c.Host(0).LogPath)
		}
		key = string(m[0][1])
		return nil
	})
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimPrefix(key, "HIVEUNLOCK1-"))
	if err != nil || len(raw) != 32 {
		t.Fatalf("unlock key %s... does not decode to 32 bytes: %d, %v", key[:16], len(raw), err)
	}

	value := "hive-e2e-autolock-" + rand.Text()
	c.MustCLI("secret", "create", "default/locked", "--from-literal", "v="+value)
	clients := map[*Host]*api.Client{}
	for _, m := range managers {
		cl, err := api.NewClient(&api.Config{Address: m.URL(), Token: c.AdminToken, CACertFile: c.CACert, Timeout: 15 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		clients[m] = cl
	}
	reveal := func(m *Host) (string, error) {
		v, err := clients[m].Secrets().Value(structs.DefaultNamespace, "locked", 0)
		if err != nil {
			return "", err
		}
		return v.Data["v"], nil
	}
	// Managers that joined got the unseal key from the leader, in memory.
	for _, m := range managers {
		c.WaitFor(30*time.Second, m.Name+" to reveal the secret", func() error {
			got, err := reveal(m)
			if err == nil && got != value {
				return Permanent(fmt.Errorf("%s revealed a wrong value", m.Name))
			}
			return err
		})
	}

	leader, err := c.Leader(c.Host(0))
	if err != nil {
		t.Fatal(err)
	}
	var f *Host
	for _, m := range managers {
		if m != leader {
			f = m
			break
		}
	}
	t.Logf("restarting follower %s (leader %s)", f.Name, leader.Name)
	restarted := time.Now()
	f.Restart()
	c.WaitFor(90*time.Second, f.Name+" back as a voter", func() error {
		return c.checkVoters(leader, managers)
	})
	// Locked: it answers, says so, and refuses to reveal with 503 sealed.
	var st structs.KeyringStatus
	c.WaitFor(60*time.Second, f.Name+" to answer keyring status", func() error {
		return c.CLIJSONOn(f, &st, "operator", "keyring", "status")
	})
	if !st.Sealed {
		t.Fatalf("restarted %s of an autolocked cluster is not locked: %+v", f.Name, st)
	}
	c.WaitFor(60*time.Second, f.Name+" to refuse reveals as locked (503)", func() error {
		_, err := reveal(f)
		var ae *api.Error
		switch {
		case err == nil:
			return Permanent(fmt.Errorf("locked %s revealed the secret", f.Name))
		case errors.As(err, &ae) && ae.StatusCode == http.StatusServiceUnavailable && ae.Code == "sealed":
			return nil
		}
		return err // not caught up yet (404), say
	})
	_, stderr, err := c.CLIOn(f, "secret", "get", "default/locked", "--reveal")
	if err == nil || !strings.Contains(stderr, "HTTP 503") || !strings.Contains(stderr, "locked") {
		t.Errorf("secret get --reveal on locked %s: err %v, stderr %q; want a 503 saying it is locked", f.Name, err, stderr)
	} else {
		t.Logf("locked %s: %s", f.Name, strings.TrimSpace(stderr))
	}
	for _, m := range managers {
		if m == f {
			continue
		}
		if got, err := reveal(m); err != nil || got != value {
			t.Errorf("%s (not restarted) while %s is locked: reveal %v", m.Name, f.Name, err)
		}
	}

	// A wrong key, well formed: refused, and the manager stays locked.
	dir := t.TempDir()
	wrong := filepath.Join(dir, "wrong.key")
	var wrongRaw [32]byte
	if _, err := rand.Read(wrongRaw[:]); err != nil {
		t.Fatal(err)
	}
	writeUnlockKeyFile(t, wrong, "HIVEUNLOCK1-"+base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(wrongRaw[:]))
	_, stderr, err = c.CLIOn(f, "operator", "unlock", "--key-file", wrong)
	if err == nil || !strings.Contains(stderr, "refused") {
		t.Errorf("unlock of %s with a wrong key: err %v, stderr %q; want it refused", f.Name, err, stderr)
	} else {
		t.Logf("wrong key: %s", strings.TrimSpace(stderr))
	}
	if err := c.CLIJSONOn(f, &st, "operator", "keyring", "status"); err != nil || !st.Sealed {
		t.Errorf("after a wrong key %s is sealed=%v (%v); want still locked", f.Name, st.Sealed, err)
	}
	if _, err := reveal(f); err == nil {
		t.Errorf("%s revealed the secret after a wrong unlock key", f.Name)
	}
	waitSecretAudit(t, c, f, "the refused unlock", func(e secretAuditEntry) bool {
		return e.Path == "/v1/operator/unlock" && e.Decision == "deny" && e.Status == http.StatusForbidden
	})

	// The right key.
	right := filepath.Join(dir, "right.key")
	writeUnlockKeyFile(t, right, key)
	unlocked := time.Now()
	out, stderr, err := c.CLIOn(f, "operator", "unlock", "--key-file", right)
	if err != nil {
		t.Fatalf("unlock of %s with the right key: %v\n%s", f.Name, err, stderr)
	}
	t.Logf("unlock: %s", strings.TrimSpace(out))
	c.WaitFor(30*time.Second, "unlocked "+f.Name+" to reveal the secret", func() error {
		got, err := reveal(f)
		if err == nil && got != value {
			return Permanent(fmt.Errorf("%s revealed a wrong value", f.Name))
		}
		return err
	})
	reportMetric(t, "operator unlock → the unlocked manager reveals", time.Since(unlocked))
	reportMetric(t, "follower restart → unlocked and revealing (with the test's checks between)", time.Since(restarted))
	if err := c.CLIJSONOn(f, &st, "operator", "keyring", "status"); err != nil || st.Sealed {
		t.Errorf("after the right key %s is sealed=%v (%v)", f.Name, st.Sealed, err)
	}
	if got, _, err := c.CLIOn(f, "secret", "get", "default/locked", "--reveal", "--key", "v"); err != nil || got != value {
		t.Errorf("secret get --reveal on unlocked %s: %v", f.Name, err)
	}
	// A write through the unlocked follower (forwarded to the leader) and a
	// reveal of it on the follower itself.
	value2 := "hive-e2e-autolock-2-" + rand.Text()
	c.MustCLI("secret", "update", "default/locked", "--from-literal", "v="+value2)
	c.WaitFor(30*time.Second, f.Name+" to reveal the updated secret", func() error {
		got, err := reveal(f)
		if err == nil && got != value2 {
			err = errors.New("old value still current")
		}
		return err
	})

	// The key in any form, and the secret values, are in no manager's
	// data dir.
	needles := map[string][]byte{
		"the unlock key":               []byte(key),
		"the unlock key's base32 body": []byte(strings.TrimPrefix(key, "HIVEUNLOCK1-")),
		"the raw unseal key":           raw,
		"the unseal key in hex":        []byte(hex.EncodeToString(raw)),
		"the unseal key in base64":     []byte(base64.StdEncoding.EncodeToString(raw)),
		"the unseal key in base64url":  []byte(base64.RawURLEncoding.EncodeToString(raw)),
		"the secret's first value":     []byte(value),
		"the secret's second value":    []byte(value2),
	}
	files := 0
	var names []string
	for k := range needles {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, m := range managers {
		hits, scanned, _, err := grepTree(m.DataDir, needles)
		if err != nil {
			t.Fatalf("scanning %s: %v", m.DataDir, err)
		}
		files += len(scanned)
		for _, name := range names {
			for _, p := range hits[name] {
				t.Errorf("%s found in %s", name, p)
			}
		}
		if !slices.Contains(scanned, filepath.Join(m.DataDir, "raft", "raft.db")) {
			t.Errorf("%s: the scan did not read raft/raft.db", m.Name)
		}
	}
	t.Logf("no unlock key (%d forms) nor secret value in %d files of %d managers' data dirs", len(needles)-2, files, len(managers))
	restoreIntoFreshCluster(t, c, managers, key, value2)
	reportMetric(t, "TestSecretsAutolock total", time.Since(began))
}

// restoreIntoFreshCluster loses the whole cluster and rebuilds it on an
// empty host from a snapshot: refused without the unseal key and with a
// wrong one, and with it the old tokens and secrets work again.
func restoreIntoFreshCluster(t *testing.T, c *Cluster, managers []*Host, key, want string) {
	t.Helper()
	dir := t.TempDir()
	snap := filepath.Join(dir, "dr.snap")
	c.MustCLI("operator", "snapshot", "save", snap)
	for _, m := range managers {
		m.Kill()
	}
	fresh := c.Host(3)
	args := []string{"init", "--restore", snap, "--data-dir", fresh.DataDir, "--advertise", fresh.IP}
	_, stderr, err := fresh.Run(CLITimeout, args...)
	if err == nil || !strings.Contains(stderr, "unseal key") {
		t.Fatalf("restore without the unseal key: err %v, stderr %q; want a refusal naming the unseal key", err, stderr)
	}
	wrongFile := filepath.Join(dir, "wrong.key")
	writeUnlockKeyFile(t, wrongFile, "HIVEUNLOCK1-"+strings.Repeat("A", 52))
	_, stderr, err = fresh.Run(CLITimeout, append(args, "--unlock-key-file", wrongFile)...)
	if err == nil || !strings.Contains(stderr, "not the unseal key") {
		t.Fatalf("restore with a wrong unseal key: err %v, stderr %q", err, stderr)
	}
	if entries, _ := os.ReadDir(fresh.DataDir); len(entries) > 0 {
		// A refused restore may leave nothing a later one trips on.
		if err := os.RemoveAll(fresh.DataDir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(fresh.DataDir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	keyFile := filepath.Join(dir, "unlock.key")
	writeUnlockKeyFile(t, keyFile, key)
	fresh.Start(append(args, "--unlock-key-file", keyFile)...)
	cl, err := api.NewClient(&api.Config{Address: fresh.URL(), Token: c.AdminToken, CACertFile: c.CACert, Timeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.WaitFor(60*time.Second, "the restored cluster to reveal the secret", func() error {
		v, err := cl.Secrets().Value(structs.DefaultNamespace, "locked", 0)
		if err != nil {
			return err
		}
		if v.Data["v"] != want {
			return Permanent(fmt.Errorf("restored secret has the wrong value"))
		}
		return nil
	})
	t.Logf("cluster rebuilt on %s from a snapshot with the old unseal key; old admin token and secret work", fresh.Name)
}

func writeUnlockKeyFile(t *testing.T, path, key string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}
