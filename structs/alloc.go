package structs

import (
	"fmt"
	"strings"
	"time"
)

// Allocation client states, reported by the worker.
const (
	AllocPending  = "pending"
	AllocRunning  = "running"
	AllocComplete = "complete"
	AllocFailed   = "failed"
	AllocLost     = "lost"
)

// Allocation desired states, set by managers.
const (
	AllocDesiredRun  = "run"
	AllocDesiredStop = "stop"
)

// Task states within an allocation.
const (
	TaskPending = "pending"
	TaskRunning = "running"
	TaskDead    = "dead"
)

// Restart policy modes (as Nomad's).
const (
	RestartModeFail  = "fail"
	RestartModeDelay = "delay"
)

// MinMemoryMB is the smallest memory limit a task may ask for; below it
// runc cannot even start the container's init.
const MinMemoryMB = 4

// Allocation is one placement of a task group on a node.
type Allocation struct {
	ID        string
	Namespace string
	NodeID    string
	JobID     string
	Group     string
	Tasks     []*Task

	DesiredStatus string
	ClientStatus  string
	// ClientDescription is the worker's last word on the allocation, e.g.
	// why it failed.
	ClientDescription string
	TaskStates        map[string]*TaskState
	// Address is the allocation's IP, once networking reports one.
	Address string
	// Quarantined allocations get no network traffic in or out, whatever
	// the policies say (`hive alloc quarantine`).
	Quarantined bool
	// Ports are the group's ports to publish; Published what the worker
	// published them at (reported with the address).
	Ports     []PortMapping
	Published []PublishedPort

	// Scheduler fields. Name is "<job>.<group>[<index>]"; the index is what
	// rolling updates and rescheduling keep stable.
	Name               string
	EvalID             string
	JobVersion         uint64
	DeploymentID       string
	DesiredDescription string
	// Healthy is set once the deployment watcher has judged the allocation
	// (nil: not yet).
	Healthy *bool
	// Canary marks an allocation placed as a canary of its deployment: it
	// runs beside the allocations it will replace until the deployment is
	// promoted.
	Canary             bool
	PreviousAllocation string
	NextAllocation     string
	// RescheduleTimes are when this allocation's lineage was rescheduled,
	// for the reschedule policy's attempts-per-interval.
	RescheduleTimes []time.Time
	// Resources is what the allocation takes on its node (sum of tasks).
	Resources Resources
	Metrics   *AllocMetric

	CreateTime time.Time
	ModifyTime time.Time

	CreateIndex uint64
	ModifyIndex uint64
}

// Terminal reports whether the allocation will not run again.
func (a *Allocation) Terminal() bool {
	switch a.ClientStatus {
	case AllocComplete, AllocFailed, AllocLost:
		return true
	}
	return false
}

// HoldsResources reports whether the allocation holds its slot and its
// resources on its node: the managers still want it to run and the worker
// has not given up on it. A stopped allocation frees its resources at once,
// as in Nomad.
func (a *Allocation) HoldsResources() bool {
	return a.DesiredStatus == AllocDesiredRun && !a.Terminal()
}

// Task is one container of a group.
type Task struct {
	Name      string
	Driver    string
	Config    TaskConfig
	Env       map[string]string
	User      string
	Resources Resources
	Security  SecurityContext
	Restart   RestartPolicy
	Labels    map[string]string
	// Secrets are delivered to the task as files under /run/secrets and
	// as environment variables.
	Secrets []*TaskSecret
}

// TaskConfig is the driver configuration.
type TaskConfig struct {
	Image      string
	Command    string
	Args       []string
	Entrypoint []string
}

// Resources a task asks for. CPU is in MHz as in Nomad and maps to cgroup
// CPU shares; MemoryMB is a hard limit.
type Resources struct {
	CPU      int
	MemoryMB int
}

// SecurityContext loosens the restricted default; everything is off unless
// set.
type SecurityContext struct {
	ReadOnlyRootfs bool
	CapAdd         []string
	CapDrop        []string
	Privileged     bool
}

// RestartPolicy says what a worker does when a task exits.
type RestartPolicy struct {
	Attempts int
	Interval time.Duration
	Delay    time.Duration
	Mode     string
}

// DefaultRestartPolicy matches Nomad's service default.
func DefaultRestartPolicy() RestartPolicy {
	return RestartPolicy{Attempts: 2, Interval: 30 * time.Minute, Delay: 15 * time.Second, Mode: RestartModeFail}
}

// TaskState is the worker's view of one task.
type TaskState struct {
	State      string
	Failed     bool
	Restarts   int
	ExitCode   int
	LastError  string
	StartedAt  time.Time
	FinishedAt time.Time
	// ImageDigest pins the image the task runs once resolved.
	ImageDigest string
}

// Validate checks a task for what a worker cannot run.
func (t *Task) Validate() error {
	if err := ValidateName("task", t.Name); err != nil {
		return err
	}
	switch t.Driver {
	case "", "containerd", "docker":
	default:
		return fmt.Errorf("task %q: unknown driver %q: use \"containerd\" (\"docker\" is accepted as an alias)", t.Name, t.Driver)
	}
	if strings.TrimSpace(t.Config.Image) == "" {
		return fmt.Errorf("task %q: config.image is required", t.Name)
	}
	if t.Resources.MemoryMB != 0 && t.Resources.MemoryMB < MinMemoryMB {
		return fmt.Errorf("task %q: memory %d MiB is below the minimum of %d MiB", t.Name, t.Resources.MemoryMB, MinMemoryMB)
	}
	if t.Resources.MemoryMB < 0 || t.Resources.CPU < 0 {
		return fmt.Errorf("task %q: resources cannot be negative", t.Name)
	}
	switch t.Restart.Mode {
	case "", RestartModeFail, RestartModeDelay:
	default:
		return fmt.Errorf("task %q: restart mode %q: use \"fail\" or \"delay\"", t.Name, t.Restart.Mode)
	}
	if t.Restart.Attempts < 0 || t.Restart.Delay < 0 || t.Restart.Interval < 0 {
		return fmt.Errorf("task %q: restart attempts, delay and interval cannot be negative", t.Name)
	}
	return nil
}
