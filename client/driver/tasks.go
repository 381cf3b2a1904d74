package driver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"sort"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
)

// StartTask implements Driver.
func (d *Containerd) StartTask(ctx context.Context, cfg TaskConfig) (_ TaskStatus, err error) {
	if err := validate(&cfg); err != nil {
		return TaskStatus{}, fmt.Errorf("start task %s: %w", cfg.ID, err)
	}
	ctx = d.ctx(ctx)
	fail := func(err error) (TaskStatus, error) {
		return TaskStatus{}, fmt.Errorf("start task %s: %w", cfg.ID, err)
	}

	image, err := d.getImage(ctx, cfg.Image, cfg.ImageDigest)
	if err != nil {
		return fail(err)
	}
	// Checked up front because the cleanup below removes the snapshot
	// named cfg.ID, which must never be another container's.
	if _, err := d.client.ContainerService().Get(ctx, cfg.ID); err == nil {
		return fail(fmt.Errorf("container %w", ErrAlreadyExists))
	} else if !errdefs.IsNotFound(err) {
		return fail(err)
	}
	imgSpec, err := image.Spec(ctx)
	if err != nil {
		return fail(fmt.Errorf("image %s config: %w", image.Name(), err))
	}
	args, err := processArgs(&cfg, imgSpec.Config)
	if err != nil {
		return fail(err)
	}
	if err := prepareLogs(&cfg); err != nil {
		return fail(err)
	}

	labels := maps.Clone(cfg.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[labelManaged] = "true"

	snapshotCreated := false
	newSnapshot := func(ctx context.Context, client *containerd.Client, c *containers.Container) error {
		if err := containerd.WithNewSnapshot(cfg.ID, image)(ctx, client, c); err != nil {
			return err
		}
		snapshotCreated = true
		return nil
	}
	container, err := d.client.NewContainer(ctx, cfg.ID,
		containerd.WithSnapshotter(d.snapshotter),
		newSnapshot,
		containerd.WithRuntime(d.runtime, nil),
		containerd.WithContainerLabels(labels),
		containerd.WithNewSpec(d.specOpts(&cfg, image, args)...))
	if err != nil {
		if snapshotCreated {
			cctx, cancel := cleanupCtx(ctx)
			if rerr := d.client.SnapshotService(d.snapshotter).Remove(cctx, cfg.ID); rerr != nil && !errdefs.IsNotFound(rerr) {
				d.logger.Error("start failed; remove snapshot", "id", cfg.ID, "error", rerr)
			}
			cancel()
		}
		if errdefs.IsAlreadyExists(err) {
			err = fmt.Errorf("%w: %w", ErrAlreadyExists, err)
		}
		return fail(fmt.Errorf("create container: %w", err))
	}

	var task containerd.Task
	defer func() {
		if err == nil {
			return
		}
		cctx, cancel := cleanupCtx(ctx)
		defer cancel()
		if task != nil {
			if _, derr := task.Delete(cctx, containerd.WithProcessKill); derr != nil && !errdefs.IsNotFound(derr) {
				d.logger.Error("start failed; delete task", "id", cfg.ID, "error", derr)
			}
		}
		if derr := container.Delete(cctx, containerd.WithSnapshotCleanup); derr != nil && !errdefs.IsNotFound(derr) {
			d.logger.Error("start failed; delete container", "id", cfg.ID, "error", derr)
		}
	}()

	if len(cfg.OwnedByUser) > 0 {
		if err := chownToProcessUser(ctx, container, cfg.OwnedByUser); err != nil {
			return fail(err)
		}
	}

	task, err = container.NewTask(ctx, cio.BinaryIO(d.loggerPath, loggerArgs(&cfg)))
	if err != nil {
		return fail(fmt.Errorf("create task: %w", err))
	}
	// Taken before Start: a short task can exit (and containerd stamp its
	// exit) before Start returns, and StartedAt must not follow ExitedAt.
	started := time.Now().UTC()
	if err := task.Start(ctx); err != nil {
		return fail(fmt.Errorf("start: %w", err))
	}
	// Recorded for InspectTask after an agent restart; containerd keeps no
	// start time. Losing it is not worth failing a running task for.
	if _, err := container.SetLabels(ctx, map[string]string{labelStartedAt: started.Format(time.RFC3339Nano)}); err != nil {
		d.logger.Warn("record start time", "id", cfg.ID, "error", err)
	}
	labels[labelStartedAt] = started.Format(time.RFC3339Nano)
	return TaskStatus{
		ID:        cfg.ID,
		State:     StateRunning,
		PID:       task.Pid(),
		StartedAt: started,
		Labels:    userLabels(labels),
	}, nil
}

// chownToProcessUser gives paths to the user and group the container's
// spec runs its process as (resolved from the task's User or the image by
// the spec options, /etc/passwd included).
func chownToProcessUser(ctx context.Context, c containerd.Container, paths []string) error {
	spec, err := c.Spec(ctx)
	if err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	if spec.Process == nil {
		return fmt.Errorf("%w: spec has no process", ErrInvalidConfig)
	}
	uid, gid := int(spec.Process.User.UID), int(spec.Process.User.GID)
	for _, p := range paths {
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("give %s to the task's user %d:%d: %w", p, uid, gid, err)
		}
	}
	return nil
}

