package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/client/driver"
	"github.com/hivesec/hive/client/secretexec"
	"github.com/hivesec/hive/structs"
)

// Secret delivery. Before an allocation whose tasks reference secrets
// starts, its runner fetches their values from a manager, mounts a tmpfs
// at <alloc dir>/<alloc>/_secrets and writes, per task:
//
//	_secrets/files/<task>/<file>   bind-mounted read-only at /run/secrets
//	_secrets/env/<task>/env        bind-mounted read-only at /run/hive-secret-env
//
// A task with env secrets runs `/run/hive/hive secret-exec --env-file
// /run/hive-secret-env/env -- <its command>` (the hive binary is
// bind-mounted read-only), which sets the variables and execs the
// command: values are never in the OCI spec, containerd's metadata, the
// worker's disk or a log line. A goroutine per allocation long-polls the
// secrets; a new version replaces the files atomically (temp file and
// rename in the same directory) and applies the secret's change_mode. An
// expired or deleted secret's file is removed and the task left running.
// When the allocation's tasks are done the tmpfs is unmounted; an agent
// restarted meanwhile finds it mounted and keeps using it.

// Paths inside the container.
const (
	secretsMountPath   = "/run/secrets"
	secretEnvMountPath = "/run/hive-secret-env"
	secretEnvFileName  = "env"
	helperMountPath    = "/run/hive/hive"
)

// secretsDirName is the tmpfs under an allocation's directory. It cannot
// be a task name (no '_' in those), so it never meets a task's log dir.
const secretsDirName = "_secrets"

// readyMarker, in the tmpfs, says the first delivery completed: an agent
// restarted after it can start or re-attach tasks at once.
const readyMarker = ".ready"

// Timing of secret delivery.
const (
	secretPollWait   = 60 * time.Second
	secretMaxBackoff = 15 * time.Second
	signalTimeout    = 10 * time.Second
	// minSecretTmpfs is the tmpfs size for small secrets; big ones get
	// twice what they need (a replacement is written beside the old file)
	// plus this.
	minSecretTmpfs = 4 << 20
)

// forbiddenGrace is how long a refusal of the allocation's secrets is
// retried before the allocation fails: a manager that has not yet applied
// the allocation refuses too. A variable for the tests.
var forbiddenGrace = 30 * time.Second

// secretSource fetches the secret values of an allocation: with index >
// 0 it blocks until the state passes index or wait ends. It returns the
// state index of the answer. (The agent asks a manager; tests fake it.)
type secretSource interface {
	AllocSecrets(ctx context.Context, allocID string, index uint64, wait time.Duration) (*structs.NodeSecretsResponse, uint64, error)
}

// errSecretsForbidden: the managers refuse this node the allocation's
// secrets (it is not placed here); retrying will not help.
var errSecretsForbidden = errors.New("the managers refused this node the allocation's secrets")

// managerSecrets is the agent's secretSource: GET /v1/node/secrets.
type managerSecrets struct{ a *Agent }

func (s managerSecrets) AllocSecrets(ctx context.Context, allocID string, index uint64, wait time.Duration) (*structs.NodeSecretsResponse, uint64, error) {
	var resp *structs.NodeSecretsResponse
	var meta *api.QueryMeta
	err := s.a.withManagerCtx(ctx, func(c *api.Client) error {
		var err error
		resp, meta, err = c.NodeAgent().Secrets(ctx, allocID, &api.QueryOptions{WaitIndex: index, WaitTime: wait})
		return err
	})
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) && ae.StatusCode == http.StatusForbidden {
			return nil, 0, fmt.Errorf("%w: %w", errSecretsForbidden, err)
		}
		return nil, 0, err
	}
	return resp, meta.LastIndex, nil
}

// hasSecrets reports whether any task of alloc references a secret.
func hasSecrets(alloc *structs.Allocation) bool {
	for _, t := range alloc.Tasks {
		if len(t.Secrets) > 0 {
			return true
		}
	}
	return false
}

func hasEnvSecrets(t *structs.Task) bool {
	for _, s := range t.Secrets {
		if s.Env != "" {
			return true
		}
	}
	return false
}

func hasFileSecrets(t *structs.Task) bool {
	for _, s := range t.Secrets {
		if s.File != "" {
			return true
		}
	}
	return false
}

// secretsDir is an allocation's secret tmpfs.
func secretsDir(allocDir, allocID string) string {
	return filepath.Join(allocDir, allocID, secretsDirName)
}

