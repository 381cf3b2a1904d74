package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hivesec/hive/client/driver"
	"github.com/hivesec/hive/structs"
)

// taskRunner runs one task of an allocation: pending → running → (exit
// non-zero and the restart policy allows: pending, Restarts+1, after the
// delay running again) → dead. Dead is final; Failed says whether it ended
// badly (a start error, or the restart policy gave up). A stop request
// stops the container (SIGTERM, SIGKILL after the kill timeout) and ends
// the task dead and not failed. Every ended container is destroyed; logs
// stay in the alloc dir.
type taskRunner struct {
	ar      *allocRunner
	task    *structs.Task
	cfg     driver.TaskConfig
	restart restartTracker
	logger  hclog.Logger
	// pinned is the digest of the image the task first started with (or,
	// after an agent restart, the one its TaskState recorded). Every later
	// start runs that image, even if its name was retagged since.
	pinned string
	// restartCh asks for a restart (a secret with change_mode "restart"
	// changed); the value says why. Buffered: one pending request covers
	// any number.
	restartCh chan string
}

// startError is a failed start; permanent ones retrying cannot fix.
type startError struct {
	err       error
	permanent bool
}

func (e *startError) Error() string { return e.err.Error() }
func (e *startError) Unwrap() error { return e.err }

func (tr *taskRunner) driver() driver.Driver { return tr.ar.cfg.driver }
func (tr *taskRunner) now() time.Time        { return tr.ar.cfg.now().UTC() }

func (tr *taskRunner) set(fn func(ts *structs.TaskState)) { tr.ar.setTask(tr.task.Name, fn) }

// run supervises the task until it is dead or the agent shuts down.
// restore is the task's container found at agent start, if any.
func (tr *taskRunner) run(restore *driver.TaskStatus) {
	ctx := tr.ar.ctx
	tr.ar.mu.Lock()
	prev := tr.ar.states[tr.task.Name]
	wasDead := prev.State == structs.TaskDead
	if prev.ImageDigest != "" && !prev.StartedAt.IsZero() {
		tr.pinned = prev.ImageDigest
	}
	tr.ar.mu.Unlock()
	if err := tr.ar.prestartErr; err != nil && !wasDead {
		if restore != nil {
			tr.destroy()
		}
		tr.fail(err.Error(), -1)
		return
	}
	if wasDead {
		// Finished before an agent restart; only a leftover container
		// may need removing.
		if restore != nil {
			tr.destroy()
		}
		return
	}

	var exit *driver.TaskStatus // an exit to handle before anything else
	attach := false
	if restore != nil {
		switch restore.State {
		case driver.StateRunning:
			attach = true
			tr.logger.Info("re-attaching to running task", "pid", restore.PID)
		case driver.StateExited:
			// It ended while the agent was away: handle it as an exit.
			exit = restore
		default:
			// Created but never started, or unreadable: start afresh.
			tr.logger.Info("removing leftover container", "state", restore.State, "error", restore.Err)
			tr.destroy()
		}
	}

	for {
		if exit == nil {
			if tr.ar.stopping() {
				tr.finishStopped(nil)
				return
			}
			var waitCh <-chan driver.TaskStatus
			if attach {
				attach = false
				ch, err := tr.driver().WaitTask(ctx, tr.cfg.ID)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					tr.logger.Warn("cannot re-attach; starting the task again", "error", err)
					tr.destroy()
					continue
				}
				waitCh = ch
				started := restore.StartedAt
				tr.set(func(ts *structs.TaskState) {
					ts.State = structs.TaskRunning
					if !started.IsZero() {
						ts.StartedAt = started.UTC()
					}
				})
			} else {
				// This start delivers the current secrets: a restart asked
				// for before it is done by it.
				tr.drainRestart()
				ch, err := tr.start(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					var se *startError
					if errors.As(err, &se) && se.permanent {
						tr.fail(err.Error(), -1)
						return
					}
					exit = &driver.TaskStatus{State: driver.StateUnknown, Err: err.Error()}
				}
				waitCh = ch
			}
			if exit == nil {
				select {
				case <-ctx.Done():
					return // containers outlive the agent
				case <-tr.ar.stopCh:
					tr.finishStopped(waitCh)
					return
				case reason := <-tr.restartCh:
					tr.restartNow(waitCh, reason)
					continue
				case st, ok := <-waitCh:
					if ctx.Err() != nil {
						return
					}
					if !ok {
						st = driver.TaskStatus{State: driver.StateUnknown, Err: "wait ended without a status"}
					}
					exit = &st
				}
			}
		}

		// The task ended on its own (or never started).
		st := *exit
		exit = nil
		tr.destroy()
		finished := st.ExitedAt
		if finished.IsZero() {
			finished = tr.now()
		}
		if st.State == driver.StateExited && st.ExitCode == 0 {
			tr.set(func(ts *structs.TaskState) {
				ts.State, ts.ExitCode, ts.FinishedAt, ts.Failed = structs.TaskDead, 0, finished.UTC(), false
			})
			tr.logger.Info("task finished")
			return
		}
		why := st.Err
		code := -1
		if st.State == driver.StateExited {
			code = int(st.ExitCode)
			why = fmt.Sprintf("exited with code %d", code)
		}
		if tr.ar.stopping() {
			tr.finishStopped(nil)
			return
		}
		d := tr.restart.next(tr.now())
		if !d.Restart {
			p := tr.task.Restart
			tr.fail(fmt.Sprintf("%s; restart policy exhausted (%d attempts in %s)", why, p.Attempts, p.Interval), code)
			return
		}
		tr.logger.Warn("task failed; restarting", "reason", why, "in", d.Wait)
		tr.set(func(ts *structs.TaskState) {
			ts.State, ts.ExitCode, ts.FinishedAt = structs.TaskPending, code, finished.UTC()
			ts.LastError = fmt.Sprintf("%s; restarting in %s", why, d.Wait)
			ts.Restarts++
		})
		timer := time.NewTimer(d.Wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-tr.ar.stopCh:
			timer.Stop()
			tr.finishStopped(nil)
			return
		case <-timer.C:
		}
	}
}