// SignalTask implements Driver.
func (d *Containerd) SignalTask(ctx context.Context, id string, sig syscall.Signal) error {
	ctx = d.ctx(ctx)
	_, t, err := d.load(ctx, id)
	if err != nil {
		return fmt.Errorf("signal task %s: %w", id, err)
	}
	if t == nil {
		return fmt.Errorf("signal task %s: container has no task: %w", id, ErrNotFound)
	}
	if err := t.Kill(ctx, sig); err != nil && !isGone(err) {
		return fmt.Errorf("signal task %s: %s: %w", id, sig, err)
	}
	return nil
}

// load finds a task's container and its task; task is nil (and err nil)
// when the container exists without one.
func (d *Containerd) load(ctx context.Context, id string) (containerd.Container, containerd.Task, error) {
	c, err := d.client.LoadContainer(ctx, id)
	if err != nil {
		return nil, nil, notFound(err)
	}
	t, err := c.Task(ctx, nil)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return c, nil, nil
		}
		return nil, nil, err
	}
	return c, t, nil
}

// WaitTask implements Driver. A wait that loses containerd (a daemon
// restart) waits again on the reloaded task, so an exit is not missed.
func (d *Containerd) WaitTask(ctx context.Context, id string) (<-chan TaskStatus, error) {
	ctx = d.ctx(ctx)
	c, t, err := d.load(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("wait task %s: %w", id, err)
	}
	if t == nil {
		return nil, fmt.Errorf("wait task %s: container has no task: %w", id, ErrNotFound)
	}
	exitCh, err := t.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("wait task %s: %w", id, err)
	}
	out := make(chan TaskStatus, 1)
	go func() {
		defer close(out)
		for {
			es := <-exitCh
			code, at, werr := es.Result()
			if werr == nil {
				st := TaskStatus{ID: id, State: StateExited, PID: t.Pid(), ExitCode: code, ExitedAt: at}
				if info, err := c.Info(ctx); err == nil {
					st.StartedAt = startedAt(info.Labels)
					st.Labels = userLabels(info.Labels)
				}
				out <- st
				return
			}
			if ctx.Err() != nil {
				out <- TaskStatus{ID: id, State: StateUnknown, Err: ctx.Err().Error()}
				return
			}
			d.logger.Warn("wait interrupted; waiting again", "id", id, "error", werr)
			for {
				select {
				case <-ctx.Done():
					out <- TaskStatus{ID: id, State: StateUnknown, Err: ctx.Err().Error()}
					return
				case <-time.After(500 * time.Millisecond):
				}
				var t2 containerd.Task
				c, t2, err = d.load(ctx, id)
				if errors.Is(err, ErrNotFound) || (err == nil && t2 == nil) {
					out <- TaskStatus{ID: id, State: StateUnknown, Err: fmt.Sprintf("task disappeared while waiting (after: %v)", werr)}
					return
				}
				if err != nil {
					continue
				}
				if exitCh, err = t2.Wait(ctx); err == nil {
					t = t2
					break
				}
			}
		}
	}()
	return out, nil
}

