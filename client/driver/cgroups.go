package driver

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// CgroupMode is how the host's cgroups are mounted, which decides where
// runc writes a task's limits.
type CgroupMode string

const (
	// CgroupsV1: one hierarchy per controller under /sys/fs/cgroup/<ctrl>.
	CgroupsV1 CgroupMode = "v1"
	// CgroupsHybrid: v1 controllers plus an empty cgroup2 mount at
	// /sys/fs/cgroup/unified (systemd's "hybrid"). runc enforces limits
	// through v1 here, so for limits it is the same as CgroupsV1.
	CgroupsHybrid CgroupMode = "hybrid"
	// CgroupsV2: the unified hierarchy at /sys/fs/cgroup.
	CgroupsV2 CgroupMode = "v2"
)

const cgroupRoot = "/sys/fs/cgroup"

// DetectCgroups reports the host's cgroup mode and checks that the memory
// and cpu controllers limits need are there, so a task fails at start with
// a clear message rather than running unlimited.
func DetectCgroups() (CgroupMode, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupRoot, &st); err != nil {
		return "", fmt.Errorf("cgroups: %s: %w", cgroupRoot, err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		b, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers"))
		if err != nil {
			return "", fmt.Errorf("cgroups v2: %w", err)
		}
		have := strings.Fields(string(b))
		for _, c := range []string{"memory", "cpu", "pids"} {
			if !slices.Contains(have, c) {
				return "", fmt.Errorf("cgroups v2: controller %q is not enabled in %s/cgroup.controllers (have %v)", c, cgroupRoot, have)
			}
		}
		return CgroupsV2, nil
	}
	for _, c := range []string{"memory", "cpu", "pids"} {
		if _, err := os.Stat(filepath.Join(cgroupRoot, c)); err != nil {
			return "", fmt.Errorf("cgroups v1: controller %q is not mounted under %s: %w", c, cgroupRoot, err)
		}
	}
	if err := unix.Statfs(filepath.Join(cgroupRoot, "unified"), &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return CgroupsHybrid, nil
	}
	return CgroupsV1, nil
}

// MemoryLimitFile is the host path of the file holding the memory limit of
// the process pid's cgroup, read from /proc/<pid>/cgroup.
func MemoryLimitFile(mode CgroupMode, pid uint32) (string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch mode {
		case CgroupsV2:
			if parts[0] == "0" {
				return filepath.Join(cgroupRoot, parts[2], "memory.max"), nil
			}
		default:
			if slices.Contains(strings.Split(parts[1], ","), "memory") {
				return filepath.Join(cgroupRoot, "memory", parts[2], "memory.limit_in_bytes"), nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("cgroups: no memory cgroup for pid")
}