// start makes sure the image is here, then starts the container by the
// image's digest and waits on it; after the first successful start the
// digest is pinned (and recorded in the TaskState). Errors that a retry
// cannot fix are permanent startErrors.
func (tr *taskRunner) start(ctx context.Context) (<-chan driver.TaskStatus, error) {
	// Stop requests abort a slow pull or start.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-tr.ar.stopCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	digest, err := tr.ensureImage(ctx)
	if err != nil {
		return nil, err
	}
	cfg := tr.cfg
	cfg.ImageDigest = digest

	if hasEnvSecrets(tr.task) {
		if err := tr.ar.cfg.helperError(); err != nil {
			return nil, &startError{err: err, permanent: true}
		}
	}
	st, err := tr.startTask(ctx, cfg)
	if errors.Is(err, driver.ErrAlreadyExists) {
		// A container left by an earlier run of this task.
		tr.destroy()
		st, err = tr.startTask(ctx, cfg)
	}
	if err != nil {
		permanent := errors.Is(err, driver.ErrInvalidConfig) || errors.Is(err, driver.ErrPrivilegedNotAllowed) ||
			errors.Is(err, driver.ErrNotFound)
		return nil, &startError{err: err, permanent: permanent}
	}
	// Waiting uses the runner's context, not this call's.
	ch, err := tr.driver().WaitTask(tr.ar.ctx, tr.cfg.ID)
	if err != nil {
		return nil, &startError{err: fmt.Errorf("wait on started task: %w", err)}
	}
	started := st.StartedAt
	if started.IsZero() {
		started = tr.now()
	}
	tr.pinned = digest
	tr.logger.Info("task started", "pid", st.PID, "image_digest", digest)
	tr.set(func(ts *structs.TaskState) {
		ts.State, ts.StartedAt, ts.FinishedAt, ts.ExitCode = structs.TaskRunning, started.UTC(), time.Time{}, 0
		ts.ImageDigest = digest
	})
	return ch, nil
}