func secretFilesDir(dir, task string) string { return filepath.Join(dir, "files", task) }
func secretEnvDir(dir, task string) string   { return filepath.Join(dir, "env", task) }

var secretEnvNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validateTaskSecrets re-checks what jobspec checked: the worker trusts
// the managers, but a path that escaped the tmpfs would write secrets to
// disk, so it checks what it is about to use anyway.
func validateTaskSecrets(t *structs.Task) error {
	files, envs := map[string]bool{}, map[string]bool{}
	for _, s := range t.Secrets {
		if s.Name == "" || s.Key == "" {
			return fmt.Errorf("task %s: secret %q: name and key are required", t.Name, s.Label)
		}
		if s.File == "" && s.Env == "" {
			return fmt.Errorf("task %s: secret %q delivers nothing (no file, no env)", t.Name, s.Label)
		}
		if s.File != "" {
			if !filepath.IsLocal(s.File) || filepath.Clean(s.File) != s.File || strings.ContainsRune(s.File, 0) {
				return fmt.Errorf("task %s: secret %q: file %q must be a clean relative path under %s", t.Name, s.Label, s.File, secretsMountPath)
			}
			if files[s.File] {
				return fmt.Errorf("task %s: secret %q: file %q is written twice", t.Name, s.Label, s.File)
			}
			files[s.File] = true
			if s.Mode > 0o777 || s.UID < 0 || s.GID < 0 {
				return fmt.Errorf("task %s: secret %q: bad mode %#o or owner %d:%d", t.Name, s.Label, s.Mode, s.UID, s.GID)
			}
		}
		if s.Env != "" {
			if !secretEnvNameRE.MatchString(s.Env) {
				return fmt.Errorf("task %s: secret %q: %q is not an environment variable name", t.Name, s.Label, s.Env)
			}
			if envs[s.Env] {
				return fmt.Errorf("task %s: secret %q: env %s is set twice", t.Name, s.Label, s.Env)
			}
			envs[s.Env] = true
		}
		switch s.ChangeMode {
		case "", structs.SecretChangeRestart, structs.SecretChangeNoop:
		case structs.SecretChangeSignal:
			if signalNumber(s.ChangeSignal) == 0 {
				return fmt.Errorf("task %s: secret %q: unknown change_signal %q", t.Name, s.Label, s.ChangeSignal)
			}
		default:
			return fmt.Errorf("task %s: secret %q: unknown change_mode %q", t.Name, s.Label, s.ChangeMode)
		}
	}
	return nil
}

// addSecretMounts adds to cfg what task t needs to see its secrets: the
// files dir at /run/secrets; for env secrets the env dir, the hive binary
// (helper, a host path) and the secret-exec wrapper. dir is the
// allocation's tmpfs.
func addSecretMounts(cfg *driver.TaskConfig, t *structs.Task, dir, helper string) {
	if hasFileSecrets(t) {
		cfg.Mounts = append(cfg.Mounts, driver.Mount{Source: secretFilesDir(dir, t.Name), Destination: secretsMountPath, ReadOnly: true})
	}
	if hasEnvSecrets(t) {
		envDir := secretEnvDir(dir, t.Name)
		cfg.Mounts = append(cfg.Mounts,
			driver.Mount{Source: envDir, Destination: secretEnvMountPath, ReadOnly: true},
			driver.Mount{Source: helper, Destination: helperMountPath, ReadOnly: true})
		cfg.ExecWrapper = secretexec.Args(helperMountPath, secretEnvMountPath+"/"+secretEnvFileName)
		cfg.OwnedByUser = append(cfg.OwnedByUser, filepath.Join(envDir, secretEnvFileName))
	}
}

