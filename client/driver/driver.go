// Package driver runs a worker's tasks as containers. Driver is the seam the
// task runner sees (STYLE: small interfaces at the seams); Containerd is the
// only real implementation, talking to containerd through its Go client in
// the containerd namespace "hive". EnsureContainerd (supervisor.go) finds or
// starts the daemon, as k3s does.
//
// Every task runs restricted unless the caller says otherwise: no new
// privileges, no capabilities, containerd's default seccomp profile, runc's
// masked and read-only paths, a memory limit, and optionally a read-only
// rootfs and a non-root user. Stdout and stderr go to size-rotated files
// written by a logger process that containerd's shim starts (logger.go), so
// logging does not depend on the agent staying up.
package driver

import (
	"context"
	"errors"
	"io"
	"syscall"
	"time"
)

// Namespace is the containerd namespace every Hive object lives in.
const Namespace = "hive"

// MinMemoryBytes is the smallest memory limit a task may ask for: below it
// runc itself, the shell and the logger pipes do not fit and the task dies
// in ways that look like bugs.
const MinMemoryBytes = 4 << 20

// Task states reported in TaskStatus.State.
const (
	StateRunning = "running"
	StateExited  = "exited"
	// StateCreated: the task exists but was never started (the agent died
	// between create and start). The runner should destroy and start again.
	StateCreated = "created"
	StateUnknown = "unknown"
)

// Errors callers branch on. Returned errors wrap them (errors.Is) and carry
// the detail in their message.
var (
	// ErrNotFound: no container, task or image by that name.
	ErrNotFound = errors.New("not found")
	// ErrInvalidConfig: the task config is unusable; retrying will not help.
	ErrInvalidConfig = errors.New("invalid task config")
	// ErrPrivilegedNotAllowed: the task asks for privileged mode and the
	// caller did not allow it.
	ErrPrivilegedNotAllowed = errors.New("privileged tasks are not allowed here")
	// ErrAlreadyExists: a container with the task's ID exists.
	ErrAlreadyExists = errors.New("already exists")
	// ErrBadArchive: ImportImage was given something that is not an OCI or
	// Docker image archive (or a broken one).
	ErrBadArchive = errors.New("bad image archive")
)

// Mount is an extra bind mount into the task.
type Mount struct {
	Source      string // host path
	Destination string // path in the container
	ReadOnly    bool
}

