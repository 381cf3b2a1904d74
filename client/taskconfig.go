package client

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/pkg/identifiers"

	"github.com/hivesec/hive/client/driver"
	"github.com/hivesec/hive/structs"
)

// Labels the agent puts on every container, so a restarted agent can map
// containers back to allocations. hive.node keeps two agents that share one
// containerd (and its "hive" namespace) from touching each other's.
const (
	LabelAlloc     = "hive.alloc"
	LabelTask      = "hive.task"
	LabelNamespace = "hive.namespace"
	LabelNode      = "hive.node"
)

// taskID is the container ID of an allocation's task: "<allocID>-<task>",
// or, when that is not a valid containerd identifier (task names may hold
// "--" and the whole may pass containerd's 76 characters), the allocation
// ID and a hash of the task name. It must stay a pure function of the two:
// stop and re-attach recompute it.
func taskID(allocID, task string) string {
	id := allocID + "-" + task
	if identifiers.Validate(id) == nil {
		return id
	}
	sum := sha256.Sum256([]byte(task))
	return allocID + "-t" + hex.EncodeToString(sum[:8])
}

// taskLogDir is where a task's rotated stdout and stderr files live.
func taskLogDir(allocDir, allocID, task string) string {
	return filepath.Join(allocDir, allocID, task, "logs")
}

// cpuShares maps MHz to cgroup CPU shares: 1000 MHz is 1024 shares (one
// core's worth under contention), within the kernel's 2..262144.
func cpuShares(mhz int) uint64 {
	s := uint64(max(mhz, 0)) * 1024 / 1000
	return min(max(s, 2), 262144)
}

// driverConfig translates a task of alloc into what the driver runs.
// Privileged is passed through as allowed: the manager refused privileged
// tasks unless their namespace allows them before storing the allocation,
// and the worker trusts what the managers stored.
func driverConfig(alloc *structs.Allocation, t *structs.Task, allocDir, nodeID string) driver.TaskConfig {
	env := map[string]string{
		"HIVE_ALLOC_ID":  alloc.ID,
		"HIVE_TASK_NAME": t.Name,
		"HIVE_NAMESPACE": alloc.Namespace,
		"HIVE_GROUP":     alloc.Group,
	}
	if alloc.JobID != "" {
		env["HIVE_JOB_ID"] = alloc.JobID
	}
	for k, v := range t.Env {
		env[k] = v
	}
	labels := map[string]string{}
	for k, v := range t.Labels {
		// hive.* is ours: a task must not pass for another allocation.
		if !strings.HasPrefix(k, "hive.") {
			labels[k] = v
		}
	}
	labels[LabelAlloc] = alloc.ID
	labels[LabelTask] = t.Name
	labels[LabelNamespace] = alloc.Namespace
	labels[LabelNode] = nodeID
	return driver.TaskConfig{
		ID:              taskID(alloc.ID, t.Name),
		Name:            t.Name,
		Image:           t.Config.Image,
		Entrypoint:      t.Config.Entrypoint,
		Command:         t.Config.Command,
		Args:            t.Config.Args,
		Env:             env,
		User:            t.User,
		ReadOnlyRootfs:  t.Security.ReadOnlyRootfs,
		CapAdd:          t.Security.CapAdd,
		CapDrop:         t.Security.CapDrop,
		Privileged:      t.Security.Privileged,
		AllowPrivileged: t.Security.Privileged,
		CPUShares:       cpuShares(t.Resources.CPU),
		MemoryBytes:     int64(t.Resources.MemoryMB) << 20,
		LogDir:          taskLogDir(allocDir, alloc.ID, t.Name),
		Labels:          labels,
	}
}