// missingSecrets lists the references resp cannot satisfy, as text for
// the operator (names and keys, never values).
func missingSecrets(tasks []*structs.Task, resp *structs.NodeSecretsResponse) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range tasks {
		for _, s := range t.Secrets {
			if _, ok := lookupSecret(resp, s); ok {
				continue
			}
			m := fmt.Sprintf("%s (key %s)", s.Name, s.Key)
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	sort.Strings(out)
	return out
}

func lookupSecret(resp *structs.NodeSecretsResponse, s *structs.TaskSecret) (string, bool) {
	if resp == nil {
		return "", false
	}
	sv, ok := resp.Secrets[s.Name]
	if !ok {
		return "", false
	}
	v, ok := sv.Data[s.Key]
	return v, ok
}

// secretChange is what a delivery means for one task.
type secretChange struct {
	restart bool
	signals []string // change_signal names, each once
	changed []string // labels of the secrets whose value changed
	removed []string // labels of the secrets no longer delivered
}

func (c *secretChange) add(s *structs.TaskSecret) {
	if !slices.Contains(c.changed, s.Label) {
		c.changed = append(c.changed, s.Label)
	}
	switch s.ChangeMode {
	case "", structs.SecretChangeRestart:
		c.restart = true
	case structs.SecretChangeSignal:
		if !slices.Contains(c.signals, s.ChangeSignal) {
			c.signals = append(c.signals, s.ChangeSignal)
		}
	}
}

// writeTaskSecrets brings task t's files and env file under dir (the
// allocation's tmpfs) in line with resp and returns what changed. A file
// that did not exist counts as changed only when created counts is set
// (a secret that comes back after expiring; not the first delivery).
func writeTaskSecrets(dir string, t *structs.Task, resp *structs.NodeSecretsResponse, createdCounts bool) (secretChange, error) {
	var ch secretChange
	filesDir, envDir := secretFilesDir(dir, t.Name), secretEnvDir(dir, t.Name)
	if hasFileSecrets(t) {
		if err := os.MkdirAll(filesDir, 0o755); err != nil {
			return ch, err
		}
	}
	var errs []error
	env := map[string]string{}
	for _, s := range t.Secrets {
		val, ok := lookupSecret(resp, s)
		if ok && s.Env != "" {
			env[s.Env] = val
		}
		if s.File == "" {
			continue
		}
		path := filepath.Join(filesDir, s.File)
		if !ok {
			err := os.Remove(path)
			if err == nil {
				ch.removed = append(ch.removed, s.Label)
			} else if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("secret %q: remove %s: %w", s.Label, s.File, err))
			}
			continue
		}
		changed, existed, err := replaceFile(path, []byte(val), os.FileMode(s.Mode), s.UID, s.GID, false)
		if err != nil {
			errs = append(errs, fmt.Errorf("secret %q: write %s: %w", s.Label, s.File, err))
			continue
		}
		if changed && (existed || createdCounts) {
			ch.add(s)
		}
	}
	if hasEnvSecrets(t) {
		c, err := writeEnvFile(envDir, t, env, createdCounts)
		if err != nil {
			errs = append(errs, err)
		}
		for _, s := range c.changedSecrets {
			ch.add(s)
		}
		for _, l := range c.removed {
			if !slices.Contains(ch.removed, l) {
				ch.removed = append(ch.removed, l)
			}
		}
	}
	return ch, errors.Join(errs...)
}

type envChange struct {
	changedSecrets []*structs.TaskSecret
	removed        []string
}

// writeEnvFile replaces envDir/env with vars, keeping the file's owner
// (the driver gives it to the task's user at start), and reports which
// secrets' variables changed or went.
func writeEnvFile(envDir string, t *structs.Task, vars map[string]string, createdCounts bool) (envChange, error) {
	var c envChange
	if err := os.MkdirAll(envDir, 0o755); err != nil {
		return c, err
	}
	path := filepath.Join(envDir, secretEnvFileName)
	old := map[string]string{}
	prev, err := os.ReadFile(path)
	existed := err == nil
	if existed {
		entries, perr := secretexec.ParseEnv(prev)
		if perr == nil {
			for _, e := range entries {
				k, v, _ := strings.Cut(e, "=")
				old[k] = v
			}
		}
	}
	data, err := secretexec.EncodeEnv(vars)
	if err != nil {
		return c, fmt.Errorf("env secrets: %w", err)
	}
	if _, _, err := replaceFile(path, data, 0o400, 0, 0, true); err != nil {
		return c, fmt.Errorf("env secrets: write env file: %w", err)
	}
	for _, s := range t.Secrets {
		if s.Env == "" {
			continue
		}
		ov, had := old[s.Env]
		nv, has := vars[s.Env]
		switch {
		case had && !has:
			c.removed = append(c.removed, s.Label)
		case has && had && ov != nv, has && !had && existed && createdCounts:
			c.changedSecrets = append(c.changedSecrets, s)
		}
	}
	return c, nil
}