// TaskConfig is everything the driver needs to start one task.
type TaskConfig struct {
	// ID names the container, the task and its snapshot; unique per
	// allocation and task, e.g. "<allocID>-<task>".
	ID string
	// Name is the task's name; log files are LogDir/<Name>.stdout.N.
	// Empty means ID.
	Name string
	// Image is a reference already present in containerd (namespace hive);
	// it is normalised like Docker does ("busybox" is
	// "docker.io/library/busybox:latest").
	Image string
	// ImageDigest, when set ("sha256:…"), pins the image: the task runs
	// the local image whose target (manifest or index) has this digest,
	// whatever Image's tag points at now. StartTask keeps a record of it
	// under Image's name at the digest ("docker.io/library/busybox@sha256:…",
	// as containerd names an image pulled by digest), so retagging or
	// re-importing the name does not let the pinned image be collected. A
	// digest that is nowhere on the node is ErrNotFound. An Image given as
	// "name@sha256:…" pins that digest the same way.
	ImageDigest string

	// Process. Entrypoint replaces the image's entrypoint when set.
	// Command+Args replace the image's cmd when Command is set; Args alone
	// replace the image's cmd.
	Entrypoint []string
	Command    string
	Args       []string
	Env        map[string]string
	// User is "uid", "uid:gid" (or a name from the image's /etc/passwd);
	// empty means the image's default user, which may be root.
	User string
	// Cwd overrides the image's working directory.
	Cwd string

	// Security.
	ReadOnlyRootfs bool
	// CapAdd adds capabilities back after all are dropped;
	// "NET_BIND_SERVICE" and "CAP_NET_BIND_SERVICE" both work. CapDrop
	// removes capabilities again (useful only with CapAdd "ALL").
	CapAdd, CapDrop []string
	// Privileged asks for all capabilities, all devices and no seccomp or
	// masked paths. StartTask refuses it unless AllowPrivileged is also set;
	// the agent sets AllowPrivileged from the namespace's policy, never from
	// the job.
	Privileged      bool
	AllowPrivileged bool

	// Resources. MemoryBytes is required: every task gets a hard limit.
	CPUShares       uint64
	CPUQuotaMicros  int64
	CPUPeriodMicros uint64 // default 100000 when a quota is set
	MemoryBytes     int64
	PidsLimit       int64 // 0: no limit

	// Logs. LogDir must be absolute; it is created if missing.
	LogDir      string
	LogMaxBytes int64 // per file; default 10 MiB
	LogMaxFiles int   // per stream; default 10

	Mounts []Mount
	// ExecWrapper, when set, goes in front of the task's process arguments
	// once Docker's entrypoint and cmd rules have resolved them against
	// the image: the task runs ExecWrapper[0] with the rest of it, then
	// the original program and its arguments. Its first element must be
	// an absolute path inside the container (a helper bind-mounted through
	// Mounts). The agent uses it to run `hive secret-exec`, which adds
	// secret environment variables from a file in memory and execs the
	// original program, so their values never enter the OCI spec.
	ExecWrapper []string
	// OwnedByUser are host paths StartTask hands to the task's process
	// user and group, as the spec resolves them from User or the image,
	// before the task starts: files made for the task to read (its secret
	// env file) whose owner the agent cannot know when User is a name or
	// empty.
	OwnedByUser []string
	// NetNSPath joins an existing network namespace (made by netenforce);
	// empty gives the task a fresh one with only loopback.
	NetNSPath string
	// Labels are stored on the container so a restarted agent can map it
	// back to its allocation. Keys starting with "hive.driver." are ours.
	Labels map[string]string
}

// TaskStatus is a task's state as containerd reports it.
type TaskStatus struct {
	ID        string
	State     string // StateRunning, StateExited, StateCreated or StateUnknown
	PID       uint32
	ExitCode  uint32
	StartedAt time.Time
	ExitedAt  time.Time
	// Err says why State is unknown, or why a wait ended without an exit.
	Err    string
	Labels map[string]string
}

// ImageInfo describes an image in containerd's image store.
type ImageInfo struct {
	Name   string
	Digest string // of the image's target (manifest or index)
	Size   int64  // compressed size of the blobs for this platform
}

// Driver is what the task runner needs from a container runtime.
type Driver interface {
	// ImportImage loads an OCI or Docker image archive and unpacks it. On
	// any error no image from the archive is left behind.
	ImportImage(ctx context.Context, r io.Reader) ([]ImageInfo, error)
	// PullImage pulls and unpacks ref; the returned digest pins it.
	PullImage(ctx context.Context, ref string) (ImageInfo, error)
	ListImages(ctx context.Context) ([]ImageInfo, error)

	// StartTask creates the container and its task and starts it. On any
	// error it removes what it created.
	StartTask(ctx context.Context, cfg TaskConfig) (TaskStatus, error)
	// WaitTask returns a channel that receives one status when the task
	// exits (or the wait fails: State unknown, Err set) and is then closed.
	// Cancelling ctx ends the wait.
	WaitTask(ctx context.Context, id string) (<-chan TaskStatus, error)
	// SignalTask sends sig to the task's init process (as `docker kill
	// --signal` does). A missing task is ErrNotFound; signalling an exited
	// one is not an error.
	SignalTask(ctx context.Context, id string, sig syscall.Signal) error
	// StopTask sends SIGTERM, then SIGKILL to every process of the task
	// after timeout. Stopping an exited task is not an error.
	StopTask(ctx context.Context, id string, timeout time.Duration) error
	// DestroyTask kills the task if needed and deletes it, its container
	// and its snapshot. Destroying a missing task is not an error.
	DestroyTask(ctx context.Context, id string) error
	InspectTask(ctx context.Context, id string) (TaskStatus, error)
	// ListTasks lists every Hive-managed container, for re-attaching after
	// an agent restart. It changes nothing.
	ListTasks(ctx context.Context) ([]TaskStatus, error)
}