// startTask asks the driver to start cfg. With secrets it holds the
// allocation's secret lock, so the files do not change under the start.
func (tr *taskRunner) startTask(ctx context.Context, cfg driver.TaskConfig) (driver.TaskStatus, error) {
	if s := tr.ar.secrets; s != nil && len(tr.task.Secrets) > 0 {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	return tr.driver().StartTask(sctx, cfg)
}

// drainRestart drops a pending restart request.
func (tr *taskRunner) drainRestart() {
	select {
	case <-tr.restartCh:
	default:
	}
}

// restartNow stops the running task (waitCh is its wait) and removes it
// so that the loop starts it again at once: a restart the task did not
// ask for by failing, so the restart policy is not charged. It counts in
// Restarts, as Nomad counts template restarts.
func (tr *taskRunner) restartNow(waitCh <-chan driver.TaskStatus, reason string) {
	tr.logger.Info("restarting the task", "reason", reason)
	timeout := tr.ar.cfg.killTimeout
	ctx, cancel := context.WithTimeout(context.WithoutCancel(tr.ar.ctx), timeout+30*time.Second)
	if err := tr.driver().StopTask(ctx, tr.cfg.ID, timeout); err != nil && !errors.Is(err, driver.ErrNotFound) {
		tr.logger.Warn("stop task for restart", "error", err)
	}
	select {
	case <-waitCh:
	case <-time.After(5 * time.Second):
	case <-ctx.Done():
	}
	cancel()
	tr.destroy()
	now := tr.now()
	tr.set(func(ts *structs.TaskState) {
		ts.State, ts.FinishedAt = structs.TaskPending, now
		ts.Restarts++
	})
}

// ensureImage returns the digest of the image to run, pulling it when it
// is not here: the pinned digest once the task has started (pulled by
// digest if no local image has it), else what the image's name resolves to.
// A bad reference or a failed pull is permanent (clusters without a
// registry import images instead); failing to ask containerd is not.
func (tr *taskRunner) ensureImage(ctx context.Context) (string, error) {
	name, err := driver.NormalizeRef(tr.cfg.Image)
	if err != nil {
		return "", &startError{err: fmt.Errorf("%w: %w", driver.ErrInvalidConfig, err), permanent: true}
	}
	lctx, cancel := context.WithTimeout(ctx, listTimeout)
	imgs, err := tr.driver().ListImages(lctx)
	cancel()
	if err != nil {
		return "", &startError{err: fmt.Errorf("list images: %w", err)}
	}
	if tr.pinned != "" {
		return tr.ensurePinned(ctx, name, imgs)
	}
	for _, img := range imgs {
		if img.Name == name {
			return img.Digest, nil
		}
	}
	tr.logger.Info("pulling image", "image", name)
	pctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	info, err := tr.driver().PullImage(pctx, name)
	if err != nil {
		return "", &startError{err: fmt.Errorf("image %s is not on this node and could not be pulled (import it with `hive image import`): %w", name, err),
			permanent: ctx.Err() == nil}
	}
	return info.Digest, nil
}

// ensurePinned makes sure an image with the pinned digest is here.
func (tr *taskRunner) ensurePinned(ctx context.Context, name string, imgs []driver.ImageInfo) (string, error) {
	for _, img := range imgs {
		if img.Digest == tr.pinned {
			return tr.pinned, nil
		}
	}
	ref, err := driver.DigestRef(name, tr.pinned)
	if err != nil {
		return "", &startError{err: fmt.Errorf("%w: pinned image: %w", driver.ErrInvalidConfig, err), permanent: true}
	}
	tr.logger.Info("pulling pinned image", "image", ref)
	pctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	info, err := tr.driver().PullImage(pctx, ref)
	if err == nil && info.Digest != tr.pinned {
		err = fmt.Errorf("the pull gave digest %s", info.Digest)
	}
	if err != nil {
		return "", &startError{err: fmt.Errorf("image %s is pinned to %s (what the task first ran); no image with that digest is on this node and %s could not be pulled (import it with `hive image import`): %w",
			name, tr.pinned, ref, err), permanent: ctx.Err() == nil}
	}
	return tr.pinned, nil
}

// fail ends the task dead and failed, and fails the allocation.
func (tr *taskRunner) fail(why string, code int) {
	tr.logger.Error("task failed", "reason", why)
	now := tr.now()
	tr.set(func(ts *structs.TaskState) {
		ts.State, ts.Failed, ts.LastError, ts.FinishedAt = structs.TaskDead, true, why, now
		if code >= 0 {
			ts.ExitCode = code
		}
	})
	tr.ar.taskFailed(tr.task.Name, why)
}

// finishStopped stops and removes the container (if it runs: waitCh is
// its wait) and ends the task dead, not failed.
func (tr *taskRunner) finishStopped(waitCh <-chan driver.TaskStatus) {
	code := -1
	if waitCh != nil {
		timeout := tr.ar.cfg.killTimeout
		ctx, cancel := context.WithTimeout(context.WithoutCancel(tr.ar.ctx), timeout+30*time.Second)
		if err := tr.driver().StopTask(ctx, tr.cfg.ID, timeout); err != nil && !errors.Is(err, driver.ErrNotFound) {
			tr.logger.Warn("stop task", "error", err)
		}
		select {
		case st, ok := <-waitCh:
			if ok && st.State == driver.StateExited {
				code = int(st.ExitCode)
			}
		case <-time.After(5 * time.Second):
		case <-ctx.Done():
		}
		cancel()
	}
	tr.destroy()
	now := tr.now()
	tr.set(func(ts *structs.TaskState) {
		ts.State, ts.FinishedAt = structs.TaskDead, now
		if code >= 0 {
			ts.ExitCode = code
		}
	})
	tr.logger.Info("task stopped")
}

// destroy removes the task's container, task and snapshot.
func (tr *taskRunner) destroy() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(tr.ar.ctx), destroyTimeout)
	defer cancel()
	if err := tr.driver().DestroyTask(ctx, tr.cfg.ID); err != nil {
		tr.logger.Warn("destroy task", "error", err)
	}
}