// replaceFile makes path hold data with mode and owner uid:gid, by
// writing a temporary file in the same directory and renaming it over
// path, so a reader sees the old content or the new, never a mix.
// keepOwner keeps the owner of an existing file instead. changed reports
// whether the content differs from what was there (existed).
func replaceFile(path string, data []byte, mode os.FileMode, uid, gid int, keepOwner bool) (changed, existed bool, err error) {
	old, rerr := os.ReadFile(path)
	existed = rerr == nil
	var st syscall.Stat_t
	if existed {
		if err := syscall.Lstat(path, &st); err != nil {
			return false, existed, err
		}
		if keepOwner {
			uid, gid = int(st.Uid), int(st.Gid)
		}
		same := bytes.Equal(old, data)
		clear(old)
		if same && os.FileMode(st.Mode)&os.ModePerm == mode && int(st.Uid) == uid && int(st.Gid) == gid {
			return false, true, nil
		}
		changed = !same
	} else {
		changed = true
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, existed, err
	}
	f, err := os.CreateTemp(dir, ".hive-tmp-*")
	if err != nil {
		return false, existed, err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err == nil {
		if err = f.Chmod(mode); err == nil {
			err = f.Chown(uid, gid)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, existed, err
	}
	if err = os.Rename(tmp, path); err != nil {
		return false, existed, err
	}
	return changed, existed, nil
}

// secretsSize is the tmpfs size for resp's values delivered to tasks.
func secretsSize(tasks []*structs.Task, resp *structs.NodeSecretsResponse) int64 {
	var n int64
	for _, t := range tasks {
		for _, s := range t.Secrets {
			v, _ := lookupSecret(resp, s)
			if s.File != "" {
				n += int64(len(v)) + 4096
			}
			if s.Env != "" {
				n += int64(len(v) + len(s.Env) + 2)
			}
		}
		n += 4096
	}
	return max(minSecretTmpfs, 2*n+minSecretTmpfs)
}

// allocSecrets delivers one allocation's secrets: the first delivery
// before its tasks start (prepare), updates while they run (watch), and
// the tmpfs's removal when they are done (cleanup).
type allocSecrets struct {
	ar     *allocRunner
	src    secretSource
	mnt    secretMounter
	dir    string
	logger hclog.Logger

	// mu serialises writing the files with starting a task, so a start
	// never hands the task's user an env file about to be replaced.
	mu sync.Mutex
	// index is the state index of the last answer, for the long poll.
	index uint64
}

func newAllocSecrets(ar *allocRunner) *allocSecrets {
	return &allocSecrets{ar: ar, src: ar.cfg.secrets, mnt: ar.cfg.mounter,
		dir:    secretsDir(ar.cfg.allocDir, ar.alloc.ID),
		logger: ar.cfg.logger.With("alloc", ar.alloc.ID)}
}

// errStopped: the allocation was stopped before its secrets were ready.
var errStopped = errors.New("stopped before its secrets were delivered")

// prepare makes the allocation's secrets ready for its tasks. When an
// earlier agent already delivered them (the tmpfs is mounted and was
// completed), it returns at once and the watch refreshes them. Otherwise
// it waits for every referenced secret (reporting what it waits for),
// mounts the tmpfs and writes the files. running names the tasks found
// running at agent start. A permanent error fails the allocation.
func (s *allocSecrets) prepare(running map[string]bool) error {
	ar := s.ar
	ctx := ar.ctx
	for _, t := range ar.alloc.Tasks {
		if err := validateTaskSecrets(t); err != nil {
			return err
		}
	}
	if s.src == nil || s.mnt == nil {
		return errors.New("this worker cannot deliver secrets (no secret source or mounter configured)")
	}
	wasMounted, err := s.mnt.mounted(s.dir)
	if err != nil {
		return err
	}
	if wasMounted {
		if _, err := os.Stat(filepath.Join(s.dir, readyMarker)); err == nil {
			s.logger.Info("secrets already delivered by an earlier agent; refreshing them while the tasks run")
			return nil
		}
	}

	var resp *structs.NodeSecretsResponse
	backoff := 500 * time.Millisecond
	var index uint64
	var firstForbidden time.Time
	for {
		if ar.stopping() {
			return errStopped
		}
		r, idx, err := s.fetch(ctx, index)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errStopped):
			return err
		case errors.Is(err, errSecretsForbidden) && !firstForbidden.IsZero() && time.Since(firstForbidden) >= forbiddenGrace:
			return err
		case err != nil:
			if errors.Is(err, errSecretsForbidden) && firstForbidden.IsZero() {
				// A manager that lags behind the one this node learnt of
				// the allocation from does not know it yet.
				firstForbidden = time.Now()
			}
			s.waiting(fmt.Sprintf("waiting for secrets: %v", err))
			s.logger.Warn("fetch secrets failed; retrying", "error", err, "in", backoff)
			if !s.sleep(jitter(backoff)) {
				if ar.stopping() {
					return errStopped
				}
				return ctx.Err()
			}
			backoff = min(2*backoff, secretMaxBackoff)
			continue
		}
		backoff = 500 * time.Millisecond
		if idx < index {
			idx = 0 // older state answered: start over
		}
		index = idx
		if missing := missingSecrets(ar.alloc.Tasks, r); len(missing) > 0 {
			msg := "waiting for secrets that do not exist, have expired or lack the key: " + strings.Join(missing, ", ")
			s.waiting(msg)
			s.logger.Warn("waiting for secrets", "missing", strings.Join(missing, ", "))
			if index == 0 && !s.sleep(jitter(backoff)) {
				if ar.stopping() {
					return errStopped
				}
				return ctx.Err()
			}
			continue
		}
		resp = r
		break
	}
	s.index = index

	if err := os.MkdirAll(filepath.Dir(s.dir), 0o711); err != nil {
		return err
	}
	if err := s.mnt.mount(s.dir, secretsSize(ar.alloc.Tasks, resp)); err != nil {
		return err
	}
	s.mu.Lock()
	for _, t := range ar.alloc.Tasks {
		if len(t.Secrets) == 0 {
			continue
		}
		if _, err := writeTaskSecrets(s.dir, t, resp, false); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("task %s: deliver secrets: %w", t.Name, err)
		}
	}
	s.mu.Unlock()
	s.logVersions(resp, "secrets delivered")
	if err := os.WriteFile(filepath.Join(s.dir, readyMarker), nil, 0o600); err != nil {
		return err
	}
	s.waiting("")
	if !wasMounted {
		// The tmpfs had gone while tasks ran (someone unmounted it): they
		// see a stale mount, so they must start again to see this one.
		for _, t := range ar.alloc.Tasks {
			if len(t.Secrets) > 0 && running[t.Name] {
				ar.requestRestart(t.Name, "its secrets were mounted again")
			}
		}
	}
	return nil
}