// StopTask implements Driver. SIGTERM goes to the task's init process
// (which ignores it if it is a shell without a trap: PID 1 has no default
// handlers); SIGKILL goes to every process in the task.
func (d *Containerd) StopTask(ctx context.Context, id string, timeout time.Duration) error {
	ctx = d.ctx(ctx)
	_, t, err := d.load(ctx, id)
	if err != nil {
		return fmt.Errorf("stop task %s: %w", id, err)
	}
	if t == nil {
		return nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	exitCh, err := t.Wait(wctx)
	if err != nil {
		return fmt.Errorf("stop task %s: %w", id, err)
	}
	if err := t.Kill(ctx, syscall.SIGTERM); err != nil && !isGone(err) {
		return fmt.Errorf("stop task %s: SIGTERM: %w", id, err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-exitCh:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop task %s: %w", id, ctx.Err())
	case <-timer.C:
	}
	if err := t.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !isGone(err) {
		return fmt.Errorf("stop task %s: SIGKILL: %w", id, err)
	}
	select {
	case <-exitCh:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop task %s: waiting after SIGKILL: %w", id, ctx.Err())
	}
}

// isGone: killing a process that already exited.
func isGone(err error) bool {
	return errdefs.IsNotFound(err) || errdefs.IsFailedPrecondition(err)
}

// DestroyTask implements Driver.
func (d *Containerd) DestroyTask(ctx context.Context, id string) error {
	ctx = d.ctx(ctx)
	c, t, err := d.load(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("destroy task %s: %w", id, err)
	}
	if t != nil {
		if _, err := t.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("destroy task %s: delete task: %w", id, err)
		}
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("destroy task %s: delete container: %w", id, err)
	}
	return nil
}

// InspectTask implements Driver.
func (d *Containerd) InspectTask(ctx context.Context, id string) (TaskStatus, error) {
	ctx = d.ctx(ctx)
	c, err := d.client.LoadContainer(ctx, id)
	if err != nil {
		return TaskStatus{}, fmt.Errorf("inspect task %s: %w", id, notFound(err))
	}
	info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
	if err != nil {
		return TaskStatus{}, fmt.Errorf("inspect task %s: %w", id, notFound(err))
	}
	return d.status(ctx, c, info), nil
}

func (d *Containerd) status(ctx context.Context, c containerd.Container, info containers.Container) TaskStatus {
	st := TaskStatus{ID: c.ID(), State: StateUnknown, StartedAt: startedAt(info.Labels), Labels: userLabels(info.Labels)}
	t, err := c.Task(ctx, nil)
	if err != nil {
		if errdefs.IsNotFound(err) {
			st.Err = "container has no task"
		} else {
			st.Err = err.Error()
		}
		return st
	}
	st.PID = t.Pid()
	s, err := t.Status(ctx)
	if err != nil {
		st.Err = err.Error()
		return st
	}
	switch s.Status {
	case containerd.Running, containerd.Paused, containerd.Pausing:
		st.State = StateRunning
	case containerd.Stopped:
		st.State = StateExited
		st.ExitCode = s.ExitStatus
		st.ExitedAt = s.ExitTime
	case containerd.Created:
		st.State = StateCreated
	default:
		st.Err = fmt.Sprintf("containerd reports task status %q", s.Status)
	}
	return st
}

// ListTasks implements Driver, sorted by ID.
func (d *Containerd) ListTasks(ctx context.Context) ([]TaskStatus, error) {
	ctx = d.ctx(ctx)
	cs, err := d.client.ContainerService().List(ctx, fmt.Sprintf(`labels.%q==true`, labelManaged))
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	out := make([]TaskStatus, 0, len(cs))
	for _, info := range cs {
		c, err := d.client.LoadContainer(ctx, info.ID)
		if err != nil {
			if errdefs.IsNotFound(err) {
				continue // deleted meanwhile
			}
			return nil, fmt.Errorf("list tasks: %w", err)
		}
		out = append(out, d.status(ctx, c, info))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func startedAt(labels map[string]string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, labels[labelStartedAt])
	return t
}

// userLabels drops the driver's own labels.
func userLabels(labels map[string]string) map[string]string {
	out := make(map[string]string, len(labels))
	for k, v := range labels {
		if len(k) < len(labelPrefix) || k[:len(labelPrefix)] != labelPrefix {
			out[k] = v
		}
	}
	return out
}