// fetch asks the source once; with index > 0 the call blocks. A stop
// request abandons it.
func (s *allocSecrets) fetch(ctx context.Context, index uint64) (*structs.NodeSecretsResponse, uint64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.ar.stopCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	resp, idx, err := s.src.AllocSecrets(ctx, s.ar.alloc.ID, index, secretPollWait)
	if err != nil && s.ar.stopping() {
		return nil, 0, errStopped
	}
	return resp, idx, err
}

// sleep waits d unless the allocation stops or the agent shuts down; it
// reports whether the wait was complete.
func (s *allocSecrets) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.ar.ctx.Done():
		return false
	case <-s.ar.stopCh:
		return false
	case <-t.C:
		return true
	}
}

// waitingPrefix marks a task's LastError as set by prepare.
const waitingPrefix = "waiting for secrets"

// waiting shows why the tasks have not started in their LastError; ""
// clears what an earlier call set.
func (s *allocSecrets) waiting(msg string) {
	for _, t := range s.ar.alloc.Tasks {
		s.ar.setTaskIf(t.Name, func(ts *structs.TaskState) bool {
			if ts.State != structs.TaskPending || ts.LastError == msg {
				return false
			}
			if msg == "" && !strings.HasPrefix(ts.LastError, waitingPrefix) {
				return false
			}
			ts.LastError = msg
			return true
		})
	}
}

// logVersions logs which version of each secret was delivered.
func (s *allocSecrets) logVersions(resp *structs.NodeSecretsResponse, msg string) {
	names := make([]string, 0, len(resp.Secrets))
	for name, sv := range resp.Secrets {
		names = append(names, fmt.Sprintf("%s@%d", name, sv.Version))
	}
	sort.Strings(names)
	s.logger.Info(msg, "secrets", strings.Join(names, ","))
}

// watch long-polls the allocation's secrets until ctx ends and applies
// each answer: it rewrites what changed and restarts or signals the
// tasks as their secrets' change_mode says.
func (s *allocSecrets) watch(ctx context.Context) {
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		resp, idx, err := s.src.AllocSecrets(ctx, s.ar.alloc.ID, s.index, secretPollWait)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, errSecretsForbidden) {
				s.logger.Error("the managers refuse this node the allocation's secrets; keeping the last delivered values and retrying", "error", err, "in", backoff)
			} else {
				s.logger.Warn("watch secrets failed; retrying", "error", err, "in", backoff)
			}
			if !sleepCtx(ctx, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, secretMaxBackoff)
			continue
		}
		backoff = 500 * time.Millisecond
		if idx < s.index {
			idx = 0
		}
		changed := s.apply(ctx, resp)
		s.index = idx
		if changed {
			s.logVersions(resp, "secrets updated")
		}
		if s.index == 0 && !sleepCtx(ctx, jitter(backoff)) {
			return // a source without indexes would be polled in a loop
		}
	}
}

// apply writes resp's values and dispatches the tasks' change modes. It
// reports whether anything changed.
func (s *allocSecrets) apply(ctx context.Context, resp *structs.NodeSecretsResponse) bool {
	ar := s.ar
	changedAny := false
	for _, t := range ar.alloc.Tasks {
		if len(t.Secrets) == 0 {
			continue
		}
		s.mu.Lock()
		ch, err := writeTaskSecrets(s.dir, t, resp, true)
		s.mu.Unlock()
		log := s.logger.With("task", t.Name)
		if err != nil {
			log.Error("update secrets", "error", err)
		}
		if len(ch.removed) > 0 {
			changedAny = true
			msg := fmt.Sprintf("secret(s) %s expired or were deleted: no longer delivered (the task keeps running)", strings.Join(ch.removed, ", "))
			log.Warn("secrets expired or deleted; removed their files and variables", "secrets", strings.Join(ch.removed, ","))
			ar.setTaskIf(t.Name, func(ts *structs.TaskState) bool { ts.LastError = msg; return true })
		}
		if len(ch.changed) == 0 {
			continue
		}
		changedAny = true
		labels := strings.Join(ch.changed, ",")
		switch {
		case ch.restart:
			log.Info("secrets changed; restarting the task", "secrets", labels)
			ar.requestRestart(t.Name, "secret(s) "+labels+" changed")
		case len(ch.signals) > 0:
			for _, name := range ch.signals {
				s.signal(ctx, t, name, labels)
			}
		default:
			log.Info("secrets changed; files replaced, task left alone (change_mode noop)", "secrets", labels)
		}
	}
	return changedAny
}

// signal sends a change_signal to a running task.
func (s *allocSecrets) signal(ctx context.Context, t *structs.Task, name, labels string) {
	log := s.logger.With("task", t.Name)
	if !s.ar.taskRunning(t.Name) {
		log.Info("secrets changed; the task is not running, so it gets the new values when it starts", "secrets", labels)
		return
	}
	sig := signalNumber(name)
	if sig == 0 {
		log.Error("unknown change_signal", "signal", name)
		return
	}
	sctx, cancel := context.WithTimeout(ctx, signalTimeout)
	defer cancel()
	err := s.ar.cfg.driver.SignalTask(sctx, taskID(s.ar.alloc.ID, t.Name), sig)
	switch {
	case errors.Is(err, driver.ErrNotFound):
		log.Info("secrets changed; the task is not running, so it gets the new values when it starts", "secrets", labels)
	case err != nil:
		log.Error("signal the task after a secret change", "signal", name, "error", err)
	default:
		log.Info("secrets changed; signalled the task", "secrets", labels, "signal", name)
	}
}

// cleanup unmounts the tmpfs and removes it: the values leave memory.
func (s *allocSecrets) cleanup() {
	if err := s.mnt.unmount(s.dir); err != nil {
		s.logger.Error("unmount the allocation's secrets", "dir", s.dir, "error", err)
		return
	}
	s.logger.Info("secrets unmounted")
}

// sweepSecrets unmounts the secret tmpfs of every allocation under
// allocDir that keep does not name: allocations that stopped or were
// collected while no agent ran.
func sweepSecrets(allocDir string, keep map[string]bool, mnt secretMounter, logger hclog.Logger) {
	entries, err := os.ReadDir(allocDir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			logger.Warn("list alloc dir for leftover secrets", "error", err)
		}
		return
	}
	for _, e := range entries {
		if !e.IsDir() || keep[e.Name()] {
			continue
		}
		dir := secretsDir(allocDir, e.Name())
		if _, err := os.Lstat(dir); err != nil {
			continue
		}
		if err := mnt.unmount(dir); err != nil {
			logger.Warn("unmount the secrets of a finished allocation", "alloc", e.Name(), "error", err)
			continue
		}
		logger.Info("unmounted the secrets of a finished allocation", "alloc", e.Name())
	}
}
